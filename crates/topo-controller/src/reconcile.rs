//! One TopoServer reconcile: build the children (pure), apply them against the caches (Services
//! first: members need their DNS names; then the PDB, then the workload), then the status, written
//! only when it changed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use multigres_api::{TopoServer, naming};
use multigres_runtime::conditions;
use multigres_runtime::error::{ChildError, Failure};
use multigres_runtime::run::within_deadline;

use crate::{Ctx, build, status};

/// Periodic re-check, a backstop for missed events.
const RESYNC: Duration = Duration::from_secs(300);

/// One reconcile, bounded by the shared deadline.
pub async fn reconcile(ts: Arc<TopoServer>, ctx: Arc<Ctx>) -> Result<Action, ChildError> {
    let object = ts.clone();
    within_deadline(object.as_ref(), reconcile_unbounded(ts, ctx)).await
}

async fn reconcile_unbounded(ts: Arc<TopoServer>, ctx: Arc<Ctx>) -> Result<Action, ChildError> {
    let _timer = ctx.metrics.reconcile_started();
    if ts.meta().deletion_timestamp.is_some() {
        // Garbage collection removes the children; the PVCs stay (retention policy Retain).
        return Ok(Action::await_change());
    }
    if !ctx.state.caches.wait(Duration::from_secs(30)).await {
        return Err(ChildError::new(ts.as_ref(), Failure::CacheNotReady));
    }
    if let Some(tls) = &ts.spec.tls {
        member_certificate(&ts, &ctx, &tls.secret_name).await?;
    }
    let mut children = build::children(&ts);
    let (state, applier) = (&ctx.state, &ctx.applier);
    let ts_ref = ts.as_ref();
    let before = conditions::of(ts.status.as_ref());
    let events = ctx.events.children(before);
    let key = ObjectRef::new(&ts.name_any()).within(&ts.namespace().unwrap_or_default());
    // A StatefulSet's claim template cannot change: the one it was created with stays, and the
    // members' claims are grown directly (`volumes`).
    let existing = state.statefulsets.get(&key);
    if let (Some(created), Some(spec)) = (
        existing.as_deref().and_then(|e| e.spec.as_ref()),
        children.statefulset.spec.as_mut(),
    ) {
        spec.volume_claim_templates = created.volume_claim_templates.clone();
    }
    applier
        .apply_owned(
            Some(events),
            ts_ref,
            &state.services,
            &children.client_service,
        )
        .await?;
    applier
        .apply_owned(
            Some(events),
            ts_ref,
            &state.services,
            &children.peer_service,
        )
        .await?;
    applier
        .apply_owned(Some(events), ts_ref, &state.pdbs, &children.pdb)
        .await?;
    applier
        .apply_owned(
            Some(events),
            ts_ref,
            &state.statefulsets,
            &children.statefulset,
        )
        .await?;

    let volumes = crate::volumes::grow(ts_ref, &ctx, existing.as_deref()).await?;
    let observed = state.statefulsets.get(&key);
    let status = status::compute(&ts, observed.as_deref(), &volumes, Timestamp::now());
    applier
        .apply_status_reported(&ctx.events, ts_ref, ts.status.as_ref(), &status, &[])
        .await
        .map_err(|e| ChildError::new(ts_ref, Failure::Status(Box::new(e))))?;
    ctx.succeeded(ts_ref);
    Ok(Action::requeue(RESYNC))
}

/// Issues the members' certificate once, from the operator's topology CA. Without the CA an
/// existing Secret is all there is; a missing one is an error naming the flag.
async fn member_certificate(ts: &TopoServer, ctx: &Ctx, name: &str) -> Result<(), ChildError> {
    let secrets = &ctx.state.secrets;
    let Some(ca) = &ctx.state.topology_ca else {
        let ns = ts.namespace().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        return match secrets.exists(&api, &ns, name).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ChildError::new(
                ts,
                Failure::Tls(format!(
                    "spec.tls: Secret {name} is missing and the topo controller runs without \
                     --topology-ca-dir, so it cannot issue it"
                )),
            )),
            Err(e) => Err(ChildError::kube(ts, format!("checking Secret {name}"), e)),
        };
    };
    let (topo, namespace) = (ts.name_any(), ts.namespace().unwrap_or_default());
    // A renewable certificate's name says until when it is valid (docs/security.md, "Renewal").
    let not_after = naming::topo_server_tls_expiry(&topo, name);
    let created = secrets
        .issue_once(&ctx.client, ts, name, || {
            let (common_name, sans) = (
                build::member_common_name(&topo),
                build::member_sans(&topo, &namespace),
            );
            let issued = match not_after {
                Some(not_after) => ca.sign_until(&common_name, &sans, not_after)?,
                None => ca.sign(&common_name, &sans)?,
            };
            Ok(build::tls_secret(ts, name, &issued))
        })
        .await?;
    if created {
        let what = "the etcd members' certificate";
        ctx.events.secret_created(ts, name, what).await;
    }
    Ok(())
}
