//! Pure: which pods to create and which single pod to delete next, from what is observed.
//!
//! Rules (docs/shard-controller.md):
//! * A pool with fewer live pods than replicas gets its lowest missing indices created at once.
//! * A pool with more loses its highest-index pod that is certainly not the primary, one at a time.
//! * Outdated pods (spec hash differs) are replaced one at a time, only once every pool has its count
//!   and nothing is terminating, and only when every other pod of the pool is Ready. Read-only pools
//!   go first, then replica pools, and the primary last of all.
//! * When the primary is unknown (topology unreachable), replica pools neither roll nor scale down:
//!   any of their pods might be the primary.
//! * The primary is never deleted while a standby could take over: the plan asks for a planned
//!   switchover instead, and the pod goes once the topology names another primary. Only a primary
//!   without any Ready standby (a single-pod replica pool) is replaced in place.

/// A pod as the plan sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedPod {
    pub name: String,
    pub index: u32,
    /// The spec hash differs from what the current Shard spec builds.
    pub outdated: bool,
    pub ready: bool,
    pub terminating: bool,
}

/// One pool's desired count and its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolState {
    pub id: String,
    /// Replica pools may hold the primary; read-only pools never do.
    pub can_be_primary: bool,
    pub replicas: u32,
    pub pods: Vec<ObservedPod>,
}

/// What the topology says about the shard's primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Primary {
    /// Read from the topology: the primary's pod name, or none serving.
    Known(Option<String>),
    /// The topology could not be read.
    Unknown,
}

impl Primary {
    fn is(&self, pod: &str) -> bool {
        matches!(self, Primary::Known(Some(p)) if p == pod)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    Roll,
    ScaleDown,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// (pool index, pod index) to create.
    pub create: Vec<(usize, u32)>,
    /// (pool index, pod name, why) to delete.
    pub delete: Vec<(usize, String, Reason)>,
    /// Something is still changing (creating, deleting, rolling, waiting for readiness).
    pub progressing: bool,
    /// Replica pools wait because the primary is unknown.
    pub paused_for_primary: bool,
    /// The primary's pod, to be moved away by a planned switchover before it may go.
    pub switchover: Option<String>,
    /// A primary with no Ready standby is being replaced in place (the shard stops serving writes
    /// until it is back).
    pub primary_without_standby: bool,
    /// Outdated pods remain: the Shard is rolling.
    pub rolling: bool,
    /// Human-readable reason for waiting, for the Progressing condition.
    pub message: String,
}

impl Plan {
    /// Whether this plan disrupts a pod for a roll (what a roll slot limits).
    pub fn disrupts_for_roll(&self) -> bool {
        self.rolling
            && (self.switchover.is_some() || self.delete.iter().any(|(_, _, r)| *r == Reason::Roll))
    }

    /// Drops the roll's disruptions (no roll slot): only creates and scale-downs remain.
    pub fn hold_roll(&mut self, why: &str) {
        self.delete.retain(|(_, _, r)| *r != Reason::Roll);
        if self.switchover.is_some() && self.delete.is_empty() {
            self.switchover = None;
        }
        self.primary_without_standby = false;
        self.progressing = true;
        self.message = if self.message.is_empty() {
            why.to_string()
        } else {
            format!("{}; {why}", self.message)
        };
    }
}

/// A Ready pod of a pool that may hold the primary, other than `primary`: a switchover target.
fn has_standby(pools: &[PoolState], primary: &str) -> bool {
    pools.iter().filter(|p| p.can_be_primary).any(|p| {
        p.pods
            .iter()
            .any(|x| x.name != primary && x.ready && !x.terminating)
    })
}

/// Order in which pools roll: read-only pools first (they never hold the primary).
fn roll_order(pools: &[PoolState]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pools.len()).collect();
    order.sort_by_key(|i| (pools[*i].can_be_primary, *i));
    order
}

pub fn plan(pools: &[PoolState], primary: &Primary) -> Plan {
    let mut out = Plan::default();
    let mut messages = Vec::new();
    let mut settled = true;
    for (p, pool) in pools.iter().enumerate() {
        let live: Vec<&ObservedPod> = pool.pods.iter().filter(|x| !x.terminating).collect();
        if pool.pods.iter().any(|x| x.terminating) {
            settled = false;
            messages.push(format!("pool {}: waiting for a pod to terminate", pool.id));
            continue;
        }
        let count = live.len() as u32;
        if count < pool.replicas {
            settled = false;
            let taken: Vec<u32> = live.iter().map(|x| x.index).collect();
            let missing = (0..)
                .filter(|i| !taken.contains(i))
                .take((pool.replicas - count) as usize);
            out.create.extend(missing.map(|i| (p, i)));
            messages.push(format!("pool {}: creating pods", pool.id));
        } else if count > pool.replicas {
            settled = false;
            if pool.can_be_primary && *primary == Primary::Unknown {
                out.paused_for_primary = true;
                messages.push(format!(
                    "pool {}: scale-down paused, the primary is unknown",
                    pool.id
                ));
                continue;
            }
            let victim = live
                .iter()
                .filter(|x| !primary.is(&x.name))
                .max_by_key(|x| x.index);
            match victim {
                Some(v) => {
                    out.delete.push((p, v.name.clone(), Reason::ScaleDown));
                    messages.push(format!("pool {}: scaling down {}", pool.id, v.name));
                }
                None => match live.iter().find(|x| primary.is(&x.name)) {
                    Some(x) if has_standby(pools, &x.name) => {
                        out.switchover = Some(x.name.clone());
                        messages.push(format!(
                            "pool {}: moving the primary away from {} before it goes",
                            pool.id, x.name
                        ));
                    }
                    _ => messages.push(format!(
                        "pool {}: only the primary is left, and no standby can take over",
                        pool.id
                    )),
                },
            }
        }
    }
    out.rolling = pools.iter().any(|p| p.pods.iter().any(|x| x.outdated));
    if settled {
        roll(pools, primary, &mut out, &mut messages);
    }
    out.progressing = !out.create.is_empty()
        || !out.delete.is_empty()
        || out.switchover.is_some()
        || !messages.is_empty()
        || out.paused_for_primary;
    out.message = messages.join("; ");
    out
}

