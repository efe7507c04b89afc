//! The multigateway Service clients connect to.

use super::*;

pub fn gateway_service(cell: &Cell) -> Service {
    Service {
        metadata: child_meta(
            cell,
            &naming::gateway(&cell.name_any()),
            component_labels(cell, component::MULTIGATEWAY),
        ),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(cell, component::MULTIGATEWAY)),
            ports: Some(vec![
                service_port("postgres", GATEWAY_PG_PORT),
                service_port("postgres-ro", GATEWAY_PG_REPLICA_PORT),
                service_port("grpc", GATEWAY_GRPC_PORT),
                service_port("http", GATEWAY_HTTP_PORT),
            ]),
            ..Default::default()
        }),
        status: None,
    }
}
