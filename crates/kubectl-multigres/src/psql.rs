//! `kubectl multigres psql`: a psql session through a cell's multigateway with the cluster's
//! Postgres credentials. [`plan`] (pure) picks the gateway pod (or takes `--address`), the user and
//! the database; [`run`] reads the Secret, port-forwards to the pod through the API server when
//! needed, and runs the local `psql` with the connection in its environment (the password is
//! never on a command line, nor printed).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use multigres_api::labels::{self, component};
use multigres_api::multigres::GATEWAY_PG_PORT;
use multigres_api::{CredentialsRef, MultigresCluster, naming};
use serde::Serialize;

/// How psql reaches the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Route {
    /// A port-forward through the API server to this pod's Postgres port, from 127.0.0.1.
    PortForward { pod: String, port: u16 },
    /// `--address host:port`, dialled directly.
    Address { host: String, port: u16 },
}

/// Everything about a session but the password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub route: Route,
    /// The cell whose gateway is used (None with `--address`).
    pub cell: Option<String>,
    pub user: String,
    pub database: String,
    /// Where the password comes from: `<namespace>/<Secret>` and its key.
    pub password_from: String,
}

/// What `psql` asks for.
pub struct Want<'a> {
    pub cell: Option<&'a str>,
    pub database: Option<&'a str>,
    pub address: Option<&'a str>,
}

/// The Secret (and keys) holding the cluster's Postgres user and password.
pub fn credentials(cluster: &MultigresCluster) -> CredentialsRef {
    cluster
        .spec
        .credentials
        .clone()
        .unwrap_or_else(|| CredentialsRef::named(naming::credentials_secret(&cluster.name_any())))
}

fn parse_address(address: &str) -> Result<(String, u16)> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("--address {address}: expected host:port"))?;
    let port = port
        .parse()
        .map_err(|_| anyhow!("--address {address}: {port} is not a port"))?;
    if host.is_empty() {
        bail!("--address {address}: no host");
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Chooses how to connect. `gateways` are the cluster's multigateway pods; without `--cell`, the
/// first cell of the spec with a Ready gateway pod is used; the pod is the first Ready one by name.
pub fn plan(
    cluster: &MultigresCluster,
    gateways: &[Pod],
    user: &str,
    want: &Want,
) -> Result<Session> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let database = match want.database {
        Some(db) => db.to_string(),
        None => cluster
            .spec
            .databases
            .first()
            .map(|d| d.name.clone())
            .unwrap_or_else(|| "postgres".to_string()),
    };
    let creds = credentials(cluster);
    let password_from = format!(
        "{namespace}/{} key {}",
        creds.secret_name, creds.password_key
    );
    let cells: Vec<&str> = cluster.spec.cells.iter().map(|c| c.name.as_str()).collect();
    if let Some(cell) = want.cell
        && !cells.contains(&cell)
    {
        bail!(
            "MultigresCluster {namespace}/{name} has no cell {cell} (cells: {})",
            cells.join(", ")
        );
    }
    if let Some(address) = want.address {
        let (host, port) = parse_address(address)?;
        return Ok(Session {
            route: Route::Address { host, port },
            cell: want.cell.map(String::from),
            user: user.to_string(),
            database,
            password_from,
        });
    }
    let ready_in = |cell: &str| {
        let mut pods: Vec<&Pod> = gateways
            .iter()
            .filter(|p| p.labels().get(labels::CELL).map(String::as_str) == Some(cell))
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| multigres_runtime::pods::is_ready(p))
            .collect();
        pods.sort_by_key(|p| p.name_any());
        pods.first().map(|p| p.name_any())
    };
    let candidates: Vec<&str> = match want.cell {
        Some(cell) => vec![cell],
        None => cells.clone(),
    };
    let chosen = candidates
        .iter()
        .find_map(|cell| ready_in(cell).map(|pod| (cell.to_string(), pod)));
    let Some((cell, pod)) = chosen else {
        bail!(
            "no Ready multigateway pod in {} of MultigresCluster {namespace}/{name}; see \
             `kubectl multigres status {name}`, or pass --address host:port",
            match want.cell {
                Some(cell) => format!("cell {cell}"),
                None => "any cell".to_string(),
            }
        );
    };
    Ok(Session {
        route: Route::PortForward {
            pod,
            port: GATEWAY_PG_PORT as u16,
        },
        cell: Some(cell),
        user: user.to_string(),
        database,
        password_from,
    })
}

