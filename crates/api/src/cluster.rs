//! MultigresCluster: the one object users edit. Everything else is derived from it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    ComponentConfig, CredentialsRef, GatewayExposure, Images, Placement, PoolConfig,
    PvcDeletionPolicy, TopoServerConfig, Tristate,
};
use crate::scheduling::Logging;

/// A sharded, highly available Postgres served by Multigres.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "multigres.com",
    version = "v1alpha1",
    kind = "MultigresCluster",
    namespaced,
    status = "MultigresClusterStatus",
    shortname = "mgc",
    category = "multigres",
    printcolumn = r#"{"name":"Cells","type":"integer","jsonPath":".status.cellCount"}"#,
    printcolumn = r#"{"name":"Databases","type":"integer","jsonPath":".status.databaseCount"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.readyInstancesSummary"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.cells) || self.cells.all(c, self.cells.exists_one(d, d.name == c.name))",
     "message": "cell names must be unique"},
    {"rule": "!has(self.databases) || self.databases.all(d, self.databases.exists_one(e, e.name == d.name))",
     "message": "database names must be unique"},
    {"rule": "!has(self.databases) || self.databases.all(d, !has(d.spec.tablegroups) || d.spec.tablegroups.all(t, t.shardTemplate.pools.all(p, has(self.cells) && self.cells.exists(c, c.name == p.cell))))",
     "message": "every shard pool's cell must name a cell declared in spec.cells"},
    {"rule": "(has(self.allowTopologyChange) && self.allowTopologyChange) || (has(self.globalTopoServer) ? (has(self.globalTopoServer.external) ? 'external ' + self.globalTopoServer.external.address : (has(self.globalTopoServer.managedSpec) || has(self.globalTopoServer.deploymentTemplate)) ? 'managed' : 'managed') + ' ' + (has(self.globalTopoServer.rootPath) ? self.globalTopoServer.rootPath : (has(self.globalTopoServer.managedSpec) && has(self.globalTopoServer.managedSpec.rootPath)) ? self.globalTopoServer.managedSpec.rootPath : (has(self.globalTopoServer.external) && has(self.globalTopoServer.external.rootPath)) ? self.globalTopoServer.external.rootPath : '') : 'managed ') == (has(oldSelf.globalTopoServer) ? (has(oldSelf.globalTopoServer.external) ? 'external ' + oldSelf.globalTopoServer.external.address : (has(oldSelf.globalTopoServer.managedSpec) || has(oldSelf.globalTopoServer.deploymentTemplate)) ? 'managed' : 'managed') + ' ' + (has(oldSelf.globalTopoServer.rootPath) ? oldSelf.globalTopoServer.rootPath : (has(oldSelf.globalTopoServer.managedSpec) && has(oldSelf.globalTopoServer.managedSpec.rootPath)) ? oldSelf.globalTopoServer.managedSpec.rootPath : (has(oldSelf.globalTopoServer.external) && has(oldSelf.globalTopoServer.external.rootPath)) ? oldSelf.globalTopoServer.external.rootPath : '') : 'managed ')",
     "message": "globalTopoServer: managed/external, the external address and rootPath cannot change (every component would move to an empty topology); set allowTopologyChange: true for an intended migration"},
    {"rule": "(has(self.allowTopologyChange) && self.allowTopologyChange) || !has(self.cells) || !has(oldSelf.cells) || self.cells.all(c, oldSelf.cells.all(o, o.name != c.name || ((has(c.spec) && has(c.spec.topoServer)) ? (has(c.spec.topoServer.external) ? 'external ' + c.spec.topoServer.external.address : (has(c.spec.topoServer.managedSpec) || has(c.spec.topoServer.deploymentTemplate)) ? 'managed' : 'global') + ' ' + (has(c.spec.topoServer.rootPath) ? c.spec.topoServer.rootPath : (has(c.spec.topoServer.managedSpec) && has(c.spec.topoServer.managedSpec.rootPath)) ? c.spec.topoServer.managedSpec.rootPath : (has(c.spec.topoServer.external) && has(c.spec.topoServer.external.rootPath)) ? c.spec.topoServer.external.rootPath : '') : 'global ') == ((has(o.spec) && has(o.spec.topoServer)) ? (has(o.spec.topoServer.external) ? 'external ' + o.spec.topoServer.external.address : (has(o.spec.topoServer.managedSpec) || has(o.spec.topoServer.deploymentTemplate)) ? 'managed' : 'global') + ' ' + (has(o.spec.topoServer.rootPath) ? o.spec.topoServer.rootPath : (has(o.spec.topoServer.managedSpec) && has(o.spec.topoServer.managedSpec.rootPath)) ? o.spec.topoServer.managedSpec.rootPath : (has(o.spec.topoServer.external) && has(o.spec.topoServer.external.rootPath)) ? o.spec.topoServer.external.rootPath : '') : 'global ')))",
     "message": "cells[].spec.topoServer: a cell's topology (global/managed/external, address, rootPath) cannot change; set allowTopologyChange: true for an intended migration"}
]))]
pub struct MultigresClusterSpec {
    /// Images of every Multigres component; one version for the whole cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Images>,
    /// The global topology server: managed (template or `managedSpec`) or `external`. When omitted, a
    /// managed etcd with built-in defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_topo_server: Option<TopoServerConfig>,
    /// The cluster's multiadmin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiadmin: Option<ComponentConfig>,
    /// Cells (failure domains); each gets a multigateway and a multiorch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub cells: Vec<CellConfig>,
    /// Databases and their tablegroups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub databases: Vec<DatabaseConfig>,
    /// Secret with the Postgres user and password (an addition). When omitted, the operator generates
    /// `<cluster>-postgres-credentials` once and never rotates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsRef>,
    /// When data volumes are deleted (an addition). Default: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_deletion_policy: Option<PvcDeletionPolicy>,
    /// Lets one edit change where the topology lives (managed/external, address, rootPath) of the
    /// cluster or a cell (an addition). Without it such edits are refused: the components would move
    /// to an empty topology. Set it for the migrating edit, then remove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_topology_change: Option<bool>,
    /// How clients reach the Service `<cluster>-gateways`, which spans the gateways of every cell
    /// (an addition); default `ClusterIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_service: Option<GatewayExposure>,
    /// Prometheus scraping and alerting of the cluster's pods (an addition; docs/monitoring.md):
    /// a PodMonitor and a PrometheusRule, applied when the Prometheus operator's CRDs are served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observability: Option<Observability>,
    /// How every Multigres binary of the cluster logs unless its component says otherwise (an
    /// addition): `logLevel` and `logFormat` of a component block, a template's section or a
    /// pool's `postgres`/`multipooler` win over these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// NetworkPolicies that let only the components that must talk reach each port of the
    /// cluster's pods (an addition; docs/security.md). On unless `enabled: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicyConfig>,
    /// TLS among the Multigres components and for the gateways' clients (an addition;
    /// docs/security.md). On unless `enabled: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Every database's backup repository unless the database sets its own
    /// (docs/backup-restore.md). Default: a filesystem repository per shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::BackupConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    /// Default true: the operator issues a certificate for the cluster from the cluster's own CA
    /// (Secret `<cluster>-tls-<expiry>`, renewed before it expires; `<cluster>-tls` when the
    /// operator runs without its topology CA), with which multigateway, multiorch and
    /// multipooler speak mutual TLS and the gateways offer TLS to clients. false: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Gateways refuse clients that do not speak TLS (default false: TLS offered, not required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_client_tls: Option<bool>,
    /// Have cert-manager issue (and renew) the cluster's certificate instead of the operator: a
    /// `Certificate` named as the cluster, written to the Secret `<cluster>-tls`. The issuer
    /// must give the Secret a `ca.crt` that verifies the certificate (a CA issuer does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<CertManagerConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertManagerConfig {
    pub issuer_ref: IssuerRef,
}

