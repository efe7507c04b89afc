//! A control plane's processes go away with it, however its owner ends.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use multigres_e2e::ControlPlane;

fn port(cp: &ControlPlane) -> u16 {
    cp.server_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("server url has a port")
}

/// Processes die asynchronously after SIGKILL, and a closed port is all there is to observe.
fn wait_port_closed(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn dropping_a_control_plane_stops_it() -> Result<()> {
    let cp = ControlPlane::start()?;
    let (port, kubeconfig) = (port(&cp), cp.kubeconfig_path().to_path_buf());
    drop(cp);
    // Drop waits for the children, so the port is closed at once.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "apiserver still listening"
    );
    assert!(!kubeconfig.exists(), "temp folder left behind");
    Ok(())
}

/// Started by `a_killed_owner_takes_the_control_plane_along` in a child test binary.
#[test]
#[ignore = "helper: a_killed_owner_takes_the_control_plane_along runs it in a child process and kills it"]
fn hold_a_control_plane() -> Result<()> {
    if std::env::var_os("MULTIGRES_E2E_HOLD").is_none() {
        return Ok(());
    }
    let cp = ControlPlane::start()?;
    let dir = cp
        .kubeconfig_path()
        .parent()
        .expect("kubeconfig is in the temp folder");
    println!("DIR={}", dir.display());
    println!("PORT={}", port(&cp));
    loop {
        std::thread::park();
    }
}

#[test]
fn a_killed_owner_takes_the_control_plane_along() -> Result<()> {
    let mut holder = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "hold_a_control_plane",
            "--ignored",
            "--nocapture",
        ])
        .env("MULTIGRES_E2E_HOLD", "1")
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = BufReader::new(holder.stdout.take().context("stdout")?);
    let mut lines = stdout.lines().map_while(Result::ok);
    let dir = lines.find_map(|l| l.strip_prefix("DIR=").map(str::to_string));
    let dir = dir.context("the holder never reported its folder")?;
    let port: u16 = lines
        .find_map(|l| l.strip_prefix("PORT=").and_then(|p| p.parse().ok()))
        .context("the holder never reported its port")?;
    holder.kill()?; // SIGKILL: no Drop, no atexit; only PDEATHSIG is left.
    holder.wait()?;
    assert!(
        wait_port_closed(port),
        "apiserver outlived its SIGKILLed owner"
    );
    // A SIGKILLed owner leaves its folder for the next start() to sweep; don't wait for that.
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
