//! Plain leader election through one Lease `<controller>-leader`, for controllers that run several
//! replicas but only one active: [`run_when_leader`] waits to acquire the Lease, runs the work while
//! renewing it every `lease_duration / 3`, and gives it up when the work ends (e.g. on SIGTERM).
//!
//! A holder is considered gone when its Lease's resourceVersion has not changed for a whole lease
//! duration, as seen by the local clock (the client-go rule, immune to clock skew). The leader
//! steps down (dropping the work) when it has not renewed for two thirds of a lease duration, before
//! anyone else may take over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::health::Readiness;
use crate::partition::lease_seconds;
use crate::settings::CommonArgs;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lost the leader lease {0}: another replica holds it or renewals failed")]
    Lost(String),
}

/// Name of a controller's leader Lease.
pub fn lease_name(controller: &str) -> String {
    format!("{controller}-leader")
}

/// Runs `work` when leader election is off, or once this replica leads (`--leader-elect`).
pub async fn run_if_enabled<F: Future>(
    client: Client,
    args: &CommonArgs,
    controller: &str,
    work: F,
) -> Result<F::Output, LeaderError> {
    if !args.leader_elect {
        return Ok(work.await);
    }
    run_when_leader(
        client,
        &args.lease_namespace,
        &lease_name(controller),
        &args.identity,
        args.lease_duration,
        work,
    )
    .await
}

/// [`run_if_enabled`] for a controller binary.
///
/// A standby that is still waiting for the Lease when `stop` resolves (SIGTERM,
/// [`crate::run::Started::shutdown`]) returns `Ok(None)` at once instead of waiting to be killed.
/// Once leading, `stop` is ignored here: `work` is expected to end on the same signal (graceful
/// shutdown), after which the Lease is released.
///
/// Readiness with `--leader-elect`: a standby reports ready (it is up, and takes over within a
/// lease duration); on becoming leader, readiness drops until `work` marks its caches synced. Were
/// standbys unready, a Deployment's rolling update could never replace the leader (the new pod
/// would wait for the Lease the old one holds) and a PodDisruptionBudget would block every drain.
pub async fn run_if_enabled_until<F: Future>(
    client: Client,
    args: &CommonArgs,
    controller: &str,
    readiness: &Readiness,
    stop: impl Future<Output = ()>,
    work: F,
) -> Result<Option<F::Output>, LeaderError> {
    if !args.leader_elect {
        return Ok(Some(work.await));
    }
    readiness.set_ready(true);
    let leading = readiness.clone();
    let work = async move {
        leading.set_ready(false);
        work.await
    };
    run_when_leader_until(
        client,
        &args.lease_namespace,
        &lease_name(controller),
        &args.identity,
        args.lease_duration,
        stop,
        work,
    )
    .await
}

/// Waits until this replica holds the Lease `namespace/name`, then runs `work` while renewing it.
/// Returns `work`'s output (after releasing the Lease) or [`LeaderError::Lost`] (after dropping
/// `work`) when leadership is lost; the caller should then exit so that it restarts clean.
pub async fn run_when_leader<F: Future>(
    client: Client,
    namespace: &str,
    name: &str,
    identity: &str,
    lease_duration: Duration,
    work: F,
) -> Result<F::Output, LeaderError> {
    let output = run_when_leader_until(
        client,
        namespace,
        name,
        identity,
        lease_duration,
        std::future::pending(),
        work,
    )
    .await?;
    Ok(output.expect("a pending stop never fires"))
}

