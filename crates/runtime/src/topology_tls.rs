//! The operator's topology credentials (docs/security.md, "Topology"): the topology CA the chart
//! mounts into the controllers that dial etcd or issue etcd certificates, from which each process
//! signs its own client certificate at start (kept in memory only), and the client certificate
//! for external etcds that speak TLS, which the platform gives the chart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use multigres_api::GlobalTopologyRef;
use multigres_topology::{ClientIdentities, ClientTls, Transport};

use crate::pki::Authority;

/// The common name of the operator's own etcd client certificates.
pub const OPERATOR_CLIENT_NAME: &str = "multigres-operator";

#[derive(clap::Args, Debug, Clone, Default)]
pub struct TopologyTlsArgs {
    /// Folder with the operator's topology CA (`tls.crt`, `tls.key`). With it, new clusters'
    /// topology servers speak TLS and require client certificates of this CA; without it, new
    /// clusters' topology is plaintext and TLS topologies cannot be reached.
    #[arg(long, env = "MULTIGRES_TOPOLOGY_CA_DIR")]
    pub topology_ca_dir: Option<PathBuf>,
    /// Folder with the operator's client certificate for external etcds that speak TLS
    /// (`ca.crt`: the etcds' CA, `tls.crt`, `tls.key`). Without it, clusters whose external etcds
    /// name a Secret in `external.tls` cannot be reached.
    #[arg(long, env = "MULTIGRES_EXTERNAL_TOPOLOGY_TLS_DIR")]
    pub external_topology_tls_dir: Option<PathBuf>,
}

/// The CA and the client certificate signed from it for this process.
#[derive(Clone, Debug)]
pub struct TopologyIdentity {
    pub authority: Arc<Authority>,
    pub client: ClientTls,
}

/// Everything a process holds for topologies that speak TLS.
#[derive(Clone, Debug, Default)]
pub struct TopologyCredentials {
    pub authority: Option<Arc<Authority>>,
    pub clients: ClientIdentities,
}

impl TopologyTlsArgs {
    /// Loads both folders; an error when one is given but holds no usable CA or certificate, so a
    /// misconfigured chart fails at start rather than at the first cluster.
    pub fn load(&self) -> anyhow::Result<TopologyCredentials> {
        let identity = match &self.topology_ca_dir {
            None => None,
            Some(dir) => {
                let authority = Authority::load(dir)
                    .map_err(|e| anyhow::anyhow!("--topology-ca-dir {}: {e}", dir.display()))?;
                Some(TopologyIdentity::new(Arc::new(authority))?)
            }
        };
        let external = match &self.external_topology_tls_dir {
            None => None,
            Some(dir) => Some(read_client(dir).map_err(|e| {
                anyhow::anyhow!("--external-topology-tls-dir {}: {e}", dir.display())
            })?),
        };
        Ok(TopologyCredentials {
            authority: identity.as_ref().map(|i| i.authority.clone()),
            clients: ClientIdentities {
                operator: identity.map(|i| i.client),
                external,
            },
        })
    }
}

/// A mounted Secret with `ca.crt`, `tls.crt` and `tls.key`, checked to be PEM.
fn read_client(dir: &Path) -> anyhow::Result<ClientTls> {
    let read = |file: &str| -> anyhow::Result<String> {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        pem::parse_many(&text)
            .ok()
            .filter(|blocks| !blocks.is_empty())
            .ok_or_else(|| anyhow::anyhow!("{}: no PEM block", path.display()))?;
        Ok(text)
    };
    Ok(ClientTls {
        ca_pem: read("ca.crt")?,
        cert_pem: read("tls.crt")?,
        key_pem: read("tls.key")?,
    })
}

impl TopologyIdentity {
    pub fn new(authority: Arc<Authority>) -> anyhow::Result<Self> {
        let issued = authority.sign(OPERATOR_CLIENT_NAME, &[])?;
        Ok(Self {
            authority,
            client: ClientTls {
                ca_pem: issued.ca_pem,
                cert_pem: issued.cert_pem,
                key_pem: issued.key_pem,
            },
        })
    }
}

/// How a cluster's topology is dialed, from the reference its children carry: no Secret,
/// plaintext; a Secret and a managed global server, the operator's CA; a Secret and an external
/// global server, the external certificate (the resolver refuses any mix).
pub fn transport(global: &GlobalTopologyRef) -> Transport {
    match (&global.tls_secret_name, &global.client_service_name) {
        (None, _) => Transport::Plaintext,
        (Some(_), Some(_)) => Transport::OperatorTls,
        (Some(_), None) => Transport::ExternalTls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_says_how_to_dial() {
        let mut global = GlobalTopologyRef {
            root_path: "/r".into(),
            client_service_name: Some("c-global-client".into()),
            address: "c-global-client.ns.svc:2379".into(),
            tls_secret_name: None,
        };
        assert_eq!(transport(&global), Transport::Plaintext);
        global.tls_secret_name = Some("c-topology-tls".into());
        assert_eq!(transport(&global), Transport::OperatorTls);
        global.client_service_name = None;
        assert_eq!(transport(&global), Transport::ExternalTls);
    }

    #[test]
    fn a_folder_without_a_certificate_is_refused_at_start() {
        let dir = std::env::temp_dir().join(format!("external-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["ca.crt", "tls.crt", "tls.key"] {
            std::fs::write(dir.join(file), "not pem").unwrap();
        }
        let args = TopologyTlsArgs {
            topology_ca_dir: None,
            external_topology_tls_dir: Some(dir.clone()),
        };
        let err = args.load().unwrap_err().to_string();
        assert!(err.contains("--external-topology-tls-dir"), "{err}");
        assert!(err.contains("no PEM block"), "{err}");
        let (cert, key) = crate::pki::generate_ca("etcd-ca").unwrap();
        std::fs::write(dir.join("ca.crt"), &cert).unwrap();
        std::fs::write(dir.join("tls.crt"), &cert).unwrap();
        std::fs::write(dir.join("tls.key"), &key).unwrap();
        let loaded = args.load().unwrap();
        assert!(loaded.clients.external.is_some());
        assert!(loaded.authority.is_none() && loaded.clients.operator.is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
