//! Sharing equal values between the many objects that carry them.

use std::sync::Arc;

/// Values many objects carry alike (label maps, a Pod's controller, a fleet's build
/// info), so that equal ones are one allocation. Bounded: a value unlike the last [`Shared::KEPT`]
/// distinct ones is kept on its own.
#[derive(Debug)]
pub struct Shared<T> {
    recent: Vec<Arc<T>>,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Self { recent: Vec::new() }
    }
}

impl<T: PartialEq> Shared<T> {
    /// How many distinct values are looked at: discovered workers carry one label map,
    /// a user's workers a few more; a value seen nowhere else costs a compare per object.
    pub const KEPT: usize = 8;

    /// `value`, or an equal one already shared.
    pub fn share(&mut self, value: T) -> Arc<T> {
        if let Some(at) = self.recent.iter().position(|v| **v == value) {
            // Most recent first: one compare for a fleet whose objects all look alike.
            self.recent[..=at].rotate_right(1);
            return self.recent[0].clone();
        }
        let shared = Arc::new(value);
        self.recent.truncate(Self::KEPT - 1);
        self.recent.insert(0, shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::Shared;

    #[test]
    fn shared_values_are_a_bounded_number_most_recent_first() {
        let map = |i: usize| BTreeMap::from([("k".to_owned(), i.to_string())]);
        let mut labels = Shared::default();
        let first = labels.share(map(0));
        for i in 1..Shared::<BTreeMap<String, String>>::KEPT {
            labels.share(map(i));
        }
        // Still among the kept ones: shared, and now the most recent.
        assert!(Arc::ptr_eq(&labels.share(map(0)), &first));
        assert!(Arc::ptr_eq(&labels.recent[0], &first));
        // KEPT new maps push it out: an equal map is then a new allocation.
        for i in 100..100 + Shared::<BTreeMap<String, String>>::KEPT {
            labels.share(map(i));
        }
        assert_eq!(
            labels.recent.len(),
            Shared::<BTreeMap<String, String>>::KEPT
        );
        assert!(!Arc::ptr_eq(&labels.share(map(0)), &first));
    }
}
