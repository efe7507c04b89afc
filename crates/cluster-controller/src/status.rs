//! The cluster's status. Pure. Two ways to get it:
//! * [`merge`] (with `--status-aggregator-endpoint`): the status aggregator's aggregate, with the
//!   controller's own findings (blocking problems, the global topology, whether the aggregator is
//!   reachable) laid over it;
//! * [`compute`] (fallback, aggregator off): from the children's `Available` conditions in the
//!   controller's own caches.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use multigres_api::{Cell, MultigresClusterStatus, TableGroup, TopoServer};
use multigres_runtime::conditions::{self, AVAILABLE, ConditionUpdate, DEGRADED, PROGRESSING};

/// Whether the cluster can reach its global topology.
pub const TOPOLOGY_REACHABLE: &str = "TopologyReachable";
/// Whether the cluster controller receives the status aggregator's statuses.
pub const STATUS_AGGREGATOR_REACHABLE: &str = "StatusAggregatorReachable";
/// The conditions the status aggregator computes; every other condition is the controller's.
pub const AGGREGATED: [&str; 3] = [AVAILABLE, DEGRADED, PROGRESSING];

/// Seconds precision, as the API server stores condition times: a status computed twice compares
/// equal to what was written.
pub fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// One child and whether it reports itself available (`None`: not observed yet).
#[derive(Clone, Debug, PartialEq)]
pub struct ChildHealth {
    pub kind: &'static str,
    pub name: String,
    pub available: Option<bool>,
}

impl ChildHealth {
    fn from_conditions(kind: &'static str, name: &str, list: Option<&[Condition]>) -> Self {
        let available = list.and_then(|l| {
            l.iter()
                .find(|c| c.type_ == AVAILABLE)
                .map(|c| c.status == "True")
        });
        Self {
            kind,
            name: name.to_string(),
            available,
        }
    }

    pub fn topo_server(t: &TopoServer) -> Self {
        let conditions = t.status.as_ref().map(|s| s.conditions.as_slice());
        Self::from_conditions(
            "TopoServer",
            t.metadata.name.as_deref().unwrap_or_default(),
            conditions,
        )
    }

    pub fn cell(c: &Cell) -> Self {
        let conditions = c.status.as_ref().map(|s| s.conditions.as_slice());
        Self::from_conditions(
            "Cell",
            c.metadata.name.as_deref().unwrap_or_default(),
            conditions,
        )
    }

    pub fn table_group(t: &TableGroup) -> Self {
        let conditions = t.status.as_ref().map(|s| s.conditions.as_slice());
        Self::from_conditions(
            "TableGroup",
            t.metadata.name.as_deref().unwrap_or_default(),
            conditions,
        )
    }

    pub fn deployment(d: &Deployment) -> Self {
        let name = d.metadata.name.as_deref().unwrap_or_default();
        let available = d.status.as_ref().and_then(|s| {
            s.conditions.as_ref().and_then(|l| {
                l.iter()
                    .find(|c| c.type_ == AVAILABLE)
                    .map(|c| c.status == "True")
            })
        });
        Self {
            kind: "Deployment",
            name: name.to_string(),
            available,
        }
    }
}

/// A problem that stopped the reconcile before anything was applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Blocked {
    /// `MissingTemplate`, `InvalidReference` or `NameConflict`.
    pub reason: &'static str,
    pub message: String,
}

/// What was learnt about the global topology this time.
#[derive(Clone, Debug, PartialEq)]
pub enum Topology {
    Registered,
    Unreachable(String),
    /// Not tried (the reconcile stopped before): the previous condition stands.
    NotChecked,
}

/// Everything the status depends on.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    pub generation: Option<i64>,
    pub previous: Option<&'a MultigresClusterStatus>,
    pub cell_count: usize,
    pub database_count: usize,
    pub children: Vec<ChildHealth>,
    pub blocked: Option<Blocked>,
    pub topology: Topology,
    pub now: Timestamp,
}

const LISTED: usize = 5;

/// What one reconcile found that only the cluster controller knows.
#[derive(Clone, Debug, PartialEq)]
pub struct Findings {
    pub blocked: Option<Blocked>,
    pub topology: Topology,
}

/// The state of the subscription to the status aggregator.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum AggregatorReach {
    /// Not connected yet since start: the condition is left as it is.
    #[default]
    Unknown,
    Reachable,
    Unreachable(String),
}

