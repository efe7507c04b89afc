//! The gRPC API in-process: a server on 127.0.0.1:0 fed through its Hub, and the client module.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use multigres_api::{MultigresClusterStatus, Tristate};
use multigres_status_aggregator::server::{self, Hub, Snapshot};
use multigres_status_api::client::{StatusEvent, StatusSubscription};
use tokio::sync::oneshot;

const STEP: Duration = Duration::from_secs(10);

fn status(ready: i32) -> MultigresClusterStatus {
    MultigresClusterStatus {
        observed_generation: Some(1),
        cell_count: Some(1),
        ready_instances_summary: Some(format!("{ready}/3")),
        multiadmin: Some(multigres_api::cluster::MultiAdminSummary {
            available: Tristate::True,
            service_name: "c-multiadmin".into(),
        }),
        ..Default::default()
    }
}

fn snapshot(entries: &[(&str, &str, MultigresClusterStatus)]) -> Snapshot {
    entries
        .iter()
        .map(|(ns, name, s)| ((ns.to_string(), name.to_string()), s.clone()))
        .collect()
}

struct Running {
    addr: SocketAddr,
    hub: Option<Hub>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        drop(self.hub.take());
        let _ = self.stop.take().unwrap().send(());
        let _ = tokio::time::timeout(STEP, self.task).await;
    }
    fn hub(&self) -> &Hub {
        self.hub.as_ref().unwrap()
    }
}

async fn start(addr: &str) -> Running {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (hub, reader) = Hub::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, reader, None, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        hub: Some(hub),
        stop: Some(stop),
        task,
    }
}

async fn next<S: futures::Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(STEP, stream.next())
        .await
        .expect("no message within 10s")
        .expect("stream ended")
}

#[tokio::test]
async fn get_and_watch_one_cluster_follow_the_hub() {
    let server = start("127.0.0.1:0").await;
    let client = StatusSubscription::connect(&server.addr.to_string(), None).unwrap();

    let err = client.get("ns", "c").await.unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::Unavailable,
        "before the caches synced"
    );

    server.hub().publish(snapshot(&[("ns", "c", status(1))]));
    assert_eq!(client.get("ns", "c").await.unwrap(), status(1));
    assert_eq!(
        client.get("ns", "other").await.unwrap_err().code(),
        tonic::Code::NotFound
    );

    let mut watch = Box::pin(client.watch("ns", "c"));
    assert_eq!(next(&mut watch).await, status(1), "current value at once");
    // Another cluster changing, or an equal snapshot, sends nothing for this one.
    assert!(!server.hub().publish(snapshot(&[("ns", "c", status(1))])));
    server
        .hub()
        .publish(snapshot(&[("ns", "c", status(1)), ("ns", "d", status(0))]));
    server
        .hub()
        .publish(snapshot(&[("ns", "c", status(2)), ("ns", "d", status(0))]));
    assert_eq!(next(&mut watch).await, status(2), "the change, and only it");
    server.stop().await;
}

#[tokio::test]
async fn watch_all_sends_everything_then_synced_then_changes_and_removals() {
    let server = start("127.0.0.1:0").await;
    server.hub().publish(snapshot(&[
        ("ns1", "a", status(1)),
        ("ns2", "b", status(2)),
    ]));
    let client = StatusSubscription::connect(&format!("http://{}", server.addr), None).unwrap();
    let mut all = Box::pin(client.watch_all(None));
    let mut first = [next(&mut all).await, next(&mut all).await];
    first.sort_by_key(|e| format!("{e:?}"));
    assert!(
        matches!(&first[0], StatusEvent::Status { cluster, status: s } if cluster.name == "a" && *s == status(1))
    );
    assert!(
        matches!(&first[1], StatusEvent::Status { cluster, .. } if cluster.name == "b" && cluster.namespace.as_deref() == Some("ns2"))
    );
    assert_eq!(next(&mut all).await, StatusEvent::Synced);

    server.hub().publish(snapshot(&[("ns1", "a", status(3))]));
    let mut changes = [next(&mut all).await, next(&mut all).await];
    changes.sort_by_key(|e| format!("{e:?}"));
    assert!(
        matches!(&changes[0], StatusEvent::Removed { cluster } if cluster.name == "b"),
        "{changes:?}"
    );
    assert!(
        matches!(&changes[1], StatusEvent::Status { status: s, .. } if *s == status(3)),
        "{changes:?}"
    );

    // One namespace only.
    let mut ns2 = Box::pin(client.watch_all(Some("ns2")));
    assert_eq!(
        next(&mut ns2).await,
        StatusEvent::Synced,
        "ns2 has no cluster now"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_client_reports_an_outage_and_catches_up_after_a_restart() {
    let server = start("127.0.0.1:0").await;
    let addr = server.addr;
    server.hub().publish(snapshot(&[("ns", "a", status(1))]));
    let client = StatusSubscription::connect(&addr.to_string(), None).unwrap();
    let mut all = Box::pin(client.watch_all(None));
    let mut one = Box::pin(client.watch("ns", "a"));
    assert!(matches!(next(&mut all).await, StatusEvent::Status { .. }));
    assert_eq!(next(&mut all).await, StatusEvent::Synced);
    assert_eq!(next(&mut one).await, status(1));

    server.stop().await;
    assert!(matches!(
        next(&mut all).await,
        StatusEvent::Disconnected { .. }
    ));

    // Back on the same address with a newer state: both streams catch up by themselves.
    let started = std::time::Instant::now();
    let server = start(&addr.to_string()).await;
    server.hub().publish(snapshot(&[("ns", "a", status(3))]));
    assert!(
        matches!(next(&mut all).await, StatusEvent::Status { status: s, .. } if s == status(3))
    );
    assert_eq!(next(&mut all).await, StatusEvent::Synced);
    assert_eq!(next(&mut one).await, status(3));
    eprintln!("caught up {:?} after the restart", started.elapsed());
    server.stop().await;
}
