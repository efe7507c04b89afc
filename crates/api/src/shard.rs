//! Shard: one partition of a tablegroup; owns the Postgres + multipooler pods of every pool. Read-only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    CredentialsRef, GlobalTopologyRef, PoolSpec, PostgresExporter, PvcDeletionPolicy, ShardImages,
    TlsRef,
};

/// One shard of a tablegroup, created by the tablegroup controller.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "multigres.com",
    version = "v1alpha1",
    kind = "Shard",
    namespaced,
    status = "ShardStatus",
    shortname = "mgshard",
    category = "multigres",
    printcolumn = r#"{"name":"Database","type":"string","jsonPath":".spec.database"}"#,
    printcolumn = r#"{"name":"TableGroup","type":"string","jsonPath":".spec.tableGroup"}"#,
    printcolumn = r#"{"name":"Shard","type":"string","jsonPath":".spec.shardName"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyPods"}"#,
    printcolumn = r#"{"name":"Pods","type":"integer","jsonPath":".status.totalPods"}"#,
    printcolumn = r#"{"name":"Primary","type":"string","jsonPath":".status.primaryCell"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ShardSpec {
    pub database: String,
    pub table_group: String,
    /// The shard's name among its table group's Shards (`0`, `1`, ...), as the CR definition has it.
    pub shard_name: String,
    /// The shard as Multigres names it (a key range): what multipooler's `--shard` and the topology
    /// records carry. `0-inf` for a table group of one shard.
    #[serde(default)]
    pub key_range: String,
    pub images: ShardImages,
    /// At most 8, as a MultigresCluster's shard template allows (bounds the cost of the pools'
    /// validation rules).
    #[schemars(length(max = 8))]
    pub pools: Vec<PoolSpec>,
    pub global_topo_server: GlobalTopologyRef,
    pub credentials: CredentialsRef,
    #[serde(default)]
    pub pvc_deletion_policy: PvcDeletionPolicy,
    /// The postgres_exporter sidecar of every pool pod; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_exporter: Option<PostgresExporter>,
    /// TLS of the Multigres components (docs/security.md); none: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsRef>,
    /// The database's backup repository as resolved; none: a filesystem repository on a claim
    /// made from the first pool's data claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::BackupConfig>,
}

impl ShardStatus {
    /// The status fields the backup controller writes and the shard controller leaves alone.
    pub const WRITTEN_BY_BACKUPS: &[&str] = &["lastBackup"];
}

impl ShardSpec {
    /// The Multigres shard id: `key_range`, or the shard's name on a Shard written before it existed.
    pub fn multigres_shard(&self) -> &str {
        if self.key_range.is_empty() {
            &self.shard_name
        } else {
            &self.key_range
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The cell of the serving PRIMARY, read from the topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_cell: Option<String>,
    #[serde(default)]
    pub total_pods: i32,
    #[serde(default)]
    pub ready_pods: i32,
    /// The last switchover requested with the annotation `multigres.com/switchover-requested`
    /// (`kubectl multigres switchover`) and what became of it. Each request is acted on once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_switchover: Option<LastSwitchover>,
    /// The shard's last completed backup (written by the backup controller, field manager
    /// `multigres-backups`; the shard controller leaves it alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<crate::LastBackup>,
}

/// A requested switchover of a Shard's primary, as the shard controller handled it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastSwitchover {
    /// The request's time, as the annotation gave it: with `target`, the request's identity.
    pub requested_at: String,
    /// The pod the request asked to become the primary, if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The primary's pod when the switchover started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The primary's pod afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub result: SwitchoverResult,
    /// Why, in a sentence.
    #[serde(default)]
    pub message: String,
    /// When `result` was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// Where a requested switchover stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SwitchoverResult {
    /// multiadmin was asked; the controller waits for another primary.
    InProgress,
    /// Another pod is the primary.
    Succeeded,
    /// Not started: the request could not be carried out safely (the message says why).
    Refused,
    /// Started, but multiadmin refused it or no other primary was elected in time.
    Failed,
}

impl SwitchoverResult {
    /// Whether the request is done with (nothing more happens for it).
    pub fn is_final(self) -> bool {
        self != SwitchoverResult::InProgress
    }
}
