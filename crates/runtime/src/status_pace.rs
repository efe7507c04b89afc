//! Paces status writes that only report progress (docs/performance.md, "Status writes"). While
//! pods come up one by one, every Ready pod changes a count and a message; writing each costs an
//! API write here and a reconcile of every parent that watches the status. A write that changes
//! anything else (a condition's status or reason, the generation, the primary) goes at once, so
//! nothing that decides availability waits.
//!
//! Progress writes share a budget per process: with N objects holding progress, each waits at
//! least N / [`PROGRESS_BUDGET`] seconds, so a fleet coming up at once (1,000 Shards) spends its
//! API writes on pods rather than on counts, and a few objects still show theirs every 30 s.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a progress-only write waits at least after the last write of the same object.
pub const PROGRESS_WINDOW: Duration = Duration::from_secs(30);

/// Progress-only writes per second that all the objects of a process share.
pub const PROGRESS_BUDGET: f64 = 1.0;

/// An object that held progress and has not asked again for this long no longer counts against
/// the budget (one whose reconciles moved to another replica). One still holding asks at every
/// reconcile, which at 1,000 Shards comes minutes apart, not seconds.
const WAITING_FORGOTTEN: Duration = Duration::from_secs(15 * 60);

/// How long this process's own last write counts as newer than its cache: a watch delivers a
/// write within milliseconds, and an edit by anyone else after that is seen in the cache.
pub const OWN_WRITE_FRESH: Duration = Duration::from_secs(5);

/// When this process last wrote each object's status, and what it wrote.
#[derive(Debug)]
pub struct StatusPace<S> {
    window: Duration,
    budget: f64,
    inner: Mutex<Paced<S>>,
}

#[derive(Debug)]
struct Paced<S> {
    written: HashMap<String, (Instant, S)>,
    /// Objects holding a progress-only write, by when they last asked.
    waiting: HashMap<String, Instant>,
}

impl<S: Clone> Default for StatusPace<S> {
    fn default() -> Self {
        Self::new(PROGRESS_WINDOW, PROGRESS_BUDGET)
    }
}

impl<S: Clone> StatusPace<S> {
    pub fn new(window: Duration, budget: f64) -> Self {
        Self {
            window,
            budget,
            inner: Mutex::new(Paced {
                written: HashMap::new(),
                waiting: HashMap::new(),
            }),
        }
    }

    /// How long the write of `key`'s status should wait; `None`: write it now. Only a
    /// progress-only change waits, and only within the window after this process's last write:
    /// 30 s, or longer while more objects than the budget serves in that time hold progress.
    pub fn hold(&self, key: &str, progress_only: bool) -> Option<Duration> {
        let mut paced = self.lock();
        if !progress_only {
            paced.waiting.remove(key);
            return None;
        }
        let since = paced.written.get(key)?.0.elapsed();
        let now = Instant::now();
        paced.waiting.insert(key.to_string(), now);
        paced
            .waiting
            .retain(|_, asked| now.duration_since(*asked) < WAITING_FORGOTTEN);
        let shared = Duration::from_secs_f64(paced.waiting.len() as f64 / self.budget);
        let window = self.window.max(shared);
        if since < window {
            Some(window - since)
        } else {
            paced.waiting.remove(key);
            None
        }
    }

    /// The status to compare the next one with: what this process wrote moments ago, which a
    /// reconcile that starts before the watch delivers the write would not see in its cache (it
    /// would write again what is already there); otherwise the cached `cached`.
    pub fn current(&self, key: &str, cached: Option<&S>) -> Option<S> {
        match self.lock().written.get(key) {
            Some((at, written)) if at.elapsed() < OWN_WRITE_FRESH => Some(written.clone()),
            _ => cached.cloned(),
        }
    }

    /// Notes that `key`'s status has nothing to write: it no longer holds progress.
    pub fn unchanged(&self, key: &str) {
        self.lock().waiting.remove(key);
    }

    /// Records a write of `key`'s status.
    pub fn wrote(&self, key: &str, status: &S) {
        let mut paced = self.lock();
        paced.waiting.remove(key);
        paced
            .written
            .insert(key.to_string(), (Instant::now(), status.clone()));
    }

    /// Forgets an object that is going.
    pub fn forget(&self, key: &str) {
        let mut paced = self.lock();
        paced.written.remove(key);
        paced.waiting.remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Paced<S>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_progress_after_a_recent_write_waits_and_only_for_the_rest_of_the_window() {
        let pace = StatusPace::new(Duration::from_secs(60), PROGRESS_BUDGET);
        assert_eq!(pace.hold("ns/a", true), None, "nothing written yet");
        pace.wrote("ns/a", &1);
        let held = pace
            .hold("ns/a", true)
            .expect("progress within the window waits");
        assert!(held > Duration::from_secs(59) && held <= Duration::from_secs(60));
        assert_eq!(
            pace.hold("ns/a", false),
            None,
            "anything else is written at once"
        );
        assert_eq!(pace.hold("ns/b", true), None, "per object");
        pace.forget("ns/a");
        assert_eq!(pace.hold("ns/a", true), None);
        let short = StatusPace::new(Duration::ZERO, f64::INFINITY);
        short.wrote("ns/a", &1);
        assert_eq!(short.hold("ns/a", true), None, "after the window");
    }

    #[test]
    fn a_fresh_own_write_is_newer_than_the_cache() {
        let pace = StatusPace::default();
        assert_eq!(pace.current("ns/a", Some(&1)), Some(1), "nothing written");
        pace.wrote("ns/a", &2);
        assert_eq!(pace.current("ns/a", Some(&1)), Some(2), "the cache lags");
        assert_eq!(pace.current("ns/b", None), None);
        pace.lock().written.get_mut("ns/a").unwrap().0 -= OWN_WRITE_FRESH;
        assert_eq!(pace.current("ns/a", Some(&3)), Some(3), "then the cache");
    }

    #[test]
    fn many_objects_holding_progress_share_the_budget() {
        let pace = StatusPace::new(Duration::from_secs(30), 1.0);
        let age = |key: &str, by: Duration| pace.lock().written.get_mut(key).unwrap().0 -= by;
        for i in 0..90 {
            pace.wrote(&format!("ns/{i}"), &0);
            age(&format!("ns/{i}"), Duration::from_secs(10));
        }
        // 90 objects hold progress within their 30 s window.
        for i in 0..90 {
            assert!(pace.hold(&format!("ns/{i}"), true).is_some());
        }
        // 40 s later: past the 30 s window, but 90 objects share the budget, 90 s each.
        for i in 0..90 {
            age(&format!("ns/{i}"), Duration::from_secs(40));
        }
        let held = pace.hold("ns/1", true).expect("shares the budget");
        assert!(held > Duration::from_secs(35) && held <= Duration::from_secs(40));
        // Those that stop holding (a transition, written at once; nothing left to write) free
        // the budget.
        for i in 2..50 {
            assert_eq!(pace.hold(&format!("ns/{i}"), false), None);
        }
        for i in 50..90 {
            pace.unchanged(&format!("ns/{i}"));
        }
        assert_eq!(pace.hold("ns/1", true), None, "back to the 30 s window");
    }
}
