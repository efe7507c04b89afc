//! The status aggregator's gRPC API (`multigres.operator.v1.StatusAggregator`): the generated
//! messages, the lossless conversion to and from `MultigresClusterStatus`, and the client the
//! cluster controller subscribes with. The service itself is `multigres-status-aggregator`.

pub mod client;
pub mod convert;

/// Generated `multigres.operator.v1` messages, client and server.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("multigres.operator.v1");
}

pub use client::{ClientTls, StatusEvent, StatusSubscription};
