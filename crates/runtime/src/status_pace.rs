//! Paces status writes that only report progress (docs/performance.md, "Status writes"). While
//! pods come up one by one, every Ready pod changes a count and a message; writing each costs an
//! API write here and a reconcile of every parent that watches the status. A write that changes
//! anything else (a condition's status or reason, the generation, the primary) goes at once, so
//! nothing that decides availability waits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a progress-only write waits after the last write of the same object.
pub const PROGRESS_WINDOW: Duration = Duration::from_secs(30);

/// How long this process's own last write counts as newer than its cache: a watch delivers a
/// write within milliseconds, and an edit by anyone else after that is seen in the cache.
pub const OWN_WRITE_FRESH: Duration = Duration::from_secs(5);

/// When this process last wrote each object's status, and what it wrote.
#[derive(Debug)]
pub struct StatusPace<S> {
    window: Duration,
    last: Mutex<HashMap<String, (Instant, S)>>,
}

impl<S: Clone> Default for StatusPace<S> {
    fn default() -> Self {
        Self::new(PROGRESS_WINDOW)
    }
}

impl<S: Clone> StatusPace<S> {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last: Mutex::default(),
        }
    }

    /// How long the write of `key`'s status should wait; `None`: write it now. Only a
    /// progress-only change waits, and only within the window after this process's last write.
    pub fn hold(&self, key: &str, progress_only: bool) -> Option<Duration> {
        if !progress_only {
            return None;
        }
        let since = self.lock().get(key)?.0.elapsed();
        (since < self.window).then(|| self.window - since)
    }

    /// The status to compare the next one with: what this process wrote moments ago, which a
    /// reconcile that starts before the watch delivers the write would not see in its cache (it
    /// would write again what is already there); otherwise the cached `cached`.
    pub fn current(&self, key: &str, cached: Option<&S>) -> Option<S> {
        match self.lock().get(key) {
            Some((at, written)) if at.elapsed() < OWN_WRITE_FRESH => Some(written.clone()),
            _ => cached.cloned(),
        }
    }

    /// Records a write of `key`'s status.
    pub fn wrote(&self, key: &str, status: &S) {
        self.lock()
            .insert(key.to_string(), (Instant::now(), status.clone()));
    }

    /// Forgets an object that is going.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, S)>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_progress_after_a_recent_write_waits_and_only_for_the_rest_of_the_window() {
        let pace = StatusPace::new(Duration::from_secs(60));
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
        let short = StatusPace::new(Duration::ZERO);
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
        pace.last.lock().unwrap().get_mut("ns/a").unwrap().0 -= OWN_WRITE_FRESH;
        assert_eq!(pace.current("ns/a", Some(&3)), Some(3), "then the cache");
    }
}
