//! The data-path checks on the running pods: a write and a read back through the first cell's
//! multigateway Service, the primary and replicas found by asking each pooler pod's postgres, a read
//! on a replica, and the primary's postmaster killed until writes succeed again.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Api, Client, ResourceExt};
use multigres_api::labels::{self, component};

use super::kubelet::Pids;
use super::observe;
use super::operator_run::Options;
use super::sandbox::Root;
use super::sql::{self, Target};
use super::topology_names::the_shard;
use super::{Timings, kill_primary};

/// The control plane as its administrator reaches it: a client, and the kubeconfig for commands.
pub struct Admin<'a> {
    pub client: &'a Client,
    pub kubeconfig: &'a std::path::Path,
}

/// When the cluster was applied, and how long after that every container had been started.
pub struct Clock {
    pub applied: Instant,
    pub started: Duration,
}

pub async fn checks(
    opts: &Options,
    admin: &Admin<'_>,
    ns: &str,
    pods: &[(Pod, Ipv4Addr)],
    services: &[Service],
    pids: &Pids,
    clock: Clock,
) -> Result<Timings> {
    let Clock { applied, started } = clock;
    let root = &opts.root;
    let shard = the_shard(admin.client, ns).await?;
    let cluster_name = shard
        .labels()
        .get(labels::CLUSTER)
        .cloned()
        .unwrap_or_default();
    let gateway = super::restore::gateway(admin.client, ns, &cluster_name, services, pods).await?;
    println!(
        "  psql -h {} -p {} -U {} -d {}",
        gateway.host, gateway.port, gateway.user, gateway.database
    );

    let (first, id) = sql::until_ok(
        root,
        &gateway,
        &sql::insert("bootstrap"),
        bootstrap_timeout(),
    )
    .await
    .context("bootstrap: first write through multigateway")?;
    let bootstrap = first - applied;
    println!(
        "  CHECK write through multigateway: ok (row {id}), {:.1}s after apply = {:.1}s until every container was started + {:.1}s from there",
        bootstrap.as_secs_f64(),
        started.as_secs_f64(),
        (bootstrap - started).as_secs_f64()
    );
    let read = sql::psql(
        root,
        &gateway,
        "SELECT label FROM conformance ORDER BY id LIMIT 1",
    )
    .await?;
    if read != "bootstrap" {
        bail!("read back through multigateway gave {read:?}");
    }
    println!("  CHECK read back through multigateway: ok ({read})");
    let at = format!("{}:{}", gateway_pod_ip(services, pods)?, gateway.port);
    let sql = "SELECT label FROM conformance ORDER BY id LIMIT 1";
    let read = observe::plugin_psql(admin.kubeconfig, ns, &cluster_name, &at, sql).await?;
    if read != "bootstrap" {
        bail!("kubectl multigres psql read {read:?}");
    }
    println!("  CHECK kubectl multigres psql {cluster_name} --address {at}: ok ({read})");
    tls_session(root, admin, ns, &cluster_name, &gateway).await?;
    observe::metrics(pods).await?;

    let poolers: Vec<&(Pod, Ipv4Addr)> = pods
        .iter()
        .filter(|(p, _)| {
            p.labels().get(labels::COMPONENT).map(String::as_str) == Some(component::SHARD_POOL)
        })
        .collect();
    let (primary, replicas) = roles(root, &gateway, &poolers).await;
    let primary = primary.context("no pooler pod's postgres answers as primary")?;
    println!(
        "  primary: {primary}; replicas: {:?}",
        replicas.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    let (replica, at) = replicas.first().context("no replica postgres is running")?;
    replica_read(root, replica, at).await?;
    plugin_replication(admin, ns, &cluster_name, pods, &primary, &replicas).await?;
    parameters_applied(root, &gateway, &poolers).await?;
    match gateway_replica_port(services, pods) {
        Some(port) => {
            let t = gateway.at(&gateway.host, port);
            let sql = "SELECT pg_is_in_recovery() || ':' || count(*) FROM conformance";
            let (_, got) = sql::until_ok(root, &t, sql, Duration::from_secs(60)).await?;
            if !got.starts_with("true:") && !got.starts_with("t:") {
                bail!("multigateway's replica port {port} answered {got:?}, not from a replica");
            }
            println!(
                "  CHECK read on a replica through multigateway (--pg-replica-port {port}): ok ({got})"
            );
        }
        None => println!(
            "  NOTE the generated multigateway has no --pg-replica-port: it serves replica reads only there, so the replica was read directly"
        ),
    }

    note_multiorch_intervals(pods);
    let sandboxes: Vec<i32> = pids
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{primary}/")))
        .map(|(_, pid)| *pid)
        .collect();
    let failover = kill_primary(root, &gateway, "failover", |_| true, &sandboxes).await?;
    planned_switchover(root, &gateway, &shard, pods, &poolers).await?;
    backup(&shard, pods, &opts.work).await?;
    Ok(Timings {
        bootstrap,
        failover,
    })
}

/// `kubectl multigres status` against the real multiadmin's REST API names the pod postgres calls
/// the primary, and every replica as a streaming standby within the lag threshold.
async fn plugin_replication(
    admin: &Admin<'_>,
    ns: &str,
    cluster: &str,
    pods: &[(Pod, Ipv4Addr)],
    primary: &str,
    replicas: &[(String, Target)],
) -> Result<()> {
    let url = format!(
        "http://{}:{}",
        multiadmin_ip(pods)?,
        multigres_api::multigres::MULTIADMIN_HTTP_PORT
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tree = observe::plugin_status(admin.kubeconfig, ns, cluster, &url).await?;
        let shard = tree["tableGroups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|tg| tg["shards"].as_array().into_iter().flatten())
            .find(|s| !s["replication"].is_null());
        let r = shard.map(|s| s["replication"].clone()).unwrap_or_default();
        let standbys: Vec<&serde_json::Value> =
            r["standbys"].as_array().into_iter().flatten().collect();
        let all_streaming = replicas.iter().all(|(name, _)| {
            standbys.iter().any(|s| {
                s["pod"] == name.as_str()
                    && s["walReceiver"] == "streaming"
                    && s["lagging"] == false
            })
        });
        if r["primary"] == primary && all_streaming {
            let lags: Vec<String> = standbys
                .iter()
                .map(|s| {
                    format!(
                        "{} {} B",
                        s["pod"].as_str().unwrap_or_default(),
                        s["replayLagBytes"]
                    )
                })
                .collect();
            println!(
                "  CHECK kubectl multigres status --admin-url {url}: ok, primary {primary} at {}, standbys streaming: {}",
                r["primaryLsn"].as_str().unwrap_or("?"),
                lags.join(", ")
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "kubectl multigres status: primary {primary} and streaming replicas {:?} expected; replication was {r:#}; tree: {}",
                replicas.iter().map(|r| &r.0).collect::<Vec<_>>(),
                tree["replicationUnknown"]
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The pooler pod whose postgres answers as primary, and those that answer as replicas.
async fn roles(
    root: &Root,
    gateway: &Target,
    poolers: &[&(Pod, Ipv4Addr)],
) -> (Option<String>, Vec<(String, Target)>) {
    let mut primary = None;
    let mut replicas = Vec::new();
    for (pod, ip) in poolers {
        let t = gateway.at(&ip.to_string(), 5432);
        match sql::psql(root, &t, "SELECT pg_is_in_recovery()")
            .await
            .as_deref()
        {
            Ok("f") => primary = Some(pod.name_any()),
            Ok("t") => replicas.push((pod.name_any(), t)),
            Ok(other) => println!("    {}: answered {other:?}", pod.name_any()),
            Err(e) => println!("    {}: {e:#}", pod.name_any()),
        }
    }
    (primary, replicas)
}

/// The shard controller's planned switchover, made with its own client
/// (`multigres_topology::admin::switch_primary`) against the real multiadmin: another pod's postgres
/// becomes the primary and writes through multigateway succeed again.
async fn planned_switchover(
    root: &Root,
    gateway: &Target,
    shard: &multigres_api::Shard,
    pods: &[(Pod, Ipv4Addr)],
    poolers: &[&(Pod, Ipv4Addr)],
) -> Result<Duration> {
    let (address, key) = multiadmin_of(shard, pods)?;
    // Right after a failover multiadmin may still see no standby: ask until it accepts.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (old, asked) = loop {
        let (before, _) = roles(root, gateway, poolers).await;
        let started = Instant::now();
        match multigres_topology::admin::switch_primary(
            &address,
            &multigres_topology::AddressMapping::off(),
            key.clone(),
            "conformance: planned switchover",
            Duration::from_secs(30),
        )
        .await
        {
            Ok(demoted) => {
                println!("  switchover: multiadmin demoted pooler {demoted} (pod {before:?})");
                break (before, started);
            }
            Err(e) if Instant::now() < deadline => {
                println!("    switchover not started yet: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => bail!("multiadmin SwitchPrimary: {e}"),
        }
    };
    let (_, _) = sql::until_ok(
        root,
        gateway,
        &sql::insert("switchover"),
        Duration::from_secs(300),
    )
    .await
    .context("a write through multigateway after the switchover")?;
    let took = asked.elapsed();
    let (now, _) = roles(root, gateway, poolers).await;
    if now.is_none() || now == old {
        bail!("after the switchover the primary is {now:?}, before it was {old:?}");
    }
    println!(
        "  CHECK planned switchover through multiadmin SwitchPrimary (the shard controller's client): ok, primary {old:?} -> {now:?}, writes again {:.1}s after the request",
        took.as_secs_f64()
    );
    Ok(took)
}

/// A full backup of `shard` through the multiadmin among `pods`, as the backup controller takes
/// one: Backup (retried while multiadmin sees no serving replica), GetBackupJobStatus until it
/// ends, GetBackups listing it with a size and a stop time. Returns the client, the shard's key,
/// the backup id and the repository's list.
pub(super) async fn full_backup(
    shard: &multigres_api::Shard,
    pods: &[(Pod, Ipv4Addr)],
) -> Result<(
    multigres_topology::admin::Multiadmin,
    multigres_topology::ShardKey,
    String,
    Vec<multigres_topology::admin::BackupInfo>,
)> {
    let (address, key) = multiadmin_of(shard, pods)?;
    let mut admin = multigres_topology::admin::Multiadmin::connect(
        &address,
        &multigres_topology::AddressMapping::off(),
        Duration::from_secs(30),
    )
    .await?;
    let asked = Instant::now();
    // Right after a switchover multiadmin may see no serving replica yet: ask until it accepts.
    let job = loop {
        match admin.backup(&key, "full", false).await {
            Ok(job) => break job,
            Err(e) if asked.elapsed() < Duration::from_secs(120) => {
                println!("    backup not started yet: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => bail!("multiadmin Backup: {e}"),
        }
    };
    let backup_id = loop {
        let status = admin.backup_job(&key, &job).await?;
        match status.status {
            multigres_topology::admin::JobStatus::Completed => break status.backup_id,
            multigres_topology::admin::JobStatus::Failed => {
                bail!("backup job {job} failed: {}", status.error)
            }
            _ if asked.elapsed() > Duration::from_secs(300) => {
                bail!("backup job {job} still {:?} after 300s", status.status)
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    let listed = admin.backups(&key).await?;
    let info = listed
        .iter()
        .find(|b| b.backup_id == backup_id)
        .with_context(|| format!("GetBackups does not list {backup_id}: {listed:?}"))?;
    if info.backup_size_bytes == 0 || info.stop_timestamp.is_none() {
        bail!("backup {backup_id} listed without size or stop time: {info:?}");
    }
    println!(
        "  CHECK full backup through multiadmin (the backup controller's client): ok, job {job} -> backup {backup_id}, {} bytes, {:.1}s; the repository lists {} backup(s)",
        info.backup_size_bytes,
        asked.elapsed().as_secs_f64(),
        listed.len()
    );
    Ok((admin, key, backup_id, listed))
}

/// A full backup of the shard the way the backup controller takes one
/// (`multigres_topology::admin::Multiadmin`: Backup, then GetBackupJobStatus until it ends, then
/// GetBackups for its size), against the real multiadmin and pgBackRest; the repository is
/// encrypted (the manifest's `backup.encryption`), and the controller's retention call
/// (ExpireBackups, repo1-retention-full=1) removes the older full backup.
async fn backup(
    shard: &multigres_api::Shard,
    pods: &[(Pod, Ipv4Addr)],
    work: &std::path::Path,
) -> Result<()> {
    let (mut admin, key, backup_id, listed) = full_backup(shard, pods).await?;
    let info_file = work
        .join("claims")
        .join(multigres_api::naming::backup_pvc(&shard.name_any()))
        .join("backup/multigres/backup.info");
    // pgBackRest encrypts even the repository's info files (OpenSSL's salted format); a plain one
    // is an INI text starting with `[backrest]`.
    let bytes =
        std::fs::read(&info_file).with_context(|| format!("reading {}", info_file.display()))?;
    if !bytes.starts_with(b"Salted__") {
        bail!(
            "{} is not encrypted: it starts {:?}",
            info_file.display(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(16)])
        );
    }
    println!(
        "  CHECK the repository is encrypted (backup.encryption): ok ({} is aes-256-cbc ciphertext)",
        info_file.display()
    );
    let older: Vec<String> = listed
        .iter()
        .filter(|b| b.backup_id != backup_id)
        .map(|b| b.backup_id.clone())
        .collect();
    let expired = admin.expire_backups(&key, 1).await?;
    let left: Vec<String> = admin
        .backups(&key)
        .await?
        .into_iter()
        .map(|b| b.backup_id)
        .collect();
    if older.is_empty() || expired != older || left != [backup_id.clone()] {
        bail!("retention of 1 full backup: expired {expired:?} (older {older:?}), left {left:?}");
    }
    println!(
        "  CHECK retention (ExpireBackups repo1-retention-full=1, as backup.retention asks): ok, expired {expired:?}, left {left:?}"
    );
    Ok(())
}

/// The address of the multiadmin among `pods`, and the key it knows `shard` by.
fn multiadmin_of(
    shard: &multigres_api::Shard,
    pods: &[(Pod, Ipv4Addr)],
) -> Result<(String, multigres_topology::ShardKey)> {
    let address = format!(
        "{}:{}",
        multiadmin_ip(pods)?,
        multigres_api::multigres::MULTIADMIN_GRPC_PORT
    );
    let key = multigres_topology::ShardKey {
        database: shard.spec.database.clone(),
        table_group: shard.spec.table_group.clone(),
        shard: shard.spec.multigres_shard().to_string(),
    };
    Ok((address, key))
}

pub(super) fn multiadmin_ip(pods: &[(Pod, Ipv4Addr)]) -> Result<Ipv4Addr> {
    pods.iter()
        .find(|(p, _)| {
            p.labels().get(labels::COMPONENT).map(String::as_str) == Some(component::MULTIADMIN)
        })
        .map(|(_, ip)| *ip)
        .context("no multiadmin pod")
}

/// Reads the bootstrap row on a replica's postgres (multigateway serves replica reads only on
/// `--pg-replica-port`, which the generated multigateway does not set).
async fn replica_read(root: &Root, replica: &str, at: &Target) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = sql::psql(
            root,
            at,
            "SELECT count(*) FROM conformance WHERE label = 'bootstrap'",
        )
        .await;
        if got.as_deref().is_ok_and(|n| n != "0") {
            println!(
                "  CHECK read on replica {replica} ({}:{}): ok",
                at.host, at.port
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("replica {replica} never showed the row: {got:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The manifest's `postgresParameters` (work_mem 12MB) are in force on every pool pod's Postgres,
/// the primary and the replicas restored from its backup alike.
async fn parameters_applied(
    root: &Root,
    gateway: &Target,
    poolers: &[&(Pod, Ipv4Addr)],
) -> Result<()> {
    for (pod, ip) in poolers {
        let t = gateway.at(&ip.to_string(), 5432);
        let got = sql::psql(root, &t, "SHOW work_mem").await?;
        if got != "12MB" {
            bail!(
                "{}: work_mem is {got:?}, not the 12MB of postgresParameters",
                pod.name_any()
            );
        }
    }
    println!(
        "  CHECK postgresParameters in force (SHOW work_mem = 12MB) on all {} pool pods: ok",
        poolers.len()
    );
    Ok(())
}

/// The `--pg-replica-port` of the first cell's multigateway, when it has one.
fn gateway_replica_port(services: &[Service], pods: &[(Pod, Ipv4Addr)]) -> Option<u16> {
    let (svc, _) = gateway_service(services, pods).ok()?;
    let selector = services
        .iter()
        .find(|s| s.name_any() == svc)?
        .spec
        .as_ref()?
        .selector
        .clone()?;
    let (pod, _) = pods
        .iter()
        .find(|(p, _)| selector.iter().all(|(k, v)| p.labels().get(k) == Some(v)))?;
    let c = pod.spec.as_ref()?.containers.first()?;
    let line = command_line(c);
    super::rewrite::get(&line, "--pg-replica-port")?
        .parse()
        .ok()
        .filter(|p| *p != 0)
}

/// The first cell's multigateway Service and the container port its PostgreSQL port targets.
/// The address of the pod behind the first cell's multigateway Service.
fn gateway_pod_ip(services: &[Service], pods: &[(Pod, Ipv4Addr)]) -> Result<Ipv4Addr> {
    let (name, _) = gateway_service(services, pods)?;
    let selector = services
        .iter()
        .find(|s| s.name_any() == name)
        .and_then(|s| s.spec.as_ref()?.selector.clone())
        .unwrap_or_default();
    pods.iter()
        .find(|(p, _)| selector.iter().all(|(k, v)| p.labels().get(k) == Some(v)))
        .map(|(_, ip)| *ip)
        .context("multigateway Service selects no pod")
}

pub(super) fn gateway_service(
    services: &[Service],
    pods: &[(Pod, Ipv4Addr)],
) -> Result<(String, u16)> {
    let svc = services
        .iter()
        .filter(|s| {
            s.labels().get(labels::COMPONENT).map(String::as_str) == Some(component::MULTIGATEWAY)
        })
        .min_by_key(|s| s.name_any())
        .context("no multigateway Service")?;
    let spec = svc.spec.as_ref().context("Service without spec")?;
    let port = spec
        .ports
        .iter()
        .flatten()
        .find(|p| {
            p.name
                .as_deref()
                .is_some_and(|n| n.contains("pg") || n.contains("postgres"))
        })
        .or_else(|| spec.ports.iter().flatten().next())
        .context("multigateway Service has no port")?;
    let selector = spec.selector.clone().unwrap_or_default();
    let backend = pods
        .iter()
        .find(|(p, _)| selector.iter().all(|(k, v)| p.labels().get(k) == Some(v)))
        .context("multigateway Service selects no pod")?;
    let target = match &port.target_port {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => backend
            .0
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
            .context("named target port not found")?,
        None => port.port,
    };
    Ok((svc.name_any(), target as u16))
}

/// How long the first write may take: `MULTIGRES_CONFORMANCE_BOOTSTRAP_TIMEOUT` seconds, default 600.
fn bootstrap_timeout() -> Duration {
    let secs = std::env::var("MULTIGRES_CONFORMANCE_BOOTSTRAP_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

/// What `multigres cluster init` gives multiorch to detect a dead primary quickly, against the
/// binary's defaults (5 s and 1 s); the generated multiorch is named when it leaves them at default.
const FAST_MULTIORCH: [(&str, &str); 2] = [
    ("--pooler-health-check-interval", "500ms"),
    ("--recovery-cycle-interval", "500ms"),
];

fn note_multiorch_intervals(pods: &[(Pod, Ipv4Addr)]) {
    let orch = pods.iter().find(|(p, _)| {
        p.labels().get(labels::COMPONENT).map(String::as_str) == Some(component::MULTIORCH)
    });
    let Some(c) = orch.and_then(|(p, _)| p.spec.as_ref()?.containers.first()) else {
        return;
    };
    let line = command_line(c);
    for (flag, local) in FAST_MULTIORCH {
        if super::rewrite::get(&line, flag).is_none() {
            println!(
                "  NOTE the generated multiorch has no {flag} (binary default; `multigres cluster init` sets {local}): failover detection is slower"
            );
        }
    }
}

/// A container's command and args as one list, empty words dropped.
fn command_line(c: &k8s_openapi::api::core::v1::Container) -> Vec<String> {
    let words = c.command.iter().flatten().chain(c.args.iter().flatten());
    words.filter(|a| !a.is_empty()).cloned().collect()
}

/// One psql session through multigateway over TLS, the server's certificate and name verified
/// against the cluster's CA (the Secret its Cells mount, `<cluster>-tls-<expiry>` from the
/// operator's derived CA, docs/security.md): the same read as above.
async fn tls_session(
    root: &Root,
    admin: &Admin<'_>,
    ns: &str,
    cluster: &str,
    gateway: &Target,
) -> Result<()> {
    let cells = Api::<multigres_api::Cell>::namespaced(admin.client.clone(), ns)
        .list(&kube::api::ListParams::default().labels(&format!("{}={cluster}", labels::CLUSTER)))
        .await?;
    let name = cells
        .items
        .iter()
        .find_map(|c| Some(c.spec.tls.as_ref()?.secret_name.clone()))
        .ok_or_else(|| anyhow!("no Cell of {cluster} mounts a TLS Secret"))?;
    println!("  the cluster's TLS Secret: {name}");
    let secret = Api::<Secret>::namespaced(admin.client.clone(), ns)
        .get(&name)
        .await
        .with_context(|| format!("the cluster's TLS Secret {name}"))?;
    let ca = secret
        .data
        .as_ref()
        .and_then(|d| d.get("ca.crt"))
        .ok_or_else(|| anyhow!("Secret {name} has no ca.crt"))?;
    let in_root = "/etc/multigres-cluster-ca.crt";
    std::fs::write(root.dir.join(in_root.trim_start_matches('/')), &ca.0)?;
    let out = sql::psql_verified_tls(
        root,
        gateway,
        in_root,
        &[
            "\\conninfo",
            "SELECT label FROM conformance ORDER BY id LIMIT 1",
        ],
    )
    .await
    .context("psql with sslmode=verify-full through multigateway")?;
    if !out.contains("SSL connection") || !out.ends_with("bootstrap") {
        bail!("psql over TLS printed {out:?}");
    }
    let protocol = out
        .split("protocol: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or("?");
    println!(
        "  CHECK psql sslmode=verify-full through multigateway ({}): ok ({protocol}, read bootstrap in the same session)",
        gateway.host
    );
    Ok(())
}
