//! What a TopoServer becomes: pure functions from the TopoServer to the exact child objects.
//!
//! * a StatefulSet named like the TopoServer, one etcd member per pod, data on a PVC per member;
//! * a client Service (`<name>-client`, port 2379) that Multigres components dial;
//! * a headless peer Service (`<name>-peer`, port 2380) that gives members stable DNS names, published
//!   before they are ready so that a new cluster can form its first quorum;
//! * a PodDisruptionBudget that keeps a quorum (`replicas / 2 + 1`) through voluntary disruptions.

mod etcd;
mod pdb;
mod services;
mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PodSpec, PodTemplateSpec, Probe, Secret, SecretVolumeSource,
    Service, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use multigres_api::labels::{self, component};
use multigres_api::{TopoServer, naming};
use multigres_runtime::apply::child_meta;
use multigres_runtime::builders::{
    container_port, http_probe, pod_name_env, preferred_spread,
    restricted_container_security_context, restricted_pod_security_context, service_port,
};
use multigres_runtime::pki::IssuedTls;

pub use etcd::{etcd_args, initial_cluster, member_common_name, member_host, member_sans, probes};
pub use pdb::pdb;
pub use services::{client_service, peer_service};
pub use statefulset::statefulset;

pub const CLIENT_PORT: i32 = naming::TOPO_CLIENT_PORT;
pub use multigres_api::multigres::{
    TOPO_METRICS_PORT as METRICS_PORT, TOPO_PEER_PORT as PEER_PORT,
};
pub const DATA_DIR: &str = "/var/lib/etcd";
pub const DATA_VOLUME: &str = "data";
/// Where a member reads its TLS Secret (`spec.tls.secretName`).
pub const TLS_DIR: &str = "/etc/etcd/tls";
pub const TLS_VOLUME: &str = "tls";
pub const CONTAINER: &str = "etcd";
/// The UID/GID etcd runs as: any non-root ID works, the data volume is made writable by `fsGroup`.
pub const RUN_AS: i64 = 65532;

/// Every child of one TopoServer.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    pub client_service: Service,
    pub peer_service: Service,
    pub pdb: PodDisruptionBudget,
    pub statefulset: StatefulSet,
}

/// The member certificate's Secret: `ca.crt` (the topology CA, which clients and peers must show),
/// `tls.crt`, `tls.key`.
pub fn tls_secret(ts: &TopoServer, name: &str, tls: &IssuedTls) -> Secret {
    tls.secret(child_meta(ts, name, child_labels(ts)))
}

/// Members that must be up for etcd to accept writes.
pub fn quorum(replicas: i32) -> i32 {
    replicas.max(0) / 2 + 1
}

/// Labels that select this TopoServer's pods. Stable for the life of the StatefulSet (its selector is
/// immutable), so they hold no value that could ever change.
pub fn selector_labels(topo_server: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::COMPONENT.to_string(),
            component::TOPO_SERVER.to_string(),
        ),
        (labels::TOPO_SERVER.to_string(), topo_server.to_string()),
    ])
}

/// The TopoServer's own labels (cluster, topo-scope, cell...) plus the selector labels.
fn child_labels(ts: &TopoServer) -> BTreeMap<String, String> {
    let mut out = ts.labels().clone();
    out.extend(selector_labels(&ts.name_any()));
    out.insert(labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into());
    out
}

pub fn children(ts: &TopoServer) -> Children {
    Children {
        client_service: client_service(ts),
        peer_service: peer_service(ts),
        pdb: pdb(ts),
        statefulset: statefulset(ts),
    }
}

#[cfg(test)]
mod tests;
