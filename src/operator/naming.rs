//! Node id → Kubernetes object name: stable, always a valid DNS-1123 label, and never the
//! same name for two different node ids.
//!
//! An id that already is a DNS-1123 label keeps its name (StatefulSet pod names do), unless
//! it ends like a mapped name (`-x` + 10 hex digits). Every other id becomes
//! `sanitized-x<first 10 hex of SHA-256(id)>`: the suffix keeps distinct ids apart, and
//! reserving the suffix shape for mapped names keeps them apart from kept names.

use sha2::{Digest, Sha256};

const MAX_LABEL: usize = 63;
const HASH_HEX: usize = 10;
const BODY_MAX: usize = 50;

pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn looks_mapped(s: &str) -> bool {
    match s.rsplit_once("-x") {
        Some((_, tail)) => {
            tail.len() == HASH_HEX
                && tail
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        }
        None => false,
    }
}

/// The AmpWorker name for a node id.
pub fn object_name(node_id: &str) -> String {
    if is_dns1123_label(node_id) && !looks_mapped(node_id) {
        return node_id.to_owned();
    }
    let mut body = String::with_capacity(BODY_MAX);
    for c in node_id.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && body.ends_with('-')) {
            body.push(c);
        }
    }
    let mut body: String = body.trim_matches('-').chars().take(BODY_MAX).collect();
    body = body.trim_end_matches('-').to_owned();
    if body.is_empty() {
        body = "worker".to_owned();
    }
    let digest = Sha256::digest(node_id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{body}-x{}", &hex[..HASH_HEX])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dns_names_are_kept_and_others_mapped() {
        assert_eq!(object_name("worker-01"), "worker-01");
        assert_eq!(object_name("amp-worker-0"), "amp-worker-0");
        let mapped = object_name("Worker_01");
        assert!(
            mapped.starts_with("worker-01-x") && mapped.len() == "worker-01-x".len() + 10,
            "{mapped}"
        );
        assert_ne!(object_name("Worker_01"), object_name("worker_01"));
        assert_ne!(object_name("worker.01"), object_name("worker-01"));
        // An id shaped like a mapped name is itself mapped, so it cannot steal that name.
        assert_ne!(object_name(&mapped), mapped);
        assert_eq!(object_name("Worker_01"), mapped, "stable");
        let long = object_name(&format!("w{}", "a".repeat(127)));
        assert!(is_dns1123_label(&long), "{long}");
    }

    /// Every near-identical variant of one id (all case / separator swaps at each
    /// position, and shared prefixes longer than the kept body) gets its own valid name.
    #[test]
    fn a_family_of_look_alikes_gets_distinct_names() {
        let mut ids = std::collections::BTreeSet::new();
        let base = "Amp_Worker-01.eu";
        for (i, c) in base.char_indices() {
            let alts: &[char] = match c {
                '-' | '_' | '.' => &['-', '_', '.'],
                c if c.is_ascii_alphabetic() => &[c.to_ascii_lowercase(), c.to_ascii_uppercase()],
                _ => &[c],
            };
            for alt in alts {
                if i == 0 && !alt.is_ascii_alphabetic() {
                    continue;
                }
                let mut id = base.to_owned();
                id.replace_range(i..i + 1, &alt.to_string());
                ids.insert(id);
            }
        }
        let long = "a".repeat(BODY_MAX + 20);
        for sep in ["-", "_", "."] {
            for tail in ["x", "X", "y", "1"] {
                ids.insert(format!("{long}{sep}{tail}"));
            }
        }
        ids.insert("amp-worker-01.eu".to_owned());
        ids.insert("amp-worker-01-eu".to_owned());
        let mut names = std::collections::HashMap::new();
        for id in &ids {
            let name = object_name(id);
            assert!(is_dns1123_label(&name), "{id} -> {name}");
            if let Some(prev) = names.insert(name.clone(), id.clone()) {
                panic!("{prev:?} and {id:?} both map to {name}");
            }
        }
        assert!(ids.len() >= 30, "{} ids", ids.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn always_a_valid_label(id in "[a-zA-Z][a-zA-Z0-9_.-]{0,127}") {
            let name = object_name(&id);
            prop_assert!(is_dns1123_label(&name), "{} -> {}", id, name);
        }

        #[test]
        fn distinct_ids_get_distinct_names(a in "[a-zA-Z][a-zA-Z0-9_.-]{0,20}", b in "[a-zA-Z][a-zA-Z0-9_.-]{0,20}") {
            prop_assume!(a != b);
            prop_assert_ne!(object_name(&a), object_name(&b));
        }

        #[test]
        fn near_identical_ids_never_collide(
            base in "[a-zA-Z][a-zA-Z0-9_.-]{0,127}",
            at in any::<proptest::sample::Index>(),
            pick in any::<proptest::sample::Index>(),
        ) {
            // One character swapped for a look-alike that sanitizing would fold onto it:
            // the other case, or another of `-` `_` `.`.
            let chars: Vec<char> = base.chars().collect();
            let i = at.index(chars.len());
            let c = chars[i];
            let swaps = if c.is_ascii_alphabetic() {
                vec![c.to_ascii_uppercase(), c.to_ascii_lowercase()]
            } else {
                vec!['-', '_', '.']
            };
            let candidates: Vec<char> = swaps.into_iter().filter(|s| *s != c && (i > 0 || s.is_ascii_alphabetic())).collect();
            prop_assume!(!candidates.is_empty());
            let mut other = chars.clone();
            other[i] = candidates[pick.index(candidates.len())];
            let other: String = other.into_iter().collect();
            let (a, b) = (object_name(&base), object_name(&other));
            prop_assert!(is_dns1123_label(&a) && is_dns1123_label(&b), "{} -> {}, {} -> {}", base, a, other, b);
            prop_assert_ne!(&a, &b, "{:?} and {:?}", base, other);
        }

        #[test]
        fn long_shared_prefixes_never_collide(
            prefix in "[a-zA-Z][a-zA-Z0-9_.-]{60,100}",
            a in "[a-zA-Z0-9_.-]{1,20}",
            b in "[a-zA-Z0-9_.-]{1,20}",
        ) {
            // Everything past BODY_MAX is cut from the readable part; only the hash tells
            // these apart.
            prop_assume!(a != b);
            let (x, y) = (format!("{prefix}{a}"), format!("{prefix}{b}"));
            let (nx, ny) = (object_name(&x), object_name(&y));
            prop_assert!(is_dns1123_label(&nx) && is_dns1123_label(&ny), "{} {}", nx, ny);
            prop_assert_ne!(nx, ny, "{:?} and {:?}", x, y);
        }

        #[test]
        fn mapped_looking_ids_never_collide(body in "[a-z][a-z0-9-]{0,10}[a-z0-9]", hex in "[0-9a-f]{10}", other in "[a-zA-Z][a-zA-Z0-9_.]{0,12}") {
            let tricky = format!("{body}-x{hex}");
            prop_assume!(tricky != other);
            prop_assert_ne!(object_name(&tricky), object_name(&other));
        }
    }
}
