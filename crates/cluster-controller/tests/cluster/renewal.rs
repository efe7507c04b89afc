//! The certificates from the operator's CA are renewed before they expire (docs/security.md,
//! "Renewal"): with a one-minute validity, the cluster controller names a new topology client
//! certificate, a new member certificate and a new certificate of the cluster's own when twenty
//! seconds are left, every child follows the new names, old and new chain to the same CA (the
//! operator's for the topology, the cluster's derived one for its own), so old and new pods trust
//! each other while they roll, and the topology stays reachable with the new one.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::ListParams;
use multigres_api::{Cell, MultigresCluster, TableGroup, TopoServer, naming};
use multigres_e2e::wait_for;
use multigres_runtime::pki::Authority;

use super::*;

/// The shortest validity the controller takes: renewed when 20 s are left.
const VALIDITY: i64 = 60;

/// The expiry in the global TopoServer's member Secret name.
fn member_expiry(topo_server: &TopoServer) -> Option<i64> {
    let name = topo_server.metadata.name.as_deref()?;
    naming::topo_server_tls_expiry(name, &topo_server.spec.tls.as_ref()?.secret_name)
}

/// The expiry in the name of the cluster's own TLS Secret, as a Cell mounts it.
fn own_expiry(cell: &Cell) -> Option<i64> {
    naming::tls_expiry(SAMPLE, &cell.spec.tls.as_ref()?.secret_name)
}

/// Whether the leaf of `secret` (`tls.crt`) is signed by the CA certificate `ca_pem`.
fn signed_by(secret: &Secret, ca_pem: &[u8]) -> bool {
    let data = secret.data.clone().unwrap_or_default();
    multigres_e2e::x509::signed_by(&data["tls.crt"].0, ca_pem)
}

/// The certificate in `secret` expires at `not_after` and was signed by `ca`.
fn assert_issued(secret: &Secret, ca: &Authority, not_after: i64) {
    let data = secret.data.clone().unwrap_or_default();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&data["tls.crt"].0).unwrap();
    let leaf = pem.parse_x509().unwrap();
    assert_eq!(leaf.validity().not_after.timestamp(), not_after);
    let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.ca_pem().as_bytes()).unwrap();
    let ca_certificate = ca_pem.parse_x509().unwrap();
    leaf.verify_signature(Some(ca_certificate.public_key()))
        .expect("signed by the operator's topology CA");
}

