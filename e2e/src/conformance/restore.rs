//! Restore into a new cluster (docs/backup-restore.md), on the real binaries: the first cluster's
//! pods are stopped for good, a second MultigresCluster (`restored`, its own topology root, pods
//! and claims) is applied whose backup claim is a clone of the first one's repository
//! (`backup.filesystem.volumeClaimTemplate.dataSource`), and its pods start on empty data
//! directories. They must restore from that repository, and the rows written through the first
//! cluster must read back through the second one's multigateway, which then takes a write.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use multigres_api::{labels, naming};

use super::checks::gateway_service;
use super::dns::{self, Hosts};
use super::kubelet::{self, Pids};
use super::operator_run::{self, Options, Running};
use super::sql::{self, Target};
use super::topo_proxy;
use crate::samples;

/// Every row, in order: what must survive the restore.
const ROWS: &str = "SELECT string_agg(label, ',' ORDER BY id) FROM conformance";

/// The first cluster's gateway, as `checks` reached it.
pub struct Before<'a> {
    pub cluster: &'a str,
    pub pods: &'a [(Pod, std::net::Ipv4Addr)],
    pub services: &'a [Service],
}

pub async fn run(
    opts: &Options,
    admin: &Client,
    ns: &str,
    before: Before<'_>,
    manifest: &Path,
    address_map: &str,
    pids: &Pids,
) -> Result<Running> {
    let root = &opts.root;
    let old = gateway(admin, ns, before.cluster, before.services, before.pods).await?;
    let rows = sql::psql(root, &old, ROWS).await?;
    println!(
        "  rows through {}'s gateway before the restore: {rows}",
        before.cluster
    );
    // CHECKPOINT-less: the last rows reach the repository through WAL archiving; wait for the
    // archive to take the current segment.
    sql::psql(root, &old, "SELECT pg_switch_wal()").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let old_pods: Vec<String> = before.pods.iter().map(|(p, _)| p.name_any()).collect();
    let (restored, running) = replace_cluster(
        opts,
        admin,
        ns,
        &old_pods,
        manifest,
        address_map,
        &Hosts::default(),
        pids,
    )
    .await?;
    let started = Instant::now();
    let new = gateway(admin, ns, &restored, &running.services, &running.pods).await?;
    let logs = opts.work.join("logs/pods");
    let pool_pods = pool_pods(&running);
    let deadline = Duration::from_secs(300);
    loop {
        let restored_from = restored_backups(&logs, &pool_pods);
        let got = sql::psql(root, &new, ROWS).await;
        if got.as_deref().ok() == Some(rows.as_str()) {
            println!(
                "  CHECK restore into a new cluster: ok, {restored} reads every row of {} ({} rows) {:.1}s after its pods started (restored from {restored_from:?})",
                before.cluster,
                rows.split(',').count(),
                started.elapsed().as_secs_f64()
            );
            let (_, id) = sql::until_ok(
                root,
                &new,
                &sql::insert("restored"),
                Duration::from_secs(120),
            )
            .await
            .context("a write through the restored cluster")?;
            println!("  CHECK write through the restored cluster: ok (row {id})");
            return Ok(running);
        }
        // The pinned Multigres restores the data but elects no leader from a cohort it cannot
        // reach (docs/backup-restore.md): reported as such, so that a Multigres that elects one
        // turns this into the check above.
        let stuck = multiorch_verdict(&logs, &restored, "NoHealthyCohortMembers");
        if restored_from.len() == pool_pods.len()
            && stuck
            && started.elapsed() > Duration::from_secs(60)
        {
            println!(
                "  CHECK restore into a new cluster: the data is restored on {}/{} pool pods (backup {:?}), and the pinned multiorch elects no leader: NoHealthyCohortMembers (the restored cohort names {}'s poolers), non-actionable. KNOWN LIMITATION of the pinned Multigres (docs/backup-restore.md); reads fail with {:?}",
                restored_from.len(),
                pool_pods.len(),
                restored_from
                    .iter()
                    .collect::<std::collections::BTreeSet<_>>(),
                before.cluster,
                got.err()
                    .map(|e| e.to_string().lines().last().unwrap_or_default().to_string())
            );
            return Ok(running);
        }
        if started.elapsed() > deadline {
            bail!(
                "restore into a new cluster: after {deadline:?}, restored on {restored_from:?} of {pool_pods:?}, rows {got:?}"
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Stops `old_pods` for good, applies the cluster of `manifest` and starts its pods (claims cloned
/// from their `dataSource`, its global TopoServer backed by the harness's etcd, `extra` hosts
/// added). Returns its name and its running pods.
#[allow(clippy::too_many_arguments)]
pub async fn replace_cluster(
    opts: &Options,
    admin: &Client,
    ns: &str,
    old_pods: &[String],
    manifest: &Path,
    address_map: &str,
    extra: &Hosts,
    pids: &Pids,
) -> Result<(String, Running)> {
    kubelet::stop_pods(pids, old_pods);
    println!(
        "  stopped {} pods for good (their cluster no longer writes)",
        old_pods.len()
    );
    let applied = Instant::now();
    samples::apply_files(admin, &[manifest.to_path_buf()], ns).await?;
    let name = samples::cluster_at(manifest)?.name;
    let (pods, _) = operator_run::wait_for_pods(admin, ns, &name).await?;
    println!(
        "  applied {}: {} pods generated in {:.1}s",
        manifest.display(),
        pods.len(),
        applied.elapsed().as_secs_f64()
    );
    clone_claims(admin, ns, &opts.work).await?;
    let mut hosts = Hosts::default();
    for line in extra.lines() {
        if let Some((ip, names)) = line.split_once(' ') {
            hosts.add(
                ip.trim().parse()?,
                names.split(' ').filter(|n| !n.is_empty()).map(String::from),
            );
        }
    }
    let etcd = address_map
        .split(',')
        .find_map(|e| e.strip_prefix("*:2379="))
        .context("the address map has no *:2379 rule")?;
    let topo_service = naming::topo_client_service(&naming::global_topo_server(&name));
    // Each cluster its own stand-in address, after those of the first cluster's TopoServers.
    static NEXT_TOPO: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(9);
    let ip = dns::topo_ip(NEXT_TOPO.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let listen = SocketAddr::new(ip.into(), 2379);
    let forwarder = topo_proxy::forward(listen, etcd.parse()?).await?;
    // The forwarder serves until the harness exits.
    std::mem::forget(forwarder);
    hosts.add(ip, dns::service_names(&topo_service, ns));
    println!(
        "  substitution: TopoServer {topo_service} (pods not run) -> {listen} -> the harness's etcd at {etcd}"
    );
    let running = operator_run::start_pods(opts, admin, ns, pods, hosts, pids).await?;
    Ok((name, running))
}

/// The names of the shard pool pods among `running`.
pub fn pool_pods(running: &Running) -> Vec<String> {
    running
        .pods
        .iter()
        .filter(|(p, _)| {
            p.labels().get(labels::COMPONENT).map(String::as_str)
                == Some(labels::component::SHARD_POOL)
        })
        .map(|(p, _)| p.name_any())
        .collect()
}

/// The backup id each pool pod's multipooler logged it restored from.
pub fn restored_backups(logs: &Path, pods: &[String]) -> Vec<String> {
    pods.iter()
        .filter_map(|pod| {
            let text = std::fs::read_to_string(logs.join(format!("{pod}_multipooler.log"))).ok()?;
            text.lines()
                .filter(|l| l.contains("MonitorPostgres: restoring from backup"))
                .find_map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).ok()?;
                    v["backup_id"].as_str().map(String::from)
                })
        })
        .collect()
}

/// Whether a multiorch of `cluster` logged the problem `code`.
fn multiorch_verdict(logs: &Path, cluster: &str, code: &str) -> bool {
    std::fs::read_dir(logs)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.starts_with(&format!("{cluster}-")) && name.ends_with("_multiorch.log")
        })
        .any(|e| {
            std::fs::read_to_string(e.path())
                .is_ok_and(|t| t.contains(&format!("\"problem_code\":\"{code}\"")))
        })
}

/// The first cell's gateway of `cluster`, with its credentials.
pub async fn gateway(
    admin: &Client,
    ns: &str,
    cluster: &str,
    services: &[Service],
    pods: &[(Pod, std::net::Ipv4Addr)],
) -> Result<Target> {
    let mine = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(labels::CLUSTER).map(String::as_str) == Some(cluster)
    };
    let services: Vec<Service> = services
        .iter()
        .filter(|s| mine(s.labels()))
        .cloned()
        .collect();
    let pods: Vec<(Pod, std::net::Ipv4Addr)> = pods
        .iter()
        .filter(|(p, _)| mine(p.labels()))
        .cloned()
        .collect();
    let (svc, port) = gateway_service(&services, &pods)?;
    let shard = Api::<multigres_api::Shard>::namespaced(admin.clone(), ns)
        .list(&ListParams::default().labels(&format!("{}={cluster}", labels::CLUSTER)))
        .await?
        .items
        .into_iter()
        .next()
        .context("no Shard")?;
    let creds = &shard.spec.credentials;
    let secret = Api::<Secret>::namespaced(admin.clone(), ns)
        .get(&creds.secret_name)
        .await?;
    let key = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|v| String::from_utf8_lossy(&v.0).to_string())
            .with_context(|| format!("Secret {} has no {k}", creds.secret_name))
    };
    Ok(Target {
        host: format!("{svc}.{ns}.svc.cluster.local"),
        port,
        user: key(&creds.username_key)?,
        password: key(&creds.password_key)?,
        database: shard.spec.database.clone(),
    })
}

/// What a storage class's CSI clone does for a claim whose `dataSource` is another claim: its
/// folder starts as a copy of the source's.
async fn clone_claims(admin: &Client, ns: &str, work: &Path) -> Result<()> {
    let claims = Api::<PersistentVolumeClaim>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await?;
    for claim in claims {
        let Some(source) = claim
            .spec
            .as_ref()
            .and_then(|s| s.data_source.as_ref())
            .filter(|d| d.kind == "PersistentVolumeClaim")
        else {
            continue;
        };
        let from = work.join("claims").join(&source.name);
        let to = work.join("claims").join(claim.name_any());
        if to.exists() {
            continue;
        }
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&from)
            .arg(&to)
            .status()?;
        if !status.success() {
            bail!("copying {} to {}", from.display(), to.display());
        }
        println!(
            "  substitution: claim {} cloned from {} (its dataSource) as a CSI clone would: {} -> {}",
            claim.name_any(),
            source.name,
            from.display(),
            to.display()
        );
    }
    Ok(())
}
