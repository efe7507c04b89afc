//! Settings every controller binary takes, from flags or the environment.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Clone, Debug, clap::Args)]
pub struct CommonArgs {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "MULTIGRES_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Address of the gRPC health service (`grpc.health.v1`).
    #[arg(
        long,
        env = "MULTIGRES_GRPC_HEALTH_ADDR",
        default_value = "0.0.0.0:9090"
    )]
    pub grpc_health_addr: SocketAddr,
    /// Reconciles that may run at once.
    #[arg(long, env = "MULTIGRES_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Sustained requests per second to the Kubernetes API.
    #[arg(long, env = "MULTIGRES_KUBE_QPS", default_value_t = 50.0)]
    pub kube_qps: f64,
    /// Requests that may be sent at once above the sustained rate.
    #[arg(long, env = "MULTIGRES_KUBE_BURST", default_value_t = 100)]
    pub kube_burst: u32,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "MULTIGRES_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Elect a leader through a Lease, so that several replicas can run safely.
    #[arg(long, env = "MULTIGRES_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease.
    #[arg(
        long,
        env = "MULTIGRES_LEASE_NAMESPACE",
        default_value = "multigres-system"
    )]
    pub lease_namespace: String,
    /// How long a Lease holds without renewal.
    #[arg(long, env = "MULTIGRES_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// This replica's identity (its pod name).
    #[arg(long, env = "POD_NAME", default_value = "local")]
    pub identity: String,
    /// Log as JSON lines (otherwise human-readable).
    #[arg(long, env = "MULTIGRES_LOG_JSON", default_value_t = true, action = clap::ArgAction::Set)]
    pub log_json: bool,
}

/// Parses `500ms`, `15s`, `2m` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 15s"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{unit}' (use ms, s, m or h)"
            ));
        }
    };
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(format!("'{text}' is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A certificate lifetime (`--topology-certificate-validity`): a duration of at least a minute
/// (shorter would renew in a loop).
pub fn parse_certificate_validity(text: &str) -> Result<Duration, String> {
    let validity = parse_duration(text)?;
    if validity < Duration::from_secs(60) {
        return Err(format!(
            "'{text}': a certificate must be valid for at least 1m"
        ));
    }
    Ok(validity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_bad_ones_are_errors() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
