//! The Database records the cluster registers in the global topology, and the annotation that
//! lists them.

use super::*;

/// The Database record multiorch and the poolers read. Backups go to a filesystem repository at
/// [`BACKUP_REPOSITORY_PATH`], where every shard pod mounts its shard's backup volume: multipooler
/// refuses a Database without a backup location, and replicas bootstrap from its backups. No
/// encryption is required and the first repository generation (0) is authoritative.
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
        backup_location: Some(pb::BackupLocation {
            location: Some(pb::backup_location::Location::Filesystem(
                pb::FilesystemBackup {
                    path: BACKUP_REPOSITORY_PATH.to_string(),
                },
            )),
            require_initial_repo_encryption: false,
            authoritative_generation: 0,
        }),
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
