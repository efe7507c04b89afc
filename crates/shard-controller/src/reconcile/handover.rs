//! How a roll disrupts as little as it can: a roll slot per table group (at most N Shards roll at
//! once), and a planned switchover through multiadmin before the primary's pod goes
//! (docs/reliability.md).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use multigres_runtime::slots::{Slot, Slots};
use multigres_topology::{AddressMapping, admin};

use super::*;
use crate::plan::Plan;
use crate::topology::shard_key;

/// After a switchover was asked for, how long to wait for multiorch to elect a new primary before
/// asking again.
const SWITCHOVER_WAIT: Duration = Duration::from_secs(30);

/// What the shard controller needs to hand a primary over and to pace rolls.
pub struct Handover {
    pub slots: Slots,
    pub mapping: AddressMapping,
    pub timeout: Duration,
    /// Per Shard: the pod a switchover was last asked for, and when.
    asked: Mutex<HashMap<String, (String, Instant)>>,
    /// Per Shard: the last record of a requested switchover this process wrote.
    pub(super) requested: Mutex<HashMap<String, multigres_api::LastSwitchover>>,
}

impl Handover {
    pub fn new(slots: Slots, mapping: AddressMapping, timeout: Duration) -> Self {
        Self {
            slots,
            mapping,
            timeout,
            asked: Mutex::new(HashMap::new()),
            requested: Mutex::new(HashMap::new()),
        }
    }
}

/// Asks the cluster's multiadmin to move the Shard's primary away (`SwitchPrimary`); the pooler it
/// demoted. Both the roll's switchovers and those users request go through here.
pub(super) async fn ask_multiadmin(
    shard: &Shard,
    handover: &Handover,
    reason: &str,
) -> Result<String, admin::AdminError> {
    let ns = shard.namespace().unwrap_or_default();
    let cluster = shard
        .labels()
        .get(labels::CLUSTER)
        .cloned()
        .unwrap_or_default();
    let address = naming::multiadmin_address(&cluster, &ns);
    let shard_key = shard_key(shard);
    admin::switch_primary(
        &address,
        &handover.mapping,
        shard_key,
        reason,
        handover.timeout,
    )
    .await
}

/// The Shard's table group, as its roll slots are named: its controller, whose name may be an
/// earlier naming's (docs/operations.md "Names").
fn table_group_resource(shard: &Shard) -> String {
    if let Some(owner) = shard
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "TableGroup")
    {
        return owner.name.clone();
    }
    let cluster = shard
        .labels()
        .get(labels::CLUSTER)
        .cloned()
        .unwrap_or_default();
    naming::table_group(&cluster, &shard.spec.database, &shard.spec.table_group)
}

/// Takes (or renews) a roll slot while the Shard rolls and gives it back once it is done. Without a
/// slot, the roll's disruptions wait; creates and scale-downs go on.
pub(super) async fn pace_roll(shard: &Shard, ctx: &Ctx, key: &str, plan: &mut Plan) {
    let slots = &ctx.state.handover.slots;
    if !plan.rolling {
        if let Err(error) = slots.release(key).await {
            tracing::warn!(shard = key, %error, "could not give back the roll slot");
        }
        return;
    }
    if !plan.disrupts_for_roll() && !slots.holds(key) {
        return;
    }
    let ns = shard.namespace().unwrap_or_default();
    let table_group = table_group_resource(shard);
    let group = naming::roll_slot_group(&ns, &table_group);
    match slots.acquire(&group, key).await {
        Ok(Slot::Held) => {}
        Ok(Slot::Busy(holders)) => plan.hold_roll(&format!(
            "waiting for a roll slot of table group {table_group} (rolling: {})",
            holders.join(", ")
        )),
        Err(error) => {
            tracing::warn!(shard = key, %error, "could not read the roll slots");
            plan.hold_roll("waiting: the roll slots cannot be read");
        }
    }
}

/// Asks multiadmin to move the primary away from `pod` (once per [`SWITCHOVER_WAIT`]); the pod
/// goes in a later reconcile, when the topology names another primary.
pub(super) async fn switch_over(shard: &Shard, ctx: &Ctx, key: &str, pod: &str, plan: &mut Plan) {
    let handover = &ctx.state.handover;
    let recent = handover
        .asked
        .lock()
        .expect("handover")
        .get(key)
        .is_some_and(|(asked_for, at)| asked_for == pod && at.elapsed() < SWITCHOVER_WAIT);
    if recent {
        plan.message = format!("waiting for a new primary after the switchover away from {pod}");
        return;
    }
    let reason = format!("multigres-operator: {}", plan.message);
    tracing::info!(
        shard = key,
        pod,
        "asking multiadmin for a planned switchover"
    );
    match ask_multiadmin(shard, handover, &reason).await {
        Ok(old) => {
            handover
                .asked
                .lock()
                .expect("handover")
                .insert(key.to_string(), (pod.to_string(), Instant::now()));
            let note = format!(
                "Planned switchover: multiadmin quiesced the primary {pod} (pooler {old}); \
                 it is replaced once another primary is elected"
            );
            ctx.events.normal(shard, "Switchover", &note).await;
            plan.message =
                format!("waiting for a new primary after the switchover away from {pod}");
        }
        Err(error) => {
            tracing::warn!(shard = key, pod, %error, "switchover not started");
            let note = format!("Switchover away from {pod} not started, the pod stays: {error}");
            ctx.events.warning(shard, "SwitchoverFailed", &note).await;
            plan.message = format!("the primary {pod} stays: switchover not started ({error})");
        }
    }
}
