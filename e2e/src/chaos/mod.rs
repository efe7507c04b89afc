//! `just chaos` (docs/reliability.md): many clusters converging and being edited while, at random
//! moments, controllers are SIGKILLed, the API server restarts, the topology etcd stops and comes
//! back, and a primary fails over in the middle of a roll. Then the final state is compared, object
//! by object, with a clean run of the same final specs, and the run's invariants are checked: no
//! object duplicated or orphaned, no PVC or Secret deleted (the policy keeps them), no primary's pod
//! deleted without a switchover, the bad spec answered with a condition and an Event.

mod compare;
mod load;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, Client};
use multigres_api::{MultigresCluster, Shard, naming};
use multigres_topology::{AddressMapping, ShardKey, admin};

use crate::{ControlPlane, charts, stack};

/// How much load and how many faults.
#[derive(Clone, Debug)]
pub struct Profile {
    pub clusters: u32,
    /// How long faults and edits go on.
    pub window: Duration,
    /// Mean pause between two actions (faults or edits) in the window.
    pub pause: Duration,
    pub seed: u64,
    /// How long the operator may take to settle after the window.
    pub settle: Duration,
}

impl Profile {
    /// Inside `just test`: every kind of fault at least once, on 3 clusters.
    pub fn short(seed: u64) -> Self {
        Self {
            clusters: 3,
            window: Duration::from_secs(45),
            pause: Duration::from_secs(4),
            seed,
            settle: Duration::from_secs(240),
        }
    }

    /// `just chaos`.
    pub fn full(seed: u64) -> Self {
        Self {
            clusters: 8,
            window: Duration::from_secs(180),
            pause: Duration::from_secs(5),
            seed,
            settle: Duration::from_secs(600),
        }
    }
}

impl Profile {
    /// Waits until every Shard and MultigresCluster of the run in `namespace` has settled.
    async fn wait_settled(&self, client: &Client, namespace: &str) -> Result<()> {
        let shards = (self.clusters * load::SHARDS) as usize;
        load::wait_settled(
            client,
            namespace,
            shards,
            self.clusters as usize,
            self.settle,
        )
        .await
    }
}

/// What a run did and what survived, as numbers.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub clusters: u32,
    pub shards: usize,
    pub pool_pods: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u32>,
    /// Edits applied, by kind.
    pub edits: BTreeMap<&'static str, u32>,
    /// Planned switchovers the operator made (its `Switchover` Events).
    pub switchovers: usize,
    /// Primaries deleted without a switchover (the simulator's count).
    pub primaries_lost: usize,
    pub pvcs_deleted: Vec<String>,
    pub secrets_deleted: Vec<String>,
    /// The bad spec got `Degraded=True` (ChildRefused) and a Warning Event.
    pub bad_spec_answered: bool,
    pub settle_after_window: Duration,
    pub clean_settle: Duration,
    pub differences: Vec<String>,
    pub orphans: Vec<String>,
    pub objects_compared: usize,
}

impl Report {
    /// The invariants; each failure named.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.primaries_lost > 0 {
            out.push(format!(
                "{} primaries deleted without a switchover",
                self.primaries_lost
            ));
        }
        if !self.pvcs_deleted.is_empty() {
            out.push(format!("PVCs deleted: {:?}", self.pvcs_deleted));
        }
        if !self.secrets_deleted.is_empty() {
            out.push(format!("Secrets deleted: {:?}", self.secrets_deleted));
        }
        if !self.bad_spec_answered {
            out.push("the bad spec got no Degraded condition and Warning Event".into());
        }
        out.extend(self.differences.iter().cloned());
        out.extend(self.orphans.iter().cloned());
        out
    }

    pub fn summary(&self) -> String {
        format!(
            "seed {}: {} clusters, {} Shards, {} pool pods; faults {:?}; edits {:?}; {} planned \
             switchovers, {} primaries lost; {} PVCs and {} Secrets deleted; bad spec answered: {}; \
             settled {:.1}s after the window (clean run {:.1}s); {} objects compared, {} differences, \
             {} orphans",
            self.seed,
            self.clusters,
            self.shards,
            self.pool_pods,
            self.faults,
            self.edits,
            self.switchovers,
            self.primaries_lost,
            self.pvcs_deleted.len(),
            self.secrets_deleted.len(),
            self.bad_spec_answered,
            self.settle_after_window.as_secs_f64(),
            self.clean_settle.as_secs_f64(),
            self.objects_compared,
            self.differences.len(),
            self.orphans.len()
        )
    }
}

