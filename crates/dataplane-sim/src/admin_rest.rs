//! SIMULATION: multiadmin's REST `GET /api/v1/poolers/{cell}/{name}/status` for `kubectl multigres
//! status`, under `/{namespace}/{cluster}` because one simulator plays every cluster's multiadmin.
//! The primary is the one the simulator elected; a standby's replay trails it by the bytes its pod
//! is annotated with ([`REPLAY_LAG_BYTES`]). Answers are canonical proto3 JSON, as multiadmin's.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use multigres_api::multigres::pooler_service_id;
use serde_json::json;

use super::{Handovers, PoolPod};

/// A pool pod annotated with this reports its replay that many bytes behind the primary.
pub const REPLAY_LAG_BYTES: &str = "simulation.multigres.com/replay-lag-bytes";

/// The primary's simulated WAL position.
const PRIMARY_LSN: u64 = 0x9_0000_0000;

#[derive(Clone)]
struct Rest {
    pods: Store<Pod>,
    state: Arc<Mutex<Handovers>>,
}

pub async fn serve(
    addr: SocketAddr,
    pods: Store<Pod>,
    state: Arc<Mutex<Handovers>>,
) -> anyhow::Result<()> {
    let app = axum::Router::new()
        .route(
            "/{namespace}/{cluster}/api/v1/poolers/{cell}/{name}/status",
            axum::routing::get(pooler_status),
        )
        .with_state(Rest { pods, state });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn pooler_status(
    State(rest): State<Rest>,
    Path((namespace, cluster, cell, name)): Path<(String, String, String, String)>,
) -> Response {
    let found = rest.pods.state().into_iter().find_map(|pod| {
        let pool = PoolPod::from_pod(&pod)?;
        (pool.namespace == namespace
            && pool.cluster == cluster
            && pool.cell == cell
            && pooler_service_id(&pool.name) == name)
            .then_some((pod, pool))
    });
    let Some((pod, pool)) = found else {
        return error(StatusCode::NOT_FOUND, "not_found", "pooler not found");
    };
    if !pool.ready {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "pooler is not reachable",
        );
    }
    let primary = rest
        .state
        .lock()
        .expect("handovers")
        .primaries
        .get(&pool.shard_ref())
        .cloned();
    if primary.as_deref() == Some(pool.name.as_str()) {
        return Json(json!({"status": {
            "poolerType": "PRIMARY",
            "postgresStatus": "POSTGRES_STATUS_PRIMARY",
            "postgresReady": true,
            "walPosition": lsn(PRIMARY_LSN),
            "primaryStatus": {"lsn": lsn(PRIMARY_LSN), "ready": true},
        }}))
        .into_response();
    }
    let behind: u64 = pod
        .annotations()
        .get(REPLAY_LAG_BYTES)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let replay = lsn(PRIMARY_LSN.saturating_sub(behind));
    Json(json!({"status": {
        "poolerType": "REPLICA",
        "postgresStatus": "POSTGRES_STATUS_STANDBY",
        "postgresReady": true,
        "walPosition": replay,
        "replicationStatus": {
            "lastReplayLsn": replay,
            "lastReceiveLsn": replay,
            "walReplayPauseState": "not paused",
            "walReceiverStatus": "streaming",
        },
    }}))
    .into_response()
}

/// Connect's error body, as multiadmin's REST API answers a failed call.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

fn lsn(position: u64) -> String {
    format!("{:X}/{:X}", position >> 32, position & 0xffff_ffff)
}
