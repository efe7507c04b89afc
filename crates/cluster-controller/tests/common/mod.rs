//! Shared by the integration tests: the controller running as its own ServiceAccount (with the RBAC
//! its chart grants), one controller process per test namespace (so its metrics count only that test's
//! work), a real etcd standing in for a managed global TopoServer, and the samples.
#![allow(dead_code)]

pub mod multiadmin;
pub mod tree;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use multigres_api::{DeploymentTemplate, MultigresCluster};
pub use multigres_e2e::etcd::TestEtcd;
use multigres_e2e::{ControlPlane, OperatorProcess};
use multigres_topology::{AddressMapping, TopoClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

pub const CONTROLLER_NAMESPACE: &str = "multigres-system";
pub const CONTROLLER_SA: &str = "multigres-cluster-controller";
pub const SAMPLE: &str = "example-multigres-cluster";
pub const TEST_MANAGER: &str = "e2e-user";
pub const WAIT: Duration = Duration::from_secs(60);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn cp() -> &'static ControlPlane {
    multigres_e2e::shared()
}

/// CRDs, the controller's namespace, ServiceAccount and RBAC, once per test binary; returns a
/// kubeconfig that authenticates as that ServiceAccount.
pub async fn setup() -> &'static PathBuf {
    static SETUP: OnceCell<PathBuf> = OnceCell::const_new();
    SETUP
        .get_or_init(|| async { install().await.expect("test setup") })
        .await
}

async fn install() -> Result<PathBuf> {
    let cp = cp();
    let client = cp.client();
    multigres_e2e::install_crds(&client).await?;
    let pp = PatchParams::apply(TEST_MANAGER).force();
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(CONTROLLER_NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .patch(CONTROLLER_NAMESPACE, &pp, &Patch::Apply(&ns))
        .await?;
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(CONTROLLER_SA.into()),
            namespace: Some(CONTROLLER_NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let sas = Api::<ServiceAccount>::namespaced(client.clone(), CONTROLLER_NAMESPACE);
    sas.patch(CONTROLLER_SA, &pp, &Patch::Apply(&sa)).await?;
    let role: ClusterRole =
        multigres_e2e::charts::cluster_role(&cp.bin_dir().join("helm"), "cluster-controller")?;
    Api::<ClusterRole>::all(client.clone())
        .patch(&role.name_any(), &pp, &Patch::Apply(&role))
        .await?;
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "multigres-cluster-controller"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "multigres-cluster-controller"},
        "subjects": [{"kind": "ServiceAccount", "name": CONTROLLER_SA, "namespace": CONTROLLER_NAMESPACE}],
    }))?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(&binding.name_any(), &pp, &Patch::Apply(&binding))
        .await?;
    let token = token(&client, CONTROLLER_NAMESPACE, CONTROLLER_SA).await?;
    let admin = kube::config::Kubeconfig::read_from(cp.kubeconfig_path())?;
    let cluster = admin.clusters[0]
        .cluster
        .clone()
        .ok_or_else(|| anyhow!("admin kubeconfig has no cluster"))?;
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: sa\ncurrent-context: e2e\n",
        cluster.server.unwrap_or_default(),
        cluster.certificate_authority.unwrap_or_default(),
    );
    let path = cp.log_dir().join("cluster-controller.kubeconfig");
    std::fs::create_dir_all(cp.log_dir())?;
    std::fs::write(&path, text)?;
    Ok(path)
}

