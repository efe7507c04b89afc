//! `kubectl multigres`: what a MultigresCluster has become, read from the API server.
//!
//! [`tree`] turns the cluster and its children (plain objects) into a [`ClusterTree`] and renders
//! it; [`fetch`] reads them. Both halves are separate so the first is unit-tested on plain data.

pub mod fetch;
pub mod tree;
