//! A default StorageClass and a tiny provisioner for it: kwok has no kubelet and no CSI driver, so
//! the harness itself creates a PV for each claim and lets the controller-manager's PV binder bind it.

use std::collections::BTreeMap;

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde_json::json;

pub const STORAGE_CLASS: &str = "standard";
pub const PROVISIONER: &str = "multigres.dev/e2e-hostpath";

pub async fn create_storage_class(client: &Client) -> Result<()> {
    let sc = json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        // WaitForFirstConsumer would make the scheduler wait for a provisioner that speaks the
        // selected-node protocol; ours provisions at once.
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": true,
    });
    let pp = PatchParams::apply("multigres-e2e").force();
    Api::<StorageClass>::all(client.clone())
        .patch(STORAGE_CLASS, &pp, &Patch::Apply(&sc))
        .await?;
    Ok(())
}

/// Named after the claim's uid, so re-seeing a claim never makes a second volume.
fn pv_name(pvc: &PersistentVolumeClaim) -> Option<String> {
    pvc.metadata.uid.as_ref().map(|u| format!("pvc-{u}"))
}

fn wants_volume(pvc: &PersistentVolumeClaim) -> bool {
    let spec = pvc.spec.as_ref();
    let class = spec.and_then(|s| s.storage_class_name.as_deref());
    class == Some(STORAGE_CLASS)
        && spec.and_then(|s| s.volume_name.as_deref()).is_none()
        && pvc.metadata.deletion_timestamp.is_none()
}

async fn provision(pvs: &Api<PersistentVolume>, pvc: &PersistentVolumeClaim) -> Result<()> {
    let (Some(name), Some(spec)) = (pv_name(pvc), pvc.spec.as_ref()) else {
        return Ok(());
    };
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage").cloned())
        .unwrap_or_else(|| k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()));
    let pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            annotations: Some(BTreeMap::from([(
                "pv.kubernetes.io/provisioned-by".to_string(),
                PROVISIONER.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(serde_json::from_value(json!({
            "capacity": {"storage": storage},
            "accessModes": spec.access_modes.clone().unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            "storageClassName": STORAGE_CLASS,
            // Retain: no kubelet or plugin exists to delete a hostPath; the loop deletes it instead.
            "persistentVolumeReclaimPolicy": "Retain",
            "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".into()),
            "hostPath": {"path": format!("/tmp/multigres-e2e/{name}")},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": pvc.metadata.namespace,
                "name": pvc.metadata.name,
                "uid": pvc.metadata.uid,
            },
        }))?),
        status: None,
    };
    match pvs.create(&PostParams::default(), &pv).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn release(pvs: &Api<PersistentVolume>, pvc: &PersistentVolumeClaim) -> Result<()> {
    let Some(name) = pv_name(pvc) else {
        return Ok(());
    };
    match pvs.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs until the watch ends for good; errors on single objects are logged and retried on the next
/// event (the watcher re-lists after a disconnect).
pub async fn provisioner(client: Client) {
    let pvcs = Api::<PersistentVolumeClaim>::all(client.clone());
    let pvs = Api::<PersistentVolume>::all(client);
    let mut stream = watcher::watcher(pvcs, watcher::Config::default())
        .default_backoff()
        .map_err(anyhow::Error::from)
        .boxed();
    while let Some(event) = stream.next().await {
        let result = match event {
            Ok(Event::Apply(pvc) | Event::InitApply(pvc)) if wants_volume(&pvc) => {
                provision(&pvs, &pvc).await
            }
            Ok(Event::Delete(pvc)) => release(&pvs, &pvc).await,
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!("e2e provisioner: {e:#}");
        }
    }
}
