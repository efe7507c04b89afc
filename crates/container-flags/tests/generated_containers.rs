//! Every container the controllers generate for the sample clusters in `deploy/samples/` passes the
//! pinned Multigres binaries only flags they define, and everything they need to start: built with
//! the controllers' own pure `build` functions, as they would apply it, and checked against the
//! recorded `--help` (see `data/multigres-6bd80b9/README.md`).

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodSpec;
use kube::ResourceExt;
use multigres_api::resolve::{Templates, resolve_cluster};
use multigres_api::{
    DeploymentTemplate, LogFormat, LogLevel, Logging, MultigresCluster, TopoServer, multigres,
};
use multigres_container_flags::check::{self, Credentials, Findings, GeneratedPod};
use multigres_container_flags::invocation;
use multigres_topology::pb::backup_location::Location;
use serde::Deserialize;

fn sample_documents() -> Vec<serde_yaml::Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/samples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/samples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).expect("readable sample");
            serde_yaml::Deserializer::from_str(&text)
                .map(|doc| serde_yaml::Value::deserialize(doc).expect("YAML"))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn samples() -> (Vec<MultigresCluster>, Templates) {
    let mut clusters = Vec::new();
    let mut templates = Templates::new();
    for doc in sample_documents() {
        match doc.get("kind").and_then(|k| k.as_str()) {
            Some("MultigresCluster") => {
                let mut cluster: MultigresCluster = serde_yaml::from_value(doc).expect("cluster");
                cluster.metadata.uid = Some("sample-uid".into());
                clusters.push(cluster);
            }
            Some("DeploymentTemplate") => {
                let t: DeploymentTemplate = serde_yaml::from_value(doc).expect("template");
                templates.insert(t.name_any(), t.spec);
            }
            _ => {}
        }
    }
    (clusters, templates)
}

/// Every pod the controllers would create for `cluster`, owned here so that checks can borrow them.
struct OwnedPod {
    object: String,
    pod_name: String,
    namespace: String,
    replicas: i32,
    spec: PodSpec,
    credentials: Option<Credentials>,
}

fn deployment_pod(kind: &str, d: &Deployment) -> OwnedPod {
    let spec = d.spec.as_ref().expect("spec");
    OwnedPod {
        object: format!("{kind} Deployment {}", d.name_any()),
        // A ReplicaSet pod's name: the Deployment's, a 10-character template hash and 5 characters.
        pod_name: format!("{}-6d4cf56db6-x7k2p", d.name_any()),
        namespace: d.namespace().unwrap_or_default(),
        replicas: spec.replicas.unwrap_or(1),
        spec: spec.template.spec.clone().expect("pod spec"),
        credentials: None,
    }
}

fn topo_pods(ts: &TopoServer) -> OwnedPod {
    let sts = multigres_topo_controller::build::statefulset(ts);
    let spec = sts.spec.expect("spec");
    OwnedPod {
        object: format!("TopoServer StatefulSet {}", ts.name_any()),
        pod_name: format!("{}-0", ts.name_any()),
        namespace: ts.namespace().unwrap_or_default(),
        replicas: spec.replicas.unwrap_or(1),
        spec: spec.template.spec.expect("pod spec"),
        credentials: None,
    }
}

