use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
use multigres_dataplane_sim::testing::sample_cluster;

use super::*;

/// A multigateway pod of cell `cell`.
fn gateway(name: &str, cell: &str, ready: bool) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.labels = Some(
        [
            (labels::CELL.to_string(), cell.to_string()),
            (
                labels::COMPONENT.to_string(),
                component::MULTIGATEWAY.to_string(),
            ),
        ]
        .into(),
    );
    pod.status = Some(PodStatus {
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    pod
}

const NOTHING: Want = Want {
    cell: None,
    database: None,
    address: None,
};

#[test]
fn the_first_ready_gateway_of_the_first_cell_with_one_is_used() {
    let cluster = sample_cluster("ns", "c");
    let pods = [
        gateway("gw-a-1", "a", false),
        gateway("gw-b-2", "b", true),
        gateway("gw-b-1", "b", true),
    ];
    let session = plan(&cluster, &pods, "postgres", &NOTHING).unwrap();
    assert_eq!(
        session,
        Session {
            route: Route::PortForward {
                pod: "gw-b-1".into(),
                port: 5432
            },
            cell: Some("b".into()),
            user: "postgres".into(),
            database: "orders".into(),
            password_from: "ns/c-postgres-credentials key password".into(),
        }
    );
    let want = Want {
        cell: Some("a"),
        ..NOTHING
    };
    let error = plan(&cluster, &pods, "postgres", &want)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no Ready multigateway pod in cell a"),
        "{error}"
    );
    let want = Want {
        cell: Some("z"),
        ..NOTHING
    };
    let error = plan(&cluster, &pods, "postgres", &want)
        .unwrap_err()
        .to_string();
    assert!(error.contains("has no cell z (cells: a, b)"), "{error}");
}

#[test]
fn an_address_skips_the_port_forward_and_the_database_can_be_chosen() {
    let cluster = sample_cluster("ns", "c");
    let want = Want {
        address: Some("db.example.com:6432"),
        database: Some("other"),
        ..NOTHING
    };
    let session = plan(&cluster, &[], "admin", &want).unwrap();
    assert_eq!(
        session.route,
        Route::Address {
            host: "db.example.com".into(),
            port: 6432
        }
    );
    assert_eq!(session.database, "other");
    assert_eq!(session.user, "admin");
    assert_eq!(
        endpoint(&session, None),
        ("db.example.com".into(), "6432".into())
    );
    for bad in ["nohost", ":5432", "h:port"] {
        let want = Want {
            address: Some(bad),
            ..NOTHING
        };
        assert!(plan(&cluster, &[], "u", &want).is_err(), "{bad}");
    }
}

#[test]
fn credentials_named_in_the_spec_are_used() {
    let mut cluster = sample_cluster("ns", "c");
    cluster.spec.credentials = Some(CredentialsRef {
        secret_name: "mine".into(),
        username_key: "user".into(),
        password_key: "pw".into(),
    });
    let session = plan(&cluster, &[gateway("g", "a", true)], "u", &NOTHING).unwrap();
    assert_eq!(session.password_from, "ns/mine key pw");
}

#[test]
fn the_environment_carries_the_connection_and_what_is_printed_no_password() {
    let cluster = sample_cluster("ns", "c");
    let session = plan(&cluster, &[gateway("g", "a", true)], "postgres", &NOTHING).unwrap();
    let env = environment(&session, "127.0.0.1", "40000", "s3cret");
    assert_eq!(env["PGHOST"], "127.0.0.1");
    assert_eq!(env["PGPORT"], "40000");
    assert_eq!(env["PGUSER"], "postgres");
    assert_eq!(env["PGDATABASE"], "orders");
    assert_eq!(env["PGPASSWORD"], "s3cret");
    let shown = printed(&session, &["-c".into(), "select 1".into()]);
    assert_eq!(shown.command, ["psql", "-c", "select 1"]);
    assert_eq!(
        shown.env["PGPASSWORD"],
        "<from Secret ns/c-postgres-credentials key password>"
    );
    let text = render(&shown);
    assert!(
        text.starts_with("# port-forward to pod g:5432 (cell a)"),
        "{text}"
    );
    assert!(text.contains("PGUSER=postgres\n"), "{text}");
    assert!(!text.contains("s3cret"));
}
