//! The only changes the harness makes to a generated container, all forced by one fact: every pod
//! shares the machine's network namespace, so a process that listens on every address would
//! collide with the same process of every other pod. Each rule binds a listener to the pod's own
//! address instead (flags, and the metrics listener's environment). Every change made is returned
//! and printed.

use std::net::Ipv4Addr;

/// One change to one container, for the report.
#[derive(Clone, Debug)]
pub struct Change {
    pub pod: String,
    pub container: String,
    pub change: String,
    pub why: &'static str,
}

const SHARED_NETNS: &str = "pods share one network namespace: listen on the pod's address only";
const PGBACKREST_ANY: &str = "pgctld's pgBackRest TLS server listens on every address (its built-in \
tls-server-address=::): each pod gets a port of its own, the pooler record publishes it";

/// The Multigres servers that take `--bind-address` and `--grpc-bind-address`.
const SERVERS: [&str; 5] = [
    "multigateway",
    "multiorch",
    "multipooler",
    "multiadmin",
    "pgctld",
];

/// Rewrites `args` of a container running `binary` in the pod at `ip`; `pgbackrest_port` is the
/// pod's own pgBackRest port.
pub fn apply(
    binary: &str,
    args: &mut Vec<String>,
    ip: Ipv4Addr,
    pgbackrest_port: u16,
) -> Vec<(String, &'static str)> {
    let mut changes = Vec::new();
    if binary == "postgres_exporter" {
        if let Some(port) = get(args, "--web.listen-address")
            .and_then(|a| a.rsplit_once(':').map(|(_, port)| port.to_string()))
        {
            remove(args, "--web.listen-address");
            args.push(format!("--web.listen-address={ip}:{port}"));
            changes.push((
                format!("--web.listen-address={ip}:{port} (was :{port})"),
                SHARED_NETNS,
            ));
        }
        return changes;
    }
    if !SERVERS.contains(&binary) || (binary == "pgctld" && !args.iter().any(|a| a == "server")) {
        return changes;
    }
    let ip = ip.to_string();
    let mut set = |args: &mut Vec<String>, flag: &str, value: &str, why: &'static str| {
        let old = get(args, flag);
        if old.as_deref() == Some(value) {
            return;
        }
        remove(args, flag);
        args.push(format!("{flag}={value}"));
        let from = old.map(|o| format!(" (was {o})")).unwrap_or_default();
        changes.push((format!("{flag}={value}{from}"), why));
    };
    set(args, "--bind-address", &ip, SHARED_NETNS);
    set(args, "--grpc-bind-address", &ip, SHARED_NETNS);
    match binary {
        "pgctld" => {
            set(args, "--pg-listen-addresses", &ip, SHARED_NETNS);
            if get(args, "--pgbackrest-port").is_some_and(|p| p != "0") {
                set(
                    args,
                    "--pgbackrest-port",
                    &pgbackrest_port.to_string(),
                    PGBACKREST_ANY,
                );
            }
        }
        "multipooler" => set(
            args,
            "--pgbackrest-port",
            &pgbackrest_port.to_string(),
            PGBACKREST_ANY,
        ),
        "multigateway" => set(args, "--pg-bind-address", &ip, SHARED_NETNS),
        _ => {}
    }
    changes
}

/// Rewrites the environment of a container in the pod at `ip`: the Prometheus exporter Multigres'
/// OpenTelemetry setup starts listens where `OTEL_EXPORTER_PROMETHEUS_HOST` says.
pub fn apply_env(env: &mut [(String, String)], ip: Ipv4Addr) -> Vec<(String, &'static str)> {
    let ip = ip.to_string();
    env.iter_mut()
        .filter(|(name, value)| name == "OTEL_EXPORTER_PROMETHEUS_HOST" && *value != ip)
        .map(|(name, value)| {
            let change = format!("{name}={ip} (was {value})");
            *value = ip.clone();
            (change, SHARED_NETNS)
        })
        .collect()
}

/// The value of `--flag=v` or `--flag v`.
pub fn get(args: &[String], flag: &str) -> Option<String> {
    let eq = format!("{flag}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if let Some(v) = a.strip_prefix(&eq) {
            Some(v.to_string())
        } else if a == flag {
            args.get(i + 1).cloned()
        } else {
            None
        }
    })
}

fn remove(args: &mut Vec<String>, flag: &str) {
    let eq = format!("{flag}=");
    while let Some(i) = args.iter().position(|a| a == flag || a.starts_with(&eq)) {
        let n = if args[i] == flag && i + 1 < args.len() {
            2
        } else {
            1
        };
        args.drain(i..i + n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metrics_listen_on_the_pods_address() {
        let ip = Ipv4Addr::new(127, 0, 10, 2);
        let mut env = vec![
            (
                "OTEL_METRICS_EXPORTER".to_string(),
                "prometheus".to_string(),
            ),
            (
                "OTEL_EXPORTER_PROMETHEUS_HOST".to_string(),
                "0.0.0.0".to_string(),
            ),
        ];
        let changes = apply_env(&mut env, ip);
        assert_eq!(env[1].1, "127.0.10.2");
        assert_eq!(env[0].1, "prometheus");
        assert_eq!(changes.len(), 1);
        assert!(apply_env(&mut env, ip).is_empty());
    }

    #[test]
    fn pgctld_listens_on_the_pod_address() {
        let mut args = strings(&["server", "--pg-listen-addresses", "*", "--pg-port", "5432"]);
        let ip = Ipv4Addr::new(127, 0, 10, 2);
        let changes = apply("pgctld", &mut args, ip, 18001);
        assert_eq!(
            get(&args, "--pg-listen-addresses").as_deref(),
            Some("127.0.10.2")
        );
        assert_eq!(get(&args, "--pg-port").as_deref(), Some("5432"));
        assert_eq!(changes.len(), 3);
        assert!(changes[2].0.contains("(was *)"));
    }

    #[test]
    fn other_binaries_are_left_alone() {
        let mut args = strings(&["-c", "cp x y"]);
        assert!(apply("sh", &mut args, Ipv4Addr::LOCALHOST, 1).is_empty());
    }
}