fn generated_pods(cluster: &MultigresCluster, templates: &Templates) -> Vec<OwnedPod> {
    use multigres_cell_controller::build as cell;
    use multigres_cluster_controller::build as cluster_build;
    use multigres_shard_controller::build as shard;

    let mut resolved = resolve_cluster(cluster, templates).expect("the sample resolves");
    // As the chart runs the operator: with its topology CA, so a new cluster's topology speaks TLS.
    // Named for their expiry, as the controller names them.
    let certificates = multigres_api::resolve::certificate_renewal(None, 1_790_000_000, 86_400);
    resolved.resolve_topology_tls(&cluster.name_any(), true, None, certificates);
    let desired = cluster_build::desired(cluster, &resolved, "multigres-system");
    let mut pods = vec![deployment_pod(
        "MultigresCluster",
        &desired.multiadmin_deployment,
    )];
    pods.extend(desired.topo_server.iter().map(topo_pods));
    for c in &desired.cells {
        let children = cell::children(c);
        pods.push(deployment_pod("Cell", &children.gateway));
        pods.push(deployment_pod("Cell", &children.multiorch));
        pods.extend(children.local_topo_server.iter().map(topo_pods));
    }
    for tg in &desired.table_groups {
        for s in multigres_tablegroup_controller::build::shards(tg) {
            let credentials = Credentials {
                secret: s.spec.credentials.secret_name.clone(),
                password_key: s.spec.credentials.password_key.clone(),
            };
            // The shard controller holds these pods by default (--hold-unserved-shards); they are
            // still checked, since they run as built once a Multigres serves them.
            let unserved = multigres::unserved_shard(&s.spec.table_group, s.spec.multigres_shard());
            let held = if unserved.is_empty() {
                String::new()
            } else {
                " (held by default: unserved)".to_string()
            };
            for pool in shard::pools(&s) {
                for index in 0..u32::try_from(pool.spec.replicas).unwrap_or(0) {
                    let pod = shard::pod(&s, &pool, index);
                    pods.push(OwnedPod {
                        object: format!("Shard {}{held} Pod {}", s.name_any(), pod.name_any()),
                        pod_name: pod.name_any(),
                        namespace: pod.namespace().unwrap_or_default(),
                        replicas: 1,
                        spec: pod.spec.expect("pod spec"),
                        credentials: Some(credentials.clone()),
                    });
                }
            }
        }
    }
    pods
}

fn check_all() -> (Findings, usize) {
    let (clusters, templates) = samples();
    check_clusters(&clusters, &templates)
}

fn check_clusters(clusters: &[MultigresCluster], templates: &Templates) -> (Findings, usize) {
    assert!(
        !clusters.is_empty(),
        "deploy/samples holds no MultigresCluster"
    );
    let mut all = Findings::default();
    let mut pods = 0;
    for cluster in clusters {
        for p in generated_pods(cluster, templates) {
            pods += 1;
            let found = check::pod(&GeneratedPod {
                object: format!("{}/{}", p.namespace, p.object),
                pod_name: p.pod_name.clone(),
                namespace: p.namespace.clone(),
                replicas: p.replicas,
                spec: &p.spec,
                credentials: p.credentials.clone(),
            });
            all.checked.extend(found.checked);
            all.failures.extend(found.failures);
        }
    }
    (all, pods)
}

#[test]
fn every_generated_multigres_container_matches_the_pinned_binaries() {
    let (findings, pods) = check_all();
    for binary in [
        "multiadmin",
        "multigateway",
        "multiorch",
        "multipooler",
        "pgctld-server",
    ] {
        assert!(
            findings.checked.iter().any(|(_, help)| help == binary),
            "no generated container runs {binary}: the walk missed a builder"
        );
    }
    // A shard of a table group with several shards has no Multigres key range yet (the pinned
    // Multigres serves one shard, `0-inf`, and defines no split): its pods are held by the shard
    // controller (--hold-unserved-shards, on by default) and never run, so only that finding is
    // expected of them; everything else about them is still checked.
    let mut failures: Vec<String> = findings
        .failures
        .iter()
        .filter(|f| {
            !(f.contains("(held by default: unserved)")
                && f.contains("is not a Multigres key range"))
        })
        .cloned()
        .collect();
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} faults in the {} Multigres containers of {pods} generated pods:\n{}",
        failures.len(),
        findings.checked.len(),
        failures.join("\n")
    );
}

