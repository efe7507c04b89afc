//! What can go wrong reconciling a TopoServer, and how each failure is retried.

use multigres_runtime::ErrorKind;
use multigres_runtime::error::ReconcileError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("TopoServer {object}: reconcile abandoned after {after:?}")]
    Deadline {
        object: String,
        after: std::time::Duration,
    },
    #[error("TopoServer {object}: applying {kind} {name}: {source}")]
    Apply {
        object: String,
        kind: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("TopoServer {object}: writing status: {source}")]
    Status {
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "TopoServer {object}: {kind} {name} already exists and is controlled by another object; \
         rename or delete it"
    )]
    NameConflict {
        object: String,
        kind: String,
        name: String,
    },
    #[error("TopoServer {object}: the controller's caches did not sync in time")]
    CacheNotReady { object: String },
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Error::Deadline { .. } => "deadline",
            Error::Apply { .. } => "apply",
            Error::Status { .. } => "status",
            Error::NameConflict { .. } => "name_conflict",
            Error::CacheNotReady { .. } => "cache_not_ready",
        }
    }

    fn deadline(object: String, after: std::time::Duration) -> Self {
        Error::Deadline { object, after }
    }
    fn kind(&self) -> ErrorKind {
        match self {
            Error::NameConflict { .. } => ErrorKind::Invalid,
            _ => ErrorKind::Transient,
        }
    }
}