#[tokio::test]
async fn certificates_are_renewed_before_they_expire_and_every_child_follows() {
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace("cc-renewal").await.unwrap();
    let pki = tempfile::tempdir().unwrap();
    let (ca_cert, ca_key) = multigres_runtime::pki::generate_ca("operator-topology-ca").unwrap();
    let ca_dir = pki.path().join("ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::write(ca_dir.join("tls.crt"), &ca_cert).unwrap();
    std::fs::write(ca_dir.join("tls.key"), &ca_key).unwrap();
    let ca = Authority::from_pem(&ca_cert, &ca_key).unwrap();
    // The managed global etcd, standing in: TLS with a member certificate of the same CA.
    let global = naming::global_topo_server(SAMPLE);
    let address = naming::topo_address(&naming::topo_client_service(&global), &ns);
    let host = address.split(':').next().unwrap().to_string();
    let server = pki.path().join("server");
    write_certificate(&ca, &host, std::slice::from_ref(&host), &server);
    let etcd = TestEtcd::start_tls(&server).await;
    let mapping = format!("{address}={}", etcd.endpoint());
    let extra = [
        format!("--topology-ca-dir={}", ca_dir.display()),
        format!("--topology-certificate-validity={VALIDITY}s"),
    ];
    let controller = start_controller_with(&ns, &mapping, &extra).await.unwrap();
    apply_templates(&client, &ns).await.unwrap();
    apply(&client, &sample_cluster(&ns)).await.unwrap();

    let topo_servers: Api<TopoServer> = Api::namespaced(client.clone(), &ns);
    let first = wait_for(&topo_servers, &global, WAIT, |t| member_expiry(t).is_some())
        .await
        .unwrap();
    let first = member_expiry(&first).unwrap();
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    assert!((first - now - VALIDITY).abs() <= 5, "{first} vs {now}");
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);
    let encrypted = wait_for(&clusters, SAMPLE, WAIT, |c| {
        condition(c, "TopologyEncrypted").is_some_and(|(s, _, _)| s == "True")
    })
    .await
    .unwrap();
    assert_eq!(
        condition(&encrypted, "TopologyEncrypted").unwrap().1,
        "MutualTLS"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let client_secret = naming::topology_tls_secret_until(SAMPLE, first);
    let issued = wait_for(&secrets, &client_secret, WAIT, |_| true)
        .await
        .unwrap();
    assert_issued(&issued, &ca, first);
    // The cluster's own certificate: named for its expiry, from a CA of the cluster's own.
    let cells: Api<Cell> = Api::namespaced(client.clone(), &ns);
    let cell_name = naming::cell(SAMPLE, "us-east-1");
    let cell = wait_for(&cells, &cell_name, WAIT, |c| own_expiry(c).is_some())
        .await
        .unwrap();
    let own_first = own_expiry(&cell).unwrap();
    assert!(
        (own_first - now - VALIDITY).abs() <= 5,
        "{own_first} vs {now}"
    );
    let own_first_secret = wait_for(
        &secrets,
        &naming::tls_secret_until(SAMPLE, own_first),
        WAIT,
        |_| true,
    )
    .await
    .unwrap();
    let own_ca = own_first_secret.data.clone().unwrap_or_default()["ca.crt"]
        .0
        .clone();
    assert!(signed_by(&own_first_secret, &own_ca));
    assert!(
        !signed_by(&own_first_secret, ca.ca_pem().as_bytes()),
        "the cluster's certificate is not one of the topology CA: another cluster's components \
         must not be trusted"
    );

    // A third of the validity before it ends, new names; the old Secret stays for pods still on it.
    let renewed = wait_for(&topo_servers, &global, WAIT, |t| {
        member_expiry(t).is_some_and(|t| t > first)
    })
    .await
    .unwrap();
    let second = member_expiry(&renewed).unwrap();
    let renewed_at = k8s_openapi::jiff::Timestamp::now().as_second();
    assert!(
        renewed_at >= first - VALIDITY / 3 - 2 && renewed_at < first,
        "renewed at {renewed_at}, before {first} expired and not long before its last third"
    );
    let client_secret = naming::topology_tls_secret_until(SAMPLE, second);
    let issued = wait_for(&secrets, &client_secret, WAIT, |_| true)
        .await
        .unwrap();
    assert_issued(&issued, &ca, second);
    // The cluster's own certificate is renewed in the same reconcile.
    let own_second = wait_for(&cells, &cell_name, WAIT, |c| {
        own_expiry(c).is_some_and(|t| t > own_first)
    })
    .await
    .map(|c| own_expiry(&c).unwrap())
    .unwrap();
    let own_secret = naming::tls_secret_until(SAMPLE, own_second);
    let own_second_secret = wait_for(&secrets, &own_secret, WAIT, |_| true)
        .await
        .unwrap();
    let own_second_ca = own_second_secret.data.clone().unwrap_or_default()["ca.crt"]
        .0
        .clone();
    // Old and new pods trust each other: each certificate verifies against the other's CA.
    assert!(signed_by(&own_second_secret, &own_ca));
    assert!(signed_by(&own_first_secret, &own_second_ca));
    let follows = |name: Option<&String>| name == Some(&client_secret);
    let follows_own =
        |tls: Option<&multigres_api::TlsRef>| tls.is_some_and(|t| t.secret_name == own_secret);
    for cell in cells.list(&ListParams::default()).await.unwrap() {
        let name = cell.metadata.name.clone().unwrap_or_default();
        wait_for(&cells, &name, WAIT, |c| {
            follows(c.spec.global_topo_server.tls_secret_name.as_ref())
                && follows_own(c.spec.tls.as_ref())
        })
        .await
        .unwrap();
    }
    let table_groups: Api<TableGroup> = Api::namespaced(client.clone(), &ns);
    for tg in table_groups.list(&ListParams::default()).await.unwrap() {
        let name = tg.metadata.name.clone().unwrap_or_default();
        wait_for(&table_groups, &name, WAIT, |t| {
            follows(t.spec.global_topo_server.tls_secret_name.as_ref())
                && follows_own(t.spec.tls.as_ref())
        })
        .await
        .unwrap();
    }
    assert!(
        secrets
            .get_opt(&naming::topology_tls_secret_until(SAMPLE, first))
            .await
            .unwrap()
            .is_some(),
        "the first client certificate stays until the cluster goes"
    );
    // The controller dials the topology with its own certificate of the same CA throughout.
    let reachable = wait_for(&clusters, SAMPLE, WAIT, |c| {
        condition(c, "TopologyReachable").is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    if let Err(e) = reachable {
        let log = std::fs::read_to_string(&controller.process.log).unwrap_or_default();
        panic!("{e}\n{log}");
    }
}