/// [`run_when_leader`] that gives up waiting for the Lease (returning `Ok(None)`, `work` never
/// started) when `stop` resolves first.
pub async fn run_when_leader_until<F: Future>(
    client: Client,
    namespace: &str,
    name: &str,
    identity: &str,
    lease_duration: Duration,
    stop: impl Future<Output = ()>,
    work: F,
) -> Result<Option<F::Output>, LeaderError> {
    let api = Api::<Lease>::namespaced(client, namespace);
    let mut elector = Elector {
        api,
        name: name.to_string(),
        identity: identity.to_string(),
        lease_duration,
        observed: None,
        last_renew_start: None,
    };
    let period = (lease_duration / 3).max(Duration::from_millis(100));
    let acquiring = async {
        loop {
            if elector.attempt(period).await {
                break;
            }
            tokio::time::sleep(period).await;
        }
    };
    tokio::select! {
        _ = acquiring => {}
        _ = stop => {
            tracing::info!(lease = name, identity, "stopped while waiting for leadership");
            return Ok(None);
        }
    }
    tracing::info!(lease = name, identity, "became leader");
    let renewing = async {
        loop {
            tokio::time::sleep(period).await;
            let renewed = elector.attempt(period).await;
            let stale = elector
                .last_renew_start
                .is_none_or(|t| t.elapsed() >= lease_duration * 2 / 3);
            if elector.held_by_other() || (!renewed && stale) {
                return;
            }
        }
    };
    tokio::pin!(work);
    let output = tokio::select! {
        output = &mut work => output,
        _ = renewing => {
            tracing::error!(lease = name, identity, "lost leadership; stepping down");
            return Err(LeaderError::Lost(name.to_string()));
        }
    };
    elector.release().await;
    Ok(Some(output))
}

struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    /// The Lease as last read, and when its resourceVersion was first seen.
    observed: Option<(Lease, Instant)>,
    last_renew_start: Option<Instant>,
}

impl Elector {
    /// True when the last read showed another holder (someone took over).
    fn held_by_other(&self) -> bool {
        self.observed
            .as_ref()
            .is_some_and(|(lease, _)| holder(lease).is_some_and(|h| h != self.identity))
    }

    /// One attempt that gives up after `deadline` (a third of the lease), so that a hung API call
    /// cannot keep a leader acting past its lease: the staleness check runs in time.
    async fn attempt(&mut self, deadline: Duration) -> bool {
        match tokio::time::timeout(deadline, self.try_acquire_or_renew()).await {
            Ok(held) => held,
            Err(_) => {
                tracing::warn!(lease = %self.name, ?deadline, "leader lease call timed out");
                false
            }
        }
    }

    /// One attempt; true when this replica holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let started = Instant::now();
        let current = match self.api.get_opt(&self.name).await {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(%error, lease = %self.name, "could not read leader lease");
                return false;
            }
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        let Some(current) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(lease_seconds(self.lease_duration)),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return self.write(
                self.api.create(&PostParams::default(), &lease).await,
                started,
            );
        };
        let rv = current.resource_version();
        let first_seen = match &self.observed {
            Some((old, at)) if old.resource_version() == rv => *at,
            _ => Instant::now(),
        };
        self.observed = Some((current.clone(), first_seen));
        let mine = holder(&current) == Some(self.identity.as_str());
        let free = holder(&current).is_none() || first_seen.elapsed() >= self.lease_duration;
        if !mine && !free {
            return false;
        }
        let mut next = current.clone();
        let spec = next.spec.get_or_insert_with(Default::default);
        if !mine {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(lease_seconds(self.lease_duration));
        spec.renew_time = Some(MicroTime(now));
        // replace carries the resourceVersion read above: a concurrent writer makes this fail.
        let result = self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await;
        self.write(result, started)
    }

    fn write(&mut self, result: Result<Lease, kube::Error>, started: Instant) -> bool {
        match result {
            Ok(lease) => {
                self.observed = Some((lease, Instant::now()));
                self.last_renew_start = Some(started);
                true
            }
            Err(error) => {
                tracing::debug!(%error, lease = %self.name, "leader lease write failed");
                false
            }
        }
    }

    /// Clears the holder so that another replica takes over without waiting a lease duration.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        if holder(&lease) != Some(self.identity.as_str()) {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
        }
        if let Err(error) = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(%error, lease = %self.name, "could not release leader lease");
        } else {
            tracing::info!(lease = %self.name, "released leadership");
        }
    }
}

fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}
