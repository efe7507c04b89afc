//! Where the shard's primary is, read from the topology (docs/api-design.md): the one Pooler record of
//! this shard that claims PRIMARY, across the cells of its replica pools. Several claimants make
//! the primary unknown rather than the first one found. A cell's records live where the global
//! Cell record says (a local topology server), or under `<globalRoot>/<cell>` on the global
//! server when the cell has no record of its own.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use kube::runtime::reflector::{ObjectRef, Store};
use multigres_api::Shard;
use multigres_api::multigres::pooler_service_id;
use multigres_topology::{
    Cell, Dialer, PoolerChange, PoolerRecord, PoolerWatches, Result, ShardKey, ShardPrimary,
    WatchKey, cell_key, cell_root_on_global, shard_primary,
};
use tokio::sync::mpsc;

/// The pooler that claims PRIMARY for a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryRecord {
    /// Its pod, when the record traces back to one of the shard's pods (see [`pod_of`]).
    pub pod: Option<String>,
    /// Its cell (`ID.cell`).
    pub cell: String,
    /// Whether it serves: SERVING, and neither stopping, shut down nor quarantined.
    pub serving: bool,
}

/// What the topology says about a shard's primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologyPrimary {
    /// No record claims PRIMARY.
    None,
    One(PrimaryRecord),
    /// Several records claim PRIMARY (their keys): the primary is unknown.
    Conflict(Vec<String>),
}

impl TopologyPrimary {
    /// The cell of the serving primary, if there is exactly one and it serves.
    pub fn serving_cell(&self) -> Option<&str> {
        match self {
            TopologyPrimary::One(p) if p.serving => Some(&p.cell),
            _ => None,
        }
    }
}

/// The pod among `pods` whose multipooler wrote `record`: its service id is
/// [`pooler_service_id`] of the pod's name, or its hostname is (or starts with) the pod's name.
pub fn pod_of<'a>(record: &PoolerRecord, pods: &'a [String]) -> Option<&'a String> {
    pods.iter().find(|pod| {
        record.name() == pooler_service_id(pod)
            || record.host_label() == pod.as_str()
            || record.pooler.hostname == **pod
    })
}

/// The shard key its poolers register under.
pub fn shard_key(shard: &Shard) -> ShardKey {
    ShardKey {
        database: shard.spec.database.clone(),
        table_group: shard.spec.table_group.clone(),
        shard: shard.spec.multigres_shard().to_string(),
    }
}

/// Whether a read may come from the pooler watches (routine reconciles) or must ask the server
/// (the checks right before a pod goes: docs/data-safety.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    Watched,
    Server,
}

pub struct TopologyReader {
    dialer: Dialer,
    watches: PoolerWatches,
    /// The Shards that read each watched root: a change there wakes those of its shard key.
    interest: Mutex<HashMap<WatchKey, HashSet<ObjectRef<Shard>>>>,
}

impl TopologyReader {
    /// The reader, and the changes its watches see (for [`TopologyReader::shards_to_wake`]).
    pub fn new(dialer: Dialer) -> (Self, mpsc::UnboundedReceiver<PoolerChange>) {
        let (watches, changes) = PoolerWatches::new(multigres_topology::IDLE_AFTER);
        let reader = Self {
            dialer,
            watches,
            interest: Mutex::default(),
        };
        (reader, changes)
    }

