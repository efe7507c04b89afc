//! The flags a binary defines, read from its `--help` text (the cobra/pflag layout every Multigres
//! binary prints): `      --name type   usage` or `  -x, --name type   usage` under a `Flags:` or
//! `Global Flags:` heading. A flag printed without a type is a boolean and takes no separate value.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlagSet {
    /// Long names without the dashes, and whether each takes a value (`--name value` spelling).
    pub long: BTreeMap<String, bool>,
    /// Shorthand letter -> long name.
    pub short: BTreeMap<char, String>,
}

impl FlagSet {
    pub fn defines(&self, name: &str) -> bool {
        self.long.contains_key(name)
    }

    pub fn takes_value(&self, name: &str) -> bool {
        self.long.get(name).copied().unwrap_or(false)
    }

    pub fn names(&self) -> BTreeSet<&str> {
        self.long.keys().map(String::as_str).collect()
    }
}

/// Parses a `--help` text. Usage lines that wrap, and prose mentioning `--other-flag`, are ignored:
/// only lines in pflag's exact column layout count.
pub fn parse(help: &str) -> FlagSet {
    let mut set = FlagSet::default();
    let mut in_flags = false;
    for line in help.lines() {
        if !line.starts_with(' ') {
            in_flags = line.trim_end().ends_with("Flags:");
            continue;
        }
        if !in_flags {
            continue;
        }
        let (short, rest) = if let Some(rest) = line.strip_prefix("      --") {
            (None, rest)
        } else if let Some(rest) = line.strip_prefix("  -") {
            let mut chars = rest.chars();
            match (chars.next(), chars.as_str().strip_prefix(", --")) {
                (Some(letter), Some(rest)) if letter.is_ascii_alphanumeric() => {
                    (Some(letter), rest)
                }
                _ => continue,
            }
        } else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        if name.is_empty() {
            continue;
        }
        // pflag prints `--name type` with one space, then at least two before the usage.
        let after = &rest[name.len()..];
        let takes_value = after.starts_with(' ') && !after.starts_with("  ");
        set.long.insert(name.clone(), takes_value);
        if let Some(letter) = short {
            set.short.insert(letter, name);
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "\
Runs the thing.
  --not-a-flag appears in prose before any heading

Usage:
  pgctld server [flags]

Flags:
      --grpc-port int                 Port to listen on for gRPC calls. If zero, do not listen.
  -h, --help                          help for server
      --pprof-http                    enable pprof http endpoints (default true)
      --service-map strings           comma separated list of services
                                      (continued usage mentioning --bogus-flag string)

Global Flags:
  -p, --pg-port int                   PostgreSQL port (default 5432)
      --pooler-dir string             The directory to multipooler data
";

    #[test]
    fn reads_long_and_short_flags_and_which_take_values() {
        let set = parse(HELP);
        assert_eq!(
            set.names(),
            BTreeSet::from([
                "grpc-port",
                "help",
                "pprof-http",
                "service-map",
                "pg-port",
                "pooler-dir"
            ])
        );
        assert!(set.takes_value("grpc-port"));
        assert!(set.takes_value("service-map"));
        assert!(!set.takes_value("pprof-http"));
        assert!(!set.takes_value("help"));
        assert_eq!(set.short.get(&'p').map(String::as_str), Some("pg-port"));
        assert_eq!(set.short.get(&'h').map(String::as_str), Some("help"));
    }

    #[test]
    fn prose_and_wrapped_usage_define_nothing() {
        let set = parse(HELP);
        assert!(!set.defines("not-a-flag"));
        assert!(!set.defines("bogus-flag"));
        assert_eq!(
            parse("no flags section at all\n  --x int  y\n"),
            FlagSet::default()
        );
    }
}
