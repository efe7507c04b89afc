//! The operator as the demo and the end-to-end suite run it: every controller as a local process
//! with a token of its own chart's ServiceAccount (so the charts' RBAC is what gets exercised), a
//! real etcd on loopback for each managed TopoServer (reached through `--topology-address-map`),
//! and the data-plane simulator standing in for multipooler.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::config::Kubeconfig;
use kube::{Api, Client};
use multigres_api::multigres::MULTIADMIN_GRPC_PORT;
use multigres_api::naming;
use multigres_runtime::pki::Authority;
use multigres_runtime::topology_tls::TopologyIdentity;
use multigres_topology::ClientTls;

use crate::charts::OPERATOR_NAMESPACE;
use crate::operator::{OperatorProcess, spawn_operator};
use crate::processes::free_ports;

/// One controller binary and the chart that grants its permissions.
#[derive(Clone, Copy, Debug)]
pub struct Controller {
    pub binary: &'static str,
    /// Name of the chart's ServiceAccount, ClusterRole and bindings.
    pub service_account: &'static str,
    /// Dials the topology, so it gets `--topology-address-map`.
    pub topology: bool,
    /// The chart passes `--leader-elect`; so do we, so that the Lease rules are exercised too.
    pub leader_elect: bool,
    /// The chart mounts the topology CA (`--topology-ca-dir`): it dials etcd or issues its
    /// certificates.
    pub topology_ca: bool,
}

pub const CONTROLLERS: [Controller; 6] = [
    Controller {
        binary: "status-aggregator",
        service_account: "multigres-status-aggregator",
        topology: true,
        leader_elect: false,
        topology_ca: true,
    },
    Controller {
        binary: "cluster-controller",
        service_account: "multigres-cluster-controller",
        topology: true,
        leader_elect: true,
        topology_ca: true,
    },
    Controller {
        binary: "cell-controller",
        service_account: "multigres-cell-controller",
        topology: true,
        leader_elect: true,
        topology_ca: true,
    },
    Controller {
        binary: "topo-controller",
        service_account: "multigres-topo-controller",
        topology: false,
        leader_elect: true,
        topology_ca: true,
    },
    Controller {
        binary: "tablegroup-controller",
        service_account: "multigres-tablegroup-controller",
        topology: false,
        leader_elect: true,
        topology_ca: false,
    },
    Controller {
        binary: "shard-controller",
        service_account: "multigres-shard-controller",
        topology: true,
        leader_elect: false,
        topology_ca: true,
    },
];

/// The test double that writes the Pooler records multipooler would write; it runs as admin (it
/// plays the pods, not the operator).
pub const DATAPLANE_SIM: &str = "dataplane-sim";

/// How the processes are started.
pub enum Launch {
    /// Children of this process, killed when it exits (the suite).
    Attached,
    /// In their own sessions, outliving this process; `<pid, name>` lines are appended to the pid
    /// file for [`stop_detached`] (the demo).
    Detached { pid_file: PathBuf },
}

pub struct Options {
    /// etcd comes from here.
    pub bin_dir: PathBuf,
    /// The controller binaries come from here (`target/<profile>`).
    pub target_dir: PathBuf,
    /// Kubeconfigs, etcd data and logs go here.
    pub work_dir: PathBuf,
    pub admin_kubeconfig: PathBuf,
    pub token_seconds: i64,
    /// The MultigresCluster whose managed TopoServers get an etcd each.
    pub cluster_namespace: String,
    pub cluster_name: String,
    /// Cells of that cluster with a managed local TopoServer.
    pub local_topo_cells: Vec<String>,
    pub launch: Launch,
    /// Whether to start the data-plane simulator (off when real multipoolers write the records).
    pub simulator: bool,
    /// The operator's topology CA (`tls.crt`, `tls.key`), as the chart mounts it: the controllers
    /// get `--topology-ca-dir`, so new clusters' topology speaks TLS, and the etcds here speak it
    /// too. None: plaintext.
    pub topology_ca: Option<PathBuf>,
}

