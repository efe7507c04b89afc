//! `topo-controller`: reconciles TopoServers into etcd StatefulSets, Services and PDBs.

use clap::Parser;
use multigres_runtime::{CommonArgs, run};
use multigres_topo_controller::{CRDS, NAME};

#[derive(Parser, Debug)]
#[command(name = NAME, version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    topology_tls: multigres_runtime::topology_tls::TopologyTlsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let topology_ca = args.topology_tls.load()?.authority;
    run::main(NAME, &args.common, CRDS, |started| {
        multigres_topo_controller::run(started, &args.common, topology_ca)
    })
    .await
}
