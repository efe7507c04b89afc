//! What the pinned Multigres serves, against a real control plane with the shard controller's
//! defaults: a Shard of table group `default` gets its pods, its backup repository claim and its
//! pgBackRest TLS Secret; a Shard of another table group gets no pods, and says why.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use multigres_api::{Shard, multigres, naming};
use multigres_e2e::{OperatorProcess, shared, spawn_operator, wait_for};

const T: Duration = Duration::from_secs(60);

fn served(shard: &Shard) -> Option<(String, String)> {
    let status = shard.status.as_ref()?;
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == multigres::SERVED_CONDITION)?;
    Some((c.status.clone(), c.message.clone()))
}

async fn controller(
    ns: &str,
    kubeconfig: &std::path::Path,
    logs: &std::path::Path,
) -> OperatorProcess {
    spawn_operator(
        &format!("shard-controller-{ns}"),
        &controller_binary(),
        kubeconfig,
        logs,
        &[
            "--http-addr".into(),
            "127.0.0.1:0".into(),
            "--grpc-health-addr".into(),
            "127.0.0.1:0".into(),
            "--watch-namespace".into(),
            ns.into(),
        ],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_shards_get_pods_and_the_others_are_held_with_a_reason() {
    let cp = shared();
    let client = cp.client();
    multigres_e2e::install_crds(&client).await.unwrap();
    let ns = cp.namespace("shard-served").await.unwrap();
    let _controller = controller(&ns, cp.kubeconfig_path(), &cp.log_dir()).await;
    let shards_api: Api<Shard> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    // orders_tg as the sample has it (2 shards): not served.
    let orders = shards_of(&orders_table_group(&ns));
    // The same pools in table group `default` with one shard: served.
    let mut tg = orders_table_group(&ns);
    tg.metadata.name = Some("served-default".into());
    tg.spec.table_group = multigres::SERVED_TABLE_GROUP.into();
    tg.spec.partitioning.shards = 1;
    let default = shards_of(&tg).remove(0);
    assert_eq!(default.spec.key_range, "0-inf");
    for shard in orders.iter().chain([&default]) {
        shards_api
            .create(&PostParams::default(), shard)
            .await
            .unwrap();
    }

    let held = wait_for(&shards_api, &orders[0].name_any(), T, |s| {
        served(s).is_some_and(|(status, _)| status == "False")
    })
    .await
    .unwrap();
    let (_, message) = served(&held).unwrap();
    assert!(
        message.contains("orders_tg") && message.contains(multigres::short_commit()),
        "{message}"
    );
    let progressing = held
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert!(
        progressing.message.starts_with("pods held"),
        "{progressing:?}"
    );

    let pool_pod = |shard: &Shard| {
        let pool = &shard.spec.pools[0];
        naming::pool_pod(
            &shard.name_any(),
            &naming::pool_id(pool.pool_type, &pool.cell),
            0,
        )
    };
    wait_for(&pods, &pool_pod(&default), T, |_| true)
        .await
        .unwrap();
    let served_shard = wait_for(&shards_api, &default.name_any(), T, |s| served(s).is_some())
        .await
        .unwrap();
    assert_eq!(served(&served_shard).unwrap().0, "True");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    claims
        .get(&naming::backup_pvc(&default.name_any()))
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let tls = secrets
        .get(&naming::pgbackrest_tls_secret(&default.name_any()))
        .await
        .unwrap();
    let keys: Vec<_> = tls.data.unwrap().into_keys().collect();
    assert_eq!(keys, ["ca.crt", "pgbackrest.crt", "pgbackrest.key"]);

    // Claims follow the current pvcDeletionPolicy: owned by the Shard only under Delete.
    let backups = naming::backup_pvc(&default.name_any());
    let owned =
        |want: bool| move |c: &PersistentVolumeClaim| c.owner_references().is_empty() != want;
    assert!(
        claims
            .get(&backups)
            .await
            .unwrap()
            .owner_references()
            .is_empty()
    );
    for (policy, want) in [("Delete", true), ("Retain", false)] {
        let patch = serde_json::json!({"spec": {"pvcDeletionPolicy": {"whenDeleted": policy}}});
        shards_api
            .patch(
                &default.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .unwrap();
        wait_for(&claims, &backups, T, owned(want)).await.unwrap();
        let data = naming::data_pvc(&pool_pod(&default));
        wait_for(&claims, &data, T, owned(want)).await.unwrap();
    }

    // The held shards have no pods at all, after the served one got its own.
    for shard in &orders {
        let selector = format!("multigres.com/owner={}", shard.name_any());
        let listed = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap();
        assert!(listed.items.is_empty(), "{} has pods", shard.name_any());
    }
}
