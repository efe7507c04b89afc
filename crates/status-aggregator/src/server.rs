//! The gRPC side: a [`Hub`] holding the latest aggregate of every cluster, and the
//! `multigres.operator.v1.StatusAggregator` service answering from it.
//!
//! The hub publishes a whole snapshot at a time and only when something changed, so a watcher never
//! sees two equal aggregates in a row. Streams end when the hub's publisher is dropped (shutdown).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use multigres_api::MultigresClusterStatus;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use crate::convert::status_to_proto;
use crate::proto::status_aggregator_server::{StatusAggregator, StatusAggregatorServer};
use crate::proto::{self, namespaced_cluster_status::Event};

/// `(namespace, name)` of a MultigresCluster.
pub type ClusterKey = (String, String);

/// Every cluster's aggregate at one moment.
pub type Snapshot = BTreeMap<ClusterKey, MultigresClusterStatus>;

/// Publishes snapshots; dropping it ends every open stream.
pub struct Hub {
    tx: watch::Sender<Option<Arc<Snapshot>>>,
}

/// What the service reads: `None` until the first snapshot (caches not synced yet).
pub type HubReader = watch::Receiver<Option<Arc<Snapshot>>>;

impl Hub {
    pub fn new() -> (Hub, HubReader) {
        let (tx, rx) = watch::channel(None);
        (Hub { tx }, rx)
    }

    pub fn reader(&self) -> HubReader {
        self.tx.subscribe()
    }

    /// Publishes `snapshot` unless it equals the current one. Returns whether it was published.
    pub fn publish(&self, snapshot: Snapshot) -> bool {
        self.tx.send_if_modified(|current| {
            if current.as_deref() == Some(&snapshot) {
                false
            } else {
                *current = Some(Arc::new(snapshot));
                true
            }
        })
    }

    /// The current snapshot, if any.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.tx.borrow().clone()
    }
}

/// The StatusAggregator service.
#[derive(Clone)]
pub struct Service {
    hub: HubReader,
}

impl Service {
    pub fn new(hub: HubReader) -> Self {
        Self { hub }
    }
}

type StatusStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// How many messages a slow client may lag behind before its stream waits.
const STREAM_BUFFER: usize = 64;

#[tonic::async_trait]
impl StatusAggregator for Service {
    async fn get_cluster_status(
        &self,
        request: Request<proto::GetClusterStatusRequest>,
    ) -> Result<Response<proto::ClusterStatus>, Status> {
        let request = request.into_inner();
        let key = (request.namespace, request.name);
        let snapshot = self
            .hub
            .borrow()
            .clone()
            .ok_or_else(|| Status::unavailable("caches have not synced yet"))?;
        snapshot
            .get(&key)
            .map(|s| Response::new(status_to_proto(s)))
            .ok_or_else(|| {
                Status::not_found(format!("MultigresCluster {}/{} not found", key.0, key.1))
            })
    }

    type WatchClusterStatusStream = StatusStream<proto::ClusterStatus>;

    async fn watch_cluster_status(
        &self,
        request: Request<proto::WatchClusterStatusRequest>,
    ) -> Result<Response<Self::WatchClusterStatusStream>, Status> {
        let request = request.into_inner();
        let key = (request.namespace, request.name);
        let mut hub = self.hub.clone();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let mut last: Option<MultigresClusterStatus> = None;
            loop {
                let current = hub
                    .borrow_and_update()
                    .as_ref()
                    .and_then(|s| s.get(&key).cloned());
                match current {
                    Some(status) if last.as_ref() != Some(&status) => {
                        if tx.send(Ok(status_to_proto(&status))).await.is_err() {
                            return;
                        }
                        last = Some(status);
                    }
                    None if last.is_some() => {
                        let gone = format!("MultigresCluster {}/{} was deleted", key.0, key.1);
                        let _ = tx.send(Err(Status::not_found(gone))).await;
                        return;
                    }
                    _ => {}
                }
                tokio::select! {
                    changed = hub.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type WatchAllClusterStatusesStream = StatusStream<proto::NamespacedClusterStatus>;

    async fn watch_all_cluster_statuses(
        &self,
        request: Request<proto::WatchAllRequest>,
    ) -> Result<Response<Self::WatchAllClusterStatusesStream>, Status> {
        let namespace = Some(request.into_inner().namespace).filter(|n| !n.is_empty());
        let mut hub = self.hub.clone();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let mut sent: Option<BTreeMap<ClusterKey, MultigresClusterStatus>> = None;
            loop {
                let snapshot = hub.borrow_and_update().clone();
                if let Some(snapshot) = snapshot {
                    let current: BTreeMap<_, _> = snapshot
                        .iter()
                        .filter(|((ns, _), _)| namespace.as_ref().is_none_or(|n| n == ns))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let first = sent.is_none();
                    let previous = sent.take().unwrap_or_default();
                    for message in diff(&previous, &current) {
                        if tx.send(Ok(message)).await.is_err() {
                            return;
                        }
                    }
                    if first && tx.send(Ok(synced())).await.is_err() {
                        return;
                    }
                    sent = Some(current);
                }
                tokio::select! {
                    changed = hub.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn synced() -> proto::NamespacedClusterStatus {
    proto::NamespacedClusterStatus {
        namespace: String::new(),
        name: String::new(),
        event: Some(Event::Synced(proto::Synced {})),
    }
}

/// The messages that take a client from `previous` to `current`.
fn diff(
    previous: &BTreeMap<ClusterKey, MultigresClusterStatus>,
    current: &BTreeMap<ClusterKey, MultigresClusterStatus>,
) -> Vec<proto::NamespacedClusterStatus> {
    let mut out = Vec::new();
    for ((namespace, name), status) in current {
        if previous.get(&(namespace.clone(), name.clone())) != Some(status) {
            out.push(proto::NamespacedClusterStatus {
                namespace: namespace.clone(),
                name: name.clone(),
                event: Some(Event::Status(status_to_proto(status))),
            });
        }
    }
    for (namespace, name) in previous.keys() {
        if !current.contains_key(&(namespace.clone(), name.clone())) {
            out.push(proto::NamespacedClusterStatus {
                namespace: namespace.clone(),
                name: name.clone(),
                event: Some(Event::Removed(proto::Removed {})),
            });
        }
    }
    out
}

/// Server TLS from PEM files: `cert` + `key` for the server, and `client_ca` to require client
/// certificates signed by it.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    pub fn server_config(&self) -> anyhow::Result<ServerTlsConfig> {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))
        };
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?));
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        Ok(config)
    }
}

/// Serves the StatusAggregator service and `grpc.health.v1` (SERVING once the first snapshot is
/// published) on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hub: HubReader,
    tls: Option<&TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let mut ready = hub.clone();
    let health_task = tokio::spawn(async move {
        let _ = ready.wait_for(Option::is_some).await;
        reporter
            .set_serving::<StatusAggregatorServer<Service>>()
            .await;
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
    });
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls.server_config()?)?;
    }
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, tls = tls.is_some(), "serving StatusAggregator");
    let result = builder
        .add_service(health)
        .add_service(StatusAggregatorServer::new(Service::new(hub)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    health_task.abort();
    result?;
    Ok(())
}