/// A cert-manager issuer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `Issuer` (default, in the cluster's namespace) or `ClusterIssuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub kind: Option<String>,
    /// Default `cert-manager.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub group: Option<String>,
}

/// Which peers may reach the cluster's pods beyond its own components and the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyConfig {
    /// Default true; false removes the cluster's NetworkPolicies (the pods are then reachable
    /// from anywhere the namespace's other policies allow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Who may connect to the gateways' Postgres ports (5432, 5433); default: anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub gateway_clients: Option<Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>>,
    /// Who may scrape the pods' metrics ports; default: anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub metrics_clients: Option<Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>>,
}

/// One cell of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CellConfig {
    /// Cell name: a DNS label, not `global` (reserved for the global topology server).
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self != 'global'", "message": "cell name 'global' is reserved for the global topology server"}
    ]))]
    pub name: String,
    /// The cell's components and topology.
    #[serde(default)]
    pub spec: CellConfigSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CellConfigSpec {
    /// The cell's multigateway (Postgres protocol endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multigateway: Option<ComponentConfig>,
    /// The cell's multiorch (failure detection and failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiorch: Option<ComponentConfig>,
    /// A topology server for this cell; omitted or empty means the global one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topo_server: Option<TopoServerConfig>,
    /// Where the cell's pods run (an addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// How clients reach this cell's gateway Service (an addition); default `ClusterIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_service: Option<GatewayExposure>,
}

/// One logical database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseConfig {
    /// Database name: a lower-case Postgres identifier that starts with a letter and ends with a
    /// letter or digit (it is also a label value of every child).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z]([a-z0-9_]*[a-z0-9])?$")
    )]
    pub name: String,
    #[serde(default)]
    pub spec: DatabaseConfigSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.tablegroups.all(t, self.tablegroups.exists_one(u, u.name == t.name))",
     "message": "tablegroup names must be unique within a database"}
]))]
pub struct DatabaseConfigSpec {
    /// The database's tablegroups.
    #[serde(default)]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub tablegroups: Vec<TableGroupConfig>,
    /// Durability policy written into the database's topology record (an addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability_policy: Option<DurabilityPolicy>,
    /// The database's backup repository, replacing the cluster's `spec.backup` as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::BackupConfig>,
}