/// psql's environment for `session`, reached at `host:port`; the password as given (the real one
/// to run psql, a placeholder to print).
pub fn environment(
    session: &Session,
    host: &str,
    port: &str,
    password: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("PGHOST".to_string(), host.to_string()),
        ("PGPORT".to_string(), port.to_string()),
        ("PGUSER".to_string(), session.user.clone()),
        ("PGPASSWORD".to_string(), password.to_string()),
        ("PGDATABASE".to_string(), session.database.clone()),
    ])
}

/// Where psql connects: the local end of the port-forward, or the address.
pub fn endpoint(session: &Session, local_port: Option<u16>) -> (String, String) {
    match &session.route {
        Route::PortForward { .. } => (
            "127.0.0.1".to_string(),
            local_port.map_or("<local port>".to_string(), |p| p.to_string()),
        ),
        Route::Address { host, port } => (host.clone(), port.to_string()),
    }
}

/// What `--print-env` shows: the session and psql's environment with the password left out.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Printed {
    pub session: Session,
    pub env: BTreeMap<String, String>,
    pub command: Vec<String>,
}

pub fn printed(session: &Session, args: &[String]) -> Printed {
    let (host, port) = endpoint(session, None);
    let hidden = format!("<from Secret {}>", session.password_from);
    Printed {
        session: session.clone(),
        env: environment(session, &host, &port, &hidden),
        command: std::iter::once("psql".to_string())
            .chain(args.iter().cloned())
            .collect(),
    }
}

pub fn render(printed: &Printed) -> String {
    let mut out = String::new();
    match &printed.session.route {
        Route::PortForward { pod, port } => out.push_str(&format!(
            "# port-forward to pod {pod}:{port} (cell {}) from 127.0.0.1:<local port>\n",
            printed.session.cell.as_deref().unwrap_or("?")
        )),
        Route::Address { host, port } => out.push_str(&format!("# directly to {host}:{port}\n")),
    }
    for (k, v) in &printed.env {
        out.push_str(&format!("{k}={v}\n"));
    }
    out.push_str(&printed.command.join(" "));
    out.push('\n');
    out
}

/// Reads the cluster, its gateway pods and the user name: the session to open.
pub async fn session(
    client: &Client,
    namespace: &str,
    cluster: &str,
    want: &Want<'_>,
) -> Result<(Session, CredentialsRef)> {
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), namespace);
    let mgc = clusters
        .get(cluster)
        .await
        .with_context(|| format!("MultigresCluster {namespace}/{cluster}"))?;
    let selector = format!(
        "{}={cluster},{}={}",
        labels::CLUSTER,
        labels::COMPONENT,
        component::MULTIGATEWAY
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let gateways = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("listing the multigateway pods of {namespace}/{cluster}"))?
        .items;
    let creds = credentials(&mgc);
    let user = secret_value(client, namespace, &creds.secret_name, &creds.username_key).await?;
    Ok((plan(&mgc, &gateways, &user, want)?, creds))
}

/// One key of a Secret, as text.
pub async fn secret_value(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get(name)
        .await
        .with_context(|| format!("reading Secret {namespace}/{name} (the Postgres credentials)"))?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| anyhow!("Secret {namespace}/{name} has no key {key}"))?;
    String::from_utf8(value.0.clone())
        .with_context(|| format!("Secret {namespace}/{name} key {key}"))
}

/// Opens the session: port-forward when needed, then psql with `args`; returns psql's exit code.
pub async fn run(
    client: &Client,
    namespace: &str,
    session: &Session,
    creds: &CredentialsRef,
    args: &[String],
) -> Result<i32> {
    let password = secret_value(client, namespace, &creds.secret_name, &creds.password_key).await?;
    let local_port = match &session.route {
        Route::PortForward { pod, port } => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            Some(crate::forward::open(pods, pod.clone(), *port).await?)
        }
        Route::Address { .. } => None,
    };
    let (host, port) = endpoint(session, local_port);
    // psql handles Ctrl-C itself (it cancels the running query over a new connection): the plugin,
    // which carries the port-forward, must not die of it.
    tokio::spawn(async { while tokio::signal::ctrl_c().await.is_ok() {} });
    let status = tokio::process::Command::new("psql")
        .args(args)
        .envs(environment(session, &host, &port, &password))
        .status()
        .await
        .context("running psql (is it installed and on the PATH?)")?;
    Ok(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests;
