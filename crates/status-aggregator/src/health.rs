//! Polling the `grpc.health.v1` endpoint of every controller (`--controller-health-endpoints`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::aggregate::ControllerHealth;

/// Parses `name=host:port,name2=host:port`. Empty means none.
pub fn parse_endpoints(spec: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, address) = entry
            .split_once('=')
            .ok_or_else(|| format!("controller health endpoint {entry:?} is not name=host:port"))?;
        let (name, address) = (name.trim(), address.trim());
        let port = address.rsplit_once(':').map(|(_, p)| p);
        if name.is_empty() || port.and_then(|p| p.parse::<u16>().ok()).is_none() {
            return Err(format!(
                "controller health endpoint {entry:?} is not name=host:port"
            ));
        }
        if out.insert(name.to_string(), address.to_string()).is_some() {
            return Err(format!("controller {name:?} listed twice"));
        }
    }
    Ok(out)
}

/// One lazily connected health client per controller. A check that fails replaces its client, so
/// a restarted controller is dialled afresh rather than through a connection that may still be
/// backing off (the chaos suite once saw a restarted controller reported unreachable for minutes).
pub struct HealthPoller {
    controllers: Vec<Controller>,
    timeout: Duration,
}

struct Controller {
    name: String,
    endpoint: Endpoint,
    client: Mutex<HealthClient<Channel>>,
}

impl HealthPoller {
    pub fn new(endpoints: &BTreeMap<String, String>, timeout: Duration) -> anyhow::Result<Self> {
        let mut controllers = Vec::new();
        for (name, address) in endpoints {
            let uri = if address.contains("://") {
                address.clone()
            } else {
                format!("http://{address}")
            };
            let endpoint = Endpoint::from_shared(uri)?
                .connect_timeout(timeout)
                .timeout(timeout);
            let client = Mutex::new(HealthClient::new(endpoint.connect_lazy()));
            controllers.push(Controller {
                name: name.clone(),
                endpoint,
                client,
            });
        }
        Ok(Self {
            controllers,
            timeout,
        })
    }

    /// Asks every controller for the overall (`""`) service status, concurrently.
    pub async fn poll(&self) -> BTreeMap<String, ControllerHealth> {
        let checks = self.controllers.iter().map(|controller| {
            let mut client = lock(&controller.client).clone();
            let timeout = self.timeout;
            async move {
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                let health = match tokio::time::timeout(timeout, client.check(request)).await {
                    Ok(Ok(response)) => match response.into_inner().status() {
                        ServingStatus::Serving => ControllerHealth::Serving,
                        _ => ControllerHealth::NotServing,
                    },
                    Ok(Err(status)) => ControllerHealth::Unreachable(status.code().to_string()),
                    Err(_) => ControllerHealth::Unreachable("timed out".into()),
                };
                if matches!(health, ControllerHealth::Unreachable(_)) {
                    *lock(&controller.client) =
                        HealthClient::new(controller.endpoint.connect_lazy());
                }
                (controller.name.clone(), health)
            }
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let parsed = parse_endpoints(" cell=127.0.0.1:9090, shard=shard.ns.svc:9090 ").unwrap();
        assert_eq!(parsed["cell"], "127.0.0.1:9090");
        assert_eq!(parsed["shard"], "shard.ns.svc:9090");
        assert!(parse_endpoints("").unwrap().is_empty());
        for bad in ["cell", "=a:1", "c=a", "c=a:x", "c=a:1,c=b:2"] {
            assert!(parse_endpoints(bad).is_err(), "{bad}");
        }
    }
}
