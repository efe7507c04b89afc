//! The cluster's status. Pure. Two ways to get it:
//! * [`merge`] (with `--status-aggregator-endpoint`): the status aggregator's aggregate, with the
//!   controller's own findings (blocking problems, the global topology, whether the aggregator is
//!   reachable) laid over it;
//! * [`compute`] (fallback, aggregator off): from the children's `Available` conditions in the
//!   controller's own caches.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use multigres_api::resolve::{ResolvedCluster, TopologyTls};

use crate::retention::Retention;
use multigres_api::{Cell, MultigresClusterStatus, TableGroup, TopoServer, multigres};
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
    /// What the pinned Multigres cannot serve of the spec (`multigres::unserved`), per table group.
    pub unserved: Vec<String>,
    /// TableGroups kept though the spec dropped them.
    pub retention: Retention,
    /// Why the credentials Secret is not usable, when it is not.
    pub credentials: Option<String>,
    /// Children the API server refused as invalid (`<kind> <name>: <message>`).
    pub refused: Vec<String>,
    /// Whether the topology speaks TLS; `None` before the tree resolved.
    pub topology_tls: Option<TopologyTls>,
    pub now: Timestamp,
}

const LISTED: usize = 5;

/// What one reconcile found that only the cluster controller knows.
#[derive(Clone, Debug, PartialEq)]
pub struct Findings {
    pub blocked: Option<Blocked>,
    pub topology: Topology,
    pub unserved: Vec<String>,
    pub retention: Retention,
    pub credentials: Option<String>,
    pub refused: Vec<String>,
    pub topology_tls: Option<TopologyTls>,
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
    if let Some(tls) = &input.findings.topology_tls {
        conditions::set(conds, topology_tls_condition(tls), generation, now);
    }
    conditions::set(
        conds,
        served_condition(&input.findings.unserved),
        generation,
        now,
    );
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
        (None, _) if !input.findings.refused.is_empty() => {
            vec![refused_condition(&input.findings.refused)]
        }
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

/// `MultigresServed`: whether the pinned Multigres serves every table group the spec asks for.
pub fn served_condition(unserved: &[String]) -> ConditionUpdate {
    let (status, reason, message) = multigres::served_condition(unserved);
    ConditionUpdate::new(multigres::SERVED_CONDITION, status, reason, message)
}

/// Condition type: whether the cluster's topology (etcd and its clients) speaks TLS.
pub const TOPOLOGY_ENCRYPTED: &str = "TopologyEncrypted";

/// `TopologyEncrypted`, with the reason when it is not.
pub fn topology_tls_condition(tls: &TopologyTls) -> ConditionUpdate {
    match tls {
        TopologyTls::Managed => ConditionUpdate::new(
            TOPOLOGY_ENCRYPTED,
            true,
            "MutualTLS",
            "etcd serves clients and peers over TLS and requires client certificates of the \
             operator's topology CA",
        ),
        TopologyTls::External { secret_name } => ConditionUpdate::new(
            TOPOLOGY_ENCRYPTED,
            true,
            "ExternalTLS",
            format!(
                "the external etcds are dialed over TLS: Multigres components with the Secret \
                 {secret_name}, the operator with the certificate its chart gives it"
            ),
        ),
        TopologyTls::Off { reason, message } => {
            ConditionUpdate::new(TOPOLOGY_ENCRYPTED, false, *reason, message.clone())
        }
    }
}

/// Condition type: whether the Postgres credentials Secret the pods mount exists.
pub const CREDENTIALS_READY: &str = "CredentialsReady";

pub fn credentials_condition(problem: &Option<String>) -> ConditionUpdate {
    match problem {
        None => ConditionUpdate::new(
            CREDENTIALS_READY,
            true,
            "SecretPresent",
            "the credentials Secret exists",
        ),
        Some(message) => ConditionUpdate::new(
            CREDENTIALS_READY,
            false,
            "CredentialsMissing",
            message.clone(),
        ),
    }
}

/// What the API server refused, for `Degraded` and its Event: the spec of the MultigresCluster holds a
/// value its children cannot take.
pub fn refused_message(refused: &[String]) -> String {
    format!(
        "part of what this cluster's spec asks for was refused (by the API server, or a topology \
         record held by another writer); fix what is named: {}",
        refused.join("; ")
    )
}

fn refused_condition(refused: &[String]) -> ConditionUpdate {
    ConditionUpdate::new(DEGRADED, true, "ChildRefused", refused_message(refused))
}

/// Condition type: TableGroups (and their data) kept though the spec no longer names them.
pub const RETAINED: &str = "Retained";

pub fn retained_condition(retention: &Retention) -> ConditionUpdate {
    let (status, reason, message) = retention.condition();
    ConditionUpdate::new(RETAINED, status, reason, message)
}

/// One line per table group the pinned Multigres cannot serve, naming the database.
pub fn unserved(resolved: &ResolvedCluster) -> Vec<String> {
    resolved
        .table_groups
        .iter()
        .flat_map(|tg| {
            let spec = &tg.spec;
            multigres::unserved(&spec.table_group, spec.partitioning.shards.max(0) as u32)
                .into_iter()
                .map(move |limit| format!("database {:?}, {limit}", spec.database))
        })
        .collect()
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
    set(served_condition(&observed.unserved));
    set(retained_condition(&observed.retention));
    set(credentials_condition(&observed.credentials));
    if let Some(tls) = &observed.topology_tls {
        set(topology_tls_condition(tls));
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
            _ if !observed.refused.is_empty() => set(refused_condition(&observed.refused)),
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
mod tests;
