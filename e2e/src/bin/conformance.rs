//! `conformance`: the operator's generated pods run with the real Multigres binaries, SQL through
//! multigateway, a failover, and the same timings for Multigres' own local cluster
//! (docs/conformance.md). Needs root (mount namespaces, chroot).
//!
//! `MULTIGRES_BIN_DIR`: the Multigres binaries; `MULTIGRES_PG_ROOT`: the root filesystem made by
//! scripts/conformance-root.sh. Optional: `MULTIGRES_CONFORMANCE_USER` (default `multigres`),
//! `MULTIGRES_CONFORMANCE_MANIFEST`, `MULTIGRES_CONFORMANCE_DIR` (default `<repo>/.conformance`),
//! `MULTIGRES_CONFORMANCE_BOOTSTRAP_TIMEOUT` (seconds, default 600),
//! `MULTIGRES_CONFORMANCE_SKIP_BASELINE=1`, `MULTIGRES_CONFORMANCE_ONLY=baseline` (both for debugging:
//! the run then fails).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use multigres_e2e::conformance::{Timings, baseline, operator_run, sandbox::Root};
use multigres_e2e::{binaries_dir, charts};

fn var(name: &str) -> Result<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .with_context(|| format!("set {name} (docs/conformance.md)"))
}

fn main() {
    let outcome = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run()));
    let code = match outcome {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            println!("\nconformance: FAIL: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

async fn run() -> Result<bool> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("run as root: every pod gets a mount namespace and a chroot");
    }
    let user = std::env::var("MULTIGRES_CONFORMANCE_USER").unwrap_or_else(|_| "multigres".into());
    let root = Root::open(
        &var("MULTIGRES_PG_ROOT")?,
        &var("MULTIGRES_BIN_DIR")?,
        &binaries_dir()?,
        &user,
    )?;
    let work = std::env::var_os("MULTIGRES_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| charts::repo_root().join(".conformance"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("logs"))?;
    let manifest = std::env::var_os("MULTIGRES_CONFORMANCE_MANIFEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            charts::repo_root().join("deploy/samples/conformance/multigrescluster.yaml")
        });
    println!(
        "conformance: Multigres binaries {}, root {} (user {user}, uid {}), work {}",
        root.multigres_bin.display(),
        root.dir.display(),
        root.uid,
        work.display()
    );
    println!(
        "  substitution: no kubelet or container runtime: each container is a process in the root, in mount and PID namespaces of its own, as its runAsUser"
    );
    println!(
        "  substitution: the images' filesystem is the root; their PATH is {}",
        multigres_e2e::conformance::sandbox::PATH
    );
    println!(
        "  substitution: Services resolve (hosts file) to one selected pod's address; no kube-proxy, so clients dial the target port"
    );

    println!("\n== the operator's pods");
    let opts = operator_run::Options {
        root: root.clone(),
        work: work.clone(),
        manifest,
        target_dir: operator_run::target_dir()?,
        restore_manifest: (std::env::var("MULTIGRES_CONFORMANCE_RESTORE").as_deref() != Ok("0"))
            .then(|| charts::repo_root().join("deploy/samples/conformance/restored.yaml")),
        object_store: std::env::var_os("MULTIGRES_CONFORMANCE_S3_SERVER").map(|server| {
            (
                charts::repo_root().join("deploy/samples/conformance/s3.yaml"),
                PathBuf::from(server),
            )
        }),
    };
    let operator = if std::env::var("MULTIGRES_CONFORMANCE_ONLY").as_deref() == Ok("baseline") {
        Err(anyhow::anyhow!(
            "skipped (MULTIGRES_CONFORMANCE_ONLY=baseline)"
        ))
    } else {
        operator_run::run(&opts).await
    };
    if let Err(e) = &operator {
        println!("  operator run FAILED: {e:#}");
    }

    let skip = std::env::var("MULTIGRES_CONFORMANCE_SKIP_BASELINE").is_ok_and(|v| v == "1");
    let local = if skip {
        Err(anyhow::anyhow!(
            "skipped (MULTIGRES_CONFORMANCE_SKIP_BASELINE=1)"
        ))
    } else {
        println!("\n== Multigres' own local cluster (multigres cluster init && start)");
        baseline::run(&root, &work).await
    };
    if let Err(e) = &local {
        println!("  local cluster FAILED: {e:#}");
    }

    println!("\n== timings            operator pods    multigres cluster");
    let cell = |t: &Result<Timings>, f: fn(&Timings) -> f64| match t {
        Ok(t) => format!("{:>8.1} s", f(t)),
        Err(_) => format!("{:>10}", "n/a"),
    };
    println!(
        "   bootstrap (start -> first write) {}    {}",
        cell(&operator, |t| t.bootstrap.as_secs_f64()),
        cell(&local, |t| t.bootstrap.as_secs_f64())
    );
    println!(
        "   failover  (kill -> first write)  {}    {}",
        cell(&operator, |t| t.failover.as_secs_f64()),
        cell(&local, |t| t.failover.as_secs_f64())
    );
    let pass = operator.is_ok() && (local.is_ok() || skip);
    println!(
        "\nconformance: {} (operator pods: {}; local cluster: {})",
        if pass { "PASS" } else { "FAIL" },
        if operator.is_ok() {
            "write, read, replica read, failover ok"
        } else {
            "failed"
        },
        match &local {
            Ok(_) => "measured",
            Err(_) if skip => "skipped",
            Err(_) => "failed",
        },
    );
    Ok(pass)
}
