//! Each check on a small hand-built pool pod: a good one passes, each fault is named.

use k8s_openapi::api::core::v1::{
    EnvVarSource, KeyToPath, SecretKeySelector, SecretVolumeSource, VolumeMount,
};

use super::*;

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

const POOLER_ARGS: &[&str] = &[
    "--cell=zone1",
    "--database=postgres",
    "--table-group=default",
    "--shard=0-inf",
    "--service-id=p-1234abcd",
    "--hostname=$(POD_NAME).pool",
    "--pooler-dir=/data/pooler",
    "--pgctld-addr=localhost:15200",
    "--pg-port=5432",
    "--http-port=15101",
    "--grpc-port=15201",
    "--service-map=grpc-pooler",
    "--topo-global-server-addresses=etcd:2379",
    "--topo-global-root=/multigres/global",
];

fn good_spec() -> PodSpec {
    let pooler = Container {
        name: "multipooler".into(),
        command: Some(strings(&["multipooler"])),
        args: Some(strings(POOLER_ARGS)),
        env: Some(vec![
            env("PGDATA", "/data/pooler/pg_data"),
            env("POSTGRES_PASSWORD_FILE", "/creds/password"),
            EnvVar {
                name: "POD_NAME".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                        field_path: "metadata.name".into(),
                        api_version: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]),
        volume_mounts: Some(vec![mount("data", "/data"), mount("creds", "/creds")]),
        ..Default::default()
    };
    let pgctld = Container {
        name: "postgres".into(),
        command: Some(strings(&["/bin/pgctld", "server"])),
        args: Some(strings(&[
            "--pooler-dir",
            "/data/pooler",
            "--grpc-port",
            "15200",
            "--http-port",
            "15100",
            "-p",
            "5432",
        ])),
        env: Some(vec![
            env("PGDATA", "/data/pooler/pg_data"),
            secret_env("POSTGRES_PASSWORD", "creds", "password"),
        ]),
        volume_mounts: Some(vec![mount("data", "/data")]),
        ..Default::default()
    };
    PodSpec {
        subdomain: Some("pool".into()),
        containers: vec![pgctld, pooler],
        volumes: Some(vec![Volume {
            name: "creds".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("creds".into()),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn failures(spec: &PodSpec) -> Vec<String> {
    let findings = pod(&GeneratedPod {
        object: "Pod ns/pod-0".into(),
        pod_name: "pod-0".into(),
        namespace: "ns".into(),
        replicas: 1,
        spec,
        credentials: Some(Credentials {
            secret: "creds".into(),
            password_key: "password".into(),
        }),
    });
    findings.failures
}

/// `spec` with the multipooler container changed by `edit`.
fn pooler_edited(edit: impl FnOnce(&mut Container)) -> Vec<String> {
    let mut spec = good_spec();
    edit(&mut spec.containers[1]);
    failures(&spec)
}

fn assert_one(found: Vec<String>, expected: &str) {
    assert!(
        found.len() == 1 && found[0].contains(expected),
        "expected one failure containing {expected:?}, got {found:#?}"
    );
}

#[test]
fn a_good_pool_pod_passes() {
    let spec = good_spec();
    let findings = pod(&GeneratedPod {
        object: "Pod ns/pod-0".into(),
        pod_name: "pod-0".into(),
        namespace: "ns".into(),
        replicas: 1,
        spec: &spec,
        credentials: Some(Credentials {
            secret: "creds".into(),
            password_key: "password".into(),
        }),
    });
    assert_eq!(findings.failures, Vec::<String>::new());
    let checked: Vec<_> = findings.checked.iter().map(|(_, h)| h.as_str()).collect();
    assert_eq!(checked, ["pgctld-server", "multipooler"]);
}

#[test]
fn unknown_and_missing_flags_are_named() {
    assert_one(
        pooler_edited(|c| c.args.as_mut().unwrap().push("--no-such-flag=1".into())),
        "--no-such-flag is not a flag of multipooler",
    );
    assert_one(
        pooler_edited(|c| {
            c.args
                .as_mut()
                .unwrap()
                .retain(|a| !a.starts_with("--grpc-port"))
        }),
        "--grpc-port is needed",
    );
    assert_one(
        pooler_edited(|c| c.args.as_mut().unwrap().push("stray".into())),
        "takes no arguments",
    );
}

#[test]
fn multiadmin_takes_no_service_id() {
    let admin = Container {
        name: "multiadmin".into(),
        command: Some(strings(&["multiadmin"])),
        args: Some(strings(&[
            "--topo-global-server-addresses=etcd:2379",
            "--topo-global-root=/g",
            "--http-port=15000",
            "--grpc-port=15990",
            "--service-map=grpc-multiadmin",
            "--service-id=$(POD_NAME)",
        ])),
        ..Default::default()
    };
    let spec = PodSpec {
        containers: vec![admin],
        ..Default::default()
    };
    let found = pod(&GeneratedPod {
        object: "Deployment ns/admin".into(),
        pod_name: "admin-x".into(),
        namespace: "ns".into(),
        replicas: 1,
        spec: &spec,
        credentials: None,
    })
    .failures;
    assert_one(found, "--service-id is not a flag of multiadmin");
}

#[test]
fn the_password_must_come_from_the_secret() {
    assert_one(
        pooler_edited(|c| {
            c.env
                .as_mut()
                .unwrap()
                .retain(|e| e.name != "POSTGRES_PASSWORD_FILE")
        }),
        "no admin password",
    );
    assert_one(
        pooler_edited(|c| c.env.as_mut().unwrap()[1].value = Some("/data/password".into())),
        "is not key \"password\" of Secret \"creds\"",
    );
    assert_one(
        pooler_edited(|c| {
            c.env
                .as_mut()
                .unwrap()
                .push(env("POSTGRES_PASSWORD", "hunter2"))
        }),
        "POSTGRES_PASSWORD does not come from key",
    );
    // A Secret volume that maps the key to another file name.
    let mut spec = good_spec();
    spec.volumes.as_mut().unwrap()[0]
        .secret
        .as_mut()
        .unwrap()
        .items = Some(vec![KeyToPath {
        key: "password".into(),
        path: "pw".into(),
        mode: None,
    }]);
    assert_one(failures(&spec), "POSTGRES_PASSWORD_FILE");
    spec.containers[1].env.as_mut().unwrap()[1].value = Some("/creds/pw".into());
    assert_eq!(failures(&spec), Vec::<String>::new());
}

#[test]
fn pgdata_and_paths_need_a_mount() {
    let mut spec = good_spec();
    spec.containers[0].env.as_mut().unwrap().remove(0);
    assert_one(failures(&spec), "PGDATA is not set");
    let found = pooler_edited(|c| {
        c.volume_mounts.as_mut().unwrap().remove(0);
    });
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].contains("PGDATA=\"/data/pooler/pg_data\" lies under no volume mount"));
    assert!(found[1].contains("--pooler-dir=\"/data/pooler\" lies under no volume mount"));
}

#[test]
fn application_name_and_shard_follow_multigres() {
    let long = format!("--service-id={}", "x".repeat(60));
    assert_one(
        pooler_edited(|c| c.args.as_mut().unwrap().push(long)),
        "more than 63",
    );
    assert_one(
        pooler_edited(|c| c.args.as_mut().unwrap().push("--shard=0".into())),
        "not a Multigres key range",
    );
    assert!(is_key_range("0-inf") && is_key_range("80-c0") && !is_key_range("-80"));
}

#[test]
fn multipooler_logs_in_as_the_superuser_pgctld_creates() {
    let mut spec = good_spec();
    let user = secret_env("POSTGRES_USER", "creds", "username");
    spec.containers[0].env.as_mut().unwrap().push(user.clone());
    assert_one(
        failures(&spec),
        "container postgres has superuser key \"username\" of Secret \"creds\", container multipooler \"postgres\"",
    );
    spec.containers[1].env.as_mut().unwrap().push(user);
    assert_eq!(failures(&spec), Vec::<String>::new());
}

#[test]
fn multipooler_and_pgctld_agree_on_ports_and_folders() {
    assert_one(
        pooler_edited(|c| {
            c.args
                .as_mut()
                .unwrap()
                .push("--pgctld-addr=localhost:15300".into())
        }),
        "container postgres has pgctld gRPC port 15200, container multipooler 15300",
    );
    assert_one(
        pooler_edited(|c| {
            c.args
                .as_mut()
                .unwrap()
                .push("--pgbackrest-port=8432".into())
        }),
        "container postgres has --pgbackrest-port 0, container multipooler 8432",
    );
}

#[test]
fn pgctld_creates_the_database_multipooler_serves() {
    let other = |c: &mut Container| {
        c.args.as_mut().unwrap()[1] = "--database=orders".into();
    };
    assert_one(
        pooler_edited(other),
        "container postgres has database \"postgres\", container multipooler \"orders\"",
    );
    let mut spec = good_spec();
    other(&mut spec.containers[1]);
    spec.containers[0]
        .env
        .as_mut()
        .unwrap()
        .push(env("POSTGRES_DB", "orders"));
    assert_eq!(failures(&spec), Vec::<String>::new());
}

#[test]
fn the_hostname_must_resolve() {
    let mut spec = good_spec();
    spec.subdomain = None;
    assert_one(
        failures(&spec),
        "--hostname \"pod-0.pool\" does not resolve",
    );
}

#[test]
fn probes_must_reach_the_http_port() {
    use k8s_openapi::api::core::v1::HTTPGetAction;
    assert_one(
        pooler_edited(|c| {
            c.readiness_probe = Some(Probe {
                http_get: Some(HTTPGetAction {
                    path: Some("/ready".into()),
                    port: IntOrString::Int(15100),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }),
        "readiness probe targets port",
    );
}
