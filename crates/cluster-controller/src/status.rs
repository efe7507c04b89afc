//! The cluster's status, computed from what the reconcile saw. Pure: the status aggregator (issue 7)
//! will later feed richer input into the same function.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use multigres_api::{Cell, MultigresClusterStatus, TableGroup, TopoServer};
use multigres_runtime::conditions::{self, AVAILABLE, ConditionUpdate, DEGRADED, PROGRESSING};

/// Whether the cluster can reach its global topology.
pub const TOPOLOGY_REACHABLE: &str = "TopologyReachable";

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

/// The status to write. Identical input gives an identical status (transition times included), so an
/// unchanged cluster gets no status write.
pub fn compute(observed: &Observed<'_>) -> MultigresClusterStatus {
    let mut status = observed.previous.cloned().unwrap_or_default();
    let generation = observed.generation;
    let now = observed.now;
    let mut set = |update: ConditionUpdate| {
        conditions::set(&mut status.conditions, update, generation, now);
    };
    match &observed.topology {
        Topology::Registered => set(ConditionUpdate::new(
            TOPOLOGY_REACHABLE,
            true,
            "Registered",
            "every database is registered in the global topology",
        )),
        Topology::Unreachable(message) => set(ConditionUpdate::new(
            TOPOLOGY_REACHABLE,
            false,
            "TopologyUnreachable",
            message.clone(),
        )),
        Topology::NotChecked => {}
    }
    if let Some(blocked) = &observed.blocked {
        set(ConditionUpdate::new(
            DEGRADED,
            true,
            blocked.reason,
            blocked.message.clone(),
        ));
        set(ConditionUpdate::new(
            AVAILABLE,
            false,
            blocked.reason,
            "the cluster's children were not updated; see the Degraded condition",
        ));
        set(ConditionUpdate::new(
            PROGRESSING,
            false,
            blocked.reason,
            "waiting for the problem in the Degraded condition to be fixed",
        ));
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
}
