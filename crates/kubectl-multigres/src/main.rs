//! `kubectl multigres status <cluster>`: the cluster as a tree, from the current kubeconfig.
//! Installed as a kubectl plugin by putting `kubectl-multigres` on the PATH.

use clap::{Parser, Subcommand, ValueEnum};
use kubectl_multigres::{fetch, restart, tree};

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
    /// Replaces every Postgres pod of the cluster (or of one Shard) once, in the shard controller's
    /// safe order: one pod at a time per pool, replicas first, the primary last after a planned
    /// switchover, one Shard per table group at a time. Follow it with `status`.
    Restart {
        /// The MultigresCluster.
        cluster: String,
        /// Its namespace (default: the kubeconfig's).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Only this Shard (its resource name, as `status -o json` shows it).
        #[arg(long)]
        shard: Option<String>,
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
        Command::Restart {
            cluster,
            namespace,
            shard,
        } => {
            let client = kube::Client::try_default().await?;
            let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
            let at = k8s_openapi::jiff::Timestamp::now().to_string();
            let names =
                restart::shards(&client, &namespace, &cluster, shard.as_deref(), &at).await?;
            println!("restart requested at {at} for {} Shard(s):", names.len());
            for name in names {
                println!("  {name}");
            }
        }
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
