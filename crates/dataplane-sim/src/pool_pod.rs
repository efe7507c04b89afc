//! The pool pods as the simulator sees them, and its choice of primary among them (what
//! multiorch would decide).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use multigres_api::labels;
use multigres_api::{PoolType, naming};
use multigres_topology::prost_types;

use crate::PoolerFlags;

/// A pool pod, as far as the simulator cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPod {
    pub namespace: String,
    pub name: String,
    /// Tells a pod from its replacement under the same name.
    pub uid: String,
    pub cluster: String,
    pub cell: String,
    pub database: String,
    pub table_group: String,
    pub shard: String,
    pub pool_type: PoolType,
    pub ready: bool,
    /// Being deleted: its multipooler has shut down.
    pub terminating: bool,
    /// When the pod last changed state (deletion, or its Ready condition's last transition): the
    /// time multipooler would stamp on its lifecycle status.
    pub since: Option<prost_types::Timestamp>,
    /// Name of the Shard resource the pod belongs to.
    pub shard_resource: String,
    /// The flags of its multipooler container.
    pub flags: PoolerFlags,
}

impl PoolPod {
    /// Reads a pod's labels and readiness; `None` for a pod without the pool labels.
    pub fn from_pod(pod: &Pod) -> Option<PoolPod> {
        let l = pod.labels();
        let get = |k: &str| l.get(k).cloned();
        let (cluster, cell, database, table_group, shard) = (
            get(labels::CLUSTER)?,
            get(labels::CELL)?,
            get(labels::DATABASE)?,
            get(labels::TABLEGROUP)?,
            get(labels::SHARD)?,
        );
        let pool_type = match l.get(labels::POOL_TYPE).map(String::as_str) {
            Some("readOnly") => PoolType::ReadOnly,
            _ => PoolType::Replica,
        };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let ready_condition = multigres_runtime::pods::ready_condition(pod);
        let ready = !terminating && ready_condition.is_some_and(|c| c.status == "True");
        let since = pod
            .metadata
            .deletion_timestamp
            .as_ref()
            .or(ready_condition.and_then(|c| c.last_transition_time.as_ref()))
            .or(pod.metadata.creation_timestamp.as_ref())
            .map(|t| prost_types::Timestamp {
                seconds: t.0.as_second(),
                nanos: t.0.subsec_nanosecond(),
            });
        let shard_resource = pod
            .owner_references()
            .iter()
            .find(|o| o.kind == "Shard")
            .map(|o| o.name.clone())
            .unwrap_or_else(|| {
                naming::shard(
                    &naming::table_group(&cluster, &database, &table_group),
                    &shard,
                )
            });
        Some(PoolPod {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            cluster,
            cell,
            database,
            table_group,
            shard,
            pool_type,
            ready,
            terminating,
            since,
            shard_resource,
            flags: PoolerFlags::from_pod(pod),
        })
    }

    pub(crate) fn index(&self) -> u32 {
        self.name
            .rsplit('-')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(u32::MAX)
    }

    pub(crate) fn shard_ref(&self) -> ShardRef {
        (self.namespace.clone(), self.shard_resource.clone())
    }
}

/// The pool pods of the last pass, by uid and resourceVersion: a pass reads only the pods that
/// changed since (reading every pod's labels and flags at each pass was a quarter of the
/// simulator's CPU at 1,000 Shards).
#[derive(Default)]
pub struct PoolPods {
    read: HashMap<String, (String, Option<PoolPod>)>,
}

impl PoolPods {
    pub fn read(&mut self, pods: &[Arc<Pod>]) -> Vec<PoolPod> {
        let mut seen = HashMap::with_capacity(pods.len());
        let mut out = Vec::with_capacity(pods.len());
        for pod in pods {
            let (Some(uid), Some(version)) = (
                pod.metadata.uid.as_ref(),
                pod.metadata.resource_version.as_ref(),
            ) else {
                out.extend(PoolPod::from_pod(pod));
                continue;
            };
            let read = match self.read.remove(uid) {
                Some((known, read)) if &known == version => read,
                _ => PoolPod::from_pod(pod),
            };
            out.extend(read.clone());
            seen.insert(uid.clone(), (version.clone(), read));
        }
        self.read = seen;
        out
    }
}

/// `(namespace, Shard resource name)`.
pub type ShardRef = (String, String);

/// Picks one PRIMARY per shard among its ready replica-pool pods: the current one while it stays
/// ready, else the lowest-index ready pod in `first_replica_cell` (the shard's first replica pool),
/// else the lowest-index ready replica-pool pod anywhere.
pub fn choose_primaries(
    pods: &[PoolPod],
    first_replica_cell: &BTreeMap<ShardRef, String>,
    current: &BTreeMap<ShardRef, String>,
) -> BTreeMap<ShardRef, String> {
    let mut by_shard: BTreeMap<ShardRef, Vec<&PoolPod>> = BTreeMap::new();
    for pod in pods
        .iter()
        .filter(|p| p.ready && p.pool_type == PoolType::Replica)
    {
        by_shard.entry(pod.shard_ref()).or_default().push(pod);
    }
    let mut out = BTreeMap::new();
    for (shard, mut candidates) in by_shard {
        if let Some(kept) = current
            .get(&shard)
            .filter(|c| candidates.iter().any(|p| &p.name == *c))
        {
            out.insert(shard, kept.clone());
            continue;
        }
        let preferred = first_replica_cell.get(&shard);
        candidates.sort_by_key(|p| (Some(&p.cell) != preferred, p.index(), p.name.clone()));
        out.insert(shard, candidates[0].name.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, version: &str, cell: &str) -> Arc<Pod> {
        let mut pod = Pod::default();
        pod.metadata.name = Some(format!("s-replica-{cell}-0"));
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.uid = Some(uid.into());
        pod.metadata.resource_version = Some(version.into());
        pod.metadata.labels = Some(
            [
                (labels::CLUSTER, "prod"),
                (labels::CELL, cell),
                (labels::DATABASE, "orders"),
                (labels::TABLEGROUP, "default"),
                (labels::SHARD, "0"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        Arc::new(pod)
    }

    #[test]
    fn a_pod_is_read_again_only_when_its_version_changes() {
        let mut pods = PoolPods::default();
        let first = pods.read(&[pod("u1", "1", "a"), Arc::new(Pod::default())]);
        assert_eq!(
            first.len(),
            1,
            "a pod without the pool labels is no pool pod"
        );
        assert_eq!(first[0].cell, "a");
        // Same version: the reading of the last pass (a changed object always has a new one).
        assert_eq!(pods.read(&[pod("u1", "1", "b")])[0].cell, "a");
        assert_eq!(pods.read(&[pod("u1", "2", "b")])[0].cell, "b");
        // A pod gone from a pass is forgotten; a new uid is read.
        assert!(pods.read(&[]).is_empty());
        assert_eq!(pods.read(&[pod("u1", "2", "c")])[0].cell, "c");
    }
}