/// What [`start`] started.
pub struct Stack {
    pub address_map: String,
    /// Where the simulator stands in for multiadmin.
    pub sim_admin: String,
    /// Where the simulator serves multiadmin's REST pooler status, per cluster under
    /// `/<namespace>/<cluster>` (`kubectl multigres status --admin-url`).
    pub sim_admin_http: String,
    /// Where the status aggregator serves its gRPC API.
    pub aggregator_address: String,
    /// A client certificate of the topology CA, for tests that read a topology that speaks TLS.
    pub topology_tls: Option<ClientTls>,
    /// `name: log path` of every process started.
    pub started: Vec<(String, PathBuf)>,
    /// Controllers whose binary was not built (their crate does not exist yet).
    pub missing: Vec<&'static str>,
    attached: Vec<OperatorProcess>,
    /// How each attached process was started, for [`Stack::restart`].
    commands: Vec<Relaunch>,
}

struct Relaunch {
    bin: PathBuf,
    args: Vec<String>,
    kubeconfig: PathBuf,
    logs: PathBuf,
}

impl Stack {
    /// Kills an attached controller, as a crash would.
    pub fn kill(&mut self, name: &str) {
        if let Some(i) = self.started.iter().position(|(n, _)| n == name)
            && let Some(p) = self.attached.get(i)
        {
            p.kill();
        }
    }

    /// Kills an attached process (SIGKILL) and starts it again with the same arguments; its log
    /// continues in the same file. An etcd keeps its data folder.
    pub fn restart(&mut self, name: &str) -> Result<()> {
        let i = self
            .started
            .iter()
            .position(|(n, _)| n == name)
            .with_context(|| format!("no attached process named {name}"))?;
        let c = self
            .commands
            .get(i)
            .with_context(|| format!("{name} is not attached"))?;
        self.attached[i].kill_and_wait();
        self.attached[i] = spawn_operator(name, &c.bin, &c.kubeconfig, &c.logs, &c.args)?;
        Ok(())
    }

    /// Starts again every attached process that has exited, as the kubelet does for a pod with
    /// `restartPolicy: Always` (a controller whose Lease renewals failed through an API server
    /// restart exits by design). Returns their names.
    pub fn restart_exited(&mut self) -> Result<Vec<String>> {
        let mut restarted = Vec::new();
        for (i, (name, _)) in self.started.iter().enumerate() {
            let (Some(process), Some(c)) = (self.attached.get(i), self.commands.get(i)) else {
                continue;
            };
            if process.has_exited() {
                self.attached[i] = spawn_operator(name, &c.bin, &c.kubeconfig, &c.logs, &c.args)?;
                restarted.push(name.clone());
            }
        }
        Ok(restarted)
    }

    /// The names of the attached processes, as [`Stack::restart`] takes them.
    pub fn names(&self) -> Vec<String> {
        self.started.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// The admin kubeconfig's server URL and CA file.
pub fn cluster_endpoint(admin_kubeconfig: &Path) -> Result<(String, PathBuf)> {
    let kc = Kubeconfig::read_from(admin_kubeconfig)?;
    let cluster = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| anyhow!("{} has no cluster", admin_kubeconfig.display()))?;
    let server = cluster
        .server
        .ok_or_else(|| anyhow!("{} has no server", admin_kubeconfig.display()))?;
    let ca = cluster.certificate_authority.ok_or_else(|| {
        anyhow!(
            "{} has no certificate-authority file",
            admin_kubeconfig.display()
        )
    })?;
    Ok((server, PathBuf::from(ca)))
}

/// A TokenRequest token for `namespace/name` (what `kubectl create token` does).
pub async fn service_account_token(
    client: &Client,
    namespace: &str,
    name: &str,
    seconds: i64,
) -> Result<String> {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(seconds),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| {
            format!(
                "requesting a token for ServiceAccount {namespace}/{name}: is the chart installed?"
            )
        })?
        .status
        .and_then(|s| s.token)
        .ok_or_else(|| anyhow!("TokenRequest for {namespace}/{name} returned no token"))
}

