//! Splitting one controller's objects between N replicas.
//!
//! * Membership: every replica holds a Lease `<group>-member-<identity>` labelled
//!   `multigres.com/member-of=<group>`, renewed every `lease_duration / 3`. A Lease is live while its
//!   resourceVersion has changed within the last `lease_duration`, as observed by the local clock
//!   (the client-go rule, immune to clock skew between replicas).
//! * Assignment: an object key hashes to one of [`BUCKETS`] buckets; a bucket belongs to the live
//!   member with the highest rendezvous score for it, so adding or removing one of N members moves
//!   about 1/N of the buckets.
//! * Safety (no object acted on by two replicas at once): a replica acts on a bucket only when
//!   (1) it owns the bucket in its current view, (2) it has been a member for at least one lease
//!   duration, so every other replica has seen it and finished what it started before, and (3) its
//!   own last renewal began less than half a lease duration ago. Callers bound each action to
//!   [`Partition::action_deadline`] (half a lease duration). An old owner therefore stops within
//!   `lease/3` (its next poll) + `lease/2` (its last action) < `lease` of a newcomer's arrival, and a
//!   replica that cannot renew stops before others can see its Lease expire. A replica that dies
//!   has its buckets acted on by the others at most `lease + lease/3` after its last renewal.
//! * Narrow caches: children carry `multigres.com/partition=<bucket>`, and
//!   [`Partition::watch_owned`] watches only the buckets this replica owns, restarting its watch when
//!   that set changes, so memory per replica falls as N grows. A late renewal stops the replica
//!   acting but not watching: it would own the same buckets on rejoining.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use kube::runtime::watcher::Event;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// Number of partition buckets. Fixed: changing it moves every object.
pub const BUCKETS: u32 = 64;
/// Label every child of a partitioned object carries: its bucket.
pub const PARTITION_LABEL: &str = "multigres.com/partition";
/// Label of membership Leases: the group they belong to.
pub const MEMBER_OF_LABEL: &str = "multigres.com/member-of";
/// A Lease unchanged for this many lease durations is deleted by any member.
const FORGET_AFTER_LEASES: u32 = 20;

/// The bucket of an object key (`namespace/name`): stable across versions and replicas.
pub fn bucket_of(key: &str) -> u32 {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(BUCKETS)) as u32
}

/// Rendezvous score of `member` for `bucket`.
fn score(member: &str, bucket: u32) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(member.as_bytes());
    hasher.update([0u8]);
    hasher.update(bucket.to_be_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The member that owns `bucket` (highest score; ties broken by name). `None` without members.
pub fn owner(bucket: u32, members: &[String]) -> Option<&str> {
    members
        .iter()
        .max_by(|a, b| {
            score(a, bucket)
                .cmp(&score(b, bucket))
                .then_with(|| b.cmp(a))
        })
        .map(String::as_str)
}

/// The buckets `me` owns among `members`.
pub fn owned_buckets(me: &str, members: &[String]) -> BTreeSet<u32> {
    (0..BUCKETS)
        .filter(|b| owner(*b, members) == Some(me))
        .collect()
}

/// The label selector term matching children in `buckets` (matches nothing when empty).
pub fn selector_for(buckets: &BTreeSet<u32>) -> String {
    if buckets.is_empty() {
        return format!("{PARTITION_LABEL} in (none)");
    }
    let list = buckets
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    format!("{PARTITION_LABEL} in ({list})")
}

/// The deadline of one membership call: a third of a lease.
fn call_deadline(settings: &PartitionSettings) -> Duration {
    (settings.lease_duration / 3).max(Duration::from_millis(100))
}

/// How a replica is to treat one object now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Another replica owns it: do nothing.
    NotOwned,
    /// Owned, but not safe to act yet; ask again after this long.
    Wait(Duration),
    /// Owned and safe to act on, within [`Partition::action_deadline`].
    Act,
}

