//! A switchover asked for with the annotation `multigres.com/switchover-requested` (`kubectl
//! multigres switchover`): decided by [`crate::switchover::decide`], carried out through multiadmin
//! once per request value, recorded in `status.lastSwitchover`, the `Switchover` condition and an
//! Event.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use multigres_api::{LastSwitchover, SwitchoverResult};

use super::*;
use crate::switchover::{self, Request, Step};

/// The Shard condition that tells where the last requested switchover stands.
pub const SWITCHOVER_CONDITION: &str = "Switchover";

/// What a reconcile carries into the status.
#[derive(Default)]
pub(super) struct Outcome {
    /// `status.lastSwitchover` to write (the previous one when nothing changed).
    pub last: Option<LastSwitchover>,
    /// The `Switchover` condition: status, reason, message (None: leave it as it is).
    pub condition: Option<(bool, &'static str, String)>,
    /// A switchover is under way: look again soon.
    pub under_way: bool,
}

fn now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

fn record(
    request: &Request,
    from: Option<String>,
    to: Option<String>,
    result: SwitchoverResult,
    message: &str,
) -> LastSwitchover {
    LastSwitchover {
        requested_at: request.requested_at.clone(),
        target: request.target.clone(),
        from,
        to,
        result,
        message: message.to_string(),
        time: Some(Time(now())),
    }
}

/// The record to go by: the status's, or the one this process wrote last if that is newer (the
/// cached Shard may not show a status written moments ago; acting on it could ask twice).
fn last_record(shard: &Shard, ctx: &Ctx, key: &str) -> Option<LastSwitchover> {
    let stored = shard
        .status
        .as_ref()
        .and_then(|s| s.last_switchover.clone());
    let written = ctx
        .state
        .handover
        .requested
        .lock()
        .expect("requested")
        .get(key)
        .cloned();
    let at = |r: &Option<LastSwitchover>| r.as_ref().and_then(|r| r.time.as_ref()).map(|t| t.0);
    match at(&written) > at(&stored) {
        true => written,
        false => stored,
    }
}

fn remember(ctx: &Ctx, key: &str, last: &LastSwitchover) {
    ctx.state
        .handover
        .requested
        .lock()
        .expect("requested")
        .insert(key.to_string(), last.clone());
}

/// Decides and carries out the step for the Shard's requested switchover; holds the plan's replica
/// pools while one is under way.
pub(super) async fn handle(
    shard: &Shard,
    ctx: &Ctx,
    key: &str,
    states: &[PoolState],
    primary: &Primary,
    plan: &mut Plan,
) -> Result<Outcome, ChildError> {
    let request = shard
        .annotations()
        .get(labels::SWITCHOVER_REQUESTED)
        .and_then(|v| Request::parse(v));
    let last = last_record(shard, ctx, key);
    let since_asked = last
        .as_ref()
        .and_then(|l| l.time.as_ref())
        .map(|t| {
            let elapsed = now().duration_since(t.0);
            Duration::try_from(elapsed).unwrap_or_default()
        })
        .unwrap_or_default();
    let step = switchover::decide(
        request.as_ref(),
        last.as_ref(),
        since_asked,
        primary,
        states,
    );
    let mut outcome = Outcome {
        last: last.clone(),
        ..Default::default()
    };
    if step.holds_replica_pools() {
        plan.switchover = None;
        plan.delete.retain(|(p, _, _)| !states[*p].can_be_primary);
        plan.primary_without_standby = false;
        outcome.under_way = true;
    }
    let from_primary = match primary {
        Primary::Known(p) => p.clone(),
        Primary::Unknown => None,
    };
    match step {
        Step::Idle => {}
        Step::Wait(message) => {
            waiting_on(plan, &message);
            outcome.condition = Some((false, "Waiting", message));
        }
        Step::Refuse(message) => {
            let request = request.expect("a refusal is about a request");
            tracing::warn!(shard = key, %message, "requested switchover refused");
            let done = record(
                &request,
                from_primary,
                None,
                SwitchoverResult::Refused,
                &message,
            );
            let note = format!(
                "Switchover requested at {} refused: {message}",
                request.requested_at
            );
            ctx.events.warning(shard, "SwitchoverRefused", &note).await;
            remember(ctx, key, &done);
            outcome.last = Some(done);
            outcome.condition = Some((false, "Refused", note));
        }
        Step::Ask { from } => {
            let request = request.expect("an ask is about a request");
            outcome.last = Some(ask(shard, ctx, key, &request, &from).await?);
            let last = outcome.last.as_ref().expect("recorded");
            let reason = match last.result {
                SwitchoverResult::Failed => "Failed",
                _ => {
                    waiting_on(plan, &last.message);
                    "InProgress"
                }
            };
            outcome.condition = Some((false, reason, last.message.clone()));
        }
        Step::Watch(message) => {
            waiting_on(plan, &message);
            outcome.condition = Some((false, "InProgress", message));
        }
        Step::Done { to } => {
            let last = last.expect("a switchover in progress");
            let from = last.from.clone().unwrap_or_default();
            let mut message = format!("the primary moved from {from} to {to}");
            if let Some(target) = last.target.as_deref().filter(|t| *t != to) {
                message.push_str(&format!(
                    "; multiorch elected {to}, not the requested {target} (the pinned Multigres' \
                     SwitchPrimary takes no target)"
                ));
            }
            let note = format!("Switchover requested at {}: {message}", last.requested_at);
            ctx.events.normal(shard, "Switchover", &note).await;
            let done = LastSwitchover {
                to: Some(to),
                result: SwitchoverResult::Succeeded,
                message: message.clone(),
                time: Some(Time(now())),
                ..last
            };
            remember(ctx, key, &done);
            outcome.last = Some(done);
            outcome.condition = Some((true, "Succeeded", note));
        }
        Step::Fail(message) => {
            let last = last.expect("a switchover in progress");
            let note = format!(
                "Switchover requested at {} failed: {message}",
                last.requested_at
            );
            ctx.events.warning(shard, "SwitchoverFailed", &note).await;
            let done = LastSwitchover {
                result: SwitchoverResult::Failed,
                message: message.clone(),
                time: Some(Time(now())),
                ..last
            };
            remember(ctx, key, &done);
            outcome.last = Some(done);
            outcome.condition = Some((false, "Failed", note));
        }
    }
    Ok(outcome)
}

/// The Shard is progressing while a requested switchover waits or is under way, and says why.
fn waiting_on(plan: &mut Plan, message: &str) {
    plan.progressing = true;
    plan.message = if plan.message.is_empty() {
        message.to_string()
    } else {
        format!("{}; {message}", plan.message)
    };
}

/// Records the switchover as in progress (so that it is never asked for twice, even if this
/// process stops right after), then asks multiadmin. Returns the record as it stands afterwards.
async fn ask(
    shard: &Shard,
    ctx: &Ctx,
    key: &str,
    request: &Request,
    from: &str,
) -> Result<LastSwitchover, ChildError> {
    let started = record(
        request,
        Some(from.to_string()),
        None,
        SwitchoverResult::InProgress,
        &format!(
            "switchover requested at {}: multiadmin asked to move the primary away from {from}",
            request.requested_at
        ),
    );
    let mut interim = shard.status.clone().unwrap_or_default();
    interim.last_switchover = Some(started.clone());
    interim.last_backup = None;
    ctx.applier
        .apply_status_beside(
            shard,
            shard.status.as_ref(),
            &interim,
            ShardStatus::WRITTEN_BY_BACKUPS,
        )
        .await
        .map_err(|e| ChildError::new(shard, Failure::Status(Box::new(e))))?;
    ctx.state.status_pace.wrote(key, &interim);
    remember(ctx, key, &started);

    let handover = &ctx.state.handover;
    let reason = match &request.target {
        Some(target) => format!(
            "multigres-operator: switchover requested at {} (to {target})",
            request.requested_at
        ),
        None => format!(
            "multigres-operator: switchover requested at {}",
            request.requested_at
        ),
    };
    tracing::info!(shard = key, from, "requested switchover: asking multiadmin");
    let result = handover::ask_multiadmin(shard, handover, &reason).await;
    let last = match result {
        Ok(old) => {
            let note = format!(
                "Switchover requested at {}: multiadmin quiesced the primary {from} (pooler {old}); \
                 waiting for another primary",
                request.requested_at
            );
            ctx.events.normal(shard, "SwitchoverStarted", &note).await;
            started
        }
        Err(error) => {
            tracing::warn!(shard = key, from, %error, "requested switchover not started");
            let message = format!("multiadmin did not start the switchover: {error}");
            let note = format!(
                "Switchover requested at {} failed: {message}",
                request.requested_at
            );
            ctx.events.warning(shard, "SwitchoverFailed", &note).await;
            LastSwitchover {
                result: SwitchoverResult::Failed,
                message,
                time: Some(Time(now())),
                ..started
            }
        }
    };
    remember(ctx, key, &last);
    Ok(last)
}
