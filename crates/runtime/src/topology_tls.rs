//! The operator's topology CA (docs/security.md, "Topology"): the chart mounts its Secret into the
//! controllers that dial etcd or issue etcd certificates. Each process signs its own client
//! certificate from it at start, kept in memory only.

use std::path::PathBuf;
use std::sync::Arc;

use multigres_topology::ClientTls;

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
}

/// The CA and the client certificate signed from it for this process.
#[derive(Clone, Debug)]
pub struct TopologyIdentity {
    pub authority: Arc<Authority>,
    pub client: ClientTls,
}

impl TopologyTlsArgs {
    /// `None` without `--topology-ca-dir`; an error when the folder holds no usable CA, so a
    /// misconfigured chart fails at start rather than at the first cluster.
    pub fn load(&self) -> anyhow::Result<Option<TopologyIdentity>> {
        let Some(dir) = &self.topology_ca_dir else {
            return Ok(None);
        };
        let authority = Authority::load(dir)
            .map_err(|e| anyhow::anyhow!("--topology-ca-dir {}: {e}", dir.display()))?;
        Ok(Some(TopologyIdentity::new(Arc::new(authority))?))
    }
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
