//! Server-side apply of children, one field manager per controller, and pruning of children that are
//! no longer desired. An apply whose every field already holds is skipped: a reconcile that changes
//! nothing sends no write.

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PropagationPolicy};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use kube::runtime::reflector::{ObjectRef, Store};

use crate::error::{ChildError, Failure};
use crate::events::{ChildEvents, Events};
use crate::subset::is_subset;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    Created,
    Updated,
    Unchanged,
}

/// Applies children for one controller (its field manager) and reports changes as Events on the parent.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    manager: String,
}

impl Applier {
    pub fn new(client: Client, manager: impl Into<String>) -> Self {
        Self {
            client,
            manager: manager.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn manager(&self) -> &str {
        &self.manager
    }

    fn api<K>(&self, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<DynamicType = ()>,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
    {
        match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::default_namespaced(self.client.clone()),
        }
    }

    /// Applies `desired` (with force: the controller owns its children's fields) unless `existing`, from
    /// the controller's cache, already has all of it.
    pub async fn apply<K>(
        &self,
        existing: Option<&K>,
        desired: &K,
    ) -> Result<ApplyOutcome, kube::Error>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
    {
        if let Some(existing) = existing
            && let (Ok(want), Ok(have)) = (
                serde_json::to_value(desired),
                serde_json::to_value(existing),
            )
            && is_subset(&want, &have)
        {
            return Ok(ApplyOutcome::Unchanged);
        }
        let api = self.api::<K>(desired.meta().namespace.as_deref());
        api.patch(
            &desired.name_any(),
            &PatchParams::apply(&self.manager).force(),
            &Patch::Apply(desired),
        )
        .await?;
        Ok(if existing.is_some() {
            ApplyOutcome::Updated
        } else {
            ApplyOutcome::Created
        })
    }

    /// Applies and records an Event on `parent` when something changed that `events` reports.
    pub async fn apply_reported<K, P>(
        &self,
        events: ChildEvents<'_>,
        parent: &P,
        existing: Option<&K>,
        desired: &K,
    ) -> Result<ApplyOutcome, kube::Error>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        P: Resource<DynamicType = ()>,
    {
        let outcome = self.apply(existing, desired).await?;
        let kind = K::kind(&());
        match outcome {
            ApplyOutcome::Created if events.creations => {
                let note = format!("Created {kind} {}", desired.name_any());
                let events = events.events;
                events.about_child(parent, desired, "Created", &note).await
            }
            ApplyOutcome::Updated => {
                let note = format!("Updated {kind} {}", desired.name_any());
                let events = events.events;
                events.about_child(parent, desired, "Updated", &note).await
            }
            ApplyOutcome::Created | ApplyOutcome::Unchanged => {}
        }
        Ok(outcome)
    }

    /// Applies a child of `parent` whose current state is in `store` (with an Event on `parent`
    /// when it changed, given `events`): a child of that name controlled by another object is
    /// refused, never taken over.
    pub async fn apply_owned<K, P>(
        &self,
        events: Option<ChildEvents<'_>>,
        parent: &P,
        store: &Store<K>,
        desired: &K,
    ) -> Result<ApplyOutcome, ChildError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        P: Resource<DynamicType = ()>,
    {
        let (kind, name) = (K::kind(&()), desired.name_any());
        let key = ObjectRef::new(&name).within(&parent.namespace().unwrap_or_default());
        let existing = store.get(&key);
        if let Some(existing) = &existing
            && controlled_by_other(existing.as_ref(), parent)
        {
            let failure = Failure::NameConflict {
                kind: kind.into_owned(),
                name,
            };
            return Err(ChildError::new(parent, failure));
        }
        let applied = match events {
            Some(events) => {
                self.apply_reported(events, parent, existing.as_deref(), desired)
                    .await
            }
            None => self.apply(existing.as_deref(), desired).await,
        };
        applied
            .map_err(|source| ChildError::kube(parent, format!("applying {kind} {name}"), source))
    }

    /// Writes `status` as `object`'s status (server-side apply, this controller's field manager)
    /// unless `current` already equals it. Returns whether it wrote.
    pub async fn apply_status<K, S>(
        &self,
        object: &K,
        current: Option<&S>,
        status: &S,
    ) -> Result<bool, kube::Error>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        S: Serialize + PartialEq,
    {
        self.apply_status_beside(object, current, status, &[]).await
    }

    /// [`Self::apply_status`] for a status that other managers write parts of: the top-level
    /// fields in `others` (left out of `status`, so this manager's apply never touches them) do
    /// not count as a difference.
    pub async fn apply_status_beside<K, S>(
        &self,
        object: &K,
        current: Option<&S>,
        status: &S,
        others: &[&str],
    ) -> Result<bool, kube::Error>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        S: Serialize + PartialEq,
    {
        if status_equal_beside(current, status, others) {
            return Ok(false);
        }
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        self.api::<K>(object.meta().namespace.as_deref())
            .patch_status(
                &object.name_any(),
                &PatchParams::apply(&self.manager).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        Ok(true)
    }

    /// [`Self::apply_status_beside`], then an Event when `Available` turned with the write
    /// ([`Events::availability`]). Returns whether it wrote.
    pub async fn apply_status_reported<K, S>(
        &self,
        events: &Events,
        object: &K,
        current: Option<&S>,
        status: &S,
        others: &[&str],
    ) -> Result<bool, kube::Error>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        S: Serialize + PartialEq + crate::conditions::Conditioned,
    {
        let wrote = self
            .apply_status_beside(object, current, status, others)
            .await?;
        if wrote {
            let before = crate::conditions::of(current);
            events
                .availability(object, before, status.conditions())
                .await;
        }
        Ok(wrote)
    }

    /// Merges `fields` into the status of `name` (a JSON merge patch under this field manager),
    /// for a part of a status another controller applies: it adds or replaces only the keys it
    /// names, and the other controller, which never owned them, leaves them alone (it compares with
    /// [`Self::apply_status_beside`]). Returns false when the object is gone.
    pub async fn merge_status<K>(
        &self,
        namespace: &str,
        name: &str,
        fields: serde_json::Value,
    ) -> Result<bool, kube::Error>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
    {
        let params = PatchParams {
            field_manager: Some(self.manager.clone()),
            ..Default::default()
        };
        let patch = serde_json::json!({ "status": fields });
        match self
            .api::<K>(Some(namespace))
            .patch_status(name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes the children in `existing` that `owner` controls and whose names are not in `keep`.
    /// Objects without `owner`'s controller reference are never touched. Returns the deleted names.
    pub async fn prune<'a, K, P>(
        &self,
        events: &Events,
        owner: &P,
        existing: impl IntoIterator<Item = &'a K>,
        keep: &BTreeSet<String>,
    ) -> Result<Vec<String>, kube::Error>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug + 'a,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        P: Resource<DynamicType = ()>,
    {
        let mut deleted = Vec::new();
        for child in existing {
            if !controlled_by(child, owner)
                || keep.contains(&child.name_any())
                || child.meta().deletion_timestamp.is_some()
            {
                continue;
            }
            let api = self.api::<K>(child.meta().namespace.as_deref());
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..Default::default()
            };
            match api.delete(&child.name_any(), &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => continue,
                Err(e) => return Err(e),
            }
            let note = format!("Deleted {} {}", K::kind(&()), child.name_any());
            events.about_child(owner, child, "Deleted", &note).await;
            deleted.push(child.name_any());
        }
        Ok(deleted)
    }
}

/// A controller owner reference to `owner`, so that garbage collection removes children with it.
pub fn controller_ref<P: Resource<DynamicType = ()>>(owner: &P) -> Option<OwnerReference> {
    owner.controller_owner_ref(&())
}

/// Object metadata for a child: name, namespace, labels and a controller reference to `owner`.
pub fn child_meta<P: Resource<DynamicType = ()>>(
    owner: &P,
    name: &str,
    labels: std::collections::BTreeMap<String, String>,
) -> kube::api::ObjectMeta {
    kube::api::ObjectMeta {
        name: Some(name.to_string()),
        namespace: owner.meta().namespace.clone(),
        labels: Some(labels),
        owner_references: controller_ref(owner).map(|r| vec![r]),
        ..Default::default()
    }
}

/// Whether `owner` is `child`'s controller (its controller reference carries `owner`'s uid).
pub fn controlled_by<K: Resource, P: Resource>(child: &K, owner: &P) -> bool {
    let uid = owner.meta().uid.as_deref().unwrap_or_default();
    child
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// The objects in `store` that `owner` controls, in `owner`'s namespace.
pub fn controlled_children<K, P>(store: &Store<K>, owner: &P) -> Vec<std::sync::Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    P: Resource,
{
    let namespace = owner.meta().namespace.as_deref();
    store
        .state()
        .into_iter()
        .filter(|child| child.meta().namespace.as_deref() == namespace)
        .filter(|child| controlled_by(child.as_ref(), owner))
        .collect()
}

/// Whether `child` is controlled by an object other than `owner` (a name collision).
pub fn controlled_by_other<K: Resource, P: Resource>(child: &K, owner: &P) -> bool {
    let uid = owner.meta().uid.as_deref().unwrap_or_default();
    child
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid != uid)
}

/// The API server's message when it refused an object as invalid (400, 422): a spec the parent
/// accepted but the child's schema, a CEL rule or a value parser does not. Retrying cannot help;
/// the parent reports it and goes on with its other children.
pub fn refused(error: &kube::Error) -> Option<String> {
    match error {
        kube::Error::Api(e) if e.code == 400 || e.code == 422 => Some(e.message.clone()),
        _ => None,
    }
}

/// Whether `current`, without the fields in `others`, is `status`.
pub fn status_equal_beside<S: Serialize + PartialEq>(
    current: Option<&S>,
    status: &S,
    others: &[&str],
) -> bool {
    let Some(current) = current else {
        return false;
    };
    if others.is_empty() {
        return current == status;
    }
    let (Ok(mut current), Ok(status)) =
        (serde_json::to_value(current), serde_json::to_value(status))
    else {
        return false;
    };
    if let Some(fields) = current.as_object_mut() {
        fields.retain(|key, _| !others.contains(&key.as_str()));
    }
    current == status
}
