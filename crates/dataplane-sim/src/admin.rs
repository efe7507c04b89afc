//! SIMULATION: a stand-in for multiadmin's `SwitchPrimary`, so that the operator's planned
//! switchover runs its real client path under kwok. Like multiadmin, it refuses a shard without a
//! primary or without a standby; otherwise the primary resigns and, as multiorch would, the
//! simulator elects another ready replica-pool pod on its next pass. It also counts primaries whose
//! pod went away without a switchover, the fault the operator must never cause (docs/reliability.md).
//! Backups: a job per request that completes on a later status read (or fails, for a Shard
//! annotated [`FAIL_BACKUPS`]), refused like multiadmin's without a serving replica.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use multigres_api::multigres::pooler_service_id;
use multigres_api::naming;
use multigres_api::{PoolType, Shard};
use multigres_topology::Id;
use multigres_topology::admin_pb::multiadmin_service_server::{
    MultiadminService, MultiadminServiceServer,
};
use multigres_topology::admin_pb::{
    BackupInfo, BackupRequest, BackupResponse, BackupStatus, ExpireBackupsRequest,
    ExpireBackupsResponse, GetBackupJobStatusRequest, GetBackupJobStatusResponse,
    GetBackupsRequest, GetBackupsResponse, JobStatus, SwitchPrimaryRequest, SwitchPrimaryResponse,
};
use multigres_topology::pb::id::ComponentType;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use super::{PoolPod, ShardRef};

/// The primaries as the simulator last chose them, and the switchovers asked of it.
#[derive(Debug, Default)]
pub struct Handovers {
    /// Per shard: its primary pod.
    pub primaries: BTreeMap<ShardRef, String>,
    /// Per shard: the pod that resigned; it is not chosen again while it exists.
    pub resigned: BTreeMap<ShardRef, String>,
    pub switchovers: u64,
    /// Primaries whose pod was deleted while still primary, without a switchover.
    pub lost_without_switchover: u64,
    /// Backup jobs by id, in the order they were asked for.
    pub backup_jobs: BTreeMap<String, BackupJob>,
}

/// A Shard annotated with this fails every backup with the annotation's value as the error.
pub const FAIL_BACKUPS: &str = "simulation.multigres.com/fail-backups";

/// A backup job: running on its first status read, completed (or failed) from the second.
#[derive(Clone, Debug)]
pub struct BackupJob {
    pub shard: ShardRef,
    pub key: (String, String, String),
    pub backup_type: String,
    pub reads: u32,
    pub fail: Option<String>,
    pub started: multigres_topology::prost_types::Timestamp,
    pub number: u64,
    /// Removed from the repository by an expire.
    pub expired: bool,
}

impl BackupJob {
    fn backup_id(&self) -> String {
        // pgBackRest's form: `<date>-<time>F`, unique per job here.
        format!("20260101-{:06}F", self.number)
    }

    fn info(&self) -> BackupInfo {
        let (database, table_group, shard) = self.key.clone();
        BackupInfo {
            backup_id: self.backup_id(),
            database,
            table_group,
            shard,
            r#type: self.backup_type.clone(),
            status: BackupStatus::Complete.into(),
            backup_size_bytes: 24 * 1024 * 1024 + self.number,
            start_timestamp: Some(self.started),
            stop_timestamp: Some(self.started),
        }
    }
}

impl Handovers {
    /// Notes the pods that are gone or terminating: a primary among them that did not resign is
    /// counted (and logged) unless its Shard is gone too (deleted on purpose), and resignations of
    /// gone pods are forgotten.
    pub fn observe(&mut self, pods: &[PoolPod], live_shards: &BTreeSet<ShardRef>) {
        // Once per pass, not per primary: at 1,000 Shards a scan of every pod for every primary
        // made each pass of the simulator take a second.
        let running: HashSet<(ShardRef, &str)> = pods
            .iter()
            .filter(|p| !p.terminating)
            .map(|p| (p.shard_ref(), p.name.as_str()))
            .collect();
        let alive = |shard: &ShardRef, name: &str| running.contains(&(shard.clone(), name));
        for (shard, pod) in &self.primaries {
            if !alive(shard, pod)
                && self.resigned.get(shard) != Some(pod)
                && live_shards.contains(shard)
            {
                self.lost_without_switchover += 1;
                tracing::warn!(
                    shard = %format!("{}/{}", shard.0, shard.1),
                    pod,
                    "SIMULATION: primary pod deleted without a switchover"
                );
            }
        }
        self.resigned.retain(|shard, pod| alive(shard, pod));
    }

