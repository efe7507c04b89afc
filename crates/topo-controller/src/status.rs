//! TopoServer status, computed from the StatefulSet the controller observes: `Available` is True only
//! while a quorum of etcd members is ready.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use multigres_api::{TopoServer, TopoServerStatus, naming};
use multigres_runtime::conditions::{self, AVAILABLE, ConditionUpdate};

use crate::build::quorum;

pub fn compute(
    ts: &TopoServer,
    statefulset: Option<&StatefulSet>,
    volumes: &crate::volumes::VolumeCondition,
    now: Timestamp,
) -> TopoServerStatus {
    let name = ts.name_any();
    let current = ts.status.clone().unwrap_or_default();
    let observed = statefulset.and_then(|s| s.status.as_ref());
    let replicas = observed.map(|s| s.replicas).unwrap_or_default();
    let ready = observed.and_then(|s| s.ready_replicas).unwrap_or_default();
    let need = quorum(ts.spec.replicas);
    let update = match statefulset {
        None => ConditionUpdate::new(
            AVAILABLE,
            false,
            "StatefulSetMissing",
            format!("StatefulSet {name} does not exist yet"),
        ),
        Some(_) if ready >= need => ConditionUpdate::new(
            AVAILABLE,
            true,
            "QuorumReady",
            format!(
                "{ready}/{} etcd members ready (quorum {need})",
                ts.spec.replicas
            ),
        ),
        Some(_) => ConditionUpdate::new(
            AVAILABLE,
            false,
            "QuorumNotReady",
            format!(
                "{ready}/{} etcd members ready; etcd needs {need} for a quorum",
                ts.spec.replicas
            ),
        ),
    };
    let mut conditions = current.conditions;
    conditions::set(&mut conditions, update, ts.metadata.generation, now);
    match volumes {
        Some((status, reason, message)) => conditions::set(
            &mut conditions,
            ConditionUpdate::new(
                multigres_runtime::volumes::CONDITION,
                *status,
                *reason,
                message.clone(),
            ),
            ts.metadata.generation,
            now,
        ),
        // Back at the size the members were created with: nothing to report.
        None => conditions.retain(|c| c.type_ != multigres_runtime::volumes::CONDITION),
    }
    TopoServerStatus {
        observed_generation: ts.metadata.generation,
        conditions,
        replicas,
        ready_replicas: ready,
        client_service_name: Some(naming::topo_client_service(&name)),
        peer_service_name: Some(naming::topo_peer_service(&name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetStatus;
    use k8s_openapi::api::core::v1::PersistentVolumeClaimSpec;
    use multigres_api::TopoServerSpec;

    fn topo(replicas: i32) -> TopoServer {
        let mut ts = TopoServer::new(
            "g",
            TopoServerSpec {
                root_path: "/r".into(),
                image: "etcd".into(),
                image_pull_policy: None,
                image_pull_secrets: vec![],
                replicas,
                affinity: None,
                resources: None,
                data_volume_claim_template: PersistentVolumeClaimSpec::default(),
                placement: None,
                scheduling: Default::default(),
                tls: None,
            },
        );
        ts.metadata.generation = Some(4);
        ts
    }

    fn sts(replicas: i32, ready: i32) -> StatefulSet {
        StatefulSet {
            status: Some(StatefulSetStatus {
                replicas,
                ready_replicas: Some(ready),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn available_only_with_a_quorum() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let ts = topo(3);
        for (ready, available) in [(0, false), (1, false), (2, true), (3, true)] {
            let status = compute(&ts, Some(&sts(3, ready)), &None, now);
            assert_eq!(
                conditions::is_true(&status.conditions, AVAILABLE),
                available,
                "{ready} ready"
            );
            assert_eq!(status.ready_replicas, ready);
            assert_eq!(status.replicas, 3);
            assert_eq!(status.observed_generation, Some(4));
            assert_eq!(status.client_service_name.as_deref(), Some("g-client"));
            assert_eq!(status.peer_service_name.as_deref(), Some("g-peer"));
        }
        let missing = compute(&ts, None, &None, now);
        assert!(!conditions::is_true(&missing.conditions, AVAILABLE));
        assert_eq!(missing.conditions[0].reason, "StatefulSetMissing");
    }
}
