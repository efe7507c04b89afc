//! Pure: the Shard's status from its pools, pods, plan and the primary read from the topology.

use super::*;

/// `Available` is False because the topology names no primary (every pool Ready).
const PRIMARY_UNKNOWN: &str = "PrimaryUnknown";

/// What one reconcile saw and did, from which the Shard's status follows.
pub(super) struct Observed<'a> {
    pub pools: &'a [Pool],
    pub pods: &'a [Arc<Pod>],
    pub plan: &'a plan::Plan,
    pub primary: &'a Option<TopologyPrimary>,
    pub requested: &'a super::requested::Outcome,
    pub volumes: &'a Option<super::volumes::VolumeCondition>,
}

/// The Shard's status after `observed`, following `previous` (transition times kept).
pub(super) fn status(
    shard: &Shard,
    previous: Option<&ShardStatus>,
    observed: Observed<'_>,
) -> ShardStatus {
    let Observed {
        pools,
        pods,
        plan,
        primary,
        requested,
        volumes,
    } = observed;
    let now = k8s_openapi::jiff::Timestamp::now();
    let generation = shard.metadata.generation;
    let live: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| p.meta().deletion_timestamp.is_none())
        .collect();
    let ready = live.iter().filter(|p| is_ready(p)).count() as i32;
    let short: Vec<String> = pools
        .iter()
        .filter_map(|pool| {
            let ready = live
                .iter()
                .filter(|p| p.labels().get(labels::POOL) == Some(&pool.id) && is_ready(p))
                .count() as i32;
            (ready < pool.spec.replicas)
                .then(|| format!("{} {}/{}", pool.id, ready, pool.spec.replicas))
        })
        .collect();
    let previous = previous.cloned().unwrap_or_default();
    // An unreachable topology says nothing new about the primary: keep what was last read. A
    // primary that does not serve (DRAINING, DISABLED) or is contested names no cell.
    let primary_cell = match primary {
        Some(found) => found.serving_cell().map(String::from),
        None => previous.primary_cell.clone(),
    };
    let (available, reason, message) = availability(
        &short,
        pools.iter().any(build::can_be_primary),
        primary_cell.is_some(),
    );
    let mut conds = previous.conditions;
    conditions::set(
        &mut conds,
        ConditionUpdate::new(AVAILABLE, available, reason, message),
        generation,
        now,
    );
    // Pods the plan created but that are not Ready yet are progress too (as a Deployment's
    // rollout is until its pods are available), so Progressing turns False with Available.
    let starting = !plan.progressing && plan.message.is_empty() && !short.is_empty();
    let electing = !plan.progressing && !available && short.is_empty() && reason == PRIMARY_UNKNOWN;
    let (progressing, reason, message) = if plan.paused_for_primary {
        (true, "PrimaryUnknown", plan.message.clone())
    } else if plan.progressing {
        (true, "Rolling", plan.message.clone())
    } else if starting {
        let message = format!("waiting for Ready pods: {}", short.join(", "));
        (true, "PodsStarting", message)
    } else if electing {
        let message = "waiting for the topology to name a primary".to_string();
        (true, "AwaitingPrimary", message)
    } else if plan.message.is_empty() {
        let message = "every pod runs the current spec".to_string();
        (false, "UpToDate", message)
    } else {
        (false, "UpToDate", plan.message.clone())
    };
    conditions::set(
        &mut conds,
        ConditionUpdate::new(PROGRESSING, progressing, reason, message),
        generation,
        now,
    );
    let (served, reason, message) = multigres::served_condition(&multigres::unserved_shard(
        &shard.spec.table_group,
        shard.spec.multigres_shard(),
    ));
    conditions::set(
        &mut conds,
        ConditionUpdate::new(multigres::SERVED_CONDITION, served, reason, message),
        generation,
        now,
    );
    if let Some((status, reason, message)) = &requested.condition {
        conditions::set(
            &mut conds,
            ConditionUpdate::new(
                super::SWITCHOVER_CONDITION,
                *status,
                *reason,
                message.clone(),
            ),
            generation,
            now,
        );
    }
    if let Some((status, reason, message)) = volumes {
        conditions::set(
            &mut conds,
            ConditionUpdate::new(super::volumes::CONDITION, *status, *reason, message.clone()),
            generation,
            now,
        );
    }
    ShardStatus {
        last_switchover: requested.last.clone(),
        observed_generation: generation,
        conditions: conds,
        primary_cell,
        total_pods: live.len() as i32,
        ready_pods: ready,
        last_backup: None,
    }
}

/// A Shard serves once every pool has its replicas Ready and, if it can hold a primary, the
/// topology names one: until then it takes no writes, and its status has one more change to make.
fn availability(
    short: &[String],
    needs_primary: bool,
    has_primary: bool,
) -> (bool, &'static str, String) {
    if !short.is_empty() {
        let message = format!("Ready pods below replicas: {}", short.join(", "));
        (false, "PoolsNotReady", message)
    } else if needs_primary && !has_primary {
        let message = "every pool has its replicas Ready; the topology names no primary yet";
        (false, PRIMARY_UNKNOWN, message.to_string())
    } else {
        (
            true,
            "AllPoolsReady",
            "every pool has its replicas Ready".to_string(),
        )
    }
}

