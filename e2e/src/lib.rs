//! A real local Kubernetes control plane for tests and the demo: etcd, kube-apiserver (RBAC, audit
//! log, ServiceAccount tokens), kube-controller-manager, kube-scheduler and kwok-managed fake nodes
//! in three zones, plus a default StorageClass whose claims the harness itself provisions.
//!
//! Every component runs as a child process in a temp folder and dies with the test binary.

pub mod audit;
mod boot;
mod certs;
pub mod chaos;
pub mod charts;
pub mod conformance;
pub mod etcd;
mod kwok;
pub mod operator;
mod processes;
pub mod progress;
pub mod samples;
pub mod stack;
mod storage;
pub mod tls_front;
pub mod wait;
pub mod x509;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

pub use kwok::{REGION, ZONES};
pub use operator::{
    OperatorProcess, install_crds, spawn_operator, workspace_binaries_dir, workspace_binary,
};
pub use processes::free_ports;
pub use storage::STORAGE_CLASS;
pub use wait::{wait_deleted, wait_for};

const DIR_PREFIX: &str = "multigres-e2e-";

pub struct ControlPlane {
    dir: Option<tempfile::TempDir>,
    booted: boot::Booted,
    bin: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    restarts: tokio::sync::mpsc::UnboundedSender<Restart>,
    supervisor: Option<JoinHandle<()>>,
}

impl ControlPlane {
    /// Starts a fresh control plane and returns once its nodes are Ready and the controller-manager
    /// runs.
    ///
    /// Blocks; fine to call from inside a test's runtime, since all the work happens on a dedicated
    /// thread. That thread must outlive the children because PR_SET_PDEATHSIG follows the spawning
    /// thread, and its own runtime keeps the PV provisioner alive across test runtimes.
    pub fn start() -> Result<ControlPlane> {
        let bin = binaries()?;
        processes::sweep_stale_dirs(&std::env::temp_dir(), DIR_PREFIX);
        let dir = tempfile::Builder::new().prefix(DIR_PREFIX).tempdir()?;
        processes::claim_dir(dir.path())?;
        processes::remove_at_exit(dir.path());
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (restart_tx, restart_rx) = tokio::sync::mpsc::unbounded_channel();
        let (root, bin2) = (dir.path().to_path_buf(), bin.clone());
        let supervisor = std::thread::Builder::new()
            .name("e2e-control-plane".into())
            .spawn(move || supervise(&bin2, &root, ready_tx, stop_rx, restart_rx))?;
        let booted = match ready_rx.recv() {
            Ok(Ok(booted)) => booted,
            Ok(Err(e)) => {
                let _ = supervisor.join();
                // Kept for diagnosis; the next start() sweeps it once this process is gone.
                processes::forget_dir(dir.path());
                let logs = dir.keep().join("logs");
                return Err(e.context(format!("control plane logs in {}", logs.display())));
            }
            Err(_) => bail!("the control plane thread died while starting"),
        };
        Ok(ControlPlane {
            dir: Some(dir),
            booted,
            bin,
            stop: Some(stop_tx),
            restarts: restart_tx,
            supervisor: Some(supervisor),
        })
    }

    /// Kills a component (`kube-apiserver`, `etcd`, `kube-controller-manager`, ...) and starts it
    /// again; returns once the API server answers `/readyz` again.
    pub async fn restart(&self, component: &str) -> Result<()> {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.restarts
            .send((component.to_string(), reply))
            .map_err(|_| anyhow!("the control plane has stopped"))?;
        done.await
            .map_err(|_| anyhow!("the control plane has stopped"))?
    }

    /// An admin (system:masters) client; call it inside a tokio runtime. Create one per test: a
    /// client is tied to the runtime it was made in, and `#[tokio::test]` makes a runtime per test.
    pub fn client(&self) -> Client {
        Client::try_from(self.booted.config.clone()).expect("admin client config is valid")
    }

