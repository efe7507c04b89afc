//! How a process reaches topology servers: its address mapping and allow-list, a per-call
//! deadline, its client certificates for topologies that speak TLS, and one client per server,
//! reused until it fails.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::client::ClientTls;
use crate::{AddressMapping, Result, TopoClient, TopoError};

/// How one cluster's topology is dialed. The pinned Multigres takes one etcd certificate per
/// process, so a cluster's topology servers are all plaintext, all the operator's managed etcds
/// with TLS, or all external etcds with TLS (docs/security.md, "Topology").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Plaintext,
    /// Managed etcds: the operator's topology CA on both sides.
    OperatorTls,
    /// External etcds: the certificate the platform gave the operator for them.
    ExternalTls,
}

/// The client certificates a process holds; either may be absent.
#[derive(Clone, Debug, Default)]
pub struct ClientIdentities {
    /// Signed from the operator's topology CA (`--topology-ca-dir`).
    pub operator: Option<ClientTls>,
    /// For external etcds that speak TLS (`--external-topology-tls-dir`).
    pub external: Option<ClientTls>,
}

/// Shared by a controller's reconciles; cheap to call, dials lazily.
pub struct Dialer {
    mapping: AddressMapping,
    timeout: Duration,
    identities: ClientIdentities,
    clients: Mutex<HashMap<(Vec<String>, Transport), TopoClient>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("timeout", &self.timeout)
            .field("operator_tls", &self.identities.operator.is_some())
            .field("external_tls", &self.identities.external.is_some())
            .finish_non_exhaustive()
    }
}

impl Dialer {
    pub fn new(mapping: AddressMapping, timeout: Duration, identities: ClientIdentities) -> Self {
        Self {
            mapping,
            timeout,
            identities,
            clients: Mutex::default(),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A client for `addresses`, dialed as `transport` says.
    pub async fn client(&self, addresses: &[String], transport: Transport) -> Result<TopoClient> {
        let key = (addresses.to_vec(), transport);
        if let Some(client) = self.lock().get(&key) {
            return Ok(client.clone());
        }
        let tls = self.identity(transport)?;
        let client = TopoClient::connect(addresses, &self.mapping, self.timeout, tls).await?;
        self.lock().insert(key, client.clone());
        Ok(client)
    }

    /// Drops the client for `addresses` (after a failure), so the next call dials afresh.
    pub fn forget(&self, addresses: &[String], transport: Transport) {
        self.lock().remove(&(addresses.to_vec(), transport));
    }

    fn identity(&self, transport: Transport) -> Result<Option<&ClientTls>> {
        let missing = |what: &str| {
            TopoError::Unreachable(format!(
                "the topology speaks TLS and this process has no {what}"
            ))
        };
        match transport {
            Transport::Plaintext => Ok(None),
            Transport::OperatorTls => self.identities.operator.as_ref().map(Some).ok_or_else(|| {
                missing("client certificate of the operator's topology CA: start it with --topology-ca-dir (chart value global.topologyTls.enabled)")
            }),
            Transport::ExternalTls => self.identities.external.as_ref().map(Some).ok_or_else(|| {
                missing("client certificate for external etcds: start it with --external-topology-tls-dir (chart value global.topologyTls.external.secret)")
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Vec<String>, Transport), TopoClient>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS topology without the matching certificate is reported before any dial, naming the
    /// flag that supplies it.
    #[tokio::test]
    async fn a_missing_identity_names_its_flag() {
        let dialer = Dialer::new(
            AddressMapping::off(),
            Duration::from_secs(1),
            ClientIdentities::default(),
        );
        let address = ["etcd.example.com:2379".to_string()];
        for (transport, flag) in [
            (Transport::OperatorTls, "--topology-ca-dir"),
            (Transport::ExternalTls, "--external-topology-tls-dir"),
        ] {
            let Err(TopoError::Unreachable(message)) = dialer.client(&address, transport).await
            else {
                panic!("{transport:?} dialed without a certificate");
            };
            assert!(message.contains(flag), "{message}");
        }
    }
}
