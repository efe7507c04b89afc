//! The cluster-controller: turns a MultigresCluster into its read-only children (global TopoServer,
//! Cells, TableGroups, the multiadmin Deployment and Service, a credentials Secret), registers its
//! databases in the global topology, and keeps every DeploymentTemplate's consumers exact.
//!
//! Read in reconcile order: [`dereference`], [`build`] (after `multigres_api::resolve`), [`apply`],
//! [`status`]; [`templates`] is the DeploymentTemplate lifecycle; [`aggregator`] writes status from
//! the status aggregator; [`controller`] wires it together.

pub mod aggregator;
pub mod apply;
pub mod build;
pub mod controller;
pub mod dereference;
pub mod error;
pub mod retention;
pub mod status;
pub mod templates;

pub use controller::{Args, run};