    /// A client that authenticates as the ServiceAccount `namespace/name`, with a token from the
    /// TokenRequest API.
    pub async fn client_for_service_account(&self, namespace: &str, name: &str) -> Result<Client> {
        let sas = Api::<ServiceAccount>::namespaced(self.client(), namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            }),
            ..Default::default()
        };
        let token = sas
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?
            .status
            .and_then(|s| s.token)
            .ok_or_else(|| anyhow!("TokenRequest for {namespace}/{name} returned no token"))?;
        let mut config = self.booted.config.clone();
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        };
        Ok(Client::try_from(config)?)
    }

    /// Creates a fresh namespace named after `prefix` and returns its name once its default
    /// ServiceAccount exists (pods are refused before that).
    pub async fn namespace(&self, prefix: &str) -> Result<String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut prefix: String = prefix
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        prefix.truncate(40);
        let name = format!(
            "{}-{}",
            prefix.trim_matches('-'),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        let client = self.client();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        let sas = Api::<ServiceAccount>::namespaced(client, &name);
        wait_for(&sas, "default", Duration::from_secs(30), |_| true).await?;
        Ok(name)
    }

    /// The admin kubeconfig; valid as long as this control plane runs.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.booted.kubeconfig
    }

    pub fn server_url(&self) -> &str {
        &self.booted.server
    }

    /// The apiserver's audit log (Metadata level, one JSON event per line).
    pub fn audit_log_path(&self) -> &Path {
        &self.booted.audit_log
    }

    /// Where each component writes `<name>.log`.
    pub fn log_dir(&self) -> PathBuf {
        self.root().join("logs")
    }

    /// The folder with kubectl, helm and the control plane binaries.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    pub fn node_names(&self) -> &[String] {
        &self.booted.nodes
    }

    fn root(&self) -> &Path {
        self.dir.as_ref().expect("dir lives until drop").path()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.supervisor.take() {
            let _ = t.join();
        }
        if let Some(dir) = self.dir.take() {
            processes::forget_dir(dir.path());
        }
    }
}

/// The control plane shared by all tests of this test binary, started on first use. Each test takes
/// its own namespace. It is torn down when the binary exits (an `atexit` hook, and PDEATHSIG if the
/// binary is killed).
pub fn shared() -> &'static ControlPlane {
    static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
    let result = SHARED.get_or_init(|| ControlPlane::start().map_err(|e| format!("{e:#}")));
    match result {
        Ok(cp) => cp,
        Err(e) => panic!("starting the e2e control plane failed: {e}"),
    }
}

/// A component to restart, and where to say when it is back.
type Restart = (String, tokio::sync::oneshot::Sender<Result<()>>);

/// Runs the components and the PV provisioner until told to stop, restarting components on
/// request; the children are killed when this returns.
fn supervise(
    bin: &Path,
    root: &Path,
    ready: mpsc::Sender<Result<boot::Booted>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    mut restarts: tokio::sync::mpsc::UnboundedReceiver<Restart>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return drop(ready.send(Err(e.into()))),
    };
    rt.block_on(async {
        let mut procs = match processes::Processes::new(root.join("logs")) {
            Ok(p) => p,
            Err(e) => return drop(ready.send(Err(e))),
        };
        match boot::boot(bin, root, &mut procs).await {
            Ok((booted, client)) => {
                let _ = ready.send(Ok(booted));
                let provisioner = storage::provisioner(client.clone());
                tokio::pin!(provisioner);
                loop {
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = &mut provisioner => break,
                        Some((name, reply)) = restarts.recv() => {
                            let result = match procs.restart(&name) {
                                Ok(()) => boot::wait_readyz(&client, &mut procs).await,
                                Err(e) => Err(e),
                            };
                            let _ = reply.send(result);
                        }
                    }
                }
            }
            Err(e) => drop(ready.send(Err(e))),
        }
    });
}

/// The folder with the pinned binaries: `$MULTIGRES_E2E_BIN`, or what `build-binaries.sh` builds
/// (a cold build takes a long while; later runs reuse its cache).
/// The folder of the pinned binaries (etcd, kube-*, kwok, helm), found once per process.
pub fn binaries_dir() -> Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BIN.get_or_init(|| find_binaries().map_err(|e| format!("{e:#}")));
    found.clone().map_err(|e| anyhow!(e))
}

fn binaries() -> Result<PathBuf> {
    let bin = binaries_dir()?;
    for b in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ] {
        if !bin.join(b).is_file() {
            bail!("{} is missing from {}", b, bin.display());
        }
    }
    Ok(bin)
}

fn find_binaries() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MULTIGRES_E2E_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("build-binaries.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed with {}", script.display(), out.status);
    }
    let stdout = String::from_utf8(out.stdout)?;
    let last = stdout
        .lines()
        .last()
        .ok_or_else(|| anyhow!("{} printed nothing", script.display()))?;
    Ok(PathBuf::from(last.trim()))
}