/// Log settings become `--log-level`/`--log-format` flags the pinned binaries define: the samples
/// again, with a cluster-wide `logging`, a gateway's and a pool's multipooler's own over it.
#[test]
fn log_settings_become_flags_the_pinned_binaries_define() {
    let (mut clusters, templates) = samples();
    for cluster in &mut clusters {
        cluster.spec.logging = Some(Logging {
            log_level: Some(LogLevel::Warn),
            log_format: Some(LogFormat::Text),
        });
        for cell in &mut cluster.spec.cells {
            let block = cell.spec.multigateway.get_or_insert_with(Default::default);
            let own = match block.deployment_template {
                Some(_) => block.overrides.get_or_insert_with(Default::default),
                None => &mut block.inline,
            };
            own.logging.log_level = Some(LogLevel::Debug);
        }
        for tg in cluster
            .spec
            .databases
            .iter_mut()
            .flat_map(|d| &mut d.spec.tablegroups)
        {
            for pool in &mut tg.shard_template.pools {
                let own = match pool.deployment_template {
                    Some(_) => pool.overrides.get_or_insert_with(Default::default),
                    None => &mut pool.inline,
                };
                let pooler = own.multipooler.get_or_insert_with(Default::default);
                pooler.logging.log_format = Some(LogFormat::Json);
            }
        }
    }
    let (findings, pods) = check_clusters(&clusters, &templates);
    let failures = unexpected(&findings);
    assert!(failures.is_empty(), "{pods} pods: {failures:#?}");
    let mut seen = std::collections::BTreeSet::new();
    for pod in clusters.iter().flat_map(|c| generated_pods(c, &templates)) {
        let containers = pod.spec.init_containers.iter().flatten();
        for c in containers.chain(&pod.spec.containers) {
            let args = c.args.clone().unwrap_or_default();
            let log: Vec<&str> = args
                .iter()
                .filter(|a| a.starts_with("--log-"))
                .map(String::as_str)
                .collect();
            if !log.is_empty() {
                seen.insert((c.name.clone(), log.join(" ")));
            }
        }
    }
    let expected = [
        ("multiadmin", "--log-level=warn --log-format=text"),
        ("multigateway", "--log-level=debug --log-format=text"),
        ("multiorch", "--log-level=warn --log-format=text"),
        ("multipooler", "--log-level=warn --log-format=json"),
        ("postgres", "--log-level=warn --log-format=text"),
    ];
    for (container, flags) in expected {
        assert!(
            seen.contains(&(container.to_string(), flags.to_string())),
            "{container}: {flags} not among {seen:#?}"
        );
    }
}

/// A backup configuration (S3 with a credentials Secret, an encrypted repository) becomes flags
/// the pinned multipooler defines, its environment and mounts, and S3 Database records; the
/// claim-backed repository volume goes away with the filesystem location.
#[test]
fn backup_settings_become_flags_and_records_the_pinned_binaries_accept() {
    let (mut clusters, templates) = samples();
    for cluster in &mut clusters {
        cluster.spec.backup = Some(serde_json::from_value(serde_json::json!({
            "s3": {"bucket": "backups", "region": "eu-west-1", "endpoint": "https://s3.example:9000",
                   "credentialsSecret": {"name": "s3-keys"}},
            "encryption": {"keySecret": {"name": "backup-key", "key": "cipher.json"}}
        })).unwrap());
    }
    let (findings, pods) = check_clusters(&clusters, &templates);
    let failures = unexpected(&findings);
    assert!(failures.is_empty(), "{pods} pods: {failures:#?}");
    let mut poolers = 0;
    for pod in clusters.iter().flat_map(|c| generated_pods(c, &templates)) {
        let Some(pooler) = pod.spec.containers.iter().find(|c| c.name == "multipooler") else {
            continue;
        };
        poolers += 1;
        let args = pooler.args.clone().unwrap_or_default();
        assert!(
            args.contains(
                &"--pgbackrest-cipher-key-file=/etc/multigres/backup-encryption/cipher-key.json"
                    .to_string()
            ),
            "{args:?}"
        );
        let env: Vec<String> = pooler
            .env
            .iter()
            .flatten()
            .map(|e| e.name.clone())
            .collect();
        assert!(
            env.contains(&"AWS_ACCESS_KEY_ID".into())
                && env.contains(&"AWS_SECRET_ACCESS_KEY".into()),
            "{env:?}"
        );
        let volumes: Vec<String> = pod
            .spec
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.clone())
            .collect();
        assert!(
            !volumes.contains(&"backups".into()),
            "no repository claim with S3: {volumes:?}"
        );
        assert!(volumes.contains(&"backup-encryption".into()), "{volumes:?}");
    }
    assert!(poolers > 0);
    for cluster in &clusters {
        let resolved = resolve_cluster(cluster, &templates).expect("the sample resolves");
        let desired =
            multigres_cluster_controller::build::desired(cluster, &resolved, "multigres-system");
        for db in &desired.databases {
            let backup = db.backup_location.as_ref().unwrap();
            assert!(backup.require_initial_repo_encryption);
            let Some(Location::S3(s3)) = &backup.location else {
                panic!("{}: not S3: {backup:?}", db.name);
            };
            let ns = cluster.metadata.namespace.clone().unwrap_or_default();
            assert_eq!(
                s3.key_prefix,
                format!(
                    "{ns}/{}/{}",
                    cluster.metadata.name.as_deref().unwrap(),
                    db.name
                )
            );
            assert!(s3.use_env_credentials);
            multigres_topology::validate_database(db).unwrap();
        }
    }
}

