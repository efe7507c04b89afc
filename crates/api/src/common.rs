//! Building blocks shared by several kinds: component blocks, images, pools, topology servers.
//!
//! Every user-facing component block accepts a `deploymentTemplate` name plus `overrides`, or the same
//! fields inline, directly in the block (never under a nested `spec:`). Resolution turns either into the
//! plain `*Spec` structs that read-only children carry.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, PersistentVolumeClaimSpec, ResourceRequirements, Toleration,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::scheduling::{Logging, PodScheduling};

/// "True", "False" or "Unknown", as Kubernetes condition statuses are spelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Tristate {
    True,
    False,
    #[default]
    Unknown,
}

impl From<bool> for Tristate {
    fn from(value: bool) -> Self {
        if value {
            Tristate::True
        } else {
            Tristate::False
        }
    }
}

/// Image pull policy of every container the operator creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// How clients reach a gateway Service (an addition): the Service's type, its annotations (a cloud
/// load balancer's settings, for example) and the client ranges a load balancer admits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.loadBalancerSourceRanges) || (has(self.type) && self.type == 'LoadBalancer')",
     "message": "loadBalancerSourceRanges applies to type LoadBalancer"}
]))]
pub struct GatewayExposure {
    /// `ClusterIP` (the default: reachable inside the cluster), `NodePort` or `LoadBalancer`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceExposure>,
    /// Annotations of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Client CIDRs a LoadBalancer admits (all when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub load_balancer_source_ranges: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceExposure {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl GatewayExposure {
    /// Sets `service`'s type, annotations and source ranges as asked (ClusterIP when unset).
    pub fn apply_to(exposure: Option<&Self>, service: &mut k8s_openapi::api::core::v1::Service) {
        let exposure = exposure.cloned().unwrap_or_default();
        let spec = service.spec.get_or_insert_with(Default::default);
        spec.type_ = Some(exposure.type_.unwrap_or_default().as_str().to_string());
        spec.load_balancer_source_ranges = exposure.load_balancer_source_ranges;
        if let Some(annotations) = exposure.annotations {
            service
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .extend(annotations);
        }
    }
}

impl ServiceExposure {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceExposure::ClusterIP => "ClusterIP",
            ServiceExposure::NodePort => "NodePort",
            ServiceExposure::LoadBalancer => "LoadBalancer",
        }
    }
}

/// A stateless component (multiadmin, multigateway, multiorch) as the cluster controller resolved
/// it for a child: every default applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedComponent {
    /// Number of pods.
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// CPU and memory requests and limits of the component's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Scheduling affinity of the component's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(flatten)]
    pub scheduling: PodScheduling,
    #[serde(flatten)]
    pub logging: Logging,
}

/// Settings of a stateless component (multiadmin, multigateway, multiorch) as a template or the
/// cluster gives them: what is unset comes from the layer below.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    /// Number of pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// CPU and memory requests and limits of the component's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Scheduling affinity of the component's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(flatten)]
    pub scheduling: PodScheduling,
    #[serde(flatten)]
    pub logging: Logging,
}

/// A stateless component block: a template name with optional overrides, or the fields inline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.deploymentTemplate) || !(has(self.replicas) || has(self.resources) || has(self.affinity) || has(self.topologySpreadConstraints) || has(self.priorityClassName) || has(self.podLabels) || has(self.podAnnotations) || has(self.tolerations) || has(self.nodeSelector) || has(self.logLevel) || has(self.logFormat))",
     "message": "set either deploymentTemplate (with optional overrides) or inline fields (replicas, resources, affinity, topologySpreadConstraints, priorityClassName, podLabels, podAnnotations, tolerations, nodeSelector, logLevel, logFormat), not both"},
    {"rule": "!has(self.overrides) || has(self.deploymentTemplate)",
     "message": "overrides apply to a deploymentTemplate; without one, set the fields inline"}
]))]
pub struct ComponentConfig {
    /// Name of a DeploymentTemplate in the cluster's namespace whose section for this component is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub deployment_template: Option<String>,
    /// Fields merged over the template's section (maps merge by key, lists replace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<ComponentSpec>,
    /// Inline definition, used when no deploymentTemplate is named.
    #[serde(flatten)]
    pub inline: ComponentSpec,
}

/// Resources and logging of one container of a shard pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// CPU and memory requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(flatten)]
    pub logging: Logging,
}

