//! A stand-in for multiadmin's backup calls, as the real one answers them: `Backup` is refused
//! without a serving replica (until [`StandIn::replica_ready`]), a job runs on its first status
//! read and ends on the second (failed for a table group named in `failing`), and `GetBackups`
//! lists completed backups with their size and times.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use multigres_topology::admin_pb::multiadmin_service_server::{
    MultiadminService, MultiadminServiceServer,
};
use multigres_topology::admin_pb::{
    BackupInfo, BackupRequest, BackupResponse, BackupStatus, ExpireBackupsRequest,
    ExpireBackupsResponse, GetBackupJobStatusRequest, GetBackupJobStatusResponse,
    GetBackupsRequest, GetBackupsResponse, JobStatus, SwitchPrimaryRequest, SwitchPrimaryResponse,
};
use tonic::{Request, Response, Status};

#[derive(Default)]
pub struct StandIn {
    pub replica_ready: AtomicBool,
    pub failing: Mutex<Vec<String>>,
    pub backup_calls: AtomicUsize,
    /// The `repo1-retention-full` of each ExpireBackups call, with its table group.
    pub expires: Mutex<Vec<(String, String)>>,
    jobs: Mutex<BTreeMap<String, (BackupRequest, u32)>>,
}

pub const BACKUP_SIZE: u64 = 42 * 1024 * 1024;
const STARTED: i64 = 1_796_000_000;

fn backup_id(job: &str) -> String {
    format!("20261202-{job}F")
}

struct Service(Arc<StandIn>);

impl std::ops::Deref for Service {
    type Target = StandIn;
    fn deref(&self) -> &StandIn {
        &self.0
    }
}

#[tonic::async_trait]
impl MultiadminService for Service {
    async fn switch_primary(
        &self,
        _: Request<SwitchPrimaryRequest>,
    ) -> Result<Response<SwitchPrimaryResponse>, Status> {
        Err(Status::unimplemented("not a backup call"))
    }

    async fn backup(&self, r: Request<BackupRequest>) -> Result<Response<BackupResponse>, Status> {
        let r = r.into_inner();
        if !self.replica_ready.load(Ordering::SeqCst) && !r.force_primary {
            return Err(Status::failed_precondition(format!(
                "failed to find pooler: serving follower pooler not found for database={}, table_group={}, shard={}",
                r.database, r.table_group, r.shard
            )));
        }
        let n = self.backup_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let job_id = format!("{n:06}");
        self.jobs.lock().unwrap().insert(job_id.clone(), (r, 0));
        Ok(Response::new(BackupResponse { job_id }))
    }

    async fn get_backup_job_status(
        &self,
        r: Request<GetBackupJobStatusRequest>,
    ) -> Result<Response<GetBackupJobStatusResponse>, Status> {
        let r = r.into_inner();
        let mut jobs = self.jobs.lock().unwrap();
        let (request, reads) = jobs
            .get_mut(&r.job_id)
            .ok_or_else(|| Status::not_found("job not found"))?;
        *reads += 1;
        let fails = self.failing.lock().unwrap().contains(&request.table_group);
        let (status, backup_id, error_message) = match (*reads, fails) {
            (1, _) => (JobStatus::Running, String::new(), String::new()),
            (_, true) => (
                JobStatus::Failed,
                String::new(),
                "pgbackrest backup exited with code 82".to_string(),
            ),
            (_, false) => (JobStatus::Completed, backup_id(&r.job_id), String::new()),
        };
        Ok(Response::new(GetBackupJobStatusResponse {
            job_id: r.job_id,
            status: status.into(),
            error_message,
            backup_id,
        }))
    }

    async fn get_backups(
        &self,
        r: Request<GetBackupsRequest>,
    ) -> Result<Response<GetBackupsResponse>, Status> {
        let r = r.into_inner();
        let jobs = self.jobs.lock().unwrap();
        let backups = jobs
            .iter()
            .filter(|(_, (q, reads))| {
                *reads > 1
                    && q.database == r.database
                    && q.table_group == r.table_group
                    && q.shard == r.shard
            })
            .map(|(job, (q, _))| BackupInfo {
                backup_id: backup_id(job),
                database: q.database.clone(),
                table_group: q.table_group.clone(),
                shard: q.shard.clone(),
                r#type: q.r#type.clone(),
                status: BackupStatus::Complete.into(),
                backup_size_bytes: BACKUP_SIZE,
                start_timestamp: Some(multigres_topology::prost_types::Timestamp {
                    seconds: STARTED,
                    nanos: 0,
                }),
                stop_timestamp: Some(multigres_topology::prost_types::Timestamp {
                    seconds: STARTED + 90,
                    nanos: 0,
                }),
            })
            .collect();
        Ok(Response::new(GetBackupsResponse { backups }))
    }

    async fn expire_backups(
        &self,
        r: Request<ExpireBackupsRequest>,
    ) -> Result<Response<ExpireBackupsResponse>, Status> {
        let r = r.into_inner();
        let full = r
            .overrides
            .get("repo1-retention-full")
            .cloned()
            .unwrap_or_default();
        self.expires.lock().unwrap().push((r.table_group, full));
        Ok(Response::new(ExpireBackupsResponse::default()))
    }
}

/// Serves a stand-in on `addr`.
pub fn serve(addr: SocketAddr) -> Arc<StandIn> {
    let stand_in = Arc::new(StandIn::default());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MultiadminServiceServer::new(Service(stand_in.clone())))
            .serve(addr),
    );
    stand_in
}
