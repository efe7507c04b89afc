//! Names of every object the operator creates. No controller formats a child's name by hand.
//!
//! Names are deterministic, valid DNS-1123 labels, and within the limit of the kind they name: a name
//! that is too long is shortened and ends in a hash of the whole input, so distinct inputs stay
//! distinct. A name keeps every part of the user's names that fits (docs/operations.md "Names"):
//! TableGroups shorten the cluster's part first, pool pods keep their pool and index whole.
//! Children created under the earlier names keep them (`table_group_hashed`, `pool_pod_hashed`).

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

/// The cluster's CA and certificate (docs/security.md).
pub fn tls_secret(cluster: &str) -> String {
    dns_name(&[cluster, "tls"], MAX_LABEL)
}

/// The client certificate with which a cluster's Multigres components dial its topology servers.
pub fn topology_tls_secret(cluster: &str) -> String {
    dns_name(&[cluster, "topology-tls"], MAX_LABEL)
}

/// A TopoServer's member certificate (client-facing and peer).
pub fn topo_server_tls_secret(topo_server: &str) -> String {
    dns_name(&[topo_server, "tls"], MAX_LABEL)
}

/// Digits of the expiry a renewable certificate's Secret name ends with: Unix seconds.
const EXPIRY_DIGITS: usize = 10;

/// The Secret of a renewable certificate: `<base>-<not after, Unix seconds>`. A renewal is a new
/// Secret under a new name, so that the pods mounting it roll and no controller reads a Secret
/// back (docs/security.md, "Renewal").
fn expiring(base: &[&str], not_after: i64) -> String {
    let base = dns_name(base, MAX_LABEL - EXPIRY_DIGITS - 1);
    format!("{base}-{not_after:0EXPIRY_DIGITS$}")
}

/// The expiry in a name made by [`expiring`] from `base`; `None` for any other name (certificates
/// issued before renewal existed were named without it).
fn expiry_in(base: &[&str], name: &str) -> Option<i64> {
    let digits = name
        .strip_prefix(&dns_name(base, MAX_LABEL - EXPIRY_DIGITS - 1))?
        .strip_prefix('-')?;
    let valid = digits.len() == EXPIRY_DIGITS && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| digits.parse().ok()).flatten()
}

/// [`tls_secret`] for a certificate valid until `not_after` (Unix seconds), from the cluster's
/// derived CA.
pub fn tls_secret_until(cluster: &str, not_after: i64) -> String {
    expiring(&[cluster, "tls"], not_after)
}

/// When the certificate in a cluster's TLS Secret `name` expires, if its name says.
pub fn tls_expiry(cluster: &str, name: &str) -> Option<i64> {
    expiry_in(&[cluster, "tls"], name)
}

/// [`topology_tls_secret`] for a certificate valid until `not_after` (Unix seconds).
pub fn topology_tls_secret_until(cluster: &str, not_after: i64) -> String {
    expiring(&[cluster, "topology-tls"], not_after)
}

/// When the certificate in a cluster's topology client Secret `name` expires, if its name says.
pub fn topology_tls_expiry(cluster: &str, name: &str) -> Option<i64> {
    expiry_in(&[cluster, "topology-tls"], name)
}

/// [`topo_server_tls_secret`] for a certificate valid until `not_after` (Unix seconds).
pub fn topo_server_tls_secret_until(topo_server: &str, not_after: i64) -> String {
    expiring(&[topo_server, "tls"], not_after)
}

/// When the certificate in a TopoServer's member Secret `name` expires, if its name says.
pub fn topo_server_tls_expiry(topo_server: &str, name: &str) -> Option<i64> {
    expiry_in(&[topo_server, "tls"], name)
}

/// [`pgbackrest_tls_secret`] for a certificate valid until `not_after` (Unix seconds), from the
/// Shard's derived CA.
pub fn pgbackrest_tls_secret_until(shard_resource: &str, not_after: i64) -> String {
    expiring(&[shard_resource, "pgbackrest-tls"], not_after)
}

/// When the certificate in a Shard's pgBackRest Secret `name` expires, if its name says.
pub fn pgbackrest_tls_expiry(shard_resource: &str, name: &str) -> Option<i64> {
    expiry_in(&[shard_resource, "pgbackrest-tls"], name)
}

/// Room left for `-<shard index>` (at most 255) in a Shard's name.
const MAX_TABLEGROUP: usize = MAX_LABEL - 4;
/// The earlier limit, which left room for pool suffixes too.
const MAX_TABLEGROUP_HASHED: usize = 45;
/// The shortest a part is cut to before the other parts are cut too.
const MIN_PART: usize = 8;

