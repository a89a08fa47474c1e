//! Capped exponential backoff: the worker's reconnects (with per-worker jitter so a fleet
//! that lost its database does not reconnect in lockstep) and the operator's retries of
//! failed Kubernetes writes (without jitter).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    seed: u64,
    attempt: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self::with_jitter_seed(initial, max, 0)
    }

    /// `seed` (e.g. the node id's lock key) spreads delays within ±20% across workers.
    pub fn with_jitter_seed(initial: Duration, max: Duration, seed: u64) -> Self {
        Self {
            initial,
            max,
            next: initial,
            seed,
            attempt: 0,
        }
    }

    /// The cap of every delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The delay to wait now (never above the cap); doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        self.attempt += 1;
        if self.seed == 0 {
            return base;
        }
        // splitmix64 of (seed, attempt): cheap, deterministic, well spread.
        let mut z = self
            .seed
            .wrapping_add(self.attempt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let factor = 0.8 + 0.4 * (z % 1_000) as f64 / 1_000.0;
        base.mul_f64(factor).min(self.max)
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(2));
        let got: Vec<_> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [250, 500, 1000, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(250));
    }

    #[test]
    fn jitter_stays_within_bounds_and_differs_between_workers() {
        let max = Duration::from_secs(3);
        let mut a = Backoff::with_jitter_seed(Duration::from_millis(250), max, 42);
        let mut b = Backoff::with_jitter_seed(Duration::from_millis(250), max, 4242);
        let da: Vec<_> = (0..8).map(|_| a.next_delay()).collect();
        let db: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        assert_ne!(da, db);
        for (i, d) in da.iter().chain(&db).enumerate() {
            let base = Duration::from_millis(250 * (1 << (i % 8).min(4))).min(max);
            assert!(
                *d >= base.mul_f64(0.8) && *d <= max,
                "attempt {i}: {d:?} vs base {base:?}"
            );
        }
    }
}
