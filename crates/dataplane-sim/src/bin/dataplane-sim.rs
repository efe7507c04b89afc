//! SIMULATION for kwok-based tests and the demo: writes the Pooler records multipooler would write
//! for every Ready pool pod (one PRIMARY per shard). Never run it next to real multipoolers.
//! See the `multigres_dataplane_sim` crate.

use std::time::Duration;

use clap::Parser;
use multigres_runtime::settings::parse_duration;
use multigres_topology::AddressMapping;

#[derive(Parser, Debug)]
#[command(name = "dataplane-sim", about)]
struct Args {
    /// Watch only this namespace (default: all).
    #[arg(long, env = "MULTIGRES_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Rewrites topology addresses before dialing (`from=to,...`).
    #[arg(long, env = "MULTIGRES_TOPOLOGY_ADDRESS_MAP", default_value = "")]
    topology_address_map: String,
    /// Also stand in for multiadmin's SwitchPrimary here (`host:port`).
    #[arg(long)]
    multiadmin_addr: Option<std::net::SocketAddr>,
    /// Also stand in for multiadmin's REST pooler status here (`host:port`), under
    /// `/<namespace>/<cluster>/api/v1/...`.
    #[arg(long)]
    multiadmin_http_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    topology_tls: multigres_runtime::topology_tls::TopologyTlsArgs,
    /// Rewrites every record this often even without changes.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    resync: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = multigres_runtime::telemetry::init("dataplane-sim", false);
    let client = kube::Client::try_default().await?;
    let mapping = AddressMapping::parse(&args.topology_address_map)?;
    tracing::info!("dataplane-sim: SIMULATED multipooler records (test double)");
    multigres_dataplane_sim::run(
        client,
        args.watch_namespace,
        multigres_topology::Dialer::new(
            mapping,
            Duration::from_secs(3),
            args.topology_tls.load()?.clients,
        ),
        args.resync,
        args.multiadmin_addr,
        args.multiadmin_http_addr,
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    )
    .await
}
