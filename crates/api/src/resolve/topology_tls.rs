//! Whether a cluster's topology (its etcds and every Multigres component's client) speaks TLS
//! (docs/security.md, "Topology"). The pinned Multigres sets etcd TLS per process, for the global
//! and every cell topology at once, so the answer is one per cluster: the operator's managed etcds
//! with its topology CA, external etcds with the Secret the user names, or plaintext.

use super::renewal::CertificateRenewal;
use super::{ResolveError, ResolvedCluster};
use crate::MultigresClusterSpec;
use crate::naming;
use crate::toposerver::TopoServerTls;

const TLS_DISABLED: &str = "spec.tls.enabled is false: the topology is plaintext too";

/// The answer, with the reason the `TopologyEncrypted` condition gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologyTls {
    /// Managed etcds, certificates from the operator's topology CA.
    Managed,
    /// External etcds; Multigres components dial them with the user's Secret.
    External { secret_name: String },
    Off {
        reason: &'static str,
        message: String,
    },
}

/// The Secret every external etcd of the cluster is dialed with, when any asks for TLS. The pinned
/// Multigres has one etcd certificate per process, so TLS to an external etcd rules out managed
/// servers and differing Secrets: refused here, with the field, rather than crash-looping pods.
pub(super) fn external_topology_secret(
    spec: &MultigresClusterSpec,
    cells: &[crate::cell::CellTopoServer],
) -> Result<Option<String>, ResolveError> {
    let global = spec.global_topo_server.as_ref();
    let mut external = Vec::new();
    let mut managed = Vec::new();
    match global.and_then(|g| g.external.as_ref()) {
        Some(server) => external.push(("spec.globalTopoServer.external".to_string(), server)),
        None => managed.push("spec.globalTopoServer".to_string()),
    }
    for (index, cell) in cells.iter().enumerate() {
        let field = format!("spec.cells[{index}].spec.topoServer");
        if let Some(server) = &cell.external {
            external.push((format!("{field}.external"), server));
        } else if cell.managed_spec.is_some() {
            managed.push(field);
        }
    }
    let Some((tls_field, secret)) = external
        .iter()
        .find_map(|(field, s)| s.tls.as_ref().map(|t| (field, &t.secret_name)))
    else {
        return Ok(None);
    };
    let invalid = |field: String, message: String| ResolveError::Invalid { field, message };
    if let Some(field) = managed.first() {
        return Err(invalid(
            field.clone(),
            format!(
                "{tls_field}.tls: Multigres dials every topology server of a cluster with one \
                 certificate, so a managed topology server cannot join an external etcd that \
                 speaks TLS; use external servers only, or no external TLS"
            ),
        ));
    }
    for (field, server) in &external {
        let other = server.tls.as_ref().map(|t| &t.secret_name);
        if other != Some(secret) {
            return Err(invalid(
                format!("{field}.tls.secretName"),
                format!(
                    "must be {secret:?}, as {tls_field}.tls.secretName: Multigres dials every \
                     topology server of a cluster with one certificate"
                ),
            ));
        }
    }
    Ok(Some(secret.clone()))
}

impl ResolvedCluster {
    /// External etcds: TLS exactly when the user named their Secret, whatever `spec.tls` says (the
    /// etcd decides what it accepts). Managed: TLS when the cluster asks for TLS and the operator
    /// holds the topology CA; sticky both ways once the global TopoServer exists
    /// (`existing_global_tls`), even against `spec.tls`, since a switch would restart etcd and
    /// every pod, and old and new pods could not talk meanwhile.
    pub fn topology_tls(
        &self,
        operator_has_ca: bool,
        existing_global_tls: Option<bool>,
    ) -> TopologyTls {
        let off = |reason, message: String| TopologyTls::Off { reason, message };
        if let Some(secret_name) = &self.external_topology_tls {
            return TopologyTls::External {
                secret_name: secret_name.clone(),
            };
        }
        if self.global_topo_server.is_none() {
            return off(
                "ExternalTopology",
                format!(
                    "the global topology is external ({}) and names no Secret in external.tls",
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
                    "cell {} uses an external topology server without TLS: the pinned Multigres \
                     sets etcd TLS for all topology servers of a process at once, so the \
                     cluster's topology stays plaintext",
                    cell.spec.name
                ),
            );
        }
        match existing_global_tls {
            Some(true) => TopologyTls::Managed,
            Some(false) if self.tls.is_none() => off("TLSDisabled", TLS_DISABLED.into()),
            Some(false) => off(
                "CreatedPlaintext",
                "the global TopoServer was created without TLS; switching needs every pod and etcd \
                 member restarted at once, which the operator does not do (docs/security.md)"
                    .into(),
            ),
            None if self.tls.is_none() => off("TLSDisabled", TLS_DISABLED.into()),
            None if !operator_has_ca => off(
                "NoTopologyCA",
                "the operator runs without a topology CA (chart value global.topologyTls.enabled)".into(),
            ),
            None => TopologyTls::Managed,
        }
    }

    /// Decides ([`Self::topology_tls`]) for the cluster named `cluster` and applies the answer;
    /// managed certificates are named for their expiry ([`topology_certificates`]). What the
    /// cluster controller does in every reconcile.
    pub fn resolve_topology_tls(
        &mut self,
        cluster: &str,
        operator_has_ca: bool,
        existing_global_tls: Option<bool>,
        certificates: CertificateRenewal,
    ) -> TopologyTls {
        let decision = self.topology_tls(operator_has_ca, existing_global_tls);
        match &decision {
            TopologyTls::Managed => {
                self.topology_renew_at = Some(certificates.renew_at);
                let global = naming::global_topo_server(cluster);
                let (client, member) = match certificates.not_after {
                    Some(t) => (
                        naming::topology_tls_secret_until(cluster, t),
                        naming::topo_server_tls_secret_until(&global, t),
                    ),
                    None => (
                        naming::topology_tls_secret(cluster),
                        naming::topo_server_tls_secret(&global),
                    ),
                };
                self.set_topology_tls(&client, Some(&member));
            }
            TopologyTls::External { secret_name } => self.set_topology_tls(secret_name, None),
            TopologyTls::Off { .. } => {}
        }
        decision
    }

    /// Turns topology TLS on: every Cell and TableGroup (so every Shard) dials with
    /// `client_secret`; a managed global TopoServer serves with `global_server_secret`, and cells'
    /// own TopoServers follow their Cell.
    pub fn set_topology_tls(&mut self, client_secret: &str, global_server_secret: Option<&str>) {
        let secret = Some(client_secret.to_string());
        self.global_topology.tls_secret_name = secret.clone();
        if let (Some(global), Some(server_secret)) =
            (&mut self.global_topo_server, global_server_secret)
        {
            global.spec.tls = Some(TopoServerTls {
                secret_name: server_secret.to_string(),
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
