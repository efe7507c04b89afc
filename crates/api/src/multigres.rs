//! The Multigres version the operator is built and tested against, and the few facts about it that
//! more than one controller needs. `docs/multigres-version.md` says what this version supports.

/// The pinned Multigres commit: flags, ports and topology records follow it.
pub const MULTIGRES_COMMIT: &str = "6bd80b9b251e69be19330837318b037d959e2df7";
/// Image with every Multigres binary on PATH, at the pinned commit.
pub const MULTIGRES_IMAGE: &str = "ghcr.io/multigres/multigres:sha-6bd80b9";
/// PostgreSQL 17 + pgBackRest + pgctld, at the pinned commit: the postgres container's image.
pub const PGCTLD_IMAGE: &str = "ghcr.io/multigres/pgctld:sha-6bd80b9";

/// Table group and shard the pinned Multigres serves; multipooler exits on any other.
pub const SERVED_TABLE_GROUP: &str = "default";
pub const SERVED_SHARD: &str = "0-inf";

/// Where every pool pod mounts its shard's pgBackRest repository (a filesystem backup location).
pub const BACKUP_REPOSITORY_PATH: &str = "/backups";

/// multiadmin's gRPC port: the cluster's admin API, which the shard controller calls for a planned
/// switchover (`SwitchPrimary`).
pub const MULTIADMIN_GRPC_PORT: i32 = 15990;

/// multiadmin's HTTP port (`/live`, `/ready`).
pub const MULTIADMIN_HTTP_PORT: i32 = 15000;
pub const MULTIORCH_HTTP_PORT: i32 = 15300;
pub const MULTIORCH_GRPC_PORT: i32 = 15370;
/// A pool pod's ports: pgctld (the postgres container), multipooler, Postgres and pgBackRest's TLS
/// server (pgctld runs it).
pub const PGCTLD_GRPC_PORT: i32 = 15470;
pub const PGCTLD_HTTP_PORT: i32 = 15400;
pub const POOLER_GRPC_PORT: i32 = 15270;
pub const POOLER_HTTP_PORT: i32 = 15200;
pub const PG_PORT: i32 = 5432;
pub const PGBACKREST_PORT: i32 = 8432;
/// etcd's peer port and its `--listen-metrics-urls` port (`/metrics`, `/health`, no TLS or auth).
pub const TOPO_PEER_PORT: i32 = 2380;
pub const TOPO_METRICS_PORT: i32 = 2381;

/// The one name every Multigres gRPC server's certificate carries and every gRPC client verifies
/// (`--multipooler-grpc-server-name`): the servers register pod IPs and pod DNS names in the
/// topology, and one process's client verifies one name for all of them (docs/security.md).
pub const GRPC_SERVER_NAME: &str = "multigres-internal";
/// Where a pod mounts the cluster's TLS Secret (`ca.crt`, `tls.crt`, `tls.key`).
pub const TLS_DIR: &str = "/etc/multigres/tls";