    /// The primary among the records of `cells` (where the shard's replica pods are or may be);
    /// `pods` are the shard's pod names, to trace the primary's record to its pod. The flag says
    /// whether every record came from an in-sync watch (so a change will wake the Shard).
    pub async fn primary(
        &self,
        shard: &Shard,
        cells: &BTreeSet<String>,
        pods: &[String],
        freshness: Freshness,
    ) -> Result<(TopologyPrimary, bool)> {
        let global = &shard.spec.global_topo_server;
        let transport = multigres_runtime::topology_tls::transport(global);
        let global_client = self
            .dialer
            .client(std::slice::from_ref(&global.address), transport)
            .await?;
        let mut records = Vec::new();
        let mut all_watched = true;
        for cell in cells {
            let record = global_client
                .get::<Cell>(&cell_key(&global.root_path, cell.as_str()))
                .await?;
            let (client, addresses, root) = match record {
                Some((record, _)) if !record.server_addresses.is_empty() => {
                    let client = self
                        .dialer
                        .client(&record.server_addresses, transport)
                        .await?;
                    (client, record.server_addresses, record.root)
                }
                _ => (
                    global_client.clone(),
                    vec![global.address.clone()],
                    cell_root_on_global(&global.root_path, cell),
                ),
            };
            match freshness {
                Freshness::Server => records.extend(client.list_poolers(&root).await?),
                Freshness::Watched => {
                    let key = WatchKey {
                        addresses,
                        transport,
                        root,
                    };
                    self.note_interest(&key, shard);
                    let (found, watched) = self.watches.poolers(&client, &key).await?;
                    all_watched &= watched;
                    records.extend(found);
                }
            }
        }
        let key = shard_key(shard);
        let primary = match shard_primary(&records, &key) {
            ShardPrimary::None => TopologyPrimary::None,
            ShardPrimary::One(record) => TopologyPrimary::One(PrimaryRecord {
                pod: pod_of(record, pods).cloned(),
                cell: record.cell().to_string(),
                serving: record.is_serving_primary(),
            }),
            ShardPrimary::Conflict(claimants) => {
                TopologyPrimary::Conflict(claimants.iter().map(|r| r.key.clone()).collect())
            }
        };
        Ok((primary, all_watched && freshness == Freshness::Watched))
    }

    /// The Shards a change concerns: those that read its root and have one of its shard keys.
    pub fn shards_to_wake(
        &self,
        change: &PoolerChange,
        shards: &Store<Shard>,
    ) -> Vec<ObjectRef<Shard>> {
        let interest = lock(&self.interest);
        let Some(readers) = interest.get(&change.watch) else {
            return Vec::new();
        };
        readers
            .iter()
            .filter(|r| {
                shards
                    .get(r)
                    .is_some_and(|s| change.shards.contains(&shard_key(&s)))
            })
            .cloned()
            .collect()
    }

    /// Forgets a Shard that is going (it reads no root any more).
    pub fn forget(&self, shard: &Shard) {
        let gone = ObjectRef::from_obj(shard);
        for readers in lock(&self.interest).values_mut() {
            readers.remove(&gone);
        }
    }

    fn note_interest(&self, key: &WatchKey, shard: &Shard) {
        let mut interest = lock(&self.interest);
        let reader = ObjectRef::from_obj(shard);
        match interest.get_mut(key) {
            Some(readers) => {
                readers.insert(reader);
            }
            None => {
                interest.insert(key.clone(), HashSet::from([reader]));
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use multigres_topology::MultiPooler;

    fn record(name: &str, hostname: &str) -> PoolerRecord {
        PoolerRecord {
            key: String::new(),
            mod_revision: 0,
            pooler: MultiPooler {
                id: Some(multigres_topology::Id {
                    name: name.into(),
                    ..Default::default()
                }),
                hostname: hostname.into(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn records_trace_to_pods_by_service_id_or_hostname_never_by_name() {
        let pods = vec!["s-replica-a-0".to_string(), "s-replica-a-1".to_string()];
        let by_id = record(&pooler_service_id("s-replica-a-1"), "10.0.0.9");
        assert_eq!(pod_of(&by_id, &pods), Some(&pods[1]));
        let by_host = record("p-00000000", "s-replica-a-0.s-replica-a");
        assert_eq!(pod_of(&by_host, &pods), Some(&pods[0]));
        let by_name_only = record("s-replica-a-0", "10.0.0.7");
        assert_eq!(pod_of(&by_name_only, &pods), None);
    }
}