/// How many acknowledgements a write needs before it is durable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DurabilityPolicy {
    /// `AtLeastN` or `MultiCellAtLeastN`.
    pub quorum_type: QuorumType,
    /// Acknowledgements required, counting the primary.
    #[schemars(range(min = 1, max = 100))]
    pub required_count: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum QuorumType {
    AtLeastN,
    MultiCellAtLeastN,
}

/// One tablegroup: tables sharded together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableGroupConfig {
    /// Tablegroup name: a lower-case identifier that starts with a letter and ends with a letter or
    /// digit (it is also a label value of every child).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z]([a-z0-9_]*[a-z0-9])?$")
    )]
    pub name: String,
    /// How the tablegroup is split.
    #[serde(default)]
    pub partitioning: Partitioning,
    /// The pools every shard of this tablegroup gets.
    pub shard_template: ShardTemplateConfig,
}

/// How a tablegroup is split into shards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.shards >= oldSelf.shards",
     "message": "partitioning.shards cannot decrease: removing shards is a resharding workflow, not a scale-down"}
]))]
pub struct Partitioning {
    /// Number of shards.
    #[schemars(range(min = 1, max = 256))]
    pub shards: i32,
}

impl Default for Partitioning {
    fn default() -> Self {
        Self { shards: 1 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.pools.all(p, self.pools.exists_one(q, q.type == p.type && q.cell == p.cell))",
     "message": "each pool must have a distinct (type, cell)"}
]))]
pub struct ShardTemplateConfig {
    /// Pools of Postgres instances; at least one of type `replica`.
    #[schemars(length(min = 1, max = 8))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.exists(p, p.type == 'replica')", "message": "a shard needs at least one pool of type replica to hold its primary"}
    ]))]
    pub pools: Vec<PoolConfig>,
}

/// Observed state, filled from the status aggregation service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultigresClusterStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Availability of the global topology server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_topo_server: Option<GlobalTopoServerStatus>,
    /// `Available`, `Progressing` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Per cell.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cells: BTreeMap<String, CellSummary>,
    /// Per database.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub databases: BTreeMap<String, DatabaseSummary>,
    /// The cluster's multiadmin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiadmin: Option<MultiAdminSummary>,
    /// Number of cells (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_count: Option<i32>,
    /// Number of databases (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_count: Option<i32>,
    /// "ready/desired" Postgres instances over all databases (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_instances_summary: Option<String>,
    /// Per shard (`<database>/<tableGroup>/<shard>`), its last completed backup (written by the
    /// backup controller, field manager `multigres-backups`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last_backups: BTreeMap<String, crate::LastBackup>,
}

impl MultigresClusterStatus {
    /// The status fields the backup controller writes and the cluster controller leaves alone.
    pub const WRITTEN_BY_BACKUPS: &[&str] = &["lastBackups"];
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalTopoServerStatus {
    pub etcd: EtcdSummary,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdSummary {
    /// Whether a quorum of the global etcd is ready (or the external server answers).
    pub available: Tristate,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CellSummary {
    pub gateway_available: Tristate,
    pub multiorch_available: Tristate,
    pub topo_server_available: Tristate,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSummary {
    /// Postgres instances the database's pools ask for.
    pub desired_instances: i32,
    /// Of those, the ones that are ready.
    pub ready_instances: i32,
    /// True when every shard has a serving PRIMARY in the topology.
    pub serving_writes: Tristate,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultiAdminSummary {
    pub available: Tristate,
    pub service_name: String,
}

/// How a cluster is monitored (docs/monitoring.md). The PodMonitor and the PrometheusRule are applied
/// only while the Prometheus operator's CRD of their kind is served; without them nothing is created
/// and nothing fails.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Observability {
    /// The PodMonitor `<cluster>` over every Multigres container's `metrics` port, pgctld's
    /// `pgctld-metrics` port and the exporter's `pg-metrics` port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_monitor: Option<PodMonitorConfig>,
    /// The PrometheusRule `<cluster>` with the alerts of docs/monitoring.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_rule: Option<PrometheusRuleConfig>,
    /// A postgres_exporter sidecar in every pool pod: PostgreSQL's own statistics on the
    /// `pg-metrics` port (9187). On unless `enabled: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_exporter: Option<PostgresExporterConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresExporterConfig {
    /// Default true; false removes the sidecar (each pool pod is replaced once, in the safe order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The postgres_exporter image (default: the pinned version, docs/defaults.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// CPU and memory of the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorConfig {
    /// Default true: created when the PodMonitor CRD exists; false deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Extra labels on the PodMonitor, e.g. what a Prometheus' `podMonitorSelector` matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub labels: BTreeMap<String, String>,
    /// Scrape interval (a Prometheus duration such as `30s`); default: the Prometheus' own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
    ))]
    pub interval: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRuleConfig {
    /// Default true: created when the PrometheusRule CRD exists; false deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Extra labels on the PrometheusRule, e.g. what a Prometheus' `ruleSelector` matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub labels: BTreeMap<String, String>,
    /// Prefix of every alert's `runbook_url` annotation (the alert's section is appended as
    /// `#runbook-<alert>`); default `docs/monitoring.md`, this repository's page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub runbook_base_url: Option<String>,
}
