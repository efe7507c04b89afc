//! One measured operator run: fresh controllers, the load applied and timed to Available, requests,
//! memory and CPU at each mark, then (for `main`) the idle minute and the template edit.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use multigres_api::{DeploymentTemplate, MultigresCluster, Shard, labels};
use serde_json::Value;

use crate::converge::Reached;
use crate::report::{Edit, Idle, OperatorRun};
use crate::shape::Shape;
use crate::{
    Bench, audit, converge, expected_shards, floor_clients, launch, procs, report, shape, step,
};

/// The controllers' default `--lease-duration` plus a second.
const PARTITION_SETTLE: Duration = Duration::from_secs(16);

pub(crate) struct Extras {
    pub idle: Duration,
    pub edit: bool,
    pub shape: Shape,
}

fn resource_of(v: &Value) -> ApiResource {
    match v["kind"].as_str() {
        Some("DeploymentTemplate") => ApiResource::erase::<DeploymentTemplate>(&()),
        _ => ApiResource::erase::<MultigresCluster>(&()),
    }
}

async fn apply_all(admin: &Client, ns: &str, objects: &[Value]) -> Result<()> {
    let pp = PatchParams::apply("multigres-bench").force();
    // Templates first (a cluster whose template is missing waits for it, but would retry later).
    let (templates, clusters): (Vec<&Value>, Vec<&Value>) = objects
        .iter()
        .partition(|v| v["kind"].as_str() == Some("DeploymentTemplate"));
    for batch in [templates, clusters] {
        let results: Vec<Result<()>> = futures::stream::iter(batch)
            .map(|v| {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(admin.clone(), ns, &resource_of(v));
                let pp = pp.clone();
                async move {
                    let name = v["metadata"]["name"].as_str().unwrap_or_default();
                    api.patch(name, &pp, &Patch::Apply(v))
                        .await
                        .with_context(|| format!("applying {name}"))?;
                    Ok(())
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for r in results {
            r?;
        }
    }
    Ok(())
}

fn cluster_label(m: &ObjectMeta) -> String {
    m.labels
        .as_ref()
        .and_then(|l| l.get(labels::CLUSTER).cloned())
        .unwrap_or_default()
}

async fn metrics_of(op: &launch::Operator) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for p in &op.processes {
        if let Ok(v) = procs::kube_requests(&p.http_addr).await {
            out.insert(p.name.clone(), v.into_iter().collect());
        }
    }
    out
}

fn usage_of(op: &launch::Operator) -> BTreeMap<String, procs::Usage> {
    op.processes
        .iter()
        .filter_map(|p| Some((p.name.clone(), procs::usage(p.pid).ok()?)))
        .collect()
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn operator_run(
    bench: &mut Bench,
    tag: &str,
    ns: &str,
    address_map: &str,
    objects: Vec<Value>,
    shard_replicas: u32,
    partition: bool,
    extras: Option<&Extras>,
    t: Instant,
) -> Result<OperatorRun> {
    let admin = bench.admin.clone();
    launch::clear_leases(&admin).await?;
    let op = launch::start(&launch::Launch {
        target_dir: &bench.target,
        admin_kubeconfig: bench.cp.kubeconfig_path(),
        admin: &admin,
        work_dir: &bench.work,
        namespace: ns,
        address_map,
        sim_admin: &bench.sim_admin,
        shard_replicas,
        partition,
        tag,
    })
    .await?;
    launch::wait_ready(&op, Duration::from_secs(120)).await?;
    if bench.floor_clients.is_empty() {
        bench.floor_clients = floor_clients(&bench.work, admin.clone()).await?;
    }
    step(
        t,
        &format!("{tag}: {} controller processes ready", op.processes.len()),
    );
    if partition {
        // A member that joins acts on its buckets only after one Lease duration (a dead member's
        // buckets must have expired first); the scale-out runs measure throughput, not that wait.
        step(
            t,
            &format!("{tag}: waiting {PARTITION_SETTLE:?} for the partition to settle"),
        );
        tokio::time::sleep(PARTITION_SETTLE).await;
    }

    let clusters: Vec<&Value> = objects
        .iter()
        .filter(|v| v["kind"].as_str() == Some("MultigresCluster"))
        .collect();
    let expected_clusters = clusters.len();
    let expected_shards: usize = clusters.iter().map(|c| expected_shards(c)).sum();
    let audit_log = bench.cp.audit_log_path().to_path_buf();
    let usage_before = usage_of(&op);
    let cpu_before = procs::cpu_by_program();
    let metrics_before = metrics_of(&op).await;
    let a0 = audit::offset(&audit_log);
    let start = Instant::now();
    let timeout = bench.timeout;
    let cluster_watch = tokio::spawn(converge::until(
        Api::<MultigresCluster>::namespaced(admin.clone(), ns),
        None,
        expected_clusters,
        start,
        timeout,
        |c: &MultigresCluster| c.metadata.name.clone().unwrap_or_default(),
        |c: &MultigresCluster| converge::available(c.status.as_ref().map(|s| &s.conditions)),
    ));
    let shard_watch = tokio::spawn(converge::until(
        Api::<Shard>::namespaced(admin.clone(), ns),
        None,
        expected_shards,
        start,
        timeout,
        |s: &Shard| cluster_label(&s.metadata),
        |s: &Shard| converge::available(s.status.as_ref().map(|s| &s.conditions)),
    ));
    apply_all(&admin, ns, &objects).await?;
    let applied = start.elapsed().as_secs_f64();
    let shards = shard_watch.await?;
    step(
        t,
        &format!(
            "{tag}: {}/{} Shards Available ({:.1}s)",
            shards.at.len(),
            expected_shards,
            start.elapsed().as_secs_f64()
        ),
    );
    // Clusters follow their Shards through the TableGroups; if they do not within a grace period
    // once every Shard is Available, the report falls back to the Shards.
    let grace =
        Duration::from_secs(60).max(Duration::from_secs_f64(start.elapsed().as_secs_f64() * 0.5));
    let clusters_reached = match tokio::time::timeout(grace, cluster_watch).await {
        Ok(r) => r?,
        Err(_) => Reached {
            expected: expected_clusters,
            ..Default::default()
        },
    };
    let converged_at = start.elapsed().as_secs_f64();
    let a1 = audit::offset(&audit_log);
    let usage_converged = usage_of(&op);
    let cpu_by_program = procs::cpu_spent(&cpu_before, &procs::cpu_by_program());
    let metrics_converged = metrics_of(&op).await;
    let requests = audit::count(&audit_log, a0, a1)?;
    step(
        t,
        &format!(
            "{tag}: {}/{} clusters Available ({converged_at:.1}s)",
            clusters_reached.at.len(),
            expected_clusters
        ),
    );

    let mut run = OperatorRun {
        tag: tag.to_string(),
        namespace: ns.to_string(),
        shard_replicas,
        partition,
        expected_clusters,
        expected_shards,
        apply_seconds: applied,
        clusters: clusters_reached.into(),
        shards: shards.into(),
        requests,
        metrics_requests: report::diff_metrics(&metrics_before, &metrics_converged),
        usage_before,
        usage_converged: usage_converged.clone(),
        cpu_by_program,
        idle: None,
        edit: None,
    };

    if let Some(x) = extras {
        // Idle: nothing changes; count what the controllers write anyway.
        step(t, &format!("{tag}: {}s idle", x.idle.as_secs()));
        let i0 = audit::offset(&audit_log);
        tokio::time::sleep(x.idle).await;
        let i1 = audit::offset(&audit_log);
        let metrics_idle = metrics_of(&op).await;
        run.idle = Some(Idle {
            seconds: x.idle.as_secs_f64(),
            requests: audit::count(&audit_log, i0, i1)?,
            metrics_requests: report::diff_metrics(&metrics_converged, &metrics_idle),
            usage: usage_of(&op),
        });
        if x.edit {
            run.edit =
                Some(template_edit(&admin, ns, &x.shape, &audit_log, timeout, t, tag).await?);
        }
    }
    drop(op);
    Ok(run)
}

/// Edits the shard pools' postgres CPU request in the template and times it to every Shard's spec
/// and to every pool pod (recreated with the new request and Ready).
async fn template_edit(
    admin: &Client,
    ns: &str,
    shape: &Shape,
    audit_log: &Path,
    timeout: Duration,
    t: Instant,
    tag: &str,
) -> Result<Edit> {
    let e0 = audit::offset(audit_log);
    let start = Instant::now();
    let new_cpu = shape::CPU_AFTER;
    let shard_has = move |s: &Shard| {
        s.spec.pools.iter().all(|p| {
            p.postgres
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("cpu"))
                .is_some_and(|q| q.0 == new_cpu)
        })
    };
    let pod_has = move |p: &Pod| {
        // postgres runs as a native sidecar: an init container.
        let cpu_ok = p.spec.as_ref().is_some_and(|s| {
            let init = s.init_containers.iter().flatten();
            init.chain(&s.containers).any(|c| {
                c.name == "postgres"
                    && c.resources
                        .as_ref()
                        .and_then(|r| r.requests.as_ref())
                        .and_then(|r| r.get("cpu"))
                        .is_some_and(|q| q.0 == new_cpu)
            })
        });
        let ready = multigres_runtime::pods::is_ready(p);
        cpu_ok && ready && p.metadata.deletion_timestamp.is_none()
    };
    let pool_selector = format!("{}={}", labels::COMPONENT, labels::component::SHARD_POOL);
    let shards = tokio::spawn(converge::until(
        Api::<Shard>::namespaced(admin.clone(), ns),
        None,
        shape.total_shards() as usize,
        start,
        timeout,
        |s: &Shard| cluster_label(&s.metadata),
        shard_has,
    ));
    let pods = {
        let sel = pool_selector.clone();
        let api = Api::<Pod>::namespaced(admin.clone(), ns);
        let n = (shape.total_shards() * shape.pool_replicas) as usize;
        tokio::spawn(async move {
            converge::until(
                api,
                Some(&sel),
                n,
                start,
                timeout,
                |p: &Pod| cluster_label(&p.metadata),
                pod_has,
            )
            .await
        })
    };
    let template = shape.template(ns, new_cpu);
    Api::<DynamicObject>::namespaced_with(
        admin.clone(),
        ns,
        &ApiResource::erase::<DeploymentTemplate>(&()),
    )
    .patch(
        shape::TEMPLATE,
        &PatchParams::apply("multigres-bench").force(),
        &Patch::Apply(&template),
    )
    .await?;
    let shards = shards.await?;
    step(
        t,
        &format!(
            "{tag}: template edit in {}/{} Shard specs ({:.1}s)",
            shards.at.len(),
            shards.expected,
            start.elapsed().as_secs_f64()
        ),
    );
    let pods = pods.await?;
    step(
        t,
        &format!(
            "{tag}: template edit in {}/{} pool pods, Ready ({:.1}s)",
            pods.at.len(),
            pods.expected,
            start.elapsed().as_secs_f64()
        ),
    );
    let e1 = audit::offset(audit_log);
    Ok(Edit {
        shards: shards.into(),
        pods: pods.into(),
        requests: audit::count(audit_log, e0, e1)?,
    })
}
