//! The data-path checks, with `psql` from the root: writes and reads through multigateway, the
//! primary found by asking each postgres, the primary's postmaster killed, and the time until a
//! write goes through again.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::sandbox::{Root, Sandbox};

/// Where and as whom psql connects.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl Target {
    pub fn at(&self, host: &str, port: u16) -> Target {
        Target {
            host: host.into(),
            port,
            ..self.clone()
        }
    }
}

/// Runs one statement; returns psql's unaligned, tuples-only output, or its error text.
pub async fn psql(root: &Root, t: &Target, sql: &str) -> Result<String> {
    psql_with(root, t, &[], &[sql]).await
}

/// Runs `commands` in one session over TLS that verifies the server's certificate and name
/// against `ca` (a path inside the root): what a client with `sslmode=verify-full` sees.
pub async fn psql_verified_tls(
    root: &Root,
    t: &Target,
    ca: &str,
    commands: &[&str],
) -> Result<String> {
    let env = [
        ("PGSSLMODE".to_string(), "verify-full".to_string()),
        ("PGSSLROOTCERT".to_string(), ca.to_string()),
    ];
    psql_with(root, t, &env, commands).await
}

async fn psql_with(
    root: &Root,
    t: &Target,
    extra_env: &[(String, String)],
    commands: &[&str],
) -> Result<String> {
    let sandbox = Sandbox {
        uid: root.uid,
        gid: root.gid,
        env: [
            ("PATH".into(), super::sandbox::PATH.into()),
            ("PGPASSWORD".into(), t.password.clone()),
            ("PGCONNECT_TIMEOUT".into(), "3".into()),
        ]
        .into_iter()
        .chain(extra_env.iter().cloned())
        .collect(),
        argv: [
            "psql",
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &t.host,
            "-p",
            &t.port.to_string(),
            "-U",
            &t.user,
            "-d",
            &t.database,
        ]
        .map(String::from)
        .into_iter()
        .chain(
            commands
                .iter()
                .flat_map(|c| ["-c".to_string(), c.to_string()]),
        )
        .collect(),
        ..Default::default()
    };
    let mut cmd = tokio::process::Command::from(sandbox.command(root)?);
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(15), cmd.output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("{}", stderr.trim().lines().last().unwrap_or("psql failed"));
    }
    Ok(stdout)
}

/// Retries `sql` until it succeeds or `deadline` passes; returns when it first succeeded, with
/// the output, or the last error.
pub async fn until_ok(
    root: &Root,
    t: &Target,
    sql: &str,
    deadline: Duration,
) -> Result<(Instant, String)> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < deadline {
        match psql(root, t, sql).await {
            Ok(out) => return Ok((Instant::now(), out)),
            Err(e) => {
                let e = e.to_string();
                if e != last {
                    println!("    ... {:>5.1}s: {e}", start.elapsed().as_secs_f64());
                    last = e;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("not within {deadline:?}: {last}")
}

/// The statement each probe writes: one row stamped with the probe's name.
pub fn insert(label: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS conformance (id bigserial PRIMARY KEY, label text NOT NULL, \
         at timestamptz NOT NULL DEFAULT now()); INSERT INTO conformance (label) VALUES ('{label}') \
         RETURNING id"
    )
}

/// Every process below `pid` whose name is `postgres` and whose parent is not: the postmasters.
pub fn postmasters_under(pid: i32) -> Vec<(i32, String)> {
    let procs = process_table();
    let mut below = vec![pid];
    let mut i = 0;
    while i < below.len() {
        let parent = below[i];
        below.extend(procs.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    let comm = |pid: i32| procs.iter().find(|p| p.0 == pid).map(|p| p.2.clone());
    procs
        .iter()
        .filter(|(p, ppid, c)| {
            below.contains(p) && c == "postgres" && comm(*ppid).as_deref() != Some("postgres")
        })
        .map(|(p, _, _)| {
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            (*p, String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect()
}

/// (pid, ppid, comm) of every process.
fn process_table() -> Vec<(i32, i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (open, close) = (stat.find('(')?, stat.rfind(')')?);
            let comm = stat[open + 1..close].to_string();
            let ppid = stat[close + 2..].split(' ').nth(1)?.parse().ok()?;
            Some((pid, ppid, comm))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_in_the_table() {
        let me = std::process::id() as i32;
        assert!(process_table().iter().any(|p| p.0 == me));
        assert!(postmasters_under(me).is_empty());
    }
}
