//! Cell status, computed from what the controller observed: the Deployments in its cache, the
//! TopoServers' conditions, and what registration in the topology did this reconcile.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use multigres_api::cell::CellTopologyStatus;
use multigres_api::{Cell, CellStatus, TopoServer, Tristate, naming};
use multigres_runtime::conditions::{self, AVAILABLE, ConditionUpdate};

use crate::build::{CellTopology, TopologyKind, watch_targets};
use crate::topology::Registration;

pub const TOPOLOGY_REGISTERED: &str = "TopologyRegistered";

/// What status is computed from.
pub struct Observed<'a> {
    pub gateway: Option<&'a Deployment>,
    pub multiorch: Option<&'a Deployment>,
    /// The TopoServer holding the cell's records: the local one, or the managed global one.
    pub topo_server: Option<&'a TopoServer>,
    pub registration: &'a Registration,
}

fn ready_replicas(d: Option<&Deployment>) -> (i32, i32) {
    let status = d.and_then(|d| d.status.as_ref());
    (
        status.and_then(|s| s.replicas).unwrap_or_default(),
        status.and_then(|s| s.ready_replicas).unwrap_or_default(),
    )
}

/// multiorch counts as available when its Deployment reports Available and a pod is ready.
fn multiorch_available(d: Option<&Deployment>) -> bool {
    let (_, ready) = ready_replicas(d);
    let condition = d
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Available" && c.status == "True")
        });
    condition && ready >= 1
}

fn topo_server_available(ts: Option<&TopoServer>) -> Option<bool> {
    ts.map(|ts| {
        ts.status
            .as_ref()
            .is_some_and(|s| conditions::is_true(&s.conditions, AVAILABLE))
    })
}

/// Whether the cell's local TopoServer has a quorum (`Available`).
pub fn local_topo_server_available(ts: Option<&TopoServer>) -> bool {
    topo_server_available(ts).unwrap_or(false)
}

pub fn compute(
    cell: &Cell,
    topology: &CellTopology,
    observed: &Observed<'_>,
    now: Timestamp,
) -> CellStatus {
    let current = cell.status.clone().unwrap_or_default();
    let generation = cell.metadata.generation;
    let (gateway_replicas, gateway_ready) = ready_replicas(observed.gateway);
    let serves_databases = watch_targets(cell).is_some();
    let orch_available = serves_databases && multiorch_available(observed.multiorch);

    let mut conditions = current.conditions;
    let available = gateway_ready >= 1 && (orch_available || !serves_databases);
    let available_update = if available {
        let orch = if serves_databases {
            "multiorch is available".to_string()
        } else {
            format!(
                "multiorch is scaled to 0: cell {} serves no database (no pool of any database is \
                 placed in it)",
                cell.spec.name
            )
        };
        ConditionUpdate::new(
            AVAILABLE,
            true,
            "Ready",
            format!("{gateway_ready}/{gateway_replicas} multigateway pods ready; {orch}"),
        )
    } else if gateway_ready < 1 {
        ConditionUpdate::new(
            AVAILABLE,
            false,
            "GatewayNotReady",
            format!("no multigateway pod is ready ({gateway_ready}/{gateway_replicas})"),
        )
    } else {
        ConditionUpdate::new(
            AVAILABLE,
            false,
            "MultiorchNotReady",
            format!(
                "multiorch Deployment {} is not available",
                naming::multiorch(&cell.name_any())
            ),
        )
    };
    conditions::set(&mut conditions, available_update, generation, now);

    let registration_update = match observed.registration {
        Registration::Disabled => ConditionUpdate::new(
            TOPOLOGY_REGISTERED,
            false,
            "RegistrationDisabled",
            "spec.topologyReconciliation.registerCell is false",
        ),
        Registration::WaitingForTopoServer(name) => ConditionUpdate::new(
            TOPOLOGY_REGISTERED,
            false,
            "WaitingForTopoServer",
            format!("waiting for the cell's TopoServer {name} to have a quorum before registering"),
        ),
        Registration::Registered { key, .. } => ConditionUpdate::new(
            TOPOLOGY_REGISTERED,
            true,
            "Registered",
            format!("Cell record at {key} on {}", topology.global_address),
        ),
        Registration::Failed {
            unreachable,
            message,
        } => ConditionUpdate::new(
            TOPOLOGY_REGISTERED,
            false,
            if *unreachable {
                "TopologyUnreachable"
            } else {
                "RegistrationFailed"
            },
            format!("{message}; retrying with backoff"),
        ),
    };
    conditions::set(&mut conditions, registration_update, generation, now);

    let reached = match observed.registration {
        Registration::Registered { .. } => Tristate::True,
        Registration::Failed {
            unreachable: true, ..
        } => Tristate::False,
        _ => Tristate::Unknown,
    };
    let topo_available = match &topology.kind {
        TopologyKind::ManagedLocal(_) => {
            Tristate::from(local_topo_server_available(observed.topo_server))
        }
        TopologyKind::Global => topo_server_available(observed.topo_server)
            .map(Tristate::from)
            .unwrap_or(reached),
        TopologyKind::External => reached,
    };
    let registered = match observed.registration {
        Registration::Disabled => None,
        Registration::Registered { .. } => Some(Tristate::True),
        _ => Some(Tristate::False),
    };
    CellStatus {
        observed_generation: generation,
        conditions,
        gateway_replicas,
        gateway_ready_replicas: gateway_ready,
        gateway_service_name: Some(naming::gateway(&cell.name_any())),
        multiorch_available: Tristate::from(orch_available),
        topo_server: CellTopologyStatus {
            root_path: Some(topology.record.root.clone()),
            address: Some(topology.record.server_addresses.join(",")),
            registered,
            available: Some(topo_available),
        },
    }
}
