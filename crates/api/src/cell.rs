//! Cell: one failure domain's multigateway, multiorch and optional local topology server. Read-only.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    ExternalTopoServer, GatewayExposure, GlobalTopologyRef, Placement, PullPolicy,
    ResolvedComponent, TlsRef, TopoServerSettings, TopologyReconciliation, Tristate,
};

/// A Multigres cell, resolved from one entry of a MultigresCluster's `spec.cells`.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "multigres.com",
    version = "v1alpha1",
    kind = "Cell",
    namespaced,
    status = "CellStatus",
    shortname = "mgcell",
    category = "multigres",
    printcolumn = r#"{"name":"Cell","type":"string","jsonPath":".spec.name"}"#,
    printcolumn = r#"{"name":"Gateways","type":"string","jsonPath":".status.gatewayReadyReplicas"}"#,
    printcolumn = r#"{"name":"Orch","type":"string","jsonPath":".status.multiorchAvailable"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CellSpec {
    /// The logical cell name.
    pub name: String,
    /// Images of this cell's components.
    pub images: CellImages,
    pub multigateway: ResolvedComponent,
    pub multiorch: ResolvedComponent,
    /// The global topology; always set.
    pub global_topo_server: GlobalTopologyRef,
    /// This cell's own topology server: empty means the global one.
    #[serde(default)]
    pub topo_server: CellTopoServer,
    /// Every cell of the cluster, for discovery.
    #[serde(default)]
    pub all_cells: Vec<String>,
    /// Databases with a pool in this cell; multiorch watches them (an addition).
    #[serde(default)]
    pub databases: Vec<String>,
    #[serde(default)]
    pub topology_reconciliation: TopologyReconciliation,
    /// Where the cell's pods run (an addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// How clients reach the gateway Service (an addition); default `ClusterIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_service: Option<GatewayExposure>,
    /// TLS of the Multigres components (docs/security.md); none: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CellImages {
    pub multigateway: String,
    pub multiorch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
}

/// A cell's topology server: global (both empty), external, or managed locally.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.external) && has(self.managedSpec))", "message": "set at most one of external and managedSpec"}
]))]
pub struct CellTopoServer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalTopoServer>,
    /// A fully resolved managed etcd; the cell controller creates a TopoServer from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_spec: Option<TopoServerSettings>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CellStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub gateway_replicas: i32,
    #[serde(default)]
    pub gateway_ready_replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_service_name: Option<String>,
    #[serde(default)]
    pub multiorch_available: Tristate,
    /// The topology server this cell uses.
    #[serde(default)]
    pub topo_server: CellTopologyStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CellTopologyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Whether the cell's record is in the global topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<Tristate>,
    /// Whether the cell's topology server is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<Tristate>,
}