/// Starts again the controllers that exited, as the kubelet would, and reports them.
fn restart_exited(
    running: &mut stack::Stack,
    report: &mut Report,
    step: &dyn Fn(&str),
) -> Result<()> {
    for name in running.restart_exited()? {
        *report
            .faults
            .entry("controller exited, restarted as the kubelet would")
            .or_default() += 1;
        step(&format!("{name} exited; restarted"));
    }
    Ok(())
}

/// A small deterministic generator: a run is replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const CHAOS_NS: &str = "chaos-main";
const CLEAN_NS: &str = "chaos-clean";
const CONTROLLERS: [&str; 5] = [
    "cluster-controller",
    "cell-controller",
    "topo-controller",
    "tablegroup-controller",
    "shard-controller",
];

/// Records the deletions of PVCs or Secrets in a namespace: a Delete event, or (when a watch gap
/// hid it, as an API server restart may) a name seen again with another uid.
fn record_deletions<K>(api: Api<K>, sink: Arc<Mutex<Vec<String>>>) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::spawn(async move {
        let mut uids: BTreeMap<String, String> = BTreeMap::new();
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            let (object, deleted) = match event {
                Ok(WatchEvent::Delete(o)) => (o, true),
                Ok(WatchEvent::Apply(o) | WatchEvent::InitApply(o)) => (o, false),
                _ => continue,
            };
            let name = object.meta().name.clone().unwrap_or_default();
            let uid = object.meta().uid.clone().unwrap_or_default();
            let replaced = uids
                .insert(name.clone(), uid.clone())
                .is_some_and(|u| u != uid);
            if deleted {
                sink.lock().expect("sink").push(name);
            } else if replaced {
                sink.lock()
                    .expect("sink")
                    .push(format!("{name} (replaced)"));
            }
        }
    })
}

