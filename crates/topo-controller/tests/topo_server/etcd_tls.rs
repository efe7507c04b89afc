//! A TopoServer that speaks TLS: the controller issues the members' certificate from the topology
//! CA, and a real etcd started with the generated StatefulSet's own arguments and that Secret
//! serves the operator's client (certificate of the CA, server name of the client Service) and
//! refuses clients without a certificate of that CA.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::Secret;
use multigres_api::{TopoServerTls, naming};
use multigres_runtime::pki::{self, Authority};
use multigres_runtime::topology_tls::TopologyIdentity;
use multigres_topology::{AddressMapping, Cell, ClientTls, TopoClient};

use super::*;

/// The topology CA every TopoServer of this test binary is issued from (the controller's
/// `--topology-ca-dir`).
pub fn ca_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = pki::generate_ca("test topology CA").expect("CA");
        std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), key).unwrap();
        dir
    })
    .path()
}

/// etcd with the StatefulSet's arguments, its fixed ports and paths moved to this machine.
struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_member(args: &[String], pod: &str, dir: &Path, ports: [u16; 3]) -> Member {
    let [client, peer, metrics] = ports;
    let local: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("$(POD_NAME)", pod)
                .replace("0.0.0.0:2379", &format!("127.0.0.1:{client}"))
                .replace("0.0.0.0:2380", &format!("127.0.0.1:{peer}"))
                .replace("0.0.0.0:2381", &format!("127.0.0.1:{metrics}"))
                .replace("/var/lib/etcd", &dir.join("data").display().to_string())
                .replace("/etc/etcd/tls", &dir.join("tls").display().to_string())
        })
        .collect();
    let etcd = multigres_e2e::binaries_dir().unwrap().join("etcd");
    let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
    let child = Command::new(etcd)
        .args(&local)
        .arg("--log-level=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("etcd starts");
    Member(child)
}

async fn connect(address: &str, port: u16, tls: Option<&ClientTls>) -> TopoClient {
    let mapping = AddressMapping::parse(&format!("{address}=127.0.0.1:{port}")).unwrap();
    TopoClient::connect(
        &[address.to_string()],
        &mapping,
        Duration::from_secs(2),
        tls,
    )
    .await
    .expect("a lazy client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_topo_server_serves_the_operator_and_refuses_strangers() {
    controller().await;
    let cp = shared();
    let client: Client = cp.client();
    let ns = cp.namespace("topo-tls").await.unwrap();
    let name = "secure-global";
    // Renewable: the name says until when the certificate is valid, and it is.
    let not_after = k8s_openapi::jiff::Timestamp::now().as_second() + 3600;
    let secret_name = naming::topo_server_tls_secret_until(name, not_after);
    let mut ts = topo_server(name, &ns, 1);
    ts.spec.tls = Some(TopoServerTls {
        secret_name: secret_name.clone(),
    });
    let topos: Api<TopoServer> = Api::namespaced(client.clone(), &ns);
    topos.create(&PostParams::default(), &ts).await.unwrap();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret = wait_for(&secrets, &secret_name, WAIT, |_| true)
        .await
        .unwrap();
    let data = secret.data.clone().unwrap_or_default();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&data["tls.crt"].0).unwrap();
    let certificate = pem.parse_x509().unwrap();
    assert_eq!(certificate.validity().not_after.timestamp(), not_after);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let sts = wait_for(&statefulsets, name, WAIT, |_| true).await.unwrap();
    let pod = sts.spec.unwrap().template.spec.unwrap();
    let args = pod.containers[0].args.clone().unwrap();
    assert_eq!(
        pod.volumes.unwrap()[0].secret.as_ref().unwrap().secret_name,
        Some(secret_name.clone())
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tls")).unwrap();
    for (key, value) in secret.data.unwrap() {
        std::fs::write(dir.path().join("tls").join(key), value.0).unwrap();
    }
    let ports = multigres_e2e::free_ports::<3>().unwrap();
    let _member = start_member(&args, &format!("{name}-0"), dir.path(), ports);
    let address = naming::topo_address(&naming::topo_client_service(name), &ns);

    let authority = Arc::new(Authority::load(ca_dir()).unwrap());
    let operator = TopologyIdentity::new(authority).unwrap().client;
    let topo = connect(&address, ports[0], Some(&operator)).await;
    let probe = Cell {
        name: "probe".into(),
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match topo.create_or_update("/tls/probe", &probe).await {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("waiting for etcd: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!(
                "{e}\netcd log: {}",
                std::fs::read_to_string(dir.path().join("etcd.log")).unwrap_or_default()
            ),
        }
    }
    let (read, _) = topo.get::<Cell>("/tls/probe").await.unwrap().unwrap();
    assert_eq!(read, probe);

    // Plaintext, and a certificate of another CA, are refused.
    let plain = connect(&address, ports[0], None).await;
    assert!(plain.get_raw("/tls/probe").await.is_err());
    let (other_cert, other_key) = pki::generate_ca("another CA").unwrap();
    let stranger = Authority::from_pem(&other_cert, &other_key)
        .unwrap()
        .sign("stranger", &[])
        .unwrap();
    let stranger = ClientTls {
        ca_pem: operator.ca_pem.clone(),
        cert_pem: stranger.cert_pem,
        key_pem: stranger.key_pem,
    };
    let refused = connect(&address, ports[0], Some(&stranger)).await;
    assert!(refused.get_raw("/tls/probe").await.is_err());
}
