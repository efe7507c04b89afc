//! The short chaos profile (docs/reliability.md): 3 clusters converging and edited while controllers
//! are SIGKILLed, the topology etcd stops and primaries fail over mid-roll, each at least once; the
//! run's invariants must all hold. `just chaos` runs the full profile, API server restarts included.
//! This binary has its own control plane.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use multigres_e2e::ControlPlane;
use multigres_e2e::chaos::{self, Profile};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_during_edits_lose_nothing_and_end_as_a_clean_run() -> Result<()> {
    // A new seed each run (printed, and replayable with MULTIGRES_CHAOS_SEED).
    let seed = match std::env::var("MULTIGRES_CHAOS_SEED") {
        Ok(s) => s.parse()?,
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64,
    };
    let cp = tokio::task::block_in_place(ControlPlane::start)?;
    // MULTIGRES_CHAOS_WORK keeps the controllers' logs after the run.
    let work = std::env::var("MULTIGRES_CHAOS_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|_| cp.log_dir().join("chaos"));
    let run = chaos::run(
        &cp,
        multigres_e2e::workspace_binaries_dir()?,
        work.clone(),
        &Profile::short(seed),
    )
    .await;
    // The control plane's folder goes at exit: a failed run's logs are kept for diagnosis.
    let keep_logs = || {
        let kept = std::env::temp_dir().join(format!("multigres-chaos-{seed}"));
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(&work)
            .arg(&kept)
            .status();
        eprintln!("seed {seed}: logs kept in {} ({copied:?})", kept.display());
    };
    let report = match run {
        Ok(report) => report,
        Err(error) => {
            keep_logs();
            return Err(error);
        }
    };
    eprintln!("{}", report.summary());
    let failures = report.failures();
    if !failures.is_empty() {
        keep_logs();
    }
    assert!(failures.is_empty(), "seed {seed}: {failures:#?}");
    // Each kind of action happens at least once, an API server restart too; a controller that
    // exits meanwhile (its Lease renewals failed) is started again, as the kubelet would.
    for kind in ["controller SIGKILLed", "topology etcd stopped"] {
        assert!(report.faults.get(kind).is_some_and(|n| *n > 0), "no {kind}");
    }
    assert!(
        report.switchovers > 0,
        "rolls moved primaries by switchover"
    );
    Ok(())
}
