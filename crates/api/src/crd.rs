//! The CustomResourceDefinitions, as `crdgen` writes them to `deploy/crds/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Value, json};

use crate::{
    Backup, Cell, DeploymentTemplate, MultigresCluster, ScheduledBackup, Shard, TableGroup,
    TopoServer,
};

/// Every CRD of the operator, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    [
        with_name_limit(MultigresCluster::crd(), 63),
        DeploymentTemplate::crd(),
        TopoServer::crd(),
        Cell::crd(),
        TableGroup::crd(),
        Shard::crd(),
        Backup::crd(),
        with_name_limit(ScheduledBackup::crd(), 63),
    ]
    .into_iter()
    .map(shorten_descriptions)
    .collect()
}

/// Embedded Kubernetes types (Quantity, Affinity) carry page-long descriptions hundreds of times over;
/// keeping their first sentence keeps the CRDs small enough for etcd and `kubectl apply`.
fn shorten_descriptions(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(text)) = map.get_mut("description")
                    && text.len() > MAX_DESCRIPTION
                {
                    let cut = text
                        .find(". ")
                        .map_or(MAX_DESCRIPTION, |i| (i + 1).min(MAX_DESCRIPTION));
                    let mut end = cut;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.truncate(end);
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    walk(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

const MAX_DESCRIPTION: usize = 200;

/// The cluster's name becomes a label value and a prefix of child names, so it must fit a label.
fn with_name_limit(mut crd: CustomResourceDefinition, max: usize) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let mut value = serde_json::to_value(&*schema).unwrap_or(Value::Null);
        if let Some(root) = value.as_object_mut() {
            let rules = root
                .entry("x-kubernetes-validations")
                .or_insert_with(|| json!([]));
            if let Some(rules) = rules.as_array_mut() {
                rules.push(json!({
                    "rule": format!("self.metadata.name.size() <= {max}"),
                    "message": format!("metadata.name must be at most {max} characters: it becomes a label value")
                }));
            }
        }
        if let Ok(updated) = serde_json::from_value(value) {
            *schema = updated;
        }
    }
    crd
}

/// All CRDs as one multi-document YAML stream.
pub fn to_yaml() -> String {
    all()
        .iter()
        .map(|crd| serde_yaml::to_string(crd).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}
