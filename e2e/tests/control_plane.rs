//! The local control plane behaves like a real cluster in the ways the operator relies on.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Node, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client, Resource};
use multigres_e2e::{ZONES, shared, wait_deleted, wait_for};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(90);

async fn create<K>(client: &Client, ns: &str, obj: Value) -> Result<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(obj)?;
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &obj)
        .await?)
}

fn forbidden<T>(result: &kube::Result<T>) -> bool {
    matches!(result, Err(kube::Error::Api(e)) if e.code == 403)
}

#[tokio::test]
async fn nodes_span_three_zones() -> Result<()> {
    let nodes = Api::<Node>::all(shared().client())
        .list(&ListParams::default().labels("type=kwok"))
        .await?;
    let zones: BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| {
            n.metadata
                .labels
                .as_ref()?
                .get("topology.kubernetes.io/zone")
                .cloned()
        })
        .collect();
    assert_eq!(zones, ZONES.iter().map(|z| z.to_string()).collect());
    Ok(())
}

#[tokio::test]
async fn deployment_becomes_ready() -> Result<()> {
    let cp = shared();
    let ns = cp.namespace("deployment").await?;
    let client = cp.client();
    let labels = json!({"app": "web"});
    let deploy = json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    });
    create::<Deployment>(&client, &ns, deploy).await?;
    let api = Api::<Deployment>::namespaced(client, &ns);
    wait_for(&api, "web", TIMEOUT, |d: &Deployment| {
        d.status.as_ref().and_then(|s| s.ready_replicas) == Some(3)
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn statefulset_claims_are_bound() -> Result<()> {
    let cp = shared();
    let ns = cp.namespace("statefulset").await?;
    let client = cp.client();
    let labels = json!({"app": "db"});
    let svc =
        json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "selector": labels}});
    create::<Service>(&client, &ns, svc).await?;
    let sts = json!({
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2,
            "serviceName": "db",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "db",
                    "image": "registry.k8s.io/pause:3.10",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    });
    create::<StatefulSet>(&client, &ns, sts).await?;
    let api = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    wait_for(&api, "db", TIMEOUT, |s: &StatefulSet| {
        s.status.as_ref().and_then(|s| s.ready_replicas) == Some(2)
    })
    .await?;
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(client, &ns);
    for name in ["data-db-0", "data-db-1"] {
        let pvc = pvcs.get(name).await?;
        let phase = pvc.status.and_then(|s| s.phase);
        assert_eq!(phase.as_deref(), Some("Bound"), "PVC {name}");
    }
    Ok(())
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents() -> Result<()> {
    let cp = shared();
    let ns = cp.namespace("gc").await?;
    let client = cp.client();
    let owner: ConfigMap = create(&client, &ns, json!({"metadata": {"name": "owner"}})).await?;
    let dependent = json!({"metadata": {
        "name": "dependent",
        "ownerReferences": [{
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "owner",
            "uid": owner.metadata.uid,
        }],
    }});
    create::<ConfigMap>(&client, &ns, dependent).await?;
    let api = Api::<ConfigMap>::namespaced(client, &ns);
    api.delete("owner", &DeleteParams::background()).await?;
    wait_deleted(&api, "dependent", TIMEOUT).await?;
    Ok(())
}

#[tokio::test]
async fn service_account_is_limited_to_its_role() -> Result<()> {
    let cp = shared();
    let ns = cp.namespace("rbac").await?;
    let other = cp.namespace("rbac-other").await?;
    let client = cp.client();
    create::<ServiceAccount>(&client, &ns, json!({"metadata": {"name": "reader"}})).await?;
    let role = json!({
        "metadata": {"name": "configmap-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    });
    create::<Role>(&client, &ns, role).await?;
    let binding = json!({
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
    });
    create::<RoleBinding>(&client, &ns, binding).await?;

    let reader = cp.client_for_service_account(&ns, "reader").await?;
    Api::<ConfigMap>::namespaced(reader.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    let secrets = Api::<Secret>::namespaced(reader.clone(), &ns)
        .list(&ListParams::default())
        .await;
    assert!(forbidden(&secrets), "listing secrets: {secrets:?}");
    let elsewhere = Api::<ConfigMap>::namespaced(reader, &other)
        .list(&ListParams::default())
        .await;
    assert!(
        forbidden(&elsewhere),
        "listing configmaps in {other}: {elsewhere:?}"
    );

    // The audit log has no watch API; the event is written while the request is answered.
    let user = format!("system:serviceaccount:{ns}:reader");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(cp.audit_log_path())?;
        let denied = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|e| {
                e["user"]["username"] == user.as_str()
                    && e["responseStatus"]["code"] == 403
                    && e["objectRef"]["resource"] == "secrets"
            });
        if denied {
            return Ok(());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 403 for {user} in the audit log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn crd_validation_rules_refuse_bad_objects() -> Result<()> {
    let cp = shared();
    let ns = cp.namespace("cel").await?;
    let client = cp.client();
    let schema = json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min must not exceed max"}],
        }},
    });
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "ranges.e2e.multigres.dev"},
        "spec": {
            "group": "e2e.multigres.dev",
            "names": {"kind": "Range", "plural": "ranges", "singular": "range"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}}],
        },
    }))?;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.create(&PostParams::default(), &crd).await?;
    wait_for(
        &crds,
        "ranges.e2e.multigres.dev",
        TIMEOUT,
        |c: &CustomResourceDefinition| {
            let conds = c.status.as_ref().and_then(|s| s.conditions.as_ref());
            conds.is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
        },
    )
    .await?;

    let gvk = GroupVersionKind::gvk("e2e.multigres.dev", "v1", "Range");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "ranges");
    let ranges = Api::<DynamicObject>::namespaced_with(client, &ns, &ar);
    let range = |name: &str, min: i64, max: i64| -> Result<DynamicObject> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "e2e.multigres.dev/v1",
            "kind": "Range",
            "metadata": {"name": name},
            "spec": {"min": min, "max": max},
        }))?)
    };
    ranges
        .create(&PostParams::default(), &range("good", 1, 2)?)
        .await?;
    match ranges
        .create(&PostParams::default(), &range("bad", 3, 2)?)
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "{e:?}");
            assert!(
                e.message.contains("min must not exceed max"),
                "{}",
                e.message
            );
        }
        other => panic!("a Range with min > max was accepted: {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn wait_for_reports_the_last_seen_state_on_timeout() -> Result<()> {
    let cp = shared();
    let ns = cp.namespace("wait").await?;
    let client = cp.client();
    create::<ConfigMap>(
        &client,
        &ns,
        json!({"metadata": {"name": "never"}, "data": {"k": "seen"}}),
    )
    .await?;
    let api = Api::<ConfigMap>::namespaced(client, &ns);
    let err = wait_for(
        &api,
        "never",
        Duration::from_millis(500),
        |_: &ConfigMap| false,
    )
    .await
    .expect_err("the condition never holds");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("ConfigMap never") && msg.contains("seen"),
        "{msg}"
    );
    Ok(())
}
