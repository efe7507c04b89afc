//! What can stop a cluster reconcile, with a metric label and a retry policy per variant.

use multigres_api::resolve::ResolveError;
use multigres_runtime::error::{ErrorKind, ReconcileError};
use multigres_topology::TopoError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{object}: reconcile abandoned after {after:?}")]
    Deadline {
        object: String,
        after: std::time::Duration,
    },
    /// The Kubernetes API failed; retried with backoff.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A referenced template is missing or lacks a section: waits for the template (its watch
    /// wakes the cluster).
    #[error("{object}: {source}")]
    Resolve {
        object: String,
        #[source]
        source: ResolveError,
    },
    /// A child's name is already taken by an object another owner controls.
    #[error("{0}")]
    NameConflict(String),
    /// The caches have not listed everything yet; retried with backoff.
    #[error("the controller's caches have not synced yet")]
    CacheNotReady,
    /// The cluster's certificate could not be issued; retried with backoff.
    #[error("issuing the cluster's TLS certificate: {0}")]
    Tls(String),
    /// The global topology could not be written; retried with backoff.
    #[error("{object}: global topology: {source}")]
    Topology {
        object: String,
        #[source]
        source: TopoError,
    },
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Error::Deadline { .. } => "deadline",
            Error::Kube(_) => "kube_api",
            Error::Resolve {
                source: ResolveError::MissingTemplate { .. },
                ..
            } => "missing_template",
            Error::Resolve {
                source: ResolveError::MissingSection { .. },
                ..
            } => "missing_template_section",
            Error::Resolve { .. } => "invalid_reference",
            Error::NameConflict(_) => "name_conflict",
            Error::Tls(_) => "tls",
            Error::CacheNotReady => "cache_not_ready",
            Error::Topology { source, .. } if source.is_unreachable() => "topology_unreachable",
            Error::Topology { .. } => "topology",
        }
    }

    fn deadline(object: String, after: std::time::Duration) -> Self {
        Error::Deadline { object, after }
    }
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Kube(_)
            | Error::Topology { .. }
            | Error::Deadline { .. }
            | Error::Tls(_)
            | Error::CacheNotReady => ErrorKind::Transient,
            Error::Resolve { .. } | Error::NameConflict(_) => ErrorKind::Invalid,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_templates_wait_and_outages_back_off() {
        let missing = Error::Resolve {
            object: "MultigresCluster ns/a".into(),
            source: ResolveError::MissingTemplate {
                field: "spec.multiadmin.deploymentTemplate".into(),
                template: "t".into(),
            },
        };
        assert_eq!(missing.metric_label(), "missing_template");
        assert_eq!(missing.kind(), ErrorKind::Invalid);
        assert!(missing.to_string().contains("MultigresCluster ns/a"));
        let down = Error::Topology {
            object: "x".into(),
            source: TopoError::Unreachable("refused".into()),
        };
        assert_eq!(down.metric_label(), "topology_unreachable");
        assert_eq!(down.kind(), ErrorKind::Transient);
    }
}
