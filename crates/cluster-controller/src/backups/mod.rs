//! Backups (docs/backup-restore.md): a Backup asks multiadmin for a pgBackRest backup of each
//! shard it covers and records the result; a ScheduledBackup creates Backups on a cron schedule
//! and prunes their history. [`plan`] decides, [`backup`] and [`schedule`] fetch, call and write.

pub mod backup;
pub mod plan;
pub mod schedule;

use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use multigres_api::labels;
use multigres_api::{Backup, LastBackup, MultigresCluster, ScheduledBackup, Shard};
use multigres_runtime::CommonArgs;
use multigres_runtime::caches::{self, CachesReady};

use crate::cached;
use multigres_runtime::client::namespaced_or_all as api;
use multigres_runtime::run::{self, Started};
use multigres_topology::AddressMapping;

/// The field manager of the backup fields on Shard and MultigresCluster status.
pub const BACKUP_MANAGER: &str = "multigres-backups";

/// What the backup reconciles read besides their object.
pub struct BackupState {
    pub backups: Store<Backup>,
    pub shards: Store<Shard>,
    pub clusters: Store<MultigresCluster>,
    pub mapping: AddressMapping,
    /// Deadline of every multiadmin call.
    pub timeout: Duration,
    pub caches: CachesReady,
    /// Writes the backup fields of Shard and cluster status, as [`BACKUP_MANAGER`].
    pub recorder: multigres_runtime::apply::Applier,
}

impl BackupState {
    fn cluster(&self, ns: &str, name: &str) -> Option<std::sync::Arc<MultigresCluster>> {
        self.clusters.state().into_iter().find(|c| {
            c.metadata.namespace.as_deref() == Some(ns) && c.metadata.name.as_deref() == Some(name)
        })
    }

    /// The full backups `database` of `cluster` keeps (`backup.retention.fullBackups`), if set.
    pub fn retention(&self, ns: &str, cluster: &str, database: &str) -> Option<u32> {
        let found = self.cluster(ns, cluster)?;
        let config = multigres_api::resolve::backup_config(&found.spec, ns, cluster, database)?;
        u32::try_from(config.retention?.full_backups).ok()
    }

    /// The last backup the cluster's status records for `key` (`<db>/<tg>/<shard>`).
    pub fn cluster_last_backup(&self, ns: &str, cluster: &str, key: &str) -> Option<LastBackup> {
        self.cluster(ns, cluster)?
            .status
            .as_ref()?
            .last_backups
            .get(key)
            .cloned()
    }
}

pub type Ctx = run::Context<BackupState>;

/// Runs the Backup and ScheduledBackup controllers until shutdown.
pub async fn run(started: &Started, args: &CommonArgs, mapping: AddressMapping, timeout: Duration) {
    let client = started.client.clone();
    let ns = args.watch_namespace.as_deref();
    let all = watcher::Config::default;
    let managed = format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE);
    let (backups, backup_events, backups_synced) = cached(api::<Backup>(&client, ns), all());
    let (schedule_backups, schedule_backup_events, schedule_backups_synced) =
        cached(api::<Backup>(&client, ns), all());
    let (schedules, schedule_events, schedules_synced) =
        cached(api::<ScheduledBackup>(&client, ns), all());
    let (shards, shard_events, shards_synced) =
        cached(api::<Shard>(&client, ns), all().labels(&managed));
    let (clusters, cluster_events, clusters_synced) =
        cached(api::<MultigresCluster>(&client, ns), all());
    let caches_ready = CachesReady::spawn(
        vec![
            backups_synced,
            schedule_backups_synced,
            schedules_synced,
            shards_synced,
            clusters_synced,
        ],
        started.readiness.clone(),
    );
    let state = |backups: Store<Backup>| BackupState {
        backups,
        shards: shards.clone(),
        clusters: clusters.clone(),
        mapping: mapping.clone(),
        timeout,
        caches: caches_ready.clone(),
        recorder: multigres_runtime::apply::Applier::new(client.clone(), BACKUP_MANAGER),
    };
    // Shards and clusters are read from their caches; their streams only fill them.
    tokio::spawn(shard_events.for_each(|_| futures::future::ready(())));
    tokio::spawn(cluster_events.for_each(|_| futures::future::ready(())));

    let config = ControllerConfig::default().concurrency(args.concurrency);
    let backup_controller =
        Controller::for_stream(caches::applied(backup_events, &backups), backups.clone())
            .with_config(config.clone())
            .graceful_shutdown_on(started.shutdown())
            .run(
                backup::reconcile,
                run::error_policy,
                started.context(state(backups.clone())),
            )
            .for_each(|_| futures::future::ready(()));
    let schedule_controller =
        Controller::for_stream(caches::applied(schedule_events, &schedules), schedules)
            .with_config(config)
            .owns_stream(caches::touched(schedule_backup_events, &schedule_backups))
            .graceful_shutdown_on(started.shutdown())
            .run(
                schedule::reconcile,
                run::error_policy,
                started.context(state(schedule_backups.clone())),
            )
            .for_each(|_| futures::future::ready(()));
    tokio::join!(backup_controller, schedule_controller);
}
