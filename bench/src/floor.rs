//! The floor: the final child objects of a converged run, written straight to the API server by the
//! benchmark itself (no operator) into a fresh namespace, timed until the control plane has done
//! its part (every pod Ready, every claim Bound), exactly as for the operator.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource};
use multigres_api::{Cell, Shard, TableGroup, TopoServer, labels};
use serde_json::Value;

use crate::converge::{self, Reached};

/// One object to write, with the client allowed to write it.
pub struct Copy {
    pub resource: ApiResource,
    pub object: Value,
    /// Index into the clients: 0 admin, 1 the cluster-controller's, 2 the tablegroup-controller's
    /// (the read-only-children admission policy admits only the controllers for the CRs).
    pub writer: usize,
}

fn resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// In write order (parents and what pods need first), and which writer may write them.
fn kinds() -> Vec<(ApiResource, usize)> {
    vec![
        (resource::<TopoServer>(), 1),
        (resource::<Cell>(), 1),
        (resource::<TableGroup>(), 1),
        (resource::<Shard>(), 2),
        (resource::<Secret>(), 0),
        (resource::<Service>(), 0),
        (resource::<PersistentVolumeClaim>(), 0),
        (resource::<PodDisruptionBudget>(), 0),
        (resource::<StatefulSet>(), 0),
        (resource::<Deployment>(), 0),
        (resource::<Pod>(), 0),
    ]
}

/// What the operator itself wrote in `namespace`: objects controlled by a multigres.com object, and
/// the pool claims (pods of Deployments and StatefulSets, their ReplicaSets and claims are the
/// control plane's).
pub async fn collect(admin: &Client, namespace: &str) -> Result<Vec<Copy>> {
    let mut out = Vec::new();
    for (ar, writer) in kinds() {
        let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), namespace, &ar);
        for obj in api.list(&ListParams::default()).await? {
            let controlled_by_operator =
                obj.metadata.owner_references.iter().flatten().any(|o| {
                    o.controller == Some(true) && o.api_version.starts_with("multigres.com/")
                });
            // Pool claims are kept on Shard deletion by default, so they have no owner.
            let pool_claim = ar.kind == "PersistentVolumeClaim"
                && obj.metadata.labels.as_ref().is_some_and(|l| {
                    l.get(labels::MANAGED_BY).map(String::as_str) == Some(labels::MANAGED_BY_VALUE)
                        && l.get(labels::COMPONENT).map(String::as_str)
                            == Some(labels::component::SHARD_POOL)
                });
            if !(controlled_by_operator || pool_claim) {
                continue;
            }
            let mut v = serde_json::to_value(&obj)?;
            strip(&mut v, &ar);
            out.push(Copy {
                resource: ar.clone(),
                object: v,
                writer,
            });
        }
    }
    Ok(out)
}

