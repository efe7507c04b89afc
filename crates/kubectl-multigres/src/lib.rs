//! `kubectl multigres`: what a MultigresCluster has become, read from the API server, a safe
//! rolling restart of its Postgres pods ([`restart`]), a planned switchover of a Shard's primary
//! ([`switchover`]), a psql session through a gateway ([`psql`]), a Backup ([`backup`]) and a
//! support bundle ([`report`]).
//!
//! [`tree`] turns the cluster and its children (plain objects) into a [`ClusterTree`] and renders
//! it; [`fetch`] reads them. Both halves are separate so the first is unit-tested on plain data.

pub mod backup;
pub mod fetch;
pub mod forward;
pub mod psql;
pub mod replication;
pub mod report;
pub mod restart;
pub mod switchover;
pub mod tree;