/// A kubeconfig that authenticates with `token` only.
pub fn write_token_kubeconfig(
    path: &Path,
    server: &str,
    ca: &Path,
    user: &str,
    token: &str,
) -> Result<()> {
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: {user}
  context:
    cluster: local
    user: {user}
current-context: {user}
",
        ca = ca.display()
    );
    std::fs::write(path, text)?;
    Ok(())
}

/// The in-cluster client address of a managed TopoServer, as the operator writes it in the
/// topology and dials it.
pub fn topo_address(namespace: &str, topo_server: &str) -> String {
    naming::topo_address(&naming::topo_client_service(topo_server), namespace)
}

/// Starts one etcd per managed TopoServer of the cluster, then every built controller and the
/// simulator.
pub async fn start(opts: &Options, admin: &Client) -> Result<Stack> {
    let logs = opts.work_dir.join("logs");
    let kubeconfigs = opts.work_dir.join("kubeconfigs");
    std::fs::create_dir_all(&logs)?;
    std::fs::create_dir_all(&kubeconfigs)?;
    let mut stack = Stack {
        address_map: String::new(),
        sim_admin: String::new(),
        sim_admin_http: String::new(),
        aggregator_address: String::new(),
        topology_tls: None,
        started: Vec::new(),
        missing: Vec::new(),
        attached: Vec::new(),
        commands: Vec::new(),
    };

    // The etcd members of the managed TopoServers.
    let ns = &opts.cluster_namespace;
    let mut servers = vec![(
        "global".to_string(),
        naming::global_topo_server(&opts.cluster_name),
    )];
    for cell in &opts.local_topo_cells {
        servers.push((
            cell.clone(),
            naming::local_topo_server(&opts.cluster_name, cell),
        ));
    }
    let authority = match &opts.topology_ca {
        Some(dir) => Some(Arc::new(Authority::load(dir)?)),
        None => None,
    };
    if let Some(ca) = &authority {
        stack.topology_tls = Some(TopologyIdentity::new(ca.clone())?.client);
    }
    let mut map = Vec::new();
    let mut plain_ports = Vec::new();
    for (scope, server) in &servers {
        let [client_port, peer_port, plain_port] = free_ports()?;
        let name = format!("etcd-{scope}");
        let data = opts.work_dir.join(&name);
        let _ = std::fs::remove_dir_all(&data);
        let mut args = etcd_args(&name, &data, client_port, peer_port);
        if let Some(ca) = &authority {
            let host = topo_address(ns, server);
            let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
            let dir = opts.work_dir.join(format!("{name}-tls"));
            write_member_tls(ca, host, &dir)?;
            args = tls_etcd_args(args, &dir, client_port, plain_port);
        }
        plain_ports.push(plain_port);
        launch(
            opts,
            &mut stack,
            &name,
            &opts.bin_dir.join("etcd"),
            &args,
            &opts.admin_kubeconfig,
            &logs,
        )?;
        map.push(format!(
            "{}=127.0.0.1:{client_port}",
            topo_address(ns, server)
        ));
    }
    // Every other cluster, in any namespace, shares the first etcd (each has its own root in it)
    // and the simulator's multiadmin: `*:<port>` rules match what no exact rule names.
    let mut shared_etcd = map[0]
        .split_once('=')
        .map(|(_, to)| to.to_string())
        .unwrap_or_default();
    // With TLS, other clusters reach it through a front that is valid for their names; a detached
    // demo has no process to run the front in, and dials the first etcd's own TLS port.
    if let (Some(ca), Launch::Attached) = (&authority, &opts.launch) {
        let plain = SocketAddr::from(([127, 0, 0, 1], plain_ports[0]));
        shared_etcd = format!("127.0.0.1:{}", crate::tls_front::start(ca.clone(), plain)?);
    }
    map.push(format!("*:{}={shared_etcd}", naming::TOPO_CLIENT_PORT));
    let [admin_port, admin_http_port] = free_ports()?;
    if opts.simulator {
        map.push(format!("*:{MULTIADMIN_GRPC_PORT}=127.0.0.1:{admin_port}"));
    }
    stack.sim_admin = format!("127.0.0.1:{admin_port}");
    stack.sim_admin_http = format!("127.0.0.1:{admin_http_port}");
    stack.address_map = map.join(",");

    let (server, ca) = cluster_endpoint(&opts.admin_kubeconfig)?;
    // Fixed ports for the gRPC health services, which the aggregator polls as it polls the charts'
    // Services in a cluster.
    // Health and metrics on ports chosen here too, all in one call (distinct): a controller's server
    // on an ephemeral port could take the aggregator's port before the aggregator binds it (seen:
    // the cluster controller's subscription answered 404 by a health server).
    const N: usize = CONTROLLERS.len();
    let ports: [u16; 2 * N + 1] = free_ports()?;
    let health_ports: [u16; N] = ports[..N].try_into()?;
    let http_ports: [u16; N] = ports[N..2 * N].try_into()?;
    let aggregator_port = ports[2 * N];
    stack.aggregator_address = format!("http://127.0.0.1:{aggregator_port}");
    let health_endpoints: Vec<String> = CONTROLLERS
        .iter()
        .zip(health_ports)
        .filter(|(c, _)| c.binary != "status-aggregator")
        .map(|(c, port)| format!("{}=127.0.0.1:{port}", c.binary))
        .collect();
    for ((c, health_port), http_port) in CONTROLLERS.into_iter().zip(health_ports).zip(http_ports) {
        let bin = opts.target_dir.join(c.binary);
        if !bin.is_file() {
            stack.missing.push(c.binary);
            continue;
        }
        let token = service_account_token(
            admin,
            OPERATOR_NAMESPACE,
            c.service_account,
            opts.token_seconds,
        )
        .await?;
        let kubeconfig = kubeconfigs.join(format!("{}.yaml", c.service_account));
        write_token_kubeconfig(&kubeconfig, &server, &ca, c.service_account, &token)?;
        let mut args = vec![
            format!("--http-addr=127.0.0.1:{http_port}"),
            format!("--grpc-health-addr=127.0.0.1:{health_port}"),
            "--log-json=false".to_string(),
            format!("--lease-namespace={OPERATOR_NAMESPACE}"),
            format!("--identity={}-local", c.binary),
        ];
        if c.leader_elect {
            args.push("--leader-elect".into());
        }
        if c.topology {
            args.push(format!("--topology-address-map={}", stack.address_map));
        }
        if let Some(dir) = opts.topology_ca.as_ref().filter(|_| c.topology_ca) {
            args.push(format!("--topology-ca-dir={}", dir.display()));
        }
        args.extend(component_args(c.binary, aggregator_port, &health_endpoints));
        launch(opts, &mut stack, c.binary, &bin, &args, &kubeconfig, &logs)?;
    }

    let sim = opts.target_dir.join(DATAPLANE_SIM);
    if !opts.simulator {
        // Real multipoolers write the Pooler records (the conformance run).
    } else if sim.is_file() {
        let mut args = vec![
            format!("--topology-address-map={}", stack.address_map),
            format!("--multiadmin-addr=127.0.0.1:{admin_port}"),
            format!("--multiadmin-http-addr={}", stack.sim_admin_http),
        ];
        if let Some(dir) = &opts.topology_ca {
            args.push(format!("--topology-ca-dir={}", dir.display()));
        }
        launch(
            opts,
            &mut stack,
            DATAPLANE_SIM,
            &sim,
            &args,
            &opts.admin_kubeconfig,
            &logs,
        )?;
    } else {
        stack.missing.push(DATAPLANE_SIM);
    }
    Ok(stack)
}

