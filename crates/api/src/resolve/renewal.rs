//! Certificates the operator renews before they expire (docs/security.md, "Renewal"): the
//! topology's (client and etcd members) and each cluster's own (gRPC mTLS, gateway TLS). A renewed
//! certificate goes into a new Secret whose name ends with its expiry, so no controller reads a
//! Secret back to know when to renew, and the pods that mount it roll in their safe order.

use super::ResolvedCluster;
use crate::naming;

/// The certificates a cluster uses now: until when they are valid, and when a reconcile renews
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertificateRenewal {
    /// Unix seconds; `None`: certificates issued before renewal existed, kept under their names.
    pub not_after: Option<i64>,
    /// Unix seconds: a third of the validity before `not_after`, when new ones are issued.
    pub renew_at: i64,
}

/// The certificates a cluster's children were given: their expiry, when the name says it, and when
/// the child that carries them was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuedCertificates {
    pub not_after: Option<i64>,
    pub created: i64,
}

/// Certificates issued before renewal existed are valid for ten years from the start of their year
/// of issue (`pki::VALID_YEARS`): at least nine from their holder's creation.
const UNNAMED_EXPIRY: i64 = 9 * 365 * 24 * 3600;

/// Keeps the certificates a cluster has until a third of `validity` before they expire, then names
/// new ones valid for `validity` from `now`. Old and new chain to the same CA, so pods that still
/// mount the old ones and pods that mount the new ones trust each other while they roll.
pub fn certificate_renewal(
    issued: Option<IssuedCertificates>,
    now: i64,
    validity: i64,
) -> CertificateRenewal {
    let lead = validity / 3;
    let not_after = fresh_expiry(now, validity);
    let fresh = CertificateRenewal {
        not_after: Some(not_after),
        renew_at: not_after - lead,
    };
    let Some(issued) = issued else {
        return fresh;
    };
    let expires = issued.not_after.unwrap_or(issued.created + UNNAMED_EXPIRY);
    if now >= expires - lead {
        return fresh;
    }
    CertificateRenewal {
        not_after: issued.not_after,
        renew_at: expires - lead,
    }
}

/// The expiry of a certificate issued `now`: `validity` later, rounded up to a step of a
/// hundredth of it (at most an hour), so that two reconciles moments apart, the second before the
/// cache shows what the first applied, name the same Secret instead of issuing two.
pub fn fresh_expiry(now: i64, validity: i64) -> i64 {
    let step = (validity / 100).clamp(1, 3600);
    let end = now + validity;
    end + (step - end.rem_euclid(step)) % step
}

/// The Secret a cluster's own certificate is in, as its Cells carry it, and when that Cell was
/// created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuedSecret<'a> {
    pub name: &'a str,
    pub created: i64,
}

/// How the Secrets of one renewable certificate are named: unnamed (from before renewal), for an
/// expiry, and the expiry a name carries.
pub struct SecretNames<'a> {
    pub unnamed: String,
    pub until: &'a dyn Fn(i64) -> String,
    pub expiry: &'a dyn Fn(&str) -> Option<i64>,
}

/// The Secret to mount and when it is due, from the one in force (`issued`). `renewal` is now and
/// the validity; none without the operator's CA, when the Secret in force stays (or the unnamed
/// one, for a first issue from a throw-away CA).
pub fn renewed_secret(
    names: &SecretNames<'_>,
    issued: Option<IssuedSecret<'_>>,
    renewal: Option<(i64, i64)>,
) -> (String, Option<i64>) {
    let Some((now, validity)) = renewal else {
        let name = issued.map_or_else(|| names.unnamed.clone(), |i| i.name.to_string());
        return (name, None);
    };
    let issued = issued.map(|i| IssuedCertificates {
        not_after: (names.expiry)(i.name),
        created: i.created,
    });
    let renewal = certificate_renewal(issued, now, validity);
    let name = match renewal.not_after {
        Some(not_after) => (names.until)(not_after),
        None => names.unnamed.clone(),
    };
    (name, Some(renewal.renew_at))
}

impl ResolvedCluster {
    /// Names the Secret of the cluster's own certificate (gRPC mTLS, gateway TLS) when the operator
    /// issues it from the cluster's derived CA (`renewal`: the operator holds its CA): renewed a
    /// third of the validity before it expires, into `<cluster>-tls-<expiry>`. Without the CA
    /// nothing can be renewed, so the Secret the pods mount stays. Nothing when the cluster runs
    /// without TLS. Returns when the certificate is due.
    pub fn resolve_cluster_certificate(
        &mut self,
        cluster: &str,
        issued: Option<IssuedSecret<'_>>,
        renewal: Option<(i64, i64)>,
    ) -> Option<i64> {
        self.tls.as_ref()?;
        let names = SecretNames {
            unnamed: naming::tls_secret(cluster),
            until: &|t| naming::tls_secret_until(cluster, t),
            expiry: &|name| naming::tls_expiry(cluster, name),
        };
        let (name, renew_at) = renewed_secret(&names, issued, renewal);
        self.set_tls_secret(&name);
        self.tls_renew_at = renew_at;
        renew_at
    }

    /// Every reference to the cluster's TLS Secret (its own, every Cell's and TableGroup's, so
    /// every Shard's) names `name`.
    fn set_tls_secret(&mut self, name: &str) {
        for tls in self.tls_refs() {
            tls.secret_name = name.to_string();
        }
    }
}

#[cfg(test)]
mod tests;