/// The findings besides the one expected of held pods (see the first test).
fn unexpected(findings: &Findings) -> Vec<&String> {
    findings
        .failures
        .iter()
        .filter(|f| {
            !(f.contains("(held by default: unserved)")
                && f.contains("is not a Multigres key range"))
        })
        .collect()
}

/// The `--database` of the multipooler container of `pod`, and its volume mounts' paths.
fn multipooler_of(pod: &OwnedPod) -> Option<(String, Vec<String>)> {
    let containers = pod.spec.init_containers.iter().flatten();
    containers.chain(&pod.spec.containers).find_map(|c| {
        let inv = invocation::of_container(c, &Default::default())?;
        let known = multigres_container_flags::recorded_flags(&inv.help_name())?;
        let (flags, _) = invocation::flags(&inv.argv, known);
        let database = flags.into_iter().rfind(|f| f.name == "database")?.value?;
        let mounts = c.volume_mounts.iter().flatten();
        Some((database, mounts.map(|m| m.mount_path.clone()).collect()))
    })
}

/// multipooler stops on a Database record without a usable backup location (docs/multigres-version.md); a
/// filesystem location must be on a volume of every multipooler serving the database.
#[test]
fn database_records_carry_a_backup_location_the_poolers_mount() {
    let (clusters, templates) = samples();
    let mut failures = Vec::new();
    for cluster in &clusters {
        let resolved = resolve_cluster(cluster, &templates).expect("the sample resolves");
        let desired =
            multigres_cluster_controller::build::desired(cluster, &resolved, "multigres-system");
        let poolers: Vec<_> = generated_pods(cluster, &templates)
            .iter()
            .filter_map(multipooler_of)
            .collect();
        for db in &desired.databases {
            let location = db
                .backup_location
                .as_ref()
                .and_then(|b| b.location.as_ref());
            match location {
                None => failures.push(format!("Database {}: no backup_location", db.name)),
                Some(Location::S3(s3)) if s3.bucket.is_empty() || s3.region.is_empty() => failures
                    .push(format!(
                        "Database {}: S3 location without bucket or region",
                        db.name
                    )),
                Some(Location::S3(_)) => {}
                Some(Location::Filesystem(fs)) => {
                    let serving = poolers.iter().filter(|(d, _)| *d == db.name);
                    for (_, mounts) in serving {
                        let under = |m: &String| {
                            let dir = m.trim_end_matches('/');
                            fs.path == dir || fs.path.starts_with(&format!("{dir}/"))
                        };
                        if !mounts.iter().any(under) {
                            failures.push(format!(
                                "Database {}: backup path {:?} is on no volume of a multipooler ({mounts:?})",
                                db.name, fs.path
                            ));
                        }
                    }
                }
            }
        }
    }
    failures.dedup();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Moving the pin means recording the new binaries' help (docs/multigres-version.md).
#[test]
fn the_recorded_help_is_of_the_pinned_multigres() {
    assert_eq!(
        multigres_container_flags::RECORDED_COMMIT,
        multigres::MULTIGRES_COMMIT,
        "the pin moved: record the new binaries' --help ({})",
        multigres_container_flags::RECORDED_DIR
    );
}

/// With the operator's topology CA (the chart's default), every container that dials the topology
/// carries the etcd client certificate flags the pinned binaries define, and mounts their files.
#[test]
fn topology_tls_reaches_every_container_that_dials_the_topology() {
    let (clusters, templates) = samples();
    let mut dialing = 0;
    for cluster in &clusters {
        for p in generated_pods(cluster, &templates) {
            for c in &p.spec.containers {
                let args = c.args.clone().unwrap_or_default();
                if !args
                    .iter()
                    .any(|a| a.starts_with("--topo-global-server-addresses="))
                {
                    continue;
                }
                dialing += 1;
                for (flag, file) in multigres::topology_tls_flags() {
                    assert!(
                        args.contains(&format!("{flag}={file}")),
                        "{} {}: {flag} missing",
                        p.object,
                        c.name
                    );
                }
                let mounted = c.volume_mounts.iter().flatten().any(|m| {
                    m.mount_path == multigres::TOPOLOGY_TLS_DIR && m.read_only == Some(true)
                });
                assert!(mounted, "{} {}: no topology TLS mount", p.object, c.name);
            }
        }
    }
    assert!(
        dialing >= 4,
        "multiadmin, gateway, multiorch and pooler containers: {dialing}"
    );
}
