//! Checks one generated pod against the recorded help of the Multigres binaries its containers run:
//! only defined flags, every flag and env var the binary needs (DESIGN §4, as the pinned binaries
//! have it: docs/multigres-version.md), the password from the credentials Secret, and every path a
//! flag or env var names inside a volume mount of the container.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, Probe, Volume};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::invocation::{self, Invocation, PassedFlag};
use crate::{RECORDED_DIR, recorded_flags};

/// Postgres' NAMEDATALEN - 1: multipooler's application name `<cell>_<service-id>` must fit.
pub const MAX_APPLICATION_NAME: usize = 63;

/// What `$(VAR)` of `status.podIP` stands for in the checks.
const POD_IP: &str = "10.1.2.3";

/// Flags every Multigres service needs: the topology, and both ports (they default to 0).
const SERVICE_FLAGS: &[&str] = &[
    "topo-global-server-addresses",
    "topo-global-root",
    "http-port",
    "grpc-port",
];

/// Flags each binary needs beyond [`SERVICE_FLAGS`]. `--hostname` is what others dial. DESIGN §4 also
/// lists pgctld's `--pg-listen-addresses` and multigateway's `--pg-bind-address`; their defaults
/// (`*`, `0.0.0.0`, docs/multigres-version.md) already listen everywhere, so they are not required.
fn required_flags(help_name: &str) -> Vec<&'static str> {
    let service = SERVICE_FLAGS.to_vec();
    let with = |extra: &[&'static str]| [service.clone(), extra.to_vec()].concat();
    match help_name {
        "multipooler" => with(&[
            "cell",
            "database",
            "table-group",
            "shard",
            "service-id",
            "hostname",
            "pooler-dir",
            "pgctld-addr",
            "pg-port",
            "service-map",
        ]),
        "multigateway" => with(&["cell", "hostname", "pg-port"]),
        "multiorch" => with(&["cell", "hostname"]),
        "multiadmin" => with(&["service-map"]),
        "pgctld-server" => vec!["pooler-dir", "grpc-port", "http-port", "pg-port"],
        _ => Vec::new(),
    }
}

/// The Secret and key the admin password must come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub secret: String,
    pub password_key: String,
}

/// One pod as a controller builds it.
#[derive(Clone, Debug)]
pub struct GeneratedPod<'a> {
    /// Names the owner in messages, e.g. `Deployment example/x`.
    pub object: String,
    /// What `$(POD_NAME)` becomes.
    pub pod_name: String,
    pub namespace: String,
    pub replicas: i32,
    pub spec: &'a PodSpec,
    /// Set for pods whose binaries need the admin password.
    pub credentials: Option<Credentials>,
}

/// What a check of one pod found.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    /// `(container, help name)` of every container that runs a Multigres binary.
    pub checked: Vec<(String, String)>,
    pub failures: Vec<String>,
}

/// Checks every container and init container of `pod` that runs a Multigres binary.
pub fn pod(pod: &GeneratedPod<'_>) -> Findings {
    let mut findings = Findings::default();
    let mut shared = Vec::new();
    let containers = pod.spec.init_containers.iter().flatten();
    for container in containers.chain(&pod.spec.containers) {
        let vars = variables(pod, container);
        let Some(invocation) = invocation::of_container(container, &vars) else {
            continue;
        };
        let mut check = ContainerCheck {
            pod,
            container,
            invocation: &invocation,
            failures: Vec::new(),
            shared: BTreeMap::new(),
        };
        check.run();
        findings
            .checked
            .push((container.name.clone(), invocation.help_name()));
        findings.failures.extend(check.failures);
        if !check.shared.is_empty() {
            shared.push((container.name.clone(), check.shared));
        }
    }
    // multipooler drives the pgctld and the postgres beside it: both must agree on these.
    if let [(a, facts_a), (b, facts_b)] = shared.as_slice() {
        for (what, value_a) in facts_a {
            if let Some(value_b) = facts_b.get(what).filter(|v| *v != value_a) {
                findings.failures.push(format!(
                    "{}: container {a} has {what} {value_a}, container {b} {value_b}",
                    pod.object
                ));
            }
        }
    }
    findings
}

