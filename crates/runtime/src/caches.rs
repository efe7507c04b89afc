//! "Have this controller's caches synced?", answered once per process and shared. kube's
//! `Store::wait_until_ready` remembers only its latest waiter (a oneshot receiver behind a lock), so two
//! tasks waiting on one store can sleep forever; every wait goes through this watch channel instead.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
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

/// What a controller can cache and be triggered by: a typed object of a known kind.
pub trait Cacheable:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Cacheable for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// The objects that trigger a controller, from a reflected watch, taken only once the store holds
/// them: `Apply` events as they come and, after a (re)list, every stored object at `InitDone`.
/// kube's `applied_objects()` yields a relist's `InitApply` objects before the reflector swaps them
/// into the store, so a reconcile they trigger reads the object as it was before the relist and
/// nothing triggers it again: after an API server restart (watches resume with a relist) edits were
/// missed for minutes in the chaos suite (docs/reliability.md).
///
/// Watch errors end here (logged; each watch already backs off on its own in [`cache_watch`]). A
/// `Controller` puts all its trigger streams together behind one backoff that grows with every
/// error from any of them and is reset only by an object: after an API server restart a controller
/// with nine watches slept 140 s in total, polling none of its watches, and missed every edit of
/// that time (docs/reliability.md).
pub fn applied<K, S>(
    events: S,
    store: &Store<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K, S>
where
    K: Cacheable,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    stored(events, store.clone(), false)
}

/// [`applied`], with deleted objects too (children whose owner must look again).
pub fn touched<K, S>(
    events: S,
    store: &Store<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K, S>
where
    K: Cacheable,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    stored(events, store.clone(), true)
}

fn stored<K, S>(
    events: S,
    store: Store<K>,
    deleted: bool,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Cacheable,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    events.flat_map(move |event| {
        let objects: Vec<Result<K, watcher::Error>> = match event {
            Ok(watcher::Event::Apply(o)) => vec![Ok(o)],
            Ok(watcher::Event::Delete(o)) if deleted => vec![Ok(o)],
            Ok(watcher::Event::InitDone) => store.state().iter().map(|o| Ok(K::clone(o))).collect(),
            Ok(_) => Vec::new(),
            Err(error) => {
                tracing::warn!(%error, "watch failed; it retries with backoff");
                Vec::new()
            }
        };
        futures::stream::iter(objects)
    })
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
    K: Cacheable,
{
    let (store, events) = reflected(api, watcher::Config::default().labels(selector));
    let triggers = touched(events, &store);
    (store, triggers)
}

/// A controller's cache of its own kind and the stream of changed objects that drives it, for
/// `Controller::for_stream`: what `Controller::new` builds, with [`cache_watch`]'s trimming.
pub fn primary_watch<K>(
    api: kube::Api<K>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Cacheable,
{
    let (store, events) = reflected(api, watcher::Config::default());
    let triggers = applied(events, &store);
    (store, triggers)
}

/// A store filled by [`cache_watch`], and the watch events it was filled with.
fn reflected<K: Cacheable>(
    api: kube::Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) {
    let (store, writer) = kube::runtime::reflector::store();
    (store, cache_watch(api, config).reflect(writer))
}

/// Server-side timeout of every watch (the API server's default is about 5 minutes).
pub const WATCH_TIMEOUT_SECONDS: u32 = 60;

/// The watch every cache here is filled from: bounded, retried with backoff, and with
/// `managedFields` dropped before an object is stored (see [`without_managed_fields`]).
pub fn cache_watch<K>(
    api: kube::Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let kind = std::any::type_name::<K>()
        .rsplit("::")
        .next()
        .unwrap_or("object")
        .to_string();
    // A bounded watch: the API server ends it after WATCH_TIMEOUT_SECONDS and the watcher resumes
    // from the last resourceVersion (no relist). The chaos suite saw watches opened while a
    // restarted API server was coming up deliver nothing for minutes (docs/reliability.md); this
    // bounds how long a cache can miss changes that way.
    let config = if config.timeout.is_none() {
        config.timeout(WATCH_TIMEOUT_SECONDS)
    } else {
        config
    };
    without_managed_fields(watcher(api, config).default_backoff()).inspect(move |item| {
        crate::liveness::liveness().watch_result(&kind, item.is_ok(), std::time::Instant::now())
    })
}

/// Drops `managedFields` from every object of a watch. Nothing here reads them, and they are the
/// bulk of a cached object (entries of the scheduler, the kubelet and each controller, each a JSON
/// tree): heaptrack put them at 59 % of the shard-controller's peak heap and 87 % of the
/// cell-controller's in the benchmark (docs/performance.md).
pub fn without_managed_fields<K, S>(
    stream: S,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: kube::Resource,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    stream.modify(|object: &mut K| object.managed_fields_mut().clear())
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

    fn config_map(name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some([("v".to_string(), value.to_string())].into()),
            ..Default::default()
        }
    }

    /// A relist's objects trigger only once the store holds them, and then as stored.
    #[tokio::test]
    async fn a_relist_triggers_what_the_store_holds_after_it() {
        let (reader, writer) = store::<ConfigMap>();
        let events = futures::stream::iter(vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(config_map("a", "old"))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(config_map("a", "new"))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(config_map("b", "1"))),
            Ok(watcher::Event::Delete(config_map("b", "1"))),
        ]);
        let reflected = kube::runtime::reflector::reflector(writer, events);
        // Each trigger with what the store held for it at that moment (what a reconcile reads).
        let seen: Vec<(String, String)> = applied(reflected, &reader)
            .map(|o| {
                let o = o.expect("no error");
                let stored = reader
                    .get(&kube::runtime::reflector::ObjectRef::from_obj(&o))
                    .and_then(|s| s.data.clone())
                    .map(|d| d["v"].clone())
                    .unwrap_or_default();
                (o.metadata.name.unwrap(), stored)
            })
            .collect()
            .await;
        assert_eq!(
            seen,
            [("a", "old"), ("a", "new"), ("b", "1")].map(|(n, v)| (n.to_string(), v.to_string()))
        );
    }

    /// A watch error never reaches the controller (whose trigger backoff would pause every watch).
    #[tokio::test]
    async fn watch_errors_stop_at_the_cache() {
        let (reader, writer) = store::<ConfigMap>();
        let events = futures::stream::iter(vec![
            Err(watcher::Error::NoResourceVersion),
            Ok(watcher::Event::Apply(config_map("a", "1"))),
            Err(watcher::Error::NoResourceVersion),
            Ok(watcher::Event::Delete(config_map("a", "1"))),
        ]);
        let reflected = kube::runtime::reflector::reflector(writer, events);
        let triggers: Vec<_> = touched(reflected, &reader).collect().await;
        assert_eq!(triggers.len(), 2);
        assert!(triggers.iter().all(Result::is_ok), "{triggers:?}");
    }

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

    #[tokio::test]
    async fn cached_objects_arrive_without_managed_fields() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("a".into());
        cm.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("kubelet".into()),
            ..Default::default()
        }]);
        let events = futures::stream::iter([
            Ok(watcher::Event::InitApply(cm.clone())),
            Ok(watcher::Event::Apply(cm)),
        ]);
        let seen: Vec<_> = without_managed_fields(events).collect().await;
        assert_eq!(seen.len(), 2);
        for event in seen {
            match event {
                Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => {
                    assert_eq!(o.name_any(), "a");
                    assert!(o.managed_fields().is_empty());
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
    }
}
