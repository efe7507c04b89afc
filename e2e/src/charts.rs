//! The Helm charts in `charts/`: building their `file://` dependencies and installing the umbrella
//! chart, with the helm binary of the pinned control plane.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The namespace the operator is installed into, in the demo and the suite.
pub const OPERATOR_NAMESPACE: &str = "multigres-system";
/// The Helm release name of the umbrella chart.
pub const RELEASE: &str = "multigres-operator";
pub const UMBRELLA: &str = "multigres-operator";
/// Charts that depend on the library chart, built before the umbrella that packs them.
pub const COMPONENT_CHARTS: [&str; 7] = [
    "multigres-crds",
    "multigres-cluster-controller",
    "multigres-cell-controller",
    "multigres-topo-controller",
    "multigres-tablegroup-controller",
    "multigres-shard-controller",
    "multigres-status-aggregator",
];

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e sits in the repository")
        .to_path_buf()
}

pub fn chart_dir(chart: &str) -> PathBuf {
    repo_root().join("charts").join(chart)
}

/// Runs helm (or kubectl) and returns its stdout; fails with its stderr.
pub fn run(bin: &Path, args: &[&str], kubeconfig: Option<&Path>) -> Result<String> {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed with {}:\n{}",
            bin.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `helm dependency build` for every chart that has dependencies, leaves first: each component
/// chart packs the library chart, and the umbrella packs the component charts.
pub fn build_dependencies(helm: &Path) -> Result<()> {
    for chart in COMPONENT_CHARTS.iter().chain([&UMBRELLA]) {
        let dir = chart_dir(chart);
        if !std::fs::read_to_string(dir.join("Chart.yaml"))?.contains("dependencies:") {
            continue;
        }
        run(
            helm,
            &["dependency", "build", &dir.display().to_string()],
            None,
        )?;
    }
    Ok(())
}

/// [`build_dependencies`] once per process: tests running in parallel must not rebuild the same
/// archives under each other.
pub fn build_dependencies_once(helm: &Path) -> Result<()> {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| build_dependencies(helm).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// Installs (or upgrades) the umbrella chart into [`OPERATOR_NAMESPACE`] with `--set` values.
pub fn install_operator(helm: &Path, kubeconfig: &Path, sets: &[String]) -> Result<String> {
    let chart = chart_dir(UMBRELLA).display().to_string();
    let mut args = vec![
        "upgrade",
        "--install",
        RELEASE,
        &chart,
        "--namespace",
        OPERATOR_NAMESPACE,
        "--create-namespace",
    ];
    for s in sets {
        args.extend(["--set", s.as_str()]);
    }
    run(helm, &args, Some(kubeconfig))
}

/// `--set` values that keep the charts' Deployments at zero replicas: the demo and the suite run the
/// controllers as local processes under the charts' ServiceAccounts instead.
pub fn zero_replicas() -> Vec<String> {
    [
        "clusterController",
        "cellController",
        "topoController",
        "tablegroupController",
        "shardController",
        "statusAggregator",
    ]
    .iter()
    .map(|key| format!("{key}.replicas=0"))
    .collect()
}

/// The ClusterRole the chart of `component` (e.g. `cluster-controller`) grants, rendered by
/// `helm template`: tests that run a controller under its chart's permissions take them from the
/// one source the charts install.
pub fn cluster_role(
    helm: &Path,
    component: &str,
) -> Result<k8s_openapi::api::rbac::v1::ClusterRole> {
    build_dependencies_once(helm)?;
    let chart = chart_dir(&format!("multigres-{component}"))
        .display()
        .to_string();
    let rendered = run(
        helm,
        &[
            "template",
            RELEASE,
            &chart,
            "--namespace",
            OPERATOR_NAMESPACE,
        ],
        None,
    )?;
    let name = format!("multigres-{component}");
    for document in serde_yaml::Deserializer::from_str(&rendered) {
        let value = serde_yaml::Value::deserialize(document)?;
        if value["kind"].as_str() == Some("ClusterRole")
            && value["metadata"]["name"].as_str() == Some(name.as_str())
        {
            return Ok(serde_yaml::from_value(value)?);
        }
    }
    bail!("chart {chart} renders no ClusterRole {name}")
}

/// The Secret the umbrella chart generates with the operator's topology CA (values
/// `global.topologyTls`).
pub const TOPOLOGY_CA_SECRET: &str = "multigres-topology-ca";

/// Copies the chart's topology CA into `dir` (`tls.crt`, `tls.key`), as the chart mounts it into the
/// controllers, and returns `dir`.
pub async fn topology_ca(admin: &kube::Client, dir: &Path) -> Result<PathBuf> {
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(admin.clone(), OPERATOR_NAMESPACE);
    let secret = secrets
        .get(TOPOLOGY_CA_SECRET)
        .await
        .with_context(|| format!("the chart's Secret {OPERATOR_NAMESPACE}/{TOPOLOGY_CA_SECRET}"))?;
    let data = secret.data.unwrap_or_default();
    std::fs::create_dir_all(dir)?;
    for key in ["tls.crt", "tls.key"] {
        let value = data
            .get(key)
            .with_context(|| format!("{TOPOLOGY_CA_SECRET} has no {key}"))?;
        std::fs::write(dir.join(key), &value.0)?;
    }
    Ok(dir.to_path_buf())
}
