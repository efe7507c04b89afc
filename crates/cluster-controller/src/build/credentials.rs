//! The generated Postgres credentials Secret.

use multigres_runtime::pki::IssuedTls;

use super::*;

/// The generated credentials Secret. Owned by the cluster only when the cluster's volumes are deleted
/// with it: retained volumes keep a usable password.
pub fn credentials_secret(cluster: &MultigresCluster, name: &str, password: &str) -> Secret {
    let cluster_name = cluster_name(cluster);
    let mut metadata = child_meta(
        cluster,
        name,
        labels::for_component(&cluster_name, component::CREDENTIALS),
    );
    let deleted_with_cluster = cluster
        .spec
        .pvc_deletion_policy
        .as_ref()
        .is_some_and(|p| p.when_deleted == RetentionAction::Delete);
    if !deleted_with_cluster {
        metadata.owner_references = None;
    }
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            ("username".to_string(), ByteString(POSTGRES_USER.into())),
            (
                "password".to_string(),
                ByteString(password.as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}

/// A fresh random password: 32 alphanumeric characters.
pub fn generate_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect()
}

/// The cluster's TLS Secret (`ca.crt`, `tls.crt`, `tls.key`): one certificate, for server and
/// client use, with the name every gRPC client verifies and every Service name of the namespace
/// (clients of a gateway verify the Service they dial). Owned by the cluster: the pods of a
/// retained volume get a new one with the next cluster.
pub fn tls_secret(cluster: &MultigresCluster, name: &str, tls: &IssuedTls) -> Secret {
    let labels = labels::for_component(&cluster_name(cluster), component::TLS);
    tls.secret(child_meta(cluster, name, labels))
}

/// The names the cluster's certificate is valid for.
pub fn tls_sans(cluster: &MultigresCluster) -> Vec<String> {
    let ns = cluster.metadata.namespace.clone().unwrap_or_default();
    vec![
        multigres::GRPC_SERVER_NAME.to_string(),
        format!("*.{ns}"),
        format!("*.{ns}.svc"),
        format!("*.{ns}.svc.cluster.local"),
        "localhost".to_string(),
    ]
}
