//! The CR definition's example cluster in `deploy/samples/`, as the demo and the suite apply it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::discovery::Discovery;
use kube::{Api, Client, ResourceExt};
use serde::Deserialize;

use crate::charts::repo_root;

pub fn samples_dir() -> PathBuf {
    repo_root().join("deploy/samples")
}

/// The sample MultigresCluster's name and namespace, and the cells that ask for a managed local
/// TopoServer (each needs its own etcd in the demo).
pub struct SampleCluster {
    pub namespace: String,
    pub name: String,
    pub local_topo_cells: Vec<String>,
}

pub fn sample_cluster() -> Result<SampleCluster> {
    cluster_at(&samples_dir().join("multigrescluster.yaml"))
}

/// The MultigresCluster of the manifest at `path` (its first document).
pub fn cluster_at(path: &Path) -> Result<SampleCluster> {
    let text = std::fs::read_to_string(path)?;
    let first = serde_yaml::Deserializer::from_str(&text)
        .next()
        .ok_or_else(|| anyhow!("{} is empty", path.display()))?;
    let doc = serde_yaml::Value::deserialize(first)
        .with_context(|| format!("parsing {}", path.display()))?;
    let text = |v: &serde_yaml::Value| v.as_str().map(str::to_string);
    let name =
        text(&doc["metadata"]["name"]).ok_or_else(|| anyhow!("{} has no name", path.display()))?;
    let namespace = text(&doc["metadata"]["namespace"]).unwrap_or_else(|| "default".into());
    let local_topo_cells = doc["spec"]["cells"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter(|c| {
            let topo = &c["spec"]["topoServer"];
            !topo.is_null() && topo["external"].is_null()
        })
        .filter_map(|c| text(&c["name"]))
        .collect();
    Ok(SampleCluster {
        namespace,
        name,
        local_topo_cells,
    })
}

/// The top-level manifests of `deploy/samples/` (not `children/`), templates before the cluster.
pub fn sample_files() -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    // "deploymenttemplate*" sorts before "multigrescluster.yaml".
    files.sort();
    Ok(files)
}

/// Server-side applies every document of `files` into `namespace` (documents without one).
pub async fn apply_files(client: &Client, files: &[PathBuf], namespace: &str) -> Result<usize> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut applied = 0;
    for file in files {
        applied += apply_file(client, &discovery, file, namespace).await?;
    }
    Ok(applied)
}

async fn apply_file(
    client: &Client,
    discovery: &Discovery,
    file: &Path,
    namespace: &str,
) -> Result<usize> {
    let text = std::fs::read_to_string(file)?;
    let mut applied = 0;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_yaml::from_value(value)
            .with_context(|| format!("a document of {}", file.display()))?;
        let gvk = object
            .types
            .as_ref()
            .ok_or_else(|| anyhow!("a document of {} has no kind", file.display()))?;
        let gvk = kube::api::GroupVersionKind::try_from(gvk)?;
        let (resource, _) = discovery
            .resolve_gvk(&gvk)
            .ok_or_else(|| anyhow!("{} is not served (are the CRDs installed?)", gvk.kind))?;
        let ns = object.namespace().unwrap_or_else(|| namespace.to_string());
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        api.patch(
            &object.name_any(),
            &PatchParams::apply("multigres-demo").force(),
            &Patch::Apply(&object),
        )
        .await
        .with_context(|| {
            format!(
                "applying {} {} from {}",
                gvk.kind,
                object.name_any(),
                file.display()
            )
        })?;
        applied += 1;
    }
    Ok(applied)
}
