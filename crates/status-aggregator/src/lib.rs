//! The status aggregation service of the Multigres operator.
//!
//! * [`aggregate`]: the pure computation of a `MultigresClusterStatus` from a cluster, its
//!   children, the topology and the controllers' health.
//! * [`engine`]: the watch caches, the topology and health pollers, and the recompute loop that
//!   feeds the [`server::Hub`].
//! * [`server`]: the `multigres.operator.v1.StatusAggregator` gRPC service (the API and its client
//!   are in `multigres-status-api`).

pub mod aggregate;
pub mod engine;
pub mod health;
pub mod server;
pub mod topology;

pub use multigres_status_api::{convert, proto};

pub use aggregate::{ClusterInputs, ControllerHealth, ShardId, TopologyObservation, aggregate};
pub use server::{ClusterKey, Hub, Snapshot};
