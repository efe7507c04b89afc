//! Template resolution: from a MultigresCluster and the DeploymentTemplates it names, the exact name,
//! labels and spec of every child. Pure and deterministic: the same input gives byte-identical output.

pub mod defaults;
pub mod merge;
pub mod postgres_parameters;
mod renewal;
pub mod resources;
mod tls;
mod topology_tls;

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cell::{CellImages, CellSpec, CellTopoServer};
use crate::cluster::{
    DurabilityPolicy, MultigresCluster, MultigresClusterSpec, QuorumType, TableGroupConfig,
};
use crate::common::{
    ComponentConfig, CredentialsRef, ExternalTopoServer, GlobalTopologyRef, Images, PoolConfig,
    PoolSettings, PoolSpec, PostgresExporter, PullPolicy, ResolvedComponent, ShardImages, TlsRef,
    TopoServerConfig, TopoServerSettings, TopologyReconciliation,
};
use crate::labels::{self, component};
use crate::shard::ShardSpec;
use crate::tablegroup::{ShardTemplate, TableGroupSpec};
use crate::template::{DeploymentTemplateSpec, TemplateSection};
use crate::toposerver::TopoServerSpec;
use crate::{Cell, TableGroup, multigres, naming};
use merge::{layer, merge_layers};
pub use renewal::{
    CertificateRenewal, IssuedCertificates, IssuedSecret, SecretNames, certificate_renewal,
    fresh_expiry, renewed_secret,
};
pub use topology_tls::TopologyTls;

/// A cross-object problem that stops resolution. Messages name the field and what to fix.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "{field} names DeploymentTemplate '{template}', which does not exist in the cluster's namespace"
    )]
    MissingTemplate { field: String, template: String },
    #[error("{field} names DeploymentTemplate '{template}', which has no '{section}' section")]
    MissingSection {
        field: String,
        template: String,
        section: &'static str,
    },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

/// The DeploymentTemplates of a namespace, by name.
pub type Templates = BTreeMap<String, DeploymentTemplateSpec>;

/// One child object to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Child<S> {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub spec: S,
}

/// The multiadmin Deployment's inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedMultiAdmin {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub spec: ResolvedComponent,
    pub image: String,
    pub image_pull_policy: Option<PullPolicy>,
    pub image_pull_secrets: Vec<k8s_openapi::api::core::v1::LocalObjectReference>,
}

/// A Database record for the global topology.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseRegistration {
    pub name: String,
    pub cells: Vec<String>,
    pub durability: DurabilityPolicy,
    /// Its backup repository, resolved (an S3 key prefix filled in); none: the default
    /// filesystem repository.
    pub backup: Option<crate::BackupConfig>,
}

/// Everything a MultigresCluster becomes.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedCluster {
    pub global_topology: GlobalTopologyRef,
    pub global_topo_server: Option<Child<TopoServerSpec>>,
    pub multiadmin: ResolvedMultiAdmin,
    pub cells: Vec<Child<CellSpec>>,
    pub table_groups: Vec<Child<TableGroupSpec>>,
    pub databases: Vec<DatabaseRegistration>,
    pub credentials: CredentialsRef,
    /// True when the user named no Secret, so the operator generates one.
    pub generate_credentials: bool,
    /// The cluster's TLS Secret, which the operator issues; none: plaintext.
    pub tls: Option<TlsRef>,
    /// The Secret with which every (external) topology server is dialed, when the user named one.
    pub external_topology_tls: Option<String>,
    /// When the managed topology certificates are due for renewal (Unix seconds), once decided
    /// ([`ResolvedCluster::resolve_topology_tls`]).
    pub topology_renew_at: Option<i64>,
    /// When the cluster's own certificate is due for renewal (Unix seconds), once decided
    /// ([`ResolvedCluster::resolve_cluster_certificate`]).
    pub tls_renew_at: Option<i64>,
}

/// Names of every DeploymentTemplate the cluster references, sorted.
pub fn referenced_templates(spec: &MultigresClusterSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut add = |name: &Option<String>| names.extend(name.iter().cloned());
    if let Some(topo) = &spec.global_topo_server {
        add(&topo.deployment_template);
    }
    if let Some(admin) = &spec.multiadmin {
        add(&admin.deployment_template);
    }
    for cell in &spec.cells {
        for block in [&cell.spec.multigateway, &cell.spec.multiorch]
            .into_iter()
            .flatten()
        {
            add(&block.deployment_template);
        }
        if let Some(topo) = &cell.spec.topo_server {
            add(&topo.deployment_template);
        }
    }
    for tg in spec.databases.iter().flat_map(|db| &db.spec.tablegroups) {
        for pool in &tg.shard_template.pools {
            add(&pool.deployment_template);
        }
    }
    names
}

