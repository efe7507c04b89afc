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

/// The error of every controller whose work is applying children (topo, cell, tablegroup, shard):
/// the object reconciled (`Kind namespace/name`) and what failed, with a fixed metric label per kind
/// of failure.
#[derive(Debug, thiserror::Error)]
#[error("{object}: {failure}")]
pub struct ChildError {
    pub object: String,
    pub failure: Failure,
}

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("reconcile abandoned after {0:?}")]
    Deadline(Duration),
    #[error("the controller's caches did not sync in time")]
    CacheNotReady,
    #[error(
        "{kind} {name} already exists and is controlled by another object; rename or delete it"
    )]
    NameConflict { kind: String, name: String },
    /// A child the API server refused, or another request that failed.
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("writing status: {0}")]
    Status(#[source] Box<kube::Error>),
    /// The object asks for what cannot be built; it must change first.
    #[error("{0}")]
    Invalid(String),
    /// The topology server could not be reached or refused a write.
    #[error("topology: {0}")]
    Topology(String),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("{0}")]
    Tls(String),
}

impl ChildError {
    /// `failure` while reconciling `object`.
    pub fn new<K: kube::Resource<DynamicType = ()>>(object: &K, failure: Failure) -> Self {
        Self {
            object: object_name(object),
            failure,
        }
    }

    /// A failed request (`action`, such as `applying Service x`) while reconciling `object`.
    pub fn kube<K: kube::Resource<DynamicType = ()>>(
        object: &K,
        action: impl Into<String>,
        source: kube::Error,
    ) -> Self {
        Self::new(
            object,
            Failure::Kube {
                action: action.into(),
                source: Box::new(source),
            },
        )
    }
}

/// `Kind namespace/name`, how errors and logs name an object.
pub fn object_name<K: kube::Resource<DynamicType = ()>>(object: &K) -> String {
    format!("{} {}", K::kind(&()), crate::run::object_key(object))
}

impl ReconcileError for ChildError {
    fn metric_label(&self) -> &'static str {
        match self.failure {
            Failure::Deadline(_) => "deadline",
            Failure::CacheNotReady => "cache_not_ready",
            Failure::NameConflict { .. } => "name_conflict",
            Failure::Kube { .. } => "kube_api",
            Failure::Status(_) => "status",
            Failure::Invalid(_) => "invalid",
            Failure::Topology(_) => "topology",
            Failure::Finalizer(_) => "finalizer",
            Failure::Tls(_) => "tls",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self.failure {
            Failure::NameConflict { .. } | Failure::Invalid(_) => ErrorKind::Invalid,
            _ => ErrorKind::Transient,
        }
    }

    fn deadline(object: String, after: Duration) -> Self {
        Self {
            object,
            failure: Failure::Deadline(after),
        }
    }
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
