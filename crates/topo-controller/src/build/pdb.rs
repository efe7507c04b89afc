//! The PodDisruptionBudget that keeps a quorum through voluntary disruptions.

use super::*;

pub fn pdb(ts: &TopoServer) -> PodDisruptionBudget {
    let name = ts.name_any();
    PodDisruptionBudget {
        metadata: child_meta(ts, &name, child_labels(ts)),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(quorum(ts.spec.replicas))),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}
