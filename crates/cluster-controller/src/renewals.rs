//! cert-manager's renewals of the clusters' certificates, as events for the cluster controller:
//! a Certificate whose `status.revision` grows re-reconciles its cluster, which carries the
//! revision into the pods that mount the Secret (docs/security.md, "Rotation").
//!
//! cert-manager is optional: the watch starts once its Certificate kind is served (looked up
//! every [`REDISCOVER_EVERY`]), and until then yields nothing. Each reconcile also reads the
//! Certificate by name, so a renewal is taken at the latest on the next resync.

use futures::{Stream, StreamExt};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use multigres_api::labels;

use crate::build::Certificate;
use crate::monitoring::REDISCOVER_EVERY;

const GROUP_VERSION: &str = "cert-manager.io/v1";

/// The operator's Certificates (every namespace, or `namespace`), once the kind is served.
pub fn certificates(
    client: Client,
    namespace: Option<String>,
) -> impl Stream<Item = Result<Certificate, watcher::Error>> + Send + 'static {
    let served = {
        let client = client.clone();
        async move {
            while !is_served(&client).await {
                tokio::time::sleep(REDISCOVER_EVERY).await;
            }
            tracing::info!("{GROUP_VERSION} Certificates served: watching the clusters' renewals");
        }
    };
    futures::stream::once(served).flat_map(move |()| {
        let api: Api<Certificate> = match &namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let selector = format!(
            "{}={},{}={}",
            labels::MANAGED_BY,
            labels::MANAGED_BY_VALUE,
            labels::COMPONENT,
            labels::component::TLS
        );
        watcher(api, watcher::Config::default().labels(&selector)).touched_objects()
    })
}

async fn is_served(client: &Client) -> bool {
    client
        .list_api_group_resources(GROUP_VERSION)
        .await
        .is_ok_and(|list| list.resources.iter().any(|r| r.name == "certificates"))
}