/// Whether `next` differs from `previous` only in what progress reports: the pod counts, the
/// conditions' messages, the reasons of `Available` and `Progressing` while their status holds (a
/// Shard coming up goes from pods not ready to no primary yet, and between rolling and waiting for
/// the primary), and the primary's cell before the Shard serves. Such a write may wait
/// ([`multigres_runtime::status_pace`]); a first status, a condition turning, a primary that moves
/// while the Shard serves, a switchover or a new generation never does.
pub(super) fn progress_only(previous: Option<&ShardStatus>, next: &ShardStatus) -> bool {
    let Some(previous) = previous else {
        return false;
    };
    // The primary's cell is written at once once the Shard serves (a failover); before that, the
    // write that turns it Available carries it.
    let serving = |s: &ShardStatus| conditions::is_true(&s.conditions, AVAILABLE);
    let coming_up = !serving(previous) && !serving(next);
    let without_progress = |s: &ShardStatus| {
        let mut s = s.clone();
        (s.total_pods, s.ready_pods, s.last_backup) = (0, 0, None);
        if coming_up {
            s.primary_cell = None;
        }
        for c in &mut s.conditions {
            c.message.clear();
            if c.type_ == AVAILABLE || c.type_ == PROGRESSING {
                c.reason.clear();
            }
        }
        s
    };
    without_progress(previous) == without_progress(next)
}

/// What a status write says, for the log: each condition as `Type=Status/Reason`, the counts and
/// the primary's cell.
pub(super) fn summary(status: &ShardStatus) -> String {
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .map(|c| format!("{}={}/{}", c.type_, c.status, c.reason))
        .collect();
    format!(
        "{} ready {}/{} primary {}",
        conditions.join(" "),
        status.ready_pods,
        status.total_pods,
        status.primary_cell.as_deref().unwrap_or("-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_messages_are_progress_anything_else_is_not() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let condition = |status: &str, reason: &str, message: &str| Condition {
            type_: AVAILABLE.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: Some(1),
        };
        let at = |ready, status: &str, reason: &str| ShardStatus {
            total_pods: 3,
            ready_pods: ready,
            conditions: vec![condition(status, reason, &format!("replica {ready}/3"))],
            ..Default::default()
        };
        let one = at(1, "False", "PodsNotReady");
        assert!(
            !progress_only(None, &one),
            "a first status is written at once"
        );
        assert!(progress_only(Some(&one), &at(2, "False", "PodsNotReady")));
        assert!(!progress_only(Some(&one), &at(3, "True", "Available")));
        assert!(
            progress_only(Some(&one), &at(3, "False", "PrimaryUnknown")),
            "a new reason while Available stays False"
        );
        let mut other = at(1, "False", "PodsNotReady");
        other.conditions[0].type_ = "VolumesResized".into();
        let mut renamed = other.clone();
        renamed.conditions[0].reason = "Expanding".into();
        assert!(
            !progress_only(Some(&other), &renamed),
            "other conditions' reasons are written at once"
        );
        let primary = ShardStatus {
            primary_cell: Some("z1".into()),
            ..one.clone()
        };
        assert!(
            progress_only(Some(&one), &primary),
            "a primary while the Shard is not Available yet"
        );
        let serving = at(3, "True", "AllPoolsReady");
        let moved = ShardStatus {
            primary_cell: Some("z2".into()),
            ..serving.clone()
        };
        assert!(
            !progress_only(Some(&serving), &moved),
            "a primary that moves while the Shard serves"
        );
    }

    #[test]
    fn a_pending_election_is_looked_at_every_second_unless_the_topology_is_watched() {
        assert_eq!(look_again_after(false, true, false), Duration::from_secs(1));
        assert_eq!(look_again_after(true, true, false), Duration::from_secs(1));
        assert_eq!(look_again_after(true, false, false), Duration::from_secs(5));
        assert_eq!(
            look_again_after(false, false, false),
            Duration::from_secs(30)
        );
        // A watched topology wakes the Shard itself; the timers are a safety net.
        assert_eq!(look_again_after(false, true, true), Duration::from_secs(10));
        assert_eq!(look_again_after(true, false, true), Duration::from_secs(5));
        assert_eq!(
            look_again_after(false, false, true),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn a_shard_that_can_hold_a_primary_is_available_once_it_has_one() {
        let short = vec!["main 1/3".to_string()];
        assert_eq!(availability(&short, true, true).1, "PoolsNotReady");
        assert_eq!(availability(&[], true, false).1, "PrimaryUnknown");
        assert!(!availability(&[], true, false).0);
        assert!(availability(&[], true, true).0);
        assert!(
            availability(&[], false, false).0,
            "read-only pools need no primary"
        );
    }
}