fn all_others_ready(pool: &PoolState, except: &str) -> bool {
    pool.pods
        .iter()
        .filter(|x| x.name != except)
        .all(|x| x.ready && !x.terminating)
}

fn roll(pools: &[PoolState], primary: &Primary, out: &mut Plan, messages: &mut Vec<String>) {
    // Non-primary members, pool by pool.
    for p in roll_order(pools) {
        let pool = &pools[p];
        let candidate = pool
            .pods
            .iter()
            .filter(|x| x.outdated && !primary.is(&x.name))
            .max_by_key(|x| x.index);
        let Some(candidate) = candidate else {
            continue;
        };
        if pool.can_be_primary && *primary == Primary::Unknown {
            out.paused_for_primary = true;
            messages.push(format!(
                "pool {}: rolling paused, the primary is unknown",
                pool.id
            ));
            return;
        }
        if all_others_ready(pool, &candidate.name) {
            out.delete.push((p, candidate.name.clone(), Reason::Roll));
            messages.push(format!("pool {}: replacing {}", pool.id, candidate.name));
        } else {
            messages.push(format!(
                "pool {}: waiting for pods to be Ready before replacing {}",
                pool.id, candidate.name
            ));
        }
        return;
    }
    // The primary last.
    for (p, pool) in pools.iter().enumerate() {
        if let Some(x) = pool.pods.iter().find(|x| x.outdated && primary.is(&x.name)) {
            if !all_others_ready(pool, &x.name) {
                messages.push(format!(
                    "pool {}: waiting for pods to be Ready before replacing the primary",
                    pool.id
                ));
            } else if has_standby(pools, &x.name) {
                out.switchover = Some(x.name.clone());
                messages.push(format!(
                    "pool {}: moving the primary away from {} (planned switchover) before replacing it",
                    pool.id, x.name
                ));
            } else {
                out.delete.push((p, x.name.clone(), Reason::Roll));
                out.primary_without_standby = true;
                messages.push(format!(
                    "pool {}: replacing the primary {}: no standby can take over",
                    pool.id, x.name
                ));
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(pool: &str, i: u32, outdated: bool) -> ObservedPod {
        ObservedPod {
            name: format!("{pool}-{i}"),
            index: i,
            outdated,
            ready: true,
            terminating: false,
        }
    }

    fn pools(outdated: bool) -> Vec<PoolState> {
        vec![
            PoolState {
                id: "replica".into(),
                can_be_primary: true,
                replicas: 2,
                pods: vec![pod("replica", 0, outdated), pod("replica", 1, outdated)],
            },
            PoolState {
                id: "ro".into(),
                can_be_primary: false,
                replicas: 1,
                pods: vec![pod("ro", 0, outdated)],
            },
        ]
    }

    /// Applies a plan's deletes and recreates the pod up to date, as the cluster would.
    fn step(pools: &mut [PoolState], plan: &Plan) {
        for (p, name, _) in &plan.delete {
            for x in &mut pools[*p].pods {
                if x.name == *name {
                    x.outdated = false;
                }
            }
        }
    }

    /// The roll's steps, one plan at a time: deletes by name, switchovers as `switchover:<pod>`
    /// (after which the primary is the lowest-index other replica-pool pod, as multiorch might pick).
    fn roll_order_of(mut primary: Primary) -> Vec<String> {
        let mut state = pools(true);
        let mut order = Vec::new();
        for _ in 0..10 {
            let plan = plan(&state, &primary);
            assert!(plan.delete.len() <= 1, "one pod at a time: {plan:?}");
            if let Some(old) = &plan.switchover {
                assert!(plan.delete.is_empty(), "no delete during a switchover");
                order.push(format!("switchover:{old}"));
                let next = state[0].pods.iter().find(|x| x.name != *old).unwrap();
                primary = Primary::Known(Some(next.name.clone()));
                continue;
            }
            if plan.delete.is_empty() {
                break;
            }
            order.push(plan.delete[0].1.clone());
            step(&mut state, &plan);
        }
        order
    }

    #[test]
    fn rolls_read_only_then_replicas_then_moves_the_primary_before_replacing_it() {
        let order = roll_order_of(Primary::Known(Some("replica-1".into())));
        assert_eq!(
            order,
            ["ro-0", "replica-0", "switchover:replica-1", "replica-1"]
        );
        let order = roll_order_of(Primary::Known(Some("replica-0".into())));
        assert_eq!(
            order,
            ["ro-0", "replica-1", "switchover:replica-0", "replica-0"]
        );
    }

    #[test]
    fn a_primary_without_a_ready_standby_is_replaced_in_place_and_says_so() {
        let mut state = pools(true);
        state[0].pods.remove(0);
        state[0].replicas = 1;
        state[1].pods[0].outdated = false;
        let plan = plan(&state, &Primary::Known(Some("replica-1".into())));
        assert_eq!(plan.delete, vec![(0, "replica-1".into(), Reason::Roll)]);
        assert!(plan.primary_without_standby && plan.switchover.is_none());
        // A standby that is not Ready does not count, and the primary waits for it instead.
        let mut state = pools(true);
        state[1].pods[0].outdated = false;
        state[0].pods[0].outdated = false;
        state[0].pods[0].ready = false;
        let waiting = super::plan(&state, &Primary::Known(Some("replica-1".into())));
        assert!(waiting.delete.is_empty() && waiting.switchover.is_none() && waiting.progressing);
    }

    #[test]
    fn a_removed_pool_holding_the_primary_hands_it_over_first() {
        let mut state = pools(false);
        state.push(PoolState {
            id: "replica-b".into(),
            can_be_primary: true,
            replicas: 0,
            pods: vec![pod("replica-b", 0, false)],
        });
        let plan = plan(&state, &Primary::Known(Some("replica-b-0".into())));
        assert_eq!(plan.switchover.as_deref(), Some("replica-b-0"));
        assert!(plan.delete.is_empty());
        let plan2 = super::plan(&state, &Primary::Known(Some("replica-0".into())));
        assert_eq!(
            plan2.delete,
            vec![(2, "replica-b-0".into(), Reason::ScaleDown)]
        );
    }

    #[test]
    fn without_a_roll_slot_only_the_roll_waits() {
        let mut state = pools(true);
        state[1].replicas = 0;
        let mut plan = plan(&state, &Primary::Known(Some("replica-0".into())));
        assert!(plan.rolling && !plan.disrupts_for_roll());
        state[1].replicas = 1;
        let mut plan2 = super::plan(&state, &Primary::Known(Some("replica-0".into())));
        assert!(plan2.disrupts_for_roll());
        plan2.hold_roll("waiting for a roll slot");
        assert!(plan2.delete.is_empty() && plan2.progressing);
        assert!(plan2.message.contains("roll slot"));
        plan.hold_roll("waiting for a roll slot");
        assert_eq!(plan.delete, vec![(1, "ro-0".into(), Reason::ScaleDown)]);
    }

    #[test]
    fn unknown_primary_pauses_replica_pools_only_and_never_moves_it() {
        let order = roll_order_of(Primary::Unknown);
        assert_eq!(order, ["ro-0"]);
        let mut state = pools(true);
        state[1].pods[0].outdated = false;
        let plan = plan(&state, &Primary::Unknown);
        assert!(plan.paused_for_primary && plan.delete.is_empty() && plan.switchover.is_none());
    }

    #[test]
    fn waits_for_the_rest_of_the_pool_to_be_ready() {
        let mut state = pools(true);
        state[1].pods[0].outdated = false;
        state[0].pods[0].ready = false;
        let plan = plan(&state, &Primary::Known(Some("replica-0".into())));
        assert!(plan.delete.is_empty() && plan.progressing);
    }

    #[test]
    fn scale_down_never_removes_the_primary() {
        let mut state = pools(false);
        state[0].replicas = 1;
        let plan1 = plan(&state, &Primary::Known(Some("replica-1".into())));
        assert_eq!(
            plan1.delete,
            vec![(0, "replica-0".into(), Reason::ScaleDown)]
        );
        let plan2 = plan(&state, &Primary::Unknown);
        assert!(plan2.delete.is_empty() && plan2.paused_for_primary);
        state[0].replicas = 0;
        state[0].pods.remove(0);
        let plan3 = plan(&state, &Primary::Known(Some("replica-1".into())));
        assert!(plan3.delete.is_empty());
    }

    #[test]
    fn scale_up_fills_the_lowest_free_indices_and_nothing_rolls_meanwhile() {
        let mut state = pools(true);
        state[0].replicas = 4;
        state[0].pods.remove(0);
        let plan = plan(&state, &Primary::Known(None));
        assert_eq!(plan.create, vec![(0, 0), (0, 2), (0, 3)]);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn nothing_to_do_is_not_progressing() {
        let plan = plan(&pools(false), &Primary::Known(None));
        assert_eq!(plan, Plan::default());
    }
}
