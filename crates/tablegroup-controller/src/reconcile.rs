//! One reconcile of a TableGroup: build the Shards (pure, [`crate::build`]), apply the ones that
//! changed, write the status when it changed.

use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use kube::runtime::controller::Action;
use multigres_api::{Shard, TableGroup};
use multigres_runtime::apply::controlled_children;
use multigres_runtime::conditions::{self, AVAILABLE, PROGRESSING};
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
        ctx.state
            .planned
            .settled(&multigres_runtime::error::object_name(tg.as_ref()));
        return Ok(Action::await_change());
    }
    let tg_ref = tg.as_ref();
    let desired = build::shards(tg_ref);
    let before = conditions::of(tg.status.as_ref());
    for shard in &desired {
        let events = ctx.events.children(before);
        ctx.applier
            .apply_owned(Some(events), tg_ref, &ctx.state.shards, shard)
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
    let wrote = ctx
        .applier
        .apply_status(tg_ref, tg.status.as_ref(), &status)
        .await
        .map_err(|e| ChildError::new(tg_ref, Failure::Status(Box::new(e))))?;
    // Once Available, a TableGroup whose Shards progress (a roll, an edit) turns on purpose: the
    // Shards' own Events say what happens. Its first build is reported when it completes.
    let key = multigres_runtime::error::object_name(tg_ref);
    let changing = owned_refs
        .iter()
        .any(|s| conditions::is_true(conditions::of(s.status.as_ref()), PROGRESSING));
    let planned = changing && conditions::is_true(before, AVAILABLE);
    ctx.state.planned.observe(&key, planned);
    if wrote && !ctx.state.planned.quiet(&key) {
        let after = &status.conditions;
        ctx.events.availability(tg_ref, before, after).await;
    }
    if !changing && conditions::is_true(&status.conditions, AVAILABLE) {
        ctx.state.planned.settled(&key);
    }
    ctx.succeeded(tg_ref);
    Ok(Action::requeue(RESYNC))
}