/// What a controller takes beyond the common flags, as its chart passes it.
fn component_args(binary: &str, aggregator_port: u16, health_endpoints: &[String]) -> Vec<String> {
    match binary {
        "status-aggregator" => vec![
            format!("--grpc-addr=127.0.0.1:{aggregator_port}"),
            format!(
                "--controller-health-endpoints={}",
                health_endpoints.join(",")
            ),
        ],
        // The simulator serves every table group, so no Shard's pods are held.
        "shard-controller" => vec!["--partition".into(), "--hold-unserved-shards=false".into()],
        "cluster-controller" => vec![format!(
            "--status-aggregator-endpoint=http://127.0.0.1:{aggregator_port}"
        )],
        _ => Vec::new(),
    }
}

/// A member certificate for the etcd standing in for the TopoServer dialed as `host`, as the topo
/// controller issues it, in `dir` (`ca.crt`, `tls.crt`, `tls.key`).
fn write_member_tls(ca: &Authority, host: &str, dir: &Path) -> Result<()> {
    let issued = ca.sign(host, &[host.to_string(), "localhost".to_string()])?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.crt"), &issued.ca_pem)?;
    std::fs::write(dir.join("tls.crt"), &issued.cert_pem)?;
    std::fs::write(dir.join("tls.key"), &issued.key_pem)?;
    Ok(())
}

