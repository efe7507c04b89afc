//! What a user of the running cluster sees beside SQL: every metrics port the PodMonitor scrapes
//! answers in Prometheus' text format, and `kubectl multigres psql` reaches the data through
//! multigateway with the generated credentials.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use multigres_api::multigres;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The samples (a name, or a name and its value) a container must export.
fn required(container: &str) -> &'static [&'static str] {
    match container {
        "multipooler" => &["mg_pooler_up"],
        // Logged in to Postgres, not only serving its own page.
        "postgres-exporter" => &["pg_up 1"],
        _ => &[],
    }
}

/// Every `metrics`, `pgctld-metrics` and `pg-metrics` container port of every pod answers
/// `GET /metrics`.
pub async fn metrics(pods: &[(Pod, Ipv4Addr)]) -> Result<()> {
    let names = [
        multigres::METRICS_PORT_NAME,
        multigres::PGCTLD_METRICS_PORT_NAME,
        multigres::POSTGRES_EXPORTER_PORT_NAME,
    ];
    let mut checked = 0;
    for (pod, ip) in pods {
        // pgctld runs as a native sidecar (an init container).
        let containers = pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers));
        for c in containers {
            let ports = c.ports.iter().flatten();
            for port in ports.filter(|p| p.name.as_deref().is_some_and(|n| names.contains(&n))) {
                let at = format!("{ip}:{}", port.container_port);
                let body = scrape(&at, Duration::from_secs(30))
                    .await
                    .with_context(|| format!("metrics of {}/{} at {at}", pod.name_any(), c.name))?;
                let samples = body
                    .lines()
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .count();
                // OpenTelemetry's `target_info` on every Multigres binary.
                let own: &[&str] = match c.name.as_str() {
                    "postgres-exporter" => &[],
                    _ => &["target_info"],
                };
                let missing: Vec<&str> = own
                    .iter()
                    .chain(required(&c.name))
                    .filter(|name| !body.lines().any(|l| l.starts_with(*name)))
                    .copied()
                    .collect();
                if !missing.is_empty() {
                    bail!(
                        "{}/{} at {at} exports no {missing:?}",
                        pod.name_any(),
                        c.name
                    );
                }
                checked += 1;
                println!(
                    "  CHECK metrics {}/{} ({at}): {samples} samples",
                    pod.name_any(),
                    c.name
                );
            }
        }
    }
    if checked == 0 {
        bail!("no pod has a metrics port");
    }
    Ok(())
}

/// `GET /metrics` over plain HTTP/1.0, retried until `deadline` (a process may still be starting).
async fn scrape(at: &str, deadline: Duration) -> Result<String> {
    let start = Instant::now();
    loop {
        match get(at).await {
            Ok(body) => return Ok(body),
            Err(e) if start.elapsed() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn get(at: &str) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(at).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: conformance\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no HTTP header end")?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        bail!("answered {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_string())
}

/// `kubectl multigres psql <cluster> --address <gateway> -- -tAc <sql>` with the machine's psql,
/// as a user outside the cluster would run it against a reachable gateway.
pub async fn plugin_psql(
    kubeconfig: &Path,
    namespace: &str,
    cluster: &str,
    gateway: &str,
    sql: &str,
) -> Result<String> {
    let args = [
        "psql",
        cluster,
        "-n",
        namespace,
        "--address",
        gateway,
        "--",
        "-tAc",
        sql,
    ];
    Ok(plugin(kubeconfig, &args).await?.trim().to_string())
}

/// `kubectl multigres status <cluster> --admin-url <multiadmin> -o json`: the tree with each
/// Shard's replication as the real multiadmin reports it.
pub async fn plugin_status(
    kubeconfig: &Path,
    namespace: &str,
    cluster: &str,
    admin_url: &str,
) -> Result<serde_json::Value> {
    let args = [
        "status",
        cluster,
        "-n",
        namespace,
        "--admin-url",
        admin_url,
        "-o",
        "json",
    ];
    Ok(serde_json::from_str(&plugin(kubeconfig, &args).await?)?)
}

async fn plugin(kubeconfig: &Path, args: &[&str]) -> Result<String> {
    let plugin = super::operator_run::target_dir()?.join("kubectl-multigres");
    let output = tokio::process::Command::new(&plugin)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .await
        .with_context(|| format!("running {}", plugin.display()))?;
    if !output.status.success() {
        bail!(
            "kubectl multigres {} exited with {}: {}",
            args[0],
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
