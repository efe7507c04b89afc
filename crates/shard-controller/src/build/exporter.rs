//! The postgres_exporter sidecar of a pool pod: PostgreSQL's own statistics (`pg_up`,
//! `pg_stat_database_*`, replication) for Prometheus, logged in as the superuser pgctld creates, over
//! the pod's own address (docs/monitoring.md).

use k8s_openapi::api::core::v1::{Container, SecurityContext};
use multigres_api::{PostgresExporter, Shard, multigres};
use multigres_runtime::builders::{downward_env, value_env, volume_mount};

use super::{CREDENTIALS_DIR, PG_PORT, password_file, ports, pull_policy, restricted};

pub const CONTAINER: &str = "postgres-exporter";

pub fn container(shard: &Shard, exporter: &PostgresExporter) -> Container {
    let credentials = &shard.spec.credentials;
    Container {
        name: CONTAINER.into(),
        image: Some(exporter.image.clone()),
        image_pull_policy: pull_policy(shard),
        command: Some(vec!["postgres_exporter".into()]),
        args: Some(vec![format!(
            "--web.listen-address=:{}",
            multigres::POSTGRES_EXPORTER_PORT
        )]),
        env: Some(vec![
            downward_env("POD_IP", "status.podIP"),
            // Postgres listens on every address of the pod; its pg_hba asks for a password.
            value_env(
                "DATA_SOURCE_URI",
                &format!("$(POD_IP):{PG_PORT}/postgres?sslmode=disable"),
            ),
            multigres_runtime::builders::secret_env(
                "DATA_SOURCE_USER",
                &credentials.secret_name,
                &credentials.username_key,
            ),
            value_env("DATA_SOURCE_PASS_FILE", &password_file()),
        ]),
        ports: ports(&[(
            multigres::POSTGRES_EXPORTER_PORT_NAME,
            multigres::POSTGRES_EXPORTER_PORT,
        )]),
        resources: exporter.resources.clone(),
        volume_mounts: Some(vec![volume_mount("credentials", CREDENTIALS_DIR, true)]),
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            ..restricted()
        }),
        ..Default::default()
    }
}
