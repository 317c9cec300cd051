//! health: whether exports can succeed now, as `/ready` tells load balancers and orchestrators (a leaf).
//!
//! Contract: the sink reports each delivery. A destination that refuses us for good (the table changed into
//! something we must not write) makes the collector unready until it restarts; a failed delivery makes it
//! unready for [`FAILURE_HOLD`] unless a later delivery succeeds first, so a collector that receives no traffic
//! while unready becomes ready again by itself and is tried again. `/health` (alive) never depends on this.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a failed delivery keeps the collector unready, unless one succeeds meanwhile.
pub(crate) const FAILURE_HOLD: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    refused: Option<String>,
    failed: Option<(Instant, String)>,
}

/// Shared readiness: the sink writes it, the receiver's `/ready` reads it.
#[derive(Clone, Default)]
pub(crate) struct Readiness(Arc<Mutex<State>>);

impl Readiness {
    /// The destination refuses every later write: unready until restart.
    pub(crate) fn refused(&self, reason: impl std::fmt::Display) {
        self.update(|s| s.refused = Some(reason.to_string()));
    }

    /// A delivery failed: unready for a while.
    pub(crate) fn failed(&self, reason: impl std::fmt::Display) {
        self.update(|s| s.failed = Some((Instant::now(), reason.to_string())));
    }

    /// A delivery succeeded.
    pub(crate) fn succeeded(&self) {
        self.update(|s| s.failed = None);
    }

    /// `Err(reason)` while exports cannot succeed.
    pub(crate) fn check(&self) -> Result<(), String> {
        // A poisoned lock means a panic while updating two fields: the state is still one of the two values.
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reason) = &state.refused {
            return Err(format!("the destination refuses writes: {reason}"));
        }
        match &state.failed {
            Some((at, reason)) if at.elapsed() < FAILURE_HOLD => Err(format!("the last delivery failed: {reason}")),
            _ => Ok(()),
        }
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_hold_until_a_success_and_refusals_until_restart() {
        let health = Readiness::default();
        assert!(health.check().is_ok());
        health.failed("store down");
        assert!(health.check().unwrap_err().contains("store down"));
        health.succeeded();
        assert!(health.check().is_ok());
        health.refused("a column was added");
        health.succeeded();
        assert!(health.check().unwrap_err().contains("a column was added"));
    }
}
