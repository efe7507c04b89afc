//! DeploymentTemplate lifecycle (docs/cluster-controller.md): `status.consumers` lists exactly the clusters that name
//! a template, and a finalizer holds the deletion of a template in use (the admission policy refuses
//! it up front; this is the backstop). Templates nobody uses cost nothing: no write, ever.

use std::sync::Arc;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use multigres_api::template::Consumer;
use multigres_api::{DeploymentTemplate, DeploymentTemplateStatus, MultigresCluster};
use serde_json::json;

use crate::apply::Ctx;
use crate::dereference::consumers_of;
use crate::error::Result;

/// Held on a template while clusters use it.
pub const IN_USE_FINALIZER: &str = "multigres.com/template-in-use";

/// The consumers of a template, sorted by namespace and name.
pub fn consumers(clusters: &[Arc<MultigresCluster>]) -> Vec<Consumer> {
    let mut list: Vec<Consumer> = clusters
        .iter()
        .map(|c| Consumer {
            name: c.name_any(),
            namespace: c.namespace().unwrap_or_default(),
        })
        .collect();
    list.sort();
    list.dedup();
    list
}

/// The status to write, or `None` when the current one already says it. A template that never had
/// consumers and has none has nothing to write.
pub fn desired_status(
    current: Option<&DeploymentTemplateStatus>,
    consumers: Vec<Consumer>,
) -> Option<DeploymentTemplateStatus> {
    let count = consumers.len() as i32;
    match current {
        None if consumers.is_empty() => None,
        Some(s) if s.consumers == consumers && s.consumer_count.unwrap_or(0) == count => None,
        _ => Some(DeploymentTemplateStatus {
            consumers,
            consumer_count: Some(count),
            conditions: current.map(|s| s.conditions.clone()).unwrap_or_default(),
        }),
    }
}

/// Whether to add (`Some(true)`), remove (`Some(false)`) or leave the finalizer.
pub fn finalizer_change(template: &DeploymentTemplate, in_use: bool) -> Option<bool> {
    let has = template.finalizers().iter().any(|f| f == IN_USE_FINALIZER);
    let deleting = template.meta().deletion_timestamp.is_some();
    match (has, in_use) {
        // A finalizer cannot be added to an object being deleted.
        (false, true) if !deleting => Some(true),
        (true, false) => Some(false),
        _ => None,
    }
}

/// One reconcile, bounded by the shared deadline (`multigres_runtime::run::within_deadline`).
pub async fn reconcile(template: Arc<DeploymentTemplate>, ctx: Arc<Ctx>) -> Result<Action> {
    let object = template.clone();
    multigres_runtime::run::within_deadline(object.as_ref(), reconcile_unbounded(template, ctx))
        .await
}

async fn reconcile_unbounded(template: Arc<DeploymentTemplate>, ctx: Arc<Ctx>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started();
    // A template's consumers come from the clusters' cache: unlisted, it would look unused.
    if !ctx.state.caches_synced().await {
        return Err(crate::error::Error::CacheNotReady);
    }
    let users = consumers(&consumers_of(&ctx.state.stores.clusters, &template));
    let in_use = !users.is_empty();
    let api: Api<DeploymentTemplate> = Api::namespaced(
        ctx.client.clone(),
        &template.namespace().unwrap_or_default(),
    );
    let name = template.name_any();
    if let Some(status) = desired_status(template.status.as_ref(), users) {
        ctx.applier
            .apply_status(template.as_ref(), None, &status)
            .await?;
    }
    if let Some(add) = finalizer_change(&template, in_use) {
        let mut finalizers: Vec<String> = template
            .finalizers()
            .iter()
            .filter(|f| *f != IN_USE_FINALIZER)
            .cloned()
            .collect();
        if add {
            finalizers.push(IN_USE_FINALIZER.to_string());
        }
        // The resourceVersion makes this a compare-and-swap: if another writer changed the list
        // meanwhile, the patch fails with a conflict and the next reconcile starts over.
        let patch = json!({"metadata": {
            "resourceVersion": template.resource_version(),
            "finalizers": finalizers,
        }});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.succeeded(template.as_ref());
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn consumer(ns: &str, name: &str) -> Consumer {
        Consumer {
            name: name.into(),
            namespace: ns.into(),
        }
    }

    #[test]
    fn unused_templates_cost_no_write() {
        assert_eq!(desired_status(None, vec![]), None);
        let empty = DeploymentTemplateStatus {
            consumers: vec![],
            consumer_count: Some(0),
            conditions: vec![],
        };
        assert_eq!(desired_status(Some(&empty), vec![]), None);
    }

    #[test]
    fn consumers_are_written_only_when_they_change() {
        let users = vec![consumer("a", "x"), consumer("a", "y")];
        let written = desired_status(None, users.clone()).unwrap();
        assert_eq!(written.consumer_count, Some(2));
        assert_eq!(desired_status(Some(&written), users), None);
        let emptied = desired_status(Some(&written), vec![]).unwrap();
        assert_eq!(
            (emptied.consumers.len(), emptied.consumer_count),
            (0, Some(0))
        );
    }

    #[test]
    fn the_finalizer_follows_use_but_is_never_added_while_deleting() {
        let mut t = DeploymentTemplate::new("t", Default::default());
        assert_eq!(finalizer_change(&t, true), Some(true));
        assert_eq!(finalizer_change(&t, false), None);
        t.metadata.finalizers = Some(vec![IN_USE_FINALIZER.into()]);
        assert_eq!(finalizer_change(&t, true), None);
        assert_eq!(finalizer_change(&t, false), Some(false));
        t.metadata.finalizers = None;
        t.metadata.deletion_timestamp = Some(Time("2025-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(finalizer_change(&t, true), None);
    }
}
