//! A Shard's pgBackRest certificate is renewed before it expires (docs/security.md, "Renewal"):
//! with a one-minute validity, the shard controller names a new Secret when twenty seconds are
//! left, the pool pod rolls onto it, and the old and the new certificate each verify against the
//! other's CA (the Shard's, derived from the topology CA), so pods on either trust each other.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use multigres_api::{PoolType, Shard, labels, naming};
use multigres_e2e::{shared, spawn_operator, wait_for};

const VALIDITY: i64 = 60;
const T: Duration = Duration::from_secs(90);

/// The pgBackRest Secret a pod mounts, as its annotation says.
fn mounted(pod: &Pod) -> Option<String> {
    pod.annotations().get(labels::PGBACKREST_TLS).cloned()
}

/// Whether the leaf of `secret` is signed by the CA in `ca_pem`.
fn signed_by(secret: &Secret, ca_pem: &[u8]) -> bool {
    let data = secret.data.clone().unwrap_or_default();
    multigres_e2e::x509::signed_by(&data["pgbackrest.crt"].0, ca_pem)
}

fn ca_of(secret: &Secret) -> Vec<u8> {
    secret.data.clone().unwrap_or_default()["ca.crt"].0.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pgbackrest_certificate_is_renewed_before_it_expires_and_the_pods_follow() {
    let cp = shared();
    let client = cp.client();
    multigres_e2e::install_crds(&client).await.unwrap();
    let ns = cp.namespace("shard-renewal").await.unwrap();
    let pki = tempfile::tempdir().unwrap();
    let (ca_cert, ca_key) = multigres_runtime::pki::generate_ca("operator-topology-ca").unwrap();
    std::fs::write(pki.path().join("tls.crt"), &ca_cert).unwrap();
    std::fs::write(pki.path().join("tls.key"), &ca_key).unwrap();
    let controller = spawn_operator(
        &format!("shard-controller-{ns}"),
        &controller_binary(),
        cp.kubeconfig_path(),
        &cp.log_dir(),
        &[
            "--http-addr=127.0.0.1:0".into(),
            "--grpc-health-addr=127.0.0.1:0".into(),
            format!("--watch-namespace={ns}"),
            format!("--lease-namespace={ns}"),
            "--hold-unserved-shards=false".into(),
            format!("--topology-ca-dir={}", pki.path().display()),
            format!("--topology-certificate-validity={VALIDITY}s"),
        ],
    )
    .unwrap();

    // One read-only pool of one pod: it rolls without a primary to move.
    let mut shard = shards_of(&orders_table_group(&ns)).remove(0);
    shard
        .spec
        .pools
        .retain(|p| p.pool_type == PoolType::ReadOnly);
    shard.spec.pools[0].replicas = 1;
    let shards: Api<Shard> = Api::namespaced(client.clone(), &ns);
    shards.create(&PostParams::default(), &shard).await.unwrap();
    let pool = &multigres_shard_controller::build::pools(&shard)[0];
    let pod_name = naming::pool_pod(&shard.name_any(), &pool.id, 0);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let first_pod = match wait_for(&pods, &pod_name, T, |p| mounted(p).is_some()).await {
        Ok(pod) => pod,
        Err(e) => panic!(
            "{e}\n{}",
            std::fs::read_to_string(&controller.log).unwrap_or_default()
        ),
    };
    let first = mounted(&first_pod).unwrap();
    let first_expiry = naming::pgbackrest_tls_expiry(&shard.name_any(), &first).unwrap();
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    assert!((first_expiry - now - VALIDITY).abs() <= 5, "{first}");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let first_secret = wait_for(&secrets, &first, T, |_| true).await.unwrap();
    assert!(signed_by(&first_secret, &ca_of(&first_secret)));
    assert!(
        !signed_by(&first_secret, ca_cert.as_bytes()),
        "the Shard's own CA, not the topology CA"
    );

    // A third of the validity before it expires: a new Secret, and the pod replaced onto it.
    let renewed_pod = wait_for(&pods, &pod_name, T, |p| {
        mounted(p).is_some_and(|m| m != first) && p.uid() != first_pod.uid()
    })
    .await
    .unwrap();
    let renewed_at = k8s_openapi::jiff::Timestamp::now().as_second();
    assert!(
        renewed_at >= first_expiry - VALIDITY / 3 - 2 && renewed_at < first_expiry,
        "renewed at {renewed_at}: before {first_expiry} and not long before its last third"
    );
    let second = mounted(&renewed_pod).unwrap();
    let second_expiry = naming::pgbackrest_tls_expiry(&shard.name_any(), &second).unwrap();
    assert!(second_expiry > first_expiry);
    let second_secret = wait_for(&secrets, &second, T, |_| true).await.unwrap();
    // Old and new trust each other through the Shard's one derived CA.
    assert!(signed_by(&second_secret, &ca_of(&first_secret)));
    assert!(signed_by(&first_secret, &ca_of(&second_secret)));
    assert!(
        secrets.get_opt(&first).await.unwrap().is_some(),
        "the first Secret stays for pods still on it"
    );
    eprintln!(
        "renewed {} s before expiry: {first} -> {second}",
        first_expiry - renewed_at
    );
}
