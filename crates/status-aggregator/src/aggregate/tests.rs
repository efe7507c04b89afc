use super::*;
use multigres_dataplane_sim::testing::{
    Children, available_condition, children, make_ready, sample_cluster,
};

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-01T00:01:00Z";

fn all_primaries() -> BTreeSet<ShardId> {
    ["0", "1"]
        .iter()
        .map(|s| ShardId::new("orders", "default", s))
        .collect()
}

fn healthy_topology() -> TopologyObservation {
    TopologyObservation {
        global_reachable: Some(true),
        cells: BTreeMap::from([
            ("a".to_string(), Some(all_primaries())),
            ("b".to_string(), Some(BTreeSet::new())),
        ]),
        contested: BTreeSet::new(),
    }
}

fn inputs(children: &Children, topology: TopologyObservation) -> ClusterInputs {
    let mut cluster = sample_cluster("ns", "prod");
    cluster.metadata.generation = Some(2);
    ClusterInputs {
        cluster: Arc::new(cluster),
        topo_servers: children
            .topo_servers
            .iter()
            .cloned()
            .map(Arc::new)
            .collect(),
        cells: children.cells.iter().cloned().map(Arc::new).collect(),
        table_groups: children
            .table_groups
            .iter()
            .cloned()
            .map(Arc::new)
            .collect(),
        shards: children.shards.iter().cloned().map(Arc::new).collect(),
        multiadmin: Some(Arc::new(children.multiadmin.clone())),
        topology,
        controllers: BTreeMap::from([("shard-controller".into(), ControllerHealth::Serving)]),
        previous: None,
        now: T0.parse().unwrap(),
    }
}

fn ready_children() -> Children {
    let mut c = children(&sample_cluster("ns", "prod"));
    make_ready(&mut c);
    c
}

fn condition<'a>(status: &'a MultigresClusterStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status:#?}"))
}

#[test]
fn a_ready_cluster_is_available_field_by_field() {
    let status = aggregate(&inputs(&ready_children(), healthy_topology()));
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(
        status.global_topo_server.as_ref().unwrap().etcd.available,
        Tristate::True
    );
    assert_eq!(status.cells.len(), 2);
    for cell in status.cells.values() {
        assert_eq!(
            *cell,
            CellSummary {
                gateway_available: Tristate::True,
                multiorch_available: Tristate::True,
                topo_server_available: Tristate::True,
            }
        );
    }
    assert_eq!(
        status.databases["orders"],
        DatabaseSummary {
            desired_instances: 8,
            ready_instances: 8,
            serving_writes: Tristate::True,
        }
    );
    assert_eq!(
        status.multiadmin,
        Some(MultiAdminSummary {
            available: Tristate::True,
            service_name: "prod-multiadmin".into(),
        })
    );
    assert_eq!(status.cell_count, Some(2));
    assert_eq!(status.database_count, Some(1));
    assert_eq!(status.ready_instances_summary.as_deref(), Some("8/8"));
    let available = condition(&status, AVAILABLE);
    assert_eq!(
        (available.status.as_str(), available.reason.as_str()),
        ("True", "AllComponentsAvailable")
    );
    assert_eq!(available.observed_generation, Some(2));
    let progressing = condition(&status, PROGRESSING);
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "Reconciled")
    );
    assert_eq!(condition(&status, DEGRADED).status, "False");
    let types: Vec<_> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, ["Available", "Degraded", "Progressing"]);
}

#[test]
fn no_children_yet_is_progressing_and_names_what_is_missing() {
    let empty = Children {
        topo_servers: vec![],
        cells: vec![],
        table_groups: vec![],
        shards: vec![],
        multiadmin: Default::default(),
    };
    let mut input = inputs(&empty, TopologyObservation::default());
    input.multiadmin = None;
    let status = aggregate(&input);
    assert_eq!(status.observed_generation, None);
    let progressing = condition(&status, PROGRESSING);
    assert_eq!(progressing.status, "True");
    assert_eq!(progressing.reason, "ChildrenMissing");
    for name in [
        "TopoServer prod-global",
        "Cell prod-a",
        "Cell prod-b",
        "TopoServer prod-b",
    ] {
        assert!(
            progressing.message.contains(name),
            "{}",
            progressing.message
        );
    }
    assert!(
        progressing.message.contains("and"),
        "long lists are cut: {}",
        progressing.message
    );
    assert_eq!(condition(&status, AVAILABLE).status, "False");
    assert_eq!(
        status.global_topo_server.unwrap().etcd.available,
        Tristate::False
    );
    assert_eq!(status.cells["a"].gateway_available, Tristate::False);
    assert_eq!(status.multiadmin.unwrap().available, Tristate::False);
    // No TableGroup: nothing desired yet; topology never polled: serving unknown.
    assert_eq!(status.databases["orders"].desired_instances, 0);
    assert_eq!(status.databases["orders"].serving_writes, Tristate::Unknown);
    assert_eq!(status.ready_instances_summary.as_deref(), Some("0/0"));
}

