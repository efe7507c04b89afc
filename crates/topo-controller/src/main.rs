//! `topo-controller`: reconciles TopoServers into etcd StatefulSets, Services and PDBs.

use clap::Parser;
use multigres_runtime::{CommonArgs, leader};

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
    // With --leader-elect, a standby starts nothing (no watches; ready: see
    // leader::run_if_enabled_until) until it leads; losing the Lease returns an error, so the process
    // exits non-zero and restarts clean.
    let (client, readiness, stop) = (
        started.client.clone(),
        started.readiness.clone(),
        started.shutdown(),
    );
    let work = multigres_topo_controller::run(started, &args.common);
    leader::run_if_enabled_until(
        client,
        &args.common,
        multigres_topo_controller::NAME,
        &readiness,
        stop,
        work,
    )
    .await?
    .unwrap_or(Ok(()))
}
