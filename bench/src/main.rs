//! `multigres-bench`: the operator on the local control plane, timed against the floor.
//!
//! Starts a private control plane, installs the charts (RBAC, admission policies, CRDs) with their
//! Deployments at zero replicas, one etcd on loopback for every managed TopoServer (through
//! `--topology-address-map`), then per scenario a fresh set of controller processes (release
//! builds, each under its chart's ServiceAccount, watching only the scenario's namespace):
//!
//! 1. `seed`: the CR definition's example from `deploy/samples/`, to Available, and its floor;
//! 2. `main`: N generated clusters to Available, API requests (audit log and the controllers' own
//!    counters), memory and CPU, 60 s of idle, a DeploymentTemplate edit rolled to every child,
//!    and its floor;
//! 3. `replicas-K`: the same load with K partitioned shard-controller replicas.
//!
//! Writes `<out>/<profile>.json` and `<out>/<profile>.md`; `bench/plot.py` draws the PNG.

mod audit;
mod converge;
mod floor;
mod launch;
mod procs;
mod report;
mod scenario;
mod shape;

use crate::scenario::{Extras, operator_run};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::{
    ApiResource, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use multigres_api::{DeploymentTemplate, MultigresCluster, Shard, naming};
use multigres_e2e::{ControlPlane, charts, samples, spawn_operator, stack};
use serde_json::Value;

use crate::report::Report;
use crate::shape::Shape;

#[derive(Parser, Debug)]
#[command(
    name = "multigres-bench",
    about = "Convergence, API requests, memory and scale-out of the operator, against the floor"
)]
struct Args {
    /// `quick` (CI: 2 clusters, 20 Shards) or `large` (50 clusters, 1,000 Shards, ~3,200 pods).
    #[arg(long, default_value = "quick")]
    profile: String,
    #[arg(long)]
    clusters: Option<u32>,
    #[arg(long)]
    cells: Option<u32>,
    #[arg(long)]
    databases: Option<u32>,
    #[arg(long)]
    tablegroups: Option<u32>,
    /// Shards per tablegroup.
    #[arg(long)]
    shards: Option<u32>,
    /// Pods per shard pool.
    #[arg(long)]
    pool_replicas: Option<u32>,
    /// Shard-controller replica counts of the scale-out runs (the main run has 1); `--scale-out`
    /// alone: none.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "2,3")]
    scale_out: Vec<u32>,
    /// Seconds of idle after convergence in which writes are counted.
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// Bound on each convergence, seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Requests in flight when the floor writes its objects (the controllers' combined
    /// `--concurrency`: 5 controllers x 8).
    #[arg(long, default_value_t = 40)]
    floor_concurrency: usize,
    #[arg(long)]
    skip_seed: bool,
    #[arg(long)]
    skip_edit: bool,
    /// Where `<profile>.json` and `<profile>.md` go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

impl Args {
    fn shape(&self) -> Result<Shape> {
        let base = match self.profile.as_str() {
            "quick" => Shape {
                clusters: 2,
                cells: 1,
                databases: 1,
                tablegroups: 2,
                shards: 5,
                pool_replicas: 2,
                topo_replicas: 1,
            },
            "large" => Shape {
                clusters: 50,
                cells: 1,
                databases: 1,
                tablegroups: 2,
                shards: 10,
                pool_replicas: 3,
                topo_replicas: 1,
            },
            other => bail!("unknown profile '{other}' (quick or large)"),
        };
        Ok(Shape {
            clusters: self.clusters.unwrap_or(base.clusters),
            cells: self.cells.unwrap_or(base.cells).max(1),
            databases: self.databases.unwrap_or(base.databases),
            tablegroups: self.tablegroups.unwrap_or(base.tablegroups),
            shards: self.shards.unwrap_or(base.shards),
            pool_replicas: self.pool_replicas.unwrap_or(base.pool_replicas),
            topo_replicas: base.topo_replicas,
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.unwrap_or(match self.profile.as_str() {
            "large" => 1200,
            _ => 300,
        }))
    }
}

/// What every scenario shares.
struct Bench {
    cp: ControlPlane,
    admin: Client,
    /// admin, cluster-controller, tablegroup-controller (writers of the floor).
    floor_clients: Vec<Client>,
    etcd: String,
    /// Where the simulator stands in for every cluster's multiadmin (planned switchovers).
    sim_admin: String,
    work: PathBuf,
    target: PathBuf,
    timeout: Duration,
}

fn step(t: Instant, text: &str) {
    eprintln!("[{:>7.1}s] {text}", t.elapsed().as_secs_f64());
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let shape = args.shape()?;
    let t = Instant::now();
    let target = launch::target_dir()?;
    step(
        t,
        &format!(
            "profile {}: {} clusters, {} Shards, {} pods",
            args.profile,
            shape.clusters,
            shape.total_shards(),
            shape.total_pods()
        ),
    );
    let cp = tokio::task::spawn_blocking(ControlPlane::start).await??;
    let admin = cp.client();
    step(
        t,
        &format!("control plane up (logs: {})", cp.log_dir().display()),
    );

    let helm = cp.bin_dir().join("helm");
    charts::build_dependencies(&helm)?;
    charts::install_operator(&helm, cp.kubeconfig_path(), &charts::zero_replicas())?;
    step(
        t,
        "charts installed (RBAC, admission policies, CRDs; Deployments at 0)",
    );

    // Kept after the run (the control plane's own folder is removed): controller logs per scenario.
    let work = std::env::temp_dir().join(format!("multigres-bench-{}", args.profile));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    step(t, &format!("controller logs in {}/logs", work.display()));
    let etcd_port = launch::free_port()?;
    let peer_port = launch::free_port()?;
    let _etcd = spawn_operator(
        "topology-etcd",
        &cp.bin_dir().join("etcd"),
        cp.kubeconfig_path(),
        &work.join("logs"),
        &etcd_args(&work.join("etcd"), etcd_port, peer_port),
    )?;
    let etcd = format!("127.0.0.1:{etcd_port}");
    let mut bench = Bench {
        admin: admin.clone(),
        floor_clients: Vec::new(),
        etcd,
        sim_admin: format!("127.0.0.1:{}", launch::free_port()?),
        work,
        target,
        timeout: args.timeout(),
        cp,
    };
    let mut report = Report::new(&args.profile, &shape, &bench.target);

    // The seed example.
    if !args.skip_seed {
        let ns = create_namespace(&admin, "bench-seed").await?;
        let sample = samples::sample_cluster()?;
        let mut map = vec![format!(
            "{}={}",
            stack::topo_address(&ns, &naming::global_topo_server(&sample.name)),
            bench.etcd
        )];
        for cell in &sample.local_topo_cells {
            map.push(format!(
                "{}={}",
                stack::topo_address(&ns, &naming::local_topo_server(&sample.name, cell)),
                bench.etcd
            ));
        }
        let objects = sample_objects(&ns)?;
        let run = operator_run(
            &mut bench,
            "seed",
            &ns,
            &map.join(","),
            objects,
            1,
            false,
            None,
            t,
        )
        .await?;
        step(t, &format!("seed: {}", run.summary()));
        match floor_run(&bench, &ns, "bench-seed-floor", args.floor_concurrency, t).await {
            Ok(floor) => report.seed_floor = Some(floor),
            Err(e) => report.errors.push(format!("floor of seed: {e:#}")),
        }
        report.seed = Some(run);
    }

    // The generated load.
    let ns = create_namespace(&admin, "bench-main").await?;
    let objects = generated(&shape, &ns);
    let map = shape
        .address_map(&ns, &bench.etcd, &bench.sim_admin)
        .join(",");
    let extras = Extras {
        idle: Duration::from_secs(args.idle_seconds),
        edit: !args.skip_edit,
        shape: shape.clone(),
    };
    let run = operator_run(
        &mut bench,
        "main",
        &ns,
        &map,
        objects,
        1,
        false,
        Some(&extras),
        t,
    )
    .await?;
    step(t, &format!("main: {}", run.summary()));
    report.main = Some(run);
    report.write(&args.out)?;
    match floor_run(&bench, &ns, "bench-main-floor", args.floor_concurrency, t).await {
        Ok(floor) => report.main_floor = Some(floor),
        Err(e) => {
            step(t, &format!("floor of main FAILED: {e:#}"));
            report.errors.push(format!("floor of main: {e:#}"));
        }
    }
    report.write(&args.out)?;

    // Scale-out.
    for &replicas in &args.scale_out {
        let tag = format!("replicas-{replicas}");
        let ns = create_namespace(&admin, &format!("bench-r{replicas}")).await?;
        let objects = generated(&shape, &ns);
        let map = shape
            .address_map(&ns, &bench.etcd, &bench.sim_admin)
            .join(",");
        let run = operator_run(
            &mut bench, &tag, &ns, &map, objects, replicas, true, None, t,
        )
        .await?;
        step(t, &format!("{tag}: {}", run.summary()));
        report.scale_out.push(run);
        report.write(&args.out)?;
        delete_namespace(&admin, &ns, t).await?;
        report.write(&args.out)?;
    }
    report.write(&args.out)?;
    step(
        t,
        &format!("wrote {}/{}.json and .md", args.out.display(), args.profile),
    );
    Ok(())
}

fn etcd_args(data: &Path, client: u16, peer: u16) -> Vec<String> {
    let c = format!("http://127.0.0.1:{client}");
    let p = format!("http://127.0.0.1:{peer}");
    vec![
        "--name=topology".into(),
        format!("--data-dir={}", data.display()),
        format!("--listen-client-urls={c}"),
        format!("--advertise-client-urls={c}"),
        format!("--listen-peer-urls={p}"),
        format!("--initial-advertise-peer-urls={p}"),
        format!("--initial-cluster=topology={p}"),
        "--unsafe-no-fsync".into(),
        "--log-level=warn".into(),
    ]
}

async fn create_namespace(admin: &Client, name: &str) -> Result<String> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    multigres_e2e::wait_for(
        &Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(admin.clone(), name),
        "default",
        Duration::from_secs(60),
        |_| true,
    )
    .await?;
    Ok(name.to_string())
}

/// Drops the finalizers of the operator's kinds in `namespace` (allowed once they are being deleted); returns
/// how many objects still hold one (refused, or not marked for deletion yet).
async fn strip_finalizers(admin: &Client, namespace: &str) -> Result<usize> {
    let no_finalizers = serde_json::json!({"metadata": {"finalizers": null}});
    let mut holding = 0;
    for ar in [
        ApiResource::erase::<MultigresCluster>(&()),
        ApiResource::erase::<DeploymentTemplate>(&()),
        ApiResource::erase::<multigres_api::Cell>(&()),
        ApiResource::erase::<multigres_api::TableGroup>(&()),
        ApiResource::erase::<Shard>(&()),
        ApiResource::erase::<multigres_api::TopoServer>(&()),
    ] {
        let objects: Api<DynamicObject> = Api::namespaced_with(admin.clone(), namespace, &ar);
        for o in objects.list(&ListParams::default()).await? {
            if o.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty()) {
                continue;
            }
            let name = o.metadata.name.unwrap_or_default();
            let patched = objects
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&no_finalizers),
                )
                .await;
            if patched.is_err() {
                holding += 1;
            }
        }
    }
    Ok(holding)
}

