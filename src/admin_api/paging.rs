//! `GET /workers?limit=N&continue=TOKEN`, the Kubernetes way: keyset pagination on the
//! node id. The token is the last node id served: clients pass it back as-is. Keeping
//! it a plain node id means every value the OpenAPI document allows is a valid position
//! (schemathesis checks that), and a page never depends on server-side state.

/// Largest page a client may ask for.
pub const MAX_LIMIT: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    #[error("limit must be an integer from 1 to {MAX_LIMIT}, got {0:?}")]
    Limit(String),
    #[error(
        "continue must be the `continue` value of a previous page (a node id): not empty, no NUL"
    )]
    Token,
}

/// The token that resumes after `last_node_id`.
pub fn encode_token(last_node_id: &str) -> String {
    last_node_id.to_owned()
}

/// The node id a token resumes after. Any non-empty string is a position in node id
/// order (the last row served may be one of Amp's, or one a foreign writer stored
/// outside every rule), so only an empty token is refused.
pub fn decode_token(token: &str) -> Result<String, PagingError> {
    // NUL is the one character PostgreSQL text cannot hold: no node id has it.
    if token.is_empty() || token.contains('\0') {
        return Err(PagingError::Token);
    }
    Ok(token.to_owned())
}

pub fn parse_limit(raw: &str) -> Result<i64, PagingError> {
    match raw.parse::<i64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(PagingError::Limit(raw.chars().take(40).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_tokens_are_refused() {
        // Every id Amp accepts is a position (the last row served may be Amp's).
        for id in [
            "a",
            "worker-01",
            "W_1.x",
            &"z".repeat(200),
            "ünicode-wörker",
            "日本",
        ] {
            assert_eq!(decode_token(&encode_token(id)), Ok(id.to_owned()));
        }
        // Outside every rule, yet a position: a foreign writer may have stored such ids.
        for odd in ["1bad", "bad!", "a b", "-x"] {
            assert_eq!(decode_token(odd), Ok(odd.to_owned()));
        }
        assert_eq!(decode_token(""), Err(PagingError::Token));
        assert_eq!(decode_token("a\0b"), Err(PagingError::Token));
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(parse_limit("1"), Ok(1));
        assert_eq!(parse_limit("10000"), Ok(10_000));
        for bad in ["0", "-1", "10001", "ten", "", "1.5"] {
            assert!(parse_limit(bad).is_err(), "{bad}");
        }
    }
}
