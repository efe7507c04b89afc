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

use super::{PoolPod, ShardRef, choose_primaries};

/// The primaries as the simulator last chose them, and the switchovers asked of it.
#[derive(Debug, Default)]
pub struct Handovers {
    /// Per shard: its primary pod.
    pub primaries: BTreeMap<ShardRef, String>,
    /// Per shard: the pods that resigned, oldest first, while they exist (by uid: a pod replaced
    /// under the same name has not resigned).
    pub resigned: BTreeMap<ShardRef, Vec<Resignation>>,
    pub switchovers: u64,
    /// Primaries published after their pod's deletion had begun (see [`going_already`]): their
    /// loss is the simulator's lag, not the operator's doing.
    pub elected_while_going: BTreeSet<(ShardRef, String)>,
    /// Primaries whose pod was deleted while still primary, without a switchover.
    pub lost_without_switchover: u64,
    /// Backup jobs by id, in the order they were asked for.
    pub backup_jobs: BTreeMap<String, BackupJob>,
}

/// A pod that gave up the primary in a switchover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resignation {
    pub name: String,
    pub uid: String,
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
        let resigned = |shard: &ShardRef, name: &str| {
            self.resigned
                .get(shard)
                .is_some_and(|r| r.iter().any(|r| r.name == name))
        };
        for (shard, pod) in &self.primaries {
            let lagged = self
                .elected_while_going
                .contains(&(shard.clone(), pod.clone()));
            if !alive(shard, pod) && !resigned(shard, pod) && !lagged && live_shards.contains(shard)
            {
                self.lost_without_switchover += 1;
                tracing::warn!(
                    shard = %format!("{}/{}", shard.0, shard.1),
                    pod,
                    "SIMULATION: primary pod deleted without a switchover"
                );
            }
        }
        let running_uids: HashSet<&str> = pods
            .iter()
            .filter(|p| !p.terminating)
            .map(|p| p.uid.as_str())
            .collect();
        self.resigned.retain(|_, pods| {
            pods.retain(|r| running_uids.contains(r.uid.as_str()));
            !pods.is_empty()
        });
    }

    /// Chooses each shard's primary among the eligible pods (see [`choose_primaries`]); a resigned
    /// pod chosen again is a primary like any other from then on.
    pub fn elect(
        &mut self,
        pods: &[PoolPod],
        first_replica_cell: &BTreeMap<ShardRef, String>,
    ) -> BTreeMap<ShardRef, String> {
        let chosen = choose_primaries(&self.eligible(pods), first_replica_cell, &self.primaries);
        for (shard, pod) in &chosen {
            if let Some(resigned) = self.resigned.get_mut(shard) {
                resigned.retain(|r| &r.name != pod);
            }
        }
        self.resigned.retain(|_, r| !r.is_empty());
        self.elected_while_going
            .retain(|(shard, pod)| chosen.get(shard) == Some(pod));
        self.primaries = chosen.clone();
        chosen
    }

    /// The pods that may be chosen as primary: those that did not resign; in a shard whose every
    /// ready replica-pool pod resigned (a failover on top of a switchover), the one that resigned
    /// longest ago, so that successive switchovers rotate rather than hand the primary back.
    pub fn eligible(&self, pods: &[PoolPod]) -> Vec<PoolPod> {
        let resignation = |p: &PoolPod| {
            self.resigned
                .get(&p.shard_ref())
                .and_then(|r| r.iter().position(|r| r.uid == p.uid))
        };
        let mut fallback: BTreeMap<ShardRef, (usize, &PoolPod)> = BTreeMap::new();
        let mut fresh: HashSet<ShardRef> = HashSet::new();
        for pod in pods
            .iter()
            .filter(|p| p.ready && p.pool_type == PoolType::Replica)
        {
            match resignation(pod) {
                None => {
                    fresh.insert(pod.shard_ref());
                }
                Some(order) => {
                    let slot = fallback.entry(pod.shard_ref()).or_insert((order, pod));
                    if order < slot.0 {
                        *slot = (order, pod);
                    }
                }
            }
        }
        pods.iter()
            .filter(|p| match resignation(p) {
                None => true,
                Some(_) => {
                    !fresh.contains(&p.shard_ref())
                        && fallback
                            .get(&p.shard_ref())
                            .is_some_and(|(_, chosen)| chosen.uid == p.uid)
                }
            })
            .cloned()
            .collect()
    }
}

