//! Installing the operator's CRDs and running controller binaries against the control plane.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};

use crate::processes::{Owned, register};

/// Server-side applies every multigres CRD (too large for client-side apply's annotation) and waits
/// until each is established.
pub async fn install_crds(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in multigres_api::crd::all() {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("multigres-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("applying CRD {name}"))?;
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .map_err(|_| anyhow!("CRD {name} not established within 60s"))??;
    }
    Ok(())
}

/// A controller binary running as a child process; killed on drop and when the test binary exits.
pub struct OperatorProcess {
    pid: i32,
    pub log: PathBuf,
    /// Where this process's output starts in `log`: a restarted process appends to the log of
    /// the one before.
    log_start: u64,
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
    }
}

impl OperatorProcess {
    /// Sends SIGKILL, as a crash would.
    pub fn kill(&self) {
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
    }

    /// The address the process bound for `what` ("health and metrics", "gRPC health"), read from
    /// its log: started with port 0, it takes a port nobody else holds. Only this process's own
    /// output counts, not an earlier one's in the same log.
    pub async fn bound_address(&self, what: &str, timeout: Duration) -> Result<String> {
        let prefix = format!("listening for {what} on ");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let log = std::fs::read(&self.log).unwrap_or_default();
            let start = (self.log_start as usize).min(log.len());
            let log = String::from_utf8_lossy(&log[start..]);
            let found = log
                .lines()
                .filter_map(|l| l.split_once(&prefix))
                .filter_map(|(_, rest)| rest.split_whitespace().next())
                .next();
            if let Some(address) = found {
                return Ok(address.to_string());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(anyhow!(
                    "{} bound no {what} port within {timeout:?}; log:\n{log}",
                    self.log.display()
                ));
            }
            // The log is a file: no watch to wait on, a short poll instead.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGKILL and waits (up to 10 s) until the process has exited, so that its ports are
    /// free for a successor: SIGKILL is delivered asynchronously.
    pub fn kill_and_wait(&self) {
        self.kill();
        let stat = PathBuf::from(format!("/proc/{}/stat", self.pid));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            match std::fs::read_to_string(&stat) {
                // The spawner thread never reaps its children: an exited one stays a zombie (Z).
                Ok(line) if !exited(&line) => std::thread::sleep(Duration::from_millis(10)),
                _ => return,
            }
        }
    }
}

impl OperatorProcess {
    /// Whether the process has exited (a controller that lost its Lease exits by design, and in a
    /// cluster the kubelet starts it again).
    pub fn has_exited(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).map_or(true, |l| exited(&l))
    }
}

/// Whether a `/proc/<pid>/stat` line is of a process that has exited (zombie or dead).
fn exited(stat: &str) -> bool {
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some('Z' | 'X'))
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<u32>>);

/// PR_SET_PDEATHSIG fires when the spawning thread exits and every `#[tokio::test]` runs on a thread
/// of its own, so children are spawned from one thread that lives as long as the test binary.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("e2e-operator-spawner".into())
            .spawn(move || {
                let mut children = Vec::new();
                for (mut cmd, reply) in rx {
                    let result = cmd.spawn().map(|child| {
                        let id = child.id();
                        children.push(child);
                        id
                    });
                    let _ = reply.send(result);
                }
            })
            .expect("spawner thread starts");
        Mutex::new(tx)
    })
}

/// Starts `bin` with `args`, talking to the control plane through `kubeconfig`. Output goes to
/// `<log_dir>/<name>.log`.
pub fn spawn_operator(
    name: &str,
    bin: &Path,
    kubeconfig: &Path,
    log_dir: &Path,
    args: &[String],
) -> Result<OperatorProcess> {
    std::fs::create_dir_all(log_dir)?;
    let log_path = log_dir.join(format!("{name}.log"));
    // Appended: a restarted process continues its log.
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let log_start = log.metadata()?.len();
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("MULTIGRES_LOG_JSON", "false")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let pid = spawn_owned(cmd).with_context(|| format!("starting {}", bin.display()))?;
    Ok(OperatorProcess {
        pid,
        log: log_path,
        log_start,
    })
}

/// Spawns `cmd` in a process group of its own, from the long-lived spawner thread with
/// PR_SET_PDEATHSIG, and registers the group to be killed at exit. Returns its pid (= its group);
/// the caller may reap it with `waitpid`, nobody else does.
pub(crate) fn spawn_owned(mut cmd: Command) -> Result<i32> {
    cmd.process_group(0);
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| anyhow!("spawner thread is gone"))?;
    let pid = reply_rx
        .recv()
        .map_err(|_| anyhow!("spawner thread is gone"))?? as i32;
    register(Owned::Group(pid));
    Ok(pid)
}

/// The folder of the workspace's binaries, next to the running test's `deps/`:
/// `target/<profile>/deps/<test>` -> `target/<profile>`.
pub fn workspace_binaries_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("unexpected test binary path"))?
        .to_path_buf())
}

/// Path of a workspace binary built into the same target folder as the running test.
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let path = workspace_binaries_dir()?.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(anyhow!(
            "{} not built: run `cargo build --workspace --bins` first",
            path.display()
        ))
    }
}
