//! The Multigres topology records the operator reads and writes in etcd.
//!
//! * [`keys`]: where each record lives (mirrors multigres' `path.Join` layout).
//! * [`pb`]: the `clustermetadata` protobuf types, generated from
//!   `proto/multigres/clustermetadata.proto` (written here to the pinned Multigres wire format).
//! * [`shard_primary`]: a shard's primary from its Pooler records, failing closed on conflicts.
//! * [`TopoClient`]: compare-and-swap reads and writes over etcd, plus typed helpers for cells,
//!   databases and multipooler records.
//! * [`AddressMapping`]: optional dial-time rewriting of topology addresses (tests, demo).
//! * [`admin`]: multiadmin's planned switchover (`SwitchPrimary`), the one admin call the operator
//!   makes.

pub mod admin;
mod allowed;
mod client;
mod dialer;
pub mod keys;
mod mapping;
mod ownership;
mod primary;
mod records;
mod watch;

pub use allowed::AllowedHosts;
pub use client::{ClientTls, DEFAULT_TIMEOUT, RawEntry, TopoClient, WriteOutcome, server_name};
pub use dialer::{ClientIdentities, Dialer, Transport};
pub use keys::{Location, cell_key, cell_root_on_global, database_key, pooler_key, poolers_prefix};
pub use mapping::AddressMapping;
pub use ownership::{Claim, database_owner_key};
pub use primary::{
    PoolerRole, ShardPrimary, is_serving, is_serving_primary, of_shard, pooler_lifecycle,
    pooler_role, shard_primary,
};
pub use records::{LivePoolers, PoolerRecord, validate_cell, validate_database, validate_pooler};
pub use watch::{IDLE_AFTER, PoolerChange, PoolerWatches, WatchKey};

/// Generated `clustermetadata` protobuf types (package `clustermetadata` upstream).
pub mod pb {
    #![allow(missing_docs, deprecated, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/clustermetadata.rs"));
}

pub use pb::{
    BackupLocation, Cell, Database, DurabilityPolicy, FilesystemBackup, Id, KeyRange, MultiPooler,
    PoolerLifecycle, PoolerLifecycleStatus, PoolerServingStatus, PoolerType, QuorumType,
    RoutingRole, RoutingState, RuleNumber, S3Backup, ShardKey,
};

/// The path the generated `multiadmin` code names the `clustermetadata` types by.
mod clustermetadata {
    pub use crate::pb::*;
}

/// Generated `multiadmin` switchover API (package `multiadmin` upstream; only `SwitchPrimary`).
pub mod admin_pb {
    #![allow(missing_docs, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/multiadmin.rs"));
}

/// The protobuf well-known types the records use (`PoolerLifecycle.updated` is a `Timestamp`).
pub use prost_types;

/// Errors from topology operations, split so callers can choose a reaction: back off and retry
/// on [`TopoError::Unreachable`], re-read on [`TopoError::Conflict`], surface the rest.
#[derive(Debug, thiserror::Error)]
pub enum TopoError {
    /// The topology server could not be reached or did not answer within the timeout.
    #[error("topology server unreachable: {0}")]
    Unreachable(String),
    /// The key kept changing underneath a compare-and-swap (after retries, where applicable).
    #[error("concurrent modification of {key}")]
    Conflict {
        /// The contested key.
        key: String,
    },
    /// A stored value is not a valid protobuf of the expected type.
    #[error("cannot decode {key}: {source}")]
    Decode {
        /// The key whose value failed to decode.
        key: String,
        /// The protobuf error.
        #[source]
        source: prost::DecodeError,
    },
    /// The request itself is wrong (bad name, missing field, bad address); retrying won't help.
    #[error("invalid topology request: {0}")]
    Invalid(String),
    /// The address names a host outside the operator's allow-list (`--topology-allowed-hosts`).
    #[error("{0}")]
    NotAllowed(String),
    /// The server answered with an error that is neither of the above.
    #[error("topology server error: {0}")]
    Server(String),
}

impl TopoError {
    /// True for errors worth retrying later with backoff.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable(_))
    }
}

/// Result alias for this crate.
pub type Result<T, E = TopoError> = std::result::Result<T, E>;
