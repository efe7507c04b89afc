//! `topo-controller`: reconciles TopoServers into etcd StatefulSets, Services and PDBs.

use clap::Parser;
use multigres_runtime::CommonArgs;

#[derive(Parser, Debug)]
#[command(name = "topo-controller", version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = multigres_runtime::run::start(
        multigres_topo_controller::NAME,
        &args.common,
        &["toposervers.multigres.com"],
    )
    .await?;
    multigres_topo_controller::run(started, &args.common).await
}