/// Deletes a scenario's namespace and waits (by watch) until it is gone, so that the next scenario
/// runs on a control plane no busier than the first.
async fn delete_namespace(admin: &Client, name: &str, t: Instant) -> Result<()> {
    let api = Api::<Namespace>::all(admin.clone());
    let _ = api.delete(name, &kube::api::DeleteParams::default()).await;
    // The controllers that would run the finalizers (topology deregistration) are gone: drop them.
    // The admission policy lets a finalizer go only once the object is being deleted, which the
    // namespace controller marks a moment after the namespace: strip until nothing is left.
    let deadline = Instant::now() + Duration::from_secs(1800);
    while strip_finalizers(admin, name).await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    multigres_e2e::wait_deleted(&api, name, Duration::from_secs(1800)).await?;
    step(t, &format!("namespace {name} deleted"));
    Ok(())
}

/// Templates first, then the clusters.
fn generated(shape: &Shape, ns: &str) -> Vec<Value> {
    let mut out = vec![shape.template(ns, shape::CPU_BEFORE)];
    out.extend((0..shape.clusters).map(|i| shape.cluster(ns, i)));
    out
}

fn sample_objects(ns: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for file in samples::sample_files()? {
        let text = std::fs::read_to_string(&file)?;
        for doc in text.split("\n---") {
            let v: serde_yaml::Value =
                serde_yaml::from_str(doc).with_context(|| format!("parsing {}", file.display()))?;
            if v.is_null() {
                continue;
            }
            let mut v: Value = serde_json::to_value(v)?;
            v["metadata"]["namespace"] = Value::String(ns.to_string());
            if let Some(o) = v.as_object_mut() {
                o.remove("status");
            }
            out.push(v);
        }
    }
    out.sort_by_key(|v| v["kind"].as_str() != Some("DeploymentTemplate"));
    Ok(out)
}

