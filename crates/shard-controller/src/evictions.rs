//! Pods this process evicted, until the pod cache shows them going. A reconcile that runs before
//! the cache catches up would otherwise see an evicted pod still running: it would evict it again
//! and report the replacement twice, or count it Ready and take the next pod of the pool while
//! this one is still going (one pod at a time per pool, docs/operations.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

/// Longer than any cache lag: an entry whose pod the cache never showed going (deleted and gone
/// between two reconciles) is dropped after it.
const REMEMBER: Duration = Duration::from_secs(120);

#[derive(Debug, Default)]
pub struct Evictions {
    by_uid: Mutex<HashMap<String, Instant>>,
}

impl Evictions {
    /// Notes that the pod with `uid` was evicted.
    pub fn record(&self, uid: &str) {
        let mut by_uid = self.lock();
        by_uid.retain(|_, at| at.elapsed() < REMEMBER);
        by_uid.insert(uid.to_string(), Instant::now());
    }

    /// `pods` as this process knows them: an evicted pod the cache still shows running is marked
    /// as terminating. A pod the cache shows going is forgotten.
    pub fn overlay(&self, pods: Vec<Arc<Pod>>) -> Vec<Arc<Pod>> {
        let mut by_uid = self.lock();
        if by_uid.is_empty() {
            return pods;
        }
        pods.into_iter()
            .map(|pod| {
                let Some(uid) = pod.uid() else { return pod };
                if pod.metadata.deletion_timestamp.is_some() {
                    by_uid.remove(&uid);
                    return pod;
                }
                match by_uid.get(&uid) {
                    Some(at) if at.elapsed() < REMEMBER => {
                        let mut going = (*pod).clone();
                        going.metadata.deletion_timestamp =
                            Some(Time(k8s_openapi::jiff::Timestamp::now()));
                        Arc::new(going)
                    }
                    _ => pod,
                }
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.by_uid.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn pod(name: &str, deleting: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                deletion_timestamp: deleting.then(|| Time(k8s_openapi::jiff::Timestamp::now())),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn going(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .map(|p| p.name_any())
            .collect()
    }

    #[test]
    fn an_evicted_pod_is_going_until_the_cache_says_so() {
        let evictions = Evictions::default();
        let stale = vec![pod("a", false), pod("b", false)];
        assert!(going(&evictions.overlay(stale.clone())).is_empty());

        evictions.record("uid-a");
        assert_eq!(going(&evictions.overlay(stale.clone())), ["a"]);
        assert_eq!(
            going(&evictions.overlay(stale.clone())),
            ["a"],
            "until seen going"
        );

        let caught_up = vec![pod("a", true), pod("b", false)];
        assert_eq!(going(&evictions.overlay(caught_up)), ["a"]);
        assert!(
            evictions.lock().is_empty(),
            "forgotten once the cache shows it"
        );

        // A replacement under the same name has a new uid: it is not taken for the evicted pod.
        evictions.record("uid-a");
        let replacement = Arc::new(Pod {
            metadata: ObjectMeta {
                uid: Some("uid-a2".into()),
                ..pod("a", false).metadata.clone()
            },
            ..Default::default()
        });
        assert!(going(&evictions.overlay(vec![replacement])).is_empty());
    }

    #[test]
    fn an_eviction_is_forgotten_after_a_while() {
        let evictions = Evictions::default();
        evictions.record("uid-a");
        *evictions.lock().get_mut("uid-a").unwrap() -= REMEMBER;
        assert!(going(&evictions.overlay(vec![pod("a", false)])).is_empty());
        evictions.record("uid-b");
        assert_eq!(evictions.lock().len(), 1, "old entries pruned on record");
    }
}
