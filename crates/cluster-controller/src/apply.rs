//! The cluster's writes: children by server-side apply (skipped when the cache already matches),
//! pruning of children no longer desired, the generated credentials Secret, Database records in the
//! global topology, and the status. Nothing here decides what the objects are: `build` did.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use multigres_api::{GlobalTopologyRef, MultigresCluster, MultigresClusterStatus};
use multigres_runtime::Context;
use multigres_runtime::apply::controlled_by_other;
use multigres_runtime::conditions;
use multigres_runtime::events::ChildEvents;
use multigres_runtime::pki::Authority;
use multigres_runtime::topology_tls::transport;
use multigres_topology::{Claim, Dialer, TopoError};
use serde_json::json;

use crate::aggregator::StatusFeed;
use crate::build::{self, Desired, REGISTERED_DATABASES};
use crate::dereference::{Existing, Stores, by_name};
use crate::error::{Error, Result};
use crate::retention::Retention;
use crate::status::Topology;

/// How long the certificates from the operator's CA are valid by default: a year, renewed after
/// eight months.
pub const DEFAULT_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// What every reconcile of this controller shares.
pub struct State {
    pub stores: Stores,
    /// Reaches the global topologies; one client per server, reused.
    pub topology: Dialer,
    /// The operator's topology CA, which signs each cluster's topology client certificate and
    /// from which each cluster's own CA is derived; none: new clusters' topology is plaintext and
    /// their own certificate comes from a throw-away CA, never renewed.
    pub topology_ca: Option<Arc<Authority>>,
    /// How long the certificates it issues from `topology_ca` are valid; renewed a third of it
    /// before they expire (`--topology-certificate-validity`).
    pub certificate_validity: Duration,
    /// Where the controllers run (`--lease-namespace`, the chart's release namespace): the
    /// cluster's NetworkPolicies let it reach the topology and multiadmin.
    pub operator_namespace: String,
    /// With the status aggregator on, the reconcile reports its findings here instead of writing
    /// status (see `aggregator`).
    pub status_feed: Option<Arc<StatusFeed>>,
    /// Which of the Prometheus operator's kinds are served (`monitoring`).
    pub monitoring: Arc<crate::monitoring::Served>,
    /// The credentials and TLS Secrets it creates, known without reading them.
    pub secrets: multigres_runtime::once::Secrets,
    /// Whether every cache has listed once: before that, a missing child may only be unlisted
    /// (and building it again, under another name, would duplicate it).
    pub caches: Option<multigres_runtime::caches::CachesReady>,
}

impl State {
    pub fn new(
        stores: Stores,
        topology: Dialer,
        topology_ca: Option<Arc<Authority>>,
        operator_namespace: String,
    ) -> Self {
        Self {
            stores,
            topology,
            topology_ca,
            certificate_validity: DEFAULT_CERTIFICATE_VALIDITY,
            operator_namespace,
            status_feed: None,
            monitoring: Arc::default(),
            secrets: Default::default(),
            caches: None,
        }
    }

    /// What discovery says of the Prometheus operator's kinds (`monitoring::rediscover` keeps it).
    pub fn with_monitoring(mut self, served: Arc<crate::monitoring::Served>) -> Self {
        self.monitoring = served;
        self
    }

    /// Certificates from the operator's CA valid for `validity` (`--topology-certificate-validity`).
    pub fn with_certificate_validity(mut self, validity: Duration) -> Self {
        self.certificate_validity = validity;
        self
    }

    /// Reconciles wait for `caches` to have listed once.
    pub fn with_caches(mut self, caches: multigres_runtime::caches::CachesReady) -> Self {
        self.caches = Some(caches);
        self
    }

    /// Waits up to 30 s for the caches; false while they are still syncing.
    pub async fn caches_synced(&self) -> bool {
        match &self.caches {
            Some(caches) => caches.wait(Duration::from_secs(30)).await,
            None => true,
        }
    }

    /// Status goes through `feed` (the aggregator is on).
    pub fn with_status_feed(mut self, feed: Option<Arc<StatusFeed>>) -> Self {
        self.status_feed = feed;
        self
    }
}

pub type Ctx = Context<State>;

