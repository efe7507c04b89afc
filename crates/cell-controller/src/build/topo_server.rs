//! The cell's own TopoServer, when it asks for a managed one.

use super::*;

/// The local TopoServer (owned by the Cell), when the Cell asks for a managed one.
pub fn local_topo_server(cell: &Cell) -> Option<TopoServer> {
    let child = resolve::local_topo_server(cell)?;
    Some(TopoServer {
        metadata: child_meta(cell, &child.name, child.labels),
        spec: child.spec,
        status: None,
    })
}
