//! One reconcile of a TableGroup: build the Shards (pure, [`crate::build`]), apply the ones that
//! changed, write the status when it changed.

use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use kube::runtime::controller::Action;
use multigres_api::{Shard, TableGroup};
use multigres_runtime::apply::controlled_children;
use multigres_runtime::error::{ChildError, Failure};
use multigres_runtime::run::within_deadline;

use crate::{Ctx, build};

/// Periodic re-check, a backstop for missed events.
const RESYNC: Duration = Duration::from_secs(600);

/// One reconcile, bounded by the shared deadline.
pub async fn reconcile(tg: Arc<TableGroup>, ctx: Arc<Ctx>) -> Result<Action, ChildError> {
    let object = tg.clone();
    within_deadline(object.as_ref(), reconcile_unbounded(tg, ctx)).await
}

async fn reconcile_unbounded(tg: Arc<TableGroup>, ctx: Arc<Ctx>) -> Result<Action, ChildError> {
    let _timer = ctx.metrics.reconcile_started();
    if tg.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let tg_ref = tg.as_ref();
    let desired = build::shards(tg_ref);
    for shard in &desired {
        ctx.applier
            .apply_owned(Some(&ctx.events), tg_ref, &ctx.state.shards, shard)
            .await?;
    }
    let owned: Vec<Arc<Shard>> = controlled_children(&ctx.state.shards, tg_ref);
    let owned_refs: Vec<&Shard> = owned.iter().map(Arc::as_ref).collect();
    let status = build::status(
        tg_ref,
        &desired,
        &owned_refs,
        k8s_openapi::jiff::Timestamp::now(),
    );
    ctx.applier
        .apply_status(tg_ref, tg.status.as_ref(), &status)
        .await
        .map_err(|e| ChildError::new(tg_ref, Failure::Status(Box::new(e))))?;
    ctx.succeeded(tg_ref);
    Ok(Action::requeue(RESYNC))
}