    /// The pods that may be chosen as primary: every pod but those that resigned.
    pub fn eligible(&self, pods: &[PoolPod]) -> Vec<PoolPod> {
        pods.iter()
            .filter(|p| self.resigned.get(&p.shard_ref()) != Some(&p.name))
            .cloned()
            .collect()
    }
}

struct Admin {
    pods: Store<Pod>,
    shards: Store<Shard>,
    state: Arc<Mutex<Handovers>>,
    changed: Arc<Notify>,
}

/// The `:authority` a request named (the multiadmin it was meant for).
#[derive(Clone, Debug)]
struct Authority(String);

impl Admin {
    /// The one Shard the request means (by the multiadmin it was sent to) and its pool pods.
    #[allow(clippy::result_large_err)]
    fn shard_of(
        &self,
        authority: Option<Authority>,
        database: &str,
        table_group: &str,
        multigres_shard: &str,
    ) -> Result<(ShardRef, Vec<PoolPod>), Status> {
        let pods: Vec<PoolPod> = self
            .pods
            .state()
            .iter()
            .filter_map(|p| PoolPod::from_pod(p))
            .filter(|p| {
                authority
                    .as_ref()
                    .is_none_or(|a| naming::multiadmin_address(&p.cluster, &p.namespace) == a.0)
            })
            .filter(|p| p.database == database && p.table_group == table_group)
            .filter(|p| {
                let shard = self.shards.state().into_iter().find(|s| {
                    s.metadata.namespace.as_ref() == Some(&p.namespace)
                        && s.metadata.name.as_ref() == Some(&p.shard_resource)
                });
                shard.is_some_and(|s| s.spec.multigres_shard() == multigres_shard)
            })
            .collect();
        let shards: std::collections::BTreeSet<ShardRef> =
            pods.iter().map(PoolPod::shard_ref).collect();
        let shard = match shards.len() {
            0 => return Err(Status::not_found("no poolers found for shard")),
            1 => shards.into_iter().next().expect("one"),
            _ => {
                return Err(Status::failed_precondition(
                    "shard key names several clusters' shards",
                ));
            }
        };
        Ok((shard, pods))
    }

    fn annotation(&self, shard: &ShardRef, key: &str) -> Option<String> {
        self.shards
            .state()
            .into_iter()
            .find(|s| {
                s.metadata.namespace.as_ref() == Some(&shard.0)
                    && s.metadata.name.as_ref() == Some(&shard.1)
            })
            .and_then(|s| s.metadata.annotations.as_ref()?.get(key).cloned())
    }
}

#[tonic::async_trait]
impl MultiadminService for Admin {
    async fn switch_primary(
        &self,
        request: Request<SwitchPrimaryRequest>,
    ) -> Result<Response<SwitchPrimaryResponse>, Status> {
        let authority = request.extensions().get::<Authority>().cloned();
        let key = request
            .into_inner()
            .shard_key
            .ok_or_else(|| Status::invalid_argument("shard_key is required"))?;
        let (shard, pods) =
            self.shard_of(authority, &key.database, &key.table_group, &key.shard)?;
        let mut state = self.state.lock().expect("handovers");
        let leader = state
            .primaries
            .get(&shard)
            .cloned()
            .ok_or_else(|| Status::not_found("no PRIMARY pooler found for shard"))?;
        let standby = pods
            .iter()
            .any(|p| p.name != leader && p.ready && p.pool_type == PoolType::Replica);
        if !standby {
            return Err(Status::failed_precondition(
                "no standby poolers available for promotion",
            ));
        }
        let cell = pods
            .iter()
            .find(|p| p.name == leader)
            .map(|p| p.cell.clone())
            .unwrap_or_default();
        state.resigned.insert(shard.clone(), leader.clone());
        state.switchovers += 1;
        tracing::info!(
            shard = %format!("{}/{}", shard.0, shard.1),
            pod = %leader,
            "SIMULATION: switchover, the primary resigned"
        );
        self.changed.notify_one();
        Ok(Response::new(SwitchPrimaryResponse {
            old_leader_id: Some(Id {
                component: ComponentType::Multipooler.into(),
                cell,
                name: pooler_service_id(&leader),
            }),
        }))
    }

