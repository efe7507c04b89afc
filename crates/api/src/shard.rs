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
    /// The shard's name among its table group's Shards (`0`, `1`, ...), as the CR definition has it.
    pub shard_name: String,
    /// The shard as Multigres names it (a key range): what multipooler's `--shard` and the topology
    /// records carry. `0-inf` for a table group of one shard.
    #[serde(default)]
    pub key_range: String,
    pub images: ShardImages,
    pub pools: Vec<PoolSpec>,
    pub global_topo_server: GlobalTopologyRef,
    pub credentials: CredentialsRef,
    #[serde(default)]
    pub pvc_deletion_policy: PvcDeletionPolicy,
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
}
