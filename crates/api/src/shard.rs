//! Shard: one partition of a tablegroup; owns the Postgres + multipooler pods of every pool. Read-only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{CredentialsRef, GlobalTopologyRef, PoolSpec, PvcDeletionPolicy, ShardImages};

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
    /// The shard's index in its table group (`0`, `1`, ...). Multigres names shards by key range
    /// instead: the only shard of a table group is `0-inf` there.
    pub shard_name: String,
    /// How many shards the table group has; with one, the shard's Multigres name is `0-inf`.
    #[serde(default = "one_shard")]
    pub shard_count: u32,
    pub images: ShardImages,
    pub pools: Vec<PoolSpec>,
    pub global_topo_server: GlobalTopologyRef,
    pub credentials: CredentialsRef,
    #[serde(default)]
    pub pvc_deletion_policy: PvcDeletionPolicy,
}

impl ShardSpec {
    /// The shard's name in the Multigres topology (multipooler `--shard`, `ShardKey.shard`).
    pub fn multigres_shard(&self) -> String {
        crate::multigres::multigres_shard_id(&self.shard_name, self.shard_count)
    }
}

/// Shards written before `shardCount` existed belong to unsharded table groups: the pinned
/// Multigres serves nothing else.
fn one_shard() -> u32 {
    1
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
}
