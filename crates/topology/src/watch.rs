//! Pooler records kept current by etcd watches (docs/performance.md, "Topology watch"). One watch
//! per cell root a controller reads: a reconcile reads memory instead of listing every pooler of the
//! cell from etcd, and a changed record wakes the shards it concerns instead of a timer.
//!
//! A watch lists the root once, then follows every change from that revision on. When it fails
//! (server gone, revision compacted) it stops answering from memory, so callers read the server
//! directly until it has listed again; and a root nobody asked about for a while is dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Event, EventType};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::client::decode;
use crate::keys::pooler_dir_of;
use crate::{MultiPooler, PoolerRecord, Result, ShardKey, TopoClient, TopoError, Transport};

/// Which server and root a watch follows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchKey {
    pub addresses: Vec<String>,
    pub transport: Transport,
    /// The cell root; the watch covers `<root>/poolers/`.
    pub root: String,
}

/// A pooler record that was written or removed: the watch that saw it and the shard the record
/// belongs to (before and after, when a rewrite moved it).
#[derive(Clone, Debug, PartialEq)]
pub struct PoolerChange {
    pub watch: WatchKey,
    pub shards: Vec<ShardKey>,
}

/// Every watch of a process; share one per controller.
pub struct PoolerWatches {
    watches: Arc<Mutex<HashMap<WatchKey, Arc<Watched>>>>,
    changes: mpsc::UnboundedSender<PoolerChange>,
    idle_after: Duration,
}

impl std::fmt::Debug for PoolerWatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolerWatches")
            .field("watches", &lock(&self.watches).len())
            .finish_non_exhaustive()
    }
}

/// How long a watch lives without being asked about.
pub const IDLE_AFTER: Duration = Duration::from_secs(600);

/// What one watch holds.
struct Watched {
    /// The records by key; `None` while the watch is not in sync with the server.
    records: Mutex<Option<BTreeMap<String, PoolerRecord>>>,
    last_asked: Mutex<Option<Instant>>,
}

impl PoolerWatches {
    /// The watches, and the changes they see (a change is sent after memory holds it).
    pub fn new(idle_after: Duration) -> (Self, mpsc::UnboundedReceiver<PoolerChange>) {
        let (changes, received) = mpsc::unbounded_channel();
        let watches = Self {
            watches: Arc::default(),
            changes,
            idle_after,
        };
        (watches, received)
    }

    /// The pooler records under `key.root`, as [`TopoClient::list_poolers`] returns them: from the
    /// watch when it is in sync, else from the server (starting the watch if there is none).
    /// The flag says whether the answer came from the watch.
    pub async fn poolers(
        &self,
        client: &TopoClient,
        key: &WatchKey,
    ) -> Result<(Vec<PoolerRecord>, bool)> {
        let watched = self.watched(client, key);
        *lock(&watched.last_asked) = Some(Instant::now());
        if let Some(records) = lock(&watched.records).as_ref() {
            return Ok((records.values().cloned().collect(), true));
        }
        Ok((client.list_poolers(&key.root).await?, false))
    }

    /// The watch of `key`, started if there is none.
    fn watched(&self, client: &TopoClient, key: &WatchKey) -> Arc<Watched> {
        let mut watches = lock(&self.watches);
        if let Some(watched) = watches.get(key) {
            return watched.clone();
        }
        let watched = Arc::new(Watched {
            records: Mutex::default(),
            last_asked: Mutex::new(Some(Instant::now())),
        });
        watches.insert(key.clone(), watched.clone());
        let follower = Follower {
            client: client.clone(),
            key: key.clone(),
            watched: watched.clone(),
            changes: self.changes.clone(),
            idle_after: self.idle_after,
        };
        let registry = self.watches.clone();
        tokio::spawn(async move {
            follower.run().await;
            let mut watches = lock(&registry);
            if watches
                .get(&follower.key)
                .is_some_and(|w| Arc::ptr_eq(w, &follower.watched))
            {
                watches.remove(&follower.key);
            }
        });
        watched
    }
}

/// The task behind one watch.
struct Follower {
    client: TopoClient,
    key: WatchKey,
    watched: Arc<Watched>,
    changes: mpsc::UnboundedSender<PoolerChange>,
    idle_after: Duration,
}

/// Why a follower stopped following.
enum Stop {
    Idle,
    Failed(TopoError),
}

