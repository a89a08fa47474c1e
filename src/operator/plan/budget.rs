//! The refresh budget: how many heartbeat-only refreshes a cycle may write.

/// A token bucket for heartbeat-only refreshes: `rate` per second, at most `burst`
/// saved up. Time is passed in, so the bucket is as pure as the planner.
#[derive(Debug, Clone)]
pub struct RefreshBudget {
    rate: f64,
    burst: f64,
    tokens: f64,
}

impl RefreshBudget {
    /// A full bucket holding `burst_secs` of budget (at least one write).
    pub fn new(rate: f64, burst_secs: f64) -> Self {
        let rate = if rate.is_finite() { rate.max(0.0) } else { 0.0 };
        let burst = (rate * burst_secs.max(0.0)).max(1.0);
        Self {
            rate,
            burst,
            tokens: rate.min(burst),
        }
    }

    /// Adds what `elapsed` earned and returns how many refreshes may be written now.
    pub fn refill(&mut self, elapsed: std::time::Duration) -> usize {
        self.tokens = (self.tokens + self.rate * elapsed.as_secs_f64()).min(self.burst);
        // Truncation intended: whole writes only; tokens are never negative.
        self.tokens.max(0.0) as usize
    }

    /// Takes `n` refreshes out of the bucket (written or failed: both cost the server).
    pub fn spend(&mut self, n: usize) {
        self.tokens = (self.tokens - n as f64).max(0.0);
    }
}
