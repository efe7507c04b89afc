//! A throwaway single-node etcd standing in for a managed global TopoServer (DESIGN §5), copied
//! in spirit from crates/topology/tests/common: the binary comes from the e2e bin folder.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use multigres_topology::{AddressMapping, TopoClient};

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

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local addr").port()
}

impl Etcd {
    pub async fn start() -> Etcd {
        let bin = super::cp().bin_dir().join("etcd");
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
            // SAFETY: prctl is async-signal-safe; etcd dies with the test process.
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
        }
        panic!("could not start etcd");
    }

    async fn wait_ready(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(client) = self.client().await
                && client.revision().await.is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub async fn client(&self) -> multigres_topology::Result<TopoClient> {
        TopoClient::connect(
            std::slice::from_ref(&self.endpoint),
            &AddressMapping::off(),
            Duration::from_secs(2),
        )
        .await
    }
}