/// Removes what the server, the scheduler, the binder and the owners set; keeps what the operator
/// wrote.
pub fn strip(v: &mut Value, ar: &ApiResource) {
    v["apiVersion"] = Value::String(ar.api_version.clone());
    v["kind"] = Value::String(ar.kind.clone());
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    let meta = &mut v["metadata"];
    if let Some(m) = meta.as_object_mut() {
        m.retain(|k, _| matches!(k.as_str(), "name" | "labels" | "annotations"));
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.retain(|k, _| {
                !(k.starts_with("pv.kubernetes.io/")
                    || k.starts_with("volume.")
                    || k.starts_with("deployment.kubernetes.io/"))
            });
        }
    }
    // A Secret has no spec: indexing one in would write `spec: null`, which the API server refuses.
    let Some(spec) = v.get_mut("spec") else {
        return;
    };
    match ar.kind.as_str() {
        "Pod" => {
            if let Some(s) = spec.as_object_mut() {
                s.remove("nodeName");
            }
            let api_access = |x: &Value| {
                x["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("kube-api-access-"))
            };
            if let Some(vols) = spec["volumes"].as_array_mut() {
                vols.retain(|x| !api_access(x));
            }
            for list in ["containers", "initContainers"] {
                for c in spec[list].as_array_mut().into_iter().flatten() {
                    if let Some(m) = c["volumeMounts"].as_array_mut() {
                        m.retain(|x| !api_access(x));
                    }
                }
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(s) = spec.as_object_mut() {
                s.remove("volumeName");
            }
        }
        "Service" => {
            if spec["clusterIP"].as_str() != Some("None")
                && let Some(s) = spec.as_object_mut()
            {
                s.remove("clusterIP");
                s.remove("clusterIPs");
            }
        }
        _ => {}
    }
}

/// The floor's measurements.
pub struct Floor {
    pub objects: usize,
    /// Seconds to write every object.
    pub write_seconds: f64,
    pub pods: Reached,
    pub claims: Reached,
}

impl Floor {
    pub fn total(&self) -> Option<f64> {
        Some(self.pods.total()?.max(self.claims.total()?))
    }

    pub fn by_cluster(&self) -> BTreeMap<String, f64> {
        let mut out = self.pods.by_group();
        for (c, t) in self.claims.by_group() {
            let e = out.entry(c).or_insert(0.0);
            *e = e.max(t);
        }
        out
    }
}

/// Writes `copies` into `namespace` with `concurrency` requests in flight and times it until as
/// many pods are Ready and claims Bound as in the source namespace.
pub async fn run(
    clients: &[Client],
    copies: Vec<Copy>,
    namespace: &str,
    expected_pods: usize,
    expected_claims: usize,
    concurrency: usize,
    timeout: Duration,
) -> Result<Floor> {
    let admin = clients[0].clone();
    let objects = copies.len();
    let start = Instant::now();
    let cluster_of = |m: &kube::api::ObjectMeta| {
        m.labels
            .as_ref()
            .and_then(|l| l.get(labels::CLUSTER).cloned())
            .unwrap_or_default()
    };
    let pods = tokio::spawn(converge::until(
        Api::<Pod>::namespaced(admin.clone(), namespace),
        None,
        expected_pods,
        start,
        timeout,
        move |p: &Pod| cluster_of(&p.metadata),
        multigres_runtime::pods::is_ready,
    ));
    let claims = tokio::spawn(converge::until(
        Api::<PersistentVolumeClaim>::namespaced(admin.clone(), namespace),
        None,
        expected_claims,
        start,
        timeout,
        move |p: &PersistentVolumeClaim| cluster_of(&p.metadata),
        |p: &PersistentVolumeClaim| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
        },
    ));
    let pp = PatchParams::apply("multigres-bench-floor").force();
    let results: Vec<Result<()>> = futures::stream::iter(copies)
        .map(|c| {
            let client = clients[c.writer].clone();
            let pp = pp.clone();
            async move {
                let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &c.resource);
                let name = c.object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                api.patch(&name, &pp, &Patch::Apply(&c.object))
                    .await
                    .with_context(|| format!("floor: writing {} {name}", c.resource.kind))?;
                Ok(())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let write_seconds = start.elapsed().as_secs_f64();
    for r in results {
        r?;
    }
    Ok(Floor {
        objects,
        write_seconds,
        pods: pods.await?,
        claims: claims.await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secret_gets_no_spec() {
        let mut secret = json!({"metadata": {"name": "s"}, "data": {"password": "eA=="}});
        strip(&mut secret, &resource::<Secret>());
        assert!(secret.get("spec").is_none(), "{secret}");
        assert_eq!(secret["data"]["password"], "eA==");
    }

    #[test]
    fn strips_server_scheduler_and_binder_fields() {
        let mut pod = json!({
            "metadata": {"name": "p", "namespace": "a", "uid": "u", "resourceVersion": "1",
                "ownerReferences": [{}], "labels": {"x": "y"}, "managedFields": []},
            "spec": {"nodeName": "n", "volumes": [{"name": "kube-api-access-abc"}, {"name": "data"}],
                "containers": [{"name": "c", "volumeMounts": [{"name": "kube-api-access-abc"}, {"name": "data"}]}]},
            "status": {"phase": "Running"}
        });
        strip(&mut pod, &resource::<Pod>());
        assert_eq!(pod["metadata"], json!({"name": "p", "labels": {"x": "y"}}));
        assert_eq!(pod["spec"]["volumes"], json!([{"name": "data"}]));
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": "data"}])
        );
        assert!(pod.get("status").is_none() && pod["spec"].get("nodeName").is_none());
        assert_eq!(
            (pod["kind"].as_str(), pod["apiVersion"].as_str()),
            (Some("Pod"), Some("v1"))
        );

        let mut headless = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "None"}});
        strip(&mut headless, &resource::<Service>());
        assert_eq!(headless["spec"]["clusterIP"], "None");
        let mut svc = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.0.0.3", "clusterIPs": ["10.0.0.3"]}});
        strip(&mut svc, &resource::<Service>());
        assert_eq!(svc["spec"], json!({}));
    }
}
