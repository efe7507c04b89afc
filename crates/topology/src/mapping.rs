//! Optional rewriting of topology addresses before dialing.
//!
//! Cell records carry in-cluster addresses such as `etcd.ns.svc:2379`. An operator running on a
//! developer's host (tests, the demo) cannot resolve those, so it can be told to dial a
//! port-forward instead. The records themselves are never rewritten: pods still need the
//! in-cluster names. Empty means off, which is the production setting.
//!
//! A source `*:<port>` matches every host on that port that no exact source names: the demo backs
//! every cluster's topology with one etcd this way (each cluster has its own root in it).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::TopoError;
use crate::allowed::AllowedHosts;

/// How the controllers dial a topology address: a set of `from=to` rewrites, parsed from
/// `a:2379=127.0.0.1:23791,*:15990=...`, and the hosts they may dial at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressMapping {
    rules: BTreeMap<String, String>,
    allowed: AllowedHosts,
}

impl AddressMapping {
    /// No rewriting.
    pub fn off() -> Self {
        Self::default()
    }

    /// Parses `from=to[,from=to...]`. Whitespace around entries is ignored and an empty (or
    /// all-blank) string means off. Each side must be `host:port` with a numeric port, and a
    /// source may appear only once, so a typo fails loudly at startup instead of silently
    /// dialing the wrong server.
    pub fn parse(spec: &str) -> Result<Self, TopoError> {
        let mut rules = BTreeMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (from, to) = entry.split_once('=').ok_or_else(|| {
                TopoError::Invalid(format!("address mapping entry {entry:?} has no '='"))
            })?;
            let (from, to) = (from.trim(), to.trim());
            match from.strip_prefix("*:") {
                Some(port) => validate_host_port(&format!("any:{port}"), entry)?,
                None => validate_host_port(from, entry)?,
            }
            validate_host_port(to, entry)?;
            if rules.insert(from.to_owned(), to.to_owned()).is_some() {
                return Err(TopoError::Invalid(format!(
                    "address mapping maps {from:?} more than once"
                )));
            }
        }
        Ok(Self {
            rules,
            allowed: AllowedHosts::default(),
        })
    }

    /// Restricts dialing to `allowed` (checked on the address as written, before any rewrite).
    pub fn allowing(self, allowed: AllowedHosts) -> Self {
        Self { allowed, ..self }
    }

    /// Refuses an address whose host the allow-list does not name.
    pub fn check(&self, addr: &str) -> Result<(), TopoError> {
        self.allowed.check(addr)
    }

    /// True when no rewrite is configured.
    pub fn is_off(&self) -> bool {
        self.rules.is_empty()
    }

    /// The address to dial for `addr`. A `http://` / `https://` scheme is kept and the rest is
    /// matched exactly, else by a `*:<port>` rule of its port; unmatched addresses are returned
    /// unchanged.
    pub fn apply(&self, addr: &str) -> String {
        let (scheme, bare) = match addr.split_once("://") {
            Some((scheme, rest)) => (Some(scheme), rest),
            None => (None, addr),
        };
        let any_host = || {
            let port = bare.rsplit_once(':')?.1;
            self.rules.get(&format!("*:{port}"))
        };
        match (self.rules.get(bare).or_else(any_host), scheme) {
            (Some(to), Some(scheme)) => format!("{scheme}://{to}"),
            (Some(to), None) => to.clone(),
            (None, _) => addr.to_owned(),
        }
    }
}

fn validate_host_port(side: &str, entry: &str) -> Result<(), TopoError> {
    let bad = |why: &str| TopoError::Invalid(format!("address mapping entry {entry:?}: {why}"));
    let (host, port) = side
        .rsplit_once(':')
        .ok_or_else(|| bad(&format!("{side:?} is not host:port")))?;
    let bad_char = |c: char| c == '=' || c == '*' || c.is_whitespace();
    if host.is_empty() || host.contains(bad_char) {
        return Err(bad(&format!("{side:?} has an invalid host")));
    }
    port.parse::<u16>()
        .map_err(|_| bad(&format!("{side:?} has an invalid port")))?;
    Ok(())
}

impl FromStr for AddressMapping {
    type Err = TopoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for AddressMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (from, to) in &self.rules {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{from}={to}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_off() {
        for spec in ["", "  ", ",", " , "] {
            let m = AddressMapping::parse(spec).expect("empty spec parses");
            assert!(m.is_off());
            assert_eq!(m.apply("etcd.ns.svc:2379"), "etcd.ns.svc:2379");
        }
    }

    #[test]
    fn parses_and_applies() {
        let m: AddressMapping = "svc-a.ns.svc:2379=127.0.0.1:23791, other:2379 = 127.0.0.1:23792"
            .parse()
            .expect("valid spec");
        assert!(!m.is_off());
        assert_eq!(m.apply("svc-a.ns.svc:2379"), "127.0.0.1:23791");
        assert_eq!(m.apply("other:2379"), "127.0.0.1:23792");
        assert_eq!(m.apply("http://other:2379"), "http://127.0.0.1:23792");
        assert_eq!(m.apply("unmapped:2379"), "unmapped:2379");
        assert_eq!(
            m.to_string(),
            "other:2379=127.0.0.1:23792,svc-a.ns.svc:2379=127.0.0.1:23791"
        );
        assert_eq!(
            AddressMapping::parse(&m.to_string()).expect("round trip"),
            m
        );
    }

    #[test]
    fn a_wildcard_host_matches_every_host_of_its_port_after_the_exact_rules() {
        let m = AddressMapping::parse("*:2379=127.0.0.1:1,exact.ns.svc:2379=127.0.0.1:2")
            .expect("valid spec");
        assert_eq!(m.apply("exact.ns.svc:2379"), "127.0.0.1:2");
        assert_eq!(m.apply("any-client.other.svc:2379"), "127.0.0.1:1");
        assert_eq!(m.apply("http://any:2379"), "http://127.0.0.1:1");
        assert_eq!(m.apply("any:2380"), "any:2380");
        assert_eq!(
            AddressMapping::parse(&m.to_string()).expect("round trip"),
            m
        );
        assert!(AddressMapping::parse("*:x=127.0.0.1:1").is_err());
        assert!(
            AddressMapping::parse("a:1=*:2").is_err(),
            "only a source may be a wildcard"
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for spec in [
            "novalue",
            "a:1=",
            "=b:2",
            "a=b:2",
            "a:1=b",
            "a:1=b:notaport",
            "a:1=b:70000",
            "a:1=b:2=c:3",
            "a:1=b:2,a:1=c:3",
            ":1=b:2",
            "a b:1=c:2",
            "a:1=b:2,,garbage",
            "\u{0}:=:",
            "é:1=ü:2:",
        ] {
            match AddressMapping::parse(spec) {
                Err(TopoError::Invalid(_)) => {}
                other => panic!("{spec:?} should be rejected, got {other:?}"),
            }
        }
    }
}
