//! What a Backup and a ScheduledBackup should do next, decided from plain data: which Shards a
//! Backup covers, where it stands overall, and when a schedule creates and prunes Backups.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use multigres_api::cron::Schedule;
use multigres_api::{
    Backup, BackupPhase, BackupStatus, BackupTarget, ScheduledBackup, Shard, ShardBackup, labels,
};
use multigres_runtime::conditions::{self, ConditionUpdate};

/// The condition a Backup reports: True once every shard's backup is in the repository.
pub const COMPLETED: &str = "Completed";
/// The condition a ScheduledBackup reports: True while it creates Backups on time.
pub const SCHEDULED: &str = "Scheduled";

/// A shard to back up: the Shard object and the key multiadmin knows it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardTarget {
    pub resource: String,
    pub database: String,
    pub table_group: String,
    pub shard: String,
}

impl ShardTarget {
    pub fn key(&self) -> multigres_topology::ShardKey {
        multigres_topology::ShardKey {
            database: self.database.clone(),
            table_group: self.table_group.clone(),
            shard: self.shard.clone(),
        }
    }

    /// The cluster status's key for this shard's last backup.
    pub fn status_key(database: &str, table_group: &str, shard: &str) -> String {
        format!("{database}/{table_group}/{shard}")
    }
}

/// The Shards of `namespace` that `target` names, by name.
pub fn targets<'a>(
    namespace: &str,
    target: &BackupTarget,
    shards: impl IntoIterator<Item = &'a Shard>,
) -> Vec<ShardTarget> {
    let mut found: Vec<ShardTarget> = shards
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace))
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter(|s| s.labels().get(labels::CLUSTER) == Some(&target.cluster))
        .filter(|s| s.spec.database == target.database)
        .filter(|s| {
            target
                .table_group
                .as_ref()
                .is_none_or(|tg| *tg == s.spec.table_group)
        })
        .filter(|s| {
            target.shard.as_ref().is_none_or(|shard| {
                *shard == s.spec.shard_name || shard == s.spec.multigres_shard()
            })
        })
        .map(|s| ShardTarget {
            resource: s.name_any(),
            database: s.spec.database.clone(),
            table_group: s.spec.table_group.clone(),
            shard: s.spec.multigres_shard().to_string(),
        })
        .collect();
    found.sort_by(|a, b| a.resource.cmp(&b.resource));
    found
}

/// What `target` waits for when it names no Shard, in a sentence that names the fields.
pub fn no_targets_message(target: &BackupTarget) -> String {
    let mut what = format!(
        "no Shard of cluster {:?} (spec.cluster) database {:?} (spec.database)",
        target.cluster, target.database
    );
    if let Some(tg) = &target.table_group {
        what.push_str(&format!(" table group {tg:?} (spec.tableGroup)"));
    }
    if let Some(shard) = &target.shard {
        what.push_str(&format!(" shard {shard:?} (spec.shard)"));
    }
    what + " exists yet"
}

/// The Backup's phase from its shards': failed or completed once every shard is done, running
/// once any shard's backup started.
pub fn phase_of(shards: &[ShardBackup]) -> BackupPhase {
    let done = |p: BackupPhase| shards.iter().all(|s| s.phase == p);
    if shards.is_empty() {
        BackupPhase::Pending
    } else if done(BackupPhase::Completed) {
        BackupPhase::Completed
    } else if shards.iter().all(|s| s.phase.is_final()) {
        BackupPhase::Failed
    } else if shards.iter().any(|s| s.phase != BackupPhase::Pending) {
        BackupPhase::Running
    } else {
        BackupPhase::Pending
    }
}

