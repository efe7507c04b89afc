//! Whether a cluster's topology (its managed etcds and every Multigres component's client) speaks
//! TLS (docs/security.md, "Topology"). The pinned Multigres sets etcd TLS per process, for the global
//! and every cell topology at once, so the answer is one per cluster.

use super::ResolvedCluster;
use crate::toposerver::TopoServerTls;

/// The answer, with the reason the `TopologyEncrypted` condition gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologyTls {
    On,
    Off {
        reason: &'static str,
        message: String,
    },
}

impl ResolvedCluster {
    /// TLS when the cluster asks for TLS, every topology server is managed and the operator holds
    /// the topology CA. Sticky both ways once the global TopoServer exists (`existing_global_tls`):
    /// a switch would restart etcd and every pod, and old and new pods could not talk meanwhile.
    pub fn topology_tls(
        &self,
        operator_has_ca: bool,
        existing_global_tls: Option<bool>,
    ) -> TopologyTls {
        let off = |reason, message: String| TopologyTls::Off { reason, message };
        if self.tls.is_none() {
            return off(
                "TLSDisabled",
                "spec.tls.enabled is false: the topology is plaintext too".into(),
            );
        }
        if self.global_topo_server.is_none() {
            return off(
                "ExternalTopology",
                format!(
                    "the global topology is external ({}): the operator does not encrypt an etcd it \
                     does not manage yet",
                    self.global_topology.address
                ),
            );
        }
        if let Some(cell) = self
            .cells
            .iter()
            .find(|c| c.spec.topo_server.external.is_some())
        {
            return off(
                "ExternalTopology",
                format!(
                    "cell {} uses an external topology server: the pinned Multigres sets etcd TLS for \
                     all topology servers of a process at once, so the cluster's topology stays \
                     plaintext",
                    cell.spec.name
                ),
            );
        }
        match existing_global_tls {
            Some(true) => TopologyTls::On,
            Some(false) => off(
                "CreatedPlaintext",
                "the global TopoServer was created without TLS; switching needs every pod and etcd \
                 member restarted at once, which the operator does not do (docs/security.md)"
                    .into(),
            ),
            None if !operator_has_ca => off(
                "NoTopologyCA",
                "the operator runs without a topology CA (chart value global.topologyTls.enabled)".into(),
            ),
            None => TopologyTls::On,
        }
    }

    /// Decides ([`Self::topology_tls`]) for the cluster named `cluster` and, when on, turns it on
    /// with the cluster's Secret names. What the cluster controller does in every reconcile.
    pub fn resolve_topology_tls(
        &mut self,
        cluster: &str,
        operator_has_ca: bool,
        existing_global_tls: Option<bool>,
    ) -> TopologyTls {
        let decision = self.topology_tls(operator_has_ca, existing_global_tls);
        if decision == TopologyTls::On {
            let global = crate::naming::global_topo_server(cluster);
            self.set_topology_tls(
                &crate::naming::topology_tls_secret(cluster),
                &crate::naming::topo_server_tls_secret(&global),
            );
        }
        decision
    }

    /// Turns topology TLS on: the global TopoServer serves TLS, and every Cell and TableGroup (so
    /// every Shard) dials with `client_secret`; cells' own TopoServers follow their Cell.
    pub fn set_topology_tls(&mut self, client_secret: &str, global_server_secret: &str) {
        let secret = Some(client_secret.to_string());
        self.global_topology.tls_secret_name = secret.clone();
        if let Some(global) = &mut self.global_topo_server {
            global.spec.tls = Some(TopoServerTls {
                secret_name: global_server_secret.to_string(),
            });
        }
        for cell in &mut self.cells {
            cell.spec.global_topo_server.tls_secret_name = secret.clone();
        }
        for table_group in &mut self.table_groups {
            table_group.spec.global_topo_server.tls_secret_name = secret.clone();
        }
    }
}

#[cfg(test)]
mod tests;
