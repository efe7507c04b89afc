//! Where the shard's primary is, read from the topology (DESIGN §3.9): a Pooler record of this
//! shard that is PRIMARY and SERVING. Its cell's records live where the global Cell record says
//! (a local topology server), or under `<globalRoot>/<cell>` on the global server when the cell has
//! no record of its own.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use multigres_api::Shard;
use multigres_topology::{AddressMapping, Cell, Result, TopoClient, cell_key, cell_root_on_global};

/// The serving primary of a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryRecord {
    /// The pooler's name: its pod's name (`--service-id $(POD_NAME)`).
    pub pod: String,
    pub cell: String,
}

pub struct TopologyReader {
    mapping: AddressMapping,
    timeout: Duration,
    clients: Mutex<HashMap<Vec<String>, TopoClient>>,
}

impl TopologyReader {
    pub fn new(mapping: AddressMapping, timeout: Duration) -> Self {
        Self {
            mapping,
            timeout,
            clients: Mutex::new(HashMap::new()),
        }
    }

    async fn client(&self, addresses: &[String]) -> Result<TopoClient> {
        let key = addresses.to_vec();
        if let Some(c) = self.clients.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(c);
        }
        let client = TopoClient::connect(addresses, &self.mapping, self.timeout).await?;
        if let Ok(mut m) = self.clients.lock() {
            m.insert(key, client.clone());
        }
        Ok(client)
    }

    /// The serving primary among the shard's replica pools' cells; `Ok(None)` when none serves.
    pub async fn primary(&self, shard: &Shard) -> Result<Option<PrimaryRecord>> {
        let global = &shard.spec.global_topo_server;
        let global_client = self.client(std::slice::from_ref(&global.address)).await?;
        let cells: BTreeSet<&str> = shard
            .spec
            .pools
            .iter()
            .filter(|p| p.pool_type == multigres_api::PoolType::Replica)
            .map(|p| p.cell.as_str())
            .collect();
        for cell in cells {
            let record = global_client
                .get::<Cell>(&cell_key(&global.root_path, cell))
                .await?;
            let (client, root) = match record {
                Some((record, _)) if !record.server_addresses.is_empty() => {
                    (self.client(&record.server_addresses).await?, record.root)
                }
                _ => (
                    global_client.clone(),
                    cell_root_on_global(&global.root_path, cell),
                ),
            };
            for pooler in client.list_poolers(&root).await? {
                let of_shard = pooler.pooler.shard_key.as_ref().is_some_and(|k| {
                    k.database == shard.spec.database
                        && k.table_group == shard.spec.table_group
                        && k.shard == shard.spec.shard_name
                });
                if of_shard && pooler.is_serving_primary() {
                    return Ok(Some(PrimaryRecord {
                        pod: pooler.name().to_string(),
                        cell: cell.to_string(),
                    }));
                }
            }
        }
        Ok(None)
    }
}