async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    match api.create(&Default::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The final specs, kept to replay them in the clean run.
struct Specs {
    cpu: String,
    gateways: Vec<u32>,
}

impl Specs {
    async fn apply(&self, client: &Client, ns: &str, etcd_override: Option<u32>) -> Result<()> {
        load::apply(client, &load::template(ns, &self.cpu)).await?;
        for (i, gateways) in self.gateways.iter().enumerate() {
            let name = load::cluster_name(i as u32);
            let etcd = if i == 0 { etcd_override } else { None };
            load::apply(client, &load::cluster(ns, &name, *gateways, etcd)).await?;
        }
        Ok(())
    }
}

/// Runs the whole chaos run on `cp` with the controllers in `target_dir`; `work` holds logs.
pub async fn run(
    cp: &ControlPlane,
    target_dir: PathBuf,
    work: PathBuf,
    profile: &Profile,
) -> Result<Report> {
    let started = Instant::now();
    let step = |text: &str| eprintln!("[{:>6.1}s] chaos: {text}", started.elapsed().as_secs_f64());
    let client = cp.client();
    let helm = cp.bin_dir().join("helm");
    charts::build_dependencies_once(&helm)?;
    charts::install_operator(&helm, cp.kubeconfig_path(), &charts::zero_replicas())?;
    let names: Vec<String> = (0..profile.clusters).map(load::cluster_name).collect();
    let opts = stack::Options {
        bin_dir: cp.bin_dir().to_path_buf(),
        target_dir,
        work_dir: work.clone(),
        admin_kubeconfig: cp.kubeconfig_path().to_path_buf(),
        token_seconds: 3600,
        cluster_namespace: CHAOS_NS.into(),
        cluster_name: names[0].clone(),
        local_topo_cells: Vec::new(),
        launch: stack::Launch::Attached,
        simulator: true,
        topology_ca: None,
    };
    let mut running = stack::start(&opts, &client).await?;
    if !running.missing.is_empty() {
        bail!(
            "binaries not built (cargo build --workspace --bins): {:?}",
            running.missing
        );
    }
    let logs = work.join("logs");
    step(&format!(
        "seed {}; operator up, logs in {}",
        profile.seed,
        logs.display()
    ));
    create_namespace(&client, CHAOS_NS).await?;
    create_namespace(&client, CLEAN_NS).await?;

    let mut report = Report {
        seed: profile.seed,
        clusters: profile.clusters,
        shards: (profile.clusters * load::SHARDS) as usize,
        pool_pods: (profile.clusters * load::SHARDS * load::POOL_REPLICAS) as usize,
        ..Default::default()
    };
    let pvcs_deleted = Arc::new(Mutex::new(Vec::new()));
    let secrets_deleted = Arc::new(Mutex::new(Vec::new()));
    let recorders = [
        record_deletions(
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), CHAOS_NS),
            pvcs_deleted.clone(),
        ),
        record_deletions(
            Api::<Secret>::namespaced(client.clone(), CHAOS_NS),
            secrets_deleted.clone(),
        ),
    ];

    let mut specs = Specs {
        cpu: "100m".into(),
        gateways: vec![1; profile.clusters as usize],
    };
    specs.apply(&client, CHAOS_NS, None).await?;
    profile
        .wait_settled(&client, CHAOS_NS)
        .await
        .context("the first convergence")?;
    step("every Shard settled; faults and edits begin");

    let mut rng = Rng(profile.seed | 1);
    let mapping = AddressMapping::parse(&running.address_map)?;
    // Each kind of action once in a shuffled order, then at random.
    let mut actions: Vec<u64> = (0..7).collect();
    for i in (1..actions.len()).rev() {
        actions.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let window_end = Instant::now() + profile.window;
    let mut cpu_step = 0;
    let mut bad_spec_at = None;
    while Instant::now() < window_end || !actions.is_empty() {
        restart_exited(&mut running, &mut report, &step)?;
        let action = match actions.is_empty() {
            false => actions.remove(0),
            true => rng.below(7),
        };
        match action {
            0 => {
                let c = CONTROLLERS[rng.below(CONTROLLERS.len() as u64) as usize];
                running.restart(c)?;
                *report.faults.entry("controller SIGKILLed").or_default() += 1;
                step(&format!("SIGKILL {c}, restarted"));
            }
            1 => {
                cp.restart("kube-apiserver").await?;
                // The scheduler restarts with it, as on a control-plane node's restart: alone,
                // kube-scheduler 1.36 wedged after one (docs/reliability.md), and no pod of any
                // owner was scheduled again, which no operator can mend.
                cp.restart("kube-scheduler").await?;
                *report.faults.entry("API server restarted").or_default() += 1;
                step("API server restarted");
            }
            2 => {
                running.kill("etcd-global");
                tokio::time::sleep(Duration::from_secs(1 + rng.below(4))).await;
                running.restart("etcd-global")?;
                *report.faults.entry("topology etcd stopped").or_default() += 1;
                step("topology etcd stopped and restarted");
            }
            3 | 4 => {
                // A template edit: every Shard of every cluster rolls. Then, while they roll, the
                // primary of a random Shard fails over (multiorch's decision, not the operator's).
                cpu_step += 1;
                specs.cpu = format!("{}m", 100 + 10 * cpu_step);
                load::apply(&client, &load::template(CHAOS_NS, &specs.cpu)).await?;
                *report
                    .edits
                    .entry("template (every Shard rolls)")
                    .or_default() += 1;
                step(&format!("template edit: postgres cpu {}", specs.cpu));
                tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
                let cluster = load::cluster_name(rng.below(profile.clusters as u64) as u32);
                let of_cluster = format!("{}={cluster}", multigres_api::labels::CLUSTER);
                let candidates = Api::<Shard>::namespaced(client.clone(), CHAOS_NS)
                    .list(&ListParams::default().labels(&of_cluster))
                    .await?
                    .items;
                let Some(shard) = candidates.get(rng.below(candidates.len() as u64) as usize)
                else {
                    continue;
                };
                let key = ShardKey {
                    database: shard.spec.database.clone(),
                    table_group: shard.spec.table_group.clone(),
                    shard: shard.spec.multigres_shard().to_string(),
                };
                let address = naming::multiadmin_address(&cluster, CHAOS_NS);
                match admin::switch_primary(
                    &address,
                    &mapping,
                    key,
                    "chaos failover",
                    Duration::from_secs(5),
                )
                .await
                {
                    Ok(_) => {
                        *report.faults.entry("failover during a roll").or_default() += 1;
                        step(&format!("failover in {cluster} during the roll"));
                    }
                    Err(e) => step(&format!("no failover in {cluster}: {e}")),
                }
            }
            5 => {
                let i = rng.below(profile.clusters as u64) as usize;
                specs.gateways[i] = 1 + (specs.gateways[i] % 3);
                let name = load::cluster_name(i as u32);
                let etcd = if i == 0 && bad_spec_at.is_some() {
                    Some(5)
                } else {
                    None
                };
                load::apply(
                    &client,
                    &load::cluster(CHAOS_NS, &name, specs.gateways[i], etcd),
                )
                .await?;
                *report.edits.entry("multigateway replicas").or_default() += 1;
                step(&format!("{name}: {} multigateways", specs.gateways[i]));
            }
            _ => {
                if bad_spec_at.is_none() {
                    // The bad spec: etcd members changed once the TopoServer exists (it refuses).
                    let name = load::cluster_name(0);
                    load::apply(
                        &client,
                        &load::cluster(CHAOS_NS, &name, specs.gateways[0], Some(5)),
                    )
                    .await?;
                    bad_spec_at = Some(Instant::now());
                    *report
                        .edits
                        .entry("bad spec (etcd members changed)")
                        .or_default() += 1;
                    step(&format!("{name}: bad spec applied"));
                }
            }
        }
        let pause = profile.pause.as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(pause / 2 + rng.below(pause))).await;
    }
    step("window over");

    // The bad spec is answered, then the user takes it back.
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), CHAOS_NS);
    let first = load::cluster_name(0);
    report.bad_spec_answered = crate::wait_for(&clusters, &first, Duration::from_secs(120), |c| {
        c.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Degraded" && c.status == "True" && c.reason == "ChildRefused")
        })
    })
    .await
    .is_ok()
        && events_with_reason(&client, CHAOS_NS, "ChildRefused").await? > 0;
    if !report.bad_spec_answered {
        // What the children say, for the failure report.
        let topo: Api<multigres_api::TopoServer> = Api::namespaced(client.clone(), CHAOS_NS);
        let server = topo.get(&naming::global_topo_server(&first)).await?;
        let cluster = clusters.get(&first).await?;
        step(&format!(
            "bad spec NOT answered: TopoServer replicas {:?} (generation {:?}); cluster generation {:?}, conditions {:?}",
            server.spec.replicas,
            server.metadata.generation,
            cluster.metadata.generation,
            cluster.status.map(|s| s.conditions)
        ));
    }
    specs.apply(&client, CHAOS_NS, None).await?;
    let window_over = Instant::now();
    let settled = profile.wait_settled(&client, CHAOS_NS);
    tokio::pin!(settled);
    loop {
        tokio::select! {
            result = &mut settled => {
                result.with_context(|| {
                    format!("settling after the window; logs in {}", logs.display())
                })?;
                break;
            }
            // A child's exit has no watch to wait on: checked every second.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                restart_exited(&mut running, &mut report, &step)?;
            }
        }
    }
    report.settle_after_window = window_over.elapsed();
    step(&format!(
        "settled {:.1}s after the window",
        report.settle_after_window.as_secs_f64()
    ));
    crate::wait_for(&clusters, &first, Duration::from_secs(120), |c| {
        c.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Degraded" && c.status == "False")
        })
    })
    .await
    .context("the bad spec taken back, the cluster is no longer Degraded")?;

    // The clean run: the final specs, applied once, no faults.
    let clean_start = Instant::now();
    specs.apply(&client, CLEAN_NS, None).await?;
    profile
        .wait_settled(&client, CLEAN_NS)
        .await
        .context("the clean run")?;
    report.clean_settle = clean_start.elapsed();
    step(&format!(
        "clean run settled in {:.1}s",
        report.clean_settle.as_secs_f64()
    ));

    let chaos = compare::snapshot(&client, CHAOS_NS).await?;
    let clean = compare::snapshot(&client, CLEAN_NS).await?;
    report.objects_compared = chaos.len();
    report.differences = compare::differences(&chaos, &clean);
    report.orphans = compare::orphans(&client, CHAOS_NS).await?;
    report.switchovers = events_with_reason(&client, CHAOS_NS, "Switchover").await?;
    let sim_log = std::fs::read_to_string(logs.join(format!("{}.log", stack::DATAPLANE_SIM)))
        .unwrap_or_default();
    report.primaries_lost = sim_log
        .lines()
        .filter(|l| l.contains("primary pod deleted without a switchover"))
        .count();
    for r in recorders {
        r.abort();
    }
    report.pvcs_deleted = pvcs_deleted.lock().expect("sink").clone();
    report.secrets_deleted = secrets_deleted.lock().expect("sink").clone();
    step(&report.summary());
    Ok(report)
}

async fn events_with_reason(client: &Client, ns: &str, reason: &str) -> Result<usize> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .count())
}
