//! The multipooler flags of a pool pod that shape its Pooler record (hostname, ports,
//! directories), read from the pod's `multipooler` container so that the simulated record says
//! what the real process, started with those flags, would register. `$(VAR)` references are
//! expanded from the container's environment the way the kubelet does.

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::ResourceExt;

/// multipooler's defaults for the flags the operator may leave out.
const DEFAULT_PG_PORT: i32 = 5432;
const DEFAULT_PGBACKREST_PORT: i32 = 8432;

/// What a multipooler started with a pod's flags puts into its record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolerFlags {
    /// `--hostname`; the pod's name (its container hostname) when not given.
    pub hostname: String,
    /// `--grpc-port` (multipooler's default is 0).
    pub grpc_port: i32,
    /// `--http-port` (default 0).
    pub http_port: i32,
    /// `--pg-port` (default 5432).
    pub pg_port: i32,
    /// `--pgbackrest-port` (default 8432).
    pub pgbackrest_port: i32,
    /// `--pooler-dir`.
    pub pooler_dir: String,
    /// The container's `PGDATA`.
    pub pg_data_dir: String,
}

impl PoolerFlags {
    /// Reads the flags of the pod's `multipooler` container; defaults where a flag is missing
    /// (or the container is).
    pub fn from_pod(pod: &Pod) -> PoolerFlags {
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == "multipooler"));
        let args: Vec<String> = container
            .and_then(|c| c.args.as_ref())
            .map(|args| args.iter().map(|a| expand(a, container, pod)).collect())
            .unwrap_or_default();
        let flag = |name: &str| flag_value(&args, name);
        let port =
            |name: &str, default: i32| flag(name).and_then(|v| v.parse().ok()).unwrap_or(default);
        let pg_data_dir = container
            .and_then(|c| c.env.as_ref())
            .and_then(|env| env.iter().find(|e| e.name == "PGDATA"))
            .and_then(|e| e.value.clone())
            .unwrap_or_default();
        PoolerFlags {
            hostname: flag("--hostname").unwrap_or_else(|| pod.name_any()),
            grpc_port: port("--grpc-port", 0),
            http_port: port("--http-port", 0),
            pg_port: port("--pg-port", DEFAULT_PG_PORT),
            pgbackrest_port: port("--pgbackrest-port", DEFAULT_PGBACKREST_PORT),
            pooler_dir: flag("--pooler-dir").unwrap_or_default(),
            pg_data_dir,
        }
    }
}

/// The value of `name` in `args`, given as `--name value` or `--name=value`; the last one wins,
/// as with multipooler's flag parser.
fn flag_value(args: &[String], name: &str) -> Option<String> {
    let mut found = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == name {
            found = it.next().cloned();
        } else if let Some(v) = arg.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            found = Some(v.to_string());
        }
    }
    found
}

/// Expands `$(VAR)` from the container's env (plain values and the pod fields the kubelet
/// resolves: name, namespace, IP); unresolvable references stay as written, as in Kubernetes.
fn expand(arg: &str, container: Option<&Container>, pod: &Pod) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let var = &after[..end];
        match env_value(var, container, pod) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn env_value(var: &str, container: Option<&Container>, pod: &Pod) -> Option<String> {
    let env = container?.env.as_ref()?.iter().find(|e| e.name == var)?;
    if let Some(value) = &env.value {
        return Some(value.clone());
    }
    let field = env.value_from.as_ref()?.field_ref.as_ref()?;
    match field.field_path.as_str() {
        "metadata.name" => Some(pod.name_any()),
        "metadata.namespace" => pod.namespace(),
        "status.podIP" => pod.status.as_ref()?.pod_ip.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec};

    fn pod(args: &[&str]) -> Pod {
        let field = |name: &str, path: &str| EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "multipooler".into(),
                    args: Some(args.iter().map(|a| a.to_string()).collect()),
                    env: Some(vec![
                        field("POD_NAME", "metadata.name"),
                        EnvVar {
                            name: "PGDATA".into(),
                            value: Some("/var/lib/pooler/pg_data".into()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        pod.metadata.name = Some("s-replica-a-0".into());
        pod
    }

    #[test]
    fn reads_the_flags_multipooler_gets() {
        let flags = PoolerFlags::from_pod(&pod(&[
            "--grpc-port",
            "15201",
            "--http-port=15101",
            "--pooler-dir",
            "/var/lib/pooler",
            "--hostname",
            "$(POD_NAME).s-replica-a",
            "--service-id",
            "$(UNSET)",
        ]));
        assert_eq!(
            flags,
            PoolerFlags {
                hostname: "s-replica-a-0.s-replica-a".into(),
                grpc_port: 15201,
                http_port: 15101,
                pg_port: 5432,
                pgbackrest_port: 8432,
                pooler_dir: "/var/lib/pooler".into(),
                pg_data_dir: "/var/lib/pooler/pg_data".into(),
            }
        );
    }

    #[test]
    fn defaults_without_flags_and_unresolved_references_stay() {
        let flags = PoolerFlags::from_pod(&pod(&["--hostname", "$(UNSET).x", "--pg-port"]));
        assert_eq!(flags.hostname, "$(UNSET).x");
        assert_eq!(flags.pg_port, 5432);
        assert_eq!(PoolerFlags::from_pod(&Pod::default()).hostname, "");
    }
}
