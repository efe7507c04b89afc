//! The tablegroup controller: a TableGroup becomes one Shard per partition.
//!
//! Shards are never deleted by this controller: decreasing `partitioning.shards` is refused by the
//! schema, and a Shard that is no longer desired (an edit that bypassed the schema) is left in place
//! and reported in the `StaleShards` condition, because deleting it would delete data.

pub mod build;
pub mod reconcile;
