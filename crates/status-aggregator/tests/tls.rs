//! The gRPC API over TLS, in-process: a server on 127.0.0.1:0 with `server::TlsFiles` (as
//! `--tls-cert/--tls-key[/--tls-client-ca]` build it) and the client with `ClientTls`. The PKI (two
//! CAs, a server certificate for localhost/127.0.0.1, client certificates) is made at test time
//! with the `openssl` CLI in a temporary directory, as the e2e control plane makes its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::StreamExt;
use multigres_api::MultigresClusterStatus;
use multigres_status_aggregator::server::{self, Hub, TlsFiles};
use multigres_status_api::client::{ClientTls, StatusEvent, StatusSubscription};
use tokio::sync::oneshot;

/// Every failure must come well within this: a refused handshake is an error, not a hang.
const STEP: Duration = Duration::from_secs(10);

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (is it installed?)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

fn ca(dir: &Path, name: &str) {
    let (key, crt, subj) = (
        format!("{name}.key"),
        format!("{name}.crt"),
        format!("/CN={name}"),
    );
    let mut args = vec!["req", "-x509"];
    args.extend(EC);
    args.extend([
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &crt,
        "-days",
        "1",
        "-subj",
        &subj,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args);
}

/// `<name>.crt`/`<name>.key` signed by the CA `<ca>.crt`/`<ca>.key`.
fn leaf(dir: &Path, ca: &str, name: &str, extensions: &str) {
    let (key, csr, crt, ext, subj) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
        format!("/CN={name}"),
    );
    std::fs::write(dir.join(&ext), extensions).unwrap();
    let mut args = vec!["req", "-new"];
    args.extend(EC);
    args.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj]);
    openssl(dir, &args);
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &crt,
            "-extfile",
            &ext,
        ],
    );
}

/// The test PKI: `ca` signs the server and `client`; `other-ca` signs `stranger`.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn server(&self, client_ca: Option<&str>) -> TlsFiles {
        TlsFiles {
            cert: self.path("server.crt"),
            key: self.path("server.key"),
            client_ca: client_ca.map(|ca| self.path(&format!("{ca}.crt"))),
        }
    }

    /// Trusts `ca`; presents `<identity>.crt` when given.
    fn client(&self, ca: &str, identity: Option<&str>, domain: Option<&str>) -> ClientTls {
        let cert = identity.map(|n| self.path(&format!("{n}.crt")));
        let key = identity.map(|n| self.path(&format!("{n}.key")));
        ClientTls::from_files(
            &self.path(&format!("{ca}.crt")),
            cert.as_deref(),
            key.as_deref(),
            domain.map(String::from),
        )
        .unwrap()
    }
}

/// Made once per test binary (openssl runs take a few hundred milliseconds).
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        ca(d, "ca");
        ca(d, "other-ca");
        leaf(
            d,
            "ca",
            "server",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        );
        let client = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                      extendedKeyUsage=clientAuth\n";
        leaf(d, "ca", "client", client);
        leaf(d, "other-ca", "stranger", client);
        eprintln!("PKI made in {:?}", started.elapsed());
        Pki { dir }
    })
}

fn status() -> MultigresClusterStatus {
    MultigresClusterStatus {
        observed_generation: Some(1),
        cell_count: Some(1),
        ready_instances_summary: Some("3/3".into()),
        ..Default::default()
    }
}

struct Running {
    addr: SocketAddr,
    _hub: Hub,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        let result = tokio::time::timeout(STEP, self.task)
            .await
            .expect("server stops");
        result.unwrap().expect("server ran without error");
    }
}

/// A server with TLS, already holding the aggregate of `ns/c`.
async fn start(tls: TlsFiles) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (hub, reader) = Hub::new();
    hub.publish([(("ns".to_string(), "c".to_string()), status())].into());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server::serve(listener, reader, Some(&tls), async {
            let _ = stopped.await;
        })
        .await
    });
    Running {
        addr,
        _hub: hub,
        stop,
        task,
    }
}

/// `get("ns", "c")`, bounded by [`STEP`].
async fn get(endpoint: &str, tls: Option<ClientTls>) -> Result<MultigresClusterStatus, String> {
    let client = StatusSubscription::connect(endpoint, tls).unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(STEP, client.get("ns", "c"))
        .await
        .unwrap_or_else(|_| panic!("get against {endpoint} hung for {STEP:?}"));
    eprintln!("get {endpoint}: {:?} in {:?}", result, started.elapsed());
    // A failed handshake is UNAVAILABLE; a refusal the client only learns of after sending (TLS 1.3
    // client certificates, plaintext against TLS) is UNKNOWN "transport error" with the cause in
    // the source, so the Debug form (which includes the source) is what is returned.
    result.map_err(|status| {
        assert!(
            matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown
            ),
            "a transport failure: {status:?}"
        );
        format!("{status:?}")
    })
}

