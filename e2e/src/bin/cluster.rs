//! `local-cluster up [--detach] [--kubeconfig PATH]` runs the local control plane until SIGINT or
//! SIGTERM; `local-cluster down [--kubeconfig PATH]` stops the one started with that kubeconfig.
//! The default kubeconfig is `$MULTIGRES_DEMO_DIR/kubeconfig`, else `<repo>/.demo/kubeconfig`;
//! the pid file and the log of a detached run sit beside it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use multigres_e2e::ControlPlane;
use tokio::signal::unix::{SignalKind, signal};

struct Paths {
    kubeconfig: PathBuf,
    pid: PathBuf,
    log: PathBuf,
}

fn paths(kubeconfig: Option<PathBuf>) -> Paths {
    let kubeconfig = kubeconfig.unwrap_or_else(|| {
        let dir = std::env::var_os("MULTIGRES_DEMO_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.demo"));
        dir.join("kubeconfig")
    });
    let dir = kubeconfig.parent().unwrap_or(Path::new(".")).to_path_buf();
    Paths {
        pid: dir.join("local-cluster.pid"),
        log: dir.join("local-cluster.log"),
        kubeconfig,
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut cmd, mut detach, mut kubeconfig) = (None, false, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "up" | "down" => cmd = Some(a),
            "--detach" | "-d" => detach = true,
            "--kubeconfig" => kubeconfig = args.next().map(PathBuf::from),
            _ => bail!(
                "usage: local-cluster up [--detach] [--kubeconfig PATH] | down [--kubeconfig PATH]"
            ),
        }
    }
    let paths = paths(kubeconfig);
    if let Some(dir) = paths.kubeconfig.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match cmd.as_deref() {
        Some("up") if detach => up_detached(&paths),
        Some("up") => up(&paths),
        Some("down") => down(&paths),
        _ => bail!("usage: local-cluster up|down"),
    }
}

fn running_pid(paths: &Paths) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(&paths.pid)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive(pid).then_some(pid)
}

/// A zombie counts as gone: a detached `up` is reparented to a PID 1 that may never reap it.
fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

fn up(paths: &Paths) -> Result<()> {
    if let Some(pid) = running_pid(paths) {
        bail!("already running as pid {pid}; run `local-cluster down` first");
    }
    let _ = std::fs::remove_file(&paths.kubeconfig);
    let started = std::time::Instant::now();
    let cp = ControlPlane::start()?;
    std::fs::write(&paths.pid, std::process::id().to_string())?;
    // Written last and atomically: its appearance is what `up --detach` waits for.
    let tmp = paths.kubeconfig.with_extension("tmp");
    std::fs::copy(cp.kubeconfig_path(), &tmp)?;
    std::fs::rename(&tmp, &paths.kubeconfig)?;
    println!(
        "control plane up in {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        cp.server_url()
    );
    println!("component logs: {}", cp.log_dir().display());
    println!("kubectl and helm: {}", cp.bin_dir().display());
    println!("export KUBECONFIG={}", paths.kubeconfig.display());

    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut term = signal(SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            anyhow::Ok(())
        })?;
    let _ = std::fs::remove_file(&paths.kubeconfig);
    let _ = std::fs::remove_file(&paths.pid);
    drop(cp);
    println!("control plane stopped");
    Ok(())
}

/// Starts `up` in its own session, so it outlives this shell, and returns once it is ready.
fn up_detached(paths: &Paths) -> Result<()> {
    if let Some(pid) = running_pid(paths) {
        bail!("already running as pid {pid}; run `local-cluster down` first");
    }
    let _ = std::fs::remove_file(&paths.kubeconfig);
    let log = std::fs::File::create(&paths.log)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["up", "--kubeconfig"])
        .arg(&paths.kubeconfig)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting local-cluster up")?;
    eprintln!(
        "starting the control plane (log: {})...",
        paths.log.display()
    );
    loop {
        if paths.kubeconfig.exists() {
            println!("export KUBECONFIG={}", paths.kubeconfig.display());
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&paths.log).unwrap_or_default();
            bail!("local-cluster up exited with {status}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn down(paths: &Paths) -> Result<()> {
    let Some(pid) = running_pid(paths) else {
        println!("not running");
        let _ = std::fs::remove_file(&paths.pid);
        return Ok(());
    };
    unsafe { libc::kill(pid, libc::SIGTERM) };
    for _ in 0..150 {
        if !alive(pid) {
            println!("stopped pid {pid}");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = std::fs::remove_file(&paths.pid);
    println!("killed pid {pid}");
    Ok(())
}
