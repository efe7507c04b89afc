//! The cluster-controller against a real control plane: the sample cluster becomes its tree, template
//! edits and spec removals reach it, manual edits are reverted, a missing template is reported and
//! recovered from, a template in use is held, and deleting the cluster removes the tree (the other
//! data-safety cases are in data_safety.rs). The admission policies are not installed in this binary
//! (see admission.rs), so the test edits children as admin.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

#[path = "cluster/renewal.rs"]
mod renewal;

use common::tree::{resolved, wait_for_tree};
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use multigres_api::resolve::ResolvedCluster;
use multigres_api::{Cell, DeploymentTemplate, MultigresCluster, TableGroup, TopoServer, naming};
use multigres_cluster_controller::build;
use multigres_cluster_controller::templates::IN_USE_FINALIZER;
use multigres_e2e::{wait_deleted, wait_for};
use multigres_runtime::conditions::{AVAILABLE, DEGRADED};
use multigres_runtime::pki::Authority;
use multigres_topology::{AddressMapping, TopoClient};

/// Every database of `expected` is in the global topology, as the cluster controller writes it.
async fn assert_databases_registered(topo: &TopoClient, expected: &ResolvedCluster) {
    for db in &expected.databases {
        let key = multigres_topology::database_key(&expected.global_topology.root_path, &db.name);
        let (record, _) = topo
            .get::<multigres_topology::Database>(&key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no record of database {}", db.name));
        assert_eq!(record, build::database_record(db));
    }
}

fn condition(cluster: &MultigresCluster, type_: &str) -> Option<(String, String, String)> {
    cluster
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn sample_cluster_becomes_its_tree_registers_its_databases_idles_without_writes_and_goes_with_the_cluster()
 {
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace("cc-sample").await.unwrap();
    let etcd = TestEtcd::start().await;
    let topo_address = naming::topo_address(
        &naming::topo_client_service(&naming::global_topo_server(SAMPLE)),
        &ns,
    );
    let controller = start_controller(&ns, &format!("{topo_address}={}", etcd.endpoint()))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    apply_templates(&client, &ns).await.unwrap();
    let cluster = apply(&client, &sample_cluster(&ns)).await.unwrap();
    let expected = resolved(&ns, &cluster);
    wait_for_tree(&client, &ns, &expected).await;
    eprintln!("tree complete after {:?}", started.elapsed());
    assert_eq!(expected.cells.len(), 2);
    assert_eq!(expected.table_groups.len(), 4);

    // The generated credentials.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret = wait_for(&secrets, &naming::credentials_secret(SAMPLE), WAIT, |_| {
        true
    })
    .await
    .unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["username"].0, b"postgres");
    assert_eq!(data["password"].0.len(), 32);

    // Database records in the global topology, decoded.
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);
    wait_for(&clusters, SAMPLE, WAIT, |c| {
        condition(c, "TopologyReachable").is_some_and(|(s, _, _)| s == "True")
    })
    .await
    .unwrap();
    let topo = topo_client(&etcd).await.unwrap();
    assert_databases_registered(&topo, &expected).await;

    // Settled: multiadmin's Deployment is available (kwok), the rest waits for its controllers.
    let settled = wait_for(&clusters, SAMPLE, WAIT, |c| {
        condition(c, AVAILABLE).is_some_and(|(_, _, m)| m.starts_with("1/8 children available"))
            && c.status.as_ref().and_then(|s| s.observed_generation) == c.metadata.generation
    })
    .await
    .unwrap();
    assert_eq!(settled.status.as_ref().unwrap().cell_count, Some(2));
    assert_eq!(settled.status.as_ref().unwrap().database_count, Some(1));

    // Templates list the cluster as their consumer and hold the finalizer. Waited for before the
    // no-op below: the template lifecycle's retries (a 409 at start) wrote during it once (CI).
    let templates: Api<DeploymentTemplate> = Api::namespaced(client.clone(), &ns);
    for name in [
        "standard-ha",
        "default-ha",
        "orders-ha-replica",
        "orders-read-only",
    ] {
        wait_for(&templates, name, WAIT, |t| {
            t.status
                .as_ref()
                .is_some_and(|s| s.consumer_count == Some(1) && s.consumers[0].name == SAMPLE)
                && t.finalizers().iter().any(|f| f == IN_USE_FINALIZER)
        })
        .await
        .unwrap();
    }

    // A reconcile of an unchanged cluster writes nothing. The test's own annotation is a change the
    // controller sees (and reconciles) but has nothing to do about.
    let writes_before = controller.writes().await.unwrap();
    let reconciles_before = controller
        .metric("multigres_reconciles_total", "")
        .await
        .unwrap();
    let touch = serde_json::json!({"metadata": {"annotations": {"test/touched": "1"}}});
    clusters
        .patch(SAMPLE, &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reconciles = controller
            .metric("multigres_reconciles_total", "")
            .await
            .unwrap();
        let in_flight = controller
            .metric("multigres_reconciles_in_flight", "")
            .await
            .unwrap();
        if reconciles > reconciles_before && in_flight == 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reconcile after the touch"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let writes_after = controller.writes().await.unwrap();
    eprintln!(
        "no-op: reconciles {reconciles_before} -> more, writes {writes_before} -> {writes_after}"
    );
    assert_eq!(
        writes_after,
        writes_before,
        "a no-op reconcile wrote; log:\n{}",
        controller.log()
    );

    // Deleting the cluster removes the tree through owner references, and frees the templates.
    clusters
        .delete(SAMPLE, &DeleteParams::foreground())
        .await
        .unwrap();
    let deleted = std::time::Instant::now();
    let cells: Api<Cell> = Api::namespaced(client.clone(), &ns);
    for cell in &expected.cells {
        wait_deleted(&cells, &cell.name, WAIT).await.unwrap();
    }
    let tgs: Api<TableGroup> = Api::namespaced(client.clone(), &ns);
    for tg in &expected.table_groups {
        wait_deleted(&tgs, &tg.name, WAIT).await.unwrap();
    }
    let topo_servers: Api<TopoServer> = Api::namespaced(client.clone(), &ns);
    wait_deleted(
        &topo_servers,
        &expected.global_topo_server.as_ref().unwrap().name,
        WAIT,
    )
    .await
    .unwrap();
    let admin = &expected.multiadmin.name;
    wait_deleted(
        &Api::<Deployment>::namespaced(client.clone(), &ns),
        admin,
        WAIT,
    )
    .await
    .unwrap();
    wait_deleted(
        &Api::<Service>::namespaced(client.clone(), &ns),
        admin,
        WAIT,
    )
    .await
    .unwrap();
    wait_deleted(&clusters, SAMPLE, WAIT).await.unwrap();
    eprintln!("tree gone after {:?}", deleted.elapsed());
    for name in ["standard-ha", "default-ha"] {
        wait_for(&templates, name, WAIT, |t| {
            t.status.as_ref().is_some_and(|s| s.consumers.is_empty())
                && !t.finalizers().iter().any(|f| f == IN_USE_FINALIZER)
        })
        .await
        .unwrap();
    }
    // Retained volumes keep a usable password: the generated Secret outlives the cluster.
    assert!(
        secrets
            .get_opt(&naming::credentials_secret(SAMPLE))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn template_edits_reach_children_removed_cells_go_and_removed_tablegroups_wait_for_confirmation()
 {
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace("cc-edit").await.unwrap();
    let _controller = start_controller(&ns, "").await.unwrap();
    apply_templates(&client, &ns).await.unwrap();
    let mut cluster = sample_cluster(&ns);
    // A spare cell without pools, so that it can be removed (pools must name declared cells).
    let mut spare = cluster.spec.cells[0].clone();
    spare.name = "spare".into();
    cluster.spec.cells.push(spare);
    let applied = apply(&client, &cluster).await.unwrap();
    wait_for_tree(&client, &ns, &resolved(&ns, &applied)).await;

    // Edit the template: every cell using its multigateway section follows.
    let mut standard = sample_templates(&ns).remove(0);
    assert_eq!(standard.name_any(), "standard-ha");
    standard.spec.multigateway.as_mut().unwrap().replicas = Some(5);
    let edited_at = std::time::Instant::now();
    apply(&client, &standard).await.unwrap();
    let cells: Api<Cell> = Api::namespaced(client.clone(), &ns);
    for cell in ["us-east-1", "us-west-2", "spare"] {
        wait_for(&cells, &naming::cell(SAMPLE, cell), WAIT, |c| {
            c.spec.multigateway.replicas == 5
        })
        .await
        .unwrap();
    }
    eprintln!(
        "template edit reached the cells after {:?}",
        edited_at.elapsed()
    );

    // Remove a tablegroup and a cell: the cell goes (it holds no data); the tablegroup, its Shards
    // and its Database record are kept, and the cluster says so, until the user confirms.
    let mut smaller = cluster.clone();
    smaller.spec.cells.retain(|c| c.name != "spare");
    smaller.spec.databases[0]
        .spec
        .tablegroups
        .retain(|t| t.name != "analytics_tg");
    apply(&client, &smaller).await.unwrap();
    wait_deleted(&cells, &naming::cell(SAMPLE, "spare"), WAIT)
        .await
        .unwrap();
    let tgs: Api<TableGroup> = Api::namespaced(client.clone(), &ns);
    let analytics = naming::table_group(SAMPLE, "production_db", "analytics_tg");
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);
    let retained = |c: &MultigresCluster| {
        c.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Retained" && c.status == "True" && c.message.contains(&analytics)
            })
        })
    };
    wait_for(&clusters, SAMPLE, WAIT, retained).await.unwrap();
    assert!(tgs.get_opt(&analytics).await.unwrap().is_some(), "kept");
    // Confirmed by the annotation: now it goes.
    let confirm = serde_json::json!({"metadata": {"annotations": {
        "multigres.com/delete-retained": analytics.clone()
    }}});
    clusters
        .patch(SAMPLE, &PatchParams::default(), &Patch::Merge(&confirm))
        .await
        .unwrap();
    wait_deleted(&tgs, &analytics, WAIT).await.unwrap();
    // The others stay.
    assert!(
        cells
            .get_opt(&naming::cell(SAMPLE, "us-east-1"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        tgs.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
}

#[tokio::test]
async fn a_hand_edited_child_is_reverted() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace("cc-revert").await.unwrap();
    let _controller = start_controller(&ns, "").await.unwrap();
    apply_templates(&client, &ns).await.unwrap();
    let cluster = apply(&client, &sample_cluster(&ns)).await.unwrap();
    let expected = resolved(&ns, &cluster);
    wait_for_tree(&client, &ns, &expected).await;

    let cells: Api<Cell> = Api::namespaced(client.clone(), &ns);
    let name = &expected.cells[0].name;
    let want = expected.cells[0].spec.multigateway.replicas;
    let edit = serde_json::json!({"spec": {"multigateway": {"replicas": 42}}});
    let edited = cells
        .patch(name, &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    assert_eq!(edited.spec.multigateway.replicas, 42);
    let at = std::time::Instant::now();
    wait_for(&cells, name, Duration::from_secs(10), |c| {
        c.spec.multigateway.replicas == want
    })
    .await
    .unwrap();
    eprintln!("hand edit reverted after {:?}", at.elapsed());

    // A deleted child comes back too.
    let tgs: Api<TableGroup> = Api::namespaced(client.clone(), &ns);
    let tg = &expected.table_groups[0];
    let old_uid = tgs.get(&tg.name).await.unwrap().uid();
    tgs.delete(&tg.name, &DeleteParams::default())
        .await
        .unwrap();
    wait_for(&tgs, &tg.name, Duration::from_secs(10), |t| {
        t.uid() != old_uid
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_missing_template_is_reported_without_building_anything_and_recovers() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace("cc-missing").await.unwrap();
    let _controller = start_controller(&ns, "").await.unwrap();
    // Only the shard-pool templates: standard-ha is missing.
    for t in sample_templates(&ns)
        .into_iter()
        .filter(|t| t.name_any() != "standard-ha")
    {
        apply(&client, &t).await.unwrap();
    }
    apply(&client, &sample_cluster(&ns)).await.unwrap();
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);
    let blocked = wait_for(&clusters, SAMPLE, WAIT, |c| {
        condition(c, DEGRADED).is_some_and(|(s, r, _)| s == "True" && r == "MissingTemplate")
    })
    .await
    .unwrap();
    let (_, _, message) = condition(&blocked, DEGRADED).unwrap();
    assert!(message.contains("'standard-ha'"), "{message}");
    assert!(message.contains("deploymentTemplate"), "{message}");
    assert_eq!(condition(&blocked, AVAILABLE).unwrap().0, "False");
    // No half-built tree.
    assert!(
        Api::<Cell>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        Api::<TableGroup>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        Api::<TopoServer>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A Warning Event names the problem.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let warnings: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("MissingTemplate"))
        .collect();
    assert!(!warnings.is_empty(), "no MissingTemplate event");
    assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));
    assert!(
        warnings[0]
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("standard-ha")
    );

    // The template appears: the cluster recovers on its own.
    let standard = sample_templates(&ns).remove(0);
    apply(&client, &standard).await.unwrap();
    let cluster = clusters.get(SAMPLE).await.unwrap();
    wait_for_tree(&client, &ns, &resolved(&ns, &cluster)).await;
    wait_for(&clusters, SAMPLE, WAIT, |c| {
        condition(c, DEGRADED).is_some_and(|(_, r, _)| r != "MissingTemplate")
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn deleting_a_template_in_use_is_held_until_its_last_consumer_goes() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace("cc-held").await.unwrap();
    let _controller = start_controller(&ns, "").await.unwrap();
    apply_templates(&client, &ns).await.unwrap();
    let mut cluster = sample_cluster(&ns);
    cluster.metadata.labels = Some(BTreeMap::from([("test".to_string(), "held".to_string())]));
    apply(&client, &cluster).await.unwrap();
    let templates: Api<DeploymentTemplate> = Api::namespaced(client.clone(), &ns);
    wait_for(&templates, "orders-read-only", WAIT, |t| {
        t.finalizers().iter().any(|f| f == IN_USE_FINALIZER)
    })
    .await
    .unwrap();
    // Without the admission policy (see admission.rs) the finalizer is the backstop.
    templates
        .delete("orders-read-only", &DeleteParams::default())
        .await
        .unwrap();
    let held = templates.get("orders-read-only").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    // The cluster still resolves against the template being deleted.
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);
    // Stop using it: drop the orders_tg readOnly pool.
    for pools in cluster.spec.databases[0]
        .spec
        .tablegroups
        .iter_mut()
        .map(|t| &mut t.shard_template.pools)
    {
        pools.retain(|p| p.deployment_template.as_deref() != Some("orders-read-only"));
    }
    apply(&client, &cluster).await.unwrap();
    wait_deleted(&templates, "orders-read-only", WAIT)
        .await
        .unwrap();
    // The others are still in use.
    let standard = templates.get("standard-ha").await.unwrap();
    assert_eq!(standard.status.unwrap().consumer_count, Some(1));
    assert!(clusters.get_opt(SAMPLE).await.unwrap().is_some());
}

#[tokio::test]
async fn gateways_are_exposed_as_the_cluster_asks() {
    use multigres_api::{GatewayExposure, ServiceExposure};
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace("cc-expose").await.unwrap();
    let _controller = start_controller(&ns, "").await.unwrap();
    apply_templates(&client, &ns).await.unwrap();
    let mut cluster = sample_cluster(&ns);
    cluster.spec.gateway_service = Some(GatewayExposure {
        type_: Some(ServiceExposure::LoadBalancer),
        annotations: Some(BTreeMap::from([(
            "example.com/lb".into(),
            "internal".into(),
        )])),
        load_balancer_source_ranges: Some(vec!["10.0.0.0/8".into()]),
    });
    cluster.spec.cells[0].spec.gateway_service = Some(GatewayExposure {
        type_: Some(ServiceExposure::NodePort),
        ..Default::default()
    });
    let cluster = apply(&client, &cluster).await.unwrap();

    // One Service over every cell's gateways, exposed as asked.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let name = naming::cluster_gateways(SAMPLE);
    let service = wait_for(&services, &name, WAIT, |s| {
        let spec = s.spec.as_ref().unwrap();
        spec.type_.as_deref() == Some("LoadBalancer")
            && spec.load_balancer_source_ranges == Some(vec!["10.0.0.0/8".to_string()])
            && s.annotations().get("example.com/lb").map(String::as_str) == Some("internal")
    })
    .await
    .unwrap();
    let spec = service.spec.unwrap();
    let ports: Vec<i32> = spec.ports.iter().flatten().map(|p| p.port).collect();
    assert_eq!(ports, [5432, 5433, 15991, 15001]);
    let selector = spec.selector.unwrap();
    assert_eq!(
        selector,
        BTreeMap::from([
            ("multigres.com/cluster".to_string(), SAMPLE.to_string()),
            (
                "app.kubernetes.io/component".to_string(),
                "multigateway".to_string()
            ),
        ]),
        "every cell's gateway pods, none of another cluster"
    );

    // The cell carries its own exposure to the cell controller.
    let cells: Api<Cell> = Api::namespaced(client.clone(), &ns);
    let first = naming::cell(SAMPLE, &cluster.spec.cells[0].name);
    wait_for(&cells, &first, WAIT, |c| {
        c.spec.gateway_service.as_ref().and_then(|g| g.type_) == Some(ServiceExposure::NodePort)
    })
    .await
    .unwrap();

    // Unset again: back to ClusterIP, without the ranges.
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);
    let patch = serde_json::json!({"spec": {"gatewayService": null}});
    clusters
        .patch(SAMPLE, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for(&services, &name, WAIT, |s| {
        let spec = s.spec.as_ref().unwrap();
        spec.type_.as_deref() == Some("ClusterIP") && spec.load_balancer_source_ranges.is_none()
    })
    .await
    .unwrap();
}

/// An upgrade from the earlier, hashed TableGroup names: a TableGroup the cluster already controls
/// keeps its name (its Shards and pods with it); the others take the readable names.
#[tokio::test]
async fn existing_table_groups_keep_their_earlier_names() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace("cc-names").await.unwrap();
    let etcd = TestEtcd::start().await;
    apply_templates(&client, &ns).await.unwrap();
    let cluster = apply(&client, &sample_cluster(&ns)).await.unwrap();
    let mut expected = resolved(&ns, &cluster);

    // As an earlier version left it, before this controller runs.
    let first = &mut expected.table_groups[0];
    let readable = first.name.clone();
    first.name = naming::table_group_hashed(SAMPLE, &first.spec.database, &first.spec.table_group);
    assert_ne!(
        first.name, readable,
        "the sample's first table group was renamed"
    );
    let mut earlier = TableGroup::new(&first.name, first.spec.clone());
    earlier.metadata.labels = Some(first.labels.clone());
    earlier.metadata.owner_references =
        multigres_runtime::apply::controller_ref(&cluster).map(|o| vec![o]);
    let tgs: Api<TableGroup> = Api::namespaced(client.clone(), &ns);
    tgs.create(&Default::default(), &earlier).await.unwrap();

    let topo_address = naming::topo_address(
        &naming::topo_client_service(&naming::global_topo_server(SAMPLE)),
        &ns,
    );
    let _controller = start_controller(&ns, &format!("{topo_address}={}", etcd.endpoint()))
        .await
        .unwrap();
    wait_for_tree(&client, &ns, &expected).await;
    let names: std::collections::BTreeSet<String> = tgs
        .list(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name_any())
        .collect();
    let wanted: std::collections::BTreeSet<String> = expected
        .table_groups
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(
        names, wanted,
        "no TableGroup under the readable name {readable}"
    );
    assert!(
        expected.table_groups[1..]
            .iter()
            .all(|t| t.name == naming::table_group(SAMPLE, &t.spec.database, &t.spec.table_group)),
        "the others are named the readable way"
    );
}

async fn none_listed<K>(api: &Api<K>) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty()
}

