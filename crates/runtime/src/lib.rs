//! Controller plumbing shared by every Multigres controller binary. It knows nothing about Multigres:
//! controllers bring their domain, this crate brings apply, status, conditions, events, metrics,
//! health, telemetry, leader election and partitioning, each in one place.

pub mod alloc;
pub mod apply;
pub mod builders;
pub mod caches;
pub mod client;
pub mod conditions;
pub mod crds;
pub mod error;
pub mod events;
pub mod health;
pub mod index;
pub mod leader;
pub mod liveness;
pub mod metrics;
pub mod once;
pub mod partition;
pub mod pki;
pub mod pods;
pub mod run;
pub mod settings;
pub mod slots;
pub mod status_pace;
pub mod subset;
pub mod telemetry;
pub mod topology_tls;
pub mod volumes;

pub use apply::{Applier, ApplyOutcome};
pub use error::{ErrorKind, backoff_policy};
pub use run::Context;
pub use settings::CommonArgs;
