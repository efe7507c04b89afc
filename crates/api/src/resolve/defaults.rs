//! Built-in defaults: what a component gets when neither a template nor inline settings say otherwise.
//! `docs/defaults.md` lists them field by field; a test checks the two against each other.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use serde_json::{Value, json};

use crate::common::PoolType;

/// Multigres components run the pinned Multigres (`crate::multigres`).
pub use crate::multigres::MULTIGRES_IMAGE;
/// The postgres container runs pgctld from the pinned pgctld image (PostgreSQL 17 + pgBackRest).
pub const POSTGRES_IMAGE: &str = crate::multigres::PGCTLD_IMAGE;
pub const ETCD_IMAGE: &str = "quay.io/coreos/etcd:v3.5.17";
/// The postgres_exporter sidecar of each pool pod (the version `just conformance` runs).
pub const POSTGRES_EXPORTER_IMAGE: &str = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1";
pub const PULL_POLICY: &str = "IfNotPresent";

pub const MULTIADMIN_REPLICAS: i32 = 1;
pub const MULTIGATEWAY_REPLICAS: i32 = 2;
pub const MULTIORCH_REPLICAS: i32 = 1;
pub const TOPO_SERVER_REPLICAS: i32 = 3;

/// Pods per shard of a pool: a primary and two standbys, or one read-only replica.
pub fn pool_replicas(pool_type: PoolType) -> i32 {
    match pool_type {
        PoolType::Replica => 3,
        PoolType::ReadOnly => 1,
    }
}

pub fn multiadmin() -> Value {
    json!({
        "replicas": MULTIADMIN_REPLICAS,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    })
}

pub fn multigateway() -> Value {
    json!({
        "replicas": MULTIGATEWAY_REPLICAS,
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
    })
}

pub fn multiorch() -> Value {
    json!({
        "replicas": MULTIORCH_REPLICAS,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    })
}

pub fn shard_pool(pool_type: PoolType) -> Value {
    json!({
        "replicas": pool_replicas(pool_type),
        "dataVolumeClaimTemplate": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
        "postgres": {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}},
        "multipooler": {"resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}}
    })
}

pub fn postgres_exporter() -> Value {
    json!({
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}
    })
}

pub fn topo_server() -> Value {
    json!({
        "image": ETCD_IMAGE,
        "replicas": TOPO_SERVER_REPLICAS,
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "dataVolumeClaimTemplate": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}
    })
}

/// Durability of a database when the cluster names none: a write is durable once the primary and one
/// replica have it.
pub const DEFAULT_REQUIRED_COUNT: i32 = 2;

/// The default spread of a shard pool's pods, and of each multigateway and multiorch Deployment's:
/// across zones first, then nodes, at most one pod more in one domain than in another, and a
/// preference only (`ScheduleAnyway`), so that a cluster with one zone or few nodes still runs them.
pub const SPREAD_TOPOLOGY_KEYS: [&str; 2] =
    ["topology.kubernetes.io/zone", "kubernetes.io/hostname"];
pub const SPREAD_MAX_SKEW: i32 = 1;
pub const SPREAD_WHEN_UNSATISFIABLE: &str = "ScheduleAnyway";

/// The default spread of the pods `own_pods` selects (one constraint per key of
/// [`SPREAD_TOPOLOGY_KEYS`]).
pub fn spread(own_pods: &BTreeMap<String, String>) -> Vec<TopologySpreadConstraint> {
    SPREAD_TOPOLOGY_KEYS
        .iter()
        .map(|key| TopologySpreadConstraint {
            topology_key: (*key).to_string(),
            max_skew: SPREAD_MAX_SKEW,
            when_unsatisfiable: SPREAD_WHEN_UNSATISFIABLE.to_string(),
            label_selector: crate::scheduling::selector(own_pods),
            ..Default::default()
        })
        .collect()
}
