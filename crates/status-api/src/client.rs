//! The subscriber side, for the cluster controller.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use futures::StreamExt;
//! use multigres_status_api::client::{StatusEvent, StatusSubscription};
//!
//! let subscription = StatusSubscription::connect("http://127.0.0.1:9500", None)?;
//! let mut events = subscription.watch_all(None);
//! while let Some(event) = events.next().await {
//!     match event {
//!         StatusEvent::Status { cluster, status } => { /* SSA cluster.status from `status` */ }
//!         StatusEvent::Removed { cluster } => { /* forget it */ }
//!         StatusEvent::Synced => { /* aggregator reachable: StatusAggregatorReachable=True */ }
//!         StatusEvent::Disconnected { error } => { /* StatusAggregatorReachable=False */ }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Every stream reconnects by itself with capped exponential backoff and, after a reconnect, the
//! server sends the complete current state again, so a consumer catches up without bookkeeping.
//! Streams stop when dropped.

use std::path::Path;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::ObjectRef;
use multigres_api::{MultigresCluster, MultigresClusterStatus};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::convert::status_from_proto;
use crate::proto::namespaced_cluster_status::Event;
use crate::proto::status_aggregator_client::StatusAggregatorClient;
use crate::proto::{GetClusterStatusRequest, WatchAllRequest, WatchClusterStatusRequest};

/// First wait after a failure; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// TLS towards the aggregator, from PEM bytes.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// CA that signed the aggregator's certificate.
    pub ca_pem: Vec<u8>,
    /// Client certificate and key, when the aggregator requires client certificates.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Name to verify the server certificate against, when it differs from the endpoint's host.
    pub domain: Option<String>,
}

impl ClientTls {
    /// Reads the PEM files (`cert` and `key` together or neither).
    pub fn from_files(
        ca: &Path,
        cert: Option<&Path>,
        key: Option<&Path>,
        domain: Option<String>,
    ) -> anyhow::Result<Self> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))
        };
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            (None, None) => None,
            _ => anyhow::bail!("a client certificate needs both the certificate and the key"),
        };
        Ok(Self {
            ca_pem: read(ca)?,
            identity,
            domain,
        })
    }
}

/// One cluster's change, as [`StatusSubscription::watch_all`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum StatusEvent {
    /// The cluster's current aggregate: write it to `status` (it differs from the last one sent).
    Status {
        cluster: ObjectRef<MultigresCluster>,
        status: MultigresClusterStatus,
    },
    /// The cluster no longer exists.
    Removed {
        cluster: ObjectRef<MultigresCluster>,
    },
    /// Every existing cluster has been sent since the last (re)connect: the aggregator is
    /// reachable and the consumer is caught up.
    Synced,
    /// The aggregator is unreachable or the stream broke; the subscription retries with backoff.
    Disconnected { error: String },
}

/// A lazily connected channel to the aggregator.
#[derive(Clone, Debug)]
pub struct StatusSubscription {
    client: StatusAggregatorClient<Channel>,
}

