//! The admission policies of deploy/admission against a real API server: users are refused when they
//! edit a read-only child, the controller (its own ServiceAccount) is not, deleting a template in
//! use is refused with its consumers named, and a pool's storage request may grow but not shrink.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use multigres_api::{Cell, DeploymentTemplate, MultigresCluster, naming};
use multigres_cluster_controller::templates::IN_USE_FINALIZER;
use multigres_e2e::wait_for;
use tokio::sync::OnceCell;

/// Applies every document of deploy/admission once per binary, then waits until the policy is in
/// force (policies take effect asynchronously): a write by a user is refused.
async fn install_policies(client: &Client) {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        let pp = PatchParams::apply(TEST_MANAGER).force();
        for entry in std::fs::read_dir(repo().join("deploy/admission")).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let object: DynamicObject = serde::Deserialize::deserialize(doc).unwrap();
                let types = object.types.clone().unwrap();
                let (group, version) = types
                    .api_version
                    .split_once('/')
                    .unwrap_or(("", &types.api_version));
                let resource =
                    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &types.kind));
                let api: Api<DynamicObject> = match object.namespace() {
                    Some(ns) => Api::namespaced_with(client.clone(), &ns, &resource),
                    None => Api::all_with(client.clone(), &resource),
                };
                api.patch(&object.name_any(), &pp, &Patch::Apply(&object))
                    .await
                    .unwrap();
            }
        }
    })
    .await;
}