/// Resolves a whole cluster against the templates of its namespace.
pub fn resolve_cluster(
    cluster: &MultigresCluster,
    templates: &Templates,
) -> Result<ResolvedCluster, ResolveError> {
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    let namespace = cluster.metadata.namespace.as_deref().unwrap_or_default();
    let ctx = Context {
        cluster: name,
        namespace,
        spec: &cluster.spec,
        templates,
    };
    let images = cluster.spec.images.clone().unwrap_or_default();

    let (global_topology, global_topo_server) = ctx.global_topology()?;
    let credentials = cluster
        .spec
        .credentials
        .clone()
        .unwrap_or_else(|| CredentialsRef::named(naming::credentials_secret(name)));

    let multiadmin = ResolvedMultiAdmin {
        name: naming::multiadmin(name),
        labels: labels::for_component(name, component::MULTIADMIN),
        spec: ctx.component(
            cluster.spec.multiadmin.as_ref(),
            TemplateSection::Multiadmin,
            defaults::multiadmin(),
            "spec.multiadmin",
        )?,
        image: image_or(&images.multiadmin, defaults::MULTIGRES_IMAGE),
        image_pull_policy: images.image_pull_policy,
        image_pull_secrets: images.image_pull_secrets.clone().unwrap_or_default(),
    };

    let mut cells = Vec::with_capacity(cluster.spec.cells.len());
    for (index, _) in cluster.spec.cells.iter().enumerate() {
        cells.push(ctx.cell(index, &images, &global_topology)?);
    }

    let cell_servers: Vec<_> = cells.iter().map(|c| c.spec.topo_server.clone()).collect();
    let external_topology_tls =
        topology_tls::external_topology_secret(&cluster.spec, &cell_servers)?;

    let mut table_groups = Vec::new();
    for (db_index, db) in cluster.spec.databases.iter().enumerate() {
        for (tg_index, tg) in db.spec.tablegroups.iter().enumerate() {
            let field = format!("spec.databases[{db_index}].spec.tablegroups[{tg_index}]");
            table_groups.push(ctx.table_group(
                &db.name,
                tg,
                &field,
                &images,
                &global_topology,
                &credentials,
            )?);
        }
    }

    let pairs: Vec<(&str, &str)> = table_groups
        .iter()
        .map(|t| (t.spec.database.as_str(), t.spec.table_group.as_str()))
        .collect();
    let names = naming::table_groups(name, &pairs);
    for (table_group, name) in table_groups.iter_mut().zip(names) {
        table_group.name = name;
    }

    let databases = cluster
        .spec
        .databases
        .iter()
        .map(|db| DatabaseRegistration {
            name: db.name.clone(),
            cells: db
                .spec
                .tablegroups
                .iter()
                .flat_map(|tg| tg.shard_template.pools.iter().map(|p| p.cell.clone()))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            durability: db
                .spec
                .durability_policy
                .clone()
                .unwrap_or(DurabilityPolicy {
                    quorum_type: QuorumType::AtLeastN,
                    required_count: defaults::DEFAULT_REQUIRED_COUNT,
                }),
            backup: backup_config(&cluster.spec, namespace, name, &db.name),
        })
        .collect();

    Ok(ResolvedCluster {
        global_topology,
        global_topo_server,
        multiadmin,
        cells,
        table_groups,
        databases,
        generate_credentials: cluster.spec.credentials.is_none(),
        credentials,
        tls: ctx.tls(),
        external_topology_tls,
        topology_renew_at: None,
        tls_renew_at: None,
    })
}

struct Context<'a> {
    cluster: &'a str,
    namespace: &'a str,
    spec: &'a MultigresClusterSpec,
    templates: &'a Templates,
}

