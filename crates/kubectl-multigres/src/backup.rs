//! `kubectl multigres backup`: creates a Backup of a cluster's database (or of one table group or
//! shard) and, with `--wait`, follows it on a watch until it is Completed or Failed. The plugin
//! never talks to multiadmin: the backup controller does (docs/backup-restore.md).

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use multigres_api::{Backup, BackupPhase, BackupSpec, BackupTarget};

/// The Backup to create: named `<cluster>-<database>-<time>` unless a name is given (a database's
/// `_` becomes `-`: object names allow no underscore).
pub fn backup(name: Option<&str>, target: BackupTarget, at: &str) -> Backup {
    let name = name.map(String::from).unwrap_or_else(|| {
        let stamp: String = at.chars().filter(|c| c.is_ascii_digit()).take(14).collect();
        let database = target.database.replace('_', "-");
        format!("{}-{database}-{stamp}", target.cluster)
    });
    Backup::new(&name, BackupSpec { target })
}

/// The Backup for a terminal: phase, id, size and each shard's part.
pub fn render(backup: &Backup) -> String {
    let status = backup.status.clone().unwrap_or_default();
    let phase = status
        .phase
        .map_or("Pending".to_string(), |p| format!("{p:?}"));
    let mut out = format!("Backup {}: {phase}", backup.name_any());
    if let Some(size) = status.size_bytes {
        out.push_str(&format!(", {size} bytes"));
    }
    if let Some(condition) = status.conditions.first()
        && !condition.message.is_empty()
        && condition.status != "True"
    {
        out.push_str(&format!(" ({})", condition.message));
    }
    out.push('\n');
    for part in &status.shards {
        out.push_str(&format!(
            "  {} ({}/{}): {:?} {}\n",
            part.shard_resource,
            part.table_group,
            part.shard,
            part.phase,
            part.backup_id.as_deref().unwrap_or("")
        ));
    }
    out
}

/// Creates `backup`; with `wait`, returns it once final (or as it is when `wait` runs out).
pub async fn run(
    client: &Client,
    namespace: &str,
    backup: &Backup,
    wait: Option<Duration>,
) -> Result<Backup> {
    let api: Api<Backup> = Api::namespaced(client.clone(), namespace);
    let created = api
        .create(&PostParams::default(), backup)
        .await
        .with_context(|| format!("creating Backup {namespace}/{}", backup.name_any()))?;
    let Some(wait) = wait else {
        return Ok(created);
    };
    let final_phase = |b: Option<&Backup>| {
        b.and_then(|b| b.status.as_ref()?.phase)
            .is_some_and(BackupPhase::is_final)
    };
    let name = created.name_any();
    match tokio::time::timeout(wait, await_condition(api.clone(), &name, final_phase)).await {
        Ok(Ok(Some(done))) => Ok(done),
        _ => Ok(api.get(&name).await?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_named_for_its_cluster_database_and_time() {
        let target = BackupTarget {
            cluster: "prod".into(),
            database: "orders_db".into(),
            ..Default::default()
        };
        let b = backup(None, target.clone(), "2026-12-02T18:20:05.123Z");
        assert_eq!(b.name_any(), "prod-orders-db-20261202182005");
        assert_eq!(b.spec.target, target);
        assert_eq!(backup(Some("mine"), target, "x").name_any(), "mine");
    }

    #[test]
    fn the_terminal_shows_phase_size_and_each_shard() {
        let mut b = backup(
            Some("b"),
            BackupTarget {
                cluster: "c".into(),
                database: "db".into(),
                ..Default::default()
            },
            "",
        );
        b.status = Some(serde_json::from_value(serde_json::json!({
            "phase": "Completed", "sizeBytes": 42,
            "shards": [{"shardResource": "c-db-default-0", "tableGroup": "default", "shard": "0-inf",
                        "phase": "Completed", "backupId": "20261202-101500F"}]
        })).unwrap());
        assert_eq!(
            render(&b),
            "Backup b: Completed, 42 bytes\n  c-db-default-0 (default/0-inf): Completed 20261202-101500F\n"
        );
    }
}