/// A ServiceAccount of `ns` allowed (by RBAC) to edit Cells, and a client acting as it.
async fn cell_editor(client: &Client, ns: &str) -> Client {
    let pp = PatchParams::apply(TEST_MANAGER).force();
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "editor", "namespace": ns}
    }))
    .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .patch("editor", &pp, &Patch::Apply(&sa))
        .await
        .unwrap();
    let role: Role = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "cell-editor", "namespace": ns},
        "rules": [{"apiGroups": ["multigres.com"], "resources": ["cells", "deploymenttemplates"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), ns)
        .patch("cell-editor", &pp, &Patch::Apply(&role))
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "cell-editor", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cell-editor"},
        "subjects": [{"kind": "ServiceAccount", "name": "editor", "namespace": ns}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .patch("cell-editor", &pp, &Patch::Apply(&binding))
        .await
        .unwrap();
    cp().client_for_service_account(ns, "editor").await.unwrap()
}

/// Retries `attempt` until it is refused: a new policy is enforced within moments, not at once.
async fn until_refused<F, Fut>(mut attempt: F) -> kube::core::Status
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match attempt().await {
            Err(kube::Error::Api(e)) if e.code == 403 || e.code == 422 => return *e,
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never refused: {other:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test]
async fn users_may_not_edit_cells_but_the_controller_may_build_them() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    install_policies(&client).await;
    let ns = cp.namespace("adm-cells").await.unwrap();
    let _controller = start_controller(&ns, "").await.unwrap();
    apply_templates(&client, &ns).await.unwrap();
    apply(&client, &sample_cluster(&ns)).await.unwrap();
    // The controller, as multigres-system:multigres-cluster-controller, passes the policy.
    let cells: Api<Cell> = Api::namespaced(client.clone(), &ns);
    let name = naming::cell(SAMPLE, "us-east-1");
    wait_for(&cells, &name, WAIT, |_| true).await.unwrap();

    let editor = cell_editor(&client, &ns).await;
    let editor_cells: Api<Cell> = Api::namespaced(editor, &ns);
    let refused = until_refused(|| {
        let api = editor_cells.clone();
        let name = name.clone();
        async move {
            let edit = serde_json::json!({"spec": {"multigateway": {"replicas": 9}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&edit))
                .await
                .map(|_| ())
        }
    })
    .await;
    assert!(refused.message.contains("read-only"), "{}", refused.message);
    assert!(refused.message.contains(&name), "{}", refused.message);
    // Deleting is refused too; labelling (spec unchanged) is not.
    let err = editor_cells
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 403 || e.code == 422),
        "{err:?}"
    );
    let label = serde_json::json!({"metadata": {"labels": {"team": "db"},
        "annotations": {"multigres.com/restart-requested": "now"}}});
    editor_cells
        .patch(&name, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    // What ownership rests on is the operator's: its labels, owner references, finalizers.
    for (what, edit) in [
        (
            "an operator label",
            serde_json::json!({"metadata": {"labels": {"multigres.com/cluster": "other"}}}),
        ),
        (
            "a new operator label",
            serde_json::json!({"metadata": {"labels": {"app.kubernetes.io/component": null,
                "multigres.com/extra": "x"}}}),
        ),
        (
            "the owner references",
            serde_json::json!({"metadata": {"ownerReferences": null}}),
        ),
        (
            "the finalizers",
            serde_json::json!({"metadata": {"finalizers": ["example.com/mine"]}}),
        ),
    ] {
        let err = editor_cells
            .patch(&name, &PatchParams::default(), &Patch::Merge(&edit))
            .await
            .expect_err(what);
        assert!(
            matches!(&err, kube::Error::Api(e) if e.message.contains("read-only")),
            "{what}: {err:?}"
        );
    }
    // The parameter the binding reads is in place.
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), CONTROLLER_NAMESPACE)
            .get_opt("multigres-admission")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn deleting_a_template_in_use_is_refused_naming_its_consumers() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    install_policies(&client).await;
    let ns = cp.namespace("adm-templates").await.unwrap();
    let _controller = start_controller(&ns, "").await.unwrap();
    apply_templates(&client, &ns).await.unwrap();
    apply(&client, &sample_cluster(&ns)).await.unwrap();
    let templates: Api<DeploymentTemplate> = Api::namespaced(client.clone(), &ns);
    wait_for(&templates, "standard-ha", WAIT, |t| {
        t.status
            .as_ref()
            .is_some_and(|s| s.consumer_count == Some(1))
            && t.finalizers().iter().any(|f| f == IN_USE_FINALIZER)
    })
    .await
    .unwrap();
    // Policies take effect asynchronously: probe with dry runs (admission sees them too), so that
    // no real delete gets through before the policy is in force.
    until_refused(|| {
        let api = templates.clone();
        async move {
            api.delete("standard-ha", &DeleteParams::default().dry_run())
                .await
                .map(|_| ())
        }
    })
    .await;
    let refused = match templates
        .delete("standard-ha", &DeleteParams::default())
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 403 || e.code == 422 => *e,
        other => panic!("deleting a template in use was not refused: {other:?}"),
    };
    assert!(
        refused.message.contains(&format!("{ns}/{SAMPLE}")),
        "{}",
        refused.message
    );
    assert!(
        templates
            .get("standard-ha")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );

    // Once no cluster uses it, it can go.
    Api::<MultigresCluster>::namespaced(client.clone(), &ns)
        .delete(SAMPLE, &DeleteParams::default())
        .await
        .unwrap();
    wait_for(&templates, "standard-ha", WAIT, |t| {
        t.status.as_ref().is_some_and(|s| s.consumers.is_empty())
    })
    .await
    .unwrap();
    templates
        .delete("standard-ha", &DeleteParams::default())
        .await
        .unwrap();
    multigres_e2e::wait_deleted(&templates, "standard-ha", WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn data_volumes_grow_but_never_shrink() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    install_policies(&client).await;
    let ns = cp.namespace("adm-volumes").await.unwrap();
    let body = |inline: &str, overridden: &str| {
        serde_json::json!({"spec": {"databases": [{"name": "app", "spec": {"tablegroups": [{"name": "default",
        "shardTemplate": {"pools": [
            {"type": "replica", "cell": "zone-a",
             "dataVolumeClaimTemplate": {"resources": {"requests": {"storage": inline}}}},
            {"type": "readOnly", "cell": "zone-b", "deploymentTemplate": "t",
             "overrides": {"dataVolumeClaimTemplate": {"resources": {"requests": {"storage": overridden}}}}}
        ]}}]}}]}})
    };
    let mut cluster: MultigresCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "multigres.com/v1alpha1", "kind": "MultigresCluster",
        "metadata": {"name": "volumes", "namespace": ns},
        "spec": {"cells": [{"name": "zone-a"}, {"name": "zone-b"}]},
    }))
    .unwrap();
    cluster.spec.databases =
        serde_json::from_value(body("10Gi", "10Gi")["spec"]["databases"].clone()).unwrap();
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);
    clusters
        .create(&Default::default(), &cluster)
        .await
        .unwrap();
    let patch = |b: serde_json::Value| dry_run_merge(&clusters, "volumes", b);
    // In force once a shrink is refused (policies take effect asynchronously).
    let refused = until_refused(|| patch(body("9Gi", "10Gi"))).await;
    assert!(
        refused.message.contains("never shrink"),
        "{}",
        refused.message
    );
    patch(body("20Gi", "10240Mi"))
        .await
        .expect("growing (and the same size in other units) is allowed");
    let refused = until_refused(|| patch(body("10Gi", "9Gi"))).await;
    assert!(
        refused.message.contains("never shrink"),
        "an override: {}",
        refused.message
    );

    let templates: Api<DeploymentTemplate> = Api::namespaced(client.clone(), &ns);
    let template = |size: &str| serde_json::json!({"spec": {"shardPool": {"dataVolumeClaimTemplate": {"resources": {"requests": {"storage": size}}}}}});
    let created: DeploymentTemplate = serde_json::from_value(serde_json::json!({
        "apiVersion": "multigres.com/v1alpha1", "kind": "DeploymentTemplate",
        "metadata": {"name": "pool-size", "namespace": ns},
        "spec": template("5Gi")["spec"].clone(),
    }))
    .unwrap();
    templates
        .create(&Default::default(), &created)
        .await
        .unwrap();
    let patch = |b: serde_json::Value| dry_run_merge(&templates, "pool-size", b);
    patch(template("6Gi"))
        .await
        .expect("a template's size grows");
    let refused = until_refused(|| patch(template("1Gi"))).await;
    assert!(
        refused.message.contains("never shrink"),
        "{}",
        refused.message
    );

    // A managed topology server's etcd volumes too.
    let topo = |size: &str| {
        serde_json::json!({"spec": {"globalTopoServer": {"managedSpec": {
            "dataVolumeClaimTemplate": {"resources": {"requests": {"storage": size}}}}}}})
    };
    clusters
        .patch(
            "volumes",
            &PatchParams::default(),
            &Patch::Merge(&topo("5Gi")),
        )
        .await
        .expect("etcd size set");
    let patch_cluster = |b: serde_json::Value| dry_run_merge(&clusters, "volumes", b);
    patch_cluster(topo("8Gi")).await.expect("etcd volumes grow");
    let refused = until_refused(|| patch_cluster(topo("4Gi"))).await;
    assert!(
        refused.message.contains("globalTopoServer"),
        "{}",
        refused.message
    );
}

