//! Liveness that means something: `/healthz` fails when a reconcile has run far longer than any
//! reconcile should, or when a watch has failed without a break for that long. Either way the
//! process is wedged (a stuck await, a watch that never reconnects), and a restart is the cure.
//! One per process: reconcile timers and watches report here without being handed anything.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a reconcile or a watch's failure streak may last before the process counts as wedged.
/// Reconciles have deadlines well under this; watches back off to at most a few seconds.
pub const STUCK_AFTER: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct Liveness {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    reconciles: BTreeMap<u64, Instant>,
    /// Per watched kind: when its current streak of errors began (absent while it works).
    failing_watches: BTreeMap<String, Instant>,
}

/// The process's liveness.
pub fn liveness() -> &'static Liveness {
    static LIVENESS: OnceLock<Liveness> = OnceLock::new();
    LIVENESS.get_or_init(Liveness::default)
}

impl Liveness {
    /// Records a reconcile start; pass the id to [`Liveness::reconcile_ended`].
    pub fn reconcile_started(&self, at: Instant) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.next_id += 1;
        let id = state.next_id;
        state.reconciles.insert(id, at);
        id
    }

    pub fn reconcile_ended(&self, id: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.reconciles.remove(&id);
    }

    /// A watch of `kind` delivered an event (`ok`) or an error.
    pub fn watch_result(&self, kind: &str, ok: bool, at: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            state.failing_watches.remove(kind);
        } else {
            state.failing_watches.entry(kind.to_string()).or_insert(at);
        }
    }

    /// `Err` naming what is wedged at `now`, when something is.
    pub fn check(&self, now: Instant, stuck_after: Duration) -> Result<(), String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let too_old = |since: &Instant| now.saturating_duration_since(*since) > stuck_after;
        if let Some(started) = state.reconciles.values().find(|s| too_old(s)) {
            return Err(format!(
                "a reconcile has run for {}s",
                now.saturating_duration_since(*started).as_secs()
            ));
        }
        if let Some((kind, since)) = state.failing_watches.iter().find(|(_, s)| too_old(s)) {
            return Err(format!(
                "the {kind} watch has failed for {}s",
                now.saturating_duration_since(*since).as_secs()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_reconcile_or_a_long_watch_failure_is_wedged_and_recovers() {
        let live = Liveness::default();
        let t0 = Instant::now();
        let later = |s| t0 + Duration::from_secs(s);
        let stuck = Duration::from_secs(300);
        assert!(live.check(t0, stuck).is_ok());

        let id = live.reconcile_started(t0);
        assert!(live.check(later(299), stuck).is_ok());
        let err = live.check(later(301), stuck).unwrap_err();
        assert!(err.contains("reconcile has run for 301s"), "{err}");
        live.reconcile_ended(id);
        assert!(live.check(later(301), stuck).is_ok());

        live.watch_result("Pod", false, later(10));
        live.watch_result("Pod", false, later(200)); // the streak keeps its start
        assert!(live.check(later(309), stuck).is_ok());
        assert!(
            live.check(later(311), stuck)
                .unwrap_err()
                .contains("Pod watch")
        );
        live.watch_result("Pod", true, later(312));
        assert!(live.check(later(400), stuck).is_ok());
    }
}
