//! Memory and CPU of a process from /proc, and the controllers' own request counters.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Usage {
    /// VmRSS, MiB.
    pub rss_mib: f64,
    /// VmHWM (peak RSS), MiB.
    pub peak_rss_mib: f64,
    /// RssAnon: heap and stacks, MiB (what grows with the caches).
    pub rss_anon_mib: f64,
    /// RssFile: mapped pages of the binary and libraries, MiB.
    pub rss_file_mib: f64,
    /// utime + stime, seconds.
    pub cpu_seconds: f64,
}

pub fn usage(pid: i32) -> Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    Ok(Usage {
        rss_mib: kib("VmRSS:") / 1024.0,
        peak_rss_mib: kib("VmHWM:") / 1024.0,
        rss_anon_mib: kib("RssAnon:") / 1024.0,
        rss_file_mib: kib("RssFile:") / 1024.0,
        cpu_seconds: cpu_ticks(&stat)? as f64 / clock_ticks(),
    })
}

/// utime + stime (fields 14 and 15) of a /proc/<pid>/stat line.
fn cpu_ticks(stat: &str) -> Result<u64> {
    // The command name (field 2) may hold spaces; the fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')').context("malformed stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

fn clock_ticks() -> f64 {
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// Our children: pid, the name of the program (`comm`) and the `/proc/<pid>/stat` line.
fn children() -> Vec<(i32, String, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid: i32 = stat[close + 2..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == me {
            out.push((pid, stat[open + 1..close].to_string(), stat));
        }
    }
    out
}

fn cmdline(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .split('\0')
        .map(str::to_string)
        .collect()
}

/// The pid of our child whose command line holds `marker` (the process group leader that
/// `spawn_operator` started).
pub fn find_child(marker: &str) -> Option<i32> {
    children()
        .into_iter()
        .find(|(pid, _, _)| cmdline(*pid).iter().any(|a| a == marker))
        .map(|(pid, _, _)| pid)
}

/// CPU seconds so far of every process the benchmark started (control plane, controllers,
/// simulator), summed by program (etcds told apart by `--name`), and of the benchmark itself, which
/// runs the harness's PV provisioner and the convergence watches. Diffed over a span, it says where
/// the machine's cores went.
pub fn cpu_by_program() -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for (pid, comm, stat) in children() {
        let Ok(ticks) = cpu_ticks(&stat) else {
            continue;
        };
        let name = match comm.as_str() {
            "etcd" => cmdline(pid)
                .iter()
                .find_map(|a| a.strip_prefix("--name="))
                .map(|n| format!("etcd ({n})"))
                .unwrap_or(comm),
            _ => comm,
        };
        *out.entry(name).or_default() += ticks as f64 / clock_ticks();
    }
    if let Ok(me) = usage(std::process::id() as i32) {
        out.insert("multigres-bench (harness)".into(), me.cpu_seconds);
    }
    out
}

/// What each program spent between two [`cpu_by_program`] snapshots.
pub fn cpu_spent(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .collect()
}

/// `multigres_kube_requests_total` by verb from a controller's `/metrics`.
pub async fn kube_requests(addr: &str) -> Result<Vec<(String, u64)>> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(parse_requests(&body))
}

fn parse_requests(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains("kube_requests_total{"))
        .filter_map(|l| {
            let verb = l.split("verb=\"").nth(1)?.split('"').next()?;
            let value: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((verb.to_string(), value as u64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 2 3";
        assert_eq!(cpu_ticks(stat).unwrap(), 300);
    }

    #[test]
    fn cpu_by_program_counts_children_and_the_benchmark() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let seen = cpu_by_program();
        child.kill().unwrap();
        let _ = child.wait();
        assert!(seen.contains_key("sleep"), "{seen:?}");
        assert!(seen.contains_key("multigres-bench (harness)"));
    }

    #[test]
    fn cpu_spent_is_the_difference() {
        let before = BTreeMap::from([("a".to_string(), 1.0)]);
        let after = BTreeMap::from([("a".to_string(), 3.5), ("b".to_string(), 2.0)]);
        assert_eq!(
            cpu_spent(&before, &after),
            BTreeMap::from([("a".to_string(), 2.5), ("b".to_string(), 2.0)])
        );
    }

    #[test]
    fn own_usage_is_readable() {
        let u = usage(std::process::id() as i32).unwrap();
        assert!(u.rss_mib > 0.0 && u.peak_rss_mib >= u.rss_mib);
    }

    #[test]
    fn request_counters_by_verb() {
        let text = "# HELP x\nmultigres_kube_requests_total{verb=\"patch\"} 12\nmultigres_kube_requests_total{verb=\"get\"} 3\nother 1\n";
        assert_eq!(
            parse_requests(text),
            vec![("patch".to_string(), 12), ("get".to_string(), 3)]
        );
    }
}
