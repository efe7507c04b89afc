//! PodDisruptionBudgets of multigateway and multiorch: a voluntary disruption (a node drain) takes
//! at most one pod of each at a time, so a cell keeps serving while its nodes are drained.

use super::*;

fn budget(cell: &Cell, name: String, component: &str) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: child_meta(cell, &name, component_labels(cell, component)),
        spec: Some(PodDisruptionBudgetSpec {
            // maxUnavailable (not minAvailable): a budget of a scalable Deployment that never
            // blocks a drain of a one-pod component, and follows replica changes by itself.
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(cell, component)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

pub fn gateway_pdb(cell: &Cell) -> PodDisruptionBudget {
    budget(
        cell,
        naming::gateway(&cell.name_any()),
        component::MULTIGATEWAY,
    )
}

pub fn multiorch_pdb(cell: &Cell) -> PodDisruptionBudget {
    budget(
        cell,
        naming::multiorch(&cell.name_any()),
        component::MULTIORCH,
    )
}
