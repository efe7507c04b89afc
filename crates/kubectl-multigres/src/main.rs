//! `kubectl multigres status|restart|switchover|psql|backup|report <cluster>`, from the current
//! kubeconfig (docs/operations.md). Installed as a kubectl plugin by putting `kubectl-multigres` on
//! the PATH.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use kubectl_multigres::{backup, fetch, psql, replication, report, restart, switchover, tree};
use multigres_api::{BackupPhase, BackupTarget, BackupType, SwitchoverResult};

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
    /// The cluster as a tree: conditions, primaries per shard, lagging replicas, pods not Ready,
    /// and why. Replication comes from the cluster's multiadmin, through a port-forward.
    Status {
        /// The MultigresCluster.
        cluster: String,
        /// Its namespace (default: the kubeconfig's).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Ask this multiadmin HTTP base URL (e.g. `http://localhost:15000` behind your own
        /// `kubectl port-forward`) instead of port-forwarding to a multiadmin pod.
        #[arg(long)]
        admin_url: Option<String>,
        /// Leave replication out (no multiadmin questions).
        #[arg(long)]
        no_replication: bool,
        /// A standby further behind its primary than this many bytes of WAL is lagging.
        #[arg(long, default_value_t = replication::DEFAULT_MAX_LAG_BYTES)]
        max_lag_bytes: u64,
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
    /// A planned change of a Shard's primary, carried out by the shard controller (only while the
    /// primary is known and a Ready standby exists); waits for the outcome and prints from → to.
    Switchover {
        /// The MultigresCluster.
        cluster: String,
        /// Its namespace (default: the kubeconfig's).
        #[arg(short, long)]
        namespace: Option<String>,
        /// The Shard (its resource name, as `status -o json` shows it).
        #[arg(long)]
        shard: String,
        /// The pod that should become the primary: a Ready pod of a replica pool of the Shard.
        #[arg(long)]
        to: Option<String>,
        /// How long to wait for the outcome, in seconds.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// psql through a cell's multigateway with the cluster's credentials: a port-forward to a Ready
    /// gateway pod, or --address; the password goes to psql in its environment only.
    Psql {
        /// The MultigresCluster.
        cluster: String,
        /// Its namespace (default: the kubeconfig's).
        #[arg(short, long)]
        namespace: Option<String>,
        /// The cell whose gateway to use (default: the first cell with a Ready gateway pod).
        #[arg(long)]
        cell: Option<String>,
        /// The database (default: the cluster's first).
        #[arg(long)]
        database: Option<String>,
        /// Connect to host:port (a LoadBalancer, a NodePort, or a Service from inside the cluster)
        /// instead of port-forwarding.
        #[arg(long)]
        address: Option<String>,
        /// Print what would run (without the password) instead of running it.
        #[arg(long, visible_alias = "dry-run")]
        print_env: bool,
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Arguments for psql, after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// A pgBackRest backup of a database (or of one table group or shard) through a Backup object,
    /// which the operator carries out; --wait follows it to the end (docs/backup-restore.md).
    Backup {
        /// The MultigresCluster.
        cluster: String,
        /// Its namespace (default: the kubeconfig's).
        #[arg(short, long)]
        namespace: Option<String>,
        /// The database.
        #[arg(long)]
        database: String,
        /// Only this table group.
        #[arg(long)]
        table_group: Option<String>,
        /// Only this shard of --table-group (index or key range).
        #[arg(long, requires = "table_group")]
        shard: Option<String>,
        #[arg(long = "type", value_enum, default_value_t = Kind::Full)]
        kind: Kind,
        /// Back up on the primary instead of a replica.
        #[arg(long)]
        force_primary: bool,
        /// The Backup's name (default `<cluster>-<database>-<time>`).
        #[arg(long)]
        name: Option<String>,
        /// Wait up to this many seconds for Completed or Failed (0: do not wait).
        #[arg(long, default_value_t = 0)]
        wait: u64,
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// A support bundle: the cluster, its templates, children and workloads as YAML, their Events,
    /// the operator's logs and the status tree; Secrets by name only.
    Report {
        /// The MultigresCluster.
        cluster: String,
        /// Its namespace (default: the kubeconfig's).
        #[arg(short, long)]
        namespace: Option<String>,
        /// A directory (default `multigres-report-<cluster>-<time>`), or a file ending in .tar.gz.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Where the operator's controllers run.
        #[arg(long, default_value = "multigres-system")]
        operator_namespace: String,
        /// Print the bundle's path as JSON (`{"path": ...}`) instead of a sentence.
        #[arg(short = 'o', long = "format", value_enum, default_value_t = Output::Text)]
        format: Output,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Full,
    Differential,
    Incremental,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

async fn client_and_namespace(namespace: Option<String>) -> anyhow::Result<(kube::Client, String)> {
    let client = kube::Client::try_default().await?;
    let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
    Ok((client, namespace))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Switchover {
            cluster,
            namespace,
            shard,
            to,
            timeout,
            output,
        } => {
            let (client, namespace) = client_and_namespace(namespace).await?;
            let at = k8s_openapi::jiff::Timestamp::now().to_string();
            if let Output::Text = output {
                eprintln!(
                    "switchover of Shard {namespace}/{shard} requested at {at}; waiting for the shard controller (up to {timeout}s)"
                );
            }
            let report = switchover::run(
                &client,
                &namespace,
                &cluster,
                &shard,
                to.as_deref(),
                &at,
                Duration::from_secs(timeout),
            )
            .await?;
            match output {
                Output::Text => print!("{}", switchover::render(&report)),
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            if report.outcome.result != SwitchoverResult::Succeeded {
                std::process::exit(1);
            }
        }
        Command::Psql {
            cluster,
            namespace,
            cell,
            database,
            address,
            print_env,
            output,
            args,
        } => {
            let (client, namespace) = client_and_namespace(namespace).await?;
            let want = psql::Want {
                cell: cell.as_deref(),
                database: database.as_deref(),
                address: address.as_deref(),
            };
            let (session, creds) = psql::session(&client, &namespace, &cluster, &want).await?;
            if print_env {
                let printed = psql::printed(&session, &args);
                match output {
                    Output::Text => print!("{}", psql::render(&printed)),
                    Output::Json => println!("{}", serde_json::to_string_pretty(&printed)?),
                }
                return Ok(());
            }
            if let psql::Route::PortForward { pod, port } = &session.route {
                eprintln!("psql through pod {namespace}/{pod}:{port} (port-forward)");
            }
            let code = psql::run(&client, &namespace, &session, &creds, &args).await?;
            std::process::exit(code);
        }
        Command::Backup {
            cluster,
            namespace,
            database,
            table_group,
            shard,
            kind,
            force_primary,
            name,
            wait,
            output,
        } => {
            let (client, namespace) = client_and_namespace(namespace).await?;
            let target = BackupTarget {
                cluster,
                database,
                table_group,
                shard,
                r#type: match kind {
                    Kind::Full => BackupType::Full,
                    Kind::Differential => BackupType::Differential,
                    Kind::Incremental => BackupType::Incremental,
                },
                force_primary: force_primary.then_some(true),
            };
            let at = k8s_openapi::jiff::Timestamp::now().to_string();
            let wanted = backup::backup(name.as_deref(), target, &at);
            let wait = (wait > 0).then(|| Duration::from_secs(wait));
            let got = backup::run(&client, &namespace, &wanted, wait).await?;
            match output {
                Output::Text => print!("{}", backup::render(&got)),
                Output::Json => println!("{}", serde_json::to_string_pretty(&got)?),
            }
            let phase = got.status.as_ref().and_then(|s| s.phase);
            if wait.is_some() && phase != Some(BackupPhase::Completed) {
                std::process::exit(1);
            }
        }
        Command::Report {
            cluster,
            namespace,
            output,
            operator_namespace,
            format,
        } => {
            let (client, namespace) = client_and_namespace(namespace).await?;
            let collected =
                report::collect(&client, &namespace, &cluster, &operator_namespace).await?;
            let output = output.unwrap_or_else(|| {
                let at = k8s_openapi::jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
                PathBuf::from(format!("multigres-report-{cluster}-{at}"))
            });
            let files = report::bundle(&collected);
            let written = report::write(&files, &output)?;
            match format {
                Output::Text => println!(
                    "support bundle of {namespace}/{cluster} written to {} ({} files; Secrets by name only)",
                    written.display(),
                    files.len()
                ),
                Output::Json => println!(
                    "{}",
                    serde_json::json!({"path": written, "files": files.len()})
                ),
            }
        }
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
            admin_url,
            no_replication,
            max_lag_bytes,
            output,
        } => {
            let client = kube::Client::try_default().await?;
            let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
            let objects = fetch::cluster(&client, &namespace, &cluster).await?;
            let mut tree = tree::build(&objects);
            if !no_replication {
                let route =
                    admin_url.map_or(fetch::AdminRoute::PortForward, fetch::AdminRoute::Url);
                let replication = fetch::replication(&client, &objects, &route, max_lag_bytes)
                    .await
                    .map_err(|e| format!("{e:#}"));
                tree::attach_replication(&mut tree, replication);
            }
            match output {
                Output::Text => print!("{}", tree::render(&tree)),
                Output::Json => println!("{}", serde_json::to_string_pretty(&tree)?),
            }
        }
    }
    Ok(())
}