#[tokio::test]
async fn owned_postgres_parameters_are_refused() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    install_policies(&client).await;
    // The policy's list is the resolver's.
    let policy =
        std::fs::read_to_string(repo().join("deploy/admission/postgres-parameters.yaml")).unwrap();
    let owned = multigres_api::resolve::postgres_parameters::OWNED;
    for (name, _) in owned {
        assert!(
            policy.contains(&format!("'{name}'")),
            "{name} missing from the policy"
        );
    }
    assert_eq!(policy.matches("', '").count() + 1, owned.len());
    let ns = cp.namespace("adm-parameters").await.unwrap();
    let cluster = |parameters: serde_json::Value| -> MultigresCluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "multigres.com/v1alpha1", "kind": "MultigresCluster",
            "metadata": {"name": "params", "namespace": ns},
            "spec": {"cells": [{"name": "zone-a"}], "databases": [{"name": "app", "spec": {"tablegroups": [{
                "name": "default",
                "shardTemplate": {"pools": [{"type": "replica", "cell": "zone-a", "postgresParameters": parameters}]}
            }]}}]},
        }))
        .unwrap()
    };
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);
    let dry = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    let refused = until_refused(|| {
        let clusters = clusters.clone();
        let object = cluster(serde_json::json!({"work_mem": "64MB", "port": "6432"}));
        let dry = dry.clone();
        async move { clusters.create(&dry, &object).await.map(|_| ()) }
    })
    .await;
    assert!(
        refused.message.contains("postgresParameters"),
        "{}",
        refused.message
    );
    let tuning = serde_json::json!({"work_mem": "64MB", "pg_stat_statements.track": "all"});
    clusters
        .create(&dry, &cluster(tuning))
        .await
        .expect("tuning parameters pass");

    let templates: Api<DeploymentTemplate> = Api::namespaced(client.clone(), &ns);
    let template: DeploymentTemplate = serde_json::from_value(serde_json::json!({
        "apiVersion": "multigres.com/v1alpha1", "kind": "DeploymentTemplate",
        "metadata": {"name": "owned", "namespace": ns},
        "spec": {"shardPool": {"postgresParameters": {"wal_level": "minimal"}}},
    }))
    .unwrap();
    let err = templates
        .create(&dry, &template)
        .await
        .expect_err("wal_level is owned");
    assert!(
        err.to_string().contains("shardPool.postgresParameters"),
        "{err}"
    );
}

/// A merge patch of `name` as a dry run: what admission says of it, nothing written.
async fn dry_run_merge<K>(
    api: &Api<K>,
    name: &str,
    body: serde_json::Value,
) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default().dry_run(),
        &Patch::Merge(&body),
    )
    .await
    .map(|_| ())
}
