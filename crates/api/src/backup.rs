//! Backup and ScheduledBackup: a pgBackRest backup of one shard (or of every shard of a database)
//! taken through multiadmin, and a cron schedule that creates Backups (docs/backup-restore.md).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One backup request. Its spec never changes: a Backup is a record of one run.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "multigres.com",
    version = "v1alpha1",
    kind = "Backup",
    namespaced,
    status = "BackupStatus",
    shortname = "mgbackup",
    category = "multigres",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Database","type":"string","jsonPath":".spec.database"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".status.backupId"}"#,
    printcolumn = r#"{"name":"Size","type":"integer","format":"int64","jsonPath":".status.sizeBytes"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self == oldSelf", "message": "a Backup's spec cannot change: create another Backup"},
    {"rule": "!has(self.shard) || has(self.tableGroup)", "message": "shard needs tableGroup"}
]))]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    #[serde(flatten)]
    pub target: BackupTarget,
}

/// What to back up and how: the part a ScheduledBackup stamps into each Backup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupTarget {
    /// The MultigresCluster, in the Backup's namespace.
    #[schemars(length(min = 1, max = 63))]
    pub cluster: String,
    /// The database, as the cluster names it.
    #[schemars(length(min = 1, max = 63))]
    pub database: String,
    /// Only this table group; every table group of the database when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_group: Option<String>,
    /// Only this shard of `tableGroup` (its name among the table group's shards, `0`, `1`, ... or
    /// the Multigres key range, `0-inf`); every shard when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// pgBackRest's backup type. Differential and incremental need an earlier full backup.
    #[serde(default)]
    pub r#type: BackupType,
    /// Take the backup on the primary instead of a replica (multiadmin picks a replica by default,
    /// to spare the primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_primary: Option<bool>,
}

/// pgBackRest's backup types, as multiadmin's Backup RPC names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupType {
    #[default]
    Full,
    Differential,
    Incremental,
}

impl BackupType {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Full => "full",
            BackupType::Differential => "differential",
            BackupType::Incremental => "incremental",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// When the first shard's backup was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the last shard's backup ended (completed or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_time: Option<Time>,
    /// The pgBackRest backup id, when the Backup covers one shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// The database size the backups cover, summed over the shards (pgBackRest's backup size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// One entry per shard backed up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardBackup>,
    /// `Completed` (True once every shard's backup is in the repository) and `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Where a Backup, or one shard's part of it, stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackupPhase {
    /// Not asked for yet (waiting for the cluster's shards or multiadmin).
    Pending,
    /// multiadmin took the request and pgBackRest runs.
    Running,
    Completed,
    /// Final: a new Backup is needed to try again.
    Failed,
}

impl BackupPhase {
    pub fn is_final(self) -> bool {
        matches!(self, BackupPhase::Completed | BackupPhase::Failed)
    }
}

/// One shard's backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardBackup {
    /// The Shard object.
    pub shard_resource: String,
    pub table_group: String,
    /// The Multigres shard id (key range).
    pub shard: String,
    pub phase: BackupPhase,
    /// multiadmin's job id, the key its status is read by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_time: Option<Time>,
    /// Why it failed or waits, in a sentence.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The last completed backup of a shard, as the Shard and the MultigresCluster show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastBackup {
    pub backup_id: String,
    /// The Backup object that took it.
    pub backup: String,
    pub completed_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
}

/// Creates a Backup on a cron schedule.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "multigres.com",
    version = "v1alpha1",
    kind = "ScheduledBackup",
    namespaced,
    status = "ScheduledBackupStatus",
    shortname = "mgsbackup",
    category = "multigres",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.backup.cluster"}"#,
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Suspend","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Last","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"LastSuccess","type":"date","jsonPath":".status.lastSuccessfulTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledBackupSpec {
    /// Five-field cron syntax in UTC (`minute hour day-of-month month day-of-week`, with `*`,
    /// lists, ranges and steps), or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    #[schemars(length(min = 1, max = 128))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.startsWith('@') ? self in ['@hourly', '@daily', '@midnight', '@weekly', '@monthly', '@yearly', '@annually'] : self.split(' ').filter(f, f != '').size() == 5",
         "message": "schedule must have five fields (minute hour day-of-month month day-of-week) or be @hourly, @daily, @weekly, @monthly or @yearly"}
    ]))]
    pub schedule: String,
    /// No new Backups while true; running ones finish.
    #[serde(default)]
    pub suspend: bool,
    /// Completed Backups of this schedule to keep (older ones are deleted; their pgBackRest
    /// backups stay in the repository, which keeps its own retention).
    #[serde(default = "default_successful_history")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_backups_history_limit: i32,
    /// Failed Backups of this schedule to keep.
    #[serde(default = "default_failed_history")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_backups_history_limit: i32,
    /// A missed run is still started up to this many seconds late (after an operator outage);
    /// later, it is skipped and the next one waited for.
    #[serde(default = "default_starting_deadline")]
    #[schemars(range(min = 10))]
    pub starting_deadline_seconds: i64,
    /// What each Backup backs up.
    pub backup: BackupTarget,
}

