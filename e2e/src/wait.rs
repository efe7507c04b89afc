//! Waiting on watches instead of sleeps: a condition is checked on every change of the object.

use std::fmt::Debug;
use std::time::Duration;

use anyhow::{Result, anyhow};
use futures::StreamExt;
use kube::runtime::watcher::{self, watch_object};
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
    let seen = watch_until(api, name, timeout, |obj| obj.is_some_and(&cond)).await?;
    Ok(seen.expect("the condition holds only for an existing object"))
}

/// Waits until the object `name` is gone.
pub async fn wait_deleted<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    watch_until(api, name, timeout, |obj| obj.is_none()).await?;
    Ok(())
}

/// Watches `name` until `done` holds for its state (`None`: absent), and returns that state.
async fn watch_until<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    done: impl Fn(Option<&K>) -> bool,
) -> Result<Option<K>>
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
                Ok(seen) if done(seen.as_ref()) => return Ok(seen),
                Ok(seen) => last = seen,
                Err(e) if is_permanent(&e) => {
                    return Err(anyhow!("cannot watch {kind} {name}: {e}"));
                }
                Err(e) => {
                    tracing::debug!("watch of {kind} {name}: {e}");
                    // The watcher retries on the next poll; without a pause it would spin.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Err(anyhow!("watch of {kind} {name} ended"))
    })
    .await;
    outcome.unwrap_or_else(|_| {
        Err(anyhow!(
            "timed out after {timeout:?} waiting for {kind} {name}; last seen: {last:#?}"
        ))
    })
}

/// Denied: retrying cannot help, so fail now rather than at the timeout.
fn is_permanent(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => {
            matches!(s.code, 401 | 403)
        }
        _ => false,
    }
}
