//! `kubectl multigres backup --wait` on the converged example, the operator running under its
//! chart's RBAC: the Backup covers every Shard of the database, completes (the simulator stands in
//! for multiadmin and pgBackRest), and is recorded on each Shard and on the cluster.

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use multigres_api::{MultigresCluster, Shard, labels};
use multigres_e2e::{ControlPlane, samples, wait_for};

pub async fn backup_of_a_database(
    cp: &ControlPlane,
    client: &Client,
    plugin: &std::path::Path,
    sample: &samples::SampleCluster,
) -> Result<()> {
    let ns = sample.namespace.as_str();
    let shards: Vec<Shard> = Api::<Shard>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("{}={}", labels::CLUSTER, sample.name)))
        .await?
        .items;
    let database = shards
        .first()
        .map(|s| s.spec.database.clone())
        .context("the example has Shards")?;
    let of_database: Vec<&Shard> = shards
        .iter()
        .filter(|s| s.spec.database == database)
        .collect();
    let out = super::run_plugin(
        cp,
        plugin,
        &[
            "backup",
            &sample.name,
            "-n",
            ns,
            "--database",
            &database,
            "--wait",
            "120",
            "-o",
            "json",
        ],
    )?;
    let backup: serde_json::Value = serde_json::from_str(&out)?;
    // Named by the plugin: the cluster, the database (`_` made `-`) and the time.
    let name = backup["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        name.starts_with(&format!("{}-{}-", sample.name, database.replace('_', "-"))),
        "{name}"
    );
    let status = &backup["status"];
    assert_eq!(status["phase"], "Completed", "{backup:#}");
    let parts = status["shards"].as_array().context("status.shards")?;
    assert_eq!(
        parts.len(),
        of_database.len(),
        "one part per Shard of {database}: {backup:#}"
    );
    assert!(status["sizeBytes"].as_i64().unwrap_or(0) > 0, "{backup:#}");

    let shard_api = Api::<Shard>::namespaced(client.clone(), ns);
    for shard in &of_database {
        let recorded = wait_for(
            &shard_api,
            &shard.name_any(),
            Duration::from_secs(30),
            |s| {
                s.status
                    .as_ref()
                    .and_then(|s| s.last_backup.as_ref())
                    .is_some_and(|b| b.backup == name)
            },
        )
        .await?;
        let id = recorded.status.unwrap().last_backup.unwrap().backup_id;
        assert!(
            parts.iter().any(|p| p["backupId"] == id.as_str()),
            "{id} of {} in {backup:#}",
            shard.name_any()
        );
    }
    let clusters = Api::<MultigresCluster>::namespaced(client.clone(), ns);
    wait_for(&clusters, &sample.name, Duration::from_secs(30), |c| {
        c.status.as_ref().is_some_and(|s| {
            s.last_backups.len() >= of_database.len()
                && s.last_backups.values().all(|b| b.backup == name)
        })
    })
    .await?;
    eprintln!(
        "backup of {database}: {} shard(s), {} bytes",
        parts.len(),
        status["sizeBytes"]
    );
    Ok(())
}
