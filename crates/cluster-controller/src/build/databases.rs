//! The Database records the cluster registers in the global topology, and the annotation that
//! lists them.

use super::*;

/// The Database record multiorch and the poolers read. multipooler refuses a Database without a
/// backup location, and replicas bootstrap from its backups. By default backups go to a
/// filesystem repository at [`BACKUP_REPOSITORY_PATH`], where every shard pod mounts its shard's
/// backup volume; `backup.s3` names object storage instead (credentials from multipooler's
/// environment when a Secret is given). With `backup.encryption`, poolers refuse an unencrypted
/// repository. The first repository generation (0) is authoritative.
pub fn database_record(db: &DatabaseRegistration) -> pb::Database {
    let (quorum, label, what) = match db.durability.quorum_type {
        QuorumType::AtLeastN => (pb::QuorumType::AtLeastN, "AT_LEAST", "instances"),
        QuorumType::MultiCellAtLeastN => (
            pb::QuorumType::MultiCellAtLeastN,
            "MULTI_CELL_AT_LEAST",
            "cells",
        ),
    };
    let count = db.durability.required_count;
    pb::Database {
        name: db.name.clone(),
        backup_location: Some(backup_location(db.backup.as_ref())),
        cells: db.cells.clone(),
        bootstrap_durability_policy: Some(pb::DurabilityPolicy {
            policy_name: format!("{label}_{count}"),
            policy_version: 1,
            quorum_type: quorum as i32,
            required_count: count,
            description: format!("a write is durable once {count} {what} have it"),
        }),
    }
}

fn backup_location(config: Option<&multigres_api::BackupConfig>) -> pb::BackupLocation {
    let location = match config.and_then(|c| c.s3.as_ref()) {
        Some(s3) => pb::backup_location::Location::S3(pb::S3Backup {
            bucket: s3.bucket.clone(),
            region: s3.region.clone(),
            endpoint: s3.endpoint.clone().unwrap_or_default(),
            key_prefix: s3.key_prefix.clone().unwrap_or_default(),
            use_env_credentials: s3.credentials_secret.is_some(),
        }),
        None => pb::backup_location::Location::Filesystem(pb::FilesystemBackup {
            path: BACKUP_REPOSITORY_PATH.to_string(),
        }),
    };
    pb::BackupLocation {
        location: Some(location),
        require_initial_repo_encryption: config.is_some_and(|c| c.encryption.is_some()),
        authoritative_generation: 0,
    }
}

/// The annotation on a cluster that lists the databases it registered in the global topology, so
/// that it deregisters only its own records.
pub const REGISTERED_DATABASES: &str = "multigres.com/registered-databases";

/// Parses the annotation's value (comma separated, sorted).
pub fn registered_databases(cluster: &MultigresCluster) -> BTreeSet<String> {
    cluster
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REGISTERED_DATABASES))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The annotation's value for `names`.
pub fn registered_value(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(",")
}
