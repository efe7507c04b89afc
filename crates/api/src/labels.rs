//! Label keys and label sets. Children are found by these labels, and watches are narrowed by them.

use std::collections::BTreeMap;

pub const CLUSTER: &str = "multigres.com/cluster";
pub const CELL: &str = "multigres.com/cell";
pub const DATABASE: &str = "multigres.com/database";
pub const TABLEGROUP: &str = "multigres.com/tablegroup";
pub const SHARD: &str = "multigres.com/shard";
pub const POOL: &str = "multigres.com/pool";
pub const POOL_TYPE: &str = "multigres.com/pool-type";
pub const TOPO_SCOPE: &str = "multigres.com/topo-scope";
/// The TopoServer whose etcd members a pod, Service or PDB belongs to (pod selector of its StatefulSet).
pub const TOPO_SERVER: &str = "multigres.com/topo-server";
/// The object whose controller applied a child; prunes only ever touch objects carrying it.
pub const OWNER: &str = "multigres.com/owner";

pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const PART_OF: &str = "app.kubernetes.io/part-of";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

pub const MANAGED_BY_VALUE: &str = "multigres-operator";

/// Annotation on a Shard (set by `kubectl multigres restart`): a new value replaces every pod of
/// the Shard once, in the shard controller's safe order (replicas first, the primary last after a
/// planned switchover). The pods carry it too, so it is part of their spec hash.
pub const RESTART_REQUESTED: &str = "multigres.com/restart-requested";

/// Annotation on the pods that mount the cluster's TLS Secret: the revision of the cert-manager
/// certificate they were started with ([`crate::TlsRef::revision_annotation`]), so a renewal rolls them.
pub const TLS_REVISION: &str = "multigres.com/tls-revision";

/// Annotation on pool pods: the pgBackRest TLS Secret they mount (pods are cached without their
/// spec), from which the shard controller knows when the certificate is due for renewal. Not part
/// of the spec hash (the Secret's name in the pod spec is).
pub const PGBACKREST_TLS: &str = "multigres.com/pgbackrest-tls";

/// Annotation on a Shard (set by `kubectl multigres switchover`): `<RFC3339 time>[,<pod>]` asks the
/// shard controller for one planned switchover of the primary (to `<pod>`, a Ready pod of a replica
/// pool, when given). Each value is acted on once; the outcome is the Shard's
/// `status.lastSwitchover`.
pub const SWITCHOVER_REQUESTED: &str = "multigres.com/switchover-requested";
/// On a Backup a ScheduledBackup created: the schedule's name.
pub const SCHEDULED_BACKUP: &str = "multigres.com/scheduled-backup";

/// Values of `app.kubernetes.io/component`.
pub mod component {
    pub const TOPO_SERVER: &str = "topo-server";
    pub const CELL: &str = "cell";
    pub const MULTIGATEWAY: &str = "multigateway";
    pub const MULTIORCH: &str = "multiorch";
    pub const MULTIADMIN: &str = "multiadmin";
    /// The Service over every cell's gateways.
    pub const CLUSTER_GATEWAYS: &str = "cluster-gateways";
    pub const TABLEGROUP: &str = "tablegroup";
    pub const SHARD: &str = "shard";
    pub const SHARD_POOL: &str = "shard-pool";
    /// The cluster's NetworkPolicies.
    pub const NETWORK_POLICY: &str = "network-policy";
    /// The cluster's TLS Secret.
    pub const TLS: &str = "tls";
    /// The generated Postgres credentials Secret.
    pub const CREDENTIALS: &str = "credentials";
}

/// The labels every object of a cluster carries.
pub fn for_component(cluster: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CLUSTER.to_string(), cluster.to_string()),
        (NAME.to_string(), "multigres".to_string()),
        (INSTANCE.to_string(), cluster.to_string()),
        (COMPONENT.to_string(), component.to_string()),
        (PART_OF.to_string(), "multigres".to_string()),
        (MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string()),
    ])
}

/// Adds `key=value` to a label set, builder style.
pub fn with(
    mut labels: BTreeMap<String, String>,
    key: &str,
    value: &str,
) -> BTreeMap<String, String> {
    labels.insert(key.to_string(), value.to_string());
    labels
}

/// A label selector string (`k=v,k2=v2`) for list and watch calls.
pub fn selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
