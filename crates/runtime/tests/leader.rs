//! Leader election against a real control plane: two in-process contenders for one Lease.
//!
//! Each contender's work records when it starts and runs until cancelled (or told to finish); a
//! counter of running works proves that no two ever overlap.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use multigres_e2e::{shared, wait_for};
use multigres_runtime::leader::{LeaderError, run_when_leader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const LEASE: Duration = Duration::from_secs(2);
const LEASE_NAME: &str = "test-leader";
const WAIT: Duration = Duration::from_secs(60);

/// Works currently running, and the most that ever ran at once.
#[derive(Default)]
struct Running {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// Decrements the running count however the work ends (finished, dropped on abort or step-down).
struct RunningGuard(Arc<Running>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Contender {
    task: JoinHandle<Result<&'static str, LeaderError>>,
    /// Ends the work gracefully.
    finish: Option<oneshot::Sender<()>>,
}

/// Starts a contender; its work sends `(identity, start instant)` on `started` when it begins.
fn contend(
    namespace: &str,
    identity: &'static str,
    running: Arc<Running>,
    started: mpsc::UnboundedSender<(&'static str, Instant)>,
) -> Contender {
    let (finish, finished) = oneshot::channel::<()>();
    let client = shared().client();
    let namespace = namespace.to_string();
    let work = async move {
        let now = running.now.fetch_add(1, Ordering::SeqCst) + 1;
        running.max.fetch_max(now, Ordering::SeqCst);
        let _guard = RunningGuard(running);
        let _ = started.send((identity, Instant::now()));
        let _ = finished.await;
        identity
    };
    let task = tokio::spawn(async move {
        run_when_leader(client, &namespace, LEASE_NAME, identity, LEASE, work).await
    });
    Contender {
        task,
        finish: Some(finish),
    }
}

async fn next_start(
    started: &mut mpsc::UnboundedReceiver<(&'static str, Instant)>,
) -> (&'static str, Instant) {
    tokio::time::timeout(WAIT, started.recv())
        .await
        .expect("a contender starts leading in time")
        .expect("contenders alive")
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

/// Two contenders, one leads; returns (leader, standby, leader's start instant).
async fn two_contenders(
    namespace: &str,
    running: &Arc<Running>,
) -> (
    (&'static str, Contender),
    (&'static str, Contender),
    mpsc::UnboundedReceiver<(&'static str, Instant)>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let a = contend(namespace, "a", running.clone(), tx.clone());
    let b = contend(namespace, "b", running.clone(), tx);
    let (first, _) = next_start(&mut rx).await;
    let leases = Api::<Lease>::namespaced(shared().client(), namespace);
    let lease = leases.get(LEASE_NAME).await.unwrap();
    assert_eq!(holder(&lease), Some(first), "the Lease names the leader");
    if first == "a" {
        (("a", a), ("b", b), rx)
    } else {
        (("b", b), ("a", a), rx)
    }
}

/// Waits (by watch) until the leader has renewed the Lease `renewals` times, i.e. for about
/// `renewals * LEASE / 3`.
async fn renewals(namespace: &str, renewals: usize) {
    let leases = Api::<Lease>::namespaced(shared().client(), namespace);
    let seen = Mutex::new(HashSet::new());
    wait_for(&leases, LEASE_NAME, WAIT, |lease| {
        let mut seen = seen.lock().unwrap();
        seen.insert(lease.resource_version().unwrap_or_default());
        seen.len() > renewals
    })
    .await
    .expect("the leader keeps renewing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_a_crashed_leader_is_replaced_within_two_lease_periods() {
    let ns = shared().namespace("leader-crash").await.unwrap();
    let running = Arc::new(Running::default());
    let ((leader, leading), (standby, _standby), mut started) = two_contenders(&ns, &running).await;

    // While the leader renews (a little over one lease period), the standby never starts.
    let watched = Instant::now();
    renewals(&ns, 4).await;
    assert!(
        started.try_recv().is_err(),
        "{standby} started while {leader} held a live Lease"
    );
    eprintln!("standby stayed out for {:?} of renewals", watched.elapsed());

    // A crash: the leader's task vanishes without releasing the Lease.
    leading.task.abort();
    let _ = leading.task.await;
    let crashed = Instant::now();
    let (next, at) = next_start(&mut started).await;
    let takeover = at - crashed;
    eprintln!("takeover after a crash: {takeover:?} (lease {LEASE:?})");
    assert_eq!(next, standby);
    assert!(
        takeover < LEASE * 2,
        "took over in {takeover:?}, over two lease periods"
    );
    assert!(
        takeover >= LEASE / 2,
        "took over in {takeover:?}: the crashed leader's Lease was not respected"
    );
    assert_eq!(
        running.max.load(Ordering::SeqCst),
        1,
        "two works overlapped"
    );
    let lease = Api::<Lease>::namespaced(shared().client(), &ns)
        .get(LEASE_NAME)
        .await
        .unwrap();
    assert_eq!(holder(&lease), Some(standby));
    assert_eq!(lease.spec.unwrap().lease_transitions, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_finishes_releases_the_lease_and_the_standby_takes_over_quickly() {
    let ns = shared().namespace("leader-release").await.unwrap();
    let running = Arc::new(Running::default());
    let ((leader, mut leading), (standby, _standby), mut started) =
        two_contenders(&ns, &running).await;
    renewals(&ns, 1).await;

    let finished = Instant::now();
    leading.finish.take().unwrap().send(()).unwrap();
    let output = leading.task.await.unwrap().expect("a graceful end is Ok");
    assert_eq!(output, leader, "the work's output comes back");
    let (next, at) = next_start(&mut started).await;
    let takeover = at - finished;
    eprintln!("takeover after a release: {takeover:?} (lease {LEASE:?})");
    assert_eq!(next, standby);
    assert!(
        takeover < LEASE,
        "took over in {takeover:?}: the Lease was not released"
    );
    assert_eq!(
        running.max.load(Ordering::SeqCst),
        1,
        "two works overlapped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_drops_its_work_and_returns_lost() {
    let ns = shared().namespace("leader-lost").await.unwrap();
    let running = Arc::new(Running::default());
    let (tx, mut started) = mpsc::unbounded_channel();
    let leading = contend(&ns, "a", running.clone(), tx);
    next_start(&mut started).await;

    // Someone else writes itself in as holder (as after a partition that outlived the Lease).
    let leases = Api::<Lease>::namespaced(shared().client(), &ns);
    // The leader renews concurrently: retry on a resourceVersion conflict.
    loop {
        let mut lease = leases.get(LEASE_NAME).await.unwrap();
        lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
        match leases
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => panic!("taking the Lease: {e}"),
        }
    }
    let taken = Instant::now();
    let result = tokio::time::timeout(WAIT, leading.task)
        .await
        .expect("the leader steps down")
        .unwrap();
    eprintln!(
        "stepped down {:?} after the Lease was taken",
        taken.elapsed()
    );
    assert!(matches!(result, Err(LeaderError::Lost(name)) if name == LEASE_NAME));
    assert_eq!(
        running.now.load(Ordering::SeqCst),
        0,
        "the work was dropped"
    );
    let lease = leases.get(LEASE_NAME).await.unwrap();
    assert_eq!(
        holder(&lease),
        Some("intruder"),
        "the loser does not release"
    );
}
