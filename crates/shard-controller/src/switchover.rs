//! Pure: what to do about a switchover requested with the annotation
//! `multigres.com/switchover-requested` (`kubectl multigres switchover`), from the request, what the
//! Shard's status recorded about the last one, the primary read from the topology and the pools.
//!
//! Rules (docs/shard-controller.md, "Requested switchovers"):
//! * Each request value is acted on once: a value the status already records is done with, whatever
//!   its result, and a switchover in progress is seen through before a newer request is looked at.
//! * A named target must be a Ready, live pod of a replica pool of this Shard, and not the primary;
//!   otherwise the request is refused (recorded, never retried).
//! * The primary must be known (fail closed): while it is not, the request waits and says why.
//! * A Ready standby must exist in a replica pool, else the request is refused.
//! * Once multiadmin was asked, the switchover succeeds when the topology names another pod primary,
//!   and fails when none is named within [`ELECTION_WAIT`].

use std::time::Duration;

use multigres_api::{LastSwitchover, SwitchoverResult};

use crate::plan::{PoolState, Primary};

/// How long after multiadmin was asked another primary must be named before the switchover counts
/// as failed.
pub const ELECTION_WAIT: Duration = Duration::from_secs(120);

/// A switchover request, parsed from the annotation's `<time>[,<pod>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub requested_at: String,
    pub target: Option<String>,
}

impl Request {
    /// The request an annotation value makes; None for an empty value.
    pub fn parse(value: &str) -> Option<Request> {
        let (at, target) = match value.split_once(',') {
            Some((at, target)) => (at.trim(), Some(target.trim())),
            None => (value.trim(), None),
        };
        (!at.is_empty()).then(|| Request {
            requested_at: at.to_string(),
            target: target.filter(|t| !t.is_empty()).map(String::from),
        })
    }

    /// The annotation value that makes this request.
    pub fn value(&self) -> String {
        match &self.target {
            Some(pod) => format!("{},{pod}", self.requested_at),
            None => self.requested_at.clone(),
        }
    }

    /// Whether `last` records this request.
    pub fn recorded_in(&self, last: &LastSwitchover) -> bool {
        last.requested_at == self.requested_at && last.target == self.target
    }
}

/// What the controller does about requested switchovers in this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing requested, or the request is done with.
    Idle,
    /// The request waits (the primary is unknown); the message says why.
    Wait(String),
    /// The request is refused, never to be retried.
    Refuse(String),
    /// Ask multiadmin to move the primary away from `from`.
    Ask { from: String },
    /// multiadmin was asked; no other primary is named yet.
    Watch(String),
    /// Another pod is the primary: the switchover succeeded.
    Done { to: String },
    /// No other primary within [`ELECTION_WAIT`].
    Fail(String),
}

impl Step {
    /// Whether replica pools must hold still (a switchover is under way).
    pub fn holds_replica_pools(&self) -> bool {
        matches!(self, Step::Ask { .. } | Step::Watch(_))
    }
}

/// Where a pod is among the Shard's pools.
fn find_pod<'a>(
    pools: &'a [PoolState],
    name: &str,
) -> Option<(&'a PoolState, &'a crate::plan::ObservedPod)> {
    pools
        .iter()
        .find_map(|pool| pool.pods.iter().find(|x| x.name == name).map(|x| (pool, x)))
}

/// Why `target` cannot become the primary, if it cannot.
fn unfit_target(pools: &[PoolState], target: &str) -> Option<String> {
    match find_pod(pools, target) {
        None => Some(format!("{target} is not a pod of this Shard")),
        Some((pool, _)) if !pool.can_be_primary => Some(format!(
            "{target} is in the read-only pool {}, which never holds the primary",
            pool.id
        )),
        Some((_, pod)) if pod.terminating => Some(format!("{target} is terminating")),
        Some((_, pod)) if !pod.ready => Some(format!("{target} is not Ready")),
        Some(_) => None,
    }
}

fn has_ready_standby(pools: &[PoolState], primary: &str) -> bool {
    pools.iter().filter(|p| p.can_be_primary).any(|p| {
        p.pods
            .iter()
            .any(|x| x.name != primary && x.ready && !x.terminating)
    })
}

/// Decides the step. `since_asked` is how long ago the switchover in progress (if any) was started.
pub fn decide(
    request: Option<&Request>,
    last: Option<&LastSwitchover>,
    since_asked: Duration,
    primary: &Primary,
    pools: &[PoolState],
) -> Step {
    if let Some(last) = last.filter(|l| l.result == SwitchoverResult::InProgress) {
        let from = last.from.as_deref().unwrap_or_default();
        return match primary {
            Primary::Known(Some(now)) if now != from => Step::Done { to: now.clone() },
            _ if since_asked >= ELECTION_WAIT => Step::Fail(format!(
                "no other primary was named within {}s after multiadmin was asked to move it away \
                 from {from}",
                ELECTION_WAIT.as_secs()
            )),
            _ => Step::Watch(format!(
                "switchover requested at {}: waiting for a new primary after multiadmin moved it \
                 away from {from}",
                last.requested_at
            )),
        };
    }
    let Some(request) = request else {
        return Step::Idle;
    };
    if last.is_some_and(|l| request.recorded_in(l)) {
        return Step::Idle;
    }
    if let Some(why) = request
        .target
        .as_deref()
        .and_then(|t| unfit_target(pools, t))
    {
        return Step::Refuse(format!(
            "the target must be a Ready pod of a replica pool of this Shard: {why}"
        ));
    }
    let from = match primary {
        Primary::Unknown => {
            return Step::Wait(format!(
                "switchover requested at {} waits: the primary is unknown (the topology cannot be \
                 read, or names no or several primaries)",
                request.requested_at
            ));
        }
        Primary::Known(None) => {
            return Step::Refuse("the Shard has no primary to move".to_string());
        }
        Primary::Known(Some(pod)) => pod,
    };
    if request.target.as_deref() == Some(from.as_str()) {
        return Step::Refuse(format!("{from} is already the primary"));
    }
    if !has_ready_standby(pools, from) {
        return Step::Refuse(format!(
            "no Ready standby in a replica pool can take over from {from}"
        ));
    }
    Step::Ask { from: from.clone() }
}

#[cfg(test)]
mod tests;
