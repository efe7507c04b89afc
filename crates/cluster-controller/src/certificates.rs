//! Which certificates a cluster's children mount (docs/security.md, "Topology" and "Renewal"):
//! decided from what exists (the children carry the Secret names), renewed before they expire.

use std::time::Duration;

use kube::ResourceExt;
use multigres_api::resolve::{
    IssuedCertificates, IssuedSecret, ResolvedCluster, TopologyTls, certificate_renewal,
};
use multigres_api::{MultigresCluster, naming};
use multigres_runtime::apply::controlled_by;

use crate::apply::Ctx;
use crate::dereference::{self, Existing};
use crate::reconcile::RESYNC;

/// Whether the cluster's topology speaks TLS (`ResolvedCluster::topology_tls`); when it does, the
/// resolved tree says so. What exists decides for a cluster created before: its global TopoServer.
pub fn decide_topology_tls(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    resolved: &mut ResolvedCluster,
) -> TopologyTls {
    let global_name = naming::global_topo_server(&cluster.name_any());
    let existing = dereference::existing(&ctx.state.stores, cluster);
    let global =
        Existing::find(&existing.topo_servers, &global_name).filter(|t| controlled_by(*t, cluster));
    let existing_tls = global.map(|t| t.spec.tls.is_some());
    // The certificates the global TopoServer was given, kept until they are due for renewal.
    let issued = global.and_then(|t| {
        let secret = &t.spec.tls.as_ref()?.secret_name;
        Some(IssuedCertificates {
            not_after: naming::topo_server_tls_expiry(&global_name, secret),
            created: t.metadata.creation_timestamp.as_ref()?.0.as_second(),
        })
    });
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let validity = ctx.state.certificate_validity.as_secs() as i64;
    resolved.resolve_topology_tls(
        &cluster.name_any(),
        ctx.state.topology_ca.is_some(),
        existing_tls,
        certificate_renewal(issued, now, validity),
    )
}

/// The cluster's own certificate (gRPC mTLS, gateway TLS): the Secret its Cells mount, renewed
/// from the cluster's derived CA when the operator holds the topology CA. cert-manager's
/// certificate keeps its one Secret and its own renewal.
pub fn decide_cluster_certificate(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    resolved: &mut ResolvedCluster,
) {
    let by_cert_manager = cluster
        .spec
        .tls
        .as_ref()
        .is_some_and(|t| t.cert_manager.is_some());
    if by_cert_manager {
        return;
    }
    let existing = dereference::existing(&ctx.state.stores, cluster);
    // The oldest Cell: a Cell added later got the name in force then, which says less about when
    // a certificate from before renewal was issued.
    let issued = existing
        .cells
        .iter()
        .filter(|c| controlled_by(c.as_ref(), cluster))
        .filter_map(|c| {
            Some(IssuedSecret {
                name: &c.spec.tls.as_ref()?.secret_name,
                created: c.metadata.creation_timestamp.as_ref()?.0.as_second(),
            })
        })
        .min_by_key(|i| i.created);
    let renewal = ctx.state.topology_ca.is_some().then(|| {
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        (now, ctx.state.certificate_validity.as_secs() as i64)
    });
    resolved.resolve_cluster_certificate(&cluster.name_any(), issued, renewal);
}

/// When to reconcile the cluster again: at the latest when one of its certificates is due.
pub fn next_reconcile(resolved: &ResolvedCluster) -> Duration {
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    match resolved
        .topology_renew_at
        .into_iter()
        .chain(resolved.tls_renew_at)
        .min()
    {
        Some(renew_at) => RESYNC.min(Duration::from_secs((renew_at - now).max(1) as u64)),
        None => RESYNC,
    }
}