/// `args` with TLS and client-certificate auth on the client port, as a TopoServer that speaks TLS
/// has, and a plaintext port beside it for the TLS front.
fn tls_etcd_args(args: Vec<String>, dir: &Path, client: u16, plain: u16) -> Vec<String> {
    let mut out: Vec<String> = args
        .into_iter()
        .filter(|a| {
            !a.starts_with("--listen-client-urls=") && !a.starts_with("--advertise-client-urls=")
        })
        .collect();
    out.extend([
        format!("--listen-client-urls=https://127.0.0.1:{client},http://127.0.0.1:{plain}"),
        format!("--advertise-client-urls=https://127.0.0.1:{client}"),
    ]);
    out.extend(crate::etcd::client_tls_flags(dir));
    out
}

fn etcd_args(name: &str, data: &Path, client: u16, peer: u16) -> Vec<String> {
    let mut args = crate::etcd::args(name, data, client, peer);
    args.extend(["--unsafe-no-fsync".into(), "--log-level=warn".into()]);
    args
}

fn launch(
    opts: &Options,
    stack: &mut Stack,
    name: &str,
    bin: &Path,
    args: &[String],
    kubeconfig: &Path,
    logs: &Path,
) -> Result<()> {
    let log = logs.join(format!("{name}.log"));
    match &opts.launch {
        Launch::Attached => {
            stack
                .attached
                .push(spawn_operator(name, bin, kubeconfig, logs, args)?);
            stack.commands.push(Relaunch {
                bin: bin.to_path_buf(),
                args: args.to_vec(),
                kubeconfig: kubeconfig.to_path_buf(),
                logs: logs.to_path_buf(),
            });
        }
        Launch::Detached { pid_file } => {
            let out = std::fs::File::create(&log)?;
            let mut cmd = Command::new(bin);
            cmd.args(args)
                .env("KUBECONFIG", kubeconfig)
                .env("MULTIGRES_LOG_JSON", "false")
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                )
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out);
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(pid_file)?;
            writeln!(f, "{} {name}", child.id())?;
        }
    }
    stack.started.push((name.to_string(), log));
    Ok(())
}

/// Stops the process groups listed in a pid file written by a detached [`start`], and removes it.
/// Returns the names stopped.
pub fn stop_detached(pid_file: &Path) -> Result<Vec<String>> {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return Ok(Vec::new());
    };
    let mut stopped = Vec::new();
    for line in text.lines() {
        let Some((pid, name)) = line.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        // Each was started with setsid, so its pid is its process group.
        if unsafe { libc::kill(-pid, libc::SIGTERM) } == 0 {
            stopped.push(name.to_string());
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    for line in text.lines() {
        if let Some(Ok(pid)) = line.split_once(' ').map(|(p, _)| p.parse::<i32>()) {
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }
    std::fs::remove_file(pid_file)?;
    Ok(stopped)
}
