//! A Backup's reconcile: find its Shards, ask multiadmin for each shard's backup once (the job id
//! is written to status before anything else, so a restart follows the same job instead of
//! starting another), follow the jobs, and once complete record the backup on the Shards, the
//! cluster and the backup-age metric.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use multigres_api::{
    Backup, BackupPhase, BackupStatus, LastBackup, MultigresCluster, Shard, ShardBackup, naming,
};
use multigres_runtime::error::{ChildError, Failure};
use multigres_runtime::run::within_deadline;
use multigres_topology::admin::{AdminError, BackupInfo, JobStatus, Multiadmin};

use super::Ctx;
use super::plan::{self, ShardTarget};

/// How long a shard's backup may wait to start (no serving replica, multiadmin unreachable)
/// before the Backup fails: a schedule's next run tries again.
pub const START_LIMIT: Duration = Duration::from_secs(15 * 60);
const POLL_RUNNING: Duration = Duration::from_secs(5);
const POLL_PENDING: Duration = Duration::from_secs(15);

pub async fn reconcile(backup: Arc<Backup>, ctx: Arc<Ctx>) -> Result<Action, ChildError> {
    let _timer = ctx.metrics.reconcile_started();
    let action = within_deadline(backup.as_ref(), reconcile_inner(&backup, &ctx)).await?;
    ctx.succeeded(backup.as_ref());
    Ok(action)
}

async fn reconcile_inner(backup: &Backup, ctx: &Ctx) -> Result<Action, ChildError> {
    if !ctx.state.caches.is_ready() {
        return Err(ChildError::new(backup, Failure::CacheNotReady));
    }
    let ns = backup.namespace().unwrap_or_default();
    let target = &backup.spec.target;
    let mut status = backup.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    if status.phase.is_some_and(BackupPhase::is_final) {
        if status.phase == Some(BackupPhase::Completed) {
            record(backup, &status, ctx).await?;
        }
        return Ok(Action::await_change());
    }
    if status.shards.is_empty() {
        let shards = ctx.state.shards.state();
        let found = plan::targets(&ns, target, shards.iter().map(|s| s.as_ref()));
        status.shards = found
            .into_iter()
            .map(|t| ShardBackup {
                shard_resource: t.resource,
                table_group: t.table_group,
                shard: t.shard,
                phase: BackupPhase::Pending,
                job_id: None,
                backup_id: None,
                size_bytes: None,
                start_time: None,
                stop_time: None,
                message: String::new(),
            })
            .collect();
        if status.shards.is_empty() {
            let waited = since(backup.creation_timestamp().map(|t| t.0), now);
            let message = plan::no_targets_message(target);
            let phase = if waited > START_LIMIT {
                BackupPhase::Failed
            } else {
                BackupPhase::Pending
            };
            return write_waiting(backup, ctx, status, phase, message, now).await;
        }
        status.start_time = Some(Time(now));
    }

    let address = naming::multiadmin_address(&target.cluster, &ns);
    let mut admin = match Multiadmin::connect(&address, &ctx.state.mapping, ctx.state.timeout).await
    {
        Ok(admin) => Some(admin),
        Err(e) => {
            for part in status.shards.iter_mut().filter(|p| !p.phase.is_final()) {
                part.message = e.to_string();
            }
            None
        }
    };
    if let Some(admin) = admin.as_mut() {
        start_pending(backup, ctx, admin, &mut status, now).await?;
        follow_running(admin, &database(backup), &mut status, now).await;
    }
    let started = status.start_time.as_ref().map(|t| t.0);
    for part in status.shards.iter_mut() {
        if part.phase == BackupPhase::Pending && since(started, now) > START_LIMIT {
            part.phase = BackupPhase::Failed;
            part.message = format!(
                "not started within {} minutes: {}",
                START_LIMIT.as_secs() / 60,
                part.message
            );
        }
    }
    let before = plan::summarize(&mut status, backup.metadata.generation, now);
    write(backup, ctx, &status).await?;
    announce(backup, ctx, before, &status).await;
    if status.phase == Some(BackupPhase::Completed)
        && let Some(admin) = admin.as_mut()
    {
        expire(backup, ctx, admin, &status).await;
    }
    match status.phase {
        Some(BackupPhase::Completed) => {
            record(backup, &status, ctx).await?;
            Ok(Action::await_change())
        }
        Some(BackupPhase::Failed) => Ok(Action::await_change()),
        Some(BackupPhase::Running)
            if status
                .shards
                .iter()
                .any(|p| p.phase == BackupPhase::Running) =>
        {
            Ok(Action::requeue(POLL_RUNNING))
        }
        _ => Ok(Action::requeue(POLL_PENDING)),
    }
}