/// The role of a pool's Postgres instances.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum PoolType {
    /// Instances that can become primary; one of them is the primary of the shard.
    #[serde(rename = "replica")]
    Replica,
    /// Read-only instances that never become primary.
    #[serde(rename = "readOnly")]
    ReadOnly,
}

impl PoolType {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolType::Replica => "replica",
            PoolType::ReadOnly => "readOnly",
        }
    }

    /// The multipooler `--type`-style value Multigres uses for this pool.
    pub fn pooler_type(self) -> &'static str {
        match self {
            PoolType::Replica => "REPLICA",
            PoolType::ReadOnly => "RDONLY",
        }
    }
}

/// Resolved settings of the Postgres instances of a shard pool (the template section `shardPool`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolSettings {
    /// Postgres instances in this pool, per shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<i32>,
    /// Scheduling affinity of the pool's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// The PersistentVolumeClaim each instance keeps its data on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_volume_claim_template: Option<PersistentVolumeClaimSpec>,
    /// The postgres container (run by pgctld).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<ContainerSpec>,
    /// The multipooler container beside postgres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipooler: Option<ContainerSpec>,
    /// `postgresql.conf` parameters of the pool's Postgres (an addition; docs/postgres-settings.md):
    /// a template's merge with a pool's by name. A change replaces the pool's pods one at a time,
    /// replicas first, the primary last after a planned switchover. Parameters the operator or
    /// Multigres must own are refused (`resolve::postgres_parameters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    pub postgres_parameters: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub scheduling: PodScheduling,
}

/// A shard pool as the user writes it in a MultigresCluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.deploymentTemplate) || !(has(self.replicas) || has(self.affinity) || has(self.dataVolumeClaimTemplate) || has(self.postgres) || has(self.multipooler) || has(self.topologySpreadConstraints) || has(self.priorityClassName) || has(self.podLabels) || has(self.podAnnotations) || has(self.tolerations) || has(self.nodeSelector))",
     "message": "set either deploymentTemplate (with optional overrides) or inline pool fields, not both"},
    {"rule": "!has(self.overrides) || has(self.deploymentTemplate)",
     "message": "overrides apply to a deploymentTemplate; without one, set the fields inline"}
]))]
pub struct PoolConfig {
    /// `replica` (can be primary) or `readOnly`.
    #[serde(rename = "type")]
    pub pool_type: PoolType,
    /// The cell the pool's instances live in; must name one of `spec.cells`.
    #[schemars(length(min = 1, max = 63))]
    pub cell: String,
    /// Name of a DeploymentTemplate whose `shardPool` section is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub deployment_template: Option<String>,
    /// Fields merged over the template's `shardPool` section (maps merge by key, lists replace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<PoolSettings>,
    /// Inline definition, used when no deploymentTemplate is named.
    #[serde(flatten)]
    pub inline: PoolSettings,
}

/// A resolved shard pool, as TableGroups and Shards carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    /// `replica` (can be primary) or `readOnly`.
    #[serde(rename = "type")]
    pub pool_type: PoolType,
    /// The cell the pool's instances live in.
    pub cell: String,
    /// Postgres instances in this pool, per shard.
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// Scheduling affinity of the pool's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// The PersistentVolumeClaim each instance keeps its data on.
    pub data_volume_claim_template: PersistentVolumeClaimSpec,
    /// The postgres container (run by pgctld).
    #[serde(default)]
    pub postgres: ContainerSpec,
    /// The multipooler container beside postgres.
    #[serde(default)]
    pub multipooler: ContainerSpec,
    /// `postgresql.conf` parameters of the pool's Postgres, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub postgres_parameters: BTreeMap<String, String>,
    /// Where the pool's cell lives (copied from the cell's placement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(flatten)]
    pub scheduling: PodScheduling,
}

/// Where a cell's pods run. An addition to the CR definition: without it a cell is only a name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Pods land in this zone (`topology.kubernetes.io/zone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Pods land in this region (`topology.kubernetes.io/region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Extra node labels the cell's pods require.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations the cell's pods carry (for dedicated nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
}

impl Placement {
    /// The node selector this placement amounts to.
    pub fn node_selector(&self) -> BTreeMap<String, String> {
        let mut selector = self.node_selector.clone().unwrap_or_default();
        if let Some(zone) = &self.zone {
            selector.insert("topology.kubernetes.io/zone".into(), zone.clone());
        }
        if let Some(region) = &self.region {
            selector.insert("topology.kubernetes.io/region".into(), region.clone());
        }
        selector
    }
}

