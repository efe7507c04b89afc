//! What a Cell becomes: pure functions from the Cell to the exact child objects and topology record.
//!
//! * multigateway Deployment and Service (`<cell>-gateway`: Postgres 5432, gRPC 15991, HTTP 15001);
//! * multiorch Deployment (`<cell>-multiorch`, `--watch-targets` = the databases the cell serves; scaled
//!   to 0 while the cell serves none, since multiorch refuses to start without targets);
//! * the local TopoServer, when the Cell asks for a managed one;
//! * the `clustermetadata.Cell` record the cell registers in the global topology.

mod budgets;
mod deployments;
mod service;
mod topo_server;
mod topology;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    Service, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use multigres_api::labels::{self, component};
use multigres_api::{
    Cell, GatewayExposure, ResolvedComponent, TopoServer, TopoServerSpec, multigres, naming,
    resolve,
};
use multigres_runtime::apply::child_meta;
use multigres_runtime::builders::{
    container_port, downward_env, http_probe, preferred_spread,
    restricted_container_security_context, restricted_pod_security_context,
};
use multigres_runtime::error::{ChildError, Failure};
use multigres_topology::pb;

pub use budgets::{gateway_pdb, multiorch_pdb};
pub use deployments::{
    gateway, gateway_args, multiorch, multiorch_args, multiorch_replicas, watch_targets,
};
pub use service::gateway_service;
pub use topo_server::local_topo_server;
pub use topology::{CellTopology, TopologyKind, topology};

pub use multigres::{
    GATEWAY_GRPC_PORT, GATEWAY_HTTP_PORT, GATEWAY_PG_PORT, GATEWAY_PG_REPLICA_PORT,
    MULTIORCH_GRPC_PORT, MULTIORCH_HTTP_PORT,
};
/// Any non-root ID: the Multigres image needs no particular user.
pub const RUN_AS: i64 = 65532;

/// Everything a Cell becomes in Kubernetes.
#[derive(Clone, Debug)]
pub struct Children {
    pub gateway_service: Service,
    pub gateway: Deployment,
    pub multiorch: Deployment,
    pub gateway_pdb: PodDisruptionBudget,
    pub multiorch_pdb: PodDisruptionBudget,
    pub local_topo_server: Option<TopoServer>,
}

/// The cluster a Cell belongs to, from its `multigres.com/cluster` label.
pub fn cluster_of(cell: &Cell) -> Option<String> {
    cell.labels().get(labels::CLUSTER).cloned()
}

/// Labels of one component of the cell.
fn component_labels(cell: &Cell, component: &str) -> BTreeMap<String, String> {
    let cluster = cluster_of(cell).unwrap_or_default();
    labels::with(
        labels::for_component(&cluster, component),
        labels::CELL,
        &cell.spec.name,
    )
}

/// Pod selector of one component: stable for the Deployment's life (its selector is immutable).
pub fn selector_labels(cell: &Cell, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::CLUSTER.to_string(),
            cluster_of(cell).unwrap_or_default(),
        ),
        (labels::COMPONENT.to_string(), component.to_string()),
        (labels::CELL.to_string(), cell.spec.name.clone()),
    ])
}

pub fn children(cell: &Cell) -> Children {
    Children {
        gateway_service: gateway_service(cell),
        gateway: gateway(cell),
        multiorch: multiorch(cell),
        gateway_pdb: gateway_pdb(cell),
        multiorch_pdb: multiorch_pdb(cell),
        local_topo_server: local_topo_server(cell),
    }
}

/// Validation and build in one step, with errors that name the Cell.
/// The local TopoServer is resolved once, for both.
pub fn validated(cell: &Cell) -> Result<(CellTopology, Children), ChildError> {
    let local = resolve::local_topo_server(cell);
    let topology = topology::topology_of(cell, local.as_ref())
        .map_err(|message| ChildError::new(cell, Failure::Invalid(message)))?;
    let children = Children {
        gateway_service: gateway_service(cell),
        gateway: gateway(cell),
        multiorch: multiorch(cell),
        gateway_pdb: gateway_pdb(cell),
        multiorch_pdb: multiorch_pdb(cell),
        local_topo_server: local.map(|child| topo_server::topo_server_of(cell, child)),
    };
    Ok((topology, children))
}

#[cfg(test)]
mod tests;