/// `kubernetes.io/tls`-style files (`ca.crt`, `tls.crt`, `tls.key`) of a certificate from `ca`.
fn write_certificate(ca: &Authority, cn: &str, sans: &[String], dir: &std::path::Path) {
    let issued = ca.sign(cn, sans).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.crt"), &issued.ca_pem).unwrap();
    std::fs::write(dir.join("tls.crt"), &issued.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), &issued.key_pem).unwrap();
}

/// An external etcd that speaks TLS with its own CA and requires client certificates: a managed
/// cell server beside it is refused naming the field; without it, the cluster says the topology
/// is encrypted, every child dials with the user's Secret, the operator registers the databases
/// with the certificate its chart gives it, and no topology certificate of the operator's is issued.
#[tokio::test]
async fn an_external_etcd_that_speaks_tls_is_dialed_with_the_certificates_it_trusts() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace("cc-external-tls").await.unwrap();
    let pki = tempfile::tempdir().unwrap();
    let (ca_cert, ca_key) = multigres_runtime::pki::generate_ca("external-etcd-ca").unwrap();
    let ca = Authority::from_pem(&ca_cert, &ca_key).unwrap();
    let host = "etcd.external.test";
    let (server, operator) = (pki.path().join("server"), pki.path().join("operator"));
    write_certificate(&ca, host, &[host.to_string()], &server);
    write_certificate(&ca, "multigres-operator", &[], &operator);
    let etcd = TestEtcd::start_tls(&server).await;
    let mapping = format!("{host}:2379={}", etcd.endpoint());
    let extra = [
        "--external-topology-tls-dir".into(),
        operator.display().to_string(),
    ];
    let _controller = start_controller_with(&ns, &mapping, &extra).await.unwrap();
    apply_templates(&client, &ns).await.unwrap();

    let external = serde_json::json!({"external": {
        "address": format!("{host}:2379"), "tls": {"secretName": "etcd-client"}
    }});
    let mut cluster = sample_cluster(&ns);
    cluster.spec.global_topo_server = Some(serde_json::from_value(external).unwrap());
    apply(&client, &cluster).await.unwrap();
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);
    let field = "spec.cells[1].spec.topoServer";
    wait_for(&clusters, SAMPLE, WAIT, |c| {
        condition(c, DEGRADED).is_some_and(|(s, _, m)| s == "True" && m.contains(field))
    })
    .await
    .unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let named = |e: &Event| e.note.as_deref().unwrap_or_default().contains(field);
    let warnings = events.list(&ListParams::default()).await.unwrap().items;
    assert!(
        warnings
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning") && named(e)),
        "no Warning Event names {field}"
    );
    let cells: Api<Cell> = Api::namespaced(client.clone(), &ns);
    assert!(
        none_listed(&cells).await,
        "a Cell was built from a refused spec"
    );

    // The cell follows the global server: all external, one Secret. (Nothing ran on the refused
    // topology, so moving the cell is safe.)
    cluster.spec.cells[1].spec.topo_server = None;
    cluster.spec.allow_topology_change = Some(true);
    apply(&client, &cluster).await.unwrap();
    let cluster = wait_for(&clusters, SAMPLE, WAIT, |c| {
        condition(c, "TopologyReachable").is_some_and(|(s, _, _)| s == "True")
    })
    .await
    .unwrap();
    let (status, reason, message) = condition(&cluster, "TopologyEncrypted").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "ExternalTLS"));
    assert!(message.contains("etcd-client"), "{message}");
    let mut expected = resolved(&ns, &cluster);
    let external_certificates = multigres_api::resolve::certificate_renewal(None, 0, 60);
    expected.resolve_topology_tls(SAMPLE, false, None, external_certificates);
    wait_for_tree(&client, &ns, &expected).await;
    let children = cells.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(children.len(), 2);
    for cell in &children {
        let global = &cell.spec.global_topo_server;
        assert_eq!(global.tls_secret_name.as_deref(), Some("etcd-client"));
    }
    let topo_servers: Api<TopoServer> = Api::namespaced(client.clone(), &ns);
    assert!(
        none_listed(&topo_servers).await,
        "a TopoServer for an external etcd"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let ours = naming::topology_tls_secret(SAMPLE);
    assert!(
        secrets.get_opt(&ours).await.unwrap().is_none(),
        "{ours} issued"
    );

    // The records are there, read with a client certificate of the etcd's CA.
    let tls = multigres_topology::ClientTls {
        ca_pem: ca_cert.clone(),
        cert_pem: std::fs::read_to_string(operator.join("tls.crt")).unwrap(),
        key_pem: std::fs::read_to_string(operator.join("tls.key")).unwrap(),
    };
    let topo = TopoClient::connect(
        &[format!("{host}:2379")],
        &AddressMapping::parse(&mapping).unwrap(),
        Duration::from_secs(2),
        Some(&tls),
    )
    .await
    .unwrap();
    assert_databases_registered(&topo, &expected).await;
}
