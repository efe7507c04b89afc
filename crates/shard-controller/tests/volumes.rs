//! Volume expansion against a real control plane: a larger `dataVolumeClaimTemplate` patches the
//! pool's Bound claims (StorageClass `standard` allows expansion), a smaller one is refused and
//! said on the Shard, and a StorageClass without expansion is reported, its claims untouched.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use multigres_api::{PoolSpec, Shard, naming};
use multigres_e2e::{shared, wait_for};

const T: Duration = Duration::from_secs(90);

fn storage(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

fn volumes_condition(shard: &Shard) -> Option<(String, String, String)> {
    shard
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "VolumesResized")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// One replica pool of one pod, on `class` with `size`.
fn one_pool(shard: &Shard, class: &str, size: &str) -> Vec<PoolSpec> {
    let mut pool = shard.spec.pools[0].clone();
    pool.replicas = 1;
    pool.data_volume_claim_template = serde_json::from_value(serde_json::json!({
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": class,
        "resources": {"requests": {"storage": size}},
    }))
    .unwrap();
    vec![pool]
}

async fn set_pools(shards: &Api<Shard>, name: &str, pools: &[PoolSpec]) {
    let patch = serde_json::json!({"spec": {"pools": pools}});
    shards
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn larger_templates_grow_claims_smaller_ones_and_fixed_classes_are_reported() {
    let cp = shared();
    let client = cp.client();
    multigres_e2e::install_crds(&client).await.unwrap();
    let ns = cp.namespace("shard-volumes").await.unwrap();
    let etcd = TestEtcd::start().await;
    let fixed: StorageClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "fixed-size"},
        "provisioner": "multigres.dev/none",
        "allowVolumeExpansion": false,
    }))
    .unwrap();
    let _ = Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &fixed)
        .await;
    let controller = start_controller(cp, &ns, &format!("{TOPO_ADDRESS}={}", etcd.endpoint()));
    let log = || std::fs::read_to_string(&controller.log).unwrap_or_default();

    let tg = orders_table_group(&ns);
    let mut shards = shards_of(&tg);
    let (mut growing, mut fixed_shard) = (shards.remove(0), shards.remove(0));
    growing.spec.pools = one_pool(&growing, "standard", "1Gi");
    fixed_shard.spec.pools = one_pool(&fixed_shard, "fixed-size", "1Gi");
    let shards_api: Api<Shard> = Api::namespaced(client.clone(), &ns);
    for shard in [&growing, &fixed_shard] {
        shards_api
            .create(&PostParams::default(), shard)
            .await
            .unwrap();
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let claim_of = |shard: &Shard| {
        let pool = &shard.spec.pools[0];
        let id = naming::pool_id(pool.pool_type, &pool.cell);
        naming::data_pvc(&naming::pool_pod(&shard.name_any(), &id, 0))
    };
    let (grow_claim, fixed_claim) = (claim_of(&growing), claim_of(&fixed_shard));
    wait_for(&pvcs, &grow_claim, T, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    wait_for(&pvcs, &fixed_claim, T, |_| true).await.unwrap();

    // Larger: the Bound claim's request follows; the Shard says so.
    set_pools(
        &shards_api,
        &growing.name_any(),
        &one_pool(&growing, "standard", "2Gi"),
    )
    .await;
    let grown = wait_for(&pvcs, &grow_claim, T, |p| {
        storage(p).as_deref() == Some("2Gi")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    eprintln!("claim {} now requests {:?}", grow_claim, storage(&grown));
    wait_for(&shards_api, &growing.name_any(), T, |s| {
        volumes_condition(s)
            .is_some_and(|(status, reason, _)| status == "True" && reason == "AsRequested")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));

    // Smaller: refused, said on the Shard; the claim keeps 2Gi.
    set_pools(
        &shards_api,
        &growing.name_any(),
        &one_pool(&growing, "standard", "1536Mi"),
    )
    .await;
    let refused = wait_for(&shards_api, &growing.name_any(), T, |s| {
        volumes_condition(s).is_some_and(|(_, reason, _)| reason == "ShrinkRefused")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    let (status, _, message) = volumes_condition(&refused).unwrap();
    assert_eq!(status, "False");
    assert!(message.contains(&grow_claim), "{message}");
    assert_eq!(
        storage(&pvcs.get(&grow_claim).await.unwrap()).as_deref(),
        Some("2Gi")
    );

    // A StorageClass without expansion: reported, the claim untouched.
    set_pools(
        &shards_api,
        &fixed_shard.name_any(),
        &one_pool(&fixed_shard, "fixed-size", "2Gi"),
    )
    .await;
    let reported = wait_for(&shards_api, &fixed_shard.name_any(), T, |s| {
        volumes_condition(s).is_some_and(|(_, reason, _)| reason == "ExpansionNotSupported")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    let (_, _, message) = volumes_condition(&reported).unwrap();
    assert!(message.contains("fixed-size"), "{message}");
    assert_eq!(
        storage(&pvcs.get(&fixed_claim).await.unwrap()).as_deref(),
        Some("1Gi")
    );
}
