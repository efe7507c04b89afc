//! `kubectl multigres report`: a support bundle of one cluster. [`collect`] reads the cluster, the
//! DeploymentTemplates it names, its children and their workloads, the Events about them and the
//! operator's logs; [`bundle`] (pure) lays them out as files, the status tree first. Secrets are
//! listed by name only: their data is never read (metadata-only list).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, LogParams};
use kube::{Client, Resource, ResourceExt};
use multigres_api::{DeploymentTemplate, labels};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{fetch, tree};

/// Lines of each operator container's log kept in the bundle.
pub const LOG_LINES: i64 = 2000;

/// One object, as read, by kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// The resource's plural (`shards`, `pods`): its folder in the bundle.
    pub plural: String,
    pub name: String,
    pub value: serde_json::Value,
}

/// One container's log.
#[derive(Clone, Debug, PartialEq)]
pub struct Log {
    pub pod: String,
    pub container: String,
    pub text: String,
}

/// Everything read for the bundle.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Collected {
    pub namespace: String,
    pub cluster: String,
    /// The `status` tree as text, and as `status -o json` prints it.
    pub tree: String,
    pub tree_json: serde_json::Value,
    pub objects: Vec<Object>,
    pub events: Vec<serde_json::Value>,
    pub secret_names: Vec<String>,
    pub operator_namespace: String,
    pub logs: Vec<Log>,
    /// What went wrong while reading (a kind that could not be listed, a log that could not be read).
    pub problems: Vec<String>,
}

/// An object as YAML-ready JSON without its managed fields (noise for a reader).
fn plain<K: Serialize>(object: &K) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("managedFields");
    }
    value
}

fn yaml(value: &serde_json::Value) -> String {
    serde_yaml::to_string(value).unwrap_or_else(|e| format!("# not serialisable: {e}\n"))
}

/// The bundle's files, path (relative) and content; the summary first.
pub fn bundle(c: &Collected) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut summary = format!(
        "Support bundle of MultigresCluster {}/{}\n\n{}\n",
        c.namespace, c.cluster, c.tree
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &c.objects {
        *counts.entry(o.plural.as_str()).or_default() += 1;
        files.push((format!("{}/{}.yaml", o.plural, o.name), yaml(&o.value)));
    }
    summary.push_str("Contents:\n  status.json: the tree above, as `kubectl multigres status -o json` prints it\n");
    for (plural, n) in &counts {
        summary.push_str(&format!("  {plural}/: {n}\n"));
    }
    summary.push_str(&format!(
        "  events.yaml: {} Events about these objects\n",
        c.events.len()
    ));
    files.push((
        "events.yaml".to_string(),
        yaml(&serde_json::Value::Array(c.events.clone())),
    ));
    summary.push_str(&format!(
        "  secrets.txt: {} Secret names (no data)\n",
        c.secret_names.len()
    ));
    let mut secrets =
        String::from("# Secrets of the cluster, by name only: their data is never read.\n");
    for name in &c.secret_names {
        secrets.push_str(name);
        secrets.push('\n');
    }
    files.push(("secrets.txt".to_string(), secrets));
    if c.logs.is_empty() {
        summary.push_str(&format!(
            "  logs/: no operator pods found in namespace {} (pass --operator-namespace)\n",
            c.operator_namespace
        ));
    } else {
        summary.push_str(&format!(
            "  logs/: last {LOG_LINES} lines of {} containers of the operator pods in namespace {}\n",
            c.logs.len(),
            c.operator_namespace
        ));
    }
    for log in &c.logs {
        files.push((
            format!("logs/{}/{}.log", log.pod, log.container),
            log.text.clone(),
        ));
    }
    if !c.problems.is_empty() {
        summary.push_str("\nNot collected:\n");
        for p in &c.problems {
            summary.push_str(&format!("  {p}\n"));
        }
    }
    files.insert(
        0,
        ("status.json".to_string(), format!("{:#}\n", c.tree_json)),
    );
    files.insert(0, ("summary.txt".to_string(), summary));
    files
}

async fn list<K>(client: &Client, namespace: &str, selector: &str, c: &mut Collected) -> Vec<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by_key(|o| o.name_any());
            for o in &items {
                c.objects.push(Object {
                    plural: K::plural(&()).to_string(),
                    name: o.name_any(),
                    value: plain(o),
                });
            }
            items
        }
        Err(error) => {
            c.problems.push(format!("{}: {error}", K::plural(&())));
            Vec::new()
        }
    }
}

/// Every `deploymentTemplate` a cluster spec names.
pub fn template_names(spec: &serde_json::Value, names: &mut BTreeSet<String>) {
    match spec {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("deploymentTemplate", serde_json::Value::String(name)) => {
                        names.insert(name.clone());
                    }
                    _ => template_names(v, names),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| template_names(v, names)),
        _ => {}
    }
}

