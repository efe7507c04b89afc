//! What the cluster controller does so that no edit or lost object costs data, against a real control
//! plane: a deleted credentials Secret is not regenerated over existing data, a value a child refuses
//! is reported while the rest converges, and a Database record another writer holds is left alone.
//! (Retention of removed table groups is in cluster.rs, with the other spec removals.)

mod common;

use common::tree::{resolved, wait_for_tree};
use common::*;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use multigres_api::resolve::ResolvedCluster;
use multigres_api::{Cell, MultigresCluster, naming};
use multigres_cluster_controller::build;
use multigres_e2e::{wait_deleted, wait_for};
use multigres_runtime::conditions::DEGRADED;

#[tokio::test]
async fn a_deleted_credentials_secret_is_not_regenerated_once_the_cluster_has_data() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace("cc-creds").await.unwrap();
    let _controller = start_controller(&ns, "").await.unwrap();
    apply_templates(&client, &ns).await.unwrap();
    let cluster = apply(&client, &sample_cluster(&ns)).await.unwrap();
    wait_for_tree(&client, &ns, &resolved(&ns, &cluster)).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let name = naming::credentials_secret(SAMPLE);
    let original = secrets.get(&name).await.unwrap();
    secrets
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_deleted(&secrets, &name, WAIT).await.unwrap();

    // Nudge a reconcile (the controller does not watch Secrets).
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);
    let nudge = |v: &str| serde_json::json!({"metadata": {"annotations": {"test/nudge": v}}});
    clusters
        .patch(SAMPLE, &PatchParams::default(), &Patch::Merge(&nudge("1")))
        .await
        .unwrap();
    let credentials = |want: &'static str| {
        move |c: &MultigresCluster| {
            c.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "CredentialsReady" && c.status == want)
            })
        }
    };
    let missing = wait_for(&clusters, SAMPLE, WAIT, credentials("False"))
        .await
        .unwrap();
    let message = &missing.status.unwrap().conditions;
    assert!(
        message
            .iter()
            .any(|c| c.message.contains("Restore the Secret")),
        "{message:?}"
    );
    assert!(
        secrets.get_opt(&name).await.unwrap().is_none(),
        "no new password over existing data"
    );

    // The user restores it: the cluster is whole again.
    let mut restored = original.clone();
    restored.metadata = kube::api::ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(ns.clone()),
        ..Default::default()
    };
    secrets
        .create(&Default::default(), &restored)
        .await
        .unwrap();
    clusters
        .patch(SAMPLE, &PatchParams::default(), &Patch::Merge(&nudge("2")))
        .await
        .unwrap();
    wait_for(&clusters, SAMPLE, WAIT, credentials("True"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_value_a_child_refuses_is_reported_on_the_cluster_and_the_rest_converges() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace("cc-refused").await.unwrap();
    let _controller = start_controller(&ns, "").await.unwrap();
    apply_templates(&client, &ns).await.unwrap();
    let cluster = apply(&client, &sample_cluster(&ns)).await.unwrap();
    wait_for_tree(&client, &ns, &resolved(&ns, &cluster)).await;

    // etcd membership is fixed once the TopoServer exists: the cluster accepts 5 (odd), the
    // TopoServer refuses the change. Meanwhile a cell edit must still go through.
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);
    let mut edited = sample_cluster(&ns);
    edited.spec.global_topo_server.as_mut().unwrap().overrides =
        Some(serde_json::from_value(serde_json::json!({"replicas": 5})).unwrap());
    edited.spec.cells[0].spec.multigateway =
        Some(serde_json::from_value(serde_json::json!({"replicas": 4})).unwrap());
    apply(&client, &edited).await.unwrap();
    let degraded = wait_for(&clusters, SAMPLE, WAIT, |c| {
        c.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == DEGRADED && c.reason == "ChildRefused")
        })
    })
    .await
    .unwrap();
    let message = degraded
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == DEGRADED)
        .unwrap()
        .message;
    assert!(
        message.contains("TopoServer") && message.contains("immutable"),
        "{message}"
    );
    let cells: Api<Cell> = Api::namespaced(client.clone(), &ns);
    wait_for(&cells, &naming::cell(SAMPLE, "us-east-1"), WAIT, |c| {
        c.spec.multigateway.replicas == 4
    })
    .await
    .unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let warned = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| e.reason.as_deref() == Some("ChildRefused"));
    assert!(warned, "a Warning Event names the refusal");
}

#[tokio::test]
async fn a_database_record_another_writer_holds_is_neither_overwritten_nor_deleted() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace("cc-foreign").await.unwrap();
    let etcd = TestEtcd::start().await;
    let topo_address = naming::topo_address(
        &naming::topo_client_service(&naming::global_topo_server(SAMPLE)),
        &ns,
    );
    let _controller = start_controller(&ns, &format!("{topo_address}={}", etcd.endpoint()))
        .await
        .unwrap();
    apply_templates(&client, &ns).await.unwrap();
    let expected = resolved(&ns, &sample_cluster(&ns));
    let root = &expected.global_topology.root_path;
    // Someone else registered production_db under this root first (another cluster sharing the
    // etcd, or a hand-written record).
    let topo = topo_client(&etcd).await.unwrap();
    let theirs = multigres_topology::Database {
        cells: vec!["elsewhere".into()],
        ..expected_database(&expected)
    };
    topo.register_database_as(root, &theirs, "other-ns/other/uid-1", false)
        .await
        .unwrap();

    apply(&client, &sample_cluster(&ns)).await.unwrap();
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);
    let reported = wait_for(&clusters, SAMPLE, WAIT, |c| {
        c.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == DEGRADED && c.message.contains("other-ns/other/uid-1"))
        })
    })
    .await
    .unwrap();
    assert!(
        reported
            .annotations()
            .get(build::REGISTERED_DATABASES)
            .is_none_or(|a| !a.contains("production_db"))
    );
    let key = multigres_topology::database_key(root, "production_db");
    let (stored, _) = topo
        .get::<multigres_topology::Database>(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, theirs, "not overwritten");
    // Deleting the cluster leaves their record too.
    clusters
        .delete(SAMPLE, &DeleteParams::default())
        .await
        .unwrap();
    wait_deleted(&clusters, SAMPLE, WAIT).await.unwrap();
    assert!(
        topo.get::<multigres_topology::Database>(&key)
            .await
            .unwrap()
            .is_some()
    );
}

/// The Database record the cluster controller would write for the sample's first database.
fn expected_database(expected: &ResolvedCluster) -> multigres_topology::Database {
    let cluster = MultigresCluster::new(SAMPLE, Default::default());
    build::desired(&cluster, expected, "multigres-system")
        .databases
        .remove(0)
}