#[derive(Clone, Debug)]
pub struct PartitionSettings {
    /// Name of the replica group, e.g. the controller's name.
    pub group: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// Namespace of the membership Leases.
    pub namespace: String,
    pub lease_duration: Duration,
}

/// What a replica currently believes: live members and the buckets it owns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub members: Vec<String>,
    pub owned: BTreeSet<u32>,
    /// True when the replica may act at all (member for a lease duration, renewal fresh).
    pub active: bool,
}

#[derive(Default)]
struct State {
    /// When the last successful renewal was sent.
    last_renew_start: Option<Instant>,
    /// When this replica's current membership began (answer of the first renewal after a gap).
    member_since: Option<Instant>,
    /// Per Lease name: last seen resourceVersion and when it was first seen.
    observed: HashMap<String, (String, Instant)>,
    /// When the last membership list that succeeded was sent: a member acts only on a view at most
    /// half a lease old, so a failing list cannot leave it acting on stale membership.
    last_observe_start: Option<Instant>,
    leaving: bool,
}

struct Inner {
    settings: PartitionSettings,
    api: Api<Lease>,
    state: Mutex<State>,
    view: watch::Sender<View>,
    owned: watch::Sender<BTreeSet<u32>>,
}

/// This replica's membership in a partitioned group. Cheap to clone.
#[derive(Clone)]
pub struct Partition {
    inner: Arc<Inner>,
}

/// Which buckets a partitioned cache currently reflects (set once its list for them is complete).
#[derive(Clone, Default)]
pub struct Synced(Arc<RwLock<Option<BTreeSet<u32>>>>);

impl Synced {
    pub fn covers(&self, bucket: u32) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|s| s.contains(&bucket))
    }

    fn set(&self, buckets: BTreeSet<u32>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(buckets);
    }
}

impl Partition {
    /// Joins the group: starts renewing this replica's Lease and watching the others'. The loop
    /// runs until [`Partition::leave`].
    pub fn join(client: Client, settings: PartitionSettings) -> Partition {
        let api = Api::<Lease>::namespaced(client, &settings.namespace);
        let (view, _) = watch::channel(View::default());
        let (owned, _) = watch::channel(BTreeSet::new());
        let partition = Partition {
            inner: Arc::new(Inner {
                settings,
                api,
                state: Mutex::new(State::default()),
                view,
                owned,
            }),
        };
        let looping = partition.clone();
        tokio::spawn(async move { looping.run().await });
        partition
    }

    pub fn identity(&self) -> &str {
        &self.inner.settings.identity
    }

    pub fn lease_duration(&self) -> Duration {
        self.inner.settings.lease_duration
    }

    /// The longest one action (reconcile) may take: half a lease duration.
    pub fn action_deadline(&self) -> Duration {
        self.lease_duration() / 2
    }

    fn lease_name(&self) -> String {
        let s = &self.inner.settings;
        lease_name(&s.group, &s.identity)
    }

    /// How to treat the object with key `key` (`namespace/name`) now.
    pub fn decide(&self, key: &str) -> Decision {
        self.decide_bucket(bucket_of(key), &[])
    }

    /// Like [`Partition::decide`], also waiting until every cache in `synced` covers the bucket.
    pub fn decide_with(&self, key: &str, synced: &[&Synced]) -> Decision {
        self.decide_bucket(bucket_of(key), synced)
    }

    fn decide_bucket(&self, bucket: u32, synced: &[&Synced]) -> Decision {
        let lease = self.lease_duration();
        let retry = (lease / 3).max(Duration::from_millis(100));
        if !self.inner.view.borrow().owned.contains(&bucket) {
            return Decision::NotOwned;
        }
        let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if state.leaving {
            return Decision::NotOwned;
        }
        match (state.last_renew_start, state.last_observe_start) {
            (Some(renewed), Some(observed))
                if now.duration_since(renewed) < lease / 2
                    && now.duration_since(observed) < lease / 2 => {}
            _ => return Decision::Wait(retry),
        }
        match state.member_since {
            Some(since) if now.duration_since(since) >= lease => {}
            Some(since) => return Decision::Wait(lease - now.duration_since(since)),
            None => return Decision::Wait(retry),
        }
        if synced.iter().any(|s| !s.covers(bucket)) {
            return Decision::Wait(Duration::from_millis(200));
        }
        Decision::Act
    }