pub async fn token(client: &Client, namespace: &str, name: &str) -> Result<String> {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(24 * 3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await?
        .status
        .and_then(|s| s.token)
        .ok_or_else(|| anyhow!("no token for {namespace}/{name}"))
}

/// A cluster-controller process watching one namespace.
pub struct Running {
    pub process: OperatorProcess,
    pub http: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts the controller for `namespace`, its topology mapped by `mapping`, and waits until ready.
pub async fn start_controller(namespace: &str, mapping: &str) -> Result<Running> {
    start_controller_with(namespace, mapping, &[]).await
}

/// [`start_controller`] with more flags.
pub async fn start_controller_with(
    namespace: &str,
    mapping: &str,
    extra: &[String],
) -> Result<Running> {
    let kubeconfig = setup().await;
    let mut args = vec![
        "--watch-namespace".to_string(),
        namespace.to_string(),
        // Port 0: ports chosen here and bound later by the child were taken in between (CI).
        "--http-addr".into(),
        "127.0.0.1:0".into(),
        "--grpc-health-addr".into(),
        "127.0.0.1:0".into(),
        "--topology-address-map".into(),
        mapping.to_string(),
        "--topology-timeout".into(),
        "1s".into(),
    ];
    args.extend_from_slice(extra);
    let process = multigres_e2e::spawn_operator(
        &format!("cluster-controller-{namespace}"),
        std::path::Path::new(env!("CARGO_BIN_EXE_cluster-controller")),
        kubeconfig,
        &cp().log_dir(),
        &args,
    )?;
    let http = process.bound_address("health and metrics", WAIT).await?;
    let running = Running { process, http };
    let deadline = tokio::time::Instant::now() + WAIT;
    // Readiness is only observable by asking; a short poll interval, not a sleep standing in for a wait.
    loop {
        if let Ok(body) = running.get("/readyz").await
            && body.contains("ready")
            && !body.contains("not")
        {
            return Ok(running);
        }
        if tokio::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(&running.process.log).unwrap_or_default();
            return Err(anyhow!("controller not ready after {WAIT:?}; log:\n{log}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Running {
    pub async fn get(&self, path: &str) -> Result<String> {
        let mut stream = tokio::net::TcpStream::connect(&self.http).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        Ok(body)
    }

    /// A metric's value summed over its series whose labels contain `filter`.
    pub async fn metric(&self, name: &str, filter: &str) -> Result<f64> {
        let text = self.get("/metrics").await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Writes the controller has sent to the API server so far.
    pub async fn writes(&self) -> Result<f64> {
        let mut total = 0.0;
        for verb in ["create", "update", "patch", "delete"] {
            total += self
                .metric("multigres_kube_requests_total", &format!("verb=\"{verb}\""))
                .await?;
        }
        Ok(total)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.process.log).unwrap_or_default()
    }
}

fn docs(file: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(repo().join("deploy/samples").join(file)).expect("sample");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .collect()
}

/// The sample cluster, moved to `namespace`.
pub fn sample_cluster(namespace: &str) -> MultigresCluster {
    let mut cluster: MultigresCluster =
        serde_yaml::from_value(docs("multigrescluster.yaml").remove(0)).expect("cluster");
    cluster.metadata.namespace = Some(namespace.into());
    cluster
}

/// The sample templates, moved to `namespace`.
pub fn sample_templates(namespace: &str) -> Vec<DeploymentTemplate> {
    [
        "deploymenttemplate-standard-ha.yaml",
        "deploymenttemplates-shard-pools.yaml",
    ]
    .into_iter()
    .flat_map(docs)
    .map(|d| {
        let mut t: DeploymentTemplate = serde_yaml::from_value(d).expect("template");
        t.metadata.namespace = Some(namespace.into());
        t
    })
    .collect()
}

/// Server-side applies `object` as the test user would.
pub async fn apply<K>(client: &Client, object: &K) -> Result<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(
        client.clone(),
        object.meta().namespace.as_deref().unwrap_or_default(),
    );
    api.patch(
        &object.name_any(),
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .with_context(|| format!("applying {} {}", K::kind(&()), object.name_any()))
}

pub async fn apply_templates(client: &Client, namespace: &str) -> Result<()> {
    for t in sample_templates(namespace) {
        apply(client, &t).await?;
    }
    Ok(())
}

/// A client of the test etcd, unmapped.
pub async fn topo_client(etcd: &TestEtcd) -> multigres_topology::Result<TopoClient> {
    let endpoints = [etcd.endpoint().to_string()];
    TopoClient::connect(
        &endpoints,
        &AddressMapping::off(),
        Duration::from_secs(2),
        None,
    )
    .await
}

/// Installs a CRD from its YAML (another project's, as a test fixture) and waits until it is
/// established.
pub async fn install_crd(client: &Client, yaml: &str) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::runtime::wait::{await_condition, conditions};
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_yaml::from_str(yaml)?;
    let name = crd.name_any();
    api.patch(
        &name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await?;
    tokio::time::timeout(
        WAIT,
        await_condition(api.clone(), &name, conditions::is_crd_established()),
    )
    .await??;
    Ok(())
}
