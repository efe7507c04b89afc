//! The status aggregation service: watches every MultigresCluster's children, the topology and the
//! controllers' health, and serves each cluster's aggregate status over gRPC.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use multigres_runtime::settings::{CommonArgs, parse_duration};
use multigres_status_aggregator::engine::{self, CRDS, Settings};
use multigres_status_aggregator::health::parse_endpoints;
use multigres_status_aggregator::server::{self, Hub, TlsFiles};
use multigres_topology::{AddressMapping, AllowedHosts};

#[derive(Parser, Debug)]
#[command(name = "status-aggregator", about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    topology_tls: multigres_runtime::topology_tls::TopologyTlsArgs,
    /// Address of the StatusAggregator gRPC API (and its grpc.health.v1).
    #[arg(long, env = "MULTIGRES_GRPC_ADDR", default_value = "0.0.0.0:9500")]
    grpc_addr: SocketAddr,
    /// PEM certificate of the gRPC API; with --tls-key, the API speaks TLS (plaintext otherwise).
    #[arg(long, env = "MULTIGRES_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "MULTIGRES_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate signed by it.
    #[arg(long, env = "MULTIGRES_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Rewrites topology addresses before dialing (`from=to,...`); tests and the demo only.
    #[arg(long, env = "MULTIGRES_TOPOLOGY_ADDRESS_MAP", default_value = "")]
    topology_address_map: String,
    /// Topology hosts the operator may dial, comma-separated: exact names or `*.<domain>` (e.g.
    /// `*.svc,etcd.example.com`). Empty allows every host (docs/security.md).
    #[arg(long, env = "MULTIGRES_TOPOLOGY_ALLOWED_HOSTS", default_value = "")]
    topology_allowed_hosts: String,
    /// How often the topology is read.
    #[arg(long, env = "MULTIGRES_TOPOLOGY_POLL_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    topology_poll_interval: Duration,
    /// Controllers whose grpc.health.v1 is polled: `name=host:port,...`.
    #[arg(
        long,
        env = "MULTIGRES_CONTROLLER_HEALTH_ENDPOINTS",
        default_value = ""
    )]
    controller_health_endpoints: String,
    /// How often the controllers' health is polled.
    #[arg(long, env = "MULTIGRES_HEALTH_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    health_poll_interval: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings {
        namespace: args.common.watch_namespace.clone(),
        address_mapping: AddressMapping::parse(&args.topology_address_map)?
            .allowing(AllowedHosts::parse(&args.topology_allowed_hosts)?),
        topology_interval: args.topology_poll_interval,
        topology_tls: args.topology_tls.load()?.clients,
        controller_health: parse_endpoints(&args.controller_health_endpoints)
            .map_err(anyhow::Error::msg)?,
        health_interval: args.health_poll_interval,
        ..Settings::default()
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert,
            key,
            client_ca: args.tls_client_ca,
        }),
        _ => None,
    };
    // Fail on bad certificates before anything else starts.
    if let Some(tls) = &tls {
        tls.server_config()?;
    }
    let started = multigres_runtime::run::start("status-aggregator", &args.common, &CRDS).await?;
    let listener = multigres_runtime::health::bind(args.grpc_addr, "status API").await?;
    let (hub, reader) = Hub::new();
    let api = tokio::spawn({
        let shutdown = started.shutdown();
        async move { server::serve(listener, reader, tls.as_ref(), shutdown).await }
    });
    let readiness = started.readiness.clone();
    engine::run(
        started.client.clone(),
        settings,
        hub,
        move || readiness.set_ready(true),
        started.shutdown(),
    )
    .await?;
    api.await??;
    Ok(())
}
