//! Property tests for node-id validation: the accepted set is exactly the documented
//! pattern with a length bound, whatever the input.

use amp_operator::node_id::{MAX_LEN, NodeId};
use proptest::prelude::*;

fn matches_doc_pattern(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_strings_are_accepted_iff_they_match(s in any::<String>()) {
        let expected = matches_doc_pattern(&s) && s.chars().count() <= MAX_LEN;
        prop_assert_eq!(NodeId::parse(&s).is_ok(), expected, "{:?}", s);
    }

    #[test]
    fn valid_shapes_round_trip(s in "[a-zA-Z][a-zA-Z0-9_.-]{0,127}") {
        let id = NodeId::parse(&s).unwrap();
        prop_assert_eq!(id.as_str(), s.as_str());
        let json = serde_json::to_string(&id).unwrap();
        prop_assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), id);
    }

    #[test]
    fn near_misses_are_refused(prefix in "[0-9_.-]", rest in "[a-zA-Z0-9]{0,20}", bad in "[ /:@#\u{e9}\u{1F600}]") {
        let leading = format!("{prefix}{rest}");
        prop_assert!(NodeId::parse(&leading).is_err());
        let inner = format!("w{rest}{bad}{rest}");
        prop_assert!(NodeId::parse(&inner).is_err());
    }

    #[test]
    fn lock_keys_differ_for_distinct_ids(a in "[a-z][a-z0-9-]{0,30}", b in "[a-z][a-z0-9-]{0,30}") {
        prop_assume!(a != b);
        prop_assert_ne!(NodeId::parse(&a).unwrap().advisory_lock_key(), NodeId::parse(&b).unwrap().advisory_lock_key());
    }
}