/// Names of desired children already controlled by another object: applying would steal them.
pub fn conflicts(stores: &Stores, cluster: &MultigresCluster, desired: &Desired) -> Vec<String> {
    let ns = cluster.namespace().unwrap_or_default();
    let mut found = Vec::new();
    let mut check = |kind: &str, taken: Option<bool>, name: String| {
        if taken == Some(true) {
            found.push(format!("{kind} {ns}/{name}"));
        }
    };
    if let Some(t) = &desired.topo_server {
        let name = t.name_any();
        let other =
            by_name(&stores.topo_servers, &ns, &name).map(|o| controlled_by_other(&*o, cluster));
        check("TopoServer", other, name);
    }
    for c in &desired.cells {
        let name = c.name_any();
        let other = by_name(&stores.cells, &ns, &name).map(|o| controlled_by_other(&*o, cluster));
        check("Cell", other, name);
    }
    for t in &desired.table_groups {
        let name = t.name_any();
        let other =
            by_name(&stores.table_groups, &ns, &name).map(|o| controlled_by_other(&*o, cluster));
        check("TableGroup", other, name);
    }
    let name = desired.multiadmin_deployment.name_any();
    let other = by_name(&stores.deployments, &ns, &name).map(|o| controlled_by_other(&*o, cluster));
    check("Deployment", other, name);
    for service in [&desired.multiadmin_service, &desired.gateways_service] {
        let name = service.name_any();
        let other =
            by_name(&stores.services, &ns, &name).map(|o| controlled_by_other(&*o, cluster));
        check("Service", other, name);
    }
    for policy in &desired.network_policies {
        let name = policy.name_any();
        let other = by_name(&stores.network_policies, &ns, &name)
            .map(|o| controlled_by_other(&*o, cluster));
        check("NetworkPolicy", other, name);
    }
    found
}

/// Applies every child in order: the topology server first (everything dials it), then multiadmin's
/// Service and Deployment, the Cells, the TableGroups, the Service over every cell's gateways. A child the API server refuses as invalid
/// does not stop the others: its refusal is returned (`<kind> <name>: <message>`) for the status.
pub async fn children(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    desired: &Desired,
) -> Result<Vec<String>> {
    let ns = cluster.namespace().unwrap_or_default();
    let stores = &ctx.state.stores;
    let mut refused = Vec::new();
    // First, so that no pod of the cluster is ever reachable beyond its policies.
    for policy in &desired.network_policies {
        let cached = by_name(&stores.network_policies, &ns, &policy.name_any());
        one(ctx, cluster, cached.as_deref(), policy, &mut refused).await?;
    }
    if let Some(topo) = &desired.topo_server {
        let cached = by_name(&stores.topo_servers, &ns, &topo.name_any());
        one(ctx, cluster, cached.as_deref(), topo, &mut refused).await?;
    }
    let service = &desired.multiadmin_service;
    let cached = by_name(&stores.services, &ns, &service.name_any());
    one(ctx, cluster, cached.as_deref(), service, &mut refused).await?;
    let deployment = &desired.multiadmin_deployment;
    let cached = by_name(&stores.deployments, &ns, &deployment.name_any());
    one(ctx, cluster, cached.as_deref(), deployment, &mut refused).await?;
    for cell in &desired.cells {
        let cached = by_name(&stores.cells, &ns, &cell.name_any());
        one(ctx, cluster, cached.as_deref(), cell, &mut refused).await?;
    }
    for tg in &desired.table_groups {
        let cached = by_name(&stores.table_groups, &ns, &tg.name_any());
        one(ctx, cluster, cached.as_deref(), tg, &mut refused).await?;
    }
    let service = &desired.gateways_service;
    let cached = by_name(&stores.services, &ns, &service.name_any());
    one(ctx, cluster, cached.as_deref(), service, &mut refused).await?;
    Ok(refused)
}

async fn one<K>(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    cached: Option<&K>,
    desired: &K,
    refused: &mut Vec<String>,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + serde::Serialize + serde::de::DeserializeOwned + Clone,
    K: Resource<Scope = kube::core::NamespaceResourceScope> + std::fmt::Debug,
{
    match ctx
        .applier
        .apply_reported(child_events(ctx, cluster), cluster, cached, desired)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => match multigres_runtime::apply::refused(&e) {
            Some(message) => {
                refused.push(format!(
                    "{} {}: {message}",
                    K::kind(&()),
                    desired.name_any()
                ));
                Ok(())
            }
            None => Err(e.into()),
        },
    }
}

