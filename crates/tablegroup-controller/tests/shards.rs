//! The sample's orders_tg against a real control plane: two Shards appear with the resolved spec,
//! and the TableGroup's status follows the Shards' Available conditions.

use std::path::Path;
use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use multigres_api::resolve::{self, Templates};
use multigres_api::{DeploymentTemplate, MultigresCluster, Shard, TableGroup};
use multigres_e2e::{shared, spawn_operator, wait_for};
use serde::Deserialize;

const T: Duration = Duration::from_secs(60);

fn orders_table_group(namespace: &str) -> TableGroup {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/samples");
    let mut templates = Templates::new();
    let mut cluster: Option<MultigresCluster> = None;
    for file in [
        "multigrescluster.yaml",
        "deploymenttemplate-standard-ha.yaml",
        "deploymenttemplates-shard-pools.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc).unwrap();
            match value.get("kind").and_then(|k| k.as_str()) {
                Some("MultigresCluster") => cluster = Some(serde_yaml::from_value(value).unwrap()),
                Some("DeploymentTemplate") => {
                    let t: DeploymentTemplate = serde_yaml::from_value(value).unwrap();
                    templates.insert(t.name_any(), t.spec);
                }
                _ => {}
            }
        }
    }
    let mut cluster = cluster.unwrap();
    cluster.metadata.namespace = Some(namespace.into());
    let resolved = resolve::resolve_cluster(&cluster, &templates).unwrap();
    let child = resolved
        .table_groups
        .into_iter()
        .find(|tg| tg.spec.table_group == "orders_tg")
        .unwrap();
    let mut tg = TableGroup::new(&child.name, child.spec);
    tg.metadata.namespace = Some(namespace.into());
    tg.metadata.labels = Some(child.labels);
    tg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_tg_becomes_two_shards_and_reports_their_availability() {
    let cp = shared();
    let client = cp.client();
    multigres_e2e::install_crds(&client).await.unwrap();
    let ns = cp.namespace("tablegroup").await.unwrap();
    let _controller = spawn_operator(
        &format!("tablegroup-controller-{ns}"),
        Path::new(env!("CARGO_BIN_EXE_tablegroup-controller")),
        cp.kubeconfig_path(),
        &cp.log_dir(),
        &[
            "--http-addr".into(),
            "127.0.0.1:0".into(),
            "--grpc-health-addr".into(),
            "127.0.0.1:0".into(),
            "--watch-namespace".into(),
            ns.clone(),
        ],
    )
    .unwrap();
    let tgs: Api<TableGroup> = Api::namespaced(client.clone(), &ns);
    let shards: Api<Shard> = Api::namespaced(client.clone(), &ns);
    let tg = orders_table_group(&ns);
    let started = std::time::Instant::now();
    let tg = tgs.create(&PostParams::default(), &tg).await.unwrap();
    let expected = resolve::shards(&tg);
    assert_eq!(expected.len(), 2);
    for child in &expected {
        let shard = wait_for(&shards, &child.name, T, |_| true).await.unwrap();
        assert_eq!(
            shard.spec, child.spec,
            "the Shard carries the resolved spec"
        );
        assert_eq!(shard.labels(), &child.labels);
        assert_eq!(shard.owner_references()[0].uid, tg.uid().unwrap());
    }
    eprintln!("2 Shards created in {:?}", started.elapsed());
    wait_for(&tgs, &tg.name_any(), T, |t| {
        t.status
            .as_ref()
            .is_some_and(|s| s.shards == 2 && s.ready_shards == 0)
    })
    .await
    .unwrap();

    // Stand in for the shard controller: mark both Shards Available.
    for child in &expected {
        let status = serde_json::json!({
            "apiVersion": "multigres.com/v1alpha1", "kind": "Shard",
            "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Test",
                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "totalPods": 3, "readyPods": 3}
        });
        shards
            .patch_status(
                &child.name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&status),
            )
            .await
            .unwrap();
    }
    let done = wait_for(&tgs, &tg.name_any(), T, |t| {
        t.status.as_ref().is_some_and(|s| {
            s.ready_shards == 2
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Available" && c.status == "True")
        })
    })
    .await
    .unwrap();
    assert_eq!(
        done.status.unwrap().observed_generation,
        tg.metadata.generation
    );

    // Adding a partition adds a Shard.
    let patch = serde_json::json!({"spec": {"partitioning": {"shards": 3}}});
    tgs.patch(
        &tg.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let third = multigres_api::naming::shard(&tg.name_any(), "2");
    wait_for(&shards, &third, T, |_| true).await.unwrap();
    wait_for(&tgs, &tg.name_any(), T, |t| {
        t.status
            .as_ref()
            .is_some_and(|s| s.shards == 3 && s.ready_shards == 2)
    })
    .await
    .unwrap();
}
