//! The yardstick: Multigres' own local cluster (`multigres cluster init && multigres cluster
//! start`, its default three cells), on the same machine and root, as the same non-root user, with
//! the same two timings as the operator's run. Its ports are those `cluster init` writes in its
//! config (multigateway's PostgreSQL port 15432 in the first cell, postgres from 25432 up); the
//! user, password and database are the ones it configures (postgres / postgres / postgres).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::sandbox::{Bind, PATH, Root, Sandbox};
use super::sql::{self, Target};
use super::{Timings, kill_primary};
use crate::operator::spawn_owned;

const GATEWAY_PG_PORT: u16 = 15432;
const POSTGRES_PORTS: [u16; 3] = [25432, 25433, 25434];

fn sandbox(root: &Root, dir: &Path, script: &str) -> Sandbox {
    Sandbox {
        binds: vec![Bind {
            host: dir.to_path_buf(),
            target: "/baseline".into(),
            read_only: false,
        }],
        uid: root.uid,
        gid: root.gid,
        env: vec![
            ("PATH".into(), PATH.into()),
            ("HOME".into(), root.home.clone()),
            ("LANG".into(), "en_US.UTF-8".into()),
        ],
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        workdir: Some("/baseline".into()),
        ..Default::default()
    }
}

/// Runs the local cluster, measures, and stops it (its PID namespace dies with its first process).
pub async fn run(root: &Root, work: &Path) -> Result<Timings> {
    let dir = work.join("baseline");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::os::unix::fs::chown(&dir, Some(root.uid), Some(root.gid))?;
    let log = std::fs::File::create(work.join("logs/baseline.log"))?;

    let init = sandbox(root, &dir, "multigres cluster init --config-path /baseline");
    let mut cmd = init.command(root)?;
    cmd.stdout(log.try_clone()?).stderr(log.try_clone()?);
    if !cmd.status().context("multigres cluster init")?.success() {
        bail!(
            "multigres cluster init failed; see {}/logs/baseline.log",
            work.display()
        );
    }

    let start = sandbox(
        root,
        &dir,
        "multigres cluster start --config-path /baseline && exec sleep infinity",
    );
    let mut cmd = start.command(root)?;
    cmd.stdout(log.try_clone()?).stderr(log);
    let started = Instant::now();
    let pid = spawn_owned(cmd)?;
    let result = measure(root, pid, started).await;
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    result
}

async fn measure(root: &Root, pid: i32, started: Instant) -> Result<Timings> {
    let gateway = Target {
        host: "127.0.0.1".into(),
        port: GATEWAY_PG_PORT,
        user: "postgres".into(),
        password: "postgres".into(),
        database: "postgres".into(),
    };
    let (first, _) = sql::until_ok(
        root,
        &gateway,
        &sql::insert("baseline-bootstrap"),
        Duration::from_secs(600),
    )
    .await
    .context("baseline: first write through multigateway")?;
    let bootstrap = first - started;
    println!(
        "  baseline: first write {:.1}s after `cluster start`",
        bootstrap.as_secs_f64()
    );

    let mut primary = None;
    for port in POSTGRES_PORTS {
        let t = gateway.at("127.0.0.1", port);
        if sql::psql(root, &t, "SELECT pg_is_in_recovery()")
            .await
            .ok()
            .as_deref()
            == Some("f")
        {
            primary = Some(port);
        }
    }
    let port = primary.context("baseline: no postgres answers as primary")?;
    let marker = format!("port={port}");
    let failover = kill_primary(
        root,
        &gateway,
        "baseline-failover",
        |postmaster: &str| postmaster.contains(&marker),
        &[pid],
    )
    .await?;
    Ok(Timings {
        bootstrap,
        failover,
    })
}
