//! `demo up`: the local control plane, the operator installed with Helm (its Deployments at zero
//! replicas), every controller as a local process with its chart's ServiceAccount token, an etcd per
//! managed TopoServer, the data-plane simulator, then the CR definition's example cluster, with a
//! progress line every few seconds until it is Available, and the resulting tree.
//! `demo down`: stops all of it.
//!
//! Everything lives in `<repo>/.demo` (or `$MULTIGRES_DEMO_DIR`): kubeconfigs, logs, pid file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use multigres_api::MultigresCluster;
use multigres_e2e::{charts, progress, samples, stack};

const PROGRESS_EVERY: Duration = Duration::from_secs(3);

fn demo_dir() -> PathBuf {
    std::env::var_os("MULTIGRES_DEMO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| charts::repo_root().join(".demo"))
}

fn main() {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    let dir = demo_dir();
    let result = std::fs::create_dir_all(&dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| match cmd.as_str() {
            "up" => tokio::runtime::Runtime::new()?.block_on(up(&dir)),
            "down" => down(&dir),
            _ => bail!("usage: demo up|down"),
        });
    if let Err(e) = result {
        eprintln!("demo {cmd}: {e:#}");
        std::process::exit(1);
    }
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name(name))
}

fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MULTIGRES_E2E_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let script = charts::repo_root().join("e2e/build-binaries.sh");
    let out = Command::new("bash").arg(&script).output()?;
    if !out.status.success() {
        bail!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8(out.stdout)?;
    Ok(PathBuf::from(
        stdout.lines().last().unwrap_or_default().trim(),
    ))
}

fn step(started: Instant, text: &str) {
    println!("[{:>5.1}s] {text}", started.elapsed().as_secs_f64());
}