impl Context<'_> {
    /// The section of a named template, or an error naming the field that references it.
    fn section(
        &self,
        template: &str,
        section: TemplateSection,
        field: &str,
    ) -> Result<Value, ResolveError> {
        let found = self
            .templates
            .get(template)
            .ok_or_else(|| ResolveError::MissingTemplate {
                field: format!("{field}.deploymentTemplate"),
                template: template.to_string(),
            })?;
        let value = match section {
            TemplateSection::ShardPool => layer(found.shard_pool.as_ref()),
            TemplateSection::Multiorch => layer(found.multiorch.as_ref()),
            TemplateSection::Multigateway => layer(found.multigateway.as_ref()),
            TemplateSection::Multiadmin => layer(found.multiadmin.as_ref()),
            TemplateSection::ManagedTopoServer => layer(found.managed_topo_server.as_ref()),
        };
        if value.is_null() {
            return Err(ResolveError::MissingSection {
                field: format!("{field}.deploymentTemplate"),
                template: template.to_string(),
                section: section.field(),
            });
        }
        Ok(value)
    }

    fn template_layer(
        &self,
        template: Option<&String>,
        section: TemplateSection,
        field: &str,
    ) -> Result<Value, ResolveError> {
        template.map_or(Ok(Value::Null), |t| self.section(t, section, field))
    }

    fn component(
        &self,
        block: Option<&ComponentConfig>,
        section: TemplateSection,
        defaults: Value,
        field: &str,
    ) -> Result<ResolvedComponent, ResolveError> {
        let logging = layer(self.spec.logging.as_ref());
        let Some(block) = block else {
            return finish(&[defaults, logging], field);
        };
        let template = self.template_layer(block.deployment_template.as_ref(), section, field)?;
        finish(
            &[
                defaults,
                logging,
                template,
                layer(Some(&block.inline)),
                layer(block.overrides.as_ref()),
            ],
            field,
        )
    }

    fn topo_settings(
        &self,
        block: &TopoServerConfig,
        field: &str,
    ) -> Result<TopoServerSettings, ResolveError> {
        let template = self.template_layer(
            block.deployment_template.as_ref(),
            TemplateSection::ManagedTopoServer,
            field,
        )?;
        finish(
            &[
                defaults::topo_server(),
                template,
                layer(block.managed_spec.as_ref()),
                layer(block.overrides.as_ref()),
            ],
            field,
        )
    }

    fn global_topology(
        &self,
    ) -> Result<(GlobalTopologyRef, Option<Child<TopoServerSpec>>), ResolveError> {
        let block = self.spec.global_topo_server.clone().unwrap_or_default();
        let default_root = naming::default_root(self.namespace, self.cluster, "global");
        if let Some(external) = &block.external {
            let root_path = external
                .root_path
                .clone()
                .or(block.root_path.clone())
                .unwrap_or(default_root);
            let topology = GlobalTopologyRef {
                root_path,
                client_service_name: None,
                address: external.address.clone(),
                tls_secret_name: None,
            };
            return Ok((topology, None));
        }
        let settings = self.topo_settings(&block, "spec.globalTopoServer")?;
        let root_path = block
            .root_path
            .clone()
            .or(settings.root_path.clone())
            .unwrap_or(default_root);
        let name = naming::global_topo_server(self.cluster);
        let client_service = naming::topo_client_service(&name);
        let topology = GlobalTopologyRef {
            root_path: root_path.clone(),
            address: naming::topo_address(&client_service, self.namespace),
            client_service_name: Some(client_service),
            tls_secret_name: None,
        };
        let labels = labels::with(
            labels::for_component(self.cluster, component::TOPO_SERVER),
            labels::TOPO_SCOPE,
            "global",
        );
        let spec = topo_server_spec(settings, root_path, None);
        Ok((topology, Some(Child { name, labels, spec })))
    }

    fn cell(
        &self,
        index: usize,
        images: &Images,
        global: &GlobalTopologyRef,
    ) -> Result<Child<CellSpec>, ResolveError> {
        let config = &self.spec.cells[index];
        let field = format!("spec.cells[{index}].spec");
        let multigateway = self.component(
            config.spec.multigateway.as_ref(),
            TemplateSection::Multigateway,
            defaults::multigateway(),
            &format!("{field}.multigateway"),
        )?;
        let multiorch = self.component(
            config.spec.multiorch.as_ref(),
            TemplateSection::Multiorch,
            defaults::multiorch(),
            &format!("{field}.multiorch"),
        )?;
        let topo_server = self.cell_topology(
            &config.name,
            config.spec.topo_server.as_ref(),
            &format!("{field}.topoServer"),
        )?;
        let databases = self
            .spec
            .databases
            .iter()
            .filter(|db| {
                db.spec.tablegroups.iter().any(|tg| {
                    tg.shard_template
                        .pools
                        .iter()
                        .any(|p| p.cell == config.name)
                })
            })
            .map(|db| db.name.clone())
            .collect();
        let spec = CellSpec {
            name: config.name.clone(),
            images: CellImages {
                multigateway: image_or(&images.multigateway, defaults::MULTIGRES_IMAGE),
                multiorch: image_or(&images.multiorch, defaults::MULTIGRES_IMAGE),
                image_pull_policy: images.image_pull_policy,
                image_pull_secrets: images.image_pull_secrets.clone().unwrap_or_default(),
            },
            multigateway,
            multiorch,
            global_topo_server: global.clone(),
            topo_server,
            all_cells: self.spec.cells.iter().map(|c| c.name.clone()).collect(),
            databases,
            topology_reconciliation: TopologyReconciliation::default(),
            placement: config.spec.placement.clone(),
            gateway_service: config.spec.gateway_service.clone(),
            tls: self.tls(),
        };
        let labels = labels::with(
            labels::for_component(self.cluster, component::CELL),
            labels::CELL,
            &config.name,
        );
        Ok(Child {
            name: naming::cell(self.cluster, &config.name),
            labels,
            spec,
        })
    }

    fn cell_topology(
        &self,
        cell: &str,
        block: Option<&TopoServerConfig>,
        field: &str,
    ) -> Result<CellTopoServer, ResolveError> {
        let Some(block) = block else {
            return Ok(CellTopoServer::default());
        };
        let default_root = naming::default_root(self.namespace, self.cluster, cell);
        if let Some(external) = &block.external {
            let root_path = external
                .root_path
                .clone()
                .or(block.root_path.clone())
                .unwrap_or(default_root);
            return Ok(CellTopoServer {
                external: Some(ExternalTopoServer {
                    root_path: Some(root_path),
                    ..external.clone()
                }),
                managed_spec: None,
            });
        }
        if block.deployment_template.is_none() && block.managed_spec.is_none() {
            return Ok(CellTopoServer::default());
        }
        let mut settings = self.topo_settings(block, field)?;
        settings.root_path = Some(
            block
                .root_path
                .clone()
                .or(settings.root_path.clone())
                .unwrap_or(default_root),
        );
        Ok(CellTopoServer {
            external: None,
            managed_spec: Some(settings),
        })
    }

    fn table_group(
        &self,
        database: &str,
        config: &TableGroupConfig,
        field: &str,
        images: &Images,
        global: &GlobalTopologyRef,
        credentials: &CredentialsRef,
    ) -> Result<Child<TableGroupSpec>, ResolveError> {
        let mut pools = Vec::with_capacity(config.shard_template.pools.len());
        for (index, pool) in config.shard_template.pools.iter().enumerate() {
            pools.push(self.pool(pool, &format!("{field}.shardTemplate.pools[{index}]"))?);
        }
        let spec = TableGroupSpec {
            database: database.to_string(),
            table_group: config.name.clone(),
            images: ShardImages {
                multipooler: image_or(&images.multipooler, defaults::MULTIGRES_IMAGE),
                postgres: image_or(&images.postgres, defaults::POSTGRES_IMAGE),
                image_pull_policy: images.image_pull_policy,
                image_pull_secrets: images.image_pull_secrets.clone().unwrap_or_default(),
            },
            partitioning: config.partitioning.clone(),
            shard_template: ShardTemplate { pools },
            global_topo_server: global.clone(),
            credentials: credentials.clone(),
            pvc_deletion_policy: self.spec.pvc_deletion_policy.clone().unwrap_or_default(),
            postgres_exporter: self.postgres_exporter(),
            tls: self.tls(),
            backup: self.backup(database),
        };
        let labels = table_group_labels(self.cluster, database, &config.name);
        Ok(Child {
            // Two that read the same take a hash: `naming::table_groups`, in `resolve_cluster`.
            name: naming::table_group(self.cluster, database, &config.name),
            labels,
            spec,
        })
    }

    /// The database's backup repository: its own, else the cluster's (none: the default
    /// filesystem repository, so clusters that set neither keep their pods unchanged).
    fn backup(&self, database: &str) -> Option<crate::BackupConfig> {
        backup_config(self.spec, self.namespace, self.cluster, database)
    }

    /// The cluster's TLS Secret unless `spec.tls.enabled` is false.
    fn tls(&self) -> Option<TlsRef> {
        let config = self.spec.tls.clone().unwrap_or_default();
        (config.enabled != Some(false)).then(|| TlsRef {
            secret_name: naming::tls_secret(self.cluster),
            require_client_tls: config.require_client_tls.unwrap_or(false),
            revision: None,
        })
    }

    /// The exporter sidecar unless `spec.observability.postgresExporter.enabled` is false; the
    /// built-in resources only where the user set none.
    fn postgres_exporter(&self) -> Option<PostgresExporter> {
        let config = self
            .spec
            .observability
            .as_ref()
            .and_then(|o| o.postgres_exporter.clone())
            .unwrap_or_default();
        if config.enabled == Some(false) {
            return None;
        }
        let resources = config.resources.or_else(|| {
            serde_json::from_value(defaults::postgres_exporter()["resources"].clone()).ok()
        });
        Some(PostgresExporter {
            image: image_or(&config.image, defaults::POSTGRES_EXPORTER_IMAGE),
            resources,
        })
    }

    fn pool(&self, pool: &PoolConfig, field: &str) -> Result<PoolSpec, ResolveError> {
        let cell = self
            .spec
            .cells
            .iter()
            .find(|c| c.name == pool.cell)
            .ok_or_else(|| ResolveError::Invalid {
                field: format!("{field}.cell"),
                message: format!(
                    "names cell '{}', which is not declared in spec.cells",
                    pool.cell
                ),
            })?;
        let template = self.template_layer(
            pool.deployment_template.as_ref(),
            TemplateSection::ShardPool,
            field,
        )?;
        // The cluster's logging is the default of both containers of the pool.
        let logging = match self.spec.logging.as_ref().map(|l| layer(Some(l))) {
            Some(l) => serde_json::json!({"postgres": l, "multipooler": l}),
            None => Value::Null,
        };
        let settings: PoolSettings = finish(
            &[
                defaults::shard_pool(pool.pool_type),
                logging,
                template,
                layer(Some(&pool.inline)),
                layer(pool.overrides.as_ref()),
            ],
            field,
        )?;
        let postgres_parameters = settings.postgres_parameters.unwrap_or_default();
        postgres_parameters::check(&postgres_parameters).map_err(|message| {
            ResolveError::Invalid {
                field: format!("{field}.postgresParameters"),
                message,
            }
        })?;
        Ok(PoolSpec {
            pool_type: pool.pool_type,
            cell: pool.cell.clone(),
            replicas: settings.replicas.unwrap_or_default(),
            affinity: settings.affinity,
            data_volume_claim_template: settings.data_volume_claim_template.unwrap_or_default(),
            postgres: settings.postgres.unwrap_or_default(),
            multipooler: settings.multipooler.unwrap_or_default(),
            postgres_parameters,
            placement: cell.spec.placement.clone(),
            scheduling: settings.scheduling,
        })
    }
}

