//! An operator-wide allow-list of the topology hosts the controllers may dial
//! (`--topology-allowed-hosts`). Whoever may create a MultigresCluster can name an external
//! topology address; without a list the operator dials whatever host they name
//! (docs/security.md, "External addresses").

use crate::TopoError;

/// Hosts the operator may dial: exact names (`etcd.example.com`, `10.0.0.7`) or suffixes
/// (`*.svc` matches `etcd.ns.svc` but not `svc`). Empty allows every host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    exact: Vec<String>,
    suffixes: Vec<String>,
}

impl AllowedHosts {
    /// Parses a comma-separated list; blank entries are ignored, so `""` allows every host.
    pub fn parse(spec: &str) -> Result<Self, TopoError> {
        let mut allowed = Self::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let entry = entry.to_ascii_lowercase();
            match entry.strip_prefix("*.") {
                Some(suffix) if valid_host(suffix) => allowed.suffixes.push(format!(".{suffix}")),
                None if valid_host(&entry) => allowed.exact.push(entry),
                _ => {
                    return Err(TopoError::Invalid(format!(
                        "allowed topology host {entry:?} is neither a host name nor *.<domain>"
                    )));
                }
            }
        }
        Ok(allowed)
    }

    /// True when every host is allowed.
    pub fn allows_all(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty()
    }

    /// Refuses `address` (`host:port`, with or without `http://`) unless its host is listed.
    pub fn check(&self, address: &str) -> Result<(), TopoError> {
        if self.allows_all() {
            return Ok(());
        }
        let host = host_of(address).to_ascii_lowercase();
        let listed =
            self.exact.contains(&host) || self.suffixes.iter().any(|s| host.ends_with(s.as_str()));
        if listed {
            return Ok(());
        }
        Err(TopoError::NotAllowed(format!(
            "topology address {address:?}: host {host:?} is not in the operator's allow-list \
             (--topology-allowed-hosts); an external address comes from the spec's \
             external.address (globalTopoServer or a cell's topoServer)"
        )))
    }
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}

/// The host of `[scheme://]host:port` (an IPv6 host in brackets loses them).
fn host_of(address: &str) -> &str {
    let bare = address.split_once("://").map_or(address, |(_, rest)| rest);
    let bare = bare.split('/').next().unwrap_or(bare);
    if let Some(rest) = bare.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    bare.rsplit_once(':').map_or(bare, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_allows_every_host() {
        let any = AllowedHosts::parse(" , ").unwrap();
        assert!(any.allows_all());
        assert!(any.check("anything.example:2379").is_ok());
    }

    #[test]
    fn exact_hosts_and_suffixes() {
        let allowed = AllowedHosts::parse("*.svc, etcd.example.com,10.0.0.7").unwrap();
        for ok in [
            "etcd.ns.svc:2379",
            "http://global-topo.prod.svc:2379",
            "ETCD.example.com:2379",
            "10.0.0.7:2379",
        ] {
            assert!(allowed.check(ok).is_ok(), "{ok}");
        }
        for refused in [
            "svc:2379",
            "evil.svc.attacker.net:2379",
            "other.example.com:2379",
            "10.0.0.70:2379",
            "[::1]:2379",
        ] {
            let err = allowed.check(refused).unwrap_err().to_string();
            assert!(err.contains("--topology-allowed-hosts"), "{refused}: {err}");
        }
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in ["*", "*.", "etcd:2379/x", "a b", "*.*.svc"] {
            assert!(AllowedHosts::parse(bad).is_err(), "{bad}");
        }
    }
}