    /// Whether this replica owns `key` in its current view (whether or not it may act yet).
    pub fn owns(&self, key: &str) -> bool {
        self.inner.view.borrow().owned.contains(&bucket_of(key))
    }

    /// The current view; changes whenever members, owned buckets or `active` change.
    pub fn views(&self) -> watch::Receiver<View> {
        self.inner.view.subscribe()
    }

    /// One `()` per change of the view: feed to `Controller::reconcile_all_on` so that a replica
    /// reconciles everything it newly owns.
    pub fn changes(&self) -> impl Stream<Item = ()> + Send + 'static {
        tokio_stream::wrappers::WatchStream::from_changes(self.views()).map(|_| ())
    }

    /// A watch of `api` narrowed to `base_selector` and the buckets this replica owns, restarted
    /// whenever that set changes. Feed it to a reflector; [`Synced`] says which buckets the store
    /// holds completely.
    pub fn watch_owned<K>(
        &self,
        api: Api<K>,
        base_selector: &str,
    ) -> (
        impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
        Synced,
    )
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let synced = Synced::default();
        let tracker = synced.clone();
        let owned_tx = self.inner.clone();
        let base = base_selector.to_string();
        let stream = tokio_stream::wrappers::WatchStream::new(self.inner.owned.subscribe())
            .map(move |buckets: BTreeSet<u32>| {
                let mut changed = owned_tx.owned.subscribe();
                if *changed.borrow() != buckets {
                    changed.mark_changed();
                }
                let selector = if base.is_empty() {
                    selector_for(&buckets)
                } else {
                    format!("{base},{}", selector_for(&buckets))
                };
                let tracker = tracker.clone();
                crate::caches::cache_watch(
                    api.clone(),
                    watcher::Config::default().labels(&selector),
                )
                .take_until(async move {
                    let _ = changed.changed().await;
                })
                .map(move |event| {
                    if let Ok(Event::InitDone) = &event {
                        tracker.set(buckets.clone());
                    }
                    event
                })
            })
            .flatten();
        (stream, synced)
    }

    /// Stops acting and deletes this replica's Lease, so the others take over at once.
    pub async fn leave(&self) {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .leaving = true;
        self.inner.view.send_modify(|v| v.active = false);
        let _ = self
            .inner
            .api
            .delete(&self.lease_name(), &DeleteParams::default())
            .await;
    }

    async fn run(&self) {
        let period = (self.lease_duration() / 3).max(Duration::from_millis(100));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if self.inner.state.lock().is_ok_and(|s| s.leaving) {
                return;
            }
            // Each call ends within a third of a lease, so a hung API call cannot hold the loop
            // while the replica's membership goes stale.
            let deadline = call_deadline(&self.inner.settings);
            if tokio::time::timeout(deadline, self.renew()).await.is_err() {
                tracing::warn!(?deadline, "membership lease renewal timed out");
            }
            if tokio::time::timeout(deadline, self.observe())
                .await
                .is_err()
            {
                tracing::warn!(?deadline, "membership list timed out");
                self.publish(None);
            }
        }
    }

    async fn renew(&self) {
        let s = &self.inner.settings;
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.lease_name()),
                namespace: Some(s.namespace.clone()),
                labels: Some([(MEMBER_OF_LABEL.to_string(), s.group.clone())].into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(s.identity.clone()),
                lease_duration_seconds: Some(lease_seconds(s.lease_duration)),
                renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
                ..Default::default()
            }),
        };
        let started = Instant::now();
        let params = PatchParams::apply(&format!("{}-member", s.group)).force();
        match self
            .inner
            .api
            .patch(&self.lease_name(), &params, &Patch::Apply(&lease))
            .await
        {
            Ok(_) => {
                let answered = Instant::now();
                let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
                let gap = state
                    .last_renew_start
                    .is_none_or(|t| started.duration_since(t) >= s.lease_duration);
                if gap || state.member_since.is_none() {
                    tracing::info!(identity = %s.identity, "joined partition group {}", s.group);
                    state.member_since = Some(answered);
                }
                state.last_renew_start = Some(started);
            }
            Err(error) => tracing::warn!(%error, "could not renew membership lease"),
        }
    }

    async fn observe(&self) {
        let s = &self.inner.settings;
        let selector = format!("{MEMBER_OF_LABEL}={}", s.group);
        let started = Instant::now();
        let leases = match self
            .inner
            .api
            .list(&ListParams::default().labels(&selector))
            .await
        {
            Ok(list) => list.items,
            Err(error) => {
                tracing::warn!(%error, "could not list membership leases");
                self.publish(None);
                return;
            }
        };
        let now = Instant::now();
        let mut members = Vec::new();
        let mut forget = Vec::new();
        {
            let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            let mut seen = HashMap::new();
            for lease in &leases {
                let name = lease.name_any();
                let rv = lease.resource_version().unwrap_or_default();
                let since = match state.observed.get(&name) {
                    Some((old_rv, at)) if *old_rv == rv => *at,
                    _ => now,
                };
                seen.insert(name.clone(), (rv.clone(), since));
                let holder = lease
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.holder_identity.clone())
                    .unwrap_or_default();
                let age = now.duration_since(since);
                if holder.is_empty() {
                    continue;
                }
                if holder == s.identity {
                    continue; // this replica counts itself by its own renewals
                } else if age < s.lease_duration {
                    members.push(holder);
                } else if age >= s.lease_duration * FORGET_AFTER_LEASES {
                    forget.push((name, rv));
                }
            }
            state.observed = seen;
            state.last_observe_start = Some(started);
            let fresh = state
                .last_renew_start
                .is_some_and(|t| now.duration_since(t) < s.lease_duration / 2);
            if fresh && !state.leaving {
                members.push(s.identity.clone());
            }
        }
        members.sort();
        members.dedup();
        self.publish(Some(members));
        for (name, rv) in forget {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: Some(rv),
                    uid: None,
                }),
                ..Default::default()
            };
            let _ = self.inner.api.delete(&name, &params).await;
        }
    }

    /// Publishes a new view (`None`: keep the members, re-evaluate `active`).
    fn publish(&self, members: Option<Vec<String>>) {
        let s = &self.inner.settings;
        let now = Instant::now();
        let (active, joined) = {
            let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            let active = !state.leaving
                && state
                    .last_renew_start
                    .is_some_and(|t| now.duration_since(t) < s.lease_duration / 2)
                && state
                    .last_observe_start
                    .is_some_and(|t| now.duration_since(t) < s.lease_duration / 2)
                && state
                    .member_since
                    .is_some_and(|t| now.duration_since(t) >= s.lease_duration);
            (active, state.member_since.is_some() && !state.leaving)
        };
        let members = members.unwrap_or_else(|| self.inner.view.borrow().members.clone());
        let owned = if members.contains(&s.identity) {
            owned_buckets(&s.identity, &members)
        } else {
            BTreeSet::new()
        };
        let watched = watched_buckets(&s.identity, &members, joined);
        let view = View {
            members,
            owned: owned.clone(),
            active,
        };
        let changed = self.inner.view.send_if_modified(|old| {
            if *old == view {
                false
            } else {
                *old = view.clone();
                true
            }
        });
        if changed {
            tracing::info!(
                identity = %s.identity,
                members = ?view.members,
                owned = view.owned.len(),
                active = view.active,
                "partition view changed"
            );
        }
        self.inner.owned.send_if_modified(|old| {
            if *old == watched {
                false
            } else {
                *old = watched;
                true
            }
        });
    }
}

