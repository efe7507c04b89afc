//! One reconcile of a TableGroup: build the Shards, apply the ones that changed, write the status.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use multigres_api::{Shard, TableGroup};
use multigres_runtime::Context;
use multigres_runtime::apply::controlled_by_other;
use multigres_runtime::error::{ErrorKind, ReconcileError};
use serde_json::json;

use crate::build;

pub struct State {
    pub shards: Store<Shard>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("TableGroup {0}: reconcile abandoned after {1:?}")]
    Deadline(String, Duration),
    #[error(
        "TableGroup {0}: Shard {1} exists and is controlled by another object; rename or delete it"
    )]
    NameTaken(String, String),
    #[error("TableGroup {0}: applying Shard {1}: {2}")]
    Apply(String, String, #[source] kube::Error),
    #[error("TableGroup {0}: writing status: {1}")]
    Status(String, #[source] kube::Error),
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Error::Deadline(..) => "deadline",
            Error::NameTaken(..) => "name_taken",
            Error::Apply(..) => "apply_shard",
            Error::Status(..) => "write_status",
        }
    }
    fn deadline(object: String, after: Duration) -> Self {
        Error::Deadline(object, after)
    }
    fn kind(&self) -> ErrorKind {
        match self {
            Error::NameTaken(..) => ErrorKind::Invalid,
            _ => ErrorKind::Transient,
        }
    }
}

/// One reconcile, bounded by the shared deadline (`multigres_runtime::run::within_deadline`).
pub async fn reconcile(tg: Arc<TableGroup>, ctx: Arc<Context<State>>) -> Result<Action, Error> {
    let object = tg.clone();
    multigres_runtime::run::within_deadline(object.as_ref(), reconcile_unbounded(tg, ctx)).await
}

async fn reconcile_unbounded(
    tg: Arc<TableGroup>,
    ctx: Arc<Context<State>>,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let key = multigres_runtime::run::object_key(tg.as_ref());
    if tg.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = tg.namespace().unwrap_or_default();
    let desired = build::shards(&tg);
    for shard in &desired {
        let existing = ctx
            .state
            .shards
            .get(&ObjectRef::new(&shard.name_any()).within(&namespace));
        if let Some(existing) = existing.as_deref()
            && controlled_by_other(existing, tg.as_ref())
        {
            return Err(Error::NameTaken(key, shard.name_any()));
        }
        ctx.applier
            .apply_reported(&ctx.events, tg.as_ref(), existing.as_deref(), shard)
            .await
            .map_err(|e| Error::Apply(key.clone(), shard.name_any(), e))?;
    }
    let uid = tg.uid().unwrap_or_default();
    let owned: Vec<Arc<Shard>> = ctx
        .state
        .shards
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|s| {
            s.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect();
    let owned_refs: Vec<&Shard> = owned.iter().map(Arc::as_ref).collect();
    let status = build::status(
        &tg,
        &desired,
        &owned_refs,
        k8s_openapi::jiff::Timestamp::now(),
    );
    if tg.status.as_ref() != Some(&status) {
        let api: Api<TableGroup> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({
            "apiVersion": TableGroup::api_version(&()),
            "kind": TableGroup::kind(&()),
            "status": status,
        });
        api.patch_status(
            &tg.name_any(),
            &PatchParams::apply(ctx.applier.manager()).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|e| Error::Status(key.clone(), e))?;
    }
    ctx.succeeded(tg.as_ref());
    Ok(Action::requeue(std::time::Duration::from_secs(600)))
}