/// Whether a failure names the TLS layer (so it was refused by TLS, not by chance).
fn is_tls_error(error: &str) -> bool {
    let e = error.to_lowercase();
    ["certificate", "tls", "handshake", "unknownissuer", "alert"]
        .iter()
        .any(|w| e.contains(w))
}

#[tokio::test]
async fn a_client_trusting_the_ca_gets_the_status_over_tls() {
    let pki = pki();
    let server = start(pki.server(None)).await;
    let port = server.addr.port();

    // Bare host:port becomes https; the certificate names both 127.0.0.1 and localhost.
    let bare = format!("127.0.0.1:{port}");
    assert_eq!(
        get(&bare, Some(pki.client("ca", None, None)))
            .await
            .unwrap(),
        status()
    );
    let https = format!("https://localhost:{port}");
    assert_eq!(
        get(&https, Some(pki.client("ca", None, None)))
            .await
            .unwrap(),
        status()
    );
    // `domain` verifies against another name than the endpoint's host.
    let domain = Some("localhost");
    assert_eq!(
        get(&bare, Some(pki.client("ca", None, domain)))
            .await
            .unwrap(),
        status()
    );
    // Presenting a certificate the server does not ask for is harmless.
    let with_cert = pki.client("ca", Some("client"), None);
    assert_eq!(get(&bare, Some(with_cert)).await.unwrap(), status());

    // Streams work over TLS too.
    let client = StatusSubscription::connect(&bare, Some(pki.client("ca", None, None))).unwrap();
    let mut all = Box::pin(client.watch_all(None));
    let first = tokio::time::timeout(STEP, all.next()).await.unwrap();
    assert!(matches!(first, Some(StatusEvent::Status { status: s, .. }) if s == status()));
    let second = tokio::time::timeout(STEP, all.next()).await.unwrap();
    assert_eq!(second, Some(StatusEvent::Synced));
    drop(all);
    server.stop().await;
}

#[tokio::test]
async fn a_client_trusting_another_ca_or_name_fails_with_a_tls_error() {
    let pki = pki();
    let server = start(pki.server(None)).await;
    let bare = server.addr.to_string();

    let error = get(&bare, Some(pki.client("other-ca", None, None)))
        .await
        .unwrap_err();
    assert!(is_tls_error(&error), "{error}");
    // The right CA but a name the certificate does not carry.
    let error = get(
        &bare,
        Some(pki.client("ca", None, Some("elsewhere.example"))),
    )
    .await
    .unwrap_err();
    assert!(is_tls_error(&error), "{error}");
    server.stop().await;
}

#[tokio::test]
async fn a_plaintext_client_against_the_tls_server_fails() {
    let pki = pki();
    let server = start(pki.server(None)).await;
    let plain = format!("http://{}", server.addr);
    get(&plain, None).await.unwrap_err();
    // The TLS server still serves TLS clients afterwards.
    let bare = server.addr.to_string();
    assert_eq!(
        get(&bare, Some(pki.client("ca", None, None)))
            .await
            .unwrap(),
        status()
    );
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_serves_only_clients_with_a_certificate_from_the_client_ca() {
    let pki = pki();
    let server = start(pki.server(Some("ca"))).await;
    let bare = server.addr.to_string();

    let error = get(&bare, Some(pki.client("ca", None, None)))
        .await
        .unwrap_err();
    assert!(is_tls_error(&error), "no client certificate: {error}");
    let error = get(&bare, Some(pki.client("ca", Some("stranger"), None)))
        .await
        .unwrap_err();
    assert!(is_tls_error(&error), "certificate from another CA: {error}");
    get(&format!("http://{}", server.addr), None)
        .await
        .unwrap_err();

    // The cluster controller's subscription reports the refusal, with its reason, and retries.
    let refused = StatusSubscription::connect(&bare, Some(pki.client("ca", None, None))).unwrap();
    let mut all = Box::pin(refused.watch_all(None));
    let event = tokio::time::timeout(STEP, all.next()).await.unwrap();
    let Some(StatusEvent::Disconnected { error }) = event else {
        panic!("expected Disconnected, got {event:?}")
    };
    eprintln!("watch_all without a client certificate: {error}");
    assert!(error.contains("CertificateRequired"), "{error}");
    drop(all);

    let client = Some(pki.client("ca", Some("client"), None));
    assert_eq!(get(&bare, client).await.unwrap(), status());
    server.stop().await;
}

#[test]
fn client_tls_from_files_needs_both_cert_and_key_and_readable_files() {
    let pki = pki();
    let (ca, cert) = (pki.path("ca.crt"), pki.path("client.crt"));
    let error = ClientTls::from_files(&ca, Some(&cert), None, None).unwrap_err();
    assert!(error.to_string().contains("both"), "{error}");
    let missing = pki.path("missing.crt");
    let error = ClientTls::from_files(&missing, None, None, None).unwrap_err();
    assert!(error.to_string().contains("missing.crt"), "{error}");
    let error = pki.server(Some("missing")).server_config().unwrap_err();
    assert!(error.to_string().contains("missing.crt"), "{error}");
}
