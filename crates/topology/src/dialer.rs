//! How a process reaches topology servers: its address mapping and allow-list, a per-call
//! deadline, its client certificate for topologies that speak TLS, and one client per server,
//! reused until it fails.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::client::ClientTls;
use crate::{AddressMapping, Result, TopoClient, TopoError};

/// Shared by a controller's reconciles; cheap to call, dials lazily.
pub struct Dialer {
    mapping: AddressMapping,
    timeout: Duration,
    tls: Option<ClientTls>,
    clients: Mutex<HashMap<(Vec<String>, bool), TopoClient>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Dialer {
    /// `tls`: the client certificate for topologies that speak TLS; `None` when this process has
    /// none, which only plaintext topologies accept.
    pub fn new(mapping: AddressMapping, timeout: Duration, tls: Option<ClientTls>) -> Self {
        Self {
            mapping,
            timeout,
            tls,
            clients: Mutex::default(),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A client for `addresses`, over TLS when the topology speaks it (`secure`).
    pub async fn client(&self, addresses: &[String], secure: bool) -> Result<TopoClient> {
        let key = (addresses.to_vec(), secure);
        if let Some(client) = self.lock().get(&key) {
            return Ok(client.clone());
        }
        let tls = match (secure, &self.tls) {
            (false, _) => None,
            (true, Some(tls)) => Some(tls),
            (true, None) => {
                return Err(TopoError::Unreachable(
                    "the topology speaks TLS and this process has no client certificate: start it \
                     with --topology-ca-dir (chart value global.topologyTls.enabled)"
                        .into(),
                ));
            }
        };
        let client = TopoClient::connect(addresses, &self.mapping, self.timeout, tls).await?;
        self.lock().insert(key, client.clone());
        Ok(client)
    }

    /// Drops the client for `addresses` (after a failure), so the next call dials afresh.
    pub fn forget(&self, addresses: &[String], secure: bool) {
        self.lock().remove(&(addresses.to_vec(), secure));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Vec<String>, bool), TopoClient>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}
