//! `kubectl multigres`: what a MultigresCluster has become, read from the API server, and a safe
//! rolling restart of its Postgres pods ([`restart`]).
//!
//! [`tree`] turns the cluster and its children (plain objects) into a [`ClusterTree`] and renders
//! it; [`fetch`] reads them. Both halves are separate so the first is unit-tested on plain data.

pub mod fetch;
pub mod restart;
pub mod tree;
