//! Pure: the Shard's status from its pools, pods, plan and the primary read from the topology.

use super::*;

pub(super) fn status(
    shard: &Shard,
    pools: &[Pool],
    pods: &[Arc<Pod>],
    plan: &plan::Plan,
    primary: &Option<TopologyPrimary>,
    requested: &super::requested::Outcome,
    volumes: &Option<super::volumes::VolumeCondition>,
) -> ShardStatus {
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
    let previous = shard.status.clone().unwrap_or_default();
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
    let reason = if plan.paused_for_primary {
        "PrimaryUnknown"
    } else if plan.progressing {
        "Rolling"
    } else {
        "UpToDate"
    };
    conditions::set(
        &mut conds,
        ConditionUpdate::new(
            PROGRESSING,
            plan.progressing,
            reason,
            if plan.message.is_empty() {
                "every pod runs the current spec".to_string()
            } else {
                plan.message.clone()
            },
        ),
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
        (false, "PrimaryUnknown", message.to_string())
    } else {
        (
            true,
            "AllPoolsReady",
            "every pool has its replicas Ready".to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
