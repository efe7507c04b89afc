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

/// When this process last wrote each object's status.
#[derive(Debug)]
pub struct StatusPace {
    window: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl Default for StatusPace {
    fn default() -> Self {
        Self::new(PROGRESS_WINDOW)
    }
}

impl StatusPace {
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
        let since = self.lock().get(key)?.elapsed();
        (since < self.window).then(|| self.window - since)
    }

    /// Records a write of `key`'s status.
    pub fn wrote(&self, key: &str) {
        self.lock().insert(key.to_string(), Instant::now());
    }

    /// Forgets an object that is going.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
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
        pace.wrote("ns/a");
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
        short.wrote("ns/a");
        assert_eq!(short.hold("ns/a", true), None, "after the window");
    }
}
