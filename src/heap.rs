//! The process heap as jemalloc (`ampd`'s allocator) counts it: what is allocated and
//! what the allocator keeps resident for it. Their difference is the allocator's own
//! slack (partly used pages, freed pages not yet returned), which RSS alone hides.

/// Bytes allocated and bytes resident, as of now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapStats {
    pub allocated: u64,
    pub resident: u64,
}

/// The heap's figures, refreshed (jemalloc caches them until its epoch advances); None
/// when they cannot be read.
pub fn stats() -> Option<HeapStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some(HeapStats {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_shows_in_the_allocated_bytes() {
        use std::alloc::{GlobalAlloc, Layout};
        // Through jemalloc itself: only `ampd` makes it the global allocator.
        let layout = Layout::from_size_align(64 << 20, 4096).expect("layout");
        let before = stats().expect("jemalloc statistics");
        // SAFETY: a non-zero layout; the block is freed below with the same layout.
        let block = unsafe { tikv_jemallocator::Jemalloc.alloc(layout) };
        assert!(!block.is_null());
        let after = stats().expect("jemalloc statistics");
        // SAFETY: allocated above by the same allocator with the same layout.
        unsafe { tikv_jemallocator::Jemalloc.dealloc(block, layout) };
        let freed = stats().expect("jemalloc statistics");
        assert!(
            after.allocated >= before.allocated + (64 << 20),
            "{before:?} -> {after:?}"
        );
        assert!(
            freed.allocated + (64 << 20) <= after.allocated,
            "{after:?} -> {freed:?}"
        );
        assert!(after.resident > 0);
    }
}
