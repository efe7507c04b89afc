//! The shard controller: a Shard becomes, per pool, Postgres + multipooler pods managed directly
//! (not StatefulSets, see docs/shard-controller.md), a data PVC per pod, a headless Service and a
//! PodDisruptionBudget. Pods roll one at a time per pool, read-only and replica members before the
//! primary, which is read from the topology. Several replicas split the Shards between them.

pub mod build;
pub mod plan;
pub mod reconcile;
pub mod topology;
pub mod trim;
