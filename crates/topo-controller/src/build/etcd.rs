//! How each etcd member starts: its flags, peers and probes.

use super::*;

/// `<pod>.<peer-service>.<namespace>.svc`, the stable DNS name of one member.
pub fn member_host(topo_server: &str, namespace: &str, ordinal: i32) -> String {
    format!(
        "{topo_server}-{ordinal}.{}.{namespace}.svc",
        naming::topo_peer_service(topo_server)
    )
}

/// etcd's `--initial-cluster`: `<pod>=http://<pod>.<peer>.<ns>.svc:2380` for every member.
pub fn initial_cluster(topo_server: &str, namespace: &str, replicas: i32) -> String {
    (0..replicas.max(1))
        .map(|i| {
            format!(
                "{topo_server}-{i}=http://{}:{PEER_PORT}",
                member_host(topo_server, namespace, i)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The etcd command line. `$(POD_NAME)` is expanded by the kubelet from the container's env.
pub fn etcd_args(topo_server: &str, namespace: &str, replicas: i32) -> Vec<String> {
    let peer = naming::topo_peer_service(topo_server);
    let self_host = format!("$(POD_NAME).{peer}.{namespace}.svc");
    vec![
        "--name=$(POD_NAME)".into(),
        format!("--data-dir={DATA_DIR}"),
        format!("--listen-client-urls=http://0.0.0.0:{CLIENT_PORT}"),
        format!("--advertise-client-urls=http://{self_host}:{CLIENT_PORT}"),
        format!("--listen-peer-urls=http://0.0.0.0:{PEER_PORT}"),
        format!("--initial-advertise-peer-urls=http://{self_host}:{PEER_PORT}"),
        format!("--listen-metrics-urls=http://0.0.0.0:{METRICS_PORT}"),
        format!(
            "--initial-cluster={}",
            initial_cluster(topo_server, namespace, replicas)
        ),
        "--initial-cluster-state=new".into(),
        format!("--initial-cluster-token={namespace}-{topo_server}"),
    ]
}

/// Readiness needs the member to be part of a quorum (`/health`); liveness only that the process
/// answers (`/health?serializable=true` reads locally), so that losing quorum never restarts members,
/// which would only make things worse.
pub fn probes() -> (Probe, Probe, Probe) {
    let probe = |path: &str, period, failures| http_probe(path, METRICS_PORT, period, 5, failures);
    let startup = probe("/health?serializable=true", 5, 60);
    let readiness = probe("/health", 10, 3);
    let liveness = probe("/health?serializable=true", 10, 6);
    (startup, readiness, liveness)
}