/// `<cluster>-<database>-<tablegroup>` when it fits; otherwise the cluster's part is cut first (the
/// TableGroup's labels and owner name the cluster), then the longest part, and a hash ends the name.
/// Two table groups of one cluster that would read the same (`a_b`/`c` and `a`/`b_c`) take
/// `table_group_hashed` instead (`resolve::resolve_cluster`).
pub fn table_group(cluster: &str, database: &str, table_group: &str) -> String {
    fit_parts(&[cluster, database, table_group], MAX_TABLEGROUP)
}

/// The names of a cluster's table groups (database, table group), in order: `table_group`, or
/// `table_group_hashed` for every pair whose readable name another pair of the cluster shares.
pub fn table_groups(cluster: &str, pairs: &[(&str, &str)]) -> Vec<String> {
    let readable: Vec<String> = pairs
        .iter()
        .map(|(db, tg)| table_group(cluster, db, tg))
        .collect();
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for name in &readable {
        *seen.entry(name).or_default() += 1;
    }
    pairs
        .iter()
        .zip(&readable)
        .map(|((db, tg), name)| match seen[name.as_str()] {
            1 => name.clone(),
            _ => table_group_hashed(cluster, db, tg),
        })
        .collect()
}

/// The earlier TableGroup name, always ending in a hash of (cluster, database, tablegroup).
pub fn table_group_hashed(cluster: &str, database: &str, table_group: &str) -> String {
    let hash = hash_of(&[cluster, database, table_group]);
    let readable = dns_name(&[cluster, database, table_group], usize::MAX);
    with_hash(&readable, &hash, MAX_TABLEGROUP_HASHED)
}

