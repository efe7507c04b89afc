//! The Service `<cluster>-gateways` over the multigateways of every cell: for clients that need no
//! particular cell, exposed as the cluster asks.

use super::*;

pub fn gateways_service(cluster: &MultigresCluster) -> Service {
    let name = cluster_name(cluster);
    let selector = BTreeMap::from([
        (labels::CLUSTER.to_string(), name.clone()),
        (
            labels::COMPONENT.to_string(),
            component::MULTIGATEWAY.to_string(),
        ),
    ]);
    let mut service = Service {
        metadata: child_meta(
            cluster,
            &naming::cluster_gateways(&name),
            labels::for_component(&name, component::CLUSTER_GATEWAYS),
        ),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(multigres_runtime::builders::service_ports(
                &multigres::GATEWAY_SERVICE_PORTS,
            )),
            ..Default::default()
        }),
        ..Default::default()
    };
    GatewayExposure::apply_to(cluster.spec.gateway_service.as_ref(), &mut service);
    service
}
