//! A throwaway single-node etcd on loopback, standing in for a topology server in tests (docs/testing.md),
//! and the flags every local etcd of this crate (and the bench) starts with.
//!
//! [`TestEtcd::start`] takes the binary from the control plane's bin folder (`$MULTIGRES_E2E_BIN`,
//! or the one `e2e/build-binaries.sh` prints), picks free loopback ports, keeps its data and log in
//! a temp folder, and waits until etcd answers. The kernel kills etcd if the spawning thread dies
//! (PR_SET_PDEATHSIG), so no etcd outlives a test run; dropping a [`TestEtcd`] kills it too.
//! [`TestEtcd::stop`] and [`TestEtcd::restart`] take it away and bring it back on the same ports
//! with the same data, for outage tests. [`TestEtcd::start_tls`] serves clients over TLS only and
//! requires client certificates, as an external etcd that speaks TLS does.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::processes::free_ports;

/// The flags of a single-member etcd called `name` with its data in `data_dir`, serving clients
/// on `127.0.0.1:client_port` and peers on `127.0.0.1:peer_port`. Callers add tuning flags
/// (`--log-level`, `--unsafe-no-fsync`).
pub fn args(name: &str, data_dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    vec![
        format!("--name={name}"),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster={name}={peer_url}"),
    ]
}

/// TLS on the client port with client-certificate auth, the server's files in `dir` (`ca.crt`,
/// `tls.crt`, `tls.key`), as a TopoServer that speaks TLS has them.
pub fn client_tls_flags(dir: &Path) -> [String; 4] {
    let file = |name: &str| dir.join(name).display().to_string();
    [
        format!("--cert-file={}", file("tls.crt")),
        format!("--key-file={}", file("tls.key")),
        format!("--trusted-ca-file={}", file("ca.crt")),
        "--client-cert-auth=true".into(),
    ]
}

/// A single-node etcd on free loopback ports; killed on drop, its temp folder removed.
pub struct TestEtcd {
    child: Option<Child>,
    bin: PathBuf,
    client_port: u16,
    peer_port: u16,
    endpoint: String,
    dir: tempfile::TempDir,
    /// `ca.crt`, `tls.crt`, `tls.key` of the server, and the plaintext port of `/health`.
    tls: Option<(PathBuf, u16)>,
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TestEtcd {
    /// Starts etcd on free loopback ports and waits until it serves requests. Retries with new
    /// ports if another process grabbed one between probing and binding; panics after three tries
    /// (with etcd's log on stderr).
    pub async fn start() -> TestEtcd {
        Self::start_with(None).await
    }

    /// [`TestEtcd::start`] with TLS and client-certificate auth on the client port, its server
    /// certificate and CA in `tls_dir` (`ca.crt`, `tls.crt`, `tls.key`).
    pub async fn start_tls(tls_dir: &Path) -> TestEtcd {
        Self::start_with(Some(tls_dir)).await
    }

    async fn start_with(tls_dir: Option<&Path>) -> TestEtcd {
        let bin = crate::binaries_dir()
            .expect("the e2e bin folder (etcd)")
            .join("etcd");
        for _ in 0..3 {
            let [client_port, peer_port, health_port] = free_ports().expect("free loopback ports");
            let mut etcd = TestEtcd {
                child: None,
                bin: bin.clone(),
                client_port,
                peer_port,
                endpoint: format!("127.0.0.1:{client_port}"),
                dir: tempfile::tempdir().expect("tempdir"),
                tls: tls_dir.map(|d| (d.to_path_buf(), health_port)),
            };
            if etcd.restart().await {
                return etcd;
            }
            eprintln!("etcd did not come up, retrying; log:\n{}", etcd.log());
        }
        panic!("could not start etcd");
    }

    /// The client address, `127.0.0.1:<port>` (what a topology address maps to).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The client URL, `http://127.0.0.1:<port>`.
    pub fn client_url(&self) -> String {
        format!("http://{}", self.endpoint)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// What etcd has logged so far (errors only).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Kills etcd; its ports and data stay for [`TestEtcd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts etcd on the same ports with the same data. Returns whether it serves requests
    /// within 20 seconds.
    pub async fn restart(&mut self) -> bool {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("etcd log file");
        let mut cmd = Command::new(&self.bin);
        let data = self.dir.path().join("data");
        let mut flags = args("t", &data, self.client_port, self.peer_port);
        if self.tls.is_some() {
            flags.retain(|f| !f.contains("-client-urls="));
            flags.extend(self.tls_args());
        }
        cmd.args(flags)
            .arg("--log-level=error")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup etcd log"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; it makes the kernel kill etcd if the spawning thread
        // dies without running Drop (e.g. on abort), so no etcd outlives a run.
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
            if self.healthy().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// The client port speaks TLS only; `/health` stays plaintext beside it.
    fn tls_args(&self) -> Vec<String> {
        let Some((dir, health)) = &self.tls else {
            return Vec::new();
        };
        let url = format!("https://{}", self.endpoint);
        let mut flags = vec![
            format!("--listen-client-urls={url}"),
            format!("--advertise-client-urls={url}"),
            format!("--listen-metrics-urls=http://127.0.0.1:{health}"),
        ];
        flags.extend(client_tls_flags(dir));
        flags
    }

    /// Whether etcd's `/health` answers healthy (a leader, and a read goes through) within 500ms.
    async fn healthy(&self) -> bool {
        let get = async {
            let health = match &self.tls {
                Some((_, port)) => format!("127.0.0.1:{port}"),
                None => self.endpoint.clone(),
            };
            let mut stream = tokio::net::TcpStream::connect(health).await.ok()?;
            stream
                .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .await
                .ok()?;
            let mut body = String::new();
            stream.read_to_string(&mut body).await.ok()?;
            Some(body)
        };
        match tokio::time::timeout(Duration::from_millis(500), get).await {
            Ok(Some(body)) => body.contains(r#""health":"true""#),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_name_one_member_on_the_given_ports() {
        let a = args("t", Path::new("/d"), 1, 2);
        assert!(a.contains(&"--listen-client-urls=http://127.0.0.1:1".to_string()));
        assert!(a.contains(&"--initial-cluster=t=http://127.0.0.1:2".to_string()));
        assert!(a.contains(&"--data-dir=/d".to_string()));
    }
}
