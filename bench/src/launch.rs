//! The operator as the benchmark runs it: the controllers as release builds, each as a local
//! process with a token of its own chart's ServiceAccount (the pieces of `multigres_e2e::stack`),
//! watching only the scenario's namespace, plus the data-plane simulator.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use multigres_e2e::charts::OPERATOR_NAMESPACE;
use multigres_e2e::stack::{self, CONTROLLERS, DATAPLANE_SIM};
use multigres_e2e::{OperatorProcess, spawn_operator};

use crate::procs;

/// One running process of the operator.
pub struct Running {
    /// `shard-controller-1` for the second replica; the binary's name otherwise.
    pub name: String,
    pub pid: i32,
    pub http_addr: String,
    pub log: PathBuf,
    _process: OperatorProcess,
}

pub struct Operator {
    pub processes: Vec<Running>,
    _sim: Option<OperatorProcess>,
}

pub struct Launch<'a> {
    pub target_dir: &'a Path,
    pub admin_kubeconfig: &'a Path,
    pub admin: &'a Client,
    pub work_dir: &'a Path,
    pub namespace: &'a str,
    pub address_map: &'a str,
    /// `--multiadmin-addr` of the simulator.
    pub sim_admin: &'a str,
    pub shard_replicas: u32,
    /// Split Shards between shard-controller replicas (always with more than one).
    pub partition: bool,
    pub tag: &'a str,
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Leases left by the controllers of the previous scenario (killed, not stopped), so that a new
/// leader does not wait for an old one's Lease to expire.
pub async fn clear_leases(admin: &Client) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(admin.clone(), OPERATOR_NAMESPACE);
    for l in leases.list(&ListParams::default()).await? {
        if let Some(name) = l.metadata.name {
            let _ = leases.delete(&name, &DeleteParams::default()).await;
        }
    }
    Ok(())
}

pub async fn start(l: &Launch<'_>) -> Result<Operator> {
    let logs = l.work_dir.join("logs").join(l.tag);
    let kubeconfigs = l.work_dir.join("kubeconfigs");
    std::fs::create_dir_all(&kubeconfigs)?;
    let (server, ca) = stack::cluster_endpoint(l.admin_kubeconfig)?;
    let mut processes = Vec::new();
    for c in CONTROLLERS {
        let bin = l.target_dir.join(c.binary);
        if !bin.is_file() {
            bail!(
                "{} is not built: run `cargo build --release --bins` first",
                bin.display()
            );
        }
        let token =
            stack::service_account_token(l.admin, OPERATOR_NAMESPACE, c.service_account, 24 * 3600)
                .await?;
        let kubeconfig = kubeconfigs.join(format!("{}.yaml", c.service_account));
        stack::write_token_kubeconfig(&kubeconfig, &server, &ca, c.service_account, &token)?;
        let replicas = if c.binary == "shard-controller" {
            l.shard_replicas.max(1)
        } else {
            1
        };
        for r in 0..replicas {
            let name = if replicas > 1 {
                format!("{}-{r}", c.binary)
            } else {
                c.binary.to_string()
            };
            let identity = format!("{name}-{}", l.tag);
            let http = format!("127.0.0.1:{}", free_port()?);
            let mut args = vec![
                format!("--http-addr={http}"),
                format!("--grpc-health-addr=127.0.0.1:{}", free_port()?),
                "--log-json=false".to_string(),
                format!("--lease-namespace={OPERATOR_NAMESPACE}"),
                format!("--identity={identity}"),
                format!("--watch-namespace={}", l.namespace),
            ];
            if c.leader_elect {
                args.push("--leader-elect".into());
            }
            if c.topology {
                args.push(format!("--topology-address-map={}", l.address_map));
            }
            if c.binary == "shard-controller" {
                // The simulator serves every table group.
                args.push("--hold-unserved-shards=false".into());
            }
            if c.binary == "shard-controller" && (l.partition || replicas > 1) {
                args.push("--partition".into());
            }
            if c.binary == "status-aggregator" {
                args.push(format!("--grpc-addr=127.0.0.1:{}", free_port()?));
            }
            let process = spawn_operator(&name, &bin, &kubeconfig, &logs, &args)?;
            let marker = format!("--identity={identity}");
            let pid = wait_pid(&marker).await?;
            processes.push(Running {
                name,
                pid,
                http_addr: http,
                log: process.log.clone(),
                _process: process,
            });
        }
    }
    // Without the simulator no Shard ever has a primary: the run would only time out.
    let sim_bin = l.target_dir.join(DATAPLANE_SIM);
    if !sim_bin.is_file() {
        anyhow::bail!(
            "{} is not built: run `cargo build --release --bins -p multigres-dataplane-sim` first",
            sim_bin.display()
        );
    }
    let args = vec![
        format!("--topology-address-map={}", l.address_map),
        format!("--watch-namespace={}", l.namespace),
        format!("--multiadmin-addr={}", l.sim_admin),
    ];
    let sim = Some(spawn_operator(
        DATAPLANE_SIM,
        &sim_bin,
        l.admin_kubeconfig,
        &logs,
        &args,
    )?);
    Ok(Operator {
        processes,
        _sim: sim,
    })
}

async fn wait_pid(marker: &str) -> Result<i32> {
    for _ in 0..100 {
        if let Some(pid) = procs::find_child(marker) {
            return Ok(pid);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    bail!("no child process with {marker}")
}

/// Waits until every controller answers `/readyz` with 200 (caches synced), polling its
/// endpoint: a process has no watchable readiness. One that does not within `timeout` is reported
/// and the run goes on.
pub async fn wait_ready(op: &Operator, timeout: std::time::Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    for p in &op.processes {
        loop {
            if ready(&p.http_addr).await {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                // Measured anyway: a controller that never reports ready is a finding, not a
                // reason to stop the benchmark.
                eprintln!(
                    "  warning: {} not ready within {timeout:?}; see {}",
                    p.name,
                    p.log.display()
                );
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

async fn ready(addr: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    if s.write_all(format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf).await;
    buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
}

/// The folder of the release binaries next to this one.
pub fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("the benchmark binary has no folder")?
        .to_path_buf())
}
