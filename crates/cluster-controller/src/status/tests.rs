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
        unserved: Vec::new(),
        retention: Default::default(),
        credentials: None,
        refused: Vec::new(),
        topology_tls: None,
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
        unserved: Vec::new(),
        retention: Default::default(),
        credentials: None,
        refused: Vec::new(),
        topology_tls: None,
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
        unserved: Vec::new(),
        retention: Default::default(),
        credentials: None,
        refused: Vec::new(),
        topology_tls: None,
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
        unserved: Vec::new(),
        retention: Default::default(),
        credentials: None,
        refused: Vec::new(),
        topology_tls: None,
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

#[test]
fn what_multigres_cannot_serve_is_named_on_the_cluster() {
    let mut input = observed(Vec::new());
    let served = compute(&input);
    assert_eq!(
        condition(&served, multigres::SERVED_CONDITION).status,
        "True"
    );
    input.unserved = vec!["database \"db\", 2 shards: Multigres 6bd80b9 serves one shard".into()];
    let status = compute(&input);
    let c = condition(&status, multigres::SERVED_CONDITION);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "NotServedByMultigres")
    );
    assert!(c.message.contains("2 shards") && c.message.contains("6bd80b9"));
    let merged = merge(&Merge {
        generation: Some(3),
        previous: None,
        aggregate: None,
        findings: &Findings {
            unserved: input.unserved.clone(),
            ..fine()
        },
        reach: &AggregatorReach::Unknown,
        now: "2025-01-01T00:00:00Z".parse().unwrap(),
    });
    assert_eq!(
        condition(&merged, multigres::SERVED_CONDITION).status,
        "False"
    );
}

#[test]
fn the_topology_tls_answer_is_a_condition_in_both_paths() {
    let off = TopologyTls::Off {
        reason: "NoTopologyCA",
        message: "the operator runs without a topology CA".into(),
    };
    let computed = compute(&Observed {
        topology_tls: Some(off.clone()),
        ..observed(vec![child("a", Some(true))])
    });
    let c = condition(&computed, TOPOLOGY_ENCRYPTED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "NoTopologyCA")
    );
    let merged = merge(&Merge {
        generation: Some(3),
        previous: None,
        aggregate: None,
        findings: &Findings {
            topology_tls: Some(TopologyTls::Managed),
            ..fine()
        },
        reach: &AggregatorReach::Unknown,
        now: "2025-01-01T00:00:00Z".parse().unwrap(),
    });
    let c = condition(&merged, TOPOLOGY_ENCRYPTED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "MutualTLS")
    );
    // Before the tree resolved, nothing is said.
    let unknown = compute(&observed(vec![]));
    assert!(
        unknown
            .conditions
            .iter()
            .all(|c| c.type_ != TOPOLOGY_ENCRYPTED)
    );
}
