//! The release artefact of `kubectl multigres` (scripts/package-plugin.sh): an archive whose
//! checksum the krew manifest carries, with the operator's version, and a binary the real kubectl
//! finds and runs as its `multigres` plugin once the archive is unpacked onto the PATH.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn the_packaged_plugin_is_what_kubectl_runs_and_what_krew_verifies() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = multigres_e2e::workspace_binary("kubectl-multigres")?;
    let kubectl = multigres_e2e::binaries_dir()?.join("kubectl");
    let out = tempfile::tempdir()?;
    let release_url = "https://downloads.example.com/multigres-operator/releases/v9";
    let printed = run(Command::new("bash")
        .arg(root.join("scripts/package-plugin.sh"))
        .arg(&binary)
        .arg(out.path())
        .args(["linux", "amd64"])
        .env("RELEASE_URL", release_url))?;
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("kubectl-multigres_v{version}_linux_amd64.tar.gz");
    assert_eq!(printed.trim(), out.path().join(&name).display().to_string());

    // The manifest: the operator's version (every chart's appVersion), and the archive's sha256.
    let archive = std::fs::read(out.path().join(&name))?;
    let sha = format!("{:x}", Sha256::digest(&archive));
    let sum = std::fs::read_to_string(out.path().join(format!("{name}.sha256")))?;
    assert_eq!(sum, format!("{sha}  {name}\n"));
    let manifest: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.path().join("multigres.yaml"))?)?;
    assert_eq!(manifest["kind"].as_str(), Some("Plugin"));
    assert_eq!(manifest["metadata"]["name"].as_str(), Some("multigres"));
    assert_eq!(
        manifest["spec"]["version"].as_str(),
        Some(format!("v{version}").as_str())
    );
    let platforms = manifest["spec"]["platforms"]
        .as_sequence()
        .context("platforms")?;
    assert_eq!(platforms.len(), 1, "{manifest:?}");
    let p = &platforms[0];
    assert_eq!(p["sha256"].as_str(), Some(sha.as_str()));
    assert_eq!(
        p["uri"].as_str(),
        Some(format!("{release_url}/{name}").as_str())
    );
    assert_eq!(p["bin"].as_str(), Some("kubectl-multigres"));
    assert_eq!(p["selector"]["matchLabels"]["os"].as_str(), Some("linux"));
    let chart: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(
        root.join("charts/multigres-operator/Chart.yaml"),
    )?)?;
    assert_eq!(chart["appVersion"].as_str(), Some(version));

    // Packaging again gives the same bytes: a release can be rebuilt and checked.
    let again = tempfile::tempdir()?;
    run(Command::new("bash")
        .arg(root.join("scripts/package-plugin.sh"))
        .arg(&binary)
        .arg(again.path())
        .args(["linux", "amd64"])
        .env("RELEASE_URL", release_url))?;
    assert_eq!(std::fs::read(again.path().join(&name))?, archive);

    // Unpacked onto the PATH, kubectl finds it and runs it as `kubectl multigres`.
    let bin = out.path().join("bin");
    std::fs::create_dir(&bin)?;
    run(Command::new("tar")
        .arg("-xzf")
        .arg(out.path().join(&name))
        .arg("-C")
        .arg(&bin))?;
    let mut files: Vec<String> = std::fs::read_dir(&bin)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    assert_eq!(files, ["LICENSE", "kubectl-multigres"]);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let listed = run(Command::new(&kubectl)
        .args(["plugin", "list"])
        .env("PATH", &path))?;
    assert!(
        listed.contains(&bin.join("kubectl-multigres").display().to_string()),
        "{listed}"
    );
    let shown = run(Command::new(&kubectl)
        .args(["multigres", "--version"])
        .env("PATH", &path))?;
    assert_eq!(shown.trim(), format!("kubectl-multigres {version}"));
    let help = run(Command::new(&kubectl)
        .args(["multigres", "--help"])
        .env("PATH", &path))?;
    for command in [
        "status",
        "restart",
        "switchover",
        "psql",
        "backup",
        "report",
    ] {
        assert!(help.contains(&format!("  {command} ")), "{command}: {help}");
    }
    Ok(())
}