/// Fills in the summary fields of `status` (phase, backup id, size, stop time, the condition)
/// from its shards'. Returns the phase it had before.
pub fn summarize(
    status: &mut BackupStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<BackupPhase> {
    let before = status.phase;
    let phase = phase_of(&status.shards);
    status.phase = Some(phase);
    status.backup_id = match status.shards.as_slice() {
        [one] => one.backup_id.clone(),
        _ => None,
    };
    let sizes: Vec<i64> = status.shards.iter().filter_map(|s| s.size_bytes).collect();
    status.size_bytes = (!sizes.is_empty()).then(|| sizes.iter().sum());
    if phase.is_final() && status.stop_time.is_none() {
        status.stop_time = Some(Time(now));
    }
    let waiting: Vec<String> = status
        .shards
        .iter()
        .filter(|s| !s.message.is_empty())
        .map(|s| format!("{}: {}", s.shard_resource, s.message))
        .collect();
    let update = match phase {
        BackupPhase::Completed => ConditionUpdate::new(
            COMPLETED,
            true,
            "BackupCompleted",
            format!("{} shard backup(s) in the repository", status.shards.len()),
        ),
        BackupPhase::Failed => {
            ConditionUpdate::new(COMPLETED, false, "BackupFailed", waiting.join("; "))
        }
        BackupPhase::Running => ConditionUpdate::new(
            COMPLETED,
            false,
            "BackupRunning",
            if waiting.is_empty() {
                "pgBackRest runs".to_string()
            } else {
                waiting.join("; ")
            },
        ),
        BackupPhase::Pending => {
            ConditionUpdate::new(COMPLETED, false, "BackupPending", waiting.join("; "))
        }
    };
    conditions::set(&mut status.conditions, update, generation, now);
    before
}

/// What a ScheduledBackup's reconcile does.
#[derive(Debug, PartialEq)]
pub struct ScheduleDecision {
    /// A Backup to create, for this scheduled time.
    pub create: Option<(String, Timestamp)>,
    /// Backups of the schedule beyond its history limits, oldest first.
    pub prune: Vec<String>,
    /// The schedule's Backup that is still running.
    pub active: Option<String>,
    pub last_successful: Option<Time>,
    pub next: Option<Timestamp>,
    pub condition: ConditionUpdate,
}

/// The schedule's next step at `now`, given the Backups it created.
pub fn decide(schedule: &ScheduledBackup, owned: &[&Backup], now: Timestamp) -> ScheduleDecision {
    let status = schedule.status.clone().unwrap_or_default();
    let mut owned: Vec<&Backup> = owned.to_vec();
    owned.sort_by_key(|b| (b.creation_timestamp().map(|t| t.0), b.name_any()));
    let phase = |b: &Backup| b.status.as_ref().and_then(|s| s.phase);
    let active = owned
        .iter()
        .rev()
        .find(|b| !phase(b).is_some_and(BackupPhase::is_final))
        .map(|b| b.name_any());
    let last_successful = owned
        .iter()
        .filter(|b| phase(b) == Some(BackupPhase::Completed))
        .filter_map(|b| b.status.as_ref()?.stop_time.clone())
        .chain(status.last_successful_time.clone())
        .max_by_key(|t| t.0);
    let prune = |wanted: BackupPhase, keep: i32| -> Vec<String> {
        let matching: Vec<String> = owned
            .iter()
            .filter(|b| phase(b) == Some(wanted))
            .map(|b| b.name_any())
            .collect();
        let excess = matching.len().saturating_sub(keep.max(0) as usize);
        matching.into_iter().take(excess).collect()
    };
    let spec = &schedule.spec;
    let mut pruned = prune(
        BackupPhase::Completed,
        spec.successful_backups_history_limit,
    );
    pruned.extend(prune(
        BackupPhase::Failed,
        spec.failed_backups_history_limit,
    ));

    let parsed = match Schedule::parse(&spec.schedule) {
        Ok(parsed) => parsed,
        Err(e) => {
            return ScheduleDecision {
                create: None,
                prune: pruned,
                active,
                last_successful,
                next: None,
                condition: ConditionUpdate::new(
                    SCHEDULED,
                    false,
                    "InvalidSchedule",
                    format!("spec.schedule {:?}: {e}", spec.schedule),
                ),
            };
        }
    };
    let after = status
        .last_schedule_time
        .map(|t| t.0)
        .or_else(|| schedule.creation_timestamp().map(|t| t.0))
        .unwrap_or(now);
    let window = Duration::from_secs(spec.starting_deadline_seconds.max(0) as u64);
    let due = parsed.last_due(after, now, window);
    let next = parsed.next_after(now);
    let (create, condition) = if spec.suspend {
        (
            None,
            ConditionUpdate::new(SCHEDULED, false, "Suspended", "spec.suspend is true"),
        )
    } else if let (Some(due), Some(running)) = (due, &active) {
        let _ = due;
        (
            None,
            ConditionUpdate::new(
                SCHEDULED,
                true,
                "WaitingForRunningBackup",
                format!(
                    "a run is due; it starts once Backup {running} is done (if still within startingDeadlineSeconds)"
                ),
            ),
        )
    } else {
        let create = due.map(|at| (backup_name(&schedule.name_any(), at), at));
        (
            create,
            ConditionUpdate::new(
                SCHEDULED,
                true,
                "Scheduled",
                match next {
                    Some(next) => format!("next Backup at {next}"),
                    None => "the schedule names no future time".to_string(),
                },
            ),
        )
    };
    ScheduleDecision {
        create,
        prune: pruned,
        active,
        last_successful,
        next,
        condition,
    }
}

/// A scheduled Backup's name: the schedule's and the scheduled minute, so that creating it twice
/// for the same time is refused by the API server (409) instead of taking a second backup.
pub fn backup_name(schedule: &str, at: Timestamp) -> String {
    format!("{schedule}-{}", at.as_second() / 60)
}

/// The status a ScheduledBackup reports after `decision` (and the Backup it created, if any).
pub fn schedule_status(
    schedule: &ScheduledBackup,
    decision: &ScheduleDecision,
    created: Option<&(String, Timestamp)>,
    now: Timestamp,
) -> multigres_api::ScheduledBackupStatus {
    let previous = schedule.status.clone().unwrap_or_default();
    let mut conditions: Vec<Condition> = previous.conditions.clone();
    conditions::set(
        &mut conditions,
        decision.condition.clone(),
        schedule.metadata.generation,
        now,
    );
    multigres_api::ScheduledBackupStatus {
        observed_generation: schedule.metadata.generation,
        last_schedule_time: created
            .map(|(_, at)| Time(*at))
            .or(previous.last_schedule_time),
        last_successful_time: decision.last_successful.clone(),
        next_schedule_time: decision.next.map(Time),
        active: created
            .map(|(name, _)| name.clone())
            .or(decision.active.clone()),
        conditions,
    }
}

#[cfg(test)]
#[path = "plan/tests.rs"]
mod tests;
