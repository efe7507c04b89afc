//! What can go wrong reconciling a Cell, and how each failure is retried.

use multigres_runtime::ErrorKind;
use multigres_runtime::error::ReconcileError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Cell {object}: reconcile abandoned after {after:?}")]
    Deadline {
        object: String,
        after: std::time::Duration,
    },
    #[error("Cell {object}: {message}")]
    Invalid { object: String, message: String },
    #[error("Cell {object}: applying {kind} {name}: {source}")]
    Apply {
        object: String,
        kind: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "Cell {object}: {kind} {name} already exists and is controlled by another object; \
         rename or delete it"
    )]
    NameConflict {
        object: String,
        kind: String,
        name: String,
    },
    #[error("Cell {object}: writing status: {source}")]
    Status {
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("Cell {object}: the controller's caches did not sync in time")]
    CacheNotReady { object: String },
    /// The topology server could not be reached or refused the write; retried with backoff.
    #[error("Cell {object}: topology: {message}")]
    Topology { object: String, message: String },
    #[error("Cell {object}: finalizer {message}")]
    Finalizer { object: String, message: String },
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Error::Deadline { .. } => "deadline",
            Error::Invalid { .. } => "invalid",
            Error::Apply { .. } => "apply",
            Error::NameConflict { .. } => "name_conflict",
            Error::Status { .. } => "status",
            Error::CacheNotReady { .. } => "cache_not_ready",
            Error::Topology { .. } => "topology",
            Error::Finalizer { .. } => "finalizer",
        }
    }

    fn deadline(object: String, after: std::time::Duration) -> Self {
        Error::Deadline { object, after }
    }
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } | Error::NameConflict { .. } => ErrorKind::Invalid,
            _ => ErrorKind::Transient,
        }
    }
}
