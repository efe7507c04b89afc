//! The kubelet's part, for pods the API server holds: each container's command, args and env
//! (resolved as the kubelet does, then the rewrite table) run in a [`Sandbox`]; init containers in
//! order, each to success, a native sidecar (init container with `restartPolicy: Always`) started
//! and kept running; then the containers. A container that exits is restarted after a back-off
//! (1 s doubling to 8 s; the kubelet's starts at 10 s), as `restartPolicy: Always` asks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Container;
use kube::ResourceExt;

use super::env::{PodContext, container_env, expand};
use super::rewrite::{self, Change};
use super::sandbox::{self, Root, Sandbox};
use super::volumes;
use crate::operator::spawn_owned;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Init,
    Sidecar,
    Main,
}

/// One container, ready to run.
#[derive(Clone, Debug)]
pub struct ContainerPlan {
    pub name: String,
    pub kind: Kind,
    pub sandbox: Sandbox,
}

/// One pod, ready to run.
pub struct PodPlan {
    pub name: String,
    pub ip: Ipv4Addr,
    pub containers: Vec<ContainerPlan>,
}

/// Resolves every container of the pod; the changes of the rewrite table go to `changes`.
pub fn plan(
    ctx: &PodContext,
    root: &Root,
    work: &Path,
    hosts: PathBuf,
    pgbackrest_port: u16,
    changes: &mut Vec<Change>,
) -> Result<PodPlan> {
    let pod = ctx.pod;
    let spec = pod.spec.as_ref().context("pod without spec")?;
    let sc = spec.security_context.as_ref();
    let uid = sc.and_then(|s| s.run_as_user).map(|u| u as u32);
    let gid = sc
        .and_then(|s| s.fs_group.or(s.run_as_group))
        .map(|g| g as u32);
    let volumes =
        volumes::materialize(ctx, work, uid.unwrap_or(root.uid), gid.unwrap_or(root.gid))?;
    let init = spec.init_containers.iter().flatten().map(|c| {
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        (c, if sidecar { Kind::Sidecar } else { Kind::Init })
    });
    let main = spec.containers.iter().map(|c| (c, Kind::Main));
    let mut containers = Vec::new();
    for (c, kind) in init.chain(main) {
        let csc = c.security_context.as_ref();
        let uid = csc
            .and_then(|s| s.run_as_user)
            .map(|u| u as u32)
            .or(uid)
            .unwrap_or(root.uid);
        let gid = csc
            .and_then(|s| s.run_as_group)
            .map(|g| g as u32)
            .or(gid)
            .unwrap_or(root.gid);
        if uid == 0 {
            bail!(
                "container {} of {} runs as root, which Multigres refuses",
                c.name,
                pod.name_any()
            );
        }
        let (argv, env) = argv_and_env(c, ctx, pgbackrest_port, changes)?;
        let mut env_all = vec![
            ("PATH".to_string(), sandbox::PATH.to_string()),
            (
                "HOSTNAME".to_string(),
                spec.hostname.clone().unwrap_or_else(|| pod.name_any()),
            ),
            ("HOME".to_string(), root.home.clone()),
        ];
        env_all.retain(|(k, _)| !env.iter().any(|(e, _)| e == k));
        env_all.extend(env);
        containers.push(ContainerPlan {
            name: c.name.clone(),
            kind,
            sandbox: Sandbox {
                binds: volumes::mounts(&c.volume_mounts, &volumes)?,
                hosts: Some(hosts.clone()),
                uid,
                gid,
                env: env_all,
                argv,
                workdir: c.working_dir.clone(),
                hostname: Some(spec.hostname.clone().unwrap_or_else(|| pod.name_any())),
                read_only_root: c
                    .security_context
                    .as_ref()
                    .and_then(|s| s.read_only_root_filesystem)
                    .unwrap_or(false),
            },
        });
    }
    Ok(PodPlan {
        name: pod.name_any(),
        ip: ctx.ip,
        containers,
    })
}

/// A container's environment, in order.
type Env = Vec<(String, String)>;

/// The command line (command, then args, `$(VAR)`-expanded, then rewritten) and the environment.
fn argv_and_env(
    c: &Container,
    ctx: &PodContext,
    pgbackrest_port: u16,
    changes: &mut Vec<Change>,
) -> Result<(Vec<String>, Env)> {
    let mut env = container_env(c, ctx)
        .with_context(|| format!("env of container {} of {}", c.name, ctx.pod.name_any()))?;
    let env_changes = rewrite::apply_env(&mut env, ctx.ip);
    let command: Vec<String> = c.command.clone().unwrap_or_default();
    if command.is_empty() {
        bail!(
            "container {} of {} has no command; the harness does not know its image's entrypoint",
            c.name,
            ctx.pod.name_any()
        );
    }
    let command: Vec<String> = command.iter().map(|a| expand(a, &env)).collect();
    let mut args: Vec<String> = c.args.iter().flatten().map(|a| expand(a, &env)).collect();
    let binary = command[0]
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    // `pgctld server ...` keeps its subcommand in command; the rules look at the whole line.
    let mut line: Vec<String> = command[1..].to_vec();
    line.append(&mut args);
    let line_changes = rewrite::apply(&binary, &mut line, ctx.ip, pgbackrest_port);
    for (change, why) in env_changes.into_iter().chain(line_changes) {
        changes.push(Change {
            pod: ctx.pod.name_any(),
            container: c.name.clone(),
            change,
            why,
        });
    }
    let mut argv = vec![command[0].clone()];
    argv.extend(line);
    Ok((argv, env))
}

