use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    multigres_cluster_controller::run(multigres_cluster_controller::Args::parse()).await
}