/// The flags with which a Multigres gRPC server speaks mutual TLS: only clients with a certificate
/// of the cluster's CA get through.
pub fn grpc_server_tls_flags() -> [(&'static str, String); 3] {
    [
        ("--grpc-cert", format!("{TLS_DIR}/tls.crt")),
        ("--grpc-key", format!("{TLS_DIR}/tls.key")),
        ("--grpc-ca", format!("{TLS_DIR}/ca.crt")),
    ]
}

/// The flags with which multigateway, multiorch and multiadmin dial the other components' gRPC
/// (multipooler, multigateway, multiorch) over mutual TLS.
pub fn grpc_client_tls_flags() -> [(&'static str, String); 4] {
    [
        ("--multipooler-grpc-cert", format!("{TLS_DIR}/tls.crt")),
        ("--multipooler-grpc-key", format!("{TLS_DIR}/tls.key")),
        ("--multipooler-grpc-ca", format!("{TLS_DIR}/ca.crt")),
        (
            "--multipooler-grpc-server-name",
            GRPC_SERVER_NAME.to_string(),
        ),
    ]
}

/// multigateway's TLS for its Postgres clients: offered, and required when `require`.
pub fn gateway_pg_tls_flags(require: bool) -> Vec<(&'static str, String)> {
    let mut flags = vec![
        ("--pg-tls-cert-file", format!("{TLS_DIR}/tls.crt")),
        ("--pg-tls-key-file", format!("{TLS_DIR}/tls.key")),
    ];
    if require {
        flags.push(("--pg-require-ssl", "true".to_string()));
    }
    flags
}

/// multigateway's Postgres listener.
pub const GATEWAY_PG_PORT: i32 = 5432;
/// multigateway's second Postgres listener, which routes reads to replicas.
pub const GATEWAY_PG_REPLICA_PORT: i32 = 5433;
pub const GATEWAY_HTTP_PORT: i32 = 15001;
pub const GATEWAY_GRPC_PORT: i32 = 15991;
/// What a gateway Service exposes, by port name.
pub const GATEWAY_SERVICE_PORTS: [(&str, i32); 4] = [
    ("postgres", GATEWAY_PG_PORT),
    ("postgres-ro", GATEWAY_PG_REPLICA_PORT),
    ("grpc", GATEWAY_GRPC_PORT),
    ("http", GATEWAY_HTTP_PORT),
];

/// Where every Multigres component serves Prometheus metrics: its OpenTelemetry autoexport
/// exporter, switched on by [`metrics_env`] (off by default in the binaries; docs/monitoring.md).
pub const METRICS_PORT: i32 = 9464;
/// pgctld's metrics in a pool pod, whose multipooler already holds [`METRICS_PORT`].
pub const PGCTLD_METRICS_PORT: i32 = 9465;
/// Container port names a PodMonitor scrapes (at most 15 characters, unique in a pod).
pub const METRICS_PORT_NAME: &str = "metrics";
pub const PGCTLD_METRICS_PORT_NAME: &str = "pgctld-metrics";
/// PostgreSQL's own statistics, from the postgres_exporter sidecar of a pool pod (its usual port).
pub const POSTGRES_EXPORTER_PORT: i32 = 9187;
pub const POSTGRES_EXPORTER_PORT_NAME: &str = "pg-metrics";

/// The environment with which a Multigres binary serves Prometheus metrics on `port`, on every
/// address of the pod: OpenTelemetry's autoexport reads these (docs/monitoring.md).
pub fn metrics_env(port: i32) -> [(&'static str, String); 3] {
    [
        ("OTEL_METRICS_EXPORTER", "prometheus".to_string()),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "0.0.0.0".to_string()),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", port.to_string()),
    ]
}

/// The flags with which every Multigres component finds the global topology (docs/multigres-version.md).
pub fn global_topology_flags(address: &str, root: &str) -> [(&'static str, String); 2] {
    [
        ("--topo-global-server-addresses", address.to_string()),
        ("--topo-global-root", root.to_string()),
    ]
}

/// multipooler registers as `<cell>_<service-id>`, a Postgres application name (at most 63 bytes), so
/// the id is short: `p-` and 8 hex digits of an FNV-1a hash of the pod name, stable across restarts.
pub fn pooler_service_id(pod_name: &str) -> String {
    let hash = pod_name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("p-{hash:08x}")
}

/// The shard id Multigres uses (a key range): one shard covers the whole range, `0-inf`. The Shard
/// resource keeps the CR definition's name (`0`, `1`, ...).
pub fn multigres_shard_id(shard_name: &str, shard_count: u32) -> String {
    if shard_count <= 1 {
        SERVED_SHARD.to_string()
    } else {
        shard_name.to_string()
    }
}

/// What of `database`/`table_group`/`shard_count` the pinned Multigres cannot serve yet, one line per
/// limit; empty when it serves all of it. Objects are still created as the API describes.
pub fn unserved(table_group: &str, shard_count: u32) -> Vec<String> {
    let mut out = Vec::new();
    if table_group != SERVED_TABLE_GROUP {
        out.push(format!(
            "table group {table_group:?}: Multigres {} serves only table group {SERVED_TABLE_GROUP:?}",
            short_commit()
        ));
    }
    if shard_count > 1 {
        out.push(format!(
            "{shard_count} shards: Multigres {} serves one shard ({SERVED_SHARD}) per table group",
            short_commit()
        ));
    }
    out
}

/// What of a Shard the pinned Multigres cannot serve (its table group, or a key range other than
/// the whole one).
pub fn unserved_shard(table_group: &str, key_range: &str) -> Vec<String> {
    let shards = if key_range == SERVED_SHARD { 1 } else { 2 };
    unserved(table_group, shards)
}

/// Condition type on TableGroups, Shards and MultigresClusters: whether the pinned Multigres serves
/// what the object describes.
pub const SERVED_CONDITION: &str = "MultigresServed";

/// Status, reason and message of the `MultigresServed` condition for `limits` (from `unserved`).
pub fn served_condition(limits: &[String]) -> (bool, &'static str, String) {
    if limits.is_empty() {
        return (
            true,
            "Served",
            format!("Multigres {} serves this", short_commit()),
        );
    }
    (
        false,
        "NotServedByMultigres",
        format!(
            "{}. The resources exist as specified; the shard controller holds their pods unless it runs \
             with --hold-unserved-shards=false, for a Multigres that serves them \
             (docs/multigres-version.md)",
            limits.join("; ")
        ),
    )
}

/// The first 7 hex digits of the pinned commit, as image tags spell it.
pub fn short_commit() -> &'static str {
    &MULTIGRES_COMMIT[..7]
}

/// The volume of the cluster's TLS Secret (`tls_secret`). Readable by every user of the pod: the
/// cell's pods set no `fsGroup`, and each pod runs one user.
pub fn tls_volume(tls_secret: &str) -> k8s_openapi::api::core::v1::Volume {
    secret_volume(TLS_VOLUME, tls_secret)
}

/// Where a container reads [`tls_volume`]: [`TLS_DIR`], read-only.
pub fn tls_volume_mount() -> k8s_openapi::api::core::v1::VolumeMount {
    read_only_mount(TLS_VOLUME, TLS_DIR)
}

/// Where a pod mounts the client certificate for the cluster's topology servers
/// (`GlobalTopologyRef::tls_secret_name`).
pub const TOPOLOGY_TLS_DIR: &str = "/etc/multigres/topology-tls";

/// The flags with which a Multigres component dials etcd over TLS with a client certificate. The
/// pinned Multigres applies them to the global and every cell topology of the process.
pub fn topology_tls_flags() -> [(&'static str, String); 3] {
    [
        (
            "--topo-etcd-tls-cert",
            format!("{TOPOLOGY_TLS_DIR}/tls.crt"),
        ),
        ("--topo-etcd-tls-key", format!("{TOPOLOGY_TLS_DIR}/tls.key")),
        ("--topo-etcd-tls-ca", format!("{TOPOLOGY_TLS_DIR}/ca.crt")),
    ]
}

/// The volume of the topology client certificate, `secret`, readable as [`tls_volume`] is.
pub fn topology_tls_volume(secret: &str) -> k8s_openapi::api::core::v1::Volume {
    secret_volume(TOPOLOGY_TLS_VOLUME, secret)
}

/// Where a container reads [`topology_tls_volume`]: [`TOPOLOGY_TLS_DIR`], read-only.
pub fn topology_tls_volume_mount() -> k8s_openapi::api::core::v1::VolumeMount {
    read_only_mount(TOPOLOGY_TLS_VOLUME, TOPOLOGY_TLS_DIR)
}

fn secret_volume(volume: &str, secret: &str) -> k8s_openapi::api::core::v1::Volume {
    k8s_openapi::api::core::v1::Volume {
        name: volume.to_string(),
        secret: Some(k8s_openapi::api::core::v1::SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            default_mode: Some(0o444),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn read_only_mount(volume: &str, path: &str) -> k8s_openapi::api::core::v1::VolumeMount {
    k8s_openapi::api::core::v1::VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        read_only: Some(true),
        ..Default::default()
    }
}

const TOPOLOGY_TLS_VOLUME: &str = "topology-tls";
const TLS_VOLUME: &str = "multigres-tls";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids_are_short_stable_and_distinct() {
        let a = pooler_service_id(
            "example-multigres-cluster-production-9aa4c6a9-0-replica-us-west-2-0",
        );
        assert_eq!(a.len(), 10);
        assert!(a.starts_with("p-"));
        assert_eq!(
            a,
            pooler_service_id(
                "example-multigres-cluster-production-9aa4c6a9-0-replica-us-west-2-0"
            )
        );
        assert_ne!(
            a,
            pooler_service_id(
                "example-multigres-cluster-production-9aa4c6a9-0-replica-us-west-2-1"
            )
        );
        // FNV-1a 32 of the empty string is the offset basis.
        assert_eq!(pooler_service_id(""), "p-811c9dc5");
        assert_eq!(pooler_service_id("a"), "p-e40c292c");
    }

    #[test]
    fn one_shard_is_the_whole_key_range() {
        assert_eq!(multigres_shard_id("0", 1), "0-inf");
        assert_eq!(multigres_shard_id("1", 2), "1");
    }

    #[test]
    fn unserved_names_each_limit() {
        assert!(unserved("default", 1).is_empty());
        let limits = unserved("orders", 2);
        assert_eq!(limits.len(), 2);
        assert!(limits[0].contains("\"orders\"") && limits[0].contains("6bd80b9"));
        assert!(limits[1].contains("2 shards"));
    }
}