/// The key multiadmin knows the shard of `part` by.
fn shard_key(database: &str, part: &ShardBackup) -> multigres_topology::ShardKey {
    multigres_topology::ShardKey {
        database: database.to_string(),
        table_group: part.table_group.clone(),
        shard: part.shard.clone(),
    }
}

fn database(backup: &Backup) -> String {
    backup.spec.target.database.clone()
}

fn since(start: Option<Timestamp>, now: Timestamp) -> Duration {
    start
        .and_then(|s| now.duration_since(s).try_into().ok())
        .unwrap_or_default()
}

/// Asks multiadmin to start each pending shard's backup; each job id is written to status at once.
async fn start_pending(
    backup: &Backup,
    ctx: &Ctx,
    admin: &mut Multiadmin,
    status: &mut BackupStatus,
    now: Timestamp,
) -> Result<(), ChildError> {
    let target = &backup.spec.target;
    for i in 0..status.shards.len() {
        if status.shards[i].phase != BackupPhase::Pending {
            continue;
        }
        let part = &status.shards[i];
        let key = shard_key(&target.database, part);
        let asked = admin
            .backup(
                &key,
                target.r#type.as_str(),
                target.force_primary.unwrap_or(false),
            )
            .await;
        let part = &mut status.shards[i];
        match asked {
            Ok(job_id) => {
                part.phase = BackupPhase::Running;
                part.job_id = Some(job_id);
                part.start_time = Some(Time(now));
                part.message.clear();
                // The job id first: a crash after this write follows the job, never repeats it.
                write(backup, ctx, status).await?;
            }
            Err(AdminError::Refused {
                code: tonic::Code::FailedPrecondition | tonic::Code::NotFound,
                message,
            }) => {
                // No serving replica (or no pooler yet): wait for one.
                part.message = format!("waiting: {message}");
            }
            Err(e @ AdminError::Unreachable { .. }) => part.message = format!("waiting: {e}"),
            Err(e) => {
                part.phase = BackupPhase::Failed;
                part.message = e.to_string();
            }
        }
    }
    Ok(())
}

/// Reads each running job; a completed one gets its id, size and times from the repository list.
async fn follow_running(
    admin: &mut Multiadmin,
    database: &str,
    status: &mut BackupStatus,
    now: Timestamp,
) {
    for part in status.shards.iter_mut() {
        let (BackupPhase::Running, Some(job_id)) = (part.phase, part.job_id.clone()) else {
            continue;
        };
        let key = shard_key(database, part);
        match admin.backup_job(&key, &job_id).await {
            Ok(job) => match job.status {
                JobStatus::Completed => {
                    part.phase = BackupPhase::Completed;
                    part.stop_time = Some(Time(now));
                    part.message.clear();
                    let listed = admin.backups(&key).await.unwrap_or_default();
                    if let Some(info) = listed.iter().find(|b| b.backup_id == job.backup_id) {
                        describe(part, info);
                    }
                    part.backup_id = Some(job.backup_id);
                }
                JobStatus::Failed => {
                    part.phase = BackupPhase::Failed;
                    part.stop_time = Some(Time(now));
                    part.message = format!("pgBackRest failed: {}", job.error);
                }
                _ => {}
            },
            Err(AdminError::Refused {
                code: tonic::Code::NotFound,
                message,
            }) => {
                part.phase = BackupPhase::Failed;
                part.stop_time = Some(Time(now));
                part.message = format!("multiadmin no longer knows job {job_id}: {message}");
            }
            Err(e) => part.message = format!("following job {job_id}: {e}"),
        }
    }
}