/// The buckets a replica keeps in its caches. A member whose renewal ran late (a saturated API
/// server) stops acting at once, but keeps watching what it would own: dropping and re-listing its
/// caches when it rejoins seconds later cost the large benchmark a re-list of every pod and claim
/// per replica. Only leaving, or a change in the other members, changes what is watched.
fn watched_buckets(me: &str, members: &[String], joined: bool) -> BTreeSet<u32> {
    if !joined {
        return BTreeSet::new();
    }
    let mut with_me = members.to_vec();
    if !with_me.iter().any(|m| m == me) {
        with_me.push(me.to_string()); // ownership is by rendezvous hash: order does not matter
    }
    owned_buckets(me, &with_me)
}

/// Name of a replica's membership Lease.
pub fn lease_name(group: &str, identity: &str) -> String {
    let clean: String = format!("{group}-member-{identity}")
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    clean.chars().take(253).collect()
}

pub(crate) fn lease_seconds(duration: Duration) -> i32 {
    duration
        .as_secs_f64()
        .ceil()
        .clamp(1.0, f64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("replica-{i}")).collect()
    }

    #[test]
    fn a_member_that_misses_a_renewal_keeps_watching_its_buckets() {
        let members = names(3);
        let me = &members[1];
        let owned = owned_buckets(me, &members);
        let others: Vec<String> = members.iter().filter(|m| *m != me).cloned().collect();
        assert_eq!(watched_buckets(me, &members, true), owned);
        assert_eq!(
            watched_buckets(me, &others, true),
            owned,
            "late renewal: same watch"
        );
        assert!(
            watched_buckets(me, &members, false).is_empty(),
            "not joined, or leaving"
        );
    }

    #[test]
    fn every_bucket_has_exactly_one_owner() {
        let members = names(3);
        let mut seen = BTreeSet::new();
        for m in &members {
            let mine = owned_buckets(m, &members);
            assert!(mine.is_disjoint(&seen));
            seen.extend(mine);
        }
        assert_eq!(seen.len(), BUCKETS as usize);
        assert!(owner(0, &[]).is_none());
    }

    #[test]
    fn selectors_list_buckets_and_match_nothing_when_empty() {
        assert_eq!(
            selector_for(&BTreeSet::from([1, 5])),
            "multigres.com/partition in (1,5)"
        );
        assert_eq!(
            selector_for(&BTreeSet::new()),
            "multigres.com/partition in (none)"
        );
        assert_eq!(bucket_of("ns/a"), bucket_of("ns/a"));
        assert!(bucket_of("ns/a") < BUCKETS);
    }

    proptest! {
        /// Adding a member moves only buckets to the newcomer, about 1/(N+1) of them.
        #[test]
        fn adding_a_member_moves_about_one_nth(n in 1usize..8, salt in "[a-z]{1,6}") {
            let before: Vec<String> = (0..n).map(|i| format!("{salt}-{i}")).collect();
            let mut after = before.clone();
            let newcomer = format!("{salt}-new");
            after.push(newcomer.clone());
            let mut moved = 0;
            for b in 0..BUCKETS {
                let (old, new) = (owner(b, &before).unwrap(), owner(b, &after).unwrap());
                if old != new {
                    prop_assert_eq!(new, newcomer.as_str());
                    moved += 1;
                }
            }
            let expected = f64::from(BUCKETS) / (n as f64 + 1.0);
            // Rendezvous hashing over 64 buckets: within a generous band around 1/(N+1).
            prop_assert!((moved as f64) <= expected * 2.5 + 4.0, "moved {} expected {}", moved, expected);
        }

        /// Removing a member moves only its own buckets.
        #[test]
        fn removing_a_member_moves_only_its_buckets(n in 2usize..8, gone in 0usize..8) {
            let before = names(n);
            let gone = before[gone % n].clone();
            let after: Vec<String> = before.iter().filter(|m| **m != gone).cloned().collect();
            for b in 0..BUCKETS {
                let old = owner(b, &before).unwrap();
                if old != gone {
                    prop_assert_eq!(owner(b, &after).unwrap(), old);
                }
            }
        }
    }
}
