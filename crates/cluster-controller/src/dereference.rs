//! What a cluster points at and what it already has, read from the controller's caches (never the
//! API): the DeploymentTemplates it names and its existing children.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use multigres_api::resolve::{Templates, referenced_templates};
use multigres_api::{Cell, DeploymentTemplate, MultigresCluster, TableGroup, TopoServer, labels};

/// The caches a reconcile reads.
#[derive(Clone)]
pub struct Stores {
    pub clusters: Store<MultigresCluster>,
    pub templates: Store<DeploymentTemplate>,
    pub topo_servers: Store<TopoServer>,
    pub cells: Store<Cell>,
    pub table_groups: Store<TableGroup>,
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub network_policies: Store<NetworkPolicy>,
}

/// A cluster's existing children, as cached.
#[derive(Clone, Debug, Default)]
pub struct Existing {
    pub topo_servers: Vec<Arc<TopoServer>>,
    pub cells: Vec<Arc<Cell>>,
    pub table_groups: Vec<Arc<TableGroup>>,
    pub deployments: Vec<Arc<Deployment>>,
    pub services: Vec<Arc<Service>>,
    pub network_policies: Vec<Arc<NetworkPolicy>>,
}

impl Existing {
    pub fn find<'a, K: kube::Resource>(list: &'a [Arc<K>], name: &str) -> Option<&'a K> {
        list.iter()
            .find(|o| o.meta().name.as_deref() == Some(name))
            .map(Arc::as_ref)
    }
}

/// The templates `cluster` names that exist in its namespace. Missing ones are simply absent:
/// resolution reports them with the field that names them.
pub fn templates(stores: &Stores, cluster: &MultigresCluster) -> Templates {
    let namespace = cluster.namespace().unwrap_or_default();
    referenced_templates(&cluster.spec)
        .into_iter()
        .filter_map(|name| {
            let key = ObjectRef::new(&name).within(&namespace);
            stores.templates.get(&key).map(|t| (name, t.spec.clone()))
        })
        .collect()
}

/// Objects of `store` in the cluster's namespace that carry its cluster label. (Prune additionally
/// checks the controller reference, so a stray label never gets anything deleted.)
fn of_cluster<K>(store: &Store<K>, cluster: &MultigresCluster) -> Vec<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let namespace = cluster.namespace();
    let name = cluster.name_any();
    store
        .state()
        .into_iter()
        .filter(|o| o.namespace() == namespace)
        .filter(|o| o.labels().get(labels::CLUSTER) == Some(&name))
        .collect()
}

pub fn existing(stores: &Stores, cluster: &MultigresCluster) -> Existing {
    Existing {
        topo_servers: of_cluster(&stores.topo_servers, cluster),
        cells: of_cluster(&stores.cells, cluster),
        table_groups: of_cluster(&stores.table_groups, cluster),
        deployments: of_cluster(&stores.deployments, cluster),
        services: of_cluster(&stores.services, cluster),
        network_policies: of_cluster(&stores.network_policies, cluster),
    }
}

/// The clusters of `template`'s namespace that name it: whom a template change concerns.
pub fn consumers_of(
    clusters: &Store<MultigresCluster>,
    template: &DeploymentTemplate,
) -> Vec<Arc<MultigresCluster>> {
    let namespace = template.namespace();
    let name = template.name_any();
    let mut found: Vec<_> = clusters
        .state()
        .into_iter()
        .filter(|c| c.namespace() == namespace)
        .filter(|c| referenced_templates(&c.spec).contains(&name))
        .collect();
    found.sort_by_key(|c| c.name_any());
    found
}

/// The cached object `namespace/name`, whoever owns it (for conflict checks and apply).
pub fn by_name<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}