/// `$(VAR)` values Kubernetes would substitute: literal env and the downward API fields we can know.
fn variables(pod: &GeneratedPod<'_>, container: &Container) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for env in container.env.iter().flatten() {
        let field = env
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.as_str());
        let value = match (&env.value, field) {
            (Some(value), _) => value.clone(),
            (None, Some("metadata.name")) => pod.pod_name.clone(),
            (None, Some("metadata.namespace")) => pod.namespace.clone(),
            (None, Some("status.podIP")) => POD_IP.into(),
            _ => continue,
        };
        vars.insert(env.name.clone(), value);
    }
    vars
}

struct ContainerCheck<'a> {
    pod: &'a GeneratedPod<'a>,
    container: &'a Container,
    invocation: &'a Invocation,
    failures: Vec<String>,
    /// What multipooler and pgctld in one pod must agree on: the database and the superuser (pgctld's
    /// initdb creates them, multipooler connects to them), pooler dir, PGDATA, ports.
    shared: BTreeMap<&'static str, String>,
}

impl ContainerCheck<'_> {
    fn fail(&mut self, message: String) {
        self.failures.push(format!(
            "{} container {} ({}): {message}",
            self.pod.object,
            self.container.name,
            self.invocation.help_name().replace('-', " "),
        ));
    }

    fn run(&mut self) {
        let help_name = self.invocation.help_name();
        let Some(known) = recorded_flags(&help_name) else {
            self.fail(format!(
                "no recorded help for {help_name} in {RECORDED_DIR}"
            ));
            return;
        };
        let (passed, positional) = invocation::flags(&self.invocation.argv, known);
        for word in positional {
            self.fail(format!("takes no arguments, got {word:?}"));
        }
        for flag in &passed {
            if !known.defines(&flag.name) {
                self.fail(format!(
                    "--{} is not a flag of {} (recorded help: {RECORDED_DIR}/{help_name}.help)",
                    flag.name, self.invocation.binary
                ));
            } else if known.takes_value(&flag.name) && flag.value.is_none() {
                self.fail(format!("--{} has no value", flag.name));
            }
        }
        let value = |name: &str| -> Option<String> {
            passed
                .iter()
                .rev()
                .find(|f| f.name == name)
                .and_then(|f| f.value.clone())
        };
        for name in required_flags(&help_name) {
            if value(name).is_none_or(|v| v.trim().is_empty()) {
                self.fail(format!("--{name} is needed and not passed"));
            }
        }
        match help_name.as_str() {
            "multipooler" => {
                let user = self.superuser(
                    value("connpool-admin-user"),
                    &["CONNPOOL_ADMIN_USER", "POSTGRES_USER"],
                );
                // The flags' defaults, as the recorded help prints them.
                let pgctld_addr = value("pgctld-addr").unwrap_or("localhost:15200".into());
                let pgctld_port = pgctld_addr.rsplit(':').next().unwrap_or_default();
                let database = value("database").unwrap_or_default();
                self.share(&value, user, pgctld_port.to_string(), database);
                self.multipooler(&value);
                self.password(&passed, &["CONNPOOL_ADMIN_PASSWORD", "POSTGRES_PASSWORD"]);
                self.pgdata();
            }
            "pgctld-server" => {
                let user = self.superuser(value("pg-user"), &["POSTGRES_USER"]);
                let grpc_port = value("grpc-port").unwrap_or_default();
                // initdb creates only this database (DESIGN §4); multipooler connects to its --database.
                let database = value("pg-database")
                    .or_else(|| self.env("POSTGRES_DB").and_then(|e| e.value.clone()))
                    .unwrap_or("postgres".into());
                self.share(&value, user, grpc_port, database);
                self.password(&passed, &["POSTGRES_PASSWORD"]);
                self.pgdata();
            }
            "multiorch" => self.watch_targets(value("watch-targets")),
            "multiadmin" => self.service_map(value("service-map"), "grpc-multiadmin"),
            _ => {}
        }
        if let Some(hostname) = value("hostname") {
            self.hostname(&hostname);
        }
        self.paths(&passed);
        self.probes(value("http-port"));
    }

    /// Others dial `--hostname` as registered in the topology (DESIGN §4): the pod IP, or the pod's
    /// name under its headless Service (`hostname` + `subdomain`). A bare pod name resolves nowhere.
    fn hostname(&mut self, hostname: &str) {
        let spec = self.pod.spec;
        let own_name = spec.hostname.as_deref().unwrap_or(&self.pod.pod_name);
        let under_service = spec.subdomain.as_ref().is_some_and(|sub| {
            let short = format!("{own_name}.{sub}");
            hostname == short || hostname.starts_with(&format!("{short}."))
        });
        if hostname != POD_IP && !under_service {
            self.fail(format!(
                "--hostname {hostname:?} does not resolve to the pod (use the pod IP, or a subdomain)"
            ));
        }
    }

    fn multipooler(&mut self, value: &dyn Fn(&str) -> Option<String>) {
        self.service_map(value("service-map"), "grpc-pooler");
        if let Some(shard) = value("shard").filter(|s| !is_key_range(s)) {
            self.fail(format!(
                "--shard {shard:?} is not a Multigres key range like 0-inf"
            ));
        }
        let (Some(cell), Some(id)) = (value("cell"), value("service-id")) else {
            return;
        };
        if id.contains("$(") {
            self.fail(format!("--service-id {id:?} is not expanded by Kubernetes"));
        }
        if cell.contains('_') || id.contains('_') {
            self.fail(format!(
                "--cell {cell:?} and --service-id {id:?} may not contain '_' (the application name's separator)"
            ));
        }
        let application_name = format!("{cell}_{id}");
        if application_name.len() > MAX_APPLICATION_NAME {
            self.fail(format!(
                "application name {application_name:?} is {} characters, more than {MAX_APPLICATION_NAME}",
                application_name.len()
            ));
        }
    }

    fn multiorch_needs_targets(&self) -> bool {
        self.pod.replicas > 0
    }

    fn watch_targets(&mut self, targets: Option<String>) {
        let Some(targets) = targets else {
            if self.multiorch_needs_targets() {
                self.fail("--watch-targets is needed and not passed".into());
            }
            return;
        };
        for target in targets.split(',') {
            let parts: Vec<&str> = target.split('/').collect();
            if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
                self.fail(format!(
                    "--watch-targets entry {target:?} is not db, db/tablegroup or db/tablegroup/shard"
                ));
            }
        }
    }

    fn service_map(&mut self, map: Option<String>, service: &str) {
        if let Some(map) = map.filter(|m| !m.split(',').any(|s| s.trim() == service)) {
            self.fail(format!("--service-map {map:?} does not enable {service}"));
        }
    }

    fn env(&self, name: &str) -> Option<&EnvVar> {
        self.container.env.iter().flatten().find(|e| e.name == name)
    }

    fn share(
        &mut self,
        value: &dyn Fn(&str) -> Option<String>,
        user: String,
        pgctld_port: String,
        database: String,
    ) {
        let pgdata = self.env("PGDATA").and_then(|e| e.value.clone());
        let entries = [
            ("database", Some(format!("{database:?}"))),
            ("superuser", Some(user)),
            ("pgctld gRPC port", Some(pgctld_port)),
            ("--pooler-dir", value("pooler-dir")),
            ("PGDATA", pgdata),
            ("--pg-port", Some(value("pg-port").unwrap_or("5432".into()))),
            (
                "--pgbackrest-port",
                Some(value("pgbackrest-port").unwrap_or("0".into())),
            ),
        ];
        for (what, v) in entries {
            if let Some(v) = v {
                self.shared.insert(what, v);
            }
        }
    }

    /// Where the superuser's name comes from: the flag, the first env var set, or the default.
    fn superuser(&self, flag: Option<String>, env_names: &[&str]) -> String {
        if let Some(user) = flag {
            return format!("{user:?}");
        }
        let Some(env) = env_names.iter().find_map(|n| self.env(n)) else {
            // Both binaries default to `postgres`, the same as passing it.
            return format!("{:?}", "postgres");
        };
        match (
            &env.value,
            env.value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref()),
        ) {
            (Some(user), _) => format!("{user:?}"),
            (None, Some(r)) => format!("key {:?} of Secret {:?}", r.key, r.name),
            _ => format!("{} from elsewhere", env.name),
        }
    }

    fn pgdata(&mut self) {
        match self.env("PGDATA").map(|e| e.value.clone()) {
            None => self.fail("PGDATA is not set".into()),
            Some(None) => self.fail("PGDATA is not a literal path".into()),
            Some(Some(path)) => self.under_a_mount("PGDATA", &path),
        }
    }

    /// Every source of the admin password the container sets must be the credentials Secret, and
    /// there must be one: an env var from the Secret, or a file from a Secret volume.
    fn password(&mut self, passed: &[PassedFlag], env_names: &[&str]) {
        let Some(credentials) = self.pod.credentials.clone() else {
            self.fail("the pod names no credentials Secret for the admin password".into());
            return;
        };
        let mut sources = 0;
        for name in env_names {
            let Some(env) = self.env(name).cloned() else {
                continue;
            };
            sources += 1;
            let from = env
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref());
            match from {
                Some(r) if r.name == credentials.secret && r.key == credentials.password_key => {}
                _ => self.fail(format!(
                    "{name} does not come from key {:?} of Secret {:?}",
                    credentials.password_key, credentials.secret
                )),
            }
        }
        let file_envs = env_names.iter().map(|n| format!("{n}_FILE"));
        let mut files: Vec<(String, Option<String>)> = file_envs
            .filter_map(|n| self.env(&n).map(|e| (n.clone(), e.value.clone())))
            .collect();
        files.extend(
            passed
                .iter()
                .filter(|f| f.name.ends_with("password-file"))
                .map(|f| (format!("--{}", f.name), f.value.clone())),
        );
        for flag in passed.iter().filter(|f| f.name.ends_with("password")) {
            sources += 1;
            self.fail(format!("--{} puts the password in the pod spec", flag.name));
        }
        for (source, path) in files {
            sources += 1;
            let path = path.unwrap_or_default();
            if !self.file_from_secret(&path, &credentials) {
                self.fail(format!(
                    "{source}={path:?} is not key {:?} of Secret {:?} mounted in the container",
                    credentials.password_key, credentials.secret
                ));
            }
        }
        if sources == 0 {
            self.fail(format!(
                "no admin password: none of {}, their _FILE variants or a password file flag is set",
                env_names.join(", ")
            ));
        }
    }

    fn volume(&self, name: &str) -> Option<&Volume> {
        self.pod
            .spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == name)
    }

    /// Whether `path` is the file a volume mount of the container makes of `key` of the Secret.
    fn file_from_secret(&self, path: &str, credentials: &Credentials) -> bool {
        let holds =
            |items: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>, file: &str| match items {
                Some(items) => items
                    .iter()
                    .any(|i| i.path == file && i.key == credentials.password_key),
                None => file == credentials.password_key,
            };
        self.container.volume_mounts.iter().flatten().any(|mount| {
            let file = match &mount.sub_path {
                // A sub-path mount makes the mount path the file itself.
                Some(sub) if path == mount.mount_path => sub.clone(),
                Some(_) => return false,
                None => match relative(path, &mount.mount_path) {
                    Some(file) if !file.is_empty() => file,
                    _ => return false,
                },
            };
            let Some(volume) = self.volume(&mount.name) else {
                return false;
            };
            let from_secret = volume.secret.as_ref().is_some_and(|s| {
                s.secret_name.as_deref() == Some(credentials.secret.as_str())
                    && holds(s.items.as_ref(), &file)
            });
            let projected = volume.projected.as_ref().is_some_and(|p| {
                p.sources.iter().flatten().any(|source| {
                    source.secret.as_ref().is_some_and(|s| {
                        s.name == credentials.secret && holds(s.items.as_ref(), &file)
                    })
                })
            });
            from_secret || projected
        })
    }

    fn under_a_mount(&mut self, what: &str, path: &str) {
        if !path.starts_with('/') {
            self.fail(format!("{what}={path:?} is not an absolute path"));
            return;
        }
        let mounted = self
            .container
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| relative(path, &m.mount_path).is_some());
        if !mounted {
            self.fail(format!(
                "{what}={path:?} lies under no volume mount of the container"
            ));
        }
    }

    /// Paths named by flags (`--*-file`, `--*-dir`, `--*-path`, TLS material) and by env vars.
    fn paths(&mut self, passed: &[PassedFlag]) {
        for flag in passed.iter().filter(|f| names_a_path(&f.name)) {
            let Some(value) = &flag.value else { continue };
            for path in value.split(',').filter(|p| !p.is_empty()) {
                // `role:path` entries (pgctld's --pg-initdb-sql-dirs).
                let path = path.rsplit(':').next().unwrap_or(path);
                self.under_a_mount(&format!("--{}", flag.name), path);
            }
        }
        let envs: Vec<(String, String)> = self
            .container
            .env
            .iter()
            .flatten()
            .filter(|e| e.name.ends_with("_FILE"))
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect();
        for (name, path) in envs {
            self.under_a_mount(&name, &path);
        }
    }

    /// HTTP probes must reach the binary's `--http-port`.
    fn probes(&mut self, http_port: Option<String>) {
        let Some(port) = http_port.and_then(|p| p.parse::<i32>().ok()) else {
            return;
        };
        let c = self.container;
        let probes: [(&str, &Option<Probe>); 3] = [
            ("startup", &c.startup_probe),
            ("readiness", &c.readiness_probe),
            ("liveness", &c.liveness_probe),
        ];
        for (kind, probe) in probes {
            let Some(get) = probe.as_ref().and_then(|p| p.http_get.as_ref()) else {
                continue;
            };
            let target = match &get.port {
                IntOrString::Int(n) => Some(*n),
                IntOrString::String(name) => c
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name))
                    .map(|p| p.container_port),
            };
            if target != Some(port) {
                self.failures.push(format!(
                    "{} container {}: the {kind} probe targets port {:?}, not --http-port {port}",
                    self.pod.object, c.name, get.port
                ));
            }
        }
    }
}

/// `path` relative to `dir` when it lies at or under it.
fn relative(path: &str, dir: &str) -> Option<String> {
    let dir = dir.trim_end_matches('/');
    let rest = path.strip_prefix(dir)?;
    if rest.is_empty() {
        return Some(String::new());
    }
    rest.strip_prefix('/')
        .map(|r| r.trim_matches('/').to_string())
}

fn names_a_path(flag: &str) -> bool {
    let suffixes = [
        "-file",
        "-dir",
        "-path",
        "-files",
        "-dirs",
        "-template",
        "-ca",
        "-cert",
        "-key",
        "-crl",
        "-sslrootcert",
    ];
    suffixes.iter().any(|s| flag.ends_with(s))
}

/// A Multigres shard id: a key range `<start>-<end>` of hex key bounds, `inf` as the open end.
pub fn is_key_range(shard: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    shard
        .split_once('-')
        .is_some_and(|(start, end)| hex(start) && (end == "inf" || hex(end)))
}

#[cfg(test)]
mod tests;
