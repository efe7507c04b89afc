//! Cluster DNS as hosts files: every pod gets an address in 127.0.0.0/8, and every name a pod
//! could dial (its `hostname.subdomain` forms, each Service's short and long forms, the managed
//! TopoServers' client Services) maps to the address that answers for it. Kubernetes' search
//! domains do not apply to hosts files, so every form is listed.
//!
//! Each pod also gets its own copy in which `localhost` is its own address: containers of a pod
//! share a network namespace in Kubernetes and dial each other on `localhost`, while here all pods
//! share one and each listens only on its own address.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;

/// Pod `i`'s address.
pub fn pod_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 10 + (i / 250) as u8, (i % 250) as u8 + 1)
}

/// TopoServer stand-in `i`'s address.
pub fn topo_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 9, i as u8 + 1)
}

/// The names of a Service, or of a pod's `hostname.subdomain`, in every form a resolver with the
/// cluster's search path would accept.
pub fn service_names(name: &str, ns: &str) -> Vec<String> {
    vec![
        name.to_string(),
        format!("{name}.{ns}"),
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}.svc.cluster.local"),
    ]
}

/// Address -> names, for the whole cluster.
#[derive(Default)]
pub struct Hosts {
    entries: BTreeMap<Ipv4Addr, Vec<String>>,
}

impl Hosts {
    pub fn add(&mut self, ip: Ipv4Addr, names: impl IntoIterator<Item = String>) {
        let list = self.entries.entry(ip).or_default();
        for n in names {
            if !list.contains(&n) {
                list.push(n);
            }
        }
    }

    /// Each running pod under its name and `hostname.subdomain`; each Service under the address of
    /// the first running pod it selects (no kube-proxy: one backend).
    pub fn from_cluster(pods: &[(Pod, Ipv4Addr)], services: &[Service]) -> Hosts {
        let mut hosts = Hosts::default();
        for (pod, ip) in pods {
            let ns = pod.namespace().unwrap_or_default();
            let mut names = vec![pod.name_any()];
            if let Some(spec) = &pod.spec
                && let (Some(h), Some(sub)) = (&spec.hostname, &spec.subdomain)
            {
                names.extend(service_names(&format!("{h}.{sub}"), &ns));
            }
            hosts.add(*ip, names);
        }
        for svc in services {
            let selector = svc.spec.as_ref().and_then(|s| s.selector.clone());
            let Some(selector) = selector.filter(|s| !s.is_empty()) else {
                continue;
            };
            let backend = pods
                .iter()
                .find(|(p, _)| selector.iter().all(|(k, v)| p.labels().get(k) == Some(v)));
            if let Some((_, ip)) = backend {
                let ns = svc.namespace().unwrap_or_default();
                hosts.add(*ip, service_names(&svc.name_any(), &ns));
            }
        }
        hosts
    }

    /// The address a name maps to (an IP address maps to itself).
    pub fn resolve(&self, name: &str) -> Option<Ipv4Addr> {
        if let Ok(ip) = name.parse() {
            return Some(ip);
        }
        self.entries
            .iter()
            .find(|(_, names)| names.iter().any(|n| n == name))
            .map(|(ip, _)| *ip)
    }

    /// The hosts file, with `localhost` at `localhost_ip`.
    pub fn render(&self, localhost_ip: Ipv4Addr) -> String {
        let mut s =
            format!("{localhost_ip}\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for (ip, names) in &self.entries {
            let _ = writeln!(s, "{ip}\t{}", names.join(" "));
        }
        s
    }

    /// `name -> address` lines for the report.
    pub fn lines(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(ip, names)| format!("{ip:<12} {}", names.join(" ")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_loopback_and_distinct() {
        assert_eq!(pod_ip(0), Ipv4Addr::new(127, 0, 10, 1));
        assert_eq!(pod_ip(250), Ipv4Addr::new(127, 0, 11, 1));
        assert!(topo_ip(0).is_loopback());
    }

    #[test]
    fn localhost_is_the_pods_own_address() {
        let mut h = Hosts::default();
        h.add(pod_ip(0), service_names("gw", "ns"));
        let text = h.render(pod_ip(3));
        assert!(text.starts_with("127.0.10.4\tlocalhost\n"));
        assert!(text.contains("gw.ns.svc.cluster.local"));
    }
}
