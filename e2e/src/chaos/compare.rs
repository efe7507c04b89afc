//! What a chaos run is checked against: every object the operator manages in the chaos namespace,
//! object by object, against a clean run of the same final specs, and no object without a living
//! owner.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client};
use multigres_api::labels;
use serde_json::Value;

/// The kinds the operator creates, and the parts of each that must match a clean run (Secrets and
/// ConfigMaps by name only: passwords and certificates are random).
const KINDS: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "multigres.com",
        "v1alpha1",
        "TopoServer",
        "toposervers",
        &["/spec"],
    ),
    ("multigres.com", "v1alpha1", "Cell", "cells", &["/spec"]),
    (
        "multigres.com",
        "v1alpha1",
        "TableGroup",
        "tablegroups",
        &["/spec"],
    ),
    ("multigres.com", "v1alpha1", "Shard", "shards", &["/spec"]),
    (
        "apps",
        "v1",
        "Deployment",
        "deployments",
        &["/spec/replicas", "/spec/template/spec/containers"],
    ),
    (
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        &["/spec/replicas", "/spec/template/spec/containers"],
    ),
    // Only owners here: their pods are compared through the Deployment.
    ("apps", "v1", "ReplicaSet", "replicasets", &[]),
    (
        "",
        "v1",
        "Service",
        "services",
        &["/spec/ports", "/spec/selector"],
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        &["/spec"],
    ),
    (
        "",
        "v1",
        "Pod",
        "pods",
        &[
            "/spec/containers",
            "/spec/initContainers",
            "/metadata/labels",
        ],
    ),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        &["/spec/resources"],
    ),
    ("", "v1", "ConfigMap", "configmaps", &[]),
    ("", "v1", "Secret", "secrets", &[]),
];

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// `kind/name` -> the compared parts, with the namespace's name replaced so that two namespaces
/// compare equal.
pub type Snapshot = BTreeMap<String, Value>;

/// The operator's objects in `namespace`.
pub async fn snapshot(client: &Client, namespace: &str) -> Result<Snapshot> {
    let mut out = Snapshot::new();
    let managed = format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE);
    for (group, version, kind, plural, parts) in KINDS {
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            namespace,
            &resource(group, version, kind, plural),
        );
        for object in api.list(&ListParams::default().labels(&managed)).await? {
            let name = object.metadata.name.clone().unwrap_or_default();
            // Pods of Deployments and StatefulSets carry generated names and hashes: their owner
            // is compared instead. ReplicaSets likewise.
            let owner_kind = object
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.kind.as_str());
            if *kind == "ReplicaSet" || (*kind == "Pod" && owner_kind != Some("Shard")) {
                continue;
            }
            let value = serde_json::to_value(&object)?;
            let compared: BTreeMap<&str, Value> = parts
                .iter()
                .map(|p| (*p, value.pointer(p).cloned().unwrap_or(Value::Null)))
                .collect();
            let mut compared = serde_json::to_value(&compared)?;
            // The partition bucket hashes the namespace, the zone label follows the node the
            // scheduler picked; token volumes get random names.
            if let Some(labels) = compared
                .pointer_mut("/~1metadata~1labels")
                .and_then(Value::as_object_mut)
            {
                labels.remove("multigres.com/partition");
                labels.remove("topology.kubernetes.io/zone");
            }
            let text = serde_json::to_string(&compared)?.replace(namespace, "NAMESPACE");
            let text = without_token_suffixes(&text);
            out.insert(format!("{kind}/{name}"), serde_json::from_str(&text)?);
        }
    }
    Ok(out)
}

/// `kube-api-access-<random>` -> `kube-api-access`.
fn without_token_suffixes(text: &str) -> String {
    const PREFIX: &str = "kube-api-access";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(PREFIX) {
        out.push_str(&rest[..i + PREFIX.len()]);
        rest = &rest[i + PREFIX.len()..];
        if let Some(tail) = rest.strip_prefix('-') {
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
                .unwrap_or(tail.len());
            rest = &tail[end..];
        }
    }
    out.push_str(rest);
    out
}

/// Differences between two snapshots, one line each (empty: equal).
pub fn differences(chaos: &Snapshot, clean: &Snapshot) -> Vec<String> {
    let keys: BTreeSet<&String> = chaos.keys().chain(clean.keys()).collect();
    keys.into_iter()
        .filter_map(|k| match (chaos.get(k), clean.get(k)) {
            (Some(_), None) => Some(format!("{k}: only after chaos (duplicated or orphaned)")),
            (None, Some(_)) => Some(format!("{k}: missing after chaos")),
            (Some(a), Some(b)) if a != b => Some(format!("{k}: differs: {a} vs clean {b}")),
            _ => None,
        })
        .collect()
}

/// Objects of the operator in `namespace` whose controlling owner no longer exists.
pub async fn orphans(client: &Client, namespace: &str) -> Result<Vec<String>> {
    let mut uids = BTreeSet::new();
    let mut owned = Vec::new();
    for (group, version, kind, plural, _) in KINDS {
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            namespace,
            &resource(group, version, kind, plural),
        );
        for object in api.list(&ListParams::default()).await? {
            uids.insert(object.metadata.uid.clone().unwrap_or_default());
            let is_managed = object
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::MANAGED_BY))
                .is_some_and(|v| v == labels::MANAGED_BY_VALUE);
            if let Some(owner) = object
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                && is_managed
            {
                let name = object.metadata.name.clone().unwrap_or_default();
                owned.push((format!("{kind}/{name}"), owner.uid.clone()));
            }
        }
    }
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource(
            "multigres.com",
            "v1alpha1",
            "MultigresCluster",
            "multigresclusters",
        ),
    );
    for c in clusters.list(&ListParams::default()).await? {
        uids.insert(c.metadata.uid.unwrap_or_default());
    }
    Ok(owned
        .into_iter()
        .filter(|(_, owner)| !uids.contains(owner))
        .map(|(name, owner)| format!("{name}: owner {owner} is gone"))
        .collect())
}
