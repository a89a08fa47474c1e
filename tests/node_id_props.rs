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
        prop_assert_ne!(NodeId::parse(&a).unwrap().legacy_advisory_lock_key(), NodeId::parse(&b).unwrap().legacy_advisory_lock_key());
    }
}

/// The documented pattern without its anchors (proptest's regex strategies generate
/// from the pattern's body) and with `*` bounded past the length limit, so generated
/// ids cross it.
fn documented_body(max_tail: usize) -> String {
    let body = amp_operator::node_id::PATTERN
        .trim_start_matches('^')
        .trim_end_matches('$');
    let bounded = body.replacen('*', &format!("{{0,{max_tail}}}"), 1);
    assert_ne!(
        bounded, body,
        "the documented pattern ends in a `*` repetition"
    );
    bounded
}

/// Characters allowed after the first one, per the documented pattern.
const TAIL_CLASS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.";

fn from_documented_pattern() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&documented_body(150)).expect("pattern compiles for proptest")
}

fn tail_chars(len: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(TAIL_CLASS.chars().collect::<Vec<_>>()),
        len,
    )
    .prop_map(|v| v.into_iter().collect())
}

#[test]
fn the_generator_covers_the_whole_documented_class() {
    // A generator that never produced `.` or `_` would make the properties below toothless.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = from_documented_pattern();
    let mut seen = std::collections::BTreeSet::new();
    let mut longest = 0;
    for _ in 0..2000 {
        let id = strategy.new_tree(&mut runner).unwrap().current();
        longest = longest.max(id.chars().count());
        seen.extend(id.chars());
    }
    for c in TAIL_CLASS.chars() {
        assert!(seen.contains(&c), "{c:?} never generated");
    }
    assert!(
        longest > MAX_LEN,
        "lengths past the limit generated (longest {longest})"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn documented_pattern_ids_are_accepted_up_to_the_limit(id in from_documented_pattern()) {
        let len = id.chars().count();
        match NodeId::parse(&id) {
            Ok(parsed) => {
                prop_assert!(len <= MAX_LEN, "{} chars accepted", len);
                prop_assert_eq!(parsed.as_str(), id.as_str());
            }
            Err(err) => {
                prop_assert!(len > MAX_LEN, "{:?} refused: {}", id, err);
                prop_assert_eq!(err, amp_operator::node_id::InvalidNodeId::TooLong { len });
            }
        }
    }

    #[test]
    fn lengths_127_128_129_at_the_boundary(
        first in "[a-zA-Z]",
        tail in proptest::sample::select(vec![126usize, 127, 128]).prop_flat_map(tail_chars),
    ) {
        let id = format!("{first}{tail}");
        let len = id.chars().count();
        prop_assert!([127, 128, 129].contains(&len));
        prop_assert_eq!(NodeId::parse(&id).is_ok(), len <= MAX_LEN, "{} chars", len);
    }

    #[test]
    fn near_valid_ids_are_refused(
        id in from_documented_pattern().prop_filter("within the limit", |s| s.chars().count() < MAX_LEN),
        lead in "[0-9_.-]",
        bad in any::<char>().prop_filter("outside the class", |c| !TAIL_CLASS.contains(*c)),
        at in any::<proptest::sample::Index>(),
    ) {
        use amp_operator::node_id::InvalidNodeId;
        // A leading digit (or '_', '-', '.') instead of the letter.
        let leading = format!("{lead}{}", &id[1..]);
        prop_assert!(matches!(NodeId::parse(&leading), Err(InvalidNodeId::Pattern { .. })), "{:?}", leading);
        // One bad character anywhere (ids are ASCII, so any index is a char boundary).
        let pos = at.index(id.len() + 1);
        let mut one_bad = id.clone();
        one_bad.insert(pos, bad);
        let refused = NodeId::parse(&one_bad);
        prop_assert!(refused.is_err(), "{:?} accepted", one_bad);
        prop_assert!(NodeId::parse("").is_err());
    }
}

#[test]
fn the_empty_id_is_refused_as_empty() {
    assert_eq!(
        NodeId::parse(""),
        Err(amp_operator::node_id::InvalidNodeId::Empty)
    );
}
