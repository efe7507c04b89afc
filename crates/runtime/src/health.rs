//! The HTTP endpoints of every binary (`/healthz`, `/readyz`, `/metrics`) and gRPC health
//! (`grpc.health.v1`) on its own port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio_util_shim::CancelOnDrop;

use crate::metrics::Metrics;

/// Readiness: false until the controller's caches have synced.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct HttpState {
    metrics: Metrics,
    readiness: Readiness,
}

/// Binds a listener for [`serve_http`] or [`serve_grpc_health`]. Called before the process reports
/// started, so that a port it cannot take ends the process (and the kubelet restarts it) instead of
/// leaving it running without health endpoints.
/// The bound address is logged (`listening for <what> on <address>`): with port 0 the kernel picks
/// it, which is how the tests start controllers without racing each other for ports.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the {what} port {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    tracing::info!("listening for {what} on {bound}");
    Ok(listener)
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(HttpState { metrics, readiness });
    tracing::info!(addr = %listener.local_addr()?, "serving health and metrics");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Fails while the process is wedged (`liveness`), so that the kubelet restarts it.
async fn healthz() -> (StatusCode, String) {
    let now = std::time::Instant::now();
    match crate::liveness::liveness().check(now, crate::liveness::STUCK_AFTER) {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(why) => {
            tracing::error!(%why, "unhealthy");
            (StatusCode::SERVICE_UNAVAILABLE, why)
        }
    }
}

async fn ready(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

async fn render_metrics(
    State(state): State<HttpState>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Serves `grpc.health.v1` on `listener`, reporting SERVING while `readiness` holds.
pub async fn serve_grpc_health(
    listener: tokio::net::TcpListener,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (reporter, service) = tonic_health::server::health_reporter();
    let watcher = {
        let reporter = reporter.clone();
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let ready = readiness.is_ready();
                if last != Some(ready) {
                    let status = if ready {
                        tonic_health::ServingStatus::Serving
                    } else {
                        tonic_health::ServingStatus::NotServing
                    };
                    reporter.set_service_status("", status).await;
                    last = Some(ready);
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        })
    };
    let _guard = CancelOnDrop(watcher);
    tracing::info!(addr = %listener.local_addr()?, "serving grpc health");
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await?;
    Ok(())
}

mod tokio_util_shim {
    /// Aborts a background task when the server it serves stops.
    pub struct CancelOnDrop(pub tokio::task::JoinHandle<()>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
}
