//! What a MultigresCluster becomes: the exact child objects and topology records, from the pure
//! resolution in `multigres_api::resolve`. No client here: spec in, objects out.

mod certificate;
mod credentials;
mod databases;
mod gateways;
mod multiadmin;
mod network_policies;
pub mod pod_monitor;
pub mod prometheus_rule;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, Secret, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use multigres_api::cluster::QuorumType;
use multigres_api::labels::{self, component};
use multigres_api::multigres::{self, BACKUP_REPOSITORY_PATH};
use multigres_api::resolve::{DatabaseRegistration, ResolvedCluster, ResolvedMultiAdmin};
use multigres_api::{
    Cell, GatewayExposure, MultigresCluster, RetentionAction, TableGroup, TopoServer, naming,
};
use multigres_runtime::apply::child_meta;
use multigres_runtime::builders::{
    container_port, downward_env, restricted_container_security_context,
    restricted_pod_security_context, service_port,
};
use multigres_topology::pb;

pub use certificate::{Certificate, certificate};
pub use credentials::{credentials_secret, generate_password, tls_sans, tls_secret};
pub use databases::{
    REGISTERED_DATABASES, database_record, registered_databases, registered_value,
};
pub use gateways::gateways_service;
pub use multiadmin::{multiadmin_deployment, multiadmin_selector, multiadmin_service};
pub use network_policies::network_policies;
pub use pod_monitor::{PodMonitor, pod_monitor};
pub use prometheus_rule::{PrometheusRule, prometheus_rule};

pub use multigres_api::multigres::{MULTIADMIN_GRPC_PORT, MULTIADMIN_HTTP_PORT};
/// The user name of the generated credentials.
pub const POSTGRES_USER: &str = "postgres";
/// Length of a generated password.
pub const PASSWORD_LEN: usize = 32;

/// Every child object of one cluster, in apply order.
#[derive(Clone, Debug)]
pub struct Desired {
    pub topo_server: Option<TopoServer>,
    pub multiadmin_service: Service,
    pub multiadmin_deployment: Deployment,
    /// `<cluster>-gateways`, over every cell's gateways.
    pub gateways_service: Service,
    pub cells: Vec<Cell>,
    pub table_groups: Vec<TableGroup>,
    /// Name of the credentials Secret to generate, when the user named none.
    pub credentials_secret: Option<String>,
    /// Name of the TLS Secret to issue, unless TLS is off or cert-manager issues it.
    pub tls_secret: Option<String>,
    /// The cert-manager Certificate that issues the TLS Secret, when the cluster asks for one.
    pub certificate: Option<Certificate>,
    /// Database records for the global topology.
    pub databases: Vec<pb::Database>,
    /// `<cluster>-<component>`, unless `spec.networkPolicy.enabled` is false.
    pub network_policies: Vec<NetworkPolicy>,
}

impl Desired {
    /// Names of every child, by kind, for pruning.
    pub fn names(&self) -> DesiredNames {
        DesiredNames {
            topo_servers: self.topo_server.iter().map(name_of).collect(),
            cells: self.cells.iter().map(name_of).collect(),
            table_groups: self.table_groups.iter().map(name_of).collect(),
            deployments: BTreeSet::from([name_of(&self.multiadmin_deployment)]),
            services: BTreeSet::from([
                name_of(&self.multiadmin_service),
                name_of(&self.gateways_service),
            ]),
            network_policies: self.network_policies.iter().map(name_of).collect(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredNames {
    pub topo_servers: BTreeSet<String>,
    pub cells: BTreeSet<String>,
    pub table_groups: BTreeSet<String>,
    pub deployments: BTreeSet<String>,
    pub services: BTreeSet<String>,
    pub network_policies: BTreeSet<String>,
}

fn name_of<K: kube::Resource>(object: &K) -> String {
    object.meta().name.clone().unwrap_or_default()
}

/// Builds every child of `cluster` from its resolution. `operator_namespace` is where the
/// controllers run (their traffic to the cluster's pods is let through its NetworkPolicies).
pub fn desired(
    cluster: &MultigresCluster,
    resolved: &ResolvedCluster,
    operator_namespace: &str,
) -> Desired {
    let topo_server = resolved.global_topo_server.as_ref().map(|child| {
        let mut topo = TopoServer::new(&child.name, child.spec.clone());
        topo.metadata = child_meta(cluster, &child.name, child.labels.clone());
        topo
    });
    let cells = resolved
        .cells
        .iter()
        .map(|child| {
            let mut cell = Cell::new(&child.name, child.spec.clone());
            cell.metadata = child_meta(cluster, &child.name, child.labels.clone());
            cell
        })
        .collect();
    let table_groups = resolved
        .table_groups
        .iter()
        .map(|child| {
            let mut tg = TableGroup::new(&child.name, child.spec.clone());
            tg.metadata = child_meta(cluster, &child.name, child.labels.clone());
            tg
        })
        .collect();
    let certificate = resolved
        .tls
        .as_ref()
        .and_then(|t| certificate(cluster, &t.secret_name));
    Desired {
        topo_server,
        multiadmin_service: multiadmin_service(cluster, &resolved.multiadmin),
        multiadmin_deployment: multiadmin_deployment(cluster, resolved),
        gateways_service: gateways_service(cluster),
        cells,
        table_groups,
        credentials_secret: resolved
            .generate_credentials
            .then(|| resolved.credentials.secret_name.clone()),
        databases: resolved.databases.iter().map(database_record).collect(),
        tls_secret: resolved
            .tls
            .as_ref()
            .filter(|_| certificate.is_none())
            .map(|t| t.secret_name.clone()),
        certificate,
        network_policies: network_policies(cluster, operator_namespace),
    }
}

fn cluster_name(cluster: &MultigresCluster) -> String {
    cluster.metadata.name.clone().unwrap_or_default()
}

/// Names of the global TopoServer, for a cluster that has none managed too.
pub fn global_topo_server_name(cluster: &MultigresCluster) -> String {
    naming::global_topo_server(&cluster_name(cluster))
}

#[cfg(test)]
mod tests;
