//! Starting the components in order and waiting for each to be usable.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

use crate::certs::{self, Pki};
use crate::processes::{self, Processes};
use crate::{kwok, storage};

/// What a started control plane hands back to its owner.
pub struct Booted {
    pub server: String,
    pub kubeconfig: PathBuf,
    pub audit_log: PathBuf,
    pub config: kube::Config,
    pub nodes: Vec<String>,
}

const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
";

pub async fn boot(bin: &Path, root: &Path, procs: &mut Processes) -> Result<(Booted, Client)> {
    let pki = certs::generate(&root.join("pki"))?;
    let [etcd_port, peer_port, api_port] = processes::free_ports()?;
    procs.spawn(
        "etcd",
        &bin.join("etcd"),
        &etcd_args(root, etcd_port, peer_port),
    )?;

    std::fs::write(root.join("audit-policy.yaml"), AUDIT_POLICY)?;
    let audit_log = root.join("audit.log");
    let args = apiserver_args(root, &pki, etcd_port, api_port, &audit_log);
    procs.spawn("kube-apiserver", &bin.join("kube-apiserver"), &args)?;

    let server = format!("https://127.0.0.1:{api_port}");
    let kubeconfig = root.join("kubeconfig");
    write_kubeconfig(&kubeconfig, &server, &pki)?;
    let kc = Kubeconfig::read_from(&kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config.clone())?;
    wait_readyz(&client, procs).await?;

    let kcm = kcm_args(&kubeconfig, &pki);
    procs.spawn(
        "kube-controller-manager",
        &bin.join("kube-controller-manager"),
        &kcm,
    )?;
    let sched = vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        format!("--kube-api-qps={CLIENT_QPS}"),
        format!("--kube-api-burst={CLIENT_BURST}"),
    ];
    procs.spawn("kube-scheduler", &bin.join("kube-scheduler"), &sched)?;
    procs.spawn("kwok", &bin.join("kwok"), &kwok::args(&kubeconfig))?;

    storage::create_storage_class(&client).await?;
    let nodes_api = Api::<Node>::all(client.clone());
    let nodes = kwok::create_nodes(&nodes_api, 1).await?;
    let ready = async {
        kwok::wait_nodes_ready(&nodes_api, &nodes).await?;
        // The controller-manager needs seconds to start its controllers; until the ServiceAccount
        // controller has filled `default`, no pod can be created.
        let sas = Api::<ServiceAccount>::namespaced(client.clone(), "default");
        crate::wait::wait_for(&sas, "default", Duration::from_secs(60), |_| true).await?;
        anyhow::Ok(())
    };
    tokio::select! {
        r = ready => r.context("waiting for the nodes and the controller-manager")?,
        e = watch_alive(procs) => return Err(e),
    }
    let booted = Booted {
        server,
        kubeconfig,
        audit_log,
        config,
        nodes,
    };
    Ok((booted, client))
}

/// Resolves only when a component has died, with its log tail.
async fn watch_alive(procs: &mut Processes) -> anyhow::Error {
    loop {
        if let Err(e) = procs.check_alive() {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `/readyz`: there is nothing to watch before the apiserver is up.
pub(crate) async fn wait_readyz(client: &Client, procs: &mut Processes) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        procs.check_alive()?;
        let req = http::Request::get("/readyz").body(Vec::new())?;
        match client.request_text(req).await {
            Ok(body) if body.trim() == "ok" => return Ok(()),
            result if Instant::now() > deadline => {
                bail!("kube-apiserver not ready after 90s: {result:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Client-side limits of the controller-manager and the scheduler. Their defaults (20 and 50 QPS)
/// would make the PV binder and the scheduler, not the API server or the operator, the bottleneck
/// of every large run; kwokctl lifts them the same way for scale tests. kwok itself is unlimited.
const CLIENT_QPS: u32 = 5000;
const CLIENT_BURST: u32 = 10000;

fn etcd_args(root: &Path, port: u16, peer: u16) -> Vec<String> {
    let mut args = crate::etcd::args("e2e", &root.join("etcd"), port, peer);
    // Throw-away data: durability only costs time here.
    args.extend(["--unsafe-no-fsync".into(), "--log-level=warn".into()]);
    args
}

fn apiserver_args(root: &Path, pki: &Pki, etcd: u16, port: u16, audit: &Path) -> Vec<String> {
    let p = |p: &Path| p.display().to_string();
    vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        // Endpoints may not hold a loopback address, so the `kubernetes` Service gets none; nothing
        // runs inside this cluster to use it.
        "--endpoint-reconciler-type=none".into(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", root.join("apiserver-certs").display()),
        format!("--tls-cert-file={}", p(&pki.serving_cert)),
        format!("--tls-private-key-file={}", p(&pki.serving_key)),
        format!("--client-ca-file={}", p(&pki.ca_cert)),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", p(&pki.sa_pub)),
        format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
        // A /16: the large benchmark alone allocates thousands of Services over its scenarios.
        "--service-cluster-ip-range=10.0.0.0/16".into(),
        "--authorization-mode=Node,RBAC".into(),
        // Default admission plugins are kept; ValidatingAdmissionPolicy is GA and on by default.
        format!("--audit-log-path={}", p(audit)),
        format!(
            "--audit-policy-file={}",
            root.join("audit-policy.yaml").display()
        ),
        "--allow-privileged=true".into(),
        "--profiling=false".into(),
    ]
}

fn kcm_args(kubeconfig: &Path, pki: &Pki) -> Vec<String> {
    let p = |p: &Path| p.display().to_string();
    vec![
        format!("--kubeconfig={}", p(kubeconfig)),
        "--controllers=*".into(),
        format!("--service-account-private-key-file={}", p(&pki.sa_key)),
        format!("--root-ca-file={}", p(&pki.ca_cert)),
        "--use-service-account-credentials=true".into(),
        format!("--cluster-signing-cert-file={}", p(&pki.ca_cert)),
        format!("--cluster-signing-key-file={}", p(&pki.ca_key)),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        format!("--kube-api-qps={CLIENT_QPS}"),
        format!("--kube-api-burst={CLIENT_BURST}"),
    ]
}

/// Refers to the PKI files rather than embedding them, so it stays valid only while they exist.
fn write_kubeconfig(path: &Path, server: &str, pki: &Pki) -> Result<()> {
    let p = |p: &Path| p.display().to_string();
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: multigres-e2e
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: multigres-e2e
  context:
    cluster: multigres-e2e
    user: admin
    namespace: default
current-context: multigres-e2e
",
        ca = p(&pki.ca_cert),
        cert = p(&pki.admin_cert),
        key = p(&pki.admin_key),
    );
    std::fs::write(path, text)?;
    Ok(())
}
