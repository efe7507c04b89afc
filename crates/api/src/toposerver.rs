//! TopoServer: a managed etcd holding Multigres's topology, global (owned by the cluster) or local to a
//! cell (owned by the Cell). Read-only: written by the controllers only.

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, PersistentVolumeClaimSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Placement, PullPolicy};
use crate::scheduling::PodScheduling;

/// A managed etcd cluster for the Multigres topology.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "multigres.com",
    version = "v1alpha1",
    kind = "TopoServer",
    namespaced,
    status = "TopoServerStatus",
    shortname = "mgtopo",
    category = "multigres",
    printcolumn = r#"{"name":"Root","type":"string","jsonPath":".spec.rootPath"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TopoServerSpec {
    /// Root path of the topology this server holds.
    pub root_path: String,
    /// The etcd image.
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// etcd members: odd, and fixed once created (etcd membership changes are not automated).
    #[schemars(range(min = 1, max = 9))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self % 2 == 1", "message": "etcd replicas must be odd so that a quorum survives a failure"},
        {"rule": "self == oldSelf", "message": "etcd replicas are immutable: changing membership needs a manual etcd member change"}
    ]))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The PersistentVolumeClaim each member keeps its data on.
    pub data_volume_claim_template: PersistentVolumeClaimSpec,
    /// Where the members run (a local server follows its cell's placement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(flatten)]
    pub scheduling: PodScheduling,
    /// Serve clients and peers over TLS and require client certificates of the operator's
    /// topology CA. Set by the parent when the cluster's topology speaks TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TopoServerTls>,
}

/// TLS of a managed etcd.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopoServerTls {
    /// Secret with the members' certificate (server and peer, issued by the topo controller from
    /// the operator's topology CA when absent) and `ca.crt`, the CA clients and peers must show.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopoServerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Available` is True only while a quorum of members is ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_service_name: Option<String>,
}