/// Merges defaults (the first layer) with the layers above them, then checks resources.
fn finish<T: DeserializeOwned>(layers: &[Value], field: &str) -> Result<T, ResolveError> {
    let invalid = |message: String| ResolveError::Invalid {
        field: field.to_string(),
        message,
    };
    let Some((defaults, higher)) = layers.split_first() else {
        return merge_layers(layers).map_err(|e| invalid(e.to_string()));
    };
    let mut defaults = defaults.clone();
    resources::yield_default_resources(&mut defaults, higher);
    let mut merged = Value::Object(Default::default());
    for layer in std::iter::once(&defaults).chain(higher) {
        merge::merge_into(&mut merged, layer);
    }
    if let Some((path, resource, request, limit)) = resources::request_above_limit(&merged) {
        return Err(invalid(format!(
            "{path}: the {resource} request {request} is above its limit {limit}"
        )));
    }
    serde_json::from_value(merged).map_err(|e| invalid(e.to_string()))
}

fn topo_server_spec(
    settings: TopoServerSettings,
    root_path: String,
    placement: Option<crate::Placement>,
) -> TopoServerSpec {
    TopoServerSpec {
        root_path,
        image: image_or(&settings.image, defaults::ETCD_IMAGE),
        image_pull_policy: settings.image_pull_policy,
        image_pull_secrets: settings.image_pull_secrets.unwrap_or_default(),
        replicas: settings.replicas.unwrap_or(defaults::TOPO_SERVER_REPLICAS),
        affinity: settings.affinity,
        resources: settings.resources,
        data_volume_claim_template: settings.data_volume_claim_template.unwrap_or_default(),
        placement,
        scheduling: settings.scheduling,
        tls: None,
    }
}

