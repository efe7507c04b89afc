//! One process as a container would run it: in the PostgreSQL root filesystem, with the pod's host
//! name (a UTS namespace), in a mount namespace of its own (its volumes bound at their mount paths, its own /etc/hosts, /tmp, /run, /dev/shm),
//! in a PID namespace of its own, as a non-root user.
//!
//! The PID namespace is what makes clean-up certain: the kernel's parent-death signal is cleared
//! when a process changes its user (as `chroot --userspec` does), and pg_ctl daemonizes postgres
//! out of any process group; but when a PID namespace's first process dies, every process in it
//! dies. That first process is a root `sh` that keeps the parent-death signal `unshare
//! --kill-child` gives it, and `unshare` itself gets one from the harness's spawner thread.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Where the Multigres binaries folder is bound inside the root (first on PATH, as in the images).
pub const BIN_IN_ROOT: &str = "/opt/multigres/bin";
/// Where the control plane's etcd is bound, for Multigres' own local cluster.
pub const ETCD_IN_ROOT: &str = "/opt/etcd/bin";
/// PATH inside the root: the images' PATH, with PostgreSQL 17's bin folder as in the pgctld image.
pub const PATH: &str = "/opt/multigres/bin:/opt/etcd/bin:/usr/lib/postgresql/17/bin:\
/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The root filesystem and the non-root user processes run as.
#[derive(Clone, Debug)]
pub struct Root {
    pub dir: PathBuf,
    pub multigres_bin: PathBuf,
    pub etcd_bin: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

impl Root {
    /// Checks the root has PostgreSQL 17, pgBackRest and the non-root `user` that
    /// scripts/conformance-root.sh makes.
    pub fn open(dir: &Path, multigres_bin: &Path, etcd_bin: &Path, user: &str) -> Result<Root> {
        for needed in [
            "usr/lib/postgresql/17/bin/postgres",
            "usr/bin/pgbackrest",
            "usr/bin/psql",
        ] {
            if !dir.join(needed).exists() {
                bail!(
                    "{} has no /{needed}: make it with scripts/conformance-root.sh",
                    dir.display()
                );
            }
        }
        for b in [
            "multigateway",
            "multiorch",
            "multipooler",
            "multiadmin",
            "pgctld",
            "multigres",
        ] {
            if !multigres_bin.join(b).is_file() {
                bail!(
                    "{} has no {b} (docs/conformance.md)",
                    multigres_bin.display()
                );
            }
        }
        let passwd = std::fs::read_to_string(dir.join("etc/passwd"))?;
        let entry = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&user) && f.len() >= 7)
            .with_context(|| format!("no user {user} in {}/etc/passwd", dir.display()))?;
        Ok(Root {
            dir: dir.to_path_buf(),
            multigres_bin: multigres_bin.to_path_buf(),
            etcd_bin: etcd_bin.to_path_buf(),
            uid: entry[2].parse()?,
            gid: entry[3].parse()?,
            home: entry[5].to_string(),
        })
    }
}

/// A host folder or file bound at `target` inside the root.
#[derive(Clone, Debug)]
pub struct Bind {
    pub host: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// Everything about one process in the root.
#[derive(Clone, Debug, Default)]
pub struct Sandbox {
    pub binds: Vec<Bind>,
    /// Bound over /etc/hosts; the root's own when None.
    pub hosts: Option<PathBuf>,
    pub uid: u32,
    pub gid: u32,
    pub env: Vec<(String, String)>,
    pub argv: Vec<String>,
    pub workdir: Option<String>,
    /// The pod's host name (a UTS namespace of its own); the machine's when None.
    pub hostname: Option<String>,
    /// The container's `readOnlyRootFilesystem`: the root is mounted read-only and only its
    /// volumes (and /dev, /dev/shm, /proc, as a container runtime gives them) are writable; no
    /// /tmp or /run of the harness's own.
    pub read_only_root: bool,
}

impl Sandbox {
    /// The command that runs this sandbox: `unshare` (new mount and PID namespaces) of a root
    /// `sh` that mounts, then runs the process under `chroot --userspec` and waits for it.
    pub fn command(&self, root: &Root) -> Result<Command> {
        self.make_mount_points(root)?;
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--uts",
            "--mount",
            "--propagation=private",
            "--pid",
            "--fork",
            "--kill-child=SIGKILL",
            "--",
            "/bin/sh",
            "-c",
        ])
        .arg(self.script(root))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null());
        Ok(cmd)
    }

    fn make_mount_points(&self, root: &Root) -> Result<()> {
        let in_root = |t: &str| root.dir.join(t.trim_start_matches('/'));
        for dir in [BIN_IN_ROOT, ETCD_IN_ROOT] {
            std::fs::create_dir_all(in_root(dir))?;
        }
        for b in &self.binds {
            let target = in_root(&b.target);
            if b.host.is_dir() {
                std::fs::create_dir_all(&target)?;
            } else if !target.exists() {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&target, "")?;
            }
        }
        Ok(())
    }

    fn script(&self, root: &Root) -> String {
        let r = quote(&root.dir.to_string_lossy());
        let (u, g) = (self.uid, self.gid);
        let mut s = String::from("set -e\n");
        let _ = writeln!(s, "R={r}");
        if let Some(h) = &self.hostname {
            let _ = writeln!(s, "hostname {}", quote(h));
        }
        if self.read_only_root {
            // First, so that the mounts below stay writable on top of it.
            s.push_str("mount --bind \"$R\" \"$R\"\nmount -o remount,bind,ro \"$R\"\n");
        }
        s.push_str(
            "mount -t proc proc \"$R/proc\"\n\
             mount --rbind /dev \"$R/dev\"\n\
             mount -t tmpfs -o mode=1777,size=1g shm \"$R/dev/shm\"\n",
        );
        if !self.read_only_root {
            s.push_str(
                "mount -t tmpfs -o mode=1777 tmp \"$R/tmp\"\n\
                 mount -t tmpfs -o mode=0755 run \"$R/run\"\n",
            );
            let _ = writeln!(
                s,
                "mkdir -p \"$R/run/postgresql\" && chown {u}:{g} \"$R/run/postgresql\""
            );
        }
        let mut binds = vec![
            bind_line(&root.multigres_bin, BIN_IN_ROOT, true),
            bind_line(&root.etcd_bin, ETCD_IN_ROOT, true),
        ];
        if let Some(hosts) = &self.hosts {
            binds.push(bind_line(hosts, "/etc/hosts", true));
        }
        for b in &self.binds {
            binds.push(bind_line(&b.host, &b.target, b.read_only));
        }
        for b in binds {
            s.push_str(&b);
        }
        let mut run = format!("chroot --userspec={u}:{g} \"$R\" /usr/bin/env -i");
        if let Some(dir) = &self.workdir {
            let _ = write!(run, " --chdir={}", quote(dir));
        }
        for (k, v) in &self.env {
            let _ = write!(run, " {}", quote(&format!("{k}={v}")));
        }
        for a in &self.argv {
            let _ = write!(run, " {}", quote(a));
        }
        // Not `exec`: this root shell stays the namespace's first process (see the module doc).
        let _ = writeln!(s, "{run} &\nwait $!");
        s
    }
}

fn bind_line(host: &Path, target: &str, read_only: bool) -> String {
    let (h, t) = (
        quote(&host.to_string_lossy()),
        format!("\"$R\"{}", quote(target)),
    );
    let mut line = format!("mount --bind {h} {t}\n");
    if read_only {
        let _ = writeln!(line, "mount -o remount,bind,ro {t}");
    }
    line
}

/// Single-quotes a word for sh.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }
}
