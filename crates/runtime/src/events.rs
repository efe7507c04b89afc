//! Kubernetes Events on the objects a controller reconciles. Publishing is best effort: a failed Event
//! is logged, never a reconcile failure.
//!
//! Events report transitions (docs/operations.md, "Events"): an object becoming Available or losing
//! it, a child changed or repaired, an action taken (a switchover, a pod replaced). The children
//! created while an object is first built are not reported one by one: its `Available` Event sums
//! them up, and an Event per pod was most of the operator's API writes at scale.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use crate::conditions::{self, AvailabilityTurn};

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: controller.to_string(),
                    instance,
                },
            ),
        }
    }

    pub async fn normal<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        note: &str,
    ) {
        self.publish(object, EventType::Normal, reason, note, None)
            .await;
    }

    /// A Normal Event on `object` about its child `child` (the Event's `related`): kube's recorder
    /// folds repeats of one reason on one object into a series, so each child needs its own.
    pub async fn about_child<K, C>(&self, object: &K, child: &C, reason: &str, note: &str)
    where
        K: Resource<DynamicType = ()>,
        C: Resource<DynamicType = ()>,
    {
        let related = Some(child.object_ref(&()));
        self.publish(object, EventType::Normal, reason, note, related)
            .await;
    }

    /// A Normal `Created` Event on `object` for the Secret `name` it issued with `what` (the
    /// Secret as `related`, so that each Secret is an Event of its own).
    pub async fn secret_created<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        name: &str,
        what: &str,
    ) {
        let secret = k8s_openapi::api::core::v1::Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_string()),
                namespace: object.meta().namespace.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let note = format!("Created Secret {name} with {what}");
        self.about_child(object, &secret, "Created", &note).await;
    }

    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        note: &str,
    ) {
        self.publish(object, EventType::Warning, reason, note, None)
            .await;
    }

    /// An Event when `Available` turned between the status written before and the one just
    /// written: `Available` (Normal) or `Unavailable` (Warning, with the condition's reason).
    pub async fn availability<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        before: &[Condition],
        after: &[Condition],
    ) {
        match conditions::availability_turned(before, after) {
            Some(AvailabilityTurn::Gained(now)) => {
                self.normal(object, "Available", &now.message).await
            }
            Some(AvailabilityTurn::Lost(now)) => {
                let note = format!("{}: {}", now.reason, now.message);
                self.warning(object, "Unavailable", &note).await
            }
            None => {}
        }
    }

    /// The Events for the children of a parent whose conditions are `parent_conditions`: every
    /// change to an existing child, and a created child only while the parent is settled
    /// (Available, not Progressing: a repair, or the first answer to an edit), never during its
    /// first build or a roll it already reports.
    pub fn children(&self, parent_conditions: &[Condition]) -> ChildEvents<'_> {
        let settled = conditions::is_true(parent_conditions, conditions::AVAILABLE)
            && !conditions::is_true(parent_conditions, conditions::PROGRESSING);
        ChildEvents {
            events: self,
            creations: settled,
        }
    }

    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        note: &str,
        secondary: Option<k8s_openapi::api::core::v1::ObjectReference>,
    ) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: reason.to_string(),
            secondary,
        };
        if let Err(error) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(%error, reason, "could not publish event");
        }
    }
}

/// Which changes to a parent's children get an Event on it ([`Events::children`]).
#[derive(Clone, Copy)]
pub struct ChildEvents<'a> {
    pub(crate) events: &'a Events,
    pub(crate) creations: bool,
}

/// Objects in a change their controller makes itself (a roll, an edit being applied): their
/// `Available` turns are expected and not reported one by one; the change's own Events (a pod
/// replaced, a switchover) say what happens. Kept in memory: after a restart a change in flight
/// may report one turn.
#[derive(Debug, Default)]
pub struct PlannedChanges {
    keys: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl PlannedChanges {
    /// Notes whether `key` is in a planned change now; once it is, it stays so until
    /// [`Self::settled`].
    pub fn observe(&self, key: &str, planned: bool) {
        if planned {
            self.lock().insert(key.to_string());
        }
    }

    /// Whether `key`'s availability turns are expected.
    pub fn quiet(&self, key: &str) -> bool {
        self.lock().contains(key)
    }

    /// The change of `key` is over (it is Available again and nothing planned remains).
    pub fn settled(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_change_is_quiet_until_it_settles() {
        let planned = PlannedChanges::default();
        planned.observe("ns/a", false);
        assert!(!planned.quiet("ns/a"), "an unplanned turn is reported");
        planned.observe("ns/a", true);
        planned.observe("ns/a", false);
        assert!(planned.quiet("ns/a"), "until it settles");
        assert!(!planned.quiet("ns/b"));
        planned.settled("ns/a");
        assert!(!planned.quiet("ns/a"));
    }
}
