//! The operator end to end, on the real local control plane: installed with its Helm charts, every
//! controller running as a local process with a token of its own chart's ServiceAccount, so that
//! the charts' RBAC is exactly what the controllers get.
//!
//! Needs the workspace's binaries built first (`cargo build --workspace --bins`; `just test` does).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use multigres_api::{Cell, MultigresCluster, labels, naming};
use multigres_e2e::charts;
use multigres_e2e::{ControlPlane, audit, progress, samples, shared, stack, wait_for};

#[path = "operator/least_privilege.rs"]
mod least_privilege;
#[path = "operator/plugin_backup.rs"]
mod plugin_backup;
#[path = "operator/plugin_replication.rs"]
mod plugin_replication;

const SA_PREFIX: &str = "system:serviceaccount:multigres-system:";
const CONVERGE: Duration = Duration::from_secs(600);

fn helm(cp: &ControlPlane) -> PathBuf {
    cp.bin_dir().join("helm")
}

async fn create_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) -> Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::apply("multigres-e2e"),
            &Patch::Apply(&ns),
        )
        .await?;
    Ok(())
}

/// Waits (polling the audit log file, with a deadline) until a 403 for `user` on `verb resource`
/// shows up.
async fn wait_for_forbidden(
    cp: &ControlPlane,
    user: &str,
    verb: &str,
    resource: &str,
    timeout: Duration,
) -> Result<audit::Forbidden> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = audit::forbidden(cp.audit_log_path(), user)?
            .into_iter()
            .find(|f| f.verb == verb && f.resource == resource);
        if let Some(f) = found {
            return Ok(f);
        }
        if Instant::now() > deadline {
            bail!("no 403 for {user} {verb} {resource} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every chart renders into objects the real API server accepts (server-side dry run), cluster-wide
/// and namespaced, and the controllers' pods pass the `restricted` Pod Security level.
#[tokio::test]
async fn charts_render_into_objects_the_api_server_accepts() -> Result<()> {
    let cp = shared();
    let helm = helm(cp);
    let kubectl = cp.bin_dir().join("kubectl");
    charts::build_dependencies_once(&helm)?;
    let dirs: Vec<String> = std::fs::read_dir(charts::repo_root().join("charts"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Chart.yaml").is_file())
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        dirs.len(),
        9,
        "six component charts, crds, common, umbrella: {dirs:?}"
    );
    let mut lint = vec!["lint", "--strict"];
    lint.extend(dirs.iter().map(String::as_str));
    let out = charts::run(&helm, &lint, None)?;
    assert!(
        out.contains("9 chart(s) linted, 0 chart(s) failed"),
        "{out}"
    );

    let client = cp.client();
    let ns = "chart-dry-run";
    create_namespace(
        &client,
        ns,
        &[
            ("pod-security.kubernetes.io/enforce", "restricted"),
            ("pod-security.kubernetes.io/warn", "restricted"),
        ],
    )
    .await?;
    let umbrella = charts::chart_dir(charts::UMBRELLA).display().to_string();
    for extra in [
        &[][..],
        &[
            "--set",
            "clusterController.rbac.namespaced=true",
            "--set",
            "cellController.rbac.namespaced=true",
            "--set",
            "shardController.rbac.namespaced=true",
            "--set",
            "topoController.rbac.namespaced=true",
            "--set",
            "tablegroupController.rbac.namespaced=true",
            "--set",
            "statusAggregator.rbac.namespaced=true",
        ][..],
        &[
            "--set",
            "statusAggregator.tls.secretName=aggregator-tls",
            "--set",
            "clusterController.statusAggregator.tls.secretName=aggregator-client-tls",
            "--set",
            "global.topologyAllowedHosts=*.svc\\,etcd.example.com",
            "--set",
            "global.topologyTls.externalClientSecret=external-etcd-client",
        ][..],
    ] {
        let tls = extra.contains(&"statusAggregator.tls.secretName=aggregator-tls");
        let mut args = vec![
            "template",
            "dry-run",
            umbrella.as_str(),
            "--namespace",
            ns,
            "--include-crds",
        ];
        args.extend(extra);
        let rendered = charts::run(&helm, &args, None)?;
        let path = cp
            .log_dir()
            .join(format!("rendered-{}-{tls}.yaml", extra.len()));
        std::fs::write(&path, &rendered)?;
        let out = std::process::Command::new(&kubectl)
            // The other test of this binary may have installed the same cluster-scoped objects through
            // Helm; forcing a dry run changes nothing and still has the server validate every object.
            .args([
                "apply",
                "--server-side",
                "--force-conflicts",
                "--dry-run=server",
                "-f",
            ])
            .arg(&path)
            .env("KUBECONFIG", cp.kubeconfig_path())
            .output()?;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "server-side dry run of {} failed:\n{stderr}",
            path.display()
        );
        assert!(
            !stderr.contains("PodSecurity"),
            "restricted Pod Security warnings:\n{stderr}"
        );
        assert_eq!(stdout.matches("deployment.apps/").count(), 6, "{stdout}");
        if tls {
            for arg in [
                "--tls-cert=/etc/multigres/tls/tls.crt",
                "--tls-client-ca=/etc/multigres/tls/ca.crt",
                "--status-aggregator-endpoint=https://multigres-status-aggregator.",
                "--status-aggregator-ca=/etc/multigres/tls/ca.crt",
                "--status-aggregator-cert=/etc/multigres/tls/tls.crt",
                "secretName: \"aggregator-tls\"",
                "secretName: \"aggregator-client-tls\"",
                "value: \"*.svc,etcd.example.com\"",
            ] {
                assert!(rendered.contains(arg), "{arg} not rendered");
            }
            assert_eq!(
                rendered.matches("MULTIGRES_TOPOLOGY_ALLOWED_HOSTS").count(),
                6
            );
            // The four controllers that dial etcd; the topo and tablegroup controllers do not.
            let flag = "--external-topology-tls-dir=/etc/multigres/external-topology-tls";
            assert_eq!(rendered.matches(flag).count(), 4, "{flag}");
            let mount = "secretName: \"external-etcd-client\"";
            assert_eq!(rendered.matches(mount).count(), 4, "{mount}");
        }
        if extra.is_empty() || tls {
            assert_eq!(
                stdout
                    .matches("clusterrole.rbac.authorization.k8s.io/")
                    .count(),
                6,
                "{stdout}"
            );
        } else {
            // Namespaced: a Role per controller in the watched namespace, plus the Lease Roles;
            // the ClusterRoles keep only the CRD rule.
            assert!(
                stdout.matches("role.rbac.authorization.k8s.io/").count() >= 6 + 5,
                "{stdout}"
            );
            assert!(rendered.contains(&format!("--watch-namespace={ns}")));
        }
    }
    Ok(())
}

/// The CR definition's example, every controller under its own chart's RBAC. Once the cell-controller
/// has done its part, its ClusterRole loses one rule (`patch` on Deployments): the change it must
/// roll out is refused with a 403 and not applied, until the rule is back. Then the whole example
/// converges to Available, with no other 403 for any controller ServiceAccount in the audit log.
#[tokio::test]
async fn example_converges_under_chart_rbac_and_a_trimmed_rule_breaks_it() -> Result<()> {
    let cp = shared();
    let helm = helm(cp);
    let client = cp.client();
    let started = Instant::now();
    charts::build_dependencies_once(&helm)?;
    charts::install_operator(&helm, cp.kubeconfig_path(), &charts::zero_replicas())?;
    eprintln!(
        "[{:.1}s] operator installed with helm",
        started.elapsed().as_secs_f64()
    );

    let sample = samples::sample_cluster()?;
    let work_dir = cp.log_dir().join("operator");
    let opts = stack::Options {
        bin_dir: cp.bin_dir().to_path_buf(),
        target_dir: multigres_e2e::workspace_binaries_dir()?,
        work_dir: work_dir.clone(),
        admin_kubeconfig: cp.kubeconfig_path().to_path_buf(),
        token_seconds: 3600,
        cluster_namespace: sample.namespace.clone(),
        cluster_name: sample.name.clone(),
        local_topo_cells: sample.local_topo_cells.clone(),
        launch: stack::Launch::Attached,
        simulator: true,
        topology_ca: Some(charts::topology_ca(&client, &work_dir.join("topology-ca")).await?),
    };
    let running = stack::start(&opts, &client).await?;
    assert!(
        running.missing.is_empty(),
        "binaries not built (run `cargo build --workspace --bins`): {:?}",
        running.missing
    );

    // Every generated workload must pass the `restricted` Pod Security Standard: the API server
    // refuses a pod that does not, and the tree would not converge.
    let restricted = [("pod-security.kubernetes.io/enforce", "restricted")];
    create_namespace(&client, &sample.namespace, &restricted).await?;
    samples::apply_files(&client, &samples::sample_files()?, &sample.namespace).await?;
    let clusters = Api::<MultigresCluster>::namespaced(client.clone(), &sample.namespace);

    // First the cell-controller's part of the tree: us-east-1's Cell Available.
    let cells = Api::<Cell>::namespaced(client.clone(), &sample.namespace);
    let east = naming::cell(&sample.name, "us-east-1");
    let cell_available = |c: &Cell| {
        c.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == progress::AVAILABLE && c.status == "True")
        })
    };
    wait_for(&cells, &east, CONVERGE, cell_available)
        .await
        .with_context(|| format!("logs in {}", work_dir.join("logs").display()))?;
    eprintln!(
        "[{:.1}s] Cell {east} Available",
        started.elapsed().as_secs_f64()
    );

    // Trim one rule: the cell-controller may no longer patch Deployments.
    let roles = Api::<ClusterRole>::all(client.clone());
    let role_name = "multigres-cell-controller";
    let user = format!("{SA_PREFIX}{role_name}");
    let original = roles.get(role_name).await?;
    let mut trimmed = original.clone();
    for rule in trimmed.rules.iter_mut().flatten() {
        if rule
            .resources
            .as_ref()
            .is_some_and(|r| r.iter().any(|r| r == "deployments"))
        {
            rule.verbs.retain(|v| v != "patch");
        }
    }
    roles
        .replace(role_name, &PostParams::default(), &trimmed)
        .await?;

    // A change only the cell-controller can roll out: us-east-1's multiorch from 1 to 2 replicas.
    let multiorch = naming::multiorch(&east);
    let deployments = Api::<Deployment>::namespaced(client.clone(), &sample.namespace);
    let replicas = |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas);
    assert_eq!(replicas(&deployments.get(&multiorch).await?), Some(1));
    let bump = serde_json::json!([{"op": "replace", "path": "/spec/cells/0/spec/multiorch/replicas", "value": 2}]);
    clusters
        .patch(
            &sample.name,
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(bump)?),
        )
        .await?;
    let refused =
        wait_for_forbidden(cp, &user, "patch", "deployments", Duration::from_secs(120)).await?;
    eprintln!(
        "[{:.1}s] trimmed rule: {refused}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        replicas(&deployments.get(&multiorch).await?),
        Some(1),
        "the Deployment changed although the controller may not patch it"
    );

    // Back to the chart's rule: the change goes through.
    let mut restored = original.clone();
    restored.metadata.resource_version = roles.get(role_name).await?.metadata.resource_version;
    roles
        .replace(role_name, &PostParams::default(), &restored)
        .await?;
    wait_for(&deployments, &multiorch, Duration::from_secs(300), |d| {
        replicas(d) == Some(2)
    })
    .await?;
    eprintln!(
        "[{:.1}s] rule restored, multiorch scaled to 2",
        started.elapsed().as_secs_f64()
    );

    // The whole example Available, and no 403 but the ones provoked above.
    let converged = wait_for(&clusters, &sample.name, CONVERGE, progress::is_available).await;
    let summary = progress::summary(&client, &sample.namespace, &sample.name).await?;
    eprintln!("[{:.1}s] {summary}", started.elapsed().as_secs_f64());
    converged.with_context(|| format!("logs in {}", work_dir.join("logs").display()))?;
    let denied: Vec<_> = audit::forbidden(cp.audit_log_path(), SA_PREFIX)?
        .into_iter()
        .filter(|f| !(f.user == user && f.verb == "patch" && f.resource == "deployments"))
        .collect();
    assert!(
        denied.is_empty(),
        "403s for the controllers' ServiceAccounts:\n{}",
        denied
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    topology_speaks_tls(&client, &sample.namespace, &sample.name).await?;
    least_privilege::no_controller_reads_a_secret(cp, &client, &sample.namespace, &sample.name)
        .await?;
    eprintln!(
        "[{:.1}s] no chart ServiceAccount may get or list a Secret",
        started.elapsed().as_secs_f64()
    );

    // `kubectl multigres status` sees the same tree: every shard with a primary, every pod Ready.
    let plugin = multigres_e2e::workspace_binaries_dir()?.join("kubectl-multigres");
    let out = std::process::Command::new(&plugin)
        .args([
            "status",
            &sample.name,
            "-n",
            &sample.namespace,
            "-o",
            "json",
        ])
        .env("KUBECONFIG", cp.kubeconfig_path())
        .output()
        .with_context(|| format!("running {}", plugin.display()))?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let available = tree["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Available" && c["status"] == "True");
    assert!(available, "{tree:#}");
    let cells = tree["cells"].as_array().map_or(0, Vec::len);
    assert_eq!(cells, 2, "{tree:#}");
    let shards: Vec<&serde_json::Value> = tree["tableGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|tg| tg["shards"].as_array().into_iter().flatten())
        .collect();
    assert!(!shards.is_empty(), "{tree:#}");
    for shard in &shards {
        assert_eq!(shard["readyPods"], shard["totalPods"], "{shard:#}");
        assert_eq!(
            shard["notReady"].as_array().map(Vec::len),
            Some(0),
            "{shard:#}"
        );
    }
    let text = std::process::Command::new(&plugin)
        .args(["status", &sample.name, "-n", &sample.namespace])
        .env("KUBECONFIG", cp.kubeconfig_path())
        .output()?;
    let text = String::from_utf8_lossy(&text.stdout);
    eprintln!("{text}");
    assert!(text.starts_with(&format!(
        "MultigresCluster {}/{}",
        sample.namespace, sample.name
    )));

    // `kubectl multigres restart --shard <one>` replaces each of its pods once (the shard
    // controller's safe order), and the cluster is Available again.
    let shard = shards
        .iter()
        .find(|s| s["totalPods"].as_i64() > Some(1))
        .and_then(|s| s["name"].as_str())
        .expect("a Shard with pods")
        .to_string();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &sample.namespace);
    let owned = ListParams::default().labels(&format!("multigres.com/owner={shard}"));
    let before: Vec<(String, Option<String>)> = pods
        .list(&owned)
        .await?
        .items
        .iter()
        .map(|p| (p.name_any(), p.uid()))
        .collect();
    let out = std::process::Command::new(&plugin)
        .args([
            "restart",
            &sample.name,
            "-n",
            &sample.namespace,
            "--shard",
            &shard,
        ])
        .env("KUBECONFIG", cp.kubeconfig_path())
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restart_at = Instant::now();
    for (name, uid) in &before {
        wait_for(&pods, name, CONVERGE, |p: &Pod| {
            p.uid() != *uid && multigres_runtime::pods::is_ready(p)
        })
        .await
        .with_context(|| format!("pod {name} of {shard} after the restart request"))?;
    }
    wait_for(&clusters, &sample.name, CONVERGE, progress::is_available).await?;
    eprintln!(
        "[{:.1}s] restart of {shard}: {} pods replaced, cluster Available, in {:.1}s",
        started.elapsed().as_secs_f64(),
        before.len(),
        restart_at.elapsed().as_secs_f64()
    );

    let names: Vec<String> = shards
        .iter()
        .filter_map(|s| s["name"].as_str().map(String::from))
        .collect();
    plugin_switchover_psql_and_report(cp, &client, &plugin, &sample, &names).await?;
    eprintln!(
        "[{:.1}s] switchover, psql --print-env and report",
        started.elapsed().as_secs_f64()
    );
    plugin_backup::backup_of_a_database(cp, &client, &plugin, &sample).await?;
    eprintln!("[{:.1}s] backup", started.elapsed().as_secs_f64());
    plugin_replication::lagging_replicas(cp, &client, &plugin, &sample, &running.sim_admin_http)
        .await?;
    eprintln!(
        "[{:.1}s] replication and a lagging replica",
        started.elapsed().as_secs_f64()
    );
    drop(running);
    Ok(())
}

