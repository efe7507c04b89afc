//! A counting semaphore over Leases: at most `size` holders per group at once, across every
//! replica of every controller that shares the Lease namespace. The shard controller takes one
//! before it disrupts a Shard's pods for a roll, so that a template edit or an operator upgrade
//! does not restart every Shard of a table group together (docs/reliability.md).
//!
//! Slot `i` of group `g` is the Lease `<g>-<i>`; its holder identity names the holder. A holder
//! renews its slot while it works and releases it when done. A slot whose Lease has not changed for
//! `ttl` (a holder that crashed) is free again; the time is measured on this replica's clock from
//! when it first saw that resourceVersion, as [`crate::leader`] does, so clock skew does not matter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, Client, ResourceExt};

/// The answer to [`Slots::acquire`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The holder has a slot (newly taken or renewed).
    Held,
    /// Every slot is taken; by these holders.
    Busy(Vec<String>),
}

pub struct Slots {
    api: Api<Lease>,
    size: u32,
    ttl: Duration,
    /// Per Lease: the resourceVersion last read and when it was first seen.
    observed: Mutex<HashMap<String, (String, Instant)>>,
    /// Per holder: its Lease and when it was last written.
    held: Mutex<HashMap<String, (String, Instant)>>,
}

impl Slots {
    /// `size` slots per group (0: unlimited, no Lease is ever written), Leases in `namespace`.
    pub fn new(client: Client, namespace: &str, size: u32, ttl: Duration) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            size,
            ttl,
            observed: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Takes or renews a slot of `group` for `holder`. Renewal writes only every third of the TTL,
    /// so a holder that asks on every reconcile costs a write every few seconds at most.
    pub async fn acquire(&self, group: &str, holder: &str) -> kube::Result<Slot> {
        if self.size == 0 {
            return Ok(Slot::Held);
        }
        let held = self.held.lock().expect("slots").get(holder).cloned();
        if let Some((_, renewed)) = &held
            && renewed.elapsed() < self.ttl / 3
        {
            return Ok(Slot::Held);
        }
        let mut others = Vec::new();
        for i in 0..self.size {
            let name = format!("{group}-{i}");
            match self.try_slot(&name, holder).await? {
                None => {
                    self.held
                        .lock()
                        .expect("slots")
                        .insert(holder.to_string(), (name, Instant::now()));
                    return Ok(Slot::Held);
                }
                Some(other) => others.push(other),
            }
        }
        self.held.lock().expect("slots").remove(holder);
        Ok(Slot::Busy(others))
    }

    /// `None` when `holder` holds Lease `name` afterwards; else the holder that does.
    async fn try_slot(&self, name: &str, holder: &str) -> kube::Result<Option<String>> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let Some(current) = self.api.get_opt(name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(holder.to_string()),
                    lease_duration_seconds: Some(self.ttl.as_secs().max(1) as i32),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(None),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Some("a concurrent taker".into())),
                Err(e) => Err(e),
            };
        };
        let current_holder = current
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        let rv = current.resource_version().unwrap_or_default();
        let first_seen = {
            let mut observed = self.observed.lock().expect("slots");
            let entry = observed
                .entry(name.to_string())
                .or_insert_with(|| (rv.clone(), Instant::now()));
            if entry.0 != rv {
                *entry = (rv, Instant::now());
            }
            entry.1
        };
        let free = current_holder.is_empty() || first_seen.elapsed() >= self.ttl;
        if current_holder != holder && !free {
            return Ok(Some(current_holder));
        }
        let mut next = current;
        let spec = next.spec.get_or_insert_with(Default::default);
        if current_holder != holder {
            spec.acquire_time = Some(now.clone());
        }
        spec.holder_identity = Some(holder.to_string());
        spec.renew_time = Some(now);
        // replace carries the resourceVersion read above: a concurrent taker makes this a 409.
        match self.api.replace(name, &PostParams::default(), &next).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Some("a concurrent taker".into())),
            Err(e) => Err(e),
        }
    }

    /// Gives back the slot `holder` took through this value (a process that restarted does not
    /// know it; that slot frees itself after the TTL). Deletes only the Lease it last wrote.
    pub async fn release(&self, holder: &str) -> kube::Result<()> {
        let Some((name, _)) = self.held.lock().expect("slots").remove(holder) else {
            return Ok(());
        };
        let Some(current) = self.api.get_opt(&name).await? else {
            return Ok(());
        };
        let holds = current
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(holder);
        if !holds {
            return Ok(());
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: current.uid(),
                resource_version: current.resource_version(),
            }),
            ..Default::default()
        };
        match self.api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether this value believes `holder` holds a slot.
    pub fn holds(&self, holder: &str) -> bool {
        self.size == 0 || self.held.lock().expect("slots").contains_key(holder)
    }
}
