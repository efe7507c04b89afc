//! Which `postgresql.conf` parameters a pool may set (docs/postgres-settings.md): any PostgreSQL
//! parameter but the ones the operator or Multigres must own, because pgctld, multipooler and
//! multiorch set them (ports and addresses, paths, archiving and recovery through pgBackRest,
//! replication and synchronous commit, TLS, includes) or because a different value on one pod
//! would break replication.

use std::collections::BTreeMap;

/// Owned by the operator or Multigres: refused with the reason.
pub const OWNED: [(&str, &str); 26] = [
    ("port", "the pods' ports are fixed (5432)"),
    (
        "listen_addresses",
        "pgctld listens on every address of the pod",
    ),
    (
        "unix_socket_directories",
        "pgctld and multipooler share the socket folder",
    ),
    ("data_directory", "pgctld derives it from the pooler folder"),
    (
        "hba_file",
        "the operator's pg_hba template admits replication",
    ),
    ("ident_file", "pgctld owns the data folder's files"),
    ("config_file", "pgctld generates postgresql.conf"),
    ("external_pid_file", "pgctld owns the postmaster"),
    ("include", "the operator's include is the only one"),
    ("include_dir", "the operator's include is the only one"),
    (
        "include_if_exists",
        "the operator's include is the only one",
    ),
    (
        "archive_mode",
        "backups run through pgBackRest, configured by pgctld",
    ),
    (
        "archive_command",
        "backups run through pgBackRest, configured by pgctld",
    ),
    (
        "restore_command",
        "replicas restore through pgBackRest, configured by pgctld",
    ),
    (
        "primary_conninfo",
        "multipooler points replicas at the primary",
    ),
    ("primary_slot_name", "multipooler manages replication"),
    (
        "synchronous_standby_names",
        "multiorch sets it from the durability policy",
    ),
    (
        "synchronous_commit",
        "multiorch sets it from the durability policy",
    ),
    ("hot_standby", "replicas must serve reads"),
    ("wal_level", "replication needs the level pgctld sets"),
    ("ssl", "TLS is the gateways' (docs/security.md)"),
    ("ssl_cert_file", "TLS is the gateways' (docs/security.md)"),
    ("ssl_key_file", "TLS is the gateways' (docs/security.md)"),
    ("ssl_ca_file", "TLS is the gateways' (docs/security.md)"),
    (
        "shared_preload_libraries",
        "Multigres loads its own libraries",
    ),
    ("cluster_name", "pgctld names the instance"),
];

/// Longest value accepted: parameters are settings, not files.
const MAX_VALUE: usize = 1024;

/// `Ok` when every name is a PostgreSQL parameter name the pool may set and every value fits;
/// otherwise the first problem, naming the parameter.
pub fn check(parameters: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in parameters {
        let valid_name = name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if !valid_name {
            return Err(format!(
                "{name:?} is not a PostgreSQL parameter name (lower-case letters, digits, _ and .)"
            ));
        }
        if let Some((_, why)) = OWNED.iter().find(|(owned, _)| owned == name) {
            return Err(format!(
                "{name} is owned by the operator or Multigres and cannot be set: {why}"
            ));
        }
        if value.len() > MAX_VALUE || value.contains(['\n', '\r', '\0']) {
            return Err(format!(
                "the value of {name} must be one line of at most {MAX_VALUE} characters"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tuning_parameters_pass() {
        let ok = params(&[
            ("work_mem", "64MB"),
            ("max_connections", "300"),
            ("log_min_duration_statement", "250ms"),
            ("pg_stat_statements.track", "all"),
            ("search_path", "\"$user\", public"),
        ]);
        assert_eq!(check(&ok), Ok(()));
    }

    #[test]
    fn owned_parameters_are_refused_with_the_reason() {
        let err = check(&params(&[("work_mem", "4MB"), ("port", "6432")])).unwrap_err();
        assert!(
            err.contains("port is owned") && err.contains("5432"),
            "{err}"
        );
        let err = check(&params(&[("synchronous_standby_names", "*")])).unwrap_err();
        assert!(err.contains("durability policy"), "{err}");
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        for bad in ["Work_mem", "1x", "work-mem", ""] {
            assert!(check(&params(&[(bad, "1")])).is_err(), "{bad}");
        }
        assert!(check(&params(&[("work_mem", "1\nport = 1")])).is_err());
        assert!(check(&params(&[("work_mem", &"x".repeat(1025))])).is_err());
    }
}
