//! A throwaway single-node etcd standing in for a topology server (copied from
//! `crates/topology/tests/common`, plus stop and restart on the same ports and data for outage tests).
//!
//! The binary comes from `$MULTIGRES_E2E_BIN/etcd`, or from `e2e/build-binaries.sh`.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use multigres_topology::{AddressMapping, TopoClient};

pub const TIMEOUT: Duration = Duration::from_secs(2);

pub struct Etcd {
    child: Option<Child>,
    pub endpoint: String,
    client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
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
    /// Starts etcd on free loopback ports and waits until it serves requests.
    pub async fn start() -> Etcd {
        for _ in 0..3 {
            let mut etcd = Etcd {
                child: None,
                endpoint: String::new(),
                client_port: free_port(),
                peer_port: free_port(),
                dir: tempfile::tempdir().expect("tempdir"),
            };
            etcd.endpoint = format!("127.0.0.1:{}", etcd.client_port);
            if etcd.restart().await {
                return etcd;
            }
            let log = std::fs::read_to_string(etcd.dir.path().join("etcd.log")).unwrap_or_default();
            eprintln!("etcd did not come up, retrying; log:\n{log}");
        }
        panic!("could not start etcd");
    }

    /// Kills etcd; its data stays for [`Etcd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts etcd on the same ports with the same data. Returns whether it serves requests.
    pub async fn restart(&mut self) -> bool {
        self.stop();
        let client_url = format!("http://127.0.0.1:{}", self.client_port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("log file");
        let mut cmd = Command::new(etcd_binary());
        cmd.args(["--name", "t", "--log-level", "error"])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; the kernel kills etcd if the test process dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().expect("spawn etcd"));
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return false;
            }
            if let Ok(client) = TopoClient::connect(
                std::slice::from_ref(&self.endpoint),
                &AddressMapping::off(),
                Duration::from_millis(500),
            )
            .await
                && client.revision().await.is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub async fn client(&self) -> TopoClient {
        TopoClient::connect(
            std::slice::from_ref(&self.endpoint),
            &AddressMapping::off(),
            TIMEOUT,
        )
        .await
        .expect("connect")
    }
}
