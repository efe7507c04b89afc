//! The results: JSON for machines, a markdown table for people, with the machine and versions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::audit::{self, Requests};
use crate::converge::{self, Reached};
use crate::procs::Usage;
use crate::shape::Shape;

/// Times of one watched condition.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Times {
    pub expected: usize,
    pub reached: usize,
    pub complete: bool,
    /// Seconds until the last one (when complete).
    pub total_seconds: Option<f64>,
    /// Per group (cluster): seconds until its last object.
    pub per_cluster: BTreeMap<String, f64>,
    pub p50_per_cluster: Option<f64>,
    pub p99_per_cluster: Option<f64>,
    /// Seconds of each object, sorted (to plot how many were done by when).
    pub sorted_seconds: Vec<f64>,
}

impl From<Reached> for Times {
    fn from(r: Reached) -> Self {
        let per_cluster = r.by_group();
        let values: Vec<f64> = per_cluster.values().cloned().collect();
        let mut sorted: Vec<f64> = r.at.values().cloned().collect();
        sorted.sort_by(|a, b| a.total_cmp(b));
        Times {
            expected: r.expected,
            reached: r.at.len(),
            complete: r.complete,
            total_seconds: r.total(),
            p50_per_cluster: converge::percentile(&values, 50.0),
            p99_per_cluster: converge::percentile(&values, 99.0),
            per_cluster,
            sorted_seconds: sorted,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Idle {
    pub seconds: f64,
    pub requests: BTreeMap<String, Requests>,
    pub metrics_requests: BTreeMap<String, BTreeMap<String, u64>>,
    pub usage: BTreeMap<String, Usage>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Edit {
    pub shards: Times,
    pub pods: Times,
    pub requests: BTreeMap<String, Requests>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OperatorRun {
    pub tag: String,
    pub namespace: String,
    pub shard_replicas: u32,
    pub partition: bool,
    pub expected_clusters: usize,
    pub expected_shards: usize,
    /// Seconds the benchmark took to apply the templates and clusters.
    pub apply_seconds: f64,
    /// MultigresCluster Available, per cluster.
    pub clusters: Times,
    /// Shard Available, grouped by cluster (the fallback when clusters do not get there).
    pub shards: Times,
    /// From the audit log, apply to converged, per controller.
    pub requests: BTreeMap<String, Requests>,
    /// The controllers' own `multigres_kube_requests_total` over the same span, per process.
    pub metrics_requests: BTreeMap<String, BTreeMap<String, u64>>,
    pub usage_before: BTreeMap<String, Usage>,
    pub usage_converged: BTreeMap<String, Usage>,
    /// CPU seconds by program (control plane, controllers, benchmark), apply to converged.
    pub cpu_by_program: BTreeMap<String, f64>,
    pub idle: Option<Idle>,
    pub edit: Option<Edit>,
}

impl OperatorRun {
    /// Seconds to converged: every cluster Available, or (fallback) every Shard Available.
    pub fn converged_seconds(&self) -> Option<f64> {
        self.clusters.total_seconds.or(self.shards.total_seconds)
    }

    pub fn used_fallback(&self) -> bool {
        self.clusters.total_seconds.is_none()
    }

    pub fn summary(&self) -> String {
        format!(
            "converged {} ({}), {} controller writes",
            self.converged_seconds()
                .map(|s| format!("in {s:.1}s"))
                .unwrap_or_else(|| "NOT within the timeout".into()),
            if self.used_fallback() {
                "every Shard Available; clusters not Available"
            } else {
                "every cluster Available"
            },
            self.requests.values().map(|r| r.writes).sum::<u64>()
        )
    }

    /// CPU seconds spent between the snapshot before apply and `after`.
    fn cpu(&self, after: &BTreeMap<String, Usage>, name: &str) -> f64 {
        let b = self
            .usage_before
            .get(name)
            .map(|u| u.cpu_seconds)
            .unwrap_or(0.0);
        after.get(name).map(|u| u.cpu_seconds - b).unwrap_or(0.0)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FloorRun {
    pub namespace: String,
    pub objects: usize,
    pub objects_by_kind: BTreeMap<String, usize>,
    pub concurrency: usize,
    pub write_seconds: f64,
    pub total_seconds: Option<f64>,
    pub per_cluster: BTreeMap<String, f64>,
    pub pods: Times,
    pub claims: Times,
    /// CPU seconds by program, from the first write to converged.
    pub cpu_by_program: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub memory_mib: u64,
    pub cpu_model: String,
    pub kernel: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub profile: String,
    pub command: String,
    pub shape: Shape,
    pub total_shards: u32,
    pub total_pods: u32,
    pub machine: Machine,
    pub versions: BTreeMap<String, String>,
    pub seed: Option<OperatorRun>,
    pub seed_floor: Option<FloorRun>,
    pub main: Option<OperatorRun>,
    pub main_floor: Option<FloorRun>,
    pub scale_out: Vec<OperatorRun>,
    /// Steps that failed; the rest of the report stands.
    pub errors: Vec<String>,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_mib: meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024,
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn versions(target: &Path) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let root = multigres_e2e::charts::repo_root();
    if let Ok(text) = std::fs::read_to_string(root.join("e2e/versions.env")) {
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some((k, val)) = line.split_once('=') {
                v.insert(k.to_lowercase(), val.to_string());
            }
        }
    }
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .current_dir(&root)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    v.insert("rustc".into(), run("rustc", &["--version"]));
    v.insert(
        "git_commit".into(),
        run("git", &["rev-parse", "--short", "HEAD"]),
    );
    v.insert("operator".into(), env!("CARGO_PKG_VERSION").to_string());
    v.insert(
        "controllers_build".into(),
        format!("release ({})", target.display()),
    );
    v
}

/// Metrics counters after minus before, per process and verb.
pub fn diff_metrics(
    before: &BTreeMap<String, BTreeMap<String, u64>>,
    after: &BTreeMap<String, BTreeMap<String, u64>>,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    after
        .iter()
        .map(|(p, verbs)| {
            let b = before.get(p);
            let d = verbs
                .iter()
                .map(|(v, n)| {
                    let was = b.and_then(|b| b.get(v)).copied().unwrap_or(0);
                    (v.clone(), n.saturating_sub(was))
                })
                .collect();
            (p.clone(), d)
        })
        .collect()
}

/// Reads and writes of a process's own counters.
fn split(verbs: &BTreeMap<String, u64>) -> (u64, u64) {
    let w: u64 = verbs
        .iter()
        .filter(|(v, _)| audit::is_write(v))
        .map(|(_, n)| n)
        .sum();
    let all: u64 = verbs.values().sum();
    (all - w, w)
}

/// The controller (audit user) of a process name: `shard-controller-1` -> `shard-controller`.
fn controller_of(process: &str) -> String {
    let base = process.trim_end_matches(|c: char| c.is_ascii_digit());
    base.trim_end_matches('-').to_string()
}

fn secs(s: Option<f64>) -> String {
    s.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "—".into())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "—".into(),
    }
}

impl Report {
    pub fn new(profile: &str, shape: &Shape, target: &Path) -> Report {
        Report {
            profile: profile.to_string(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            shape: shape.clone(),
            total_shards: shape.total_shards(),
            total_pods: shape.total_pods(),
            machine: machine(),
            versions: versions(target),
            seed: None,
            seed_floor: None,
            main: None,
            main_floor: None,
            scale_out: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join(format!("{}.json", self.profile)),
            serde_json::to_string_pretty(self)? + "\n",
        )?;
        std::fs::write(dir.join(format!("{}.md", self.profile)), self.markdown())?;
        Ok(())
    }

    /// Where the machine's cores went while `main` converged, against its floor: a profile by
    /// program of the whole machine, not only of the controllers.
    fn cpu_table(&self, m: &mut String, r: &OperatorRun) {
        let floor = self.main_floor.as_ref();
        let _ = writeln!(
            m,
            "## CPU by program, apply to converged (`main` and its floor)\n"
        );
        let _ = writeln!(
            m,
            "| program | operator run, CPU s | share | floor, CPU s |"
        );
        let _ = writeln!(m, "| --- | --- | --- | --- |");
        let total: f64 = r.cpu_by_program.values().sum();
        let mut rows: Vec<(&String, &f64)> = r.cpu_by_program.iter().collect();
        rows.sort_by(|a, b| b.1.total_cmp(a.1));
        for (program, cpu) in rows {
            let in_floor = floor
                .and_then(|f| f.cpu_by_program.get(program))
                .map(|c| format!("{c:.1}"))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                m,
                "| {program} | {cpu:.1} | {:.0} % | {in_floor} |",
                100.0 * cpu / total.max(f64::EPSILON)
            );
        }
        let cores = self.machine.nproc as f64;
        let capacity = |secs: Option<f64>| {
            secs.map(|s| format!(" of {:.0} ({cores:.0} cores x {s:.1} s)", cores * s))
                .unwrap_or_default()
        };
        let floor_total: Option<f64> = floor.map(|f| f.cpu_by_program.values().sum());
        let _ = writeln!(
            m,
            "| **all** | **{total:.1}**{} | | {} |\n",
            capacity(r.converged_seconds()),
            floor_total
                .map(|t| format!(
                    "**{t:.1}**{}",
                    capacity(floor.and_then(|f| f.total_seconds))
                ))
                .unwrap_or_else(|| "—".into())
        );
    }

    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let s = &self.shape;
        let _ = writeln!(m, "# Benchmark `{}`\n", self.profile);
        let _ = writeln!(m, "Command: `{}`\n", self.command);
        let _ = writeln!(
            m,
            "Machine: {} CPUs ({}), {} MiB memory, Linux {}. Versions: {}.\n",
            self.machine.nproc,
            self.machine.cpu_model,
            self.machine.memory_mib,
            self.machine.kernel,
            self.versions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            m,
            "Shape: {} clusters x {} cell(s) x {} database(s) x {} tablegroups x {} shards x {} pool pods = **{} Shards, {} pods** (with per cluster {} multigateway, {} multiorch, 1 multiadmin, {} etcd member).\n",
            s.clusters,
            s.cells,
            s.databases,
            s.tablegroups,
            s.shards,
            s.pool_replicas,
            self.total_shards,
            self.total_pods,
            s.cells,
            s.cells,
            s.topo_replicas
        );

        let _ = writeln!(
            m,
            "## Convergence (apply to Available), against the floor\n"
        );
        let _ = writeln!(
            m,
            "| run | shard-controller replicas | converged when | p50 per cluster | p99 per cluster | total | floor total | ratio to floor |"
        );
        let _ = writeln!(m, "| --- | --- | --- | --- | --- | --- | --- | --- |");
        let mut row = |r: &OperatorRun, floor: Option<&FloorRun>| {
            let t = if r.used_fallback() {
                &r.shards
            } else {
                &r.clusters
            };
            let floor_total = floor.and_then(|f| f.total_seconds);
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.tag,
                r.shard_replicas,
                if r.used_fallback() {
                    format!(
                        "every Shard Available ({}/{}); clusters Available {}/{} (fallback)",
                        r.shards.reached,
                        r.shards.expected,
                        r.clusters.reached,
                        r.clusters.expected
                    )
                } else {
                    format!("every cluster Available ({})", r.clusters.expected)
                },
                secs(t.p50_per_cluster),
                secs(t.p99_per_cluster),
                secs(r.converged_seconds()),
                secs(floor_total),
                ratio(r.converged_seconds(), floor_total),
            );
        };
        if let Some(r) = &self.seed {
            row(r, self.seed_floor.as_ref());
        }
        if let Some(r) = &self.main {
            row(r, self.main_floor.as_ref());
        }
        for r in &self.scale_out {
            row(r, self.main_floor.as_ref());
        }
        let _ = writeln!(m);
        for (name, f) in [("seed", &self.seed_floor), ("main", &self.main_floor)] {
            if let Some(f) = f {
                let _ = writeln!(
                    m,
                    "Floor of `{name}`: {} objects ({}) written by the benchmark itself at {} in flight in {:.1} s; every pod Ready ({}/{}) and claim Bound ({}/{}) after {}.\n",
                    f.objects,
                    f.objects_by_kind
                        .iter()
                        .map(|(k, n)| format!("{n} {k}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    f.concurrency,
                    f.write_seconds,
                    f.pods.reached,
                    f.pods.expected,
                    f.claims.reached,
                    f.claims.expected,
                    secs(f.total_seconds)
                );
            }
        }

        if let Some(r) = &self.main {
            let clusters = r.expected_clusters.max(1) as f64;
            let _ = writeln!(
                m,
                "## API requests per controller (`main`, apply to converged)\n"
            );
            let _ = writeln!(
                m,
                "Audit log (`user.username`, one event per request) and, as a cross-check, the controllers' own `multigres_kube_requests_total`. Lease writes (leader election, partition membership) are counted apart.\n"
            );
            let _ = writeln!(
                m,
                "| controller | reads | writes | lease writes | reads / cluster | writes / cluster | own counter reads / writes | idle writes ({} s) | idle lease writes | top written resources |",
                r.idle.as_ref().map(|i| i.seconds).unwrap_or(0.0)
            );
            let _ = writeln!(
                m,
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
            );
            let names: std::collections::BTreeSet<String> = r
                .usage_converged
                .keys()
                .map(|p| controller_of(p))
                .chain(r.requests.keys().cloned())
                .collect();
            for c in names {
                let a = r.requests.get(&c).cloned().unwrap_or_default();
                let own = r
                    .metrics_requests
                    .iter()
                    .filter(|(p, _)| controller_of(p) == c)
                    .map(|(_, v)| split(v))
                    .fold((0, 0), |x, y| (x.0 + y.0, x.1 + y.1));
                let idle = r
                    .idle
                    .as_ref()
                    .and_then(|i| i.requests.get(&c).cloned())
                    .unwrap_or_default();
                let mut top: Vec<(&String, &u64)> = a.writes_by_resource.iter().collect();
                top.sort_by(|x, y| y.1.cmp(x.1));
                let top: Vec<String> = top
                    .iter()
                    .take(4)
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                let _ = writeln!(
                    m,
                    "| {c} | {} | {} | {} | {:.1} | {:.1} | {} / {} | {} | {} | {} |",
                    a.reads,
                    a.writes,
                    a.lease_writes,
                    a.reads as f64 / clusters,
                    a.writes as f64 / clusters,
                    own.0,
                    own.1,
                    idle.writes,
                    idle.lease_writes,
                    top.join(", ")
                );
            }
            let _ = writeln!(m);

            let _ = writeln!(m, "## Memory and CPU per controller process (`main`)\n");
            let _ = writeln!(
                m,
                "| process | RSS converged | of which anon / file | peak RSS (VmHWM) | RSS after idle | CPU s apply to converged | CPU s idle |"
            );
            let _ = writeln!(m, "| --- | --- | --- | --- | --- | --- | --- |");
            let mut sum = (0.0, 0.0, 0.0);
            for (p, u) in &r.usage_converged {
                let idle_u = r.idle.as_ref().and_then(|i| i.usage.get(p)).copied();
                let idle_cpu = idle_u.map(|i| i.cpu_seconds - u.cpu_seconds);
                sum.0 += u.rss_mib;
                sum.1 += idle_u.map(|i| i.peak_rss_mib).unwrap_or(u.peak_rss_mib);
                sum.2 += idle_u.map(|i| i.rss_mib).unwrap_or(u.rss_mib);
                let _ = writeln!(
                    m,
                    "| {p} | {:.1} MiB | {:.1} / {:.1} MiB | {:.1} MiB | {} | {:.2} | {} |",
                    u.rss_mib,
                    u.rss_anon_mib,
                    u.rss_file_mib,
                    idle_u.map(|i| i.peak_rss_mib).unwrap_or(u.peak_rss_mib),
                    idle_u
                        .map(|i| format!("{:.1} MiB", i.rss_mib))
                        .unwrap_or_else(|| "—".into()),
                    r.cpu(&r.usage_converged, p),
                    idle_cpu
                        .map(|c| format!("{c:.2}"))
                        .unwrap_or_else(|| "—".into())
                );
            }
            let _ = writeln!(
                m,
                "| **all** | **{:.1} MiB** | | **{:.1} MiB** (sum of peaks) | **{:.1} MiB** | | |\n",
                sum.0, sum.1, sum.2
            );
            self.cpu_table(&mut m, r);

            if let Some(e) = &r.edit {
                let _ = writeln!(m, "## DeploymentTemplate edit (`main`)\n");
                let _ = writeln!(
                    m,
                    "The shard pools' postgres CPU request changed in the one template all clusters use.\n"
                );
                let _ = writeln!(
                    m,
                    "| reached | count | p50 per cluster | p99 per cluster | total |"
                );
                let _ = writeln!(m, "| --- | --- | --- | --- | --- |");
                for (what, t) in [
                    ("every Shard spec", &e.shards),
                    ("every pool pod recreated with it and Ready", &e.pods),
                ] {
                    let _ = writeln!(
                        m,
                        "| {what} | {}/{} | {} | {} | {} |",
                        t.reached,
                        t.expected,
                        secs(t.p50_per_cluster),
                        secs(t.p99_per_cluster),
                        secs(t.total_seconds)
                    );
                }
                let writes: Vec<String> = e
                    .requests
                    .iter()
                    .map(|(c, r)| format!("{c} {}", r.writes))
                    .collect();
                let _ = writeln!(m, "\nWrites during the edit: {}.\n", writes.join(", "));
            }
        }

        if !self.scale_out.is_empty() || self.main.is_some() {
            let _ = writeln!(m, "## Shard-controller scale-out (same load)\n");
            let _ = writeln!(
                m,
                "| replicas | partitioned | Shards Available (total) | Shards / s | clusters Available (total) | shard-controller peak RSS per replica | mean |"
            );
            let _ = writeln!(m, "| --- | --- | --- | --- | --- | --- | --- |");
            for r in self.main.iter().chain(self.scale_out.iter()) {
                let peaks: Vec<f64> = r
                    .usage_converged
                    .iter()
                    .filter(|(p, _)| controller_of(p) == "shard-controller")
                    .map(|(_, u)| u.peak_rss_mib)
                    .collect();
                let mean = peaks.iter().sum::<f64>() / peaks.len().max(1) as f64;
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} | {} | {:.1} MiB |",
                    r.shard_replicas,
                    r.partition,
                    secs(r.shards.total_seconds),
                    r.shards
                        .total_seconds
                        .map(|t| format!("{:.1}", r.expected_shards as f64 / t))
                        .unwrap_or_else(|| "—".into()),
                    secs(r.clusters.total_seconds),
                    peaks
                        .iter()
                        .map(|p| format!("{p:.1}"))
                        .collect::<Vec<_>>()
                        .join(" / "),
                    mean
                );
            }
            let _ = writeln!(m);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_names_map_to_controllers() {
        assert_eq!(controller_of("shard-controller-2"), "shard-controller");
        assert_eq!(controller_of("cell-controller"), "cell-controller");
        assert_eq!(controller_of("status-aggregator"), "status-aggregator");
    }

    #[test]
    fn counters_are_diffed_and_split() {
        let before = BTreeMap::from([(
            "a".to_string(),
            BTreeMap::from([("get".to_string(), 2), ("patch".to_string(), 1)]),
        )]);
        let after = BTreeMap::from([(
            "a".to_string(),
            BTreeMap::from([("get".to_string(), 5), ("patch".to_string(), 4)]),
        )]);
        let d = diff_metrics(&before, &after);
        assert_eq!(split(&d["a"]), (3, 3));
    }
}