/// Host pids of the running containers, by `pod/container`.
pub type Pids = Arc<Mutex<BTreeMap<String, i32>>>;

/// Set once the run is over: no container is restarted after that.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Pods stopped for good while others run on (an old cluster making way for a restored one).
static STOPPED_PODS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Whether the container `pod/container` must not start (again).
fn stopped(key: &str) -> bool {
    let pod = key.split('/').next().unwrap_or(key);
    STOPPING.load(Ordering::SeqCst)
        || STOPPED_PODS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(pod)
}

/// Stops the containers of `pods` for good (each sandbox killed, no restart); the others run on.
pub fn stop_pods(pids: &Pids, pods: &[String]) {
    let mut pids = pids.lock().unwrap_or_else(|e| e.into_inner());
    STOPPED_PODS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(pods.iter().cloned());
    pids.retain(|key, pid| {
        let pod = key.split('/').next().unwrap_or(key);
        if pods.iter().any(|p| p == pod) {
            unsafe { libc::kill(-*pid, libc::SIGKILL) };
            false
        } else {
            true
        }
    });
}

/// Stops every container: no more restarts, then each sandbox killed (its PID namespace with it).
pub fn stop_all(pids: &Pids) {
    let pids = pids.lock().unwrap_or_else(|e| e.into_inner());
    STOPPING.store(true, Ordering::SeqCst);
    for pid in pids.values() {
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

/// Runs the pod until the harness exits: init containers, then sidecars and containers, each
/// restarted when it exits.
pub async fn run(plan: PodPlan, root: Root, logs: PathBuf, pids: Pids) -> Result<()> {
    std::fs::create_dir_all(&logs)?;
    for c in plan.containers {
        let key = format!("{}/{}", plan.name, c.name);
        let log = logs.join(format!("{}_{}.log", plan.name, c.name));
        match c.kind {
            Kind::Init => {
                let mut backoff = Duration::from_secs(1);
                loop {
                    let Ok(code) = run_once(&c, &root, &log, &key, &pids).await else {
                        return Ok(());
                    };
                    if code == 0 || stopped(&key) {
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(8));
                }
            }
            Kind::Sidecar | Kind::Main => {
                let (root, pids) = (root.clone(), pids.clone());
                tokio::spawn(async move {
                    let mut backoff = Duration::from_secs(1);
                    loop {
                        let ran = run_once(&c, &root, &log, &key, &pids).await;
                        if ran.is_err() || stopped(&key) {
                            return;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(8));
                    }
                });
            }
        }
    }
    Ok(())
}

/// Starts the container once and waits for it to exit; returns its exit code.
async fn run_once(
    c: &ContainerPlan,
    root: &Root,
    log: &Path,
    key: &str,
    pids: &Pids,
) -> Result<i32> {
    use std::io::Write;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    writeln!(
        out,
        "=== harness: starting {key}: {}",
        c.sandbox.argv.join(" ")
    )?;
    let mut cmd = c.sandbox.command(root)?;
    cmd.stdout(out.try_clone()?).stderr(out.try_clone()?);
    let pid = {
        // Under the lock [`stop_all`] and [`stop_pods`] take: a container is either started
        // before the stop (and killed by it) or not at all.
        let mut pids = pids.lock().unwrap_or_else(|e| e.into_inner());
        if stopped(key) {
            bail!("stopping");
        }
        let pid = spawn_owned(cmd)?;
        pids.insert(key.to_string(), pid);
        pid
    };
    let code = tokio::task::spawn_blocking(move || {
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        }
    })
    .await?;
    if stopped(key) {
        writeln!(out, "=== harness: {key} stopped")?;
    } else {
        writeln!(out, "=== harness: {key} exited with {code}")?;
    }
    Ok(code)
}

/// One line per container that exited since it started: how often, and the last error it logged
/// (what a user would see in `kubectl logs --previous`).
pub fn exits_summary(logs: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(logs) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let exits: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("=== harness:") && l.contains(" exited with "))
            .collect();
        let failed = exits
            .iter()
            .filter(|l| !l.ends_with(" exited with 0"))
            .count();
        if failed == 0 {
            continue;
        }
        let last_error = text
            .lines()
            .rev()
            .find(|l| {
                l.starts_with("Error") || l.contains("\"level\":\"ERROR\"") || l.contains("FATAL")
            })
            .unwrap_or("(no error line)");
        let name = f.file_stem().unwrap_or_default().to_string_lossy();
        out.push(format!(
            "{name}: exited {failed} times; last error: {last_error}"
        ));
    }
    out
}
