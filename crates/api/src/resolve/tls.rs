//! The observed revision of the cluster's cert-manager certificate, carried into the resolved tree
//! so that every pod mounting the TLS Secret is replaced when cert-manager renews it
//! (docs/security.md, "Rotation").

use super::ResolvedCluster;

impl ResolvedCluster {
    /// Sets the certificate's revision on the cluster's TLS reference and on every Cell and
    /// TableGroup (whose Shards copy it); nothing when the cluster runs without TLS.
    pub fn set_tls_revision(&mut self, revision: Option<i64>) {
        for tls in self.tls_refs() {
            tls.revision = revision;
        }
    }

    /// The cluster's TLS reference and every Cell's and TableGroup's copy of it.
    pub(super) fn tls_refs(&mut self) -> impl Iterator<Item = &mut crate::TlsRef> {
        self.tls
            .iter_mut()
            .chain(self.cells.iter_mut().filter_map(|c| c.spec.tls.as_mut()))
            .chain(
                self.table_groups
                    .iter_mut()
                    .filter_map(|t| t.spec.tls.as_mut()),
            )
    }
}
