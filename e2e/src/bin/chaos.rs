//! `just chaos`: the full chaos profile (docs/reliability.md) on a fresh local control plane.
//! Prints what was injected and what survived; exits non-zero when an invariant broke.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use multigres_e2e::ControlPlane;
use multigres_e2e::chaos::{self, Profile};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let target = args.next().map(std::path::PathBuf::from);
    let Some(target) = target else {
        bail!("usage: chaos <target-dir with the controller binaries> [seed] [short|full]");
    };
    let seed = match args.next() {
        Some(s) => s.parse()?,
        None => SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64,
    };
    let profile = match args.next().as_deref() {
        Some("short") => Profile::short(seed),
        _ => Profile::full(seed),
    };
    let cp = tokio::task::block_in_place(ControlPlane::start)?;
    let work = std::env::current_dir()?.join(".chaos");
    let _ = std::fs::remove_dir_all(&work);
    let report = chaos::run(&cp, target, work, &profile).await?;
    println!("{}", report.summary());
    let failures = report.failures();
    if !failures.is_empty() {
        bail!("seed {seed}: {failures:#?}");
    }
    Ok(())
}