/// Shards a cluster asks for: the sum of its tablegroups' partitions.
fn expected_shards(cluster: &Value) -> usize {
    cluster["spec"]["databases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| d["spec"]["tablegroups"].as_array().into_iter().flatten())
        .map(|t| t["partitioning"]["shards"].as_u64().unwrap_or(1) as usize)
        .sum()
}

async fn floor_clients(work: &Path, admin: Client) -> Result<Vec<Client>> {
    let mut out = vec![admin];
    for sa in [
        "multigres-cluster-controller",
        "multigres-tablegroup-controller",
    ] {
        let path = work.join("kubeconfigs").join(format!("{sa}.yaml"));
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&path)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        out.push(Client::try_from(config)?);
    }
    Ok(out)
}

async fn floor_run(
    bench: &Bench,
    source: &str,
    target: &str,
    concurrency: usize,
    t: Instant,
) -> Result<report::FloorRun> {
    let admin = &bench.admin;
    let copies = floor::collect(admin, source).await?;
    let pods = Api::<Pod>::namespaced(admin.clone(), source)
        .list(&ListParams::default())
        .await?
        .items
        .len();
    let claims = Api::<PersistentVolumeClaim>::namespaced(admin.clone(), source)
        .list(&ListParams::default())
        .await?
        .items
        .len();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for c in &copies {
        *kinds.entry(c.resource.kind.clone()).or_default() += 1;
    }
    // The floor runs on a control plane as idle as the operator had.
    delete_namespace(admin, source, t).await?;
    let ns = create_namespace(admin, target).await?;
    step(
        t,
        &format!(
            "floor {ns}: writing {} objects ({pods} pods, {claims} claims expected)",
            copies.len()
        ),
    );
    let cpu_before = procs::cpu_by_program();
    let f = floor::run(
        &bench.floor_clients,
        copies,
        &ns,
        pods,
        claims,
        concurrency,
        bench.timeout,
    )
    .await?;
    let cpu_by_program = procs::cpu_spent(&cpu_before, &procs::cpu_by_program());
    step(
        t,
        &format!(
            "floor {ns}: written in {:.1}s, converged {}",
            f.write_seconds,
            f.total()
                .map(|s| format!("in {s:.1}s"))
                .unwrap_or_else(|| "NOT within the timeout".into())
        ),
    );
    delete_namespace(admin, &ns, t).await?;
    Ok(report::FloorRun {
        namespace: ns,
        objects: f.objects,
        objects_by_kind: kinds,
        concurrency,
        write_seconds: f.write_seconds,
        total_seconds: f.total(),
        per_cluster: f.by_cluster(),
        pods: f.pods.into(),
        claims: f.claims.into(),
        cpu_by_program,
    })
}
