//! `timestamptz` as the operator's snapshot reads it: 30,000 of them a cycle at 10,000
//! workers. sqlx's chrono decoding adds a `Duration` to a date built per value (date
//! arithmetic that was about 6% of the operator's CPU); PostgreSQL's binary form is
//! microseconds since 2000-01-01 UTC, which is one addition away from Unix time.

use chrono::{DateTime, Utc};
use sqlx::decode::Decode;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef, Postgres};
use sqlx::types::Type;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A `timestamptz` decoded without date arithmetic (the text form, which a binary
/// result never carries, goes through sqlx's own decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DbTime(pub(super) DateTime<Utc>);

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl PgHasArrayType for DbTime {
    fn array_type_info() -> PgTypeInfo {
        <DateTime<Utc> as PgHasArrayType>::array_type_info()
    }
}

impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        if value.format() == PgValueFormat::Text {
            return <DateTime<Utc> as Decode<Postgres>>::decode(value).map(DbTime);
        }
        let micros = i64::from_be_bytes(value.as_bytes()?.try_into()?);
        micros
            .checked_add(PG_EPOCH_UNIX_MICROS)
            .and_then(DateTime::from_timestamp_micros)
            .map(DbTime)
            // `infinity` and `-infinity` are i64::MAX and i64::MIN.
            .ok_or_else(|| format!("timestamptz out of range: {micros} µs from 2000-01-01").into())
    }
}