/// Settings of a managed etcd topology server (the template section `managedTopoServer`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopoServerSettings {
    /// Root path of this server's topology; when unset, a path unique to the cluster is chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub root_path: Option<String>,
    /// The etcd image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Pull policy of the etcd image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Secrets for pulling the etcd image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// etcd members; odd, so that a quorum survives a failure. Fixed once the server exists (a
    /// change needs a manual etcd member change): the TopoServer refuses it, and the cluster says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 9))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self % 2 == 1", "message": "etcd replicas must be odd so that a quorum survives a failure"}
    ]))]
    pub replicas: Option<i32>,
    /// Scheduling affinity of the etcd pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// CPU and memory of each etcd member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The PersistentVolumeClaim each member keeps its data on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_volume_claim_template: Option<PersistentVolumeClaimSpec>,
    #[serde(flatten)]
    pub scheduling: PodScheduling,
}

/// An etcd the operator does not manage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalTopoServer {
    /// Client address, `host:port`.
    #[schemars(length(min = 1, max = 253))]
    pub address: String,
    /// Root path of the topology on that server; when unset, a path unique to the cluster is chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub root_path: Option<String>,
    /// The etcd speaks TLS and requires client certificates: the Multigres components dial it with
    /// this Secret. The operator dials it with the certificate its chart gives it
    /// (docs/security.md, "External etcd").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ExternalTopologyTls>,
}

/// Client TLS for an external etcd.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalTopologyTls {
    /// A Secret of the cluster's namespace with `ca.crt` (the etcd's CA), `tls.crt` and `tls.key`
    /// (a client certificate the etcd accepts). The pinned Multigres takes one etcd certificate per
    /// process, so every external topology server of a cluster names the same Secret.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// A topology server block: a template, inline `managedSpec`, or `external`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.deploymentTemplate) ? 1 : 0) + (has(self.managedSpec) ? 1 : 0) + (has(self.external) ? 1 : 0) <= 1",
     "message": "set at most one of deploymentTemplate, managedSpec and external"},
    {"rule": "!has(self.overrides) || has(self.deploymentTemplate)",
     "message": "overrides apply to a deploymentTemplate"},
    {"rule": "!(has(self.rootPath) && ((has(self.managedSpec) && has(self.managedSpec.rootPath)) || (has(self.external) && has(self.external.rootPath))))",
     "message": "set rootPath once: either on the block or inside managedSpec/external"}
]))]
pub struct TopoServerConfig {
    /// Root path of the topology; when unset, a path unique to the cluster is chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub root_path: Option<String>,
    /// Name of a DeploymentTemplate whose `managedTopoServer` section is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub deployment_template: Option<String>,
    /// Fields merged over the template's `managedTopoServer` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<TopoServerSettings>,
    /// A managed etcd defined inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_spec: Option<TopoServerSettings>,
    /// An etcd the operator does not manage; no TopoServer is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalTopoServer>,
}

/// Images of every Multigres component, set once per cluster so versions never mix.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Images {
    /// Pull policy of every Multigres container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Secrets for pulling the images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// Image of multigateway (a Multigres image: binaries on PATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multigateway: Option<String>,
    /// Image of multiorch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiorch: Option<String>,
    /// Image of multipooler, beside each Postgres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipooler: Option<String>,
    /// Image of multiadmin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiadmin: Option<String>,
    /// The postgres container's image. It runs `pgctld server`, and Postgres runs pgBackRest, so it
    /// must be a Multigres pgctld image (PostgreSQL 17 + pgBackRest + pgctld); the default is the
    /// pinned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
}

/// Where the global topology lives, as children need it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalTopologyRef {
    /// Root path of the global topology.
    pub root_path: String,
    /// Client Service of the managed global TopoServer; absent when the server is external.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_service_name: Option<String>,
    /// Client address (`host:port`) that Multigres components dial.
    pub address: String,
    /// Set by the cluster controller when the cluster's topology servers speak TLS: the Secret
    /// (`ca.crt`, `tls.crt`, `tls.key`, from the operator's topology CA) with which Multigres
    /// components dial them. Absent: plaintext (docs/security.md, "Topology").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
}

