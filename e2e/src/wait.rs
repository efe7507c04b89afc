//! Waiting on watches instead of sleeps: a condition is checked on every change of the object.

use std::fmt::Debug;
use std::time::Duration;

use anyhow::{Result, anyhow};
use futures::StreamExt;
use kube::runtime::watcher::watch_object;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// Waits until the object `name` exists and `cond` holds for it, and returns it.
///
/// On timeout the error names the object and shows its last seen state, which is usually all it
/// takes to see why it never got there.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    cond: impl Fn(&K) -> bool,
) -> Result<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let mut last: Option<K> = None;
    let mut stream = watch_object(api.clone(), name).boxed();
    let outcome = tokio::time::timeout(timeout, async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(Some(obj)) if cond(&obj) => return Ok(obj),
                Ok(seen) => last = seen,
                Err(e) => tracing::debug!("watch of {kind} {name}: {e}"),
            }
        }
        Err(anyhow!("watch of {kind} {name} ended"))
    })
    .await;
    match outcome {
        Ok(result) => result,
        Err(_) => Err(anyhow!(
            "timed out after {timeout:?} waiting for {kind} {name}; last seen: {last:#?}"
        )),
    }
}

/// Waits until the object `name` is gone.
pub async fn wait_deleted<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let mut stream = watch_object(api.clone(), name).boxed();
    let outcome = tokio::time::timeout(timeout, async {
        while let Some(event) = stream.next().await {
            if let Ok(None) = event {
                return true;
            }
        }
        false
    })
    .await;
    match outcome {
        Ok(true) => Ok(()),
        _ => Err(anyhow!("{kind} {name} still exists after {timeout:?}")),
    }
}
