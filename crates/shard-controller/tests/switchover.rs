//! A switchover requested with the annotation (`kubectl multigres switchover`) against a real
//! control plane: it waits while the primary is unknown, is then carried out through the
//! multiadmin stand-in exactly once, recorded in `status.lastSwitchover` with the old and new
//! primary and an Event, and not repeated by later reconciles; a target that cannot be the primary
//! is refused without calling multiadmin.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use multigres_api::multigres::pooler_service_id;
use multigres_api::{PoolType, Shard, SwitchoverResult, labels, naming};
use multigres_e2e::{shared, wait_for};
use multigres_runtime::pods::is_ready;
use multigres_topology::pb::id::ComponentType;
use multigres_topology::{
    Id, MultiPooler, PoolerServingStatus, RoutingRole, RoutingState, ShardKey,
};

const T: Duration = Duration::from_secs(60);

async fn request(shards: &Api<Shard>, name: &str, value: &str) {
    let patch =
        serde_json::json!({"metadata": {"annotations": {labels::SWITCHOVER_REQUESTED: value}}});
    shards
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// The Shard once its status records the request made at `at` with a final result.
async fn outcome(shards: &Api<Shard>, name: &str, at: &str, log: &std::path::Path) -> Shard {
    let done = wait_for(shards, name, T, |s| {
        s.status
            .as_ref()
            .and_then(|st| st.last_switchover.as_ref())
            .is_some_and(|l| l.requested_at == at && l.result.is_final())
    })
    .await;
    match done {
        Ok(s) => s,
        Err(e) => panic!(
            "{e}\ncontroller log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        ),
    }
}

fn events_with_reason(events: &[k8s_openapi::api::events::v1::Event], reason: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.note.clone().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_switchover_waits_for_a_known_primary_happens_once_and_a_bad_target_is_refused()
{
    let cp = shared();
    let client = cp.client();
    multigres_e2e::install_crds(&client).await.unwrap();
    let ns = cp.namespace("shard-switchover").await.unwrap();
    let etcd = TestEtcd::start().await;
    let tg = orders_table_group(&ns);
    let (mapping, admin_addr) = topology_and_admin_mapping(&etcd, &tg, &ns);
    let controller = start_controller(cp, &ns, &mapping);

    // Shard 0 of orders_tg: replica us-west-2 x2 + readOnly us-east-1 x1.
    let shards_api: Api<Shard> = Api::namespaced(client.clone(), &ns);
    let shard = shards_of(&tg).remove(0);
    let name = shard.name_any();
    shards_api
        .create(&PostParams::default(), &shard)
        .await
        .unwrap();
    let replica_id = naming::pool_id(PoolType::Replica, "us-west-2");
    let ro_id = naming::pool_id(PoolType::ReadOnly, "us-east-1");
    let pod_of = |id: &str, i| naming::pool_pod(&name, id, i);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    for pod in [
        pod_of(&replica_id, 0),
        pod_of(&replica_id, 1),
        pod_of(&ro_id, 0),
    ] {
        if let Err(e) = wait_for(&pods, &pod, T, is_ready).await {
            let log = std::fs::read_to_string(&controller.log).unwrap_or_default();
            panic!("{e}\ncontroller log:\n{log}");
        }
    }

    let root = &shard.spec.global_topo_server.root_path;
    let cell_root = multigres_topology::cell_root_on_global(root, "us-west-2");
    let old_primary = pod_of(&replica_id, 1);
    let new_primary = pod_of(&replica_id, 0);
    let record = |pod: &str, role: RoutingRole| MultiPooler {
        id: Some(Id {
            component: ComponentType::Multipooler.into(),
            cell: "us-west-2".into(),
            name: pooler_service_id(pod),
        }),
        shard_key: Some(ShardKey {
            database: shard.spec.database.clone(),
            table_group: shard.spec.table_group.clone(),
            shard: shard.spec.multigres_shard().to_string(),
        }),
        serving_status: PoolerServingStatus::Serving.into(),
        routing_state: Some(RoutingState {
            role: role.into(),
            rule: None,
        }),
        hostname: "10.0.0.1".into(),
        ..Default::default()
    };
    // multiadmin, standing in: a switchover makes replica pod 0 the primary.
    let calls = serve_switchover(
        admin_addr,
        topo_client(&etcd).await.unwrap(),
        cell_root.clone(),
        record(&old_primary, RoutingRole::Primary),
        record(&new_primary, RoutingRole::Primary),
    );

    // Fail closed: no PRIMARY record yet while replica pods exist, so the primary is unknown and a
    // request waits, saying why.
    let at = "2026-12-02T10:00:00Z";
    request(&shards_api, &name, at).await;
    let waiting = wait_for(&shards_api, &name, T, |s| {
        s.status.as_ref().is_some_and(|st| {
            st.conditions
                .iter()
                .any(|c| c.type_ == "Switchover" && c.reason == "Waiting")
        })
    })
    .await
    .unwrap();
    let status = waiting.status.unwrap();
    assert!(status.last_switchover.is_none(), "{status:?}");
    let message = &status
        .conditions
        .iter()
        .find(|c| c.type_ == "Switchover")
        .unwrap()
        .message;
    assert!(message.contains("the primary is unknown"), "{message}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Replica pod 1 becomes the serving primary (as multipooler would record it): the waiting
    // request is carried out, once, to the pod multiadmin's stand-in promotes.
    let topo = topo_client(&etcd).await.unwrap();
    topo.write_pooler(&cell_root, &record(&old_primary, RoutingRole::Primary))
        .await
        .unwrap();
    let done = outcome(&shards_api, &name, at, &controller.log).await;
    let last = done.status.unwrap().last_switchover.unwrap();
    assert_eq!(last.result, SwitchoverResult::Succeeded, "{last:?}");
    assert_eq!(last.from.as_deref(), Some(old_primary.as_str()));
    assert_eq!(last.to.as_deref(), Some(new_primary.as_str()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A read-only pod cannot become the primary: refused, multiadmin not called again.
    let refused_at = "2026-12-02T10:01:00Z";
    request(
        &shards_api,
        &name,
        &format!("{refused_at},{}", pod_of(&ro_id, 0)),
    )
    .await;
    let refused = outcome(&shards_api, &name, refused_at, &controller.log).await;
    let status = refused.status.unwrap();
    let last = status.last_switchover.unwrap();
    assert_eq!(last.result, SwitchoverResult::Refused, "{last:?}");
    assert!(last.message.contains("read-only pool"), "{last:?}");
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Switchover")
        .expect("a Switchover condition");
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "Refused")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Later reconciles (each edit of the Shard triggers one) do not ask again.
    let key = format!("{ns}/{name}");
    let reconciles = || {
        records(&controller.log)
            .iter()
            .filter(|r| r.start && r.shard == key)
            .count()
    };
    let before = reconciles();
    for i in 0..3 {
        let patch = serde_json::json!({"metadata": {"annotations": {"test/touch": i.to_string()}}});
        shards_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + T;
    while reconciles() < before + 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no reconciles after the edits"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the request is not repeated"
    );
    let again = shards_api.get(&name).await.unwrap();
    assert_eq!(
        again.status.unwrap().last_switchover.unwrap().requested_at,
        refused_at
    );

    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let events = events.list(&Default::default()).await.unwrap().items;
    let switched = events_with_reason(&events, "Switchover");
    assert_eq!(switched.len(), 1, "{switched:?}");
    assert!(
        switched[0].contains(&format!("from {old_primary} to {new_primary}")),
        "{switched:?}"
    );
    assert_eq!(events_with_reason(&events, "SwitchoverRefused").len(), 1);
}
