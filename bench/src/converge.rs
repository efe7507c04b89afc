//! Watch-based timing: when did each object of a kind first satisfy a condition, measured from a
//! start instant. No polling: one watch per kind over the scenario's namespace.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// When each object first met the condition, in seconds after the start.
#[derive(Clone, Debug, Default)]
pub struct Reached {
    pub at: BTreeMap<String, f64>,
    /// The group (e.g. the cluster) of each object that met the condition.
    pub group: BTreeMap<String, String>,
    pub expected: usize,
    /// Whether all `expected` objects met it before the timeout.
    pub complete: bool,
}

impl Reached {
    /// Per group: seconds until its last object met the condition.
    pub fn by_group(&self) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for (name, t) in &self.at {
            let g = self.group.get(name).cloned().unwrap_or_default();
            let e = out.entry(g).or_insert(0.0);
            *e = e.max(*t);
        }
        out
    }

    /// Seconds until the last one, if all did.
    pub fn total(&self) -> Option<f64> {
        self.complete
            .then(|| self.at.values().cloned().fold(0.0, f64::max))
    }
}

/// Watches `api` (with an optional label selector) until `expected` objects have met `cond`, or
/// until `timeout` after `start`.
pub async fn until<K>(
    api: Api<K>,
    labels: Option<&str>,
    expected: usize,
    start: Instant,
    timeout: Duration,
    group: impl Fn(&K) -> String,
    cond: impl Fn(&K) -> bool,
) -> Reached
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut config = watcher::Config::default();
    if let Some(l) = labels {
        config = config.labels(l);
    }
    let mut reached = Reached {
        expected,
        ..Default::default()
    };
    if expected == 0 {
        reached.complete = true;
        return reached;
    }
    let stream = watcher(api, config).default_backoff().applied_objects();
    let mut stream = std::pin::pin!(stream);
    let deadline = tokio::time::Instant::from_std(start + timeout);
    loop {
        let next = tokio::time::timeout_at(deadline, stream.try_next()).await;
        match next {
            Err(_) => break,
            Ok(Err(e)) => {
                tracing_warn(&format!("watch error: {e}"));
                continue;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(obj))) => {
                let name = obj.name_any();
                if !reached.at.contains_key(&name) && cond(&obj) {
                    reached.group.insert(name.clone(), group(&obj));
                    reached.at.insert(name, start.elapsed().as_secs_f64());
                    if reached.at.len() >= expected {
                        reached.complete = true;
                        break;
                    }
                }
            }
        }
    }
    reached
}

fn tracing_warn(text: &str) {
    eprintln!("  warning: {text}");
}

/// `Available` is `True` in these conditions.
pub fn available(conditions: Option<&Vec<Condition>>) -> bool {
    conditions.is_some_and(|c| {
        c.iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    })
}

/// p-th percentile (nearest rank) of `values`.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