fn describe(part: &mut ShardBackup, info: &BackupInfo) {
    part.size_bytes = i64::try_from(info.backup_size_bytes).ok();
    let time = |t: &Option<multigres_topology::prost_types::Timestamp>| {
        t.as_ref()
            .and_then(|t| Timestamp::new(t.seconds, t.nanos).ok())
            .map(Time)
    };
    if let Some(start) = time(&info.start_timestamp) {
        part.start_time = Some(start);
    }
    if let Some(stop) = time(&info.stop_timestamp) {
        part.stop_time = Some(stop);
    }
}

async fn write_waiting(
    backup: &Backup,
    ctx: &Ctx,
    mut status: BackupStatus,
    phase: BackupPhase,
    message: String,
    now: Timestamp,
) -> Result<Action, ChildError> {
    let before = status.phase;
    status.phase = Some(phase);
    let reason = if phase == BackupPhase::Failed {
        "BackupFailed"
    } else {
        "BackupPending"
    };
    multigres_runtime::conditions::set(
        &mut status.conditions,
        multigres_runtime::conditions::ConditionUpdate::new(
            plan::COMPLETED,
            false,
            reason,
            message.clone(),
        ),
        backup.metadata.generation,
        now,
    );
    if phase.is_final() {
        status.stop_time = Some(Time(now));
    }
    write(backup, ctx, &status).await?;
    if before != Some(phase) {
        ctx.events.warning(backup, reason, &message).await;
    }
    Ok(if phase.is_final() {
        Action::await_change()
    } else {
        Action::requeue(POLL_PENDING)
    })
}

async fn write(backup: &Backup, ctx: &Ctx, status: &BackupStatus) -> Result<(), ChildError> {
    ctx.applier
        .apply_status(backup, backup.status.as_ref(), status)
        .await
        .map(|_| ())
        .map_err(|e| ChildError::new(backup, Failure::Status(Box::new(e))))
}

/// Events on the phase's transitions only.
async fn announce(backup: &Backup, ctx: &Ctx, before: Option<BackupPhase>, status: &BackupStatus) {
    let Some(phase) = status.phase else { return };
    if before == Some(phase) {
        return;
    }
    let shards = status.shards.len();
    match phase {
        BackupPhase::Running => {
            let note = format!("multiadmin took the backup of {shards} shard(s)");
            ctx.events.normal(backup, "BackupStarted", &note).await
        }
        BackupPhase::Completed => {
            let note = format!(
                "{shards} shard backup(s) in the repository ({} bytes)",
                status.size_bytes.unwrap_or(0)
            );
            ctx.events.normal(backup, "BackupCompleted", &note).await
        }
        BackupPhase::Failed => {
            let message = status
                .conditions
                .first()
                .map(|c| c.message.clone())
                .unwrap_or_default();
            ctx.events.warning(backup, "BackupFailed", &message).await
        }
        BackupPhase::Pending => {}
    }
}

/// Applies the database's `backup.retention` once the Backup completed: older full backups (and
/// what depends on them) expire. A failure is an Event; the Backup stays Completed.
async fn expire(backup: &Backup, ctx: &Ctx, admin: &mut Multiadmin, status: &BackupStatus) {
    let ns = backup.namespace().unwrap_or_default();
    let target = &backup.spec.target;
    let Some(full) = ctx.state.retention(&ns, &target.cluster, &target.database) else {
        return;
    };
    for part in &status.shards {
        let key = shard_key(&target.database, part);
        match admin.expire_backups(&key, full).await {
            Ok(expired) if expired.is_empty() => {}
            Ok(expired) => {
                let note = format!(
                    "{}: retention keeps {full} full backups; expired {}",
                    part.shard_resource,
                    expired.join(", ")
                );
                ctx.events.normal(backup, "BackupsExpired", &note).await
            }
            Err(e) => {
                let note = format!(
                    "{}: expiring beyond {full} full backups: {e}",
                    part.shard_resource
                );
                ctx.events.warning(backup, "ExpireFailed", &note).await
            }
        }
    }
}