/// Everything [`merge`] depends on.
#[derive(Clone, Debug)]
pub struct Merge<'a> {
    pub generation: Option<i64>,
    /// The cluster's current status.
    pub previous: Option<&'a MultigresClusterStatus>,
    /// The aggregator's latest status for the cluster; `None` when none arrived yet (the previous
    /// aggregated fields are kept).
    pub aggregate: Option<&'a MultigresClusterStatus>,
    pub findings: &'a Findings,
    pub reach: &'a AggregatorReach,
    pub now: Timestamp,
}

/// The status to write with the aggregator on: every field of the aggregate, the controller's own
/// conditions, and, while the reconcile has a problem the aggregator cannot see, the controller's
/// `Degraded`/`Available`/`Progressing` instead of the aggregator's:
/// 1. blocked (`MissingTemplate`, `InvalidReference`, `NameConflict`): all three, as [`compute`]
///    sets them (the children were not updated, so the aggregate describes a stale tree);
/// 2. else the global topology unreachable: `Degraded=True` (`TopologyUnreachable`, the
///    aggregator's own Degraded message appended when it has one);
/// 3. else the aggregator's conditions.
///
/// Foreign condition types are kept. A transition time moves only when the written status flips:
/// to the aggregator's transition time when that is newer than the written one, else to `now`
/// (an override ended). Identical input gives an identical status.
pub fn merge(input: &Merge<'_>) -> MultigresClusterStatus {
    let previous = input.previous.cloned().unwrap_or_default();
    let mut status = match input.aggregate {
        Some(aggregate) => MultigresClusterStatus {
            conditions: previous.conditions.clone(),
            ..aggregate.clone()
        },
        None => previous,
    };
    let (generation, now) = (input.generation, input.now);
    let conds = &mut status.conditions;
    if let Some(update) = topology_condition(&input.findings.topology) {
        conditions::set(conds, update, generation, now);
    }
    match input.reach {
        AggregatorReach::Unknown => {}
        AggregatorReach::Reachable => conditions::set(
            conds,
            ConditionUpdate::new(
                STATUS_AGGREGATOR_REACHABLE,
                true,
                "Connected",
                "status from the status aggregator",
            ),
            generation,
            now,
        ),
        AggregatorReach::Unreachable(error) => conditions::set(
            conds,
            ConditionUpdate::new(
                STATUS_AGGREGATOR_REACHABLE,
                false,
                "Unreachable",
                error.clone(),
            ),
            generation,
            now,
        ),
    }
    let aggregated = |type_: &str| {
        input
            .aggregate
            .and_then(|a| a.conditions.iter().find(|c| c.type_ == type_))
    };
    let overrides = match (&input.findings.blocked, &input.findings.topology) {
        (Some(blocked), _) => blocked_conditions(blocked),
        (None, Topology::Unreachable(message)) => {
            let mut text = format!("the global topology could not be written: {message}");
            if let Some(c) = aggregated(DEGRADED).filter(|c| c.status == "True") {
                text.push_str(&format!("; {}", c.message));
            }
            vec![ConditionUpdate::new(
                DEGRADED,
                true,
                "TopologyUnreachable",
                text,
            )]
        }
        _ => Vec::new(),
    };
    for type_ in AGGREGATED {
        if let Some(update) = overrides.iter().find(|u| u.type_ == type_) {
            conditions::set(conds, update.clone(), generation, now);
            continue;
        }
        let Some(from) = aggregated(type_) else {
            continue;
        };
        let written_since = conds
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.last_transition_time.0);
        let flipped_at = match written_since {
            Some(since) if since >= from.last_transition_time.0 => now,
            _ => from.last_transition_time.0,
        };
        conditions::set(
            conds,
            ConditionUpdate::new(
                type_,
                from.status == "True",
                from.reason.clone(),
                from.message.clone(),
            ),
            from.observed_generation,
            flipped_at,
        );
    }
    status
}

fn topology_condition(topology: &Topology) -> Option<ConditionUpdate> {
    match topology {
        Topology::Registered => Some(ConditionUpdate::new(
            TOPOLOGY_REACHABLE,
            true,
            "Registered",
            "every database is registered in the global topology",
        )),
        Topology::Unreachable(message) => Some(ConditionUpdate::new(
            TOPOLOGY_REACHABLE,
            false,
            "TopologyUnreachable",
            message.clone(),
        )),
        Topology::NotChecked => None,
    }
}

fn blocked_conditions(blocked: &Blocked) -> Vec<ConditionUpdate> {
    vec![
        ConditionUpdate::new(DEGRADED, true, blocked.reason, blocked.message.clone()),
        ConditionUpdate::new(
            AVAILABLE,
            false,
            blocked.reason,
            "the cluster's children were not updated; see the Degraded condition",
        ),
        ConditionUpdate::new(
            PROGRESSING,
            false,
            blocked.reason,
            "waiting for the problem in the Degraded condition to be fixed",
        ),
    ]
}