/// Runs the plugin with the test's kubeconfig; fails with its stderr unless it succeeds.
fn run_plugin(cp: &ControlPlane, plugin: &std::path::Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(plugin)
        .args(args)
        .env("KUBECONFIG", cp.kubeconfig_path())
        .output()
        .with_context(|| format!("running {}", plugin.display()))?;
    if !out.status.success() {
        bail!(
            "kubectl-multigres {}: {}
{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `kubectl multigres switchover` moves a Shard's primary (the simulator, standing in for
/// multiadmin and multiorch, elects another replica-pool pod); `psql --print-env` names a Ready
/// gateway pod, the Secret's user and the first database, and no password; `report` writes the
/// bundle with every Shard and no Secret data.
async fn plugin_switchover_psql_and_report(
    cp: &ControlPlane,
    client: &Client,
    plugin: &std::path::Path,
    sample: &samples::SampleCluster,
    shards: &[String],
) -> Result<()> {
    let ns = sample.namespace.as_str();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);

    // A Shard with two replica-pool pods or more: a standby can take over.
    let mut chosen = None;
    for shard in shards {
        let replicas = ListParams::default().labels(&format!(
            "multigres.com/owner={shard},multigres.com/pool-type=replica"
        ));
        if pods.list(&replicas).await?.items.len() >= 2 {
            chosen = Some(shard.clone());
            break;
        }
    }
    let shard = chosen.context("a Shard with two replica-pool pods")?;
    let out = run_plugin(
        cp,
        plugin,
        &[
            "switchover",
            &sample.name,
            "-n",
            ns,
            "--shard",
            &shard,
            "--timeout",
            "180",
            "-o",
            "json",
        ],
    )?;
    let outcome: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(outcome["result"], "Succeeded", "{outcome:#}");
    let (from, to) = (
        outcome["from"].as_str().unwrap_or_default(),
        outcome["to"].as_str().unwrap_or_default(),
    );
    assert!(
        !from.is_empty() && !to.is_empty() && from != to,
        "{outcome:#}"
    );
    for pod in [from, to] {
        let p = pods.get(pod).await?;
        assert_eq!(
            p.labels().get("multigres.com/owner").map(String::as_str),
            Some(shard.as_str()),
            "{pod} is a pod of {shard}"
        );
    }
    eprintln!("switchover of {shard}: {from} -> {to}");

    // psql --print-env: the first cell's Ready gateway, the Secret's user, no password anywhere.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets
        .get(&naming::credentials_secret(&sample.name))
        .await?;
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| String::from_utf8(data[key].0.clone()).unwrap_or_default();
    let (user, password) = (text("username"), text("password"));
    assert!(password.len() >= 16, "a generated password");
    let out = run_plugin(
        cp,
        plugin,
        &["psql", &sample.name, "-n", ns, "--print-env", "-o", "json"],
    )?;
    assert!(
        !out.contains(&password),
        "the password is printed:
{out}"
    );
    let printed: serde_json::Value = serde_json::from_str(&out)?;
    let gateway = printed["session"]["route"]["portForward"]["pod"]
        .as_str()
        .with_context(|| format!("a port-forward: {printed:#}"))?;
    let pod = pods.get(gateway).await?;
    assert!(
        multigres_runtime::pods::is_ready(&pod),
        "{gateway} is Ready"
    );
    assert_eq!(
        pod.labels()
            .get("app.kubernetes.io/component")
            .map(String::as_str),
        Some("multigateway")
    );
    assert_eq!(printed["env"]["PGUSER"], user.as_str(), "{printed:#}");
    let cluster = Api::<MultigresCluster>::namespaced(client.clone(), ns)
        .get(&sample.name)
        .await?;
    assert_eq!(
        pod.labels().get("multigres.com/cell"),
        Some(&cluster.spec.cells[0].name),
        "the first cell's gateway"
    );
    let first_db = cluster.spec.databases[0].name.clone();
    assert_eq!(
        printed["env"]["PGDATABASE"],
        first_db.as_str(),
        "{printed:#}"
    );
    assert_eq!(printed["env"]["PGHOST"], "127.0.0.1");
    let text_out = run_plugin(cp, plugin, &["psql", &sample.name, "-n", ns, "--print-env"])?;
    assert!(!text_out.contains(&password));
    eprintln!("{text_out}");

    // psql for real, with --address (no port-forward: no kubelet here) and a stand-in psql on the
    // PATH that records what it got: the connection and the password in its environment, the
    // arguments after `--` on its command line, its exit code passed on.
    let stub_dir = cp.log_dir().join("operator").join("psql-stub");
    std::fs::create_dir_all(&stub_dir)?;
    let stub = stub_dir.join("psql");
    let recorded = stub_dir.join("recorded");
    std::fs::write(
        &stub,
        "#!/bin/sh\n{ echo \"ARGS=$*\"; env | grep '^PG' | sort; } > \"$PSQL_STUB_OUT\"\nexit 3\n",
    )?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755))?;
    }
    let path = format!(
        "{}:{}",
        stub_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(plugin)
        .args([
            "psql",
            &sample.name,
            "-n",
            ns,
            "--address",
            "db.test:6543",
            "--",
            "-c",
            "select 1",
        ])
        .env("KUBECONFIG", cp.kubeconfig_path())
        .env("PATH", &path)
        .env("PSQL_STUB_OUT", &recorded)
        .output()?;
    assert_eq!(
        out.status.code(),
        Some(3),
        "psql's exit code: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&password));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&password));
    let seen = std::fs::read_to_string(&recorded)?;
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(
        lines,
        [
            "ARGS=-c select 1".to_string(),
            format!("PGDATABASE={first_db}"),
            "PGHOST=db.test".to_string(),
            format!("PGPASSWORD={password}"),
            "PGPORT=6543".to_string(),
            format!("PGUSER={user}"),
        ],
        "what psql got"
    );

    // report: a directory with the summary, every Shard, Secret names only.
    let dir = cp.log_dir().join("operator").join("report");
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_string_lossy().to_string();
    run_plugin(
        cp,
        plugin,
        &["report", &sample.name, "-n", ns, "--output", &dir_arg],
    )?;
    let summary = std::fs::read_to_string(dir.join("summary.txt"))?;
    assert!(
        summary.contains(&format!("MultigresCluster {ns}/{}", sample.name)),
        "{summary}"
    );
    for shard in shards {
        assert!(
            dir.join("shards").join(format!("{shard}.yaml")).exists(),
            "{shard} in the bundle"
        );
    }
    assert!(
        dir.join("multigresclusters")
            .join(format!("{}.yaml", sample.name))
            .exists()
    );
    assert!(dir.join("events.yaml").exists());
    let tree: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("status.json"))?)?;
    assert_eq!(tree["name"], sample.name.as_str());
    let secret_names = std::fs::read_to_string(dir.join("secrets.txt"))?;
    assert!(secret_names.contains(&naming::credentials_secret(&sample.name)));
    // The controllers run as local processes here: no operator pods, and the summary says so.
    assert!(summary.contains("no operator pods found"), "{summary}");
    // Nor as a Secret's YAML would carry it (base64).
    let encoded = base64_of(password.as_bytes());
    for entry in walk(&dir)? {
        let content = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(
            !content.contains(&password) && !content.contains(&encoded),
            "{} holds the password",
            entry.display()
        );
    }
    Ok(())
}