/// Table groups that exist keep their names, whatever the naming of this version would give
/// (docs/operations.md "Names"): a new name would be a new TableGroup, new Shards and new pods on
/// new, empty claims. `existing` is (name, database, table group) of the cluster's TableGroups.
pub fn keep_existing_names(
    table_groups: &mut [Child<TableGroupSpec>],
    existing: &[(&str, &str, &str)],
) {
    for table_group in table_groups {
        let spec = &table_group.spec;
        if let Some((name, _, _)) = existing
            .iter()
            .find(|(_, db, tg)| *db == spec.database && *tg == spec.table_group)
        {
            table_group.name = name.to_string();
        }
    }
}

pub fn table_group_labels(
    cluster: &str,
    database: &str,
    table_group: &str,
) -> BTreeMap<String, String> {
    let labels = labels::with(
        labels::for_component(cluster, component::TABLEGROUP),
        labels::DATABASE,
        database,
    );
    labels::with(labels, labels::TABLEGROUP, table_group)
}

/// The local TopoServer a Cell asks for, if it asks for one.
pub fn local_topo_server(cell: &Cell) -> Option<Child<TopoServerSpec>> {
    let settings = cell.spec.topo_server.managed_spec.clone()?;
    let cluster = cell.metadata.labels.as_ref()?.get(labels::CLUSTER)?.clone();
    let root_path = settings.root_path.clone().unwrap_or_default();
    let labels = labels::with(
        labels::with(
            labels::for_component(&cluster, component::TOPO_SERVER),
            labels::TOPO_SCOPE,
            "cell",
        ),
        labels::CELL,
        &cell.spec.name,
    );
    let name = naming::local_topo_server(&cluster, &cell.spec.name);
    let mut spec = topo_server_spec(settings, root_path, cell.spec.placement.clone());
    // A cell's etcd speaks what the cluster's topology speaks: one process dials all of them alike.
    // Its member certificate is renewed with the cluster's client certificate (same expiry).
    if let Some(client) = &cell.spec.global_topo_server.tls_secret_name {
        let secret_name = match naming::topology_tls_expiry(&cluster, client) {
            Some(not_after) => naming::topo_server_tls_secret_until(&name, not_after),
            None => naming::topo_server_tls_secret(&name),
        };
        spec.tls = Some(crate::TopoServerTls { secret_name });
    }
    Some(Child { name, labels, spec })
}

