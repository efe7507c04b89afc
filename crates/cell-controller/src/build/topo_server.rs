//! The cell's own TopoServer, when it asks for a managed one.

use super::*;

/// The local TopoServer (owned by the Cell), when the Cell asks for a managed one.
pub fn local_topo_server(cell: &Cell) -> Option<TopoServer> {
    resolve::local_topo_server(cell).map(|child| topo_server_of(cell, child))
}

/// The TopoServer object of a resolved local TopoServer.
pub(super) fn topo_server_of(cell: &Cell, child: resolve::Child<TopoServerSpec>) -> TopoServer {
    TopoServer {
        metadata: child_meta(cell, &child.name, child.labels),
        spec: child.spec,
        status: None,
    }
}