impl StatusSubscription {
    /// `endpoint` is `http://host:port`, `https://host:port` or bare `host:port` (https when `tls`
    /// is given). Never waits: the connection is made on first use and remade after failures.
    pub fn connect(endpoint: &str, tls: Option<ClientTls>) -> anyhow::Result<Self> {
        let uri = if endpoint.contains("://") {
            endpoint.to_string()
        } else if tls.is_some() {
            format!("https://{endpoint}")
        } else {
            format!("http://{endpoint}")
        };
        let mut endpoint = Endpoint::from_shared(uri)?
            .connect_timeout(Duration::from_secs(3))
            // Detects a vanished aggregator even while the stream is idle.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        if let Some(tls) = tls {
            let mut config =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(tls.ca_pem));
            if let Some((cert, key)) = tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            if let Some(domain) = tls.domain {
                config = config.domain_name(domain);
            }
            endpoint = endpoint.tls_config(config)?;
        }
        Ok(Self {
            client: StatusAggregatorClient::new(endpoint.connect_lazy()),
        })
    }

    /// One cluster's current aggregate.
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<MultigresClusterStatus, tonic::Status> {
        let request = GetClusterStatusRequest {
            namespace: namespace.into(),
            name: name.into(),
        };
        let response = self.client.clone().get_cluster_status(request).await?;
        Ok(status_from_proto(response.get_ref()))
    }

    /// One cluster's aggregates: the current one, then each change. Reconnects with backoff on any
    /// error (including a cluster not existing yet or deleted); may repeat the last value after a
    /// reconnect.
    pub fn watch(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Stream<Item = MultigresClusterStatus> + Send + use<> {
        let client = self.client.clone();
        let request = WatchClusterStatusRequest {
            namespace: namespace.into(),
            name: name.into(),
        };
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut backoff = MIN_BACKOFF;
            loop {
                match client.clone().watch_cluster_status(request.clone()).await {
                    Ok(response) => {
                        let mut stream = response.into_inner();
                        loop {
                            let next = tokio::select! {
                                next = stream.next() => next,
                                _ = tx.closed() => return,
                            };
                            match next {
                                Some(Ok(status)) => {
                                    backoff = MIN_BACKOFF;
                                    if tx.send(status_from_proto(&status)).await.is_err() {
                                        return;
                                    }
                                }
                                Some(Err(status)) => {
                                    tracing::debug!(%status, "status watch broke");
                                    break;
                                }
                                None => break,
                            }
                        }
                    }
                    Err(status) => tracing::debug!(%status, "cannot watch status"),
                }
                if !sleep_unless_closed(&tx, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        ReceiverStream::new(rx)
    }

    /// Every cluster's aggregate (of `namespace`, or all), as one stream of [`StatusEvent`]s that
    /// never ends on its own: after a failure it reports [`StatusEvent::Disconnected`] once,
    /// reconnects with backoff, and then sends the full current set again followed by
    /// [`StatusEvent::Synced`].
    pub fn watch_all(
        &self,
        namespace: Option<&str>,
    ) -> impl Stream<Item = StatusEvent> + Send + use<> {
        let client = self.client.clone();
        let request = WatchAllRequest {
            namespace: namespace.unwrap_or_default().to_string(),
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut backoff = MIN_BACKOFF;
            let mut connected = true; // report the first failure even before any success
            loop {
                let error = match client
                    .clone()
                    .watch_all_cluster_statuses(request.clone())
                    .await
                {
                    Ok(response) => {
                        let mut stream = response.into_inner();
                        loop {
                            let next = tokio::select! {
                                next = stream.next() => next,
                                _ = tx.closed() => return,
                            };
                            let event = match next {
                                Some(Ok(message)) => match message.event {
                                    Some(Event::Status(status)) => StatusEvent::Status {
                                        cluster: ObjectRef::new(&message.name)
                                            .within(&message.namespace),
                                        status: status_from_proto(&status),
                                    },
                                    Some(Event::Removed(_)) => StatusEvent::Removed {
                                        cluster: ObjectRef::new(&message.name)
                                            .within(&message.namespace),
                                    },
                                    Some(Event::Synced(_)) => {
                                        backoff = MIN_BACKOFF;
                                        connected = true;
                                        StatusEvent::Synced
                                    }
                                    None => continue,
                                },
                                Some(Err(status)) => break status.to_string(),
                                None => break "stream ended".to_string(),
                            };
                            if tx.send(event).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(status) => status.to_string(),
                };
                if connected {
                    connected = false;
                    tracing::info!(%error, "status aggregator unreachable; retrying");
                    if tx.send(StatusEvent::Disconnected { error }).await.is_err() {
                        return;
                    }
                }
                if !sleep_unless_closed(&tx, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        ReceiverStream::new(rx)
    }
}

/// Waits `delay`; false when the consumer went away meanwhile.
async fn sleep_unless_closed<T>(tx: &mpsc::Sender<T>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = tx.closed() => false,
    }
}

/// The one call the cluster controller needs: every cluster's aggregate from the aggregator at
/// `endpoint`, reconnecting forever. See [`StatusSubscription::watch_all`].
pub fn watch_all(
    endpoint: &str,
    tls: Option<ClientTls>,
    namespace: Option<&str>,
) -> anyhow::Result<impl Stream<Item = StatusEvent> + Send + 'static> {
    Ok(StatusSubscription::connect(endpoint, tls)?.watch_all(namespace))
}
