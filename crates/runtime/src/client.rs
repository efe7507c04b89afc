//! The Kubernetes client every controller uses: client-side QPS limiting (a token bucket in front of
//! the connection) and a count of every request by verb, exported as metrics, so that "a reconcile
//! that changes nothing writes nothing" can be measured rather than hoped.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request};
use kube::client::{Body, ClientBuilder};
use kube::{Client, Config};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// Requests by verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
pub type RequestCounter = Family<Vec<(String, String)>, Counter>;

/// Builds a client from the ambient configuration (in-cluster or KUBECONFIG).
pub async fn build(qps: f64, burst: u32, requests: RequestCounter) -> anyhow::Result<Client> {
    let config = Config::infer().await?;
    from_config(config, qps, burst, requests)
}

pub fn from_config(
    config: Config,
    qps: f64,
    burst: u32,
    requests: RequestCounter,
) -> anyhow::Result<Client> {
    let builder = ClientBuilder::try_from(config)?;
    let layer = ThrottleLayer {
        qps: qps.max(0.1),
        burst: burst.max(1),
        requests,
    };
    Ok(builder.with_layer(&layer).build())
}

/// Classifies a request the way the API server's audit log does.
pub fn verb_of(method: &Method, query: &str) -> &'static str {
    let watching = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    // A dry run stores nothing (how the controllers ask whether a Secret exists): not a write.
    if query.split('&').any(|kv| kv == "dryRun=All") {
        return "dry-run";
    }
    match *method {
        Method::GET if watching => "watch",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    }
}

/// Whether a verb changes state on the server.
pub fn is_write(verb: &str) -> bool {
    matches!(verb, "create" | "update" | "patch" | "delete")
}

#[derive(Clone)]
struct ThrottleLayer {
    qps: f64,
    burst: u32,
    requests: RequestCounter,
}

impl<S> Layer<S> for ThrottleLayer {
    type Service = Throttle<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Throttle {
            inner,
            qps: self.qps,
            burst: f64::from(self.burst),
            tokens: f64::from(self.burst),
            refilled: Instant::now(),
            delay: None,
            reserved: false,
            requests: self.requests.clone(),
        }
    }
}

/// A token bucket checked in `poll_ready`: the client's buffer calls it before every request.
pub struct Throttle<S> {
    inner: S,
    qps: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
    delay: Option<Pin<Box<Sleep>>>,
    reserved: bool,
    requests: RequestCounter,
}

impl<S> Service<Request<Body>> for Throttle<S>
where
    S: Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.reserved {
            if let Some(delay) = self.delay.as_mut() {
                if delay.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.delay = None;
            }
            let now = Instant::now();
            let elapsed = now.duration_since(self.refilled).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
            self.refilled = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                self.reserved = true;
            } else {
                let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.qps);
                self.delay = Some(Box::pin(tokio::time::sleep(wait)));
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        self.reserved = false;
        let verb = verb_of(request.method(), request.uri().query().unwrap_or_default());
        self.requests
            .get_or_create(&vec![("verb".to_string(), verb.to_string())])
            .inc();
        self.inner.call(request)
    }
}

/// An `Api` of a namespaced kind in `namespace`, or across every namespace when `None` (how the
/// controllers honour `--watch-namespace`).
pub fn namespaced_or_all<K>(client: &kube::Client, namespace: Option<&str>) -> kube::Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_follow_the_audit_log() {
        assert_eq!(
            verb_of(&Method::GET, "watch=true&resourceVersion=1"),
            "watch"
        );
        assert_eq!(verb_of(&Method::GET, "labelSelector=a"), "get");
        assert_eq!(
            verb_of(&Method::PATCH, "fieldManager=x&force=true"),
            "patch"
        );
        assert!(is_write("patch") && !is_write("watch"));
        let dry_run = verb_of(&Method::POST, "dryRun=All");
        assert_eq!(dry_run, "dry-run");
        assert!(!is_write(dry_run));
    }
}
