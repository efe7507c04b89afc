//! Waiting for the CRDs a controller serves to be established before it starts watching.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};

/// Waits until every CRD in `names` (e.g. `cells.multigres.com`) is established, logging what it waits for.
pub async fn wait_established(
    client: &Client,
    names: &[&str],
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in names {
        tracing::info!(crd = name, "waiting for CRD to be established");
        tokio::time::timeout(timeout, await_condition(api.clone(), name, conditions::is_crd_established()))
            .await
            .map_err(|_| anyhow::anyhow!("CRD {name} not established after {timeout:?}: install the multigres CRDs chart first"))??;
    }
    Ok(())
}