/// Reads everything the bundle holds.
pub async fn collect(
    client: &Client,
    namespace: &str,
    cluster: &str,
    operator_namespace: &str,
) -> Result<Collected> {
    let objects = fetch::cluster(client, namespace, cluster).await?;
    let mut c = Collected {
        namespace: namespace.to_string(),
        cluster: cluster.to_string(),
        tree: tree::render(&tree::build(&objects)),
        tree_json: serde_json::to_value(tree::build(&objects))?,
        operator_namespace: operator_namespace.to_string(),
        ..Default::default()
    };
    c.objects.push(Object {
        plural: "multigresclusters".into(),
        name: cluster.to_string(),
        value: plain(&objects.cluster),
    });
    let mut templates = BTreeSet::new();
    template_names(
        &serde_json::to_value(&objects.cluster.spec)?,
        &mut templates,
    );
    let template_api: Api<DeploymentTemplate> = Api::namespaced(client.clone(), namespace);
    for name in templates {
        match template_api.get_opt(&name).await {
            Ok(Some(t)) => c.objects.push(Object {
                plural: "deploymenttemplates".into(),
                name,
                value: plain(&t),
            }),
            Ok(None) => c.problems.push(format!(
                "DeploymentTemplate {name}: named by the cluster, not found"
            )),
            Err(e) => c.problems.push(format!("DeploymentTemplate {name}: {e}")),
        }
    }
    let of_cluster = format!("{}={cluster}", labels::CLUSTER);
    list::<multigres_api::TopoServer>(client, namespace, &of_cluster, &mut c).await;
    list::<multigres_api::Cell>(client, namespace, &of_cluster, &mut c).await;
    list::<multigres_api::TableGroup>(client, namespace, &of_cluster, &mut c).await;
    list::<multigres_api::Shard>(client, namespace, &of_cluster, &mut c).await;
    list::<Deployment>(client, namespace, &of_cluster, &mut c).await;
    list::<StatefulSet>(client, namespace, &of_cluster, &mut c).await;
    list::<Pod>(client, namespace, &of_cluster, &mut c).await;
    list::<Service>(client, namespace, &of_cluster, &mut c).await;
    list::<PodDisruptionBudget>(client, namespace, &of_cluster, &mut c).await;
    list::<PersistentVolumeClaim>(client, namespace, &of_cluster, &mut c).await;
    list::<ConfigMap>(client, namespace, &of_cluster, &mut c).await;

    // Events about any of these objects.
    let names: BTreeSet<&str> = c.objects.iter().map(|o| o.name.as_str()).collect();
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    match events.list(&ListParams::default()).await {
        Ok(list) => {
            let mut about: Vec<Event> = list
                .items
                .into_iter()
                .filter(|e| {
                    e.regarding
                        .as_ref()
                        .and_then(|r| r.name.as_deref())
                        .is_some_and(|n| names.contains(n))
                })
                .collect();
            about.sort_by_key(|e| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
            c.events = about.iter().map(plain).collect();
        }
        Err(e) => c.problems.push(format!("events: {e}")),
    }

    // Secrets: names only, from a metadata-only list (the data is never transferred).
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut secret_names: BTreeSet<String> = BTreeSet::new();
    match secrets
        .list_metadata(&ListParams::default().labels(&of_cluster))
        .await
    {
        Ok(list) => secret_names.extend(list.items.iter().map(|s| s.name_any())),
        Err(e) => c.problems.push(format!("secrets (names): {e}")),
    }
    let creds = crate::psql::credentials(&objects.cluster);
    secret_names.insert(creds.secret_name);
    c.secret_names = secret_names.into_iter().collect();

    // The operator's logs.
    let pods: Api<Pod> = Api::namespaced(client.clone(), operator_namespace);
    match pods.list(&ListParams::default()).await {
        Ok(list) => {
            for pod in list.items {
                let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
                for container in containers {
                    let params = LogParams {
                        container: Some(container.name.clone()),
                        tail_lines: Some(LOG_LINES),
                        ..Default::default()
                    };
                    match pods.logs(&pod.name_any(), &params).await {
                        Ok(text) => c.logs.push(Log {
                            pod: pod.name_any(),
                            container: container.name.clone(),
                            text,
                        }),
                        Err(e) => c.problems.push(format!(
                            "log of {}/{} container {}: {e}",
                            operator_namespace,
                            pod.name_any(),
                            container.name
                        )),
                    }
                }
            }
        }
        Err(e) => c
            .problems
            .push(format!("pods of namespace {operator_namespace}: {e}")),
    }
    Ok(c)
}

/// Writes the bundle to `output`: a directory, or a `.tar.gz` (through the system's `tar`).
/// Returns what was written.
pub fn write(files: &[(String, String)], output: &Path) -> Result<PathBuf> {
    let name = output.to_string_lossy();
    if let Some(stem) = name.strip_suffix(".tar.gz").or(name.strip_suffix(".tgz")) {
        let staging = tempdir_near(output)?;
        let top = Path::new(stem)
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("report"));
        write_dir(files, &staging.join(&top))?;
        let status = std::process::Command::new("tar")
            .arg("-czf")
            .arg(output)
            .arg("-C")
            .arg(&staging)
            .arg(&top)
            .status()
            .context("running tar (write a directory instead: --output <dir>)")?;
        let _ = std::fs::remove_dir_all(&staging);
        if !status.success() {
            bail!("tar -czf {} failed: {status}", output.display());
        }
        return Ok(output.to_path_buf());
    }
    write_dir(files, output)?;
    Ok(output.to_path_buf())
}

fn tempdir_near(output: &Path) -> Result<PathBuf> {
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = parent.join(format!(".multigres-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn write_dir(files: &[(String, String)], dir: &Path) -> Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    for (path, content) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
