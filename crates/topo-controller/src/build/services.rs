//! The client Service Multigres dials, and the headless peer Service members find each other by.

use super::*;

pub fn client_service(ts: &TopoServer) -> Service {
    let name = ts.name_any();
    Service {
        metadata: child_meta(ts, &naming::topo_client_service(&name), child_labels(ts)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(&name)),
            ports: Some(vec![service_port("client", CLIENT_PORT)]),
            ..Default::default()
        }),
        status: None,
    }
}

pub fn peer_service(ts: &TopoServer) -> Service {
    let name = ts.name_any();
    Service {
        metadata: child_meta(ts, &naming::topo_peer_service(&name), child_labels(ts)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Members must find each other before any is ready, or the first quorum never forms.
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&name)),
            ports: Some(vec![service_port("peer", PEER_PORT)]),
            ..Default::default()
        }),
        status: None,
    }
}