    async fn backup(
        &self,
        request: Request<BackupRequest>,
    ) -> Result<Response<BackupResponse>, Status> {
        let authority = request.extensions().get::<Authority>().cloned();
        let request = request.into_inner();
        let (shard, pods) = self.shard_of(
            authority,
            &request.database,
            &request.table_group,
            &request.shard,
        )?;
        let mut state = self.state.lock().expect("handovers");
        let primary = state.primaries.get(&shard).cloned();
        let follower = pods
            .iter()
            .any(|p| p.ready && !p.terminating && Some(&p.name) != primary.as_ref());
        if !request.force_primary && !follower {
            return Err(Status::failed_precondition(format!(
                "failed to find pooler: serving follower pooler not found for database={}, table_group={}, shard={}",
                request.database, request.table_group, request.shard
            )));
        }
        let number = state.backup_jobs.len() as u64 + 1;
        let job_id = format!("sim-backup-{number}");
        let now = std::time::SystemTime::now();
        state.backup_jobs.insert(
            job_id.clone(),
            BackupJob {
                fail: self.annotation(&shard, FAIL_BACKUPS),
                shard: shard.clone(),
                key: (request.database, request.table_group, request.shard),
                backup_type: request.r#type,
                reads: 0,
                started: now.into(),
                number,
                expired: false,
            },
        );
        tracing::info!(shard = %format!("{}/{}", shard.0, shard.1), job_id, "SIMULATION: backup started");
        Ok(Response::new(BackupResponse { job_id }))
    }

    async fn get_backup_job_status(
        &self,
        request: Request<GetBackupJobStatusRequest>,
    ) -> Result<Response<GetBackupJobStatusResponse>, Status> {
        let request = request.into_inner();
        let mut state = self.state.lock().expect("handovers");
        let job = state
            .backup_jobs
            .get_mut(&request.job_id)
            .ok_or_else(|| Status::not_found(format!("job {} not found", request.job_id)))?;
        job.reads += 1;
        let (status, backup_id, error_message) = match (&job.fail, job.reads) {
            (_, 1) => (JobStatus::Running, String::new(), String::new()),
            (Some(error), _) => (JobStatus::Failed, String::new(), error.clone()),
            (None, _) => (JobStatus::Completed, job.backup_id(), String::new()),
        };
        Ok(Response::new(GetBackupJobStatusResponse {
            job_id: request.job_id,
            status: status.into(),
            error_message,
            backup_id,
        }))
    }

    async fn get_backups(
        &self,
        request: Request<GetBackupsRequest>,
    ) -> Result<Response<GetBackupsResponse>, Status> {
        let request = request.into_inner();
        let state = self.state.lock().expect("handovers");
        let backups = state
            .backup_jobs
            .values()
            .filter(|j| j.fail.is_none() && j.reads > 1 && !j.expired)
            .filter(|j| {
                j.key
                    == (
                        request.database.clone(),
                        request.table_group.clone(),
                        request.shard.clone(),
                    )
            })
            .map(BackupJob::info)
            .collect();
        Ok(Response::new(GetBackupsResponse { backups }))
    }

    async fn expire_backups(
        &self,
        request: Request<ExpireBackupsRequest>,
    ) -> Result<Response<ExpireBackupsResponse>, Status> {
        let request = request.into_inner();
        let keep: usize = request
            .overrides
            .get("repo1-retention-full")
            .and_then(|n| n.parse().ok())
            .unwrap_or(7);
        let key = (request.database, request.table_group, request.shard);
        let mut state = self.state.lock().expect("handovers");
        let mut complete: Vec<&mut BackupJob> = state
            .backup_jobs
            .values_mut()
            .filter(|j| j.key == key && j.fail.is_none() && j.reads > 1 && !j.expired)
            .collect();
        complete.sort_by_key(|j| j.number);
        let excess = complete.len().saturating_sub(keep);
        let expired_backup_ids = complete
            .into_iter()
            .take(excess)
            .map(|j| {
                j.expired = true;
                j.backup_id()
            })
            .collect();
        Ok(Response::new(ExpireBackupsResponse { expired_backup_ids }))
    }
}

/// Serves the stand-in on `addr` until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    pods: Store<Pod>,
    shards: Store<Shard>,
    state: Arc<Mutex<Handovers>>,
    changed: Arc<Notify>,
) -> anyhow::Result<()> {
    let admin = Admin {
        pods,
        shards,
        state,
        changed,
    };
    // Keep the request's `:authority`: it says which cluster's multiadmin the caller meant.
    let keep_authority = tower::util::MapRequestLayer::new(|mut req: http::Request<_>| {
        if let Some(a) = req.uri().authority().map(|a| a.to_string()) {
            req.extensions_mut().insert(Authority(a));
        }
        req
    });
    tonic::transport::Server::builder()
        .layer(keep_authority)
        .add_service(MultiadminServiceServer::new(admin))
        .serve(addr)
        .await?;
    Ok(())
}
