//! Whether a status difference is only a fill: the stored status lacks something a newer
//! operator writes (an optional field, a sub-field, a condition in its normal state),
//! while nothing a user sees changed. After an upgrade that adds status fields every
//! stored status differs so; writing them all at once was ~10,000 writes in one cycle
//! at 10,000 workers, so fills wait for the refresh budget like heartbeat refreshes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::Value;

use super::super::crd::AmpWorkerStatus;
use super::{ConditionStatus, condition_status};

/// Fields whose first appearance a user sees (STATUS, the version, EXPECTED, a restart
/// by the operator) or that a first read of the worker's row brings: never a fill, even
/// when absent before.
const SHOWN_WHEN_ADDED: &[&str] = &[
    "state",
    "info",
    "expectedVersion",
    "restartCount",
    "lastRemediationTime",
    "remediationCount",
];

/// Conditions whose normal state is False (True is their alarm); every other condition
/// is normal when True. A condition added in another state is a transition.
const NORMAL_WHEN_FALSE: &[&str] = &["JobsStranded"];

/// True when `desired` is `stored` with only absent parts added: every field `stored`
/// has is unchanged in `desired` (but `heartbeatAt`, judged as a refresh), every
/// condition `stored` has is unchanged, and every condition `desired` adds is in its
/// normal state. An identical status is not a fill (there is nothing to write).
pub fn only_fills(stored: &AmpWorkerStatus, desired: &AmpWorkerStatus) -> bool {
    let mut stored = stored.clone();
    stored.heartbeat_at = desired.heartbeat_at;
    // A status without conditions was never judged: its first judgement is a transition.
    if stored == *desired
        || stored.conditions.is_empty()
        || !conditions_only_added(&stored.conditions, &desired.conditions)
    {
        return false;
    }
    let (Ok(mut old), Ok(mut new)) = (serde_json::to_value(&stored), serde_json::to_value(desired))
    else {
        return false;
    };
    for v in [&mut old, &mut new] {
        if let Some(fields) = v.as_object_mut() {
            fields.remove("conditions");
        }
    }
    let shown_added = SHOWN_WHEN_ADDED
        .iter()
        .any(|k| old.get(k).is_none() && new.get(k).is_some());
    !shown_added && only_added(&old, &new)
}

/// Every stored condition is in `desired` unchanged, and each one `desired` adds is in
/// its normal state.
fn conditions_only_added(stored: &[Condition], desired: &[Condition]) -> bool {
    let kept = stored
        .iter()
        .all(|s| desired.iter().any(|d| d.type_ == s.type_ && d == s));
    let added_normal = desired
        .iter()
        .filter(|d| !stored.iter().any(|s| s.type_ == d.type_))
        .all(|d| condition_status(std::slice::from_ref(d), &d.type_) == Some(normal(&d.type_)));
    kept && added_normal
}

fn normal(type_: &str) -> ConditionStatus {
    if NORMAL_WHEN_FALSE.contains(&type_) {
        ConditionStatus::False
    } else {
        ConditionStatus::True
    }
}

/// `new` is `old` with keys added (at any depth of objects); anything else (scalars,
/// arrays: an element's place says nothing of its identity) equal.
fn only_added(old: &Value, new: &Value) -> bool {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => old
            .iter()
            .all(|(k, v)| new.get(k).is_some_and(|n| only_added(v, n))),
        _ => old == new,
    }
}

#[cfg(test)]
mod tests;
