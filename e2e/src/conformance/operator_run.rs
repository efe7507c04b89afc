//! The operator's side: the local control plane, the operator installed with Helm and its
//! controllers as local processes (as the demo runs them, without the data-plane simulator), the
//! conformance cluster applied, and then every generated pod run by [`kubelet`] with the real
//! binaries, and the data-path checks against it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use multigres_api::Shard;
use multigres_api::labels::{self, component};
use tokio::task::JoinHandle;

use super::checks::{Admin, Clock, checks};
use super::dns::{self, Hosts};
use super::env::PodContext;
use super::kubelet::{self, Pids};
use super::rewrite::Change;
use super::sandbox::Root;
use super::{Timings, topo_proxy};
use crate::{ControlPlane, charts, samples, stack};

/// Each pod's pgBackRest TLS port is this plus its index (see the rewrite table).
const PGBACKREST_PORT_BASE: u16 = 18000;

pub struct Options {
    pub root: Root,
    pub work: PathBuf,
    pub manifest: PathBuf,
    /// The controller binaries (`target/debug`).
    pub target_dir: PathBuf,
    /// A second cluster restored from the first one's backups, run after the checks.
    pub restore_manifest: Option<PathBuf>,
    /// A third cluster on an S3 repository, and the S3 server (MinIO or moto) that serves it
    /// (after the restore).
    pub object_store: Option<(PathBuf, PathBuf)>,
}

