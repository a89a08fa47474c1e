//! The first `limit` ids of a stream in sorted order, and how many ids there were: a
//! fleet lists at most [`super::MAX_LISTED_MISMATCHED`] node ids whatever its size, so
//! its tally keeps no more. A bounded max-heap: once full, an id that sorts after the
//! kept ones costs a comparison, not an allocation, and nothing is sorted per cycle
//! but the kept few.

use std::collections::BinaryHeap;

#[derive(Debug, Clone)]
pub(super) struct Smallest {
    limit: usize,
    count: usize,
    /// The `limit` smallest ids so far; the largest of them on top.
    kept: BinaryHeap<String>,
}

impl Smallest {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            count: 0,
            kept: BinaryHeap::with_capacity(limit),
        }
    }

    pub(super) fn push(&mut self, id: &str) {
        self.count += 1;
        if self.kept.len() < self.limit {
            self.kept.push(id.to_owned());
        } else if let Some(mut largest) = self.kept.peek_mut()
            && id < largest.as_str()
        {
            // Reuses the evicted id's buffer; the heap reorders when `largest` drops.
            largest.clear();
            largest.push_str(id);
        }
    }

    /// How many ids were pushed (kept or not).
    pub(super) fn count(&self) -> usize {
        self.count
    }

    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The kept ids, sorted.
    pub(super) fn into_sorted(self) -> Vec<String> {
        self.kept.into_sorted_vec()
    }

    /// The kept ids, sorted (a copy: messages read them before the list is moved out).
    pub(super) fn sorted(&self) -> Vec<String> {
        self.kept.clone().into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::Smallest;

    fn pushed(limit: usize, ids: &[&str]) -> Smallest {
        let mut s = Smallest::new(limit);
        for id in ids {
            s.push(id);
        }
        s
    }

    #[test]
    fn keeps_the_first_ids_in_sorted_order_and_counts_all_of_them() {
        let s = pushed(3, &["w-5", "w-1", "w-9", "w-3", "w-2", "w-7"]);
        assert_eq!(s.count(), 6);
        assert_eq!(s.sorted(), ["w-1", "w-2", "w-3"]);
        assert_eq!(s.into_sorted(), ["w-1", "w-2", "w-3"]);
    }

    /// The same as sorting every id and cutting the list, duplicates included.
    #[test]
    fn equals_sort_then_truncate_for_any_order() {
        let ids: Vec<String> = (0..500u32)
            .map(|i| format!("worker-{:05}", (i * 7919) % 431))
            .collect();
        for limit in [0, 1, 5, 50, 431, 600] {
            let s = pushed(limit, &ids.iter().map(String::as_str).collect::<Vec<_>>());
            let mut all = ids.clone();
            all.sort();
            all.truncate(limit);
            assert_eq!(s.count(), ids.len());
            assert_eq!(s.into_sorted(), all, "limit {limit}");
        }
    }

    #[test]
    fn empty_until_an_id_is_pushed_even_with_nothing_kept() {
        let mut s = Smallest::new(0);
        assert!(s.is_empty());
        s.push("a");
        assert!(!s.is_empty());
        assert_eq!(s.count(), 1);
        assert!(s.into_sorted().is_empty());
    }
}
