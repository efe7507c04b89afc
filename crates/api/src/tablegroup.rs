//! TableGroup: one database x tablegroup; owns one Shard per partition. Read-only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cluster::Partitioning;
use crate::common::{
    CredentialsRef, GlobalTopologyRef, PoolSpec, PostgresExporter, PvcDeletionPolicy, ShardImages,
    TlsRef,
};

/// A tablegroup of a database, resolved from a MultigresCluster.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "multigres.com",
    version = "v1alpha1",
    kind = "TableGroup",
    namespaced,
    status = "TableGroupStatus",
    shortname = "mgtg",
    category = "multigres",
    printcolumn = r#"{"name":"Database","type":"string","jsonPath":".spec.database"}"#,
    printcolumn = r#"{"name":"TableGroup","type":"string","jsonPath":".spec.tableGroup"}"#,
    printcolumn = r#"{"name":"Shards","type":"integer","jsonPath":".spec.partitioning.shards"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyShards"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TableGroupSpec {
    /// The logical database name.
    pub database: String,
    /// The logical tablegroup name.
    pub table_group: String,
    /// Images the shards' pods use.
    pub images: ShardImages,
    pub partitioning: Partitioning,
    pub shard_template: ShardTemplate,
    /// The global topology the shards' poolers register in.
    pub global_topo_server: GlobalTopologyRef,
    /// Postgres credentials.
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardTemplate {
    /// At most 8, as a MultigresCluster's shard template allows (bounds the cost of the pools'
    /// validation rules).
    #[schemars(length(max = 8))]
    pub pools: Vec<PoolSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableGroupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub shards: i32,
    #[serde(default)]
    pub ready_shards: i32,
}
