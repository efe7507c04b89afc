//! The error policy every controller shares: an invalid object waits for its owner to change it (its
//! watch wakes the controller), a transient failure backs off per object, exponentially and capped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::controller::Action;

/// What a controller's error means for retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object (or what it references) must change first; retried slowly as a backstop.
    Invalid,
    /// The API server or a dependency failed; retried with backoff.
    Transient,
}

/// Implemented by every controller's error enum.
pub trait ReconcileError: std::error::Error {
    /// A short, stable label for metrics (`missing_template`, `kube_api`, ...).
    fn metric_label(&self) -> &'static str;
    fn kind(&self) -> ErrorKind;
    /// The error of a reconcile of `object` abandoned after `after` (see
    /// [`crate::run::within_deadline`]).
    fn deadline(object: String, after: std::time::Duration) -> Self
    where
        Self: Sized;
}

/// Per-object failure counts, reset on success.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

const BASE: Duration = Duration::from_millis(500);
const CAP: Duration = Duration::from_secs(300);
const INVALID_RECHECK: Duration = Duration::from_secs(600);

impl Backoff {
    /// Records one more failure of `key` and returns how long to wait.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(key.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        let exponent = (*count - 1).min(16);
        BASE.saturating_mul(2u32.saturating_pow(exponent)).min(CAP)
    }

    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// The requeue for an error of `kind` on object `key`.
pub fn backoff_policy(backoff: &Backoff, key: &str, kind: ErrorKind) -> Action {
    match kind {
        ErrorKind::Invalid => Action::requeue(INVALID_RECHECK),
        ErrorKind::Transient => Action::requeue(backoff.next_delay(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let backoff = Backoff::default();
        assert_eq!(backoff.next_delay("a"), Duration::from_millis(500));
        assert_eq!(backoff.next_delay("a"), Duration::from_secs(1));
        assert_eq!(backoff.next_delay("b"), Duration::from_millis(500));
        for _ in 0..30 {
            backoff.next_delay("a");
        }
        assert_eq!(backoff.next_delay("a"), CAP);
        backoff.reset("a");
        assert_eq!(backoff.next_delay("a"), Duration::from_millis(500));
    }
}
