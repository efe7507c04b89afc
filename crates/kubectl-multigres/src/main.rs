//! `kubectl multigres status <cluster>`: the cluster as a tree, from the current kubeconfig.
//! Installed as a kubectl plugin by putting `kubectl-multigres` on the PATH.

use clap::{Parser, Subcommand, ValueEnum};
use kubectl_multigres::{fetch, tree};

#[derive(Parser)]
#[command(
    name = "kubectl-multigres",
    version,
    about = "Multigres clusters run by the operator"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The cluster as a tree: conditions, primaries per shard, pods not Ready, and why.
    Status {
        /// The MultigresCluster.
        cluster: String,
        /// Its namespace (default: the kubeconfig's).
        #[arg(short, long)]
        namespace: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Status {
            cluster,
            namespace,
            output,
        } => {
            let client = kube::Client::try_default().await?;
            let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
            let objects = fetch::cluster(&client, &namespace, &cluster).await?;
            let tree = tree::build(&objects);
            match output {
                Output::Text => print!("{}", tree::render(&tree)),
                Output::Json => println!("{}", serde_json::to_string_pretty(&tree)?),
            }
        }
    }
    Ok(())
}
