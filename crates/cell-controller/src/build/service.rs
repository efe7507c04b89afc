//! The multigateway Service clients connect to, exposed as the Cell asks.

use super::*;

pub fn gateway_service(cell: &Cell) -> Service {
    let mut service = Service {
        metadata: child_meta(
            cell,
            &naming::gateway(&cell.name_any()),
            component_labels(cell, component::MULTIGATEWAY),
        ),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(cell, component::MULTIGATEWAY)),
            ports: Some(multigres_runtime::builders::service_ports(
                &multigres::GATEWAY_SERVICE_PORTS,
            )),
            ..Default::default()
        }),
        status: None,
    };
    GatewayExposure::apply_to(cell.spec.gateway_service.as_ref(), &mut service);
    service
}
