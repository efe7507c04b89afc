//! How each etcd member starts: its flags, peers and probes.

use super::*;

/// `<pod>.<peer-service>.<namespace>.svc`, the stable DNS name of one member.
pub fn member_host(topo_server: &str, namespace: &str, ordinal: i32) -> String {
    format!(
        "{topo_server}-{ordinal}.{}.{namespace}.svc",
        naming::topo_peer_service(topo_server)
    )
}

/// `https` when the members speak TLS, `http` otherwise.
fn scheme(tls: bool) -> &'static str {
    if tls { "https" } else { "http" }
}

/// etcd's `--initial-cluster`: `<pod>=<scheme>://<pod>.<peer>.<ns>.svc:2380` for every member.
pub fn initial_cluster(topo_server: &str, namespace: &str, replicas: i32, tls: bool) -> String {
    (0..replicas.max(1))
        .map(|i| {
            format!(
                "{topo_server}-{i}={}://{}:{PEER_PORT}",
                scheme(tls),
                member_host(topo_server, namespace, i)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The etcd command line. `$(POD_NAME)` is expanded by the kubelet from the container's env. With
/// `tls`, clients and peers speak TLS and must show a certificate of the operator's topology CA
/// (peers: this TopoServer's own certificate); metrics and health stay plain HTTP for the probes.
pub fn etcd_args(topo_server: &str, namespace: &str, replicas: i32, tls: bool) -> Vec<String> {
    let peer = naming::topo_peer_service(topo_server);
    let self_host = format!("$(POD_NAME).{peer}.{namespace}.svc");
    let scheme = scheme(tls);
    let mut args = vec![
        "--name=$(POD_NAME)".into(),
        format!("--data-dir={DATA_DIR}"),
        format!("--listen-client-urls={scheme}://0.0.0.0:{CLIENT_PORT}"),
        format!("--advertise-client-urls={scheme}://{self_host}:{CLIENT_PORT}"),
        format!("--listen-peer-urls={scheme}://0.0.0.0:{PEER_PORT}"),
        format!("--initial-advertise-peer-urls={scheme}://{self_host}:{PEER_PORT}"),
        format!("--listen-metrics-urls=http://0.0.0.0:{METRICS_PORT}"),
        format!(
            "--initial-cluster={}",
            initial_cluster(topo_server, namespace, replicas, tls)
        ),
        "--initial-cluster-state=new".into(),
        format!("--initial-cluster-token={namespace}-{topo_server}"),
    ];
    if tls {
        let file = |name: &str| format!("{TLS_DIR}/{name}");
        args.extend([
            format!("--cert-file={}", file("tls.crt")),
            format!("--key-file={}", file("tls.key")),
            format!("--trusted-ca-file={}", file("ca.crt")),
            "--client-cert-auth=true".into(),
            format!("--peer-cert-file={}", file("tls.crt")),
            format!("--peer-key-file={}", file("tls.key")),
            format!("--peer-trusted-ca-file={}", file("ca.crt")),
            "--peer-client-cert-auth=true".into(),
            // Every certificate of the topology CA is a valid client; only this server's members
            // are peers.
            format!("--peer-cert-allowed-cn={}", member_common_name(topo_server)),
        ]);
    }
    args
}

/// The common name of a TopoServer's member certificate.
pub fn member_common_name(topo_server: &str) -> String {
    format!("{topo_server}-etcd-member")
}

/// The names a TopoServer's member certificate is valid for: its client Service, as Multigres
/// components and the operator dial it, and every member's peer name.
pub fn member_sans(topo_server: &str, namespace: &str) -> Vec<String> {
    let client = naming::topo_client_service(topo_server);
    let peer = naming::topo_peer_service(topo_server);
    vec![
        client.clone(),
        format!("{client}.{namespace}"),
        format!("{client}.{namespace}.svc"),
        format!("{client}.{namespace}.svc.cluster.local"),
        format!("*.{peer}.{namespace}.svc"),
        format!("*.{peer}.{namespace}.svc.cluster.local"),
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