impl GlobalTopologyRef {
    /// The topology flags every Multigres component takes: where the global topology is and, when
    /// it speaks TLS, the client certificate to dial it (and every cell topology) with.
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        let mut flags =
            crate::multigres::global_topology_flags(&self.address, &self.root_path).to_vec();
        if self.tls_secret_name.is_some() {
            flags.extend(crate::multigres::topology_tls_flags());
        }
        flags
    }

    /// The pod volume of the topology client certificate, when the topology speaks TLS.
    pub fn tls_volume(&self) -> Option<k8s_openapi::api::core::v1::Volume> {
        self.tls_secret_name
            .as_deref()
            .map(crate::multigres::topology_tls_volume)
    }

    /// Where the container reads [`Self::tls_volume`].
    pub fn tls_volume_mount(&self) -> Option<k8s_openapi::api::core::v1::VolumeMount> {
        self.tls_secret_name
            .as_ref()
            .map(|_| crate::multigres::topology_tls_volume_mount())
    }
}

/// What the cell controller does in the topology.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologyReconciliation {
    /// Write this cell's record into the global topology.
    #[serde(default = "yes")]
    pub register_cell: bool,
    /// Remove pooler records of pods that no longer exist.
    #[serde(default = "yes")]
    pub prune_tablets: bool,
}

impl Default for TopologyReconciliation {
    fn default() -> Self {
        Self {
            register_cell: true,
            prune_tablets: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// When PersistentVolumeClaims of Postgres instances are deleted. Both default to Retain: data is never
/// deleted unless asked for here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcDeletionPolicy {
    /// When the cluster (or a shard) is deleted.
    #[serde(default)]
    pub when_deleted: RetentionAction,
    /// When a pool scales down.
    #[serde(default)]
    pub when_scaled: RetentionAction,
}

impl Default for PvcDeletionPolicy {
    fn default() -> Self {
        Self {
            when_deleted: RetentionAction::Retain,
            when_scaled: RetentionAction::Retain,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RetentionAction {
    #[default]
    Retain,
    Delete,
}

/// The cluster's TLS material (docs/security.md): a Secret with `ca.crt`, `tls.crt` and `tls.key`,
/// whose certificate serves and authenticates the Multigres components' gRPC (mutual TLS) and the
/// gateways' Postgres listeners.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsRef {
    /// Secret name in the cluster's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Gateways refuse clients that do not speak TLS.
    #[serde(default)]
    pub require_client_tls: bool,
    /// Set by the cluster controller from cert-manager's `Certificate` `status.revision`: the
    /// certificate's issuance. The pinned Multigres reads certificates only at start, so a renewal
    /// (revision 2 and later) replaces the pods that mount the Secret, in the safe order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
}

impl TlsRef {
    /// The pod annotation that carries a renewed certificate's revision into the pod templates:
    /// none for the first issuance, so pods started with it are not replaced.
    pub fn revision_annotation(&self) -> Option<(String, String)> {
        self.revision
            .filter(|r| *r > 1)
            .map(|r| (crate::labels::TLS_REVISION.to_string(), r.to_string()))
    }

    /// Puts [`Self::revision_annotation`] of `tls` (if any) on a pod's metadata.
    pub fn annotate_pod(
        tls: Option<&TlsRef>,
        pod: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) {
        if let Some((key, value)) = tls.and_then(TlsRef::revision_annotation) {
            pod.annotations
                .get_or_insert_with(Default::default)
                .insert(key, value);
        }
    }
}

/// The Secret holding Postgres credentials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRef {
    /// Secret name in the cluster's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Key of the user name.
    #[serde(default = "default_username_key")]
    pub username_key: String,
    /// Key of the password.
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

impl CredentialsRef {
    pub fn named(secret_name: impl Into<String>) -> Self {
        Self {
            secret_name: secret_name.into(),
            username_key: default_username_key(),
            password_key: default_password_key(),
        }
    }
}

fn default_username_key() -> String {
    "username".into()
}
fn default_password_key() -> String {
    "password".into()
}

/// The postgres_exporter sidecar of every pool pod, as resolved from the cluster's
/// `spec.observability.postgresExporter`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresExporter {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Images the pods of a shard use, passed down from the cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardImages {
    pub multipooler: String,
    /// A Multigres pgctld image: PostgreSQL 17, pgBackRest and pgctld.
    pub postgres: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
}
