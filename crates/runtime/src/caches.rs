//! "Have this controller's caches synced?", answered once per process and shared. kube's
//! `Store::wait_until_ready` remembers only its latest waiter (a oneshot receiver behind a lock), so two
//! tasks waiting on one store can sleep forever; every wait goes through this watch channel instead.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio::sync::watch;

use crate::health::Readiness;

#[derive(Clone)]
pub struct CachesReady {
    rx: watch::Receiver<bool>,
}

impl CachesReady {
    /// Awaits every store in one task, then marks the caches (and `/readyz`) ready.
    pub fn spawn(stores: Vec<BoxFuture<'static, ()>>, readiness: Readiness) -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            for store in stores {
                store.await;
            }
            readiness.set_ready(true);
            let _ = tx.send(true);
        });
        Self { rx }
    }

    pub fn is_ready(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits up to `within` for the caches; false when they are still syncing.
    pub async fn wait(&self, within: Duration) -> bool {
        let mut rx = self.rx.clone();
        matches!(
            tokio::time::timeout(within, rx.wait_for(|ready| *ready)).await,
            Ok(Ok(_))
        )
    }
}

/// Passes `stream` through and resolves the returned future once its watcher has listed everything
/// (the first `InitDone`). For a store that a `Controller` also waits on (`Controller::for_stream`),
/// use this rather than [`store`]: a second waiter on the store could take the controller's wakeup.
pub fn tap<K, E, S>(
    stream: S,
) -> (
    impl Stream<Item = Result<watcher::Event<K>, E>> + Send,
    BoxFuture<'static, ()>,
)
where
    S: Stream<Item = Result<watcher::Event<K>, E>> + Send,
    K: Send,
{
    let (tx, mut rx) = watch::channel(false);
    let tapped = stream.inspect(move |event| {
        if let Ok(watcher::Event::InitDone) = event {
            let _ = tx.send(true);
        }
    });
    let synced = Box::pin(async move {
        let _ = rx.wait_for(|synced| *synced).await;
    });
    (tapped, synced)
}

/// A cache of a controller's children, narrowed to `selector`, and the stream of changed children
/// that triggers the controller (`Controller::owns_stream`).
pub fn child_watch<K>(
    api: kube::Api<K>,
    selector: &str,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::WatchStreamExt;
    let (store, writer) = kube::runtime::reflector::store();
    let stream = watcher(api, watcher::Config::default().labels(selector))
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    (store, stream)
}

/// The wait for one store, for [`CachesReady::spawn`]. Only for stores nothing else waits on.
pub fn store<K>(store: Store<K>) -> BoxFuture<'static, ()>
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    Box::pin(async move {
        let _ = store.wait_until_ready().await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector::store;

    #[tokio::test]
    async fn every_waiter_wakes_when_the_store_syncs() {
        let (reader, mut writer) = store::<ConfigMap>();
        let caches = CachesReady::spawn(vec![super::store(reader)], Readiness::default());
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let caches = caches.clone();
                tokio::spawn(async move { caches.wait(Duration::from_secs(5)).await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(!caches.is_ready());
        writer.apply_watcher_event(&kube::runtime::watcher::Event::InitDone);
        for waiter in waiters {
            assert!(waiter.await.unwrap(), "a waiter missed the wakeup");
        }
    }
}
