//! Start-up and the context every reconcile gets: telemetry, client, metrics and health servers,
//! CRDs established, shutdown on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::watch;

use crate::apply::Applier;
use crate::error::{Backoff, ReconcileError, backoff_policy};
use crate::events::Events;
use crate::health::{Readiness, bind, serve_grpc_health, serve_http};
use crate::metrics::Metrics;
use crate::settings::CommonArgs;
use crate::telemetry::{self, TelemetryGuard};

/// What a controller binary holds while it runs.
pub struct Started {
    pub client: Client,
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub name: String,
    pub identity: String,
    shutdown: watch::Receiver<bool>,
    _telemetry: TelemetryGuard,
}

impl Started {
    /// Resolves once SIGTERM or Ctrl-C arrives.
    pub fn shutdown(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.shutdown.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// Events as this controller (and replica) reports them.
    pub fn events(&self) -> Events {
        Events::new(self.client.clone(), &self.name, Some(self.identity.clone()))
    }

    /// The context reconciles of this controller share.
    pub fn context<S>(&self, state: S) -> Arc<Context<S>> {
        Arc::new(Context {
            client: self.client.clone(),
            applier: Applier::new(self.client.clone(), &self.name),
            events: self.events(),
            metrics: self.metrics.clone(),
            backoff: Backoff::default(),
            state,
        })
    }
}

/// Sets up everything but the controller itself. `crds` are waited for before returning.
pub async fn start(name: &str, args: &CommonArgs, crds: &[&str]) -> anyhow::Result<Started> {
    let telemetry = telemetry::init(name, args.log_json);
    crate::alloc::tune();
    let metrics = Metrics::new(name);
    let client =
        crate::client::build(args.kube_qps, args.kube_burst, metrics.requests.clone()).await?;
    let readiness = Readiness::default();

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let started = Started {
        client: client.clone(),
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        name: name.to_string(),
        identity: args.identity.clone(),
        shutdown: stop_rx,
        _telemetry: telemetry,
    };
    let http_listener = bind(args.http_addr, "health and metrics").await?;
    let grpc_listener = bind(args.grpc_health_addr, "gRPC health").await?;
    let http = serve_http(
        http_listener,
        metrics,
        readiness.clone(),
        started.shutdown(),
    );
    tokio::spawn(async move {
        if let Err(error) = http.await {
            tracing::error!(%error, "health and metrics server failed");
        }
    });
    let grpc = serve_grpc_health(grpc_listener, readiness, started.shutdown());
    tokio::spawn(async move {
        if let Err(error) = grpc.await {
            tracing::error!(%error, "grpc health server failed");
        }
    });
    crate::crds::wait_established(&client, crds, Duration::from_secs(300)).await?;
    Ok(started)
}

/// All a controller binary does once its flags are parsed: [`start`], then `work` (its caches and
/// controllers, built from what [`Started`] holds) until SIGTERM. With `--leader-elect`, a standby
/// starts nothing (no watches) until it leads; losing the Lease returns an error, so the process
/// exits non-zero and restarts clean (`leader::run_if_enabled_until`).
pub async fn main<W, F>(name: &str, args: &CommonArgs, crds: &[&str], work: W) -> anyhow::Result<()>
where
    W: FnOnce(Started) -> F,
    F: Future<Output = anyhow::Result<()>>,
{
    let started = start(name, args, crds).await?;
    let (client, readiness, stop) = (
        started.client.clone(),
        started.readiness.clone(),
        started.shutdown(),
    );
    crate::leader::run_if_enabled_until(client, args, name, &readiness, stop, work(started))
        .await?
        .unwrap_or(Ok(()))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Shared by every reconcile of one controller.
pub struct Context<S> {
    pub client: Client,
    pub applier: Applier,
    pub events: Events,
    pub metrics: Metrics,
    pub backoff: Backoff,
    pub state: S,
}

impl<S> Context<S> {
    /// Call at the end of a successful reconcile: clears the object's backoff.
    pub fn succeeded<K: Resource>(&self, object: &K) {
        self.backoff.reset(&object_key(object));
    }
}

/// How long one reconcile may take before it is abandoned (and retried with backoff). A request
/// the API server accepted but never answers, as seen in the chaos suite right after an API server
/// restart, would otherwise hold its object until the client's 295 s read timeout, and a reconcile
/// in flight blocks every later one of the same object (docs/reliability.md).
pub const RECONCILE_DEADLINE: Duration = Duration::from_secs(60);

/// Runs one reconcile of `object` within [`RECONCILE_DEADLINE`].
pub async fn within_deadline<K, T, E>(
    object: &K,
    reconcile: impl Future<Output = Result<T, E>>,
) -> Result<T, E>
where
    K: Resource<DynamicType = ()>,
    E: ReconcileError,
{
    match tokio::time::timeout(RECONCILE_DEADLINE, reconcile).await {
        Ok(result) => result,
        Err(_) => Err(E::deadline(
            crate::error::object_name(object),
            RECONCILE_DEADLINE,
        )),
    }
}

/// The error policy every controller passes to `Controller::run`.
pub fn error_policy<K, E, S>(object: Arc<K>, error: &E, ctx: Arc<Context<S>>) -> Action
where
    K: Resource,
    E: ReconcileError,
{
    ctx.metrics.reconcile_failed(error.metric_label());
    tracing::warn!(object = %object_key(object.as_ref()), error = %error, "reconcile failed");
    backoff_policy(&ctx.backoff, &object_key(object.as_ref()), error.kind())
}

pub fn object_key<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}
