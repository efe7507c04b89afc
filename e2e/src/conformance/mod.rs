//! `just conformance` (docs/conformance.md): the pods the operator generates, run as local
//! processes with the real Multigres binaries, then SQL through multigateway and a failover,
//! timed side by side with Multigres' own local cluster.

pub mod baseline;
pub mod checks;
pub mod dns;
pub mod env;
pub mod kubelet;
pub mod object_store;
pub mod observe;
pub mod operator_run;
pub mod restore;
pub mod rewrite;
pub mod sandbox;
pub mod sql;
pub mod timeline;
pub mod topo_proxy;
pub mod topology_names;
pub mod volumes;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use sandbox::Root;
use sql::Target;

/// The two numbers compared.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// Start (apply, or `cluster start`) to the first successful write through multigateway.
    pub bootstrap: Duration,
    /// The primary's postmaster killed to the next successful write through multigateway.
    pub failover: Duration,
}

/// Kills the postmaster below `sandboxes` whose command line `is_primary` picks, and times until
/// a write through `gateway` succeeds again.
pub async fn kill_primary(
    root: &Root,
    gateway: &Target,
    label: &str,
    is_primary: impl Fn(&str) -> bool,
    sandboxes: &[i32],
) -> Result<Duration> {
    let postmasters: Vec<(i32, String)> = sandboxes
        .iter()
        .flat_map(|pid| sql::postmasters_under(*pid))
        .filter(|(_, cmdline)| is_primary(cmdline))
        .collect();
    let [(pid, cmdline)] = postmasters.as_slice() else {
        bail!("{label}: expected one primary postmaster, found {postmasters:?}");
    };
    println!("  {label}: SIGKILL postmaster {pid} ({cmdline})");
    unsafe { libc::kill(*pid, libc::SIGKILL) };
    let killed = Instant::now();
    let (back, _) =
        sql::until_ok(root, gateway, &sql::insert(label), Duration::from_secs(300)).await?;
    let failover = back - killed;
    println!(
        "  {label}: writes again {:.1}s after the kill",
        failover.as_secs_f64()
    );
    Ok(failover)
}