fn walk(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

fn base64_of(bytes: &[u8]) -> String {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// With the chart's topology CA (on by default), the example's topology speaks TLS: the cluster
/// says so, its etcds are TopoServers with TLS, and every Multigres pod dials with the cluster's
/// topology client certificate. The converged tree shows the controllers reached it.
async fn topology_speaks_tls(client: &Client, namespace: &str, cluster: &str) -> Result<()> {
    let clusters = Api::<MultigresCluster>::namespaced(client.clone(), namespace);
    let status = clusters.get(cluster).await?.status.unwrap_or_default();
    let encrypted = status
        .conditions
        .iter()
        .find(|c| c.type_ == "TopologyEncrypted")
        .context("no TopologyEncrypted condition")?;
    assert_eq!(
        (encrypted.status.as_str(), encrypted.reason.as_str()),
        ("True", "MutualTLS"),
        "{encrypted:?}"
    );
    let topos = Api::<multigres_api::TopoServer>::namespaced(client.clone(), namespace);
    let global = topos.get(&naming::global_topo_server(cluster)).await?;
    let member = &global
        .spec
        .tls
        .as_ref()
        .context("no TLS on the global TopoServer")?;
    // Renewable: the names carry the certificates' expiry, a year ahead by default.
    let expires = naming::topo_server_tls_expiry(&global.name_any(), &member.secret_name)
        .context("the member Secret's name carries no expiry")?;
    let year_ahead = k8s_openapi::jiff::Timestamp::now().as_second() + 365 * 86_400;
    assert!((expires - year_ahead).abs() < 3600, "{expires}");
    let secret = naming::topology_tls_secret_until(cluster, expires);
    // The cluster's own certificate, from its CA derived from the chart's: renewable too.
    let cells = Api::<multigres_api::Cell>::namespaced(client.clone(), namespace);
    let of_cluster = ListParams::default().labels(&format!("{}={cluster}", labels::CLUSTER));
    let own = cells
        .list(&of_cluster)
        .await?
        .items
        .iter()
        .find_map(|c| Some(c.spec.tls.as_ref()?.secret_name.clone()))
        .context("no Cell mounts the cluster's TLS Secret")?;
    let own_expires =
        naming::tls_expiry(cluster, &own).context("the cluster's TLS Secret carries no expiry")?;
    assert!((own_expires - year_ahead).abs() < 3600, "{own}");
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let mut multigres = 0;
    for pod in pods.list(&of_cluster).await? {
        let spec = pod.spec.unwrap_or_default();
        let dials_topology = spec.containers.iter().any(|c| {
            c.args
                .iter()
                .flatten()
                .any(|a| a.starts_with("--topo-global-server-addresses"))
        });
        if !dials_topology {
            continue;
        }
        multigres += 1;
        let args: Vec<&String> = spec
            .containers
            .iter()
            .flat_map(|c| c.args.iter().flatten())
            .collect();
        assert!(
            args.iter()
                .any(|a| a.as_str() == "--topo-etcd-tls-cert=/etc/multigres/topology-tls/tls.crt"),
            "{args:?}"
        );
        let mounts = |name: &str| {
            spec.volumes
                .iter()
                .flatten()
                .any(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(name))
        };
        assert!(
            mounts(&secret),
            "pod {:?} does not mount {secret}",
            pod.metadata.name
        );
        assert!(
            mounts(&own),
            "pod {:?} does not mount {own}",
            pod.metadata.name
        );
    }
    assert!(multigres > 0, "no Multigres pod found");
    Ok(())
}
