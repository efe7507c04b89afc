//! The managed topology certificates are renewed before they expire (docs/security.md,
//! "Renewal"): with a one-minute validity, the cluster controller names a new client certificate
//! and a new member certificate when twenty seconds are left, every child follows the new names,
//! both certificates chain to the operator's CA (so old and new pods trust each other while they
//! roll), and the topology stays reachable with the new one.

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
async fn topology_certificates_are_renewed_before_they_expire_and_every_child_follows() {
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
    let follows = |name: Option<&String>| name == Some(&client_secret);
    let cells: Api<Cell> = Api::namespaced(client.clone(), &ns);
    for cell in cells.list(&ListParams::default()).await.unwrap() {
        let name = cell.metadata.name.clone().unwrap_or_default();
        wait_for(&cells, &name, WAIT, |c| {
            follows(c.spec.global_topo_server.tls_secret_name.as_ref())
        })
        .await
        .unwrap();
    }
    let table_groups: Api<TableGroup> = Api::namespaced(client.clone(), &ns);
    for tg in table_groups.list(&ListParams::default()).await.unwrap() {
        let name = tg.metadata.name.clone().unwrap_or_default();
        wait_for(&table_groups, &name, WAIT, |t| {
            follows(t.spec.global_topo_server.tls_secret_name.as_ref())
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
