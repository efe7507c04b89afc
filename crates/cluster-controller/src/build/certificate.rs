//! The cluster's cert-manager `Certificate` (`cert-manager.io/v1`), when `spec.tls.certManager`
//! asks cert-manager to issue and renew the certificate the operator would otherwise issue itself:
//! the same names and uses, written to the same Secret (docs/security.md).
//!
//! cert-manager is optional, so its kind has no Rust crate here: the fields the operator sets are
//! typed below, and the API server checks them against the installed CRD.

use kube::CustomResource;
use multigres_api::cluster::IssuerRef;
use multigres_api::{MultigresCluster, labels, multigres};
use multigres_runtime::apply::child_meta;
use serde::{Deserialize, Serialize};

use super::{cluster_name, tls_sans};

#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Certificate",
    namespaced,
    status = "CertificateStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    pub secret_name: String,
    pub common_name: String,
    pub dns_names: Vec<String>,
    pub usages: Vec<String>,
    pub issuer_ref: IssuerRef,
    pub private_key: PrivateKey,
}

/// What the operator reads of cert-manager's status: the issuance, which rolls the pods when it
/// grows (docs/security.md, "Rotation").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKey {
    pub rotation_policy: String,
}

/// The Certificate for the cluster's TLS Secret `secret_name`, when the cluster asks cert-manager.
pub fn certificate(cluster: &MultigresCluster, secret_name: &str) -> Option<Certificate> {
    let issuer = cluster.spec.tls.as_ref()?.cert_manager.as_ref()?;
    let name = cluster_name(cluster);
    let mut certificate = Certificate::new(
        &name,
        CertificateSpec {
            secret_name: secret_name.to_string(),
            common_name: multigres::GRPC_SERVER_NAME.to_string(),
            dns_names: tls_sans(cluster),
            // Every component serves and dials with the one certificate.
            usages: [
                "server auth",
                "client auth",
                "digital signature",
                "key encipherment",
            ]
            .map(String::from)
            .to_vec(),
            issuer_ref: IssuerRef {
                name: issuer.issuer_ref.name.clone(),
                kind: Some(issuer.issuer_ref.kind.clone().unwrap_or("Issuer".into())),
                group: Some(
                    issuer
                        .issuer_ref
                        .group
                        .clone()
                        .unwrap_or("cert-manager.io".into()),
                ),
            },
            private_key: PrivateKey {
                rotation_policy: "Always".into(),
            },
        },
    );
    certificate.metadata = child_meta(
        cluster,
        &name,
        labels::for_component(&name, labels::component::TLS),
    );
    Some(certificate)
}