async fn up(dir: &Path) -> Result<()> {
    let started = Instant::now();
    let bin = bin_dir()?;
    let kubeconfig = dir.join("kubeconfig");
    let pid_file = dir.join("stack.pids");
    let stopped = stack::stop_detached(&pid_file)?;
    if !stopped.is_empty() {
        step(
            started,
            &format!(
                "stopped the previous demo's processes: {}",
                stopped.join(", ")
            ),
        );
    }

    // 1. The control plane (reused when one is already running from this folder).
    if control_plane_running(dir) && kubeconfig.exists() {
        step(started, "reusing the running control plane");
    } else {
        let status = Command::new(sibling("local-cluster")?)
            .args(["up", "--detach", "--kubeconfig"])
            .arg(&kubeconfig)
            .env("MULTIGRES_E2E_BIN", &bin)
            .status()
            .context("starting local-cluster")?;
        if !status.success() {
            bail!(
                "local-cluster up failed; see {}",
                dir.join("local-cluster.log").display()
            );
        }
    }
    step(
        started,
        &format!(
            "control plane up: export KUBECONFIG={}",
            kubeconfig.display()
        ),
    );
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    let admin = Client::try_from(config)?;

    // 2. The operator, through the umbrella chart.
    let helm = bin.join("helm");
    charts::build_dependencies(&helm)?;
    charts::install_operator(&helm, &kubeconfig, &charts::zero_replicas())?;
    step(
        started,
        &format!(
            "helm: release {} installed in {} (CRDs, admission policies, RBAC; Deployments at replicas 0)",
            charts::RELEASE,
            charts::OPERATOR_NAMESPACE
        ),
    );

    // 3. The controllers as local processes, each with its chart's ServiceAccount token.
    let sample = samples::sample_cluster()?;
    let target_dir = sibling("demo")?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let opts = stack::Options {
        bin_dir: bin.clone(),
        target_dir,
        work_dir: dir.to_path_buf(),
        admin_kubeconfig: kubeconfig.clone(),
        token_seconds: 24 * 3600,
        cluster_namespace: sample.namespace.clone(),
        cluster_name: sample.name.clone(),
        local_topo_cells: sample.local_topo_cells.clone(),
        launch: stack::Launch::Detached {
            pid_file: pid_file.clone(),
        },
        simulator: true,
        topology_ca: Some(charts::topology_ca(&admin, &dir.join("topology-ca")).await?),
    };
    let running = stack::start(&opts, &admin).await?;
    for (name, log) in &running.started {
        step(
            started,
            &format!("started {name:<22} log: {}", log.display()),
        );
    }
    if !running.missing.is_empty() {
        step(
            started,
            &format!("NOT BUILT (skipped): {}", running.missing.join(", ")),
        );
    }
    step(
        started,
        &format!("topology address map: {}", running.address_map),
    );

    // 4. The example.
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(sample.namespace.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let namespaces = Api::<Namespace>::all(admin.clone());
    if namespaces
        .get_opt(&sample.namespace)
        .await?
        .is_some_and(|n| n.metadata.deletion_timestamp.is_some())
    {
        step(
            started,
            &format!("waiting for the old namespace {} to go", sample.namespace),
        );
        multigres_e2e::wait_deleted(&namespaces, &sample.namespace, Duration::from_secs(120))
            .await?;
    }
    namespaces
        .patch(
            &sample.namespace,
            &PatchParams::apply("multigres-demo"),
            &Patch::Apply(&ns),
        )
        .await?;
    let files = samples::sample_files()?;
    let n = samples::apply_files(&admin, &files, &sample.namespace).await?;
    step(
        started,
        &format!(
            "applied {n} objects from deploy/samples/ into namespace {}",
            sample.namespace
        ),
    );

    // 5. Converging.
    let timeout = std::env::var("MULTIGRES_DEMO_TIMEOUT")
        .ok()
        .and_then(|t| t.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(300));
    let clusters = Api::<MultigresCluster>::namespaced(admin.clone(), &sample.namespace);
    let converging = Instant::now();
    let available = loop {
        let line = progress::summary(&admin, &sample.namespace, &sample.name)
            .await
            .unwrap_or_else(|e| format!("(summary failed: {e})"));
        step(started, &line);
        if clusters
            .get_opt(&sample.name)
            .await?
            .as_ref()
            .is_some_and(progress::is_available)
        {
            break true;
        }
        if converging.elapsed() > timeout {
            break false;
        }
        tokio::time::sleep(PROGRESS_EVERY).await;
    };

    // 6. The tree.
    println!();
    println!(
        "{}",
        progress::tree(
            &bin.join("kubectl"),
            &kubeconfig,
            &sample.namespace,
            &sample.name
        )?
    );
    if available {
        step(
            started,
            &format!(
                "MultigresCluster {}/{} is Available",
                sample.namespace, sample.name
            ),
        );
    } else {
        step(
            started,
            &format!(
                "MultigresCluster {}/{} NOT Available after {timeout:?}; logs in {}",
                sample.namespace,
                sample.name,
                dir.join("logs").display()
            ),
        );
    }
    println!(
        "export KUBECONFIG={}   # kubectl and helm: {}",
        kubeconfig.display(),
        bin.display()
    );
    println!(
        "try your own: kubectl apply -f <a MultigresCluster, any name and namespace, with the \
         DeploymentTemplates it names>; every managed topology server is backed by the demo's etcd \
         (leave rootPath unset: the default is unique per cluster; a root another cluster wrote is \
         refused) and the simulator serves every Shard (kubectl get multigresclusters -A -w)"
    );
    println!(
        "the cluster as a tree, with each shard's primary pod and lagging replicas (the simulator \
         stands in for multiadmin): {} status {} -n {} --admin-url http://{}/{}/{}",
        opts.target_dir.join("kubectl-multigres").display(),
        sample.name,
        sample.namespace,
        running.sim_admin_http,
        sample.namespace,
        sample.name
    );
    println!("stop everything with: just demo-down");
    if !available {
        bail!("the example cluster did not become Available");
    }
    Ok(())
}

fn control_plane_running(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("local-cluster.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
}

fn down(dir: &Path) -> Result<()> {
    let stopped = stack::stop_detached(&dir.join("stack.pids"))?;
    println!(
        "stopped: {}",
        if stopped.is_empty() {
            "nothing".into()
        } else {
            stopped.join(", ")
        }
    );
    let status = Command::new(sibling("local-cluster")?)
        .args(["down", "--kubeconfig"])
        .arg(dir.join("kubeconfig"))
        .status()?;
    if !status.success() {
        bail!("local-cluster down failed");
    }
    Ok(())
}