/// Joins `parts` when that fits `max`; otherwise cuts the first part down to `MIN_PART`, then the
/// longest part, one character at a time, and ends the name in a hash of the whole input.
fn fit_parts(parts: &[&str], max: usize) -> String {
    let clean: Vec<String> = parts.iter().map(|p| sanitize(p)).collect();
    let joined = clean
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("-");
    if joined.len() <= max && !joined.is_empty() {
        return joined;
    }
    let hash = hash_of(parts);
    let dashes = clean.len().saturating_sub(1);
    let Some(budget) = max.checked_sub(HASH_LEN + 1 + dashes) else {
        return with_hash(&joined, &hash, max);
    };
    let mut lengths: Vec<usize> = clean.iter().map(String::len).collect();
    let mut excess = lengths.iter().sum::<usize>().saturating_sub(budget);
    if let Some(first) = lengths.first_mut() {
        let cut = excess.min(first.saturating_sub(MIN_PART));
        *first -= cut;
        excess -= cut;
    }
    while excess > 0 {
        let Some(longest) = lengths.iter_mut().max_by_key(|l| **l).filter(|l| **l > 0) else {
            break;
        };
        *longest -= 1;
        excess -= 1;
    }
    let kept: Vec<&str> = clean
        .iter()
        .zip(&lengths)
        .map(|(part, len)| part[..*len].trim_matches('-'))
        .filter(|p| !p.is_empty())
        .collect();
    if kept.is_empty() {
        return format!("h{hash}");
    }
    format!("{}-{hash}", kept.join("-"))
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

/// `<shard>-<pool>-<index>`; when that is too long, the Shard's name loses whole words from its
/// front (the cluster's, which the pod's labels carry) and a hash follows it, so that database,
/// table group, shard, pool and index stay readable.
pub fn pool_pod(shard_resource: &str, pool_id: &str, index: u32) -> String {
    let index = index.to_string();
    let tail = format!("{}-{index}", sanitize(pool_id));
    let shard = sanitize(shard_resource);
    let joined = format!("{shard}-{tail}");
    if joined.len() <= MAX_LABEL {
        return joined;
    }
    let hash = hash_of(&[shard_resource, pool_id, &index]);
    let Some(room) = MAX_LABEL.checked_sub(tail.len() + HASH_LEN + 2) else {
        return pool_pod_hashed(shard_resource, pool_id, index.parse().unwrap_or_default());
    };
    // The last `room` characters, from the first word that starts within them.
    let cut = shard.len().saturating_sub(room);
    let words = &shard[cut..];
    let prefix = match cut > 0 && !shard[..cut].ends_with('-') {
        true => words.split_once('-').map_or("", |(_, rest)| rest),
        false => words,
    };
    match prefix.trim_matches('-') {
        "" => format!("h{hash}-{tail}"),
        prefix => format!("{prefix}-{hash}-{tail}"),
    }
}

/// The earlier pod name: a long one ends in a hash, cutting the pool and index off.
pub fn pool_pod_hashed(shard_resource: &str, pool_id: &str, index: u32) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewable_certificate_names_carry_their_expiry_and_stay_dns_labels() {
        let name = topology_tls_secret_until("prod", 1_796_000_000);
        assert_eq!(name, "prod-topology-tls-1796000000");
        assert_eq!(topology_tls_expiry("prod", &name), Some(1_796_000_000));
        assert_eq!(
            topology_tls_expiry("prod", &topology_tls_secret("prod")),
            None
        );
        assert_eq!(
            topology_tls_expiry("other", &name),
            None,
            "another cluster's"
        );
        let long = "c".repeat(60);
        let own = tls_secret_until("prod", 1_796_000_000);
        assert_eq!(own, "prod-tls-1796000000");
        assert_eq!(tls_expiry("prod", &own), Some(1_796_000_000));
        assert_eq!(tls_expiry("prod", &tls_secret("prod")), None);
        // The topology's names are not the cluster's, though both end in -tls-<digits>.
        assert_eq!(
            tls_expiry("prod", &topology_tls_secret_until("prod", 42)),
            None
        );
        let backrest = pgbackrest_tls_secret_until(&long, 42);
        assert!(backrest.len() <= MAX_LABEL, "{backrest}");
        assert_eq!(pgbackrest_tls_expiry(&long, &backrest), Some(42));
        assert_eq!(
            pgbackrest_tls_expiry(&long, &pgbackrest_tls_secret(&long)),
            None
        );
        let member = topo_server_tls_secret_until(&long, 42);
        assert!(member.len() <= MAX_LABEL, "{member}");
        assert!(member.ends_with("-0000000042"), "{member}");
        assert_eq!(topo_server_tls_expiry(&long, &member), Some(42));
        assert_eq!(
            topo_server_tls_expiry(&long, &topo_server_tls_secret(&long)),
            None
        );
        assert_eq!(topo_server_tls_expiry("etcd", "etcd-tls-12345678x0"), None);
    }

    #[test]
    fn table_groups_keep_database_and_table_group_readable() {
        assert_eq!(table_group("c", "db", "tg"), "c-db-tg");
        // The seed's example fits whole.
        let name = table_group("example-multigres-cluster", "production_db", "orders_tg");
        assert_eq!(name, "example-multigres-cluster-production-db-orders-tg");
        // A longer one: the cluster's part is cut, database and table group stay whole.
        let name = table_group(
            "example-multigres-cluster-eu-central",
            "production_db",
            "orders_tg",
        );
        assert!(name.starts_with("example-") && name.contains("-production-db-orders-tg-"));
        assert!(name.len() <= MAX_TABLEGROUP, "{name}");
        // The earlier names, which TableGroups created under them keep.
        assert_eq!(
            table_group_hashed("example-multigres-cluster", "production_db", "orders_tg"),
            "example-multigres-cluster-production-9aa4c6a9"
        );
        // Long parts are all cut once the cluster's part is down to its minimum.
        let long = table_group(&"c".repeat(60), &"d".repeat(60), &"t".repeat(60));
        assert_eq!(long.len(), MAX_TABLEGROUP, "{long}");
        assert!(long.starts_with("cccccccc-dddd"), "{long}");
    }

    #[test]
    fn table_groups_that_read_the_same_take_a_hash() {
        let names = table_groups("c", &[("a_b", "c"), ("a", "b_c"), ("x", "y")]);
        assert_eq!(names[0], table_group_hashed("c", "a_b", "c"));
        assert_eq!(names[1], table_group_hashed("c", "a", "b_c"));
        assert_ne!(names[0], names[1]);
        assert_eq!(names[2], "c-x-y");
    }

    #[test]
    fn long_pod_names_keep_pool_and_index_whole() {
        assert_eq!(pool_pod("s", "replica-zone-a", 3), "s-replica-zone-a-3");
        let shard = "example-multigres-cluster-production-db-orders-tg-0";
        let name = pool_pod(shard, "replica-us-west-2", 12);
        assert_eq!(
            &name[..42],
            "cluster-production-db-orders-tg-0-cb838eeb",
            "{name}"
        );
        assert!(name.ends_with("-replica-us-west-2-12"), "{name}");
        assert!(name.len() <= MAX_LABEL, "{name}");
        let shard = "example-multigres-cluster-production-db-orders-tg-0-inf";
        let name = pool_pod(shard, "replica-zone-a", 12);
        assert_ne!(name, pool_pod(shard, "replica-zone-a", 13));
        assert_ne!(name, pool_pod_hashed(shard, "replica-zone-a", 12));
        // Where both fit, the earlier and the readable names are the same.
        assert_eq!(pool_pod("s", "p", 0), pool_pod_hashed("s", "p", 0));
    }
}
