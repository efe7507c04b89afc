//! The flags of the pinned Multigres binaries, recorded from their own `--help` (in
//! `data/multigres-6bd80b9/`, see its README), and a check that a generated pod passes only flags its
//! binaries define, and everything they need to start (DESIGN §4, docs/multigres-version.md).
//! The test `tests/generated_containers.rs` runs the check on the children built for the samples.

pub mod check;
pub mod help;
pub mod invocation;

/// The pinned Multigres commit the recorded help comes from.
pub const RECORDED_COMMIT: &str = "6bd80b9b251e69be19330837318b037d959e2df7";

/// Where the recorded help lives, relative to this crate, for messages.
pub const RECORDED_DIR: &str = "crates/container-flags/data/multigres-6bd80b9";

/// The flags of a recorded binary or subcommand, each help text parsed once.
pub fn recorded_flags(name: &str) -> Option<&'static help::FlagSet> {
    use std::collections::BTreeMap;
    use std::sync::OnceLock;
    static PARSED: OnceLock<BTreeMap<&'static str, help::FlagSet>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        RECORDED
            .iter()
            .filter_map(|n| Some((*n, help::parse(recorded_help(n)?))))
            .collect()
    });
    parsed.get(name)
}

/// Every recorded help's name.
pub const RECORDED: &[&str] = &[
    "multiadmin",
    "multigateway",
    "multiorch",
    "multipooler",
    "pgctld",
    "pgctld-server",
];

/// The recorded `--help` of a binary (`multipooler`) or subcommand (`pgctld-server`).
pub fn recorded_help(name: &str) -> Option<&'static str> {
    Some(match name {
        "multiadmin" => include_str!("../data/multigres-6bd80b9/multiadmin.help"),
        "multigateway" => include_str!("../data/multigres-6bd80b9/multigateway.help"),
        "multiorch" => include_str!("../data/multigres-6bd80b9/multiorch.help"),
        "multipooler" => include_str!("../data/multigres-6bd80b9/multipooler.help"),
        "pgctld" => include_str!("../data/multigres-6bd80b9/pgctld.help"),
        "pgctld-server" => include_str!("../data/multigres-6bd80b9/pgctld-server.help"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recorded_help_defines_the_common_flags() {
        for name in [
            "multiadmin",
            "multigateway",
            "multiorch",
            "multipooler",
            "pgctld-server",
        ] {
            let flags = recorded_flags(name).unwrap();
            for flag in ["http-port", "grpc-port", "log-level", "service-map"] {
                assert!(flags.defines(flag), "{name} lacks --{flag}");
            }
        }
        let pooler = recorded_flags("multipooler").unwrap();
        for flag in [
            "cell",
            "database",
            "table-group",
            "shard",
            "service-id",
            "pooler-dir",
        ] {
            assert!(pooler.defines(flag), "multipooler lacks --{flag}");
        }
        // DESIGN §4: multiadmin has no --service-id.
        assert!(!recorded_flags("multiadmin").unwrap().defines("service-id"));
        assert!(recorded_help("pgctld").unwrap().contains("server"));
    }
}