impl Follower {
    /// Lists and follows until idle; after a failure, lists again with backoff.
    async fn run(&self) {
        let mut backoff = Duration::from_millis(500);
        let mut previous = None;
        loop {
            match self.follow(&mut previous).await {
                Stop::Idle => {
                    debug!(root = %self.key.root, "topology watch idle, dropped");
                    return;
                }
                Stop::Failed(error) => {
                    // Keep what was seen to tell, after the next listing, what changed meanwhile.
                    let seen = lock(&self.watched.records).take();
                    if seen.is_some() {
                        backoff = Duration::from_millis(500); // it was in sync: a fresh failure
                    }
                    previous = seen.or(previous);
                    warn!(root = %self.key.root, %error, "topology watch failed; reading directly until it resumes");
                }
            }
            if self.idle() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    async fn follow(&self, previous: &mut Option<BTreeMap<String, PoolerRecord>>) -> Stop {
        let prefix = crate::poolers_prefix(&self.key.root);
        let (entries, revision) = match self.client.list_prefix_raw_at(&prefix).await {
            Ok(listed) => listed,
            Err(error) => return Stop::Failed(error),
        };
        let mut stream = match self.client.watch_prefix(&prefix, revision).await {
            Ok(stream) => stream,
            Err(error) => return Stop::Failed(error),
        };
        let listed: BTreeMap<String, PoolerRecord> = entries
            .into_iter()
            .filter_map(|e| record(&prefix, &e.key, &e.value, e.mod_revision))
            .map(|r| (r.key.clone(), r))
            .collect();
        // After a failure, whatever changed while nobody watched wakes its shards now. The first
        // listing wakes every shard it holds: a caller that read the server before it may have
        // missed a record written in between.
        let before = previous.take().unwrap_or_default();
        self.send(changed_shards(&before, &listed));
        *lock(&self.watched.records) = Some(listed);
        let mut idle_check = tokio::time::interval(self.idle_after.min(Duration::from_secs(60)));
        loop {
            tokio::select! {
                message = stream.message() => {
                    let response = match message {
                        Ok(Some(response)) => response,
                        Ok(None) => return Stop::Failed(TopoError::Unreachable("the watch ended".into())),
                        Err(error) => return Stop::Failed(TopoError::Unreachable(error.to_string())),
                    };
                    if response.canceled() {
                        let reason = format!(
                            "the watch was canceled (compacted to {}): {}",
                            response.compact_revision(),
                            response.cancel_reason()
                        );
                        return Stop::Failed(TopoError::Server(reason));
                    }
                    let shards: Vec<ShardKey> =
                        response.events().iter().flat_map(|e| self.apply(&prefix, e)).collect();
                    self.send(shards);
                }
                _ = idle_check.tick() => {
                    if self.idle() {
                        return Stop::Idle;
                    }
                }
            }
        }
    }

    /// Applies one event to memory; returns the shards whose records it touched.
    fn apply(&self, prefix: &str, event: &Event) -> Vec<ShardKey> {
        let Some(kv) = event.kv() else {
            return Vec::new();
        };
        let Ok(key) = kv.key_str() else {
            return Vec::new();
        };
        let mut records = lock(&self.watched.records);
        let Some(records) = records.as_mut() else {
            return Vec::new();
        };
        let before = records.remove(key);
        let after = match event.event_type() {
            EventType::Put => record(prefix, key, kv.value(), kv.mod_revision()),
            EventType::Delete => None,
        };
        let mut shards: Vec<ShardKey> = before
            .iter()
            .chain(after.iter())
            .filter_map(|r| r.pooler.shard_key.clone())
            .collect();
        shards.dedup();
        if let Some(after) = after {
            records.insert(after.key.clone(), after);
        }
        shards
    }

    fn send(&self, shards: Vec<ShardKey>) {
        if shards.is_empty() {
            return;
        }
        let change = PoolerChange {
            watch: self.key.clone(),
            shards,
        };
        // The receiver goes only when the controller stops.
        let _ = self.changes.send(change);
    }

    fn idle(&self) -> bool {
        lock(&self.watched.last_asked).is_none_or(|at| at.elapsed() > self.idle_after)
    }
}

/// A pooler record, as [`TopoClient::list_poolers`] reads it: `<dir>/Pooler` files that decode.
fn record(prefix: &str, key: &str, value: &[u8], mod_revision: i64) -> Option<PoolerRecord> {
    pooler_dir_of(prefix, key)?;
    match decode::<MultiPooler>(key, value) {
        Ok(pooler) => Some(PoolerRecord {
            key: key.to_string(),
            mod_revision,
            pooler,
        }),
        Err(err) => {
            warn!(%err, "skipping undecodable pooler record");
            None
        }
    }
}

/// The shards of every record that differs between `before` and `after`.
fn changed_shards(
    before: &BTreeMap<String, PoolerRecord>,
    after: &BTreeMap<String, PoolerRecord>,
) -> Vec<ShardKey> {
    let mut shards: Vec<ShardKey> = Vec::new();
    let keys = before.keys().chain(after.keys());
    for key in keys {
        let (old, new) = (before.get(key), after.get(key));
        if old.map(|r| (&r.pooler, r.mod_revision)) == new.map(|r| (&r.pooler, r.mod_revision)) {
            continue;
        }
        for shard in old
            .iter()
            .chain(new.iter())
            .filter_map(|r| r.pooler.shard_key.as_ref())
        {
            if !shards.contains(shard) {
                shards.push(shard.clone());
            }
        }
    }
    shards
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooler(key: &str, shard: &str, revision: i64) -> (String, PoolerRecord) {
        let record = PoolerRecord {
            key: key.into(),
            mod_revision: revision,
            pooler: MultiPooler {
                shard_key: Some(ShardKey {
                    database: "postgres".into(),
                    table_group: "default".into(),
                    shard: shard.into(),
                }),
                ..Default::default()
            },
        };
        (key.into(), record)
    }

    #[test]
    fn after_a_gap_only_the_shards_whose_records_changed_wake() {
        let before = BTreeMap::from([
            pooler("a", "0", 1),
            pooler("b", "1", 1),
            pooler("c", "2", 1),
        ]);
        let after = BTreeMap::from([
            pooler("a", "0", 1),
            pooler("b", "1", 5),
            pooler("d", "3", 6),
        ]);
        let shards: Vec<String> = changed_shards(&before, &after)
            .into_iter()
            .map(|s| s.shard)
            .collect();
        // b rewritten, c removed, d added; a untouched.
        assert_eq!(shards, ["1", "2", "3"]);
    }
}
