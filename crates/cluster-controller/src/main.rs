//! `cluster-controller`: reconciles MultigresClusters into their children, and keeps every
//! DeploymentTemplate's consumers exact.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use multigres_cluster_controller::{CRDS, NAME, Settings, StatusAggregator};
use multigres_runtime::{CommonArgs, run};
use multigres_status_api::client::ClientTls;
use multigres_topology::{AddressMapping, AllowedHosts};

#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = NAME,
    version,
    about = "Reconciles MultigresClusters into their children and DeploymentTemplate consumers."
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    topology_tls: multigres_runtime::topology_tls::TopologyTlsArgs,
    /// Rewrites topology addresses before dialing (`svc:2379=127.0.0.1:23790,...`): for an operator
    /// running outside the cluster (tests, demo). Empty means off.
    #[arg(long, env = "MULTIGRES_TOPOLOGY_ADDRESS_MAP", default_value = "")]
    topology_address_map: String,
    /// Topology hosts the operator may dial, comma-separated: exact names or `*.<domain>` (e.g.
    /// `*.svc,etcd.example.com`). Empty allows every host (docs/security.md).
    #[arg(long, env = "MULTIGRES_TOPOLOGY_ALLOWED_HOSTS", default_value = "")]
    topology_allowed_hosts: String,
    /// How long the certificates the operator issues from its CA are valid (the topology's, and
    /// each cluster's own); each is renewed (a new Secret, the pods that mount it roll) when a
    /// third of it is left (docs/security.md).
    #[arg(long, env = "MULTIGRES_TOPOLOGY_CERTIFICATE_VALIDITY", default_value = "8760h", value_parser = multigres_runtime::settings::parse_certificate_validity)]
    topology_certificate_validity: Duration,
    /// Deadline of every topology call.
    #[arg(long, env = "MULTIGRES_TOPOLOGY_TIMEOUT", default_value = "3s", value_parser = multigres_runtime::settings::parse_duration)]
    topology_timeout: Duration,
    /// The status aggregator's gRPC endpoint (`http://host:port`, `https://host:port`, or
    /// `host:port`). Set: MultigresCluster status comes from it. Empty: the controller computes a
    /// simpler status from its own caches (fallback).
    #[arg(long, env = "MULTIGRES_STATUS_AGGREGATOR_ENDPOINT", default_value = "")]
    status_aggregator_endpoint: String,
    /// PEM CA of the aggregator's certificate: the channel uses TLS.
    #[arg(long, env = "MULTIGRES_STATUS_AGGREGATOR_CA")]
    status_aggregator_ca: Option<PathBuf>,
    /// PEM client certificate (with `--status-aggregator-key`), when the aggregator requires one.
    #[arg(long, env = "MULTIGRES_STATUS_AGGREGATOR_CERT")]
    status_aggregator_cert: Option<PathBuf>,
    /// PEM key of `--status-aggregator-cert`.
    #[arg(long, env = "MULTIGRES_STATUS_AGGREGATOR_KEY")]
    status_aggregator_key: Option<PathBuf>,
    /// Name to verify the aggregator's certificate against, when it differs from the endpoint's host.
    #[arg(long, env = "MULTIGRES_STATUS_AGGREGATOR_DOMAIN")]
    status_aggregator_domain: Option<String>,
}

impl Args {
    /// TLS towards the aggregator: on with `--status-aggregator-ca`; the other TLS flags need it.
    fn status_aggregator_tls(&self) -> anyhow::Result<Option<ClientTls>> {
        match &self.status_aggregator_ca {
            Some(ca) => Ok(Some(ClientTls::from_files(
                ca,
                self.status_aggregator_cert.as_deref(),
                self.status_aggregator_key.as_deref(),
                self.status_aggregator_domain.clone(),
            )?)),
            None if self.status_aggregator_cert.is_some()
                || self.status_aggregator_key.is_some()
                || self.status_aggregator_domain.is_some() =>
            {
                anyhow::bail!(
                    "--status-aggregator-cert, --status-aggregator-key and --status-aggregator-domain need --status-aggregator-ca"
                )
            }
            None => Ok(None),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let status_aggregator = match args.status_aggregator_endpoint.as_str() {
        "" => None,
        endpoint => Some(StatusAggregator {
            endpoint: endpoint.to_string(),
            tls: args.status_aggregator_tls()?,
        }),
    };
    let settings = Settings {
        address_mapping: AddressMapping::parse(&args.topology_address_map)?
            .allowing(AllowedHosts::parse(&args.topology_allowed_hosts)?),
        topology_timeout: args.topology_timeout,
        topology_tls: args.topology_tls.load()?,
        status_aggregator,
        certificate_validity: args.topology_certificate_validity,
    };
    run::main(NAME, &args.common, CRDS, |started| {
        multigres_cluster_controller::run(started, &args.common, settings)
    })
    .await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn topology_certificates_last_a_year_by_default_and_at_least_a_minute() {
        let args = Args::parse_from(["cluster-controller"]);
        assert_eq!(
            args.topology_certificate_validity,
            Duration::from_secs(365 * 24 * 3600)
        );
        let short = ["cluster-controller", "--topology-certificate-validity=30s"];
        assert!(Args::try_parse_from(short).is_err());
        let hour = ["cluster-controller", "--topology-certificate-validity=1h"];
        let args = Args::try_parse_from(hour).unwrap();
        assert_eq!(
            args.topology_certificate_validity,
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn the_aggregator_is_off_by_default_and_tls_needs_its_ca() {
        let args = Args::parse_from(["cluster-controller"]);
        assert!(args.status_aggregator_endpoint.is_empty());
        assert!(args.status_aggregator_tls().unwrap().is_none());

        let args = Args::parse_from([
            "cluster-controller",
            "--status-aggregator-endpoint=http://127.0.0.1:9500",
            "--status-aggregator-domain=status-aggregator.multigres-system.svc",
        ]);
        assert!(args.status_aggregator_tls().is_err());

        let dir = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "tls.crt", "tls.key"] {
            std::fs::write(dir.path().join(f), format!("{f} pem")).unwrap();
        }
        let path = |f: &str| dir.path().join(f).display().to_string();
        let args = Args::parse_from([
            "cluster-controller".to_string(),
            "--status-aggregator-endpoint=status-aggregator:9500".into(),
            format!("--status-aggregator-ca={}", path("ca.pem")),
            format!("--status-aggregator-cert={}", path("tls.crt")),
            format!("--status-aggregator-key={}", path("tls.key")),
            "--status-aggregator-domain=status-aggregator.multigres-system.svc".into(),
        ]);
        let tls = args.status_aggregator_tls().unwrap().unwrap();
        assert_eq!(tls.ca_pem, b"ca.pem pem");
        assert_eq!(
            tls.identity,
            Some((b"tls.crt pem".to_vec(), b"tls.key pem".to_vec()))
        );
        assert_eq!(
            tls.domain.as_deref(),
            Some("status-aggregator.multigres-system.svc")
        );
    }
}
