//! `cell-controller`: reconciles Cells into multigateway/multiorch Deployments, a local TopoServer when
//! asked for, and the Cell record in Multigres's global topology.

use std::time::Duration;

use clap::Parser;
use multigres_cell_controller::{CRDS, NAME, Settings};
use multigres_runtime::settings::parse_duration;
use multigres_runtime::topology_tls::TopologyTlsArgs;
use multigres_runtime::{CommonArgs, run};
use multigres_topology::{AddressMapping, AllowedHosts};

#[derive(Parser, Debug)]
#[command(name = NAME, version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    topology_tls: TopologyTlsArgs,
    /// Rewrites topology addresses before dialing: `svc.ns.svc:2379=127.0.0.1:23790,...`. For an
    /// operator running outside the cluster (tests, the demo); off unless set. Records written into
    /// the topology keep the in-cluster addresses.
    #[arg(long, env = "MULTIGRES_TOPOLOGY_ADDRESS_MAP", default_value = "")]
    topology_address_map: String,
    /// Topology hosts the operator may dial, comma-separated: exact names or `*.<domain>` (e.g.
    /// `*.svc,etcd.example.com`). Empty allows every host (docs/security.md).
    #[arg(long, env = "MULTIGRES_TOPOLOGY_ALLOWED_HOSTS", default_value = "")]
    topology_allowed_hosts: String,
    /// Bound on each call to a topology server.
    #[arg(long, env = "MULTIGRES_TOPOLOGY_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    topology_timeout: Duration,
    /// Re-check of every Cell (re-registers a removed record, prunes pooler records).
    #[arg(long, env = "MULTIGRES_RESYNC_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    resync_interval: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let address_mapping = AddressMapping::parse(&args.topology_address_map)
        .map_err(|e| anyhow::anyhow!("--topology-address-map: {e}"))?
        .allowing(AllowedHosts::parse(&args.topology_allowed_hosts)?);
    let settings = Settings {
        address_mapping,
        topology_timeout: args.topology_timeout.max(Duration::from_millis(100)),
        topology_tls: args.topology_tls.load()?.clients,
        resync: args.resync_interval.max(Duration::from_secs(1)),
    };
    run::main(NAME, &args.common, CRDS, |started| {
        multigres_cell_controller::run(started, &args.common, settings)
    })
    .await
}