/// The Shards of a TableGroup: one per partition, named `<tablegroup>-<index>`.
pub fn shards(table_group: &TableGroup) -> Vec<Child<ShardSpec>> {
    let name = table_group.metadata.name.as_deref().unwrap_or_default();
    let cluster = table_group
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::CLUSTER))
        .cloned()
        .unwrap_or_default();
    let spec = &table_group.spec;
    (0..spec.partitioning.shards.max(0))
        .map(|index| {
            let shard_name = index.to_string();
            let labels = table_group_labels(&cluster, &spec.database, &spec.table_group);
            let mut labels = labels::with(labels, labels::SHARD, &shard_name);
            labels.insert(labels::COMPONENT.into(), component::SHARD.into());
            Child {
                name: naming::shard(name, &shard_name),
                labels,
                spec: ShardSpec {
                    database: spec.database.clone(),
                    table_group: spec.table_group.clone(),
                    key_range: multigres::multigres_shard_id(
                        &shard_name,
                        spec.partitioning.shards.max(0) as u32,
                    ),
                    shard_name,
                    images: spec.images.clone(),
                    pools: spec.shard_template.pools.clone(),
                    global_topo_server: spec.global_topo_server.clone(),
                    credentials: spec.credentials.clone(),
                    pvc_deletion_policy: spec.pvc_deletion_policy.clone(),
                    postgres_exporter: spec.postgres_exporter.clone(),
                    tls: spec.tls.clone(),
                    backup: spec.backup.clone(),
                },
            }
        })
        .collect()
}

/// The backup repository of `database` in a cluster's spec: the database's own, else the
/// cluster's `spec.backup`, with an S3 key prefix filled in (one repository per database).
pub fn backup_config(
    spec: &crate::MultigresClusterSpec,
    namespace: &str,
    cluster: &str,
    database: &str,
) -> Option<crate::BackupConfig> {
    let mut config = spec
        .databases
        .iter()
        .find(|d| d.name == database)
        .and_then(|d| d.spec.backup.clone())
        .or_else(|| spec.backup.clone())?;
    if let Some(s3) = config.s3.as_mut() {
        s3.key_prefix = Some(s3.key_prefix_for(namespace, cluster, database));
    }
    Some(config)
}

/// An image the user set, else the pinned default.
fn image_or(set: &Option<String>, default: &str) -> String {
    set.clone().unwrap_or_else(|| default.to_string())
}
