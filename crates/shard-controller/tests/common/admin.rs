//! A stand-in for multiadmin's `SwitchPrimary`: on each call it rewrites two Pooler records as
//! multiorch would after the old primary resigned (the old one a REPLICA, the chosen one PRIMARY),
//! and counts the calls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use multigres_topology::admin_pb::multiadmin_service_server::{
    MultiadminService, MultiadminServiceServer,
};
use multigres_topology::admin_pb::{
    BackupRequest, BackupResponse, ExpireBackupsRequest, ExpireBackupsResponse,
    GetBackupJobStatusRequest, GetBackupJobStatusResponse, GetBackupsRequest, GetBackupsResponse,
    SwitchPrimaryRequest, SwitchPrimaryResponse,
};
use multigres_topology::{MultiPooler, RoutingRole, RoutingState, TopoClient};
use tonic::{Request, Response, Status};

struct StandIn {
    topo: TopoClient,
    cell_root: String,
    demote: MultiPooler,
    promote: MultiPooler,
    calls: Arc<AtomicUsize>,
}

fn with_role(record: &MultiPooler, role: RoutingRole) -> MultiPooler {
    let mut record = record.clone();
    record.routing_state = Some(RoutingState {
        role: role.into(),
        rule: None,
    });
    record
}

#[tonic::async_trait]
impl MultiadminService for StandIn {
    async fn switch_primary(
        &self,
        _: Request<SwitchPrimaryRequest>,
    ) -> Result<Response<SwitchPrimaryResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let write = |r: MultiPooler| async move {
            self.topo
                .write_pooler(&self.cell_root, &r)
                .await
                .map_err(|e| Status::internal(e.to_string()))
        };
        write(with_role(&self.demote, RoutingRole::Replica)).await?;
        write(with_role(&self.promote, RoutingRole::Primary)).await?;
        Ok(Response::new(SwitchPrimaryResponse {
            old_leader_id: self.demote.id.clone(),
        }))
    }

    // The shard controller never backs up.
    async fn backup(&self, _: Request<BackupRequest>) -> Result<Response<BackupResponse>, Status> {
        Err(Status::unimplemented("not a shard-controller call"))
    }

    async fn get_backup_job_status(
        &self,
        _: Request<GetBackupJobStatusRequest>,
    ) -> Result<Response<GetBackupJobStatusResponse>, Status> {
        Err(Status::unimplemented("not a shard-controller call"))
    }

    async fn get_backups(
        &self,
        _: Request<GetBackupsRequest>,
    ) -> Result<Response<GetBackupsResponse>, Status> {
        Err(Status::unimplemented("not a shard-controller call"))
    }

    async fn expire_backups(
        &self,
        _: Request<ExpireBackupsRequest>,
    ) -> Result<Response<ExpireBackupsResponse>, Status> {
        Err(Status::unimplemented("not a shard-controller call"))
    }
}

/// Serves the stand-in on `addr`; returns the count of calls.
pub fn serve_switchover(
    addr: SocketAddr,
    topo: TopoClient,
    cell_root: String,
    demote: MultiPooler,
    promote: MultiPooler,
) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = StandIn {
        topo,
        cell_root,
        demote,
        promote,
        calls: calls.clone(),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MultiadminServiceServer::new(service))
            .serve(addr),
    );
    calls
}
