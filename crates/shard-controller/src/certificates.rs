//! Each Shard's pgBackRest certificate (TLS between its pool pods), renewed before it expires
//! (docs/security.md, "Renewal"): issued from a CA derived from the operator's topology CA and the
//! Shard's uid into `<shard>-pgbackrest-tls-<expiry>`. A renewal is a new Secret under a new name:
//! the pool pods roll in their safe order (replicas first, the primary last after a switchover)
//! while old and new certificates, of the same CA, trust each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use multigres_api::resolve::{IssuedSecret, SecretNames, renewed_secret};
use multigres_api::{Shard, labels, naming};
use multigres_runtime::pki::{self, Authority, IssuedTls};

use crate::build;

/// The Secret a Shard's pool pods mount, and when it is due for renewal (none: never, the
/// operator holds no CA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub secret: String,
    pub renew_at: Option<i64>,
}

/// Decides and issues the Shards' pgBackRest certificates.
pub struct PgBackRest {
    authority: Option<Arc<Authority>>,
    validity: Duration,
    /// Per Shard uid, the Secret last decided: a reconcile that runs before the pods it created
    /// reach the cache keeps it instead of naming another.
    decided: Mutex<HashMap<String, String>>,
}

impl PgBackRest {
    pub fn new(authority: Option<Arc<Authority>>, validity: Duration) -> Self {
        Self {
            authority,
            validity,
            decided: Mutex::default(),
        }
    }

    /// The Secret `shard`'s pods mount from now on, from what its `pods` mount (their
    /// annotation; pods from before it mount the unnamed Secret).
    pub fn decide(&self, shard: &Shard, pods: &[Arc<Pod>], now: i64) -> Decision {
        let name = shard.name_any();
        let mut mounted: Vec<String> = pods
            .iter()
            .map(|p| {
                p.annotations()
                    .get(labels::PGBACKREST_TLS)
                    .cloned()
                    .unwrap_or_else(|| naming::pgbackrest_tls_secret(&name))
            })
            .collect();
        let uid = shard.uid().unwrap_or_default();
        let mut decided = self.decided.lock().unwrap_or_else(|p| p.into_inner());
        mounted.extend(decided.get(&uid).cloned());
        let created = shard
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(now, |t| t.0.as_second());
        let renewal = self
            .authority
            .as_ref()
            .map(|_| (now, self.validity.as_secs() as i64));
        let decision = pgbackrest_secret(&name, created, &mounted, renewal);
        decided.insert(uid, decision.secret.clone());
        decision
    }

    pub fn forget(&self, shard: &Shard) {
        let uid = shard.uid().unwrap_or_default();
        let mut decided = self.decided.lock().unwrap_or_else(|p| p.into_inner());
        decided.remove(&uid);
    }

    /// The certificate for `secret`: of the Shard's derived CA when the name carries an expiry
    /// and the operator holds the topology CA, else of a CA of its own, forgotten once it signed.
    pub fn issue(&self, shard: &Shard, secret: &str) -> Result<IssuedTls, pki::Error> {
        let name = shard.name_any();
        let sans = build::pgbackrest_sans(shard);
        match (
            &self.authority,
            naming::pgbackrest_tls_expiry(&name, secret),
        ) {
            (Some(root), Some(not_after)) => {
                let scope = format!("pgbackrest/{}", shard.uid().unwrap_or_default());
                let ca_name = format!(
                    "Multigres pgBackRest {}/{name} CA",
                    shard.namespace().unwrap_or_default()
                );
                root.derive(&scope, &ca_name)?
                    .sign_until(PGBACKREST_CLIENT, &sans, not_after)
            }
            _ => pki::issue("Multigres pgBackRest CA", PGBACKREST_CLIENT, &sans),
        }
    }
}

/// pgctld's pgBackRest server admits clients whose certificate says this common name, and every
/// pool pod is both server and client: one leaf serves.
const PGBACKREST_CLIENT: &str = "pgbackrest";

/// The Secret to mount, from the ones `mounted` now (by pods, or decided before): the one that
/// expires last, else one from before renewal (counted from the Shard's creation), renewed as
/// `resolve::renewed_secret` says.
pub fn pgbackrest_secret(
    shard: &str,
    created: i64,
    mounted: &[String],
    renewal: Option<(i64, i64)>,
) -> Decision {
    let newest = mounted
        .iter()
        .max_by_key(|m| naming::pgbackrest_tls_expiry(shard, m))
        .map(|name| IssuedSecret { name, created });
    let names = SecretNames {
        unnamed: naming::pgbackrest_tls_secret(shard),
        until: &|t| naming::pgbackrest_tls_secret_until(shard, t),
        expiry: &|name| naming::pgbackrest_tls_expiry(shard, name),
    };
    let (secret, renew_at) = renewed_secret(&names, newest, renewal);
    Decision { secret, renew_at }
}

#[cfg(test)]
mod tests;