/// Deletes the cluster's children that are no longer desired (only those it controls).
pub async fn prune(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    existing: &Existing,
    desired: &Desired,
    retention: &Retention,
) -> Result<()> {
    let mut keep = desired.names();
    // TableGroups hold data: the ones the spec dropped stay unless the user confirmed their deletion.
    keep.table_groups.extend(retention.kept_names());
    let (applier, events) = (&ctx.applier, &ctx.events);
    applier
        .prune(
            events,
            cluster,
            refs(&existing.table_groups),
            &keep.table_groups,
        )
        .await?;
    applier
        .prune(events, cluster, refs(&existing.cells), &keep.cells)
        .await?;
    applier
        .prune(
            events,
            cluster,
            refs(&existing.topo_servers),
            &keep.topo_servers,
        )
        .await?;
    applier
        .prune(
            events,
            cluster,
            refs(&existing.deployments),
            &keep.deployments,
        )
        .await?;
    applier
        .prune(events, cluster, refs(&existing.services), &keep.services)
        .await?;
    applier
        .prune(
            events,
            cluster,
            refs(&existing.network_policies),
            &keep.network_policies,
        )
        .await?;
    Ok(())
}

fn refs<K>(list: &[std::sync::Arc<K>]) -> Vec<&K> {
    list.iter().map(std::sync::Arc::as_ref).collect()
}

/// Creates the credentials Secret once. An existing Secret is never rewritten, whoever made it; the
/// password is never logged. A Secret deleted once the cluster has children is not generated again:
/// a new password would not match the one the data was initialised with, so the cluster says so
/// (returns the problem) and waits for the user to restore it.
pub async fn credentials(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    name: &str,
    has_data: bool,
) -> Result<Option<String>> {
    let ns = cluster.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    if has_data {
        if ctx.state.secrets.exists(&api, &ns, name).await? {
            return Ok(None);
        }
        return Ok(Some(format!(
            "Secret {ns}/{name} with the Postgres credentials is gone, but the cluster's TableGroups \
             (and their data) exist: a new password would not match the data. Restore the Secret \
             (keys username, password), or name another in spec.credentials"
        )));
    }
    let created = ctx
        .state
        .secrets
        .create_once(&api, &ns, name, || {
            Ok::<_, Error>(build::credentials_secret(
                cluster,
                name,
                &build::generate_password(),
            ))
        })
        .await?;
    if created {
        let what = "generated Postgres credentials";
        ctx.events.secret_created(cluster, name, what).await;
    }
    Ok(None)
}

/// Issues the cluster's TLS Secret once (docs/security.md). A name that carries its expiry gets a
/// certificate of the cluster's CA, derived from the operator's (the same in every process, so
/// renewals chain to the CA pods trust); any other name a CA of its own, forgotten once it has
/// signed (without the operator's CA, and clusters from before renewal). Never read back: an
/// existing Secret, whoever made it, is kept as it is.
pub async fn tls(ctx: &Ctx, cluster: &MultigresCluster, name: &str) -> Result<()> {
    let cluster_name = cluster.name_any();
    let not_after = multigres_api::naming::tls_expiry(&cluster_name, name);
    let sans = build::tls_sans(cluster);
    let server_name = multigres_api::multigres::GRPC_SERVER_NAME;
    let ca_name = format!(
        "Multigres {}/{cluster_name} CA",
        cluster.namespace().unwrap_or_default()
    );
    let root = ctx.state.topology_ca.clone();
    let scope = format!("cluster/{}", cluster.uid().unwrap_or_default());
    issue_once(
        ctx,
        cluster,
        name,
        "the cluster's TLS certificate",
        || match (root, not_after) {
            (Some(root), Some(not_after)) => {
                root.derive(&scope, &ca_name)?
                    .sign_until(server_name, &sans, not_after)
            }
            _ => multigres_runtime::pki::issue(&ca_name, server_name, &sans),
        },
    )
    .await
}

