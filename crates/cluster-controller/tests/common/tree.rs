//! The sample cluster's tree as the cluster controller should build it, and a wait for it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::{Client, ResourceExt};
use multigres_api::resolve::{ResolvedCluster, Templates, resolve_cluster};
use multigres_api::{Cell, MultigresCluster, TableGroup, TopoServer};
use multigres_e2e::wait_for;

use super::{WAIT, sample_templates};

pub fn resolved(namespace: &str, cluster: &MultigresCluster) -> ResolvedCluster {
    let templates: Templates = sample_templates(namespace)
        .into_iter()
        .map(|t| (t.name_any(), t.spec))
        .collect();
    let mut cluster = cluster.clone();
    cluster.metadata.namespace = Some(namespace.into());
    resolve_cluster(&cluster, &templates).expect("the sample resolves")
}

/// Waits until every child of the resolved tree exists with the resolved spec.
pub async fn wait_for_tree(client: &Client, ns: &str, expected: &ResolvedCluster) {
    let topo_servers: Api<TopoServer> = Api::namespaced(client.clone(), ns);
    if let Some(topo) = &expected.global_topo_server {
        wait_for(&topo_servers, &topo.name, WAIT, |t| t.spec == topo.spec)
            .await
            .unwrap();
    }
    let cells: Api<Cell> = Api::namespaced(client.clone(), ns);
    for cell in &expected.cells {
        wait_for(&cells, &cell.name, WAIT, |c| c.spec == cell.spec)
            .await
            .unwrap();
    }
    let tgs: Api<TableGroup> = Api::namespaced(client.clone(), ns);
    for tg in &expected.table_groups {
        wait_for(&tgs, &tg.name, WAIT, |t| t.spec == tg.spec)
            .await
            .unwrap();
    }
    let admin = &expected.multiadmin.name;
    wait_for(
        &Api::<Deployment>::namespaced(client.clone(), ns),
        admin,
        WAIT,
        |_| true,
    )
    .await
    .unwrap();
    wait_for(
        &Api::<Service>::namespaced(client.clone(), ns),
        admin,
        WAIT,
        |_| true,
    )
    .await
    .unwrap();
}