#[test]
fn a_child_behind_its_generation_keeps_the_last_observed_generation() {
    let mut c = ready_children();
    c.shards[1].metadata.generation = Some(2);
    let mut input = inputs(&c, healthy_topology());
    input.previous = Some(MultigresClusterStatus {
        observed_generation: Some(1),
        ..Default::default()
    });
    let status = aggregate(&input);
    assert_eq!(status.observed_generation, Some(1));
    let progressing = condition(&status, PROGRESSING);
    assert_eq!(progressing.reason, "ChildrenUpdating");
    assert!(
        progressing.message.contains(&c.shards[1].name_any()),
        "{}",
        progressing.message
    );
    // Still available: being behind is not being down.
    assert_eq!(condition(&status, AVAILABLE).status, "True");
}

#[test]
fn pods_losing_readiness_lower_ready_instances() {
    let mut c = ready_children();
    c.shards[0].status.as_mut().unwrap().ready_pods = 1;
    let status = aggregate(&inputs(&c, healthy_topology()));
    assert_eq!(status.databases["orders"].ready_instances, 5);
    assert_eq!(status.databases["orders"].desired_instances, 8);
    assert_eq!(status.ready_instances_summary.as_deref(), Some("5/8"));
    let progressing = condition(&status, PROGRESSING);
    assert_eq!(progressing.reason, "PodsNotReady");
    assert!(
        progressing
            .message
            .contains(&format!("Shard {}: 1/4 pods ready", c.shards[0].name_any())),
        "{}",
        progressing.message
    );
    assert_eq!(
        status.observed_generation,
        Some(2),
        "not-ready pods do not hold back the generation"
    );
}

#[test]
fn a_contested_primary_does_not_serve_writes() {
    let c = ready_children();
    let mut topology = healthy_topology();
    topology
        .contested
        .insert(ShardId::new("orders", "default", "1"));
    let status = aggregate(&inputs(&c, topology));
    assert_eq!(status.databases["orders"].serving_writes, Tristate::False);
    let available = condition(&status, AVAILABLE);
    assert!(
        available
            .message
            .contains("shard orders/default/1: several poolers claim PRIMARY"),
        "{}",
        available.message
    );
}

#[test]
fn serving_writes_follows_the_topology() {
    let c = ready_children();
    // One shard without a serving primary, every cell answered: False.
    let mut topology = healthy_topology();
    topology.cells.insert(
        "a".into(),
        Some(BTreeSet::from([ShardId::new("orders", "default", "0")])),
    );
    let status = aggregate(&inputs(&c, topology));
    assert_eq!(status.databases["orders"].serving_writes, Tristate::False);
    let available = condition(&status, AVAILABLE);
    assert_eq!(available.status, "False");
    assert!(
        available
            .message
            .contains("shard orders/default/1 has no serving PRIMARY"),
        "{}",
        available.message
    );

    // The primary's cell does not answer: Unknown, and Degraded says why.
    let mut topology = healthy_topology();
    topology.cells.insert("a".into(), None);
    let status = aggregate(&inputs(&c, topology));
    assert_eq!(status.databases["orders"].serving_writes, Tristate::Unknown);
    let degraded = condition(&status, DEGRADED);
    assert_eq!(degraded.status, "True");
    assert!(degraded.message.contains("topology of cell a unreachable"));

    // A primary seen in a readOnly cell still counts (it is what multipooler wrote).
    let mut topology = healthy_topology();
    topology.cells.insert("a".into(), Some(BTreeSet::new()));
    topology.cells.insert("b".into(), Some(all_primaries()));
    let status = aggregate(&inputs(&c, topology));
    assert_eq!(status.databases["orders"].serving_writes, Tristate::True);
}

#[test]
fn cells_report_gateway_multiorch_and_topology_separately() {
    let mut c = ready_children();
    let b = c.cells.iter_mut().find(|x| x.spec.name == "b").unwrap();
    let s = b.status.as_mut().unwrap();
    s.gateway_ready_replicas = 0;
    s.multiorch_available = Tristate::False;
    let local = c
        .topo_servers
        .iter_mut()
        .find(|t| t.name_any() == "prod-b")
        .unwrap();
    local.status.as_mut().unwrap().conditions = vec![available_condition(false)];
    local.status.as_mut().unwrap().ready_replicas = 0;
    let status = aggregate(&inputs(&c, healthy_topology()));
    assert_eq!(
        status.cells["b"],
        CellSummary {
            gateway_available: Tristate::False,
            multiorch_available: Tristate::False,
            topo_server_available: Tristate::False,
        }
    );
    assert_eq!(status.cells["a"].gateway_available, Tristate::True);
    let available = condition(&status, AVAILABLE);
    for what in [
        "cell b multigateway",
        "cell b multiorch",
        "cell b topology server",
    ] {
        assert!(available.message.contains(what), "{}", available.message);
    }
    // A cell that has not reported yet is unknown, not unavailable.
    let mut c = ready_children();
    c.cells[0].status = None;
    let status = aggregate(&inputs(&c, healthy_topology()));
    assert_eq!(status.cells["a"].gateway_available, Tristate::Unknown);
    assert_eq!(status.cells["a"].multiorch_available, Tristate::Unknown);
    // Cell a is on the global topology, which is available.
    assert_eq!(status.cells["a"].topo_server_available, Tristate::True);
}

