//! Growing data volumes, for every controller whose workload keeps data on claims (Shards' pools,
//! TopoServers' etcd): when the spec asks for more storage than a claim requests, the claim is
//! patched to the new size where its StorageClass allows expansion; a StorageClass that does not,
//! and a smaller size (volumes never shrink), are reported on the owner instead
//! (docs/shard-controller.md, "Volumes"). The decision is pure; [`allows_expansion`] and [`grow`]
//! are the two API calls.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use multigres_api::quantity;

use crate::events::Events;

/// The condition type every owner of grown claims reports.
pub const CONDITION: &str = "VolumesResized";

/// What the claims of one pool need.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VolumePlan {
    /// Claims to patch to the wanted size, with it.
    pub grow: Vec<(String, Quantity)>,
    /// Claims that need more room but whose StorageClass does not allow expansion.
    pub not_expandable: Vec<(String, String)>,
    /// Claims that already request more than the pool asks for: kept as they are.
    pub larger: Vec<String>,
}

impl VolumePlan {
    pub fn is_settled(&self) -> bool {
        self.grow.is_empty() && self.not_expandable.is_empty() && self.larger.is_empty()
    }

    pub fn extend(&mut self, other: VolumePlan) {
        self.grow.extend(other.grow);
        self.not_expandable.extend(other.not_expandable);
        self.larger.extend(other.larger);
    }
}

/// The storage a claim (or a claim template) requests.
pub fn requested(
    spec: Option<&k8s_openapi::api::core::v1::PersistentVolumeClaimSpec>,
) -> Option<&Quantity> {
    spec?.resources.as_ref()?.requests.as_ref()?.get("storage")
}

/// Decides for each of `claims` against the pool's `wanted` size. `expandable` tells whether a
/// StorageClass allows expansion (`None`: not known, e.g. the claim names no class: treated as not
/// allowed, so nothing is patched that the API server would refuse).
pub fn plan(
    wanted: Option<&Quantity>,
    claims: &[&PersistentVolumeClaim],
    expandable: impl Fn(Option<&str>) -> Option<bool>,
) -> VolumePlan {
    let mut out = VolumePlan::default();
    let Some(wanted_bytes) = wanted.and_then(quantity::bytes) else {
        return out;
    };
    for claim in claims {
        if claim.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(current) = requested(claim.spec.as_ref()).and_then(quantity::bytes) else {
            continue;
        };
        if current > wanted_bytes {
            out.larger.push(claim.name_any());
        } else if current < wanted_bytes {
            let class = claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref());
            if expandable(class) == Some(true) {
                out.grow
                    .push((claim.name_any(), wanted.cloned().unwrap_or_default()));
            } else {
                out.not_expandable
                    .push((claim.name_any(), class.unwrap_or("(none)").to_string()));
            }
        }
    }
    out
}

/// Whether StorageClass `name` allows expansion (a missing class does not); `None` when it cannot
/// be read.
pub async fn allows_expansion(client: &Client, name: &str) -> Option<bool> {
    let api: Api<StorageClass> = Api::all(client.clone());
    match api.get_opt(name).await {
        Ok(Some(class)) => Some(class.allow_volume_expansion == Some(true)),
        Ok(None) => Some(false),
        Err(error) => {
            tracing::warn!(%error, class = name, "reading StorageClass");
            None
        }
    }
}

/// What the StorageClasses a controller has read say of expansion, by name: each is read once per
/// reconcile, and only for claims that need more room.
#[derive(Debug, Default)]
pub struct StorageClasses(BTreeMap<String, Option<bool>>);

impl StorageClasses {
    /// Reads the class of every one of `claims` not read yet.
    pub async fn learn(&mut self, client: &Client, claims: &[&PersistentVolumeClaim]) {
        for class in claims
            .iter()
            .filter_map(|c| c.spec.as_ref()?.storage_class_name.clone())
        {
            if let Entry::Vacant(entry) = self.0.entry(class) {
                let allowed = allows_expansion(client, entry.key()).await;
                entry.insert(allowed);
            }
        }
    }

    /// Whether `class` allows expansion, as read (`None`: not read, or unreadable).
    pub fn allows(&self, class: Option<&str>) -> Option<bool> {
        class.and_then(|c| self.0.get(c).copied().flatten())
    }
}

