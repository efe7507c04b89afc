//! MultigresClusterStatus <-> `multigres.operator.v1.ClusterStatus`, field by field and lossless in
//! both directions (tested), so the cluster controller writes exactly what the aggregator computed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use multigres_api::cluster::{
    CellSummary, DatabaseSummary, EtcdSummary, GlobalTopoServerStatus, MultiAdminSummary,
};
use multigres_api::{MultigresClusterStatus, Tristate};

use crate::proto;

pub fn tristate_to_proto(state: Tristate) -> proto::Tristate {
    match state {
        Tristate::True => proto::Tristate::True,
        Tristate::False => proto::Tristate::False,
        Tristate::Unknown => proto::Tristate::Unknown,
    }
}

/// Unspecified and unknown enum values read as Unknown.
pub fn tristate_from_proto(value: i32) -> Tristate {
    match proto::Tristate::try_from(value) {
        Ok(proto::Tristate::True) => Tristate::True,
        Ok(proto::Tristate::False) => Tristate::False,
        _ => Tristate::Unknown,
    }
}

pub fn status_to_proto(status: &MultigresClusterStatus) -> proto::ClusterStatus {
    proto::ClusterStatus {
        observed_generation: status.observed_generation,
        global_topo_server: status.global_topo_server.as_ref().map(|g| {
            proto::GlobalTopoServerStatus {
                etcd: Some(proto::EtcdSummary {
                    available: tristate_to_proto(g.etcd.available) as i32,
                }),
            }
        }),
        conditions: status.conditions.iter().map(condition_to_proto).collect(),
        cells: status
            .cells
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    proto::CellSummary {
                        gateway_available: tristate_to_proto(c.gateway_available) as i32,
                        multiorch_available: tristate_to_proto(c.multiorch_available) as i32,
                        topo_server_available: tristate_to_proto(c.topo_server_available) as i32,
                    },
                )
            })
            .collect(),
        databases: status
            .databases
            .iter()
            .map(|(name, d)| {
                (
                    name.clone(),
                    proto::DatabaseSummary {
                        desired_instances: d.desired_instances,
                        ready_instances: d.ready_instances,
                        serving_writes: tristate_to_proto(d.serving_writes) as i32,
                    },
                )
            })
            .collect(),
        multiadmin: status
            .multiadmin
            .as_ref()
            .map(|m| proto::MultiAdminSummary {
                available: tristate_to_proto(m.available) as i32,
                service_name: m.service_name.clone(),
            }),
        cell_count: status.cell_count,
        database_count: status.database_count,
        ready_instances_summary: status.ready_instances_summary.clone(),
    }
}

pub fn status_from_proto(status: &proto::ClusterStatus) -> MultigresClusterStatus {
    MultigresClusterStatus {
        observed_generation: status.observed_generation,
        global_topo_server: status
            .global_topo_server
            .as_ref()
            .map(|g| GlobalTopoServerStatus {
                etcd: EtcdSummary {
                    available: tristate_from_proto(g.etcd.as_ref().map_or(0, |e| e.available)),
                },
            }),
        conditions: status.conditions.iter().map(condition_from_proto).collect(),
        cells: status
            .cells
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    CellSummary {
                        gateway_available: tristate_from_proto(c.gateway_available),
                        multiorch_available: tristate_from_proto(c.multiorch_available),
                        topo_server_available: tristate_from_proto(c.topo_server_available),
                    },
                )
            })
            .collect(),
        databases: status
            .databases
            .iter()
            .map(|(name, d)| {
                (
                    name.clone(),
                    DatabaseSummary {
                        desired_instances: d.desired_instances,
                        ready_instances: d.ready_instances,
                        serving_writes: tristate_from_proto(d.serving_writes),
                    },
                )
            })
            .collect(),
        multiadmin: status.multiadmin.as_ref().map(|m| MultiAdminSummary {
            available: tristate_from_proto(m.available),
            service_name: m.service_name.clone(),
        }),
        cell_count: status.cell_count,
        database_count: status.database_count,
        ready_instances_summary: status.ready_instances_summary.clone(),
        // Written beside the aggregated status by the backup controller.
        last_backups: Default::default(),
    }
}

fn condition_to_proto(c: &Condition) -> proto::Condition {
    proto::Condition {
        r#type: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_transition_time: c.last_transition_time.0.to_string(),
        observed_generation: c.observed_generation,
    }
}

fn condition_from_proto(c: &proto::Condition) -> Condition {
    Condition {
        type_: c.r#type.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        // An unparsable time (a foreign server) becomes the epoch rather than failing the stream.
        last_transition_time: Time(c.last_transition_time.parse().unwrap_or_default()),
        observed_generation: c.observed_generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_lossless() {
        let mut status = MultigresClusterStatus {
            observed_generation: Some(7),
            global_topo_server: Some(GlobalTopoServerStatus {
                etcd: EtcdSummary {
                    available: Tristate::True,
                },
            }),
            conditions: vec![Condition {
                type_: "Available".into(),
                status: "False".into(),
                reason: "R".into(),
                message: "m".into(),
                last_transition_time: Time("2026-01-02T03:04:05Z".parse().unwrap()),
                observed_generation: Some(7),
            }],
            multiadmin: Some(MultiAdminSummary {
                available: Tristate::Unknown,
                service_name: "c-multiadmin".into(),
            }),
            cell_count: Some(2),
            database_count: Some(1),
            ready_instances_summary: Some("3/4".into()),
            ..Default::default()
        };
        status.cells.insert(
            "a".into(),
            CellSummary {
                gateway_available: Tristate::True,
                multiorch_available: Tristate::False,
                topo_server_available: Tristate::Unknown,
            },
        );
        status.databases.insert(
            "db".into(),
            DatabaseSummary {
                desired_instances: 4,
                ready_instances: 3,
                serving_writes: Tristate::False,
            },
        );
        assert_eq!(status_from_proto(&status_to_proto(&status)), status);
        assert_eq!(
            status_from_proto(&status_to_proto(&MultigresClusterStatus::default())),
            MultigresClusterStatus::default()
        );
    }

    #[test]
    fn unspecified_tristate_reads_as_unknown() {
        assert_eq!(tristate_from_proto(0), Tristate::Unknown);
        assert_eq!(tristate_from_proto(99), Tristate::Unknown);
    }
}
