//! A ScheduledBackup's reconcile: create the due Backup (named for its minute, so a repeat is a
//! 409), prune the history beyond the limits, report, and wake at the next scheduled minute.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use multigres_api::{Backup, BackupSpec, ScheduledBackup, labels};
use multigres_runtime::error::{ChildError, Failure};
use multigres_runtime::run::within_deadline;

use super::Ctx;
use super::plan;

/// Woken at least this often, so a clock jump or a lost timer costs no more than a few minutes.
const LONGEST_SLEEP: Duration = Duration::from_secs(300);

pub async fn reconcile(
    schedule: Arc<ScheduledBackup>,
    ctx: Arc<Ctx>,
) -> Result<Action, ChildError> {
    let _timer = ctx.metrics.reconcile_started();
    let action = within_deadline(schedule.as_ref(), reconcile_inner(&schedule, &ctx)).await?;
    ctx.succeeded(schedule.as_ref());
    Ok(action)
}

async fn reconcile_inner(schedule: &ScheduledBackup, ctx: &Ctx) -> Result<Action, ChildError> {
    if !ctx.state.caches.is_ready() {
        return Err(ChildError::new(schedule, Failure::CacheNotReady));
    }
    let ns = schedule.namespace().unwrap_or_default();
    let uid = schedule.uid();
    let backups = ctx.state.backups.state();
    let owned: Vec<&Backup> = backups
        .iter()
        .map(|b| b.as_ref())
        .filter(|b| b.namespace().as_deref() == Some(&ns))
        .filter(|b| {
            b.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .collect();
    let now = Timestamp::now();
    let decision = plan::decide(schedule, &owned, now);
    let api = Api::<Backup>::namespaced(ctx.client.clone(), &ns);
    let kube_error = |action: String, e: kube::Error| {
        ChildError::new(
            schedule,
            Failure::Kube {
                action,
                source: Box::new(e),
            },
        )
    };

    let mut created = None;
    if let Some((name, at)) = &decision.create {
        match api
            .create(&PostParams::default(), &scheduled_backup(schedule, name))
            .await
        {
            Ok(_) => {
                let note = format!("Backup {name} for the run scheduled at {at}");
                ctx.events.normal(schedule, "BackupCreated", &note).await;
                created = decision.create.clone();
            }
            // Created by an earlier reconcile whose status write was lost.
            Err(kube::Error::Api(e)) if e.code == 409 => created = decision.create.clone(),
            Err(e) => return Err(kube_error(format!("creating Backup {name}"), e)),
        }
    }
    for name in &decision.prune {
        let uid = backups
            .iter()
            .find(|b| b.name_any() == *name && b.namespace().as_deref() == Some(&ns))
            .and_then(|b| b.uid());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(kube_error(format!("pruning Backup {name}"), e)),
        }
    }

    let status = plan::schedule_status(schedule, &decision, created.as_ref(), now);
    ctx.applier
        .apply_status(schedule, schedule.status.as_ref(), &status)
        .await
        .map_err(|e| ChildError::new(schedule, Failure::Status(Box::new(e))))?;
    let sleep = decision
        .next
        .and_then(|next| Duration::try_from(next.duration_since(now)).ok())
        .map_or(LONGEST_SLEEP, |d| d.min(LONGEST_SLEEP))
        // Wake just after the minute starts, not a hair before it.
        + Duration::from_millis(500);
    Ok(Action::requeue(sleep))
}

/// The Backup a schedule creates for one run: the schedule's target, owned by the schedule (so
/// deleting the schedule deletes its history) and labelled with its name.
fn scheduled_backup(schedule: &ScheduledBackup, name: &str) -> Backup {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert(labels::SCHEDULED_BACKUP.to_string(), schedule.name_any());
    labels.insert(
        labels::CLUSTER.to_string(),
        schedule.spec.backup.cluster.clone(),
    );
    Backup {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: schedule.namespace(),
            labels: Some(labels),
            owner_references: schedule.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: BackupSpec {
            target: schedule.spec.backup.clone(),
        },
        status: None,
    }
}
