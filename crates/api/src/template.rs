//! DeploymentTemplate: reusable component settings that clusters name. Not a child of anything.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ComponentSpec, PoolSettings, TopoServerSettings};

/// Reusable settings for multiadmin, multigateway, multiorch, shard pools and managed etcd. Reconciled
/// only while a MultigresCluster references it.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "multigres.com",
    version = "v1alpha1",
    kind = "DeploymentTemplate",
    namespaced,
    status = "DeploymentTemplateStatus",
    shortname = "mgdt",
    category = "multigres",
    printcolumn = r#"{"name":"Consumers","type":"integer","jsonPath":".status.consumerCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.shardPool) || has(self.multiorch) || has(self.multigateway) || has(self.multiadmin) || has(self.managedTopoServer)",
     "message": "a DeploymentTemplate needs at least one section: shardPool, multiorch, multigateway, multiadmin or managedTopoServer"}
]))]
pub struct DeploymentTemplateSpec {
    /// Settings for shard pools that name this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_pool: Option<PoolSettings>,
    /// Settings for multiorch blocks that name this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiorch: Option<ComponentSpec>,
    /// Settings for multigateway blocks that name this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multigateway: Option<ComponentSpec>,
    /// Settings for multiadmin blocks that name this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiadmin: Option<ComponentSpec>,
    /// Settings for topology servers that name this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_topo_server: Option<TopoServerSettings>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentTemplateStatus {
    /// The clusters that reference this template, sorted by namespace and name.
    #[serde(default)]
    pub consumers: Vec<Consumer>,
    /// Number of consumers (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A MultigresCluster that uses a template.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct Consumer {
    pub name: String,
    pub namespace: String,
}

/// The sections a template can hold, for messages and lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateSection {
    ShardPool,
    Multiorch,
    Multigateway,
    Multiadmin,
    ManagedTopoServer,
}

impl TemplateSection {
    pub fn field(self) -> &'static str {
        match self {
            TemplateSection::ShardPool => "shardPool",
            TemplateSection::Multiorch => "multiorch",
            TemplateSection::Multigateway => "multigateway",
            TemplateSection::Multiadmin => "multiadmin",
            TemplateSection::ManagedTopoServer => "managedTopoServer",
        }
    }
}