/// A completed Backup becomes each Shard's and the cluster's last backup (unless a newer one is
/// there already) and the shards' backup-age metric.
async fn record(backup: &Backup, status: &BackupStatus, ctx: &Ctx) -> Result<(), ChildError> {
    let ns = backup.namespace().unwrap_or_default();
    let target = &backup.spec.target;
    let shards = ctx.state.shards.state();
    let mut for_cluster = serde_json::Map::new();
    for part in &status.shards {
        let (Some(backup_id), Some(completed_at)) = (&part.backup_id, &part.stop_time) else {
            continue;
        };
        let last = LastBackup {
            backup_id: backup_id.clone(),
            backup: backup.name_any(),
            completed_at: completed_at.clone(),
            size_bytes: part.size_bytes,
        };
        raise_backup_gauge(
            ctx,
            &ns,
            &target.cluster,
            &target.database,
            part,
            completed_at,
        );
        let shard = shards
            .iter()
            .find(|s| s.namespace().as_deref() == Some(&ns) && s.name_any() == part.shard_resource);
        if let Some(shard) = shard {
            let recorded = shard.status.as_ref().and_then(|s| s.last_backup.as_ref());
            if recorded.is_none_or(|r| r.completed_at.0 < last.completed_at.0) {
                let fields = serde_json::json!({ "lastBackup": last });
                record_on::<Shard>(ctx, backup, &ns, &shard.name_any(), fields).await?;
            }
        }
        let key = ShardTarget::status_key(&target.database, &part.table_group, &part.shard);
        let recorded = ctx.state.cluster_last_backup(&ns, &target.cluster, &key);
        if recorded.is_none_or(|r| r.completed_at.0 < last.completed_at.0) {
            for_cluster.insert(key, serde_json::to_value(&last).unwrap_or_default());
        }
    }
    if !for_cluster.is_empty() {
        let fields = serde_json::json!({ "lastBackups": for_cluster });
        record_on::<MultigresCluster>(ctx, backup, &ns, &target.cluster, fields).await?;
    }
    Ok(())
}

/// The shard's backup-age gauge, raised to `completed_at`: completed Backups are reconciled in
/// any order after a restart, so only a newer one counts.
fn raise_backup_gauge(
    ctx: &Ctx,
    ns: &str,
    cluster: &str,
    database: &str,
    part: &ShardBackup,
    completed_at: &Time,
) {
    let gauge = ctx.metrics.backup_completed.get_or_create(&vec![
        // Prefixed: a scrape of the controller's pod sets its own `namespace`.
        ("multigres_namespace".into(), ns.to_string()),
        ("multigres_cluster".into(), cluster.to_string()),
        ("multigres_database".into(), database.to_string()),
        ("multigres_tablegroup".into(), part.table_group.clone()),
        ("multigres_shard".into(), part.shard.clone()),
    ]);
    let completed = completed_at.0.as_second() as f64;
    if gauge.get() < completed {
        gauge.set(completed);
    }
}

/// Merges `fields` into the status of `name` as the field manager `multigres-backups`
/// (`Applier::merge_status`); an object gone is nothing to record on.
async fn record_on<K>(
    ctx: &Ctx,
    backup: &Backup,
    ns: &str,
    name: &str,
    fields: serde_json::Value,
) -> Result<(), ChildError>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
    K: serde::de::DeserializeOwned + Clone + std::fmt::Debug,
{
    ctx.state
        .recorder
        .merge_status::<K>(ns, name, fields)
        .await
        .map(|_| ())
        .map_err(|e| ChildError::new(backup, Failure::Status(Box::new(e))))
}
