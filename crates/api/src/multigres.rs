//! Values the operator and the Multigres processes must agree on, each decided in one place: the
//! backup repository path, the multipooler service id of a pod, and the Multigres name of a shard.

/// Where every shard pod mounts its backup volume, and the filesystem backup location the
/// cluster-controller writes into each Database record (multipooler refuses a Database without
/// one: replicas bootstrap from a pgBackRest backup).
pub const BACKUP_REPOSITORY_PATH: &str = "/backups";

/// The multipooler `--service-id` of a pool pod: `p-` and 8 lowercase hex digits of the FNV-1a
/// (32-bit) hash of the pod name. Short and stable across restarts of the same pod, so the
/// pooler's topology key (`multipooler-<cell>-<id>`) and its application name (`<cell>_<id>`,
/// at most 63 characters) stay put. A Pooler record maps back to its pod by comparing `ID.name`
/// with this function of each candidate pod name.
pub fn pooler_service_id(pod_name: &str) -> String {
    format!("p-{:08x}", fnv1a_32(pod_name.as_bytes()))
}

/// The shard name Multigres uses (multipooler `--shard`, `ShardKey.shard` in Pooler records) for
/// shard `shard_name` of a table group with `shard_count` shards. Multigres names shards by key
/// range, so the only shard of an unsharded table group is `0-inf`; the Shard resource keeps its
/// index name (`0`). With several shards the index name is kept: the pinned Multigres serves
/// exactly one shard per table group (its multipooler exits on any shard but `0-inf`), so no
/// key-range naming for several shards exists to follow yet.
pub fn multigres_shard_id(shard_name: &str, shard_count: u32) -> String {
    if shard_count == 1 {
        UNSHARDED.to_string()
    } else {
        shard_name.to_string()
    }
}

/// The key range covering every key: the shard of an unsharded table group.
pub const UNSHARDED: &str = "0-inf";

/// FNV-1a, 32 bits (offset basis 0x811c9dc5, prime 0x01000193).
fn fnv1a_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn service_ids_are_short_stable_and_distinct() {
        let id = pooler_service_id("prod-orders-default-0-replica-z1-0");
        assert_eq!(id, pooler_service_id("prod-orders-default-0-replica-z1-0"));
        assert_eq!(id.len(), 10);
        assert!(id.starts_with("p-"));
        assert!(
            id[2..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_ne!(id, pooler_service_id("prod-orders-default-0-replica-z1-1"));
        assert_eq!(pooler_service_id("a"), "p-e40c292c");
        assert_eq!(pooler_service_id(""), "p-811c9dc5");
    }

    #[test]
    fn one_shard_is_the_whole_key_range() {
        assert_eq!(multigres_shard_id("0", 1), "0-inf");
        assert_eq!(multigres_shard_id("1", 4), "1");
        assert_eq!(multigres_shard_id("0", 0), "0");
    }
}