/// Raises the storage request of every claim `plan` grows (a merge patch of that one field), with
/// a `VolumeExpanding` Event on `owner`. Fails with the claim and the error.
pub async fn grow<K: Resource<DynamicType = ()>>(
    client: &Client,
    events: &Events,
    owner: &K,
    namespace: &str,
    plan: &VolumePlan,
    manager: &str,
) -> Result<(), (String, kube::Error)> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    for (claim, size) in &plan.grow {
        let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": size}}}});
        api.patch(claim, &PatchParams::apply(manager), &Patch::Merge(&patch))
            .await
            .map_err(|e| (claim.clone(), e))?;
        let note = format!(
            "PersistentVolumeClaim {claim}: storage request raised to {}",
            size.0
        );
        events.normal(owner, "VolumeExpanding", &note).await;
    }
    Ok(())
}

/// The owner's `VolumesResized` condition for `plan`: `(status, reason, message)`.
pub fn condition(plan: &VolumePlan, wanted: &str) -> (bool, &'static str, String) {
    if !plan.not_expandable.is_empty() {
        let list: Vec<String> = plan
            .not_expandable
            .iter()
            .map(|(claim, class)| format!("{claim} (StorageClass {class})"))
            .collect();
        return (
            false,
            "ExpansionNotSupported",
            format!(
                "dataVolumeClaimTemplate asks for {wanted}, but the StorageClass of {} does not \
                 allow volume expansion (allowVolumeExpansion); the claims keep their size",
                list.join(", ")
            ),
        );
    }
    if !plan.larger.is_empty() {
        return (
            false,
            "ShrinkRefused",
            format!(
                "dataVolumeClaimTemplate asks for {wanted}, less than {} already hold: volumes \
                 never shrink, the claims keep their size",
                plan.larger.join(", ")
            ),
        );
    }
    if !plan.grow.is_empty() {
        let names: Vec<&str> = plan.grow.iter().map(|(c, _)| c.as_str()).collect();
        return (
            false,
            "Expanding",
            format!("growing {} to {wanted}", names.join(", ")),
        );
    }
    (
        true,
        "AsRequested",
        "every data claim requests the size its pool asks for".to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
    use kube::api::ObjectMeta;

    fn claim(name: &str, size: &str, class: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                storage_class_name: class.map(Into::into),
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_string(), Quantity(size.into()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn grows_claims_of_expandable_classes_only() {
        let a = claim("a", "10Gi", Some("fast"));
        let b = claim("b", "10240Mi", Some("fixed"));
        let c = claim("c", "20Gi", Some("fast"));
        let wanted = Quantity("20Gi".into());
        let plan = plan(Some(&wanted), &[&a, &b, &c], |class| match class {
            Some("fast") => Some(true),
            Some("fixed") => Some(false),
            _ => None,
        });
        assert_eq!(plan.grow, vec![("a".to_string(), wanted.clone())]);
        assert_eq!(
            plan.not_expandable,
            vec![("b".to_string(), "fixed".to_string())]
        );
        assert!(plan.larger.is_empty());
        let (ok, reason, message) = condition(&plan, "20Gi");
        assert!(!ok);
        assert_eq!(reason, "ExpansionNotSupported");
        assert!(message.contains("b (StorageClass fixed)"), "{message}");
    }

    #[test]
    fn never_shrinks_and_settles_when_equal() {
        let a = claim("a", "20Gi", Some("fast"));
        let small = Quantity("10Gi".into());
        let plan_small = plan(Some(&small), &[&a], |_| Some(true));
        assert_eq!(plan_small.larger, vec!["a".to_string()]);
        assert!(plan_small.grow.is_empty());
        assert_eq!(condition(&plan_small, "10Gi").1, "ShrinkRefused");

        let same = Quantity("20480Mi".into());
        let settled = plan(Some(&same), &[&a], |_| Some(true));
        assert!(settled.is_settled());
        assert_eq!(
            condition(&settled, "20480Mi"),
            (
                true,
                "AsRequested",
                "every data claim requests the size its pool asks for".to_string()
            )
        );
    }

    #[test]
    fn unknown_class_is_not_patched() {
        let a = claim("a", "1Gi", None);
        let wanted = Quantity("2Gi".into());
        let plan = plan(Some(&wanted), &[&a], |_| None);
        assert!(plan.grow.is_empty());
        assert_eq!(plan.not_expandable.len(), 1);
    }
}
