//! `kubectl multigres restart`: asks the shard controller to replace every pod of a cluster's
//! Shards (or of one) once, in its safe order, by setting the restart annotation on each Shard.

use anyhow::{Context, Result, bail};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use multigres_api::{Shard, labels};

/// The merge patch that requests a restart at `at` (any new value does).
pub fn request(at: &str) -> serde_json::Value {
    serde_json::json!({"metadata": {"annotations": {labels::RESTART_REQUESTED: at}}})
}

/// Annotates the Shards of `cluster` (only `shard`, when given); returns their names.
pub async fn shards(
    client: &Client,
    namespace: &str,
    cluster: &str,
    shard: Option<&str>,
    at: &str,
) -> Result<Vec<String>> {
    let api: Api<Shard> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{}={cluster}", labels::CLUSTER);
    let mut names: Vec<String> = api
        .list(&ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("listing the Shards of {namespace}/{cluster}"))?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .filter(|name| shard.is_none_or(|s| s == name))
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("no Shard of MultigresCluster {namespace}/{cluster} matches");
    }
    let params = PatchParams::default();
    for name in &names {
        api.patch(name, &params, &Patch::Merge(&request(at)))
            .await
            .with_context(|| format!("annotating Shard {namespace}/{name}"))?;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_the_annotation_and_nothing_else() {
        assert_eq!(
            request("t1"),
            serde_json::json!({"metadata": {"annotations": {"multigres.com/restart-requested": "t1"}}})
        );
    }
}