#[test]
fn global_topology_availability_managed_and_external() {
    let mut c = ready_children();
    c.topo_servers[0].status.as_mut().unwrap().conditions = vec![available_condition(false)];
    let status = aggregate(&inputs(&c, healthy_topology()));
    assert_eq!(
        status.global_topo_server.unwrap().etcd.available,
        Tristate::False
    );

    c.topo_servers[0]
        .status
        .as_mut()
        .unwrap()
        .conditions
        .clear();
    let status = aggregate(&inputs(&c, healthy_topology()));
    assert_eq!(
        status.global_topo_server.unwrap().etcd.available,
        Tristate::Unknown
    );

    // External: whether the topology answered.
    let mut input = inputs(&ready_children(), healthy_topology());
    let mut cluster = (*input.cluster).clone();
    cluster.spec.global_topo_server = Some(multigres_api::TopoServerConfig {
        external: Some(multigres_api::ExternalTopoServer {
            address: "etcd:2379".into(),
            root_path: None,
            tls: None,
        }),
        ..Default::default()
    });
    input.cluster = Arc::new(cluster);
    input.topo_servers.retain(|t| t.name_any() != "prod-global");
    for (seen, expected) in [
        (Some(true), Tristate::True),
        (Some(false), Tristate::False),
        (None, Tristate::Unknown),
    ] {
        input.topology.global_reachable = seen;
        let status = aggregate(&input);
        assert_eq!(
            status.global_topo_server.as_ref().unwrap().etcd.available,
            expected
        );
        assert!(
            !condition(&status, PROGRESSING)
                .message
                .contains("prod-global")
        );
    }
}

#[test]
fn multiadmin_without_available_pods() {
    let mut c = ready_children();
    c.multiadmin.status.as_mut().unwrap().available_replicas = Some(0);
    let status = aggregate(&inputs(&c, healthy_topology()));
    assert_eq!(status.multiadmin.unwrap().available, Tristate::False);
    let mut c = ready_children();
    c.multiadmin.status = None;
    let status = aggregate(&inputs(&c, healthy_topology()));
    assert_eq!(status.multiadmin.unwrap().available, Tristate::Unknown);
}

#[test]
fn unhealthy_controllers_degrade_the_cluster() {
    let mut input = inputs(&ready_children(), healthy_topology());
    input
        .controllers
        .insert("cell-controller".into(), ControllerHealth::NotServing);
    input.controllers.insert(
        "topo-controller".into(),
        ControllerHealth::Unreachable("timed out".into()),
    );
    input
        .controllers
        .insert("tablegroup-controller".into(), ControllerHealth::Unknown);
    let status = aggregate(&input);
    let degraded = condition(&status, DEGRADED);
    assert_eq!(degraded.status, "True");
    assert!(
        degraded
            .message
            .contains("controller cell-controller is not serving")
    );
    assert!(
        degraded
            .message
            .contains("controller topo-controller is unreachable (timed out)")
    );
    assert!(!degraded.message.contains("tablegroup"));
    assert_eq!(
        condition(&status, AVAILABLE).status,
        "True",
        "the data plane is fine"
    );
}

#[test]
fn transition_times_move_only_on_a_flip_and_foreign_conditions_are_dropped() {
    let c = ready_children();
    let first = aggregate(&inputs(&c, healthy_topology()));
    let mut previous = first.clone();
    previous.conditions.push(Condition {
        type_: "StatusAggregatorReachable".into(),
        ..available_condition(true)
    });
    let mut input = inputs(&c, healthy_topology());
    input.previous = Some(previous);
    input.now = T1.parse().unwrap();
    let same = aggregate(&input);
    assert_eq!(same, first, "nothing changed, so nothing moves");

    let mut c2 = c.clone();
    c2.multiadmin.status.as_mut().unwrap().available_replicas = Some(0);
    let mut input = inputs(&c2, healthy_topology());
    input.previous = Some(first.clone());
    input.now = T1.parse().unwrap();
    let flipped = aggregate(&input);
    assert_eq!(
        condition(&flipped, AVAILABLE).last_transition_time.0,
        T1.parse().unwrap()
    );
    // Progressing flipped too (multiadmin 0/1 pods); Degraded did not.
    assert_eq!(
        condition(&flipped, PROGRESSING).last_transition_time.0,
        T1.parse().unwrap()
    );
    assert_eq!(
        condition(&flipped, DEGRADED).last_transition_time.0,
        T0.parse().unwrap()
    );
}