/// Issues, once, the client certificate with which the cluster's Multigres components dial its
/// topology servers, signed by the operator's topology CA (docs/security.md, "Topology"). Without
/// the CA (the topology stays TLS once created) an existing Secret is all there is.
pub async fn topology_tls(ctx: &Ctx, cluster: &MultigresCluster, name: &str) -> Result<()> {
    let Some(ca) = ctx.state.topology_ca.clone() else {
        return Ok(());
    };
    // A renewable certificate's name says until when it is valid (docs/security.md, "Renewal").
    let not_after = multigres_api::naming::topology_tls_expiry(&cluster.name_any(), name);
    issue_once(
        ctx,
        cluster,
        name,
        "the topology client certificate",
        || match not_after {
            Some(not_after) => ca.sign_until(TOPOLOGY_CLIENT_NAME, &[], not_after),
            None => ca.sign(TOPOLOGY_CLIENT_NAME, &[]),
        },
    )
    .await
}

/// Creates the certificate Secret `name` unless it exists (never reading it), with an Event naming
/// `what` when it does.
async fn issue_once<E: std::fmt::Display>(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    name: &str,
    what: &str,
    issue: impl FnOnce() -> Result<multigres_runtime::pki::IssuedTls, E>,
) -> Result<()> {
    let ns = cluster.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let created = ctx
        .state
        .secrets
        .create_once(&api, &ns, name, || {
            let issued = issue().map_err(|e| Error::Tls(e.to_string()))?;
            Ok::<_, Error>(build::tls_secret(cluster, name, &issued))
        })
        .await?;
    if created {
        ctx.events.secret_created(cluster, name, what).await;
    }
    Ok(())
}

/// The common name of the Multigres components' topology client certificate.
const TOPOLOGY_CLIENT_NAME: &str = "multigres-topology-client";

/// Applies the cluster's cert-manager Certificate (read by name: the kind may not be served). A kind
/// that is not served, or a Certificate the API server refuses, is returned as a refusal for the
/// status, naming `spec.tls.certManager`.
/// The cluster's cert-manager Certificate as the API server has it.
pub enum IssuedCertificate {
    /// The cluster does not ask cert-manager.
    NotAsked,
    /// cert-manager's Certificate kind is not served.
    NotServed,
    Existing(Option<Box<build::Certificate>>),
}

impl IssuedCertificate {
    /// cert-manager's issuance of the certificate, once it has issued one.
    pub fn revision(&self) -> Option<i64> {
        match self {
            IssuedCertificate::Existing(Some(c)) => c.status.as_ref()?.revision,
            _ => None,
        }
    }
}

/// Reads the cluster's Certificate by name (the kind may not be served, so it is not cached).
pub async fn issued_certificate(
    ctx: &Ctx,
    cluster: &MultigresCluster,
) -> Result<IssuedCertificate> {
    let asked = cluster
        .spec
        .tls
        .as_ref()
        .is_some_and(|t| t.enabled != Some(false) && t.cert_manager.is_some());
    if !asked {
        return Ok(IssuedCertificate::NotAsked);
    }
    let ns = cluster.namespace().unwrap_or_default();
    let api: Api<build::Certificate> = Api::namespaced(ctx.client.clone(), &ns);
    match api.get_opt(&cluster.name_any()).await {
        Ok(existing) => Ok(IssuedCertificate::Existing(existing.map(Box::new))),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(IssuedCertificate::NotServed),
        Err(e) => Err(e.into()),
    }
}

pub async fn certificate(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    desired: &build::Certificate,
    issued: &IssuedCertificate,
) -> Result<Option<String>> {
    let name = desired.name_any();
    let existing = match issued {
        IssuedCertificate::Existing(existing) => existing.as_deref(),
        IssuedCertificate::NotServed => return Ok(Some(not_served())),
        IssuedCertificate::NotAsked => None,
    };
    if existing.is_some_and(|e| controlled_by_other(e, cluster)) {
        return Ok(Some(format!(
            "Certificate {name}: already controlled by another object; it is left as it is"
        )));
    }
    match ctx
        .applier
        .apply_reported(child_events(ctx, cluster), cluster, existing, desired)
        .await
    {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Some(not_served())),
        Err(e) => match multigres_runtime::apply::refused(&e) {
            Some(message) => Ok(Some(format!(
                "Certificate {name} (spec.tls.certManager): {message}"
            ))),
            None => Err(e.into()),
        },
    }
}

fn not_served() -> String {
    "spec.tls.certManager: cert-manager's Certificate kind (cert-manager.io/v1) is not served; \
     install cert-manager, or remove certManager so that the operator issues the certificate"
        .to_string()
}

