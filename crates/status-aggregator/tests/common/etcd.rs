#![allow(dead_code)] // shared with crates/topology/tests; not every helper is used here
//! A throwaway single-node etcd for integration tests.
//!
//! The binary comes from `$MULTIGRES_E2E_BIN/etcd`, or from `e2e/build-binaries.sh`, which
//! prints the cached bin folder (and returns at once when it is already built).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use multigres_topology::{AddressMapping, TopoClient};

pub const TIMEOUT: Duration = Duration::from_secs(2);

pub struct Etcd {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcd_binary() -> PathBuf {
    if let Some(dir) = std::env::var_os("MULTIGRES_E2E_BIN").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("etcd");
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../e2e/build-binaries.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run e2e/build-binaries.sh");
    assert!(out.status.success(), "{} failed", script.display());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .last()
        .expect("build-binaries.sh prints its bin dir");
    PathBuf::from(dir.trim()).join("etcd")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local addr").port()
}

impl Etcd {
    /// Starts etcd on free loopback ports and waits until it serves requests. Retries with new
    /// ports if another process grabbed one between probing and binding.
    pub async fn start() -> Etcd {
        let bin = etcd_binary();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("tempdir");
            let (client, peer) = (free_port(), free_port());
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log file");
            let mut cmd = Command::new(&bin);
            cmd.args(["--name", "t", "--log-level", "error"])
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("t={peer_url}")])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log);
            // SAFETY: prctl is async-signal-safe; it makes the kernel kill etcd if the test
            // process dies without running Drop (e.g. on abort), so no etcd outlives a run.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd.spawn().expect("spawn etcd");
            let mut etcd = Etcd {
                child,
                endpoint: format!("127.0.0.1:{client}"),
                _dir: dir,
            };
            if etcd.wait_ready().await {
                return etcd;
            }
            let log =
                std::fs::read_to_string(etcd._dir.path().join("etcd.log")).unwrap_or_default();
            eprintln!("etcd did not come up, retrying; log:\n{log}");
        }
        panic!("could not start etcd");
    }

    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(client) = self.client_with_timeout(Duration::from_millis(500)).await
                && client.revision().await.is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    async fn client_with_timeout(
        &self,
        timeout: Duration,
    ) -> multigres_topology::Result<TopoClient> {
        TopoClient::connect(
            std::slice::from_ref(&self.endpoint),
            &AddressMapping::off(),
            timeout,
        )
        .await
    }

    pub async fn client(&self) -> TopoClient {
        self.client_with_timeout(TIMEOUT).await.expect("connect")
    }
}