/// Whether `pod` (by `uid`) was already being deleted, or gone, when the simulator had just
/// published it as a new primary: the pod cache it elected from had not seen the deletion yet.
/// Multiorch checks a pooler before promoting it, so such an election is the simulator's lag, and
/// the pod's loss is not counted against the operator. A failed read counts as "not going".
pub async fn going_already(client: &kube::Client, namespace: &str, pod: &str, uid: &str) -> bool {
    match kube::Api::<Pod>::namespaced(client.clone(), namespace)
        .get_opt(pod)
        .await
    {
        Ok(Some(p)) => {
            p.metadata.deletion_timestamp.is_some() || p.metadata.uid.as_deref() != Some(uid)
        }
        Ok(None) => true,
        Err(_) => false,
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
        let uid = pods
            .iter()
            .find(|p| p.name == leader)
            .map(|p| p.uid.clone())
            .unwrap_or_default();
        let resigned = state.resigned.entry(shard.clone()).or_default();
        resigned.retain(|r| r.uid != uid);
        resigned.push(Resignation {
            name: leader.clone(),
            uid,
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{key, pod};

    fn resign(handovers: &mut Handovers, pod: &PoolPod) {
        handovers
            .resigned
            .entry(key())
            .or_default()
            .push(Resignation {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
            });
    }

    fn elect(handovers: &mut Handovers, pods: &[PoolPod]) -> String {
        let first = BTreeMap::from([(key(), "a".to_string())]);
        handovers.observe(pods, &BTreeSet::from([key()]));
        handovers.elect(pods, &first)[&key()].clone()
    }

    #[test]
    fn a_resigned_pod_waits_while_another_can_serve_and_its_replacement_does_not() {
        let (p0, p1, p2) = (
            pod("s-0", "a", PoolType::Replica, true),
            pod("s-1", "a", PoolType::Replica, true),
            pod("s-2", "a", PoolType::Replica, true),
        );
        let mut handovers = Handovers::default();
        assert_eq!(
            elect(&mut handovers, &[p0.clone(), p1.clone(), p2.clone()]),
            "s-0"
        );

        // A switchover, then a failover of the new primary: the first to resign stays out.
        resign(&mut handovers, &p0);
        assert_eq!(
            elect(&mut handovers, &[p0.clone(), p1.clone(), p2.clone()]),
            "s-1"
        );
        resign(&mut handovers, &p1);
        assert_eq!(
            elect(&mut handovers, &[p0.clone(), p1.clone(), p2.clone()]),
            "s-2"
        );

        // s-0 replaced under its name: a new pod, which has not resigned.
        let replaced = PoolPod {
            uid: "uid-s-0-new".into(),
            ..p0.clone()
        };
        let mut going = p2.clone();
        going.terminating = true;
        going.ready = false;
        handovers.primaries.clear();
        assert_eq!(elect(&mut handovers, &[replaced, p1.clone(), going]), "s-0");
        assert_eq!(handovers.lost_without_switchover, 0);
        assert!(handovers.resigned[&key()].iter().all(|r| r.name == "s-1"));
    }

    #[test]
    fn when_every_pod_resigned_the_one_that_resigned_longest_ago_serves_and_rotation_follows() {
        let (p0, p1) = (
            pod("s-0", "a", PoolType::Replica, true),
            pod("s-1", "a", PoolType::Replica, true),
        );
        let pods = [p0.clone(), p1.clone()];
        let mut handovers = Handovers::default();
        assert_eq!(elect(&mut handovers, &pods), "s-0");
        resign(&mut handovers, &p0);
        assert_eq!(elect(&mut handovers, &pods), "s-1");
        resign(&mut handovers, &p1);
        // Both resigned: s-0 resigned first, so it serves again, and is a primary like any other.
        assert_eq!(elect(&mut handovers, &pods), "s-0");
        assert_eq!(handovers.resigned[&key()].len(), 1);
        resign(&mut handovers, &p0);
        assert_eq!(elect(&mut handovers, &pods), "s-1");

        // A re-elected primary deleted without a switchover is counted.
        let mut gone = p1.clone();
        gone.terminating = true;
        gone.ready = false;
        elect(&mut handovers, &[p0.clone(), gone]);
        assert_eq!(handovers.lost_without_switchover, 1);
    }
}
