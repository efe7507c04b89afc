//! Names of every object the operator creates. No controller formats a child's name by hand.
//!
//! Names are deterministic, valid DNS-1123 labels, and within the limit of the kind they name: a name
//! that is too long keeps a readable prefix and ends in a hash of the whole input, so distinct inputs
//! stay distinct. TableGroup names always carry a hash of (database, tablegroup): `a_b`/`c` and `a`/`b_c`
//! would otherwise both become `a-b-c`.

use sha2::{Digest, Sha256};

/// Services, label values and pod host names.
pub const MAX_LABEL: usize = 63;
/// StatefulSets: the controller appends a 10-character revision hash to pod labels.
pub const MAX_STATEFULSET: usize = 52;
const HASH_LEN: usize = 8;

/// Joins `parts` with `-` into a DNS-1123 label of at most `max` characters.
pub fn dns_name(parts: &[&str], max: usize) -> String {
    let joined = parts
        .iter()
        .map(|p| sanitize(p))
        .collect::<Vec<_>>()
        .join("-");
    if joined.len() <= max && !joined.is_empty() {
        return joined;
    }
    with_hash(&joined, &hash_of(parts), max)
}

/// Lower-cases, maps every character outside `[a-z0-9-]` to `-` (so `_` becomes `-`), and trims dashes.
pub fn sanitize(part: &str) -> String {
    let mapped: String = part
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    mapped.trim_matches('-').to_string()
}

fn hash_of(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher
        .finalize()
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn with_hash(readable: &str, hash: &str, max: usize) -> String {
    let room = max.saturating_sub(hash.len() + 1);
    let prefix: String = readable.chars().take(room).collect();
    let prefix = prefix.trim_end_matches('-');
    if prefix.is_empty() {
        format!("h{hash}")
    } else {
        format!("{prefix}-{hash}")
    }
}

pub fn global_topo_server(cluster: &str) -> String {
    dns_name(&[cluster, "global"], MAX_STATEFULSET)
}

pub fn local_topo_server(cluster: &str, cell: &str) -> String {
    dns_name(&[cluster, cell], MAX_STATEFULSET)
}

pub fn topo_client_service(topo_server: &str) -> String {
    dns_name(&[topo_server, "client"], MAX_LABEL)
}

pub fn topo_peer_service(topo_server: &str) -> String {
    dns_name(&[topo_server, "peer"], MAX_LABEL)
}

pub fn cell(cluster: &str, cell: &str) -> String {
    dns_name(&[cluster, cell], MAX_LABEL - "-multigateway".len())
}

pub fn gateway(cell_resource: &str) -> String {
    dns_name(&[cell_resource, "gateway"], MAX_LABEL)
}

/// The Service over the gateways of every cell of a cluster (`-gateways`: never a cell's
/// `<cluster>-<cell>-gateway`).
pub fn cluster_gateways(cluster: &str) -> String {
    dns_name(&[cluster, "gateways"], MAX_LABEL)
}

pub fn multiorch(cell_resource: &str) -> String {
    dns_name(&[cell_resource, "multiorch"], MAX_LABEL)
}

pub fn multiadmin(cluster: &str) -> String {
    dns_name(&[cluster, "multiadmin"], MAX_LABEL)
}

/// multiadmin's gRPC address, as the shard controller dials it for a planned switchover.
pub fn multiadmin_address(cluster: &str, namespace: &str) -> String {
    format!(
        "{}.{namespace}.svc:{}",
        multiadmin(cluster),
        crate::multigres::MULTIADMIN_GRPC_PORT
    )
}

/// The roll slot group of a table group: its Leases are `<group>-<i>` in the operator's namespace
/// (room is left for the index).
pub fn roll_slot_group(namespace: &str, table_group_resource: &str) -> String {
    dns_name(&["roll", namespace, table_group_resource], MAX_LABEL - 4)
}

pub fn credentials_secret(cluster: &str) -> String {
    dns_name(&[cluster, "postgres-credentials"], MAX_LABEL)
}

/// Room left for `-<shard>` and pool suffixes.
const MAX_TABLEGROUP: usize = 45;

pub fn table_group(cluster: &str, database: &str, table_group: &str) -> String {
    let hash = hash_of(&[cluster, database, table_group]);
    let readable = dns_name(&[cluster, database, table_group], usize::MAX);
    with_hash(&readable, &hash, MAX_TABLEGROUP)
}

pub fn shard(table_group_resource: &str, shard_name: &str) -> String {
    dns_name(&[table_group_resource, shard_name], MAX_LABEL)
}

/// The pool's identity within a shard: pools differ by (type, cell).
pub fn pool_id(pool_type: crate::PoolType, cell: &str) -> String {
    dns_name(&[pool_type.as_str(), cell], MAX_LABEL)
}

/// Headless Service of a pool, giving its pods stable host names.
pub fn pool_service(shard_resource: &str, pool_id: &str) -> String {
    dns_name(&[shard_resource, pool_id], MAX_LABEL)
}

pub fn pool_pod(shard_resource: &str, pool_id: &str, index: u32) -> String {
    dns_name(&[shard_resource, pool_id, &index.to_string()], MAX_LABEL)
}

pub fn pool_pdb(shard_resource: &str, pool_id: &str) -> String {
    pool_service(shard_resource, pool_id)
}

/// The shard's pgBackRest repository, shared by every pool pod of the shard.
pub fn backup_pvc(shard_resource: &str) -> String {
    dns_name(&["backups", shard_resource], MAX_LABEL)
}

/// CA, certificate and key of the shard's pgBackRest TLS servers and clients.
pub fn pgbackrest_tls_secret(shard_resource: &str) -> String {
    dns_name(&[shard_resource, "pgbackrest-tls"], MAX_LABEL)
}

pub fn data_pvc(pod: &str) -> String {
    dns_name(&["data", pod], MAX_LABEL)
}

/// Default root of a cluster's topology, unique per namespace and cluster so that clusters sharing an
/// external etcd never collide.
pub fn default_root(namespace: &str, cluster: &str, scope: &str) -> String {
    format!("/multigres/{namespace}/{cluster}/{scope}")
}

/// The client port of a managed topology server (etcd's own).
pub const TOPO_CLIENT_PORT: i32 = 2379;

/// Client address of a managed topology server, as pods dial it.
pub fn topo_address(client_service: &str, namespace: &str) -> String {
    format!("{client_service}.{namespace}.svc:{TOPO_CLIENT_PORT}")
}
