//! Fake nodes: kwok plays the kubelet for Nodes carrying its annotation, so pods get scheduled,
//! become Running and Ready, and are deleted, without any container runtime.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
pub const REGION: &str = "region-1";

/// Without `--enable-crds=Stage` kwok uses its built-in default stages (node-initialize,
/// node-heartbeat-with-lease, pod-ready, pod-complete, pod-delete), which is what we want.
pub fn args(kubeconfig: &Path) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        "--manage-all-nodes=false".into(),
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
        "--node-ip=10.255.0.1".into(),
        // The default /24 runs out of pod IPs after 254 pods; this must not overlap the Service range.
        "--cidr=10.128.0.0/12".into(),
        "--node-lease-duration-seconds=40".into(),
    ]
}

/// One node per zone, each big enough that capacity never limits a test.
pub async fn create_nodes(nodes: &Api<Node>, per_zone: usize) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for zone in ZONES {
        for i in 0..per_zone {
            let name = format!("kwok-{zone}-{i}");
            let resources = json!({"cpu": "1000", "memory": "4Ti", "pods": "10000", "ephemeral-storage": "10Ti"});
            let node = json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": zone,
                        "topology.kubernetes.io/region": REGION,
                    },
                },
                "status": {"capacity": resources, "allocatable": resources},
            });
            let pp = PatchParams::apply("multigres-e2e").force();
            nodes.patch(&name, &pp, &Patch::Apply(&node)).await?;
            names.push(name);
        }
    }
    Ok(names)
}

pub async fn wait_nodes_ready(nodes: &Api<Node>, names: &[String]) -> Result<()> {
    for name in names {
        crate::wait::wait_for(nodes, name, Duration::from_secs(60), |n: &Node| {
            let conds = n.status.as_ref().and_then(|s| s.conditions.as_ref());
            conds.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .await?;
    }
    Ok(())
}