/// Runs the whole operator side; returns its timings. Everything it started stops when it returns.
pub async fn run(opts: &Options) -> Result<Timings> {
    let started = Instant::now();
    let step = |text: &str| println!("[{:>6.1}s] {text}", started.elapsed().as_secs_f64());
    let cp = tokio::task::block_in_place(ControlPlane::start)?;
    let admin = cp.client();
    step(&format!("control plane up ({})", cp.server_url()));
    let helm = cp.bin_dir().join("helm");
    charts::build_dependencies(&helm)?;
    charts::install_operator(&helm, cp.kubeconfig_path(), &charts::zero_replicas())?;
    step("operator installed with Helm (Deployments at 0: the controllers run as local processes)");

    let sample = samples::cluster_at(&opts.manifest)?;
    let ns = sample.namespace.clone();
    Api::<Namespace>::all(admin.clone())
        .patch(
            &ns,
            &PatchParams::apply("multigres-conformance"),
            &Patch::Apply(&Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.clone()),
                    ..Default::default()
                },
                ..Default::default()
            }),
        )
        .await?;
    let stack_opts = stack::Options {
        bin_dir: cp.bin_dir().to_path_buf(),
        target_dir: opts.target_dir.clone(),
        work_dir: opts.work.join("operator"),
        admin_kubeconfig: cp.kubeconfig_path().to_path_buf(),
        token_seconds: 4 * 3600,
        cluster_namespace: ns.clone(),
        cluster_name: sample.name.clone(),
        local_topo_cells: sample.local_topo_cells.clone(),
        launch: stack::Launch::Attached,
        simulator: false,
        topology_ca: Some(charts::topology_ca(&admin, &opts.work.join("topology-ca")).await?),
    };
    let running = stack::start(&stack_opts, &admin).await?;
    if !running.missing.is_empty() {
        bail!("controllers not built: {}", running.missing.join(", "));
    }
    step(&format!(
        "controllers started; topology etcd: {}",
        running.address_map
    ));
    let (topo_hosts, forwarders) = topo_stand_ins(&running.address_map, &ns).await?;
    let shard_log = running
        .started
        .iter()
        .find(|(n, _)| n == "shard-controller")
        .map(|(_, l)| l.clone());
    if let Some(log) = shard_log {
        let waited = partition_active(&log).await?;
        step(&format!(
            "shard-controller's partition active after its start-up wait ({waited:.1}s): the timings measure a running operator"
        ));
    }

    let applied = Instant::now();
    samples::apply_files(&admin, std::slice::from_ref(&opts.manifest), &ns).await?;
    step(&format!("applied {}", opts.manifest.display()));
    let (pods, generated) = wait_for_pods(&admin, &ns, &sample.name).await?;
    println!(
        "  all pods existed {:.1}s after apply (the controllers, and the controller-manager for Deployments)",
        (generated - applied).as_secs_f64()
    );
    let timeline = super::timeline::line(&admin, &ns).await;
    println!(
        "  created after the MultigresCluster (newest of each kind): {}",
        timeline.unwrap_or_else(|e| e.to_string())
    );
    step(&format!(
        "{} pods generated: {}",
        pods.len(),
        pods.iter()
            .map(|p| p.name_any())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let pids: Pids = Arc::new(Mutex::new(BTreeMap::new()));
    let access = Admin {
        client: &admin,
        kubeconfig: cp.kubeconfig_path(),
    };
    let result = run_pods(opts, &access, &ns, pods, topo_hosts, &pids, applied, &step).await;
    let result = match result {
        Ok((timings, pods)) => {
            let names = super::topology_names::check(
                &admin,
                &ns,
                &running.address_map,
                running.topology_tls.as_ref(),
                &pods.hosts,
            )
            .await;
            match (names, &opts.restore_manifest) {
                (Err(e), _) => Err(e),
                (Ok(()), Some(manifest)) => {
                    step("restore into a new cluster");
                    let before = super::restore::Before {
                        cluster: &sample.name,
                        pods: &pods.pods,
                        services: &pods.services,
                    };
                    let restored = super::restore::run(
                        opts,
                        &admin,
                        &ns,
                        before,
                        manifest,
                        &running.address_map,
                        &pids,
                    )
                    .await;
                    match (restored, &opts.object_store) {
                        (Err(e), _) => Err(e),
                        (Ok(_), None) => Ok(timings),
                        (Ok(restored), Some((manifest, server))) => {
                            step("an S3 repository");
                            super::object_store::run(
                                opts,
                                &admin,
                                &ns,
                                &restored,
                                manifest,
                                &running.address_map,
                                &pids,
                                server,
                            )
                            .await
                            .map(|()| timings)
                        }
                    }
                }
                (Ok(()), None) => Ok(timings),
            }
        }
        Err(e) => Err(e),
    };
    kubelet::stop_all(&pids);
    forwarders.iter().for_each(JoinHandle::abort);
    let exits = kubelet::exits_summary(&opts.work.join("logs/pods"));
    println!(
        "  containers that exited with an error: {}",
        if exits.is_empty() { "none" } else { "" }
    );
    for line in exits {
        println!("    {}", line.chars().take(600).collect::<String>());
    }
    drop(running);
    drop(cp);
    result
}

/// A forwarder per managed TopoServer, on the address its client Service name resolves to.
async fn topo_stand_ins(address_map: &str, ns: &str) -> Result<(Hosts, Vec<JoinHandle<()>>)> {
    let mut hosts = Hosts::default();
    let mut forwarders = Vec::new();
    for (i, entry) in address_map.split(',').filter(|e| !e.is_empty()).enumerate() {
        let (from, to) = entry.split_once('=').context("address map entry")?;
        let (host, port) = from.rsplit_once(':').context("address map host:port")?;
        let listen = SocketAddr::new(dns::topo_ip(i).into(), port.parse()?);
        forwarders.push(topo_proxy::forward(listen, to.parse()?).await?);
        let service = host.split('.').next().unwrap_or(host);
        hosts.add(dns::topo_ip(i), dns::service_names(service, ns));
        println!(
            "  substitution: TopoServer {service} (pods not run) -> {listen} -> the harness's etcd at {to}"
        );
    }
    Ok((hosts, forwarders))
}

/// Waits until the pods the controllers generate for `cluster` are all there: one per Deployment
/// replica and one per shard pool replica (the managed TopoServers' etcd pods are not run), the
/// same set twice. Returns them and when they all first existed.
pub async fn wait_for_pods(admin: &Client, ns: &str, cluster: &str) -> Result<(Vec<Pod>, Instant)> {
    let of_cluster = ListParams::default().labels(&format!("{}={cluster}", labels::CLUSTER));
    let pods_api = Api::<Pod>::namespaced(admin.clone(), ns);
    let deploys = Api::<Deployment>::namespaced(admin.clone(), ns);
    let shards = Api::<Shard>::namespaced(admin.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut previous = Vec::new();
    let mut complete = None;
    loop {
        let shard_list = shards.list(&of_cluster).await?;
        let expected: i32 = deploys
            .list(&of_cluster)
            .await?
            .iter()
            .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))
            .sum::<i32>()
            + shard_list
                .iter()
                .flat_map(|s| s.spec.pools.iter().map(|p| p.replicas))
                .sum::<i32>();
        let mut pods: Vec<Pod> = pods_api
            .list(&of_cluster)
            .await?
            .into_iter()
            .filter(|p| {
                p.labels().get(labels::COMPONENT).map(String::as_str)
                    != Some(component::TOPO_SERVER)
            })
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        pods.sort_by_key(|p| p.name_any());
        let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
        let all_there = !shard_list.items.is_empty() && pods.len() as i32 == expected;
        if !all_there {
            complete = None;
        } else if names == previous
            && let Some(at) = complete
        {
            return Ok((pods, at));
        } else {
            complete = complete.or(Some(Instant::now()));
        }
        if Instant::now() > deadline {
            bail!(
                "pods not generated within 300s: {} of {expected}: {names:?}",
                pods.len()
            );
        }
        previous = names;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[allow(clippy::too_many_arguments)]
/// Runs every pod and the checks; returns the timings and the running pods.
async fn run_pods(
    opts: &Options,
    access: &Admin<'_>,
    ns: &str,
    pods: Vec<Pod>,
    hosts: Hosts,
    pids: &Pids,
    applied: Instant,
    step: &impl Fn(&str),
) -> Result<(Timings, Running)> {
    let running = start_pods(opts, access.client, ns, pods, hosts, pids).await?;
    step(&format!(
        "every container started; logs in {}",
        opts.work.join("logs/pods").display()
    ));
    let started = Instant::now() - applied;
    checks(
        opts,
        access,
        ns,
        &running.pods,
        &running.services,
        pids,
        Clock { applied, started },
    )
    .await
    .map(|timings| (timings, running))
}

/// Pods started by [`start_pods`], with their addresses, the Services and the hosts file.
pub struct Running {
    pub pods: Vec<(Pod, Ipv4Addr)>,
    pub services: Vec<Service>,
    pub hosts: Hosts,
}

/// Plans and starts every container of `pods` (addresses from [`dns::pod_ip`]), after writing
/// the hosts file `hosts` plus the pods' and Services' names.
pub async fn start_pods(
    opts: &Options,
    admin: &Client,
    ns: &str,
    pods: Vec<Pod>,
    mut hosts: Hosts,
    pids: &Pids,
) -> Result<Running> {
    let secrets: BTreeMap<String, Secret> = Api::<Secret>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await?
        .into_iter()
        .map(|s| (s.name_any(), s))
        .collect();
    let config_maps: BTreeMap<String, ConfigMap> = Api::<ConfigMap>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await?
        .into_iter()
        .map(|c| (c.name_any(), c))
        .collect();
    let services = Api::<Service>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    let with_ips: Vec<(Pod, Ipv4Addr)> = pods
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, dns::pod_ip(i)))
        .collect();
    let cluster = Hosts::from_cluster(&with_ips, &services);
    for line in cluster.lines() {
        if let Some((ip, names)) = line.split_once(' ') {
            hosts.add(
                ip.trim().parse()?,
                names.split(' ').filter(|n| !n.is_empty()).map(String::from),
            );
        }
    }
    std::fs::write(
        opts.root.dir.join("etc/hosts"),
        hosts.render(Ipv4Addr::LOCALHOST),
    )?;
    println!("  hosts (the root's /etc/hosts; each pod's copy maps localhost to its own address):");
    for line in hosts.lines() {
        println!("    {line}");
    }

    let mut changes: Vec<Change> = Vec::new();
    let mut plans = Vec::new();
    for (i, (pod, ip)) in with_ips.iter().enumerate() {
        let ctx = PodContext {
            pod,
            ip: *ip,
            secrets: &secrets,
            config_maps: &config_maps,
        };
        let pod_dir = opts.work.join("pods").join(pod.name_any());
        std::fs::create_dir_all(&pod_dir)?;
        let hosts_file = pod_dir.join("hosts");
        std::fs::write(&hosts_file, hosts.render(*ip))?;
        let port = PGBACKREST_PORT_BASE + i as u16;
        plans.push(kubelet::plan(
            &ctx,
            &opts.root,
            &opts.work,
            hosts_file,
            port,
            &mut changes,
        )?);
    }
    print_rewrites(&changes);
    let logs = opts.work.join("logs/pods");
    for plan in plans {
        let line: Vec<String> = plan
            .containers
            .iter()
            .map(|c| format!("{}({:?})", c.name, c.kind))
            .collect();
        println!("  run {} at {}: {}", plan.name, plan.ip, line.join(" "));
        tokio::spawn(kubelet::run(
            plan,
            opts.root.clone(),
            logs.clone(),
            pids.clone(),
        ));
    }
    Ok(Running {
        pods: with_ips,
        services,
        hosts,
    })
}

