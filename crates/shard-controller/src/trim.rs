//! What the shard-controller keeps of the pods and claims it caches. A reconcile reads a pod's
//! metadata (name, labels, owner, spec-hash annotation, deletion) and its Ready condition, and of a
//! claim that it exists, its storage request and its StorageClass (volume expansion); specs and the
//! rest of the status were a quarter of the controller's heap in the benchmark
//! (docs/performance.md), so they are dropped before caching.

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod, PodStatus, VolumeResourceRequirements,
};

pub fn pod(pod: &mut Pod) {
    pod.spec = None;
    pod.status = pod.status.take().map(|status| PodStatus {
        conditions: status.conditions,
        phase: status.phase,
        ..PodStatus::default()
    });
}

pub fn claim(claim: &mut PersistentVolumeClaim) {
    claim.spec = claim.spec.take().map(|spec| PersistentVolumeClaimSpec {
        storage_class_name: spec.storage_class_name,
        resources: spec.resources.map(|r| VolumeResourceRequirements {
            requests: r.requests.map(|mut requests| {
                requests.retain(|k, _| k == "storage");
                requests
            }),
            limits: None,
        }),
        ..PersistentVolumeClaimSpec::default()
    });
    claim.status = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{SPEC_HASH, hash_of};
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec};
    use kube::ResourceExt;
    use multigres_runtime::pods::is_ready;

    fn ready_pod() -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("s-0".into());
        pod.metadata.labels = Some([("multigres.com/pool".into(), "main".into())].into());
        pod.metadata.annotations = Some([(SPEC_HASH.into(), "abc".into())].into());
        pod.spec = Some(PodSpec {
            node_name: Some("node".into()),
            ..PodSpec::default()
        });
        pod.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            phase: Some("Running".into()),
            pod_ip: Some("10.0.0.1".into()),
            ..PodStatus::default()
        });
        pod
    }

    #[test]
    fn a_trimmed_pod_keeps_what_a_reconcile_reads() {
        let mut trimmed = ready_pod();
        pod(&mut trimmed);
        assert!(trimmed.spec.is_none());
        assert_eq!(trimmed.status.as_ref().unwrap().pod_ip, None);
        assert!(is_ready(&trimmed));
        assert_eq!(hash_of(&trimmed), Some("abc"));
        assert_eq!(trimmed.labels()["multigres.com/pool"], "main");
        assert_eq!(trimmed.status.unwrap().phase.as_deref(), Some("Running"));
    }

    #[test]
    fn a_trimmed_claim_keeps_its_name_size_and_class() {
        let mut pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "data-s-0"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                     "volumeName": "pv-1", "resources": {"requests": {"storage": "10Gi"}}},
            "status": {"phase": "Bound"},
        }))
        .unwrap();
        claim(&mut pvc);
        assert!(pvc.status.is_none());
        assert_eq!(pvc.name_any(), "data-s-0");
        let spec = pvc.spec.unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"].0,
            "10Gi"
        );
        assert!(spec.access_modes.is_none() && spec.volume_name.is_none());
    }
}
