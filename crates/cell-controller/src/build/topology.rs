//! Where the cell's topology lives: validated from the Cell, with the record it registers.

use super::*;

/// Where the cell's own topology lives, and how it is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologyKind {
    /// The cell's records live on the global server, under `<globalRoot>/<cell>`.
    Global,
    /// A TopoServer the cell controller creates (its name).
    ManagedLocal(String),
    /// An etcd the operator does not manage.
    External,
}

/// The cell's topology: the record to register and where the global topology is.
#[derive(Clone, Debug, PartialEq)]
pub struct CellTopology {
    pub kind: TopologyKind,
    /// `clustermetadata.Cell{name, server_addresses, root}` for `<globalRoot>/cells/<cell>/Cell`.
    pub record: pb::Cell,
    pub global_root: String,
    pub global_address: String,
    /// The cluster's topology servers speak TLS.
    pub transport: multigres_topology::Transport,
}

/// Validates the Cell and works out its topology. Errors name the field to fix.
pub fn topology(cell: &Cell) -> Result<CellTopology, String> {
    topology_of(cell, resolve::local_topo_server(cell).as_ref())
}

/// [`topology`], with the cell's local TopoServer as already resolved.
pub(super) fn topology_of(
    cell: &Cell,
    local: Option<&resolve::Child<TopoServerSpec>>,
) -> Result<CellTopology, String> {
    let spec = &cell.spec;
    let namespace = cell.namespace().unwrap_or_default();
    let global = &spec.global_topo_server;
    if global.address.trim().is_empty() {
        return Err("spec.globalTopoServer.address is empty".into());
    }
    if global.root_path.trim_matches('/').is_empty() {
        return Err("spec.globalTopoServer.rootPath is empty".into());
    }
    let cluster = cluster_of(cell);
    let default_root = || {
        naming::default_root(
            &namespace,
            cluster.as_deref().unwrap_or_default(),
            &spec.name,
        )
    };
    let (kind, server_addresses, root) = if let Some(managed) = &spec.topo_server.managed_spec {
        let local = local.ok_or_else(|| {
            format!(
                "spec.topoServer.managedSpec needs the label {} to name the local TopoServer",
                labels::CLUSTER
            )
        })?;
        let address = naming::topo_address(&naming::topo_client_service(&local.name), &namespace);
        let root = managed.root_path.clone().unwrap_or_else(default_root);
        (
            TopologyKind::ManagedLocal(local.name.clone()),
            vec![address],
            root,
        )
    } else if let Some(external) = &spec.topo_server.external {
        let root = external.root_path.clone().unwrap_or_else(default_root);
        (TopologyKind::External, vec![external.address.clone()], root)
    } else {
        let root = multigres_topology::cell_root_on_global(&global.root_path, &spec.name);
        (TopologyKind::Global, vec![global.address.clone()], root)
    };
    let record = pb::Cell {
        name: spec.name.clone(),
        server_addresses,
        root,
    };
    multigres_topology::validate_cell(&record).map_err(|e| e.to_string())?;
    Ok(CellTopology {
        kind,
        record,
        global_root: global.root_path.clone(),
        global_address: global.address.clone(),
        transport: multigres_runtime::topology_tls::transport(global),
    })
}

/// The topology flags every Multigres component takes.
pub(super) fn topo_flags(cell: &Cell) -> Vec<String> {
    cell.spec
        .global_topo_server
        .flags()
        .into_iter()
        .map(|(flag, value)| format!("{flag}={value}"))
        .collect()
}