/// Registers every desired database in the global topology and deregisters the ones this cluster
/// registered before that are gone. The annotation listing registered databases is widened before
/// registering and narrowed after deregistering, so a crash in between never loses track of one.
pub async fn topology(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    global: &GlobalTopologyRef,
    desired: &Desired,
    retained: &BTreeSet<String>,
) -> Result<(Topology, Vec<String>)> {
    let object = format!(
        "MultigresCluster {}",
        multigres_runtime::run::object_key(cluster)
    );
    let wanted: BTreeSet<String> = desired.databases.iter().map(|d| d.name.clone()).collect();
    let registered = build::registered_databases(cluster);
    // Records of databases whose TableGroups are kept stay, unchanged, until those go too.
    let wanted: BTreeSet<String> = wanted
        .union(&registered.intersection(retained).cloned().collect())
        .cloned()
        .collect();
    let (root, transport) = (global.root_path.as_str(), transport(global));
    let addresses = std::slice::from_ref(&global.address);
    let client = match ctx.state.topology.client(addresses, transport).await {
        Ok(client) => client,
        Err(source) => return unreachable(object, source).map(|t| (t, Vec::new())),
    };
    let widened: BTreeSet<String> = registered.union(&wanted).cloned().collect();
    if widened != registered {
        annotate(ctx, cluster, &widened).await?;
    }
    // Records are this cluster's only where its owner marker says so (or, for records written
    // before markers existed, where its annotation lists them): others are never overwritten or
    // deleted, and are reported instead.
    let owner = database_owner(cluster);
    let mut foreign = Vec::new();
    let mut ours = wanted.clone();
    for db in &desired.databases {
        let adopt = registered.contains(&db.name);
        match client.register_database_as(root, db, &owner, adopt).await {
            Ok(Claim::Ours(_)) => {}
            Ok(Claim::Foreign(by)) => {
                ours.remove(&db.name);
                foreign.push(format!(
                    "Database record {:?} in the global topology at {root}: written by {by}, \
                     not by this cluster; it is left as it is (use another database name or rootPath)",
                    db.name
                ));
            }
            Err(source) => return unreachable(object, source).map(|t| (t, foreign)),
        }
    }
    for gone in registered.difference(&wanted) {
        match client
            .deregister_database_as(root, gone, &owner, true)
            .await
        {
            Ok(_) => {}
            Err(source) => return unreachable(object, source).map(|t| (t, foreign)),
        }
    }
    if widened != ours {
        annotate(ctx, cluster, &ours).await?;
    }
    Ok((Topology::Registered, foreign))
}

/// How this cluster marks the records it writes: namespace, name and uid (a recreated cluster of
/// the same name is another owner).
fn database_owner(cluster: &MultigresCluster) -> String {
    format!(
        "{}/{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any(),
        cluster.uid().unwrap_or_default()
    )
}

/// An unreachable topology is reported in status (the caller retries with backoff); other
/// topology errors are failures of the reconcile.
fn unreachable(object: String, source: multigres_topology::TopoError) -> Result<Topology> {
    if source.is_unreachable() || matches!(source, TopoError::NotAllowed(_)) {
        Ok(Topology::Unreachable(source.to_string()))
    } else {
        Err(Error::Topology { object, source })
    }
}

async fn annotate(ctx: &Ctx, cluster: &MultigresCluster, names: &BTreeSet<String>) -> Result<()> {
    let api: Api<MultigresCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"annotations": {REGISTERED_DATABASES: build::registered_value(names)}}});
    api.patch(
        &cluster.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Writes `status` by server-side apply, only when it differs from the cached one.
pub async fn status(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    status: &MultigresClusterStatus,
) -> Result<()> {
    let status = MultigresClusterStatus {
        last_backups: Default::default(),
        ..status.clone()
    };
    ctx.applier
        .apply_status_reported(
            &ctx.events,
            cluster,
            cluster.status.as_ref(),
            &status,
            MultigresClusterStatus::WRITTEN_BY_BACKUPS,
        )
        .await?;
    Ok(())
}

/// The Events for the cluster's children ([`multigres_runtime::events::Events::children`]).
pub fn child_events<'a>(ctx: &'a Ctx, cluster: &MultigresCluster) -> ChildEvents<'a> {
    ctx.events.children(conditions::of(cluster.status.as_ref()))
}
