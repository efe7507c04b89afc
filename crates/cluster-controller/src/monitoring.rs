//! The cluster's monitoring objects (docs/monitoring.md): whether the Prometheus operator's kinds
//! are served, and the apply (or removal) of the PodMonitor and PrometheusRule that `build` made.
//!
//! The Prometheus operator is optional and may be installed or removed at any time, so its kinds
//! are not watched: API discovery is re-read on a slow timer, a change re-reconciles every cluster,
//! and each reconcile reads the cluster's two objects by name (no cache of a kind that may not exist).

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::api::Api;
use kube::{Client, Resource, ResourceExt};
use multigres_api::MultigresCluster;
use multigres_runtime::apply::controlled_by_other;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::apply::Ctx;
use crate::build;
use crate::error::Result;

/// The API group and version of the Prometheus operator's kinds.
pub const GROUP_VERSION: &str = "monitoring.coreos.com/v1";
/// How often discovery is re-read: installing the Prometheus operator shows within this.
pub const REDISCOVER_EVERY: Duration = Duration::from_secs(60);

/// Which of the two kinds the API server serves now.
#[derive(Debug, Default)]
pub struct Served {
    pod_monitors: AtomicBool,
    prometheus_rules: AtomicBool,
}

impl Served {
    pub fn pod_monitors(&self) -> bool {
        self.pod_monitors.load(Ordering::Relaxed)
    }
    pub fn prometheus_rules(&self) -> bool {
        self.prometheus_rules.load(Ordering::Relaxed)
    }

    /// Records what discovery found; true when it changed.
    fn set(&self, pod_monitors: bool, prometheus_rules: bool) -> bool {
        let a = self.pod_monitors.swap(pod_monitors, Ordering::Relaxed) != pod_monitors;
        let b = self
            .prometheus_rules
            .swap(prometheus_rules, Ordering::Relaxed)
            != prometheus_rules;
        a || b
    }
}

/// Reads discovery of `monitoring.coreos.com/v1`: (podmonitors, prometheusrules) served. A group
/// that does not exist is (false, false); any other failure is returned (the previous answer stays).
pub async fn discover(client: &Client) -> Result<(bool, bool), kube::Error> {
    match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(list) => {
            let has = |name: &str| list.resources.iter().any(|r| r.name == name);
            Ok((has("podmonitors"), has("prometheusrules")))
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok((false, false)),
        Err(e) => Err(e),
    }
}

/// Re-reads discovery every [`REDISCOVER_EVERY`] and sends on `changed` when the answer changes
/// (the first answer counts as a change when a kind is served).
pub async fn rediscover(
    client: Client,
    served: Arc<Served>,
    changed: futures::channel::mpsc::UnboundedSender<()>,
) {
    loop {
        match discover(&client).await {
            Ok((pod_monitors, prometheus_rules)) => {
                if served.set(pod_monitors, prometheus_rules) {
                    tracing::info!(
                        pod_monitors,
                        prometheus_rules,
                        "Prometheus operator kinds ({GROUP_VERSION}) served: reconciling every cluster"
                    );
                    if changed.unbounded_send(()).is_err() {
                        return;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "discovery of {GROUP_VERSION} failed; will retry"),
        }
        tokio::time::sleep(REDISCOVER_EVERY).await;
    }
}

/// Applies the cluster's PodMonitor and PrometheusRule where their kind is served and they are
/// wanted, and deletes the ones it controls that are no longer wanted. Returns refusals like
/// `apply::children` (`<kind> <name>: <message>`), for the status.
pub async fn apply(ctx: &Ctx, cluster: &MultigresCluster) -> Result<Vec<String>> {
    let served = &ctx.state.monitoring;
    let mut refused = Vec::new();
    if served.pod_monitors() {
        one(ctx, cluster, build::pod_monitor(cluster), &mut refused).await?;
    }
    if served.prometheus_rules() {
        one(ctx, cluster, build::prometheus_rule(cluster), &mut refused).await?;
    }
    Ok(refused)
}

/// One monitoring object, named as the cluster: read by name, applied when `desired`, pruned when
/// not. A 404 on the kind itself (the CRD just went away) is nothing to do.
async fn one<K>(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    desired: Option<K>,
    refused: &mut Vec<String>,
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
    K: Serialize + DeserializeOwned + Clone + Debug,
{
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = api.get_opt(&name).await?;
    let kind = K::kind(&());
    if let Some(existing) = &existing
        && controlled_by_other(existing, cluster)
    {
        refused.push(format!(
            "{kind} {name}: already controlled by another object; it is left as it is"
        ));
        return Ok(());
    }
    let Some(desired) = desired else {
        let keep = BTreeSet::new();
        ctx.applier
            .prune(&ctx.events, cluster, existing.as_ref(), &keep)
            .await?;
        return Ok(());
    };
    match ctx
        .applier
        .apply_reported(
            crate::apply::child_events(ctx, cluster),
            cluster,
            existing.as_ref(),
            &desired,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            tracing::info!(%kind, "{GROUP_VERSION} {kind} no longer served; skipped");
            Ok(())
        }
        Err(e) => match multigres_runtime::apply::refused(&e) {
            Some(message) => {
                refused.push(format!("{kind} {name}: {message}"));
                Ok(())
            }
            None => Err(e.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_either_kind_is_reported_once() {
        let served = Served::default();
        assert!(!served.set(false, false));
        assert!(served.set(true, false));
        assert!(!served.set(true, false));
        assert!(served.pod_monitors() && !served.prometheus_rules());
        assert!(served.set(true, true));
        assert!(served.set(false, false));
    }
}