/// `<repo>/target/<profile>`, where the running binary and the controllers are.
pub fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// The rewrite table, one line per container, each reason once.
fn print_rewrites(changes: &[Change]) {
    let mut reasons: Vec<&str> = Vec::new();
    let mut lines: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in changes {
        let n = match reasons.iter().position(|r| *r == c.why) {
            Some(n) => n,
            None => {
                reasons.push(c.why);
                reasons.len() - 1
            }
        };
        lines
            .entry(format!("{}/{}", c.pod, c.container))
            .or_default()
            .push(format!("{} [{}]", c.change, n + 1));
    }
    println!(
        "  rewrite table ({} changes in {} containers):",
        changes.len(),
        lines.len()
    );
    for (container, list) in &lines {
        println!("    {container}: {}", list.join(", "));
    }
    for (n, why) in reasons.iter().enumerate() {
        println!("    [{}] {why}", n + 1);
    }
}

/// Waits until the shard-controller logs that its partition is active: a fresh member waits one
/// lease before it acts (crates/runtime/src/partition.rs), which a running operator has long done.
async fn partition_active(log: &Path) -> Result<f64> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.contains("partition view changed") && strip_ansi(l).contains("active=true"))
        {
            return Ok(start.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!(
        "the shard-controller's partition did not become active within 120s ({})",
        log.display()
    )
}

/// The text of a log line without its terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
