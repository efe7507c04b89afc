//! Child processes of the control plane, and their teardown on every way out of the test binary.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};

use anyhow::{Context, Result, bail};

/// Process groups and folders still owned by a live control plane. `atexit` walks this list because a
/// control plane kept in a `static` is never dropped, and libtest has no global teardown.
static LIVE: Mutex<Vec<Owned>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();

pub(crate) enum Owned {
    Group(i32),
    Dir(PathBuf),
}

extern "C" fn kill_leftovers() {
    // Runs at exit; a poisoned lock must not stop the cleanup.
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|e| e.into_inner()));
    for o in &live {
        if let Owned::Group(pgid) = o {
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
    for o in live {
        if let Owned::Dir(d) = o {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

pub(crate) fn register(o: Owned) {
    ATEXIT.call_once(|| unsafe {
        libc::atexit(kill_leftovers);
    });
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(o);
}

fn unregister(pred: impl Fn(&Owned) -> bool) {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|o| !pred(o));
}

/// Registers a folder to be removed at exit if its owner is never dropped.
pub fn remove_at_exit(dir: &Path) {
    register(Owned::Dir(dir.to_path_buf()));
}

pub fn forget_dir(dir: &Path) {
    unregister(|o| matches!(o, Owned::Dir(d) if d == dir));
}

/// Free loopback ports, all held open until every one is chosen so that no two are the same.
pub fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

/// The running children, killed (whole process group) on drop.
#[derive(Default)]
pub struct Processes {
    children: Vec<(String, Child)>,
    /// How each child was started, for [`Processes::restart`].
    commands: Vec<(String, PathBuf, Vec<String>)>,
    log_dir: PathBuf,
}

impl Processes {
    pub fn new(log_dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&log_dir)?;
        Ok(Self {
            children: Vec::new(),
            commands: Vec::new(),
            log_dir,
        })
    }

    /// Starts `bin` with its output in `<log_dir>/<name>.log`.
    ///
    /// PR_SET_PDEATHSIG fires when the spawning *thread* exits, so the caller must be a thread that
    /// lives as long as the control plane.
    pub fn spawn(&mut self, name: &str, bin: &Path, args: &[String]) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(name))?;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Own group: a Ctrl-C aimed at the test runner's group doesn't half-kill the cluster, and
            // teardown can kill grandchildren too.
            .process_group(0);
        let parent = std::process::id() as i32;
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        register(Owned::Group(child.id() as i32));
        self.children.push((name.to_string(), child));
        self.commands
            .push((name.to_string(), bin.to_path_buf(), args.to_vec()));
        Ok(())
    }

    /// Kills `name` (SIGKILL, as a crash would) and starts it again with the same arguments; its
    /// log continues in the same file.
    pub fn restart(&mut self, name: &str) -> Result<()> {
        let i = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .with_context(|| format!("no process named {name}"))?;
        let (_, mut child) = self.children.remove(i);
        let (_, bin, args) = self.commands.remove(i);
        let pgid = child.id() as i32;
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
        unregister(|o| matches!(o, Owned::Group(g) if *g == pgid));
        self.spawn(name, &bin, &args)
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// Fails with the tail of its log if any child has exited: a dead component otherwise shows up
    /// only as a confusing timeout much later.
    pub fn check_alive(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(self.log_dir.join(format!("{name}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "{name} exited with {status}; last log lines:\n{}",
                    tail.join("\n")
                );
            }
        }
        Ok(())
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        // Reverse order: clients of the apiserver first, etcd last.
        for (_, child) in self.children.iter_mut().rev() {
            let pgid = child.id() as i32;
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            unregister(|o| matches!(o, Owned::Group(g) if *g == pgid));
        }
    }
}

const OWNER_FILE: &str = "owner.pid";

/// Marks `dir` as owned by this process, for [`sweep_stale_dirs`].
pub fn claim_dir(dir: &Path) -> Result<()> {
    std::fs::write(dir.join(OWNER_FILE), std::process::id().to_string())?;
    Ok(())
}

/// Removes the folders of control planes whose owner was SIGKILLed and so never cleaned up.
pub fn sweep_stale_dirs(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let owner = std::fs::read_to_string(entry.path().join(OWNER_FILE));
        // No owner file yet means another process is just creating it.
        let Some(pid) = owner.ok().and_then(|p| p.trim().parse::<i32>().ok()) else {
            continue;
        };
        let dead = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if dead {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