fn default_successful_history() -> i32 {
    3
}

fn default_failed_history() -> i32 {
    1
}

fn default_starting_deadline() -> i64 {
    300
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledBackupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The scheduled time of the last Backup created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the last Backup of this schedule completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// The Backup of this schedule still running, if any (a run is skipped while one is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// `Scheduled` (False with the reason when the schedule is suspended or cannot be read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Where a database's pgBackRest repository lives and how it is kept: the cluster's default
/// (`spec.backup`), replaced as a whole by a database's own (`spec.databases[].spec.backup`).
/// Written into the database's topology record and into every pool pod (docs/backup-restore.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.filesystem) && has(self.s3))", "message": "set filesystem or s3, not both"}
]))]
pub struct BackupConfig {
    /// A repository on a PersistentVolumeClaim per shard (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemRepository>,
    /// A repository in S3-compatible object storage, one per database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Repository>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<BackupRetention>,
    /// Encrypts the repository (pgBackRest aes-256-cbc); poolers refuse to start without the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<BackupEncryption>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilesystemRepository {
    /// The claim of each shard's repository (`backups-<shard>`, mounted by every pool pod of the
    /// shard: pods on several nodes need ReadWriteMany). Default: the first pool's data claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_claim_template: Option<k8s_openapi::api::core::v1::PersistentVolumeClaimSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Repository {
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// An S3-compatible endpoint (`https://minio.example:9000`); AWS when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub endpoint: Option<String>,
    /// The key prefix of the database's repository. Default `<namespace>/<cluster>/<database>`.
    /// Restoring into a new cluster means pointing its database at an existing prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub key_prefix: Option<String>,
    /// A Secret with the access key: mounted into multipooler's environment. Without it,
    /// pgBackRest finds credentials itself (IRSA or instance metadata on AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<S3Credentials>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Credentials {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Default `AWS_ACCESS_KEY_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_key: Option<String>,
    /// Default `AWS_SECRET_ACCESS_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_key: Option<String>,
    /// A session token, when the key is temporary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_key: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRetention {
    /// Full backups kept: after each completed Backup the operator asks multiadmin to expire older
    /// ones (ExpireBackups). At most 7: multipooler itself expires beyond 7 after every backup.
    #[schemars(range(min = 1, max = 7))]
    pub full_backups: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupEncryption {
    /// The Secret key holding multipooler's cipher key file: JSON mapping the repository
    /// generation to its passphrase, `{"1": "<passphrase>"}`.
    pub key_secret: SecretKey,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKey {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

impl S3Credentials {
    /// `(environment variable, Secret key)` pairs for multipooler.
    pub fn env_keys(&self) -> Vec<(&'static str, String)> {
        let or = |set: &Option<String>, default: &str| set.clone().unwrap_or(default.into());
        let mut keys = vec![
            (
                "AWS_ACCESS_KEY_ID",
                or(&self.access_key_id_key, "AWS_ACCESS_KEY_ID"),
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                or(&self.secret_access_key_key, "AWS_SECRET_ACCESS_KEY"),
            ),
        ];
        if let Some(token) = &self.session_token_key {
            keys.push(("AWS_SESSION_TOKEN", token.clone()));
        }
        keys
    }
}

impl S3Repository {
    /// The key prefix the database's repository uses.
    pub fn key_prefix_for(&self, namespace: &str, cluster: &str, database: &str) -> String {
        self.key_prefix
            .clone()
            .unwrap_or_else(|| format!("{namespace}/{cluster}/{database}"))
    }
}
