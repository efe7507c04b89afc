//! The status aggregation service of the Multigres operator.
//!
//! * [`aggregate`]: the pure computation of a `MultigresClusterStatus` from a cluster, its
//!   children, the topology and the controllers' health.
//! * [`engine`]: the watch caches, the topology and health pollers, and the recompute loop that
//!   feeds the [`server::Hub`].
//! * [`server`]: the `multigres.operator.v1.StatusAggregator` gRPC service.
//! * [`client`]: what the cluster controller uses to subscribe ([`client::StatusSubscription`]).
//! * [`sim`]: the data-plane simulator used under kwok (a test double, never deployed for real).

pub mod aggregate;
pub mod client;
pub mod convert;
pub mod engine;
pub mod health;
pub mod server;
pub mod sim;
pub mod testing;
pub mod topology;

/// Generated `multigres.operator.v1` messages, client and server.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("multigres.operator.v1");
}

pub use aggregate::{ClusterInputs, ControllerHealth, ShardId, TopologyObservation, aggregate};

pub use client::{ClientTls, StatusEvent, StatusSubscription};
pub use server::{ClusterKey, Hub, Snapshot};