/// The status to write. Identical input gives an identical status (transition times included), so an
/// unchanged cluster gets no status write.
pub fn compute(observed: &Observed<'_>) -> MultigresClusterStatus {
    let mut status = observed.previous.cloned().unwrap_or_default();
    let generation = observed.generation;
    let now = observed.now;
    let mut set = |update: ConditionUpdate| {
        conditions::set(&mut status.conditions, update, generation, now);
    };
    if let Some(update) = topology_condition(&observed.topology) {
        set(update);
    }
    if let Some(blocked) = &observed.blocked {
        for update in blocked_conditions(blocked) {
            set(update);
        }
    } else {
        let waiting: Vec<String> = observed
            .children
            .iter()
            .filter(|c| c.available != Some(true))
            .map(|c| format!("{} {}", c.kind, c.name))
            .collect();
        let total = observed.children.len();
        if waiting.is_empty() {
            set(ConditionUpdate::new(
                AVAILABLE,
                true,
                "AllChildrenAvailable",
                format!("{total}/{total} children available"),
            ));
            set(ConditionUpdate::new(
                PROGRESSING,
                false,
                "Reconciled",
                "every child is available",
            ));
        } else {
            let mut listed = waiting
                .iter()
                .take(LISTED)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if waiting.len() > LISTED {
                listed.push_str(&format!(" and {} more", waiting.len() - LISTED));
            }
            let message = format!(
                "{}/{total} children available; waiting for {listed}",
                total - waiting.len()
            );
            set(ConditionUpdate::new(
                AVAILABLE,
                false,
                "ChildrenNotAvailable",
                message.clone(),
            ));
            set(ConditionUpdate::new(
                PROGRESSING,
                true,
                "ChildrenNotAvailable",
                message,
            ));
        }
        match &observed.topology {
            Topology::Unreachable(message) => set(ConditionUpdate::new(
                DEGRADED,
                true,
                "TopologyUnreachable",
                format!("the global topology could not be written: {message}"),
            )),
            _ => set(ConditionUpdate::new(
                DEGRADED,
                false,
                "AsExpected",
                "no problem found",
            )),
        }
    }
    status.observed_generation = generation;
    status.cell_count = Some(observed.cell_count as i32);
    status.database_count = Some(observed.database_count as i32);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(name: &str, available: Option<bool>) -> ChildHealth {
        ChildHealth {
            kind: "Cell",
            name: name.into(),
            available,
        }
    }

    fn observed(children: Vec<ChildHealth>) -> Observed<'static> {
        Observed {
            generation: Some(3),
            previous: None,
            cell_count: 2,
            database_count: 1,
            children,
            blocked: None,
            topology: Topology::Registered,
            now: "2025-01-01T00:00:00Z".parse().unwrap(),
        }
    }

    fn condition<'a>(status: &'a MultigresClusterStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn available_only_when_every_child_is() {
        let all = compute(&observed(vec![
            child("a", Some(true)),
            child("b", Some(true)),
        ]));
        assert_eq!(condition(&all, AVAILABLE).status, "True");
        assert_eq!(condition(&all, PROGRESSING).status, "False");
        assert_eq!(condition(&all, DEGRADED).status, "False");
        assert_eq!(condition(&all, TOPOLOGY_REACHABLE).status, "True");
        assert_eq!(all.observed_generation, Some(3));
        assert_eq!((all.cell_count, all.database_count), (Some(2), Some(1)));

        let some = compute(&observed(vec![child("a", Some(true)), child("b", None)]));
        let available = condition(&some, AVAILABLE);
        assert_eq!(available.status, "False");
        assert_eq!(
            available.message,
            "1/2 children available; waiting for Cell b"
        );
        assert_eq!(condition(&some, PROGRESSING).status, "True");
    }

    #[test]
    fn a_blocked_reconcile_is_degraded_with_the_reason() {
        let mut input = observed(vec![child("a", Some(true))]);
        input.blocked = Some(Blocked {
            reason: "MissingTemplate",
            message: "spec.multiadmin.deploymentTemplate names 'x'".into(),
        });
        input.topology = Topology::NotChecked;
        let status = compute(&input);
        let degraded = condition(&status, DEGRADED);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "MissingTemplate")
        );
        assert!(degraded.message.contains("'x'"));
        assert_eq!(condition(&status, AVAILABLE).reason, "MissingTemplate");
        assert!(
            status
                .conditions
                .iter()
                .all(|c| c.type_ != TOPOLOGY_REACHABLE)
        );
    }

    #[test]
    fn an_unreachable_topology_degrades_but_children_still_count() {
        let mut input = observed(vec![child("a", Some(true))]);
        input.topology = Topology::Unreachable("no answer within 2s".into());
        let status = compute(&input);
        assert_eq!(condition(&status, TOPOLOGY_REACHABLE).status, "False");
        assert_eq!(condition(&status, DEGRADED).reason, "TopologyUnreachable");
        assert_eq!(condition(&status, AVAILABLE).status, "True");
    }

    #[test]
    fn the_same_input_later_gives_the_same_status() {
        let first = compute(&observed(vec![child("a", None)]));
        let mut later = observed(vec![child("a", None)]);
        later.previous = Some(&first);
        later.now = "2025-01-01T01:00:00Z".parse().unwrap();
        assert_eq!(compute(&later), first);
    }

    #[test]
    fn long_waiting_lists_are_cut() {
        let children = (0..8).map(|i| child(&format!("c{i}"), None)).collect();
        let status = compute(&observed(children));
        assert!(
            condition(&status, AVAILABLE)
                .message
                .ends_with("and 3 more")
        );
    }

    fn t(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn cond(type_: &str, status: bool, reason: &str, at: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: format!("{reason} message"),
            observed_generation: Some(3),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(at)),
        }
    }

    /// An aggregate: Available (since 10:00), Progressing False, Degraded False, 14 instances.
    fn aggregate(available: bool, at: &str) -> MultigresClusterStatus {
        let mut databases = std::collections::BTreeMap::new();
        databases.insert(
            "production_db".to_string(),
            multigres_api::cluster::DatabaseSummary {
                desired_instances: 14,
                ready_instances: if available { 14 } else { 12 },
                ..Default::default()
            },
        );
        MultigresClusterStatus {
            observed_generation: Some(3),
            conditions: vec![
                cond(AVAILABLE, available, "AllComponentsAvailable", at),
                cond(DEGRADED, false, "AsExpected", "2025-01-01T09:00:00Z"),
                cond(PROGRESSING, !available, "Reconciled", at),
            ],
            databases,
            cell_count: Some(2),
            database_count: Some(1),
            ready_instances_summary: Some("14/14".into()),
            ..Default::default()
        }
    }

    fn fine() -> Findings {
        Findings {
            blocked: None,
            topology: Topology::Registered,
        }
    }

    fn merged(
        previous: Option<&MultigresClusterStatus>,
        aggregate: Option<&MultigresClusterStatus>,
        findings: &Findings,
        reach: &AggregatorReach,
        now: &str,
    ) -> MultigresClusterStatus {
        merge(&Merge {
            generation: Some(3),
            previous,
            aggregate,
            findings,
            reach,
            now: t(now),
        })
    }

    #[test]
    fn the_aggregate_is_written_with_the_controllers_own_conditions() {
        let agg = aggregate(true, "2025-01-01T10:00:00Z");
        let status = merged(
            None,
            Some(&agg),
            &fine(),
            &AggregatorReach::Reachable,
            "2025-01-01T10:00:05Z",
        );
        assert_eq!(status.databases, agg.databases);
        assert_eq!(status.ready_instances_summary, agg.ready_instances_summary);
        assert_eq!(status.observed_generation, Some(3));
        for c in &agg.conditions {
            assert_eq!(condition(&status, &c.type_), c, "aggregated {}", c.type_);
        }
        assert_eq!(condition(&status, TOPOLOGY_REACHABLE).status, "True");
        let reachable = condition(&status, STATUS_AGGREGATOR_REACHABLE);
        assert_eq!(
            (reachable.status.as_str(), reachable.reason.as_str()),
            ("True", "Connected")
        );
        // Written as is the next time: no write.
        let again = merged(
            Some(&status),
            Some(&agg),
            &fine(),
            &AggregatorReach::Reachable,
            "2025-01-01T11:00:00Z",
        );
        assert_eq!(again, status);
    }

    #[test]
    fn an_outage_flips_only_the_reachability_condition() {
        let agg = aggregate(true, "2025-01-01T10:00:00Z");
        let before = merged(
            None,
            Some(&agg),
            &fine(),
            &AggregatorReach::Reachable,
            "2025-01-01T10:00:05Z",
        );
        let down = AggregatorReach::Unreachable("connection refused".into());
        // With or without the last aggregate remembered.
        for kept in [Some(&agg), None] {
            let during = merged(Some(&before), kept, &fine(), &down, "2025-01-01T10:30:00Z");
            let reachable = condition(&during, STATUS_AGGREGATOR_REACHABLE);
            assert_eq!(
                (
                    reachable.status.as_str(),
                    reachable.reason.as_str(),
                    reachable.message.as_str()
                ),
                ("False", "Unreachable", "connection refused")
            );
            assert_eq!(reachable.last_transition_time.0, t("2025-01-01T10:30:00Z"));
            let mut rest = during.clone();
            rest.conditions
                .retain(|c| c.type_ != STATUS_AGGREGATOR_REACHABLE);
            let mut expected = before.clone();
            expected
                .conditions
                .retain(|c| c.type_ != STATUS_AGGREGATOR_REACHABLE);
            assert_eq!(rest, expected);
        }
    }

    #[test]
    fn a_blocked_reconcile_overrides_the_aggregate_until_fixed() {
        let agg = aggregate(true, "2025-01-01T10:00:00Z");
        let before = merged(
            None,
            Some(&agg),
            &fine(),
            &AggregatorReach::Reachable,
            "2025-01-01T10:00:05Z",
        );
        let blocked = Findings {
            blocked: Some(Blocked {
                reason: "MissingTemplate",
                message: "spec.multiadmin.deploymentTemplate names 'x'".into(),
            }),
            topology: Topology::NotChecked,
        };
        let during = merged(
            Some(&before),
            Some(&agg),
            &blocked,
            &AggregatorReach::Reachable,
            "2025-01-01T11:00:00Z",
        );
        for (type_, status) in [
            (DEGRADED, "True"),
            (AVAILABLE, "False"),
            (PROGRESSING, "False"),
        ] {
            let c = condition(&during, type_);
            assert_eq!(
                (c.status.as_str(), c.reason.as_str()),
                (status, "MissingTemplate"),
                "{type_}"
            );
        }
        assert_eq!(
            condition(&during, DEGRADED).last_transition_time.0,
            t("2025-01-01T11:00:00Z")
        );
        assert_eq!(
            during.databases, agg.databases,
            "the aggregate's fields stay"
        );
        assert_eq!(
            condition(&during, TOPOLOGY_REACHABLE),
            condition(&before, TOPOLOGY_REACHABLE)
        );

        // Fixed: the aggregator's conditions again, flipped now (the aggregator's own times are older).
        let after = merged(
            Some(&during),
            Some(&agg),
            &fine(),
            &AggregatorReach::Reachable,
            "2025-01-01T12:00:00Z",
        );
        let available = condition(&after, AVAILABLE);
        assert_eq!(
            (available.status.as_str(), available.reason.as_str()),
            ("True", "AllComponentsAvailable")
        );
        assert_eq!(available.last_transition_time.0, t("2025-01-01T12:00:00Z"));
        // A later flip by the aggregator carries the aggregator's time.
        let flipped = aggregate(false, "2025-01-01T12:30:00Z");
        let later = merged(
            Some(&after),
            Some(&flipped),
            &fine(),
            &AggregatorReach::Reachable,
            "2025-01-01T12:30:01Z",
        );
        assert_eq!(
            condition(&later, AVAILABLE).last_transition_time.0,
            t("2025-01-01T12:30:00Z")
        );
    }

    #[test]
    fn an_unreachable_topology_adds_to_the_aggregators_degraded() {
        let mut agg = aggregate(true, "2025-01-01T10:00:00Z");
        agg.conditions[1] = cond(DEGRADED, true, "Impaired", "2025-01-01T10:00:00Z");
        let findings = Findings {
            blocked: None,
            topology: Topology::Unreachable("no answer within 1s".into()),
        };
        let status = merged(
            None,
            Some(&agg),
            &findings,
            &AggregatorReach::Unknown,
            "2025-01-01T10:00:05Z",
        );
        let degraded = condition(&status, DEGRADED);
        assert_eq!(degraded.reason, "TopologyUnreachable");
        assert_eq!(
            degraded.message,
            "the global topology could not be written: no answer within 1s; Impaired message"
        );
        assert_eq!(condition(&status, AVAILABLE).status, "True");
        assert_eq!(condition(&status, TOPOLOGY_REACHABLE).status, "False");
        assert!(
            status
                .conditions
                .iter()
                .all(|c| c.type_ != STATUS_AGGREGATOR_REACHABLE),
            "not connected yet: no claim either way"
        );
    }
}
