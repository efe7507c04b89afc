//! `tablegroup-controller`: turns each TableGroup into one Shard per partition.

use clap::Parser;
use multigres_runtime::{CommonArgs, run};
use multigres_tablegroup_controller::{CRDS, NAME};

#[derive(Parser)]
#[command(name = NAME, version, about = "Turns each TableGroup into one Shard per partition")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    run::main(NAME, &args.common, CRDS, |started| {
        multigres_tablegroup_controller::run(started, &args.common)
    })
    .await
}
