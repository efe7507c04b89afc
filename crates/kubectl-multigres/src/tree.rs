//! The cluster as a tree: conditions at each level, primaries per shard, lagging replicas, pods not
//! Ready, what is progressing and why. Pure: objects in, a tree (and its text) out.

use std::collections::BTreeMap;
use std::fmt::Write;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use multigres_api::{
    Cell, LastSwitchover, MultigresCluster, Shard, TableGroup, TopoServer, labels,
};
use multigres_runtime::conditions::{AVAILABLE, DEGRADED, PROGRESSING};

use crate::replication::{ShardReplication, bytes};
use serde::Serialize;

/// What `status` shows, and what `-o json` prints.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTree {
    pub namespace: String,
    pub name: String,
    pub conditions: Vec<Cond>,
    pub topo_servers: Vec<Node>,
    pub cells: Vec<Node>,
    pub table_groups: Vec<TableGroupNode>,
    /// Why replication could not be asked of multiadmin, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_unknown: Option<String>,
}

/// One child: its name, a one-line summary and its conditions.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    pub summary: String,
    pub conditions: Vec<Cond>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TableGroupNode {
    pub database: String,
    pub table_group: String,
    pub name: String,
    pub conditions: Vec<Cond>,
    pub shards: Vec<ShardNode>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShardNode {
    pub name: String,
    pub shard: String,
    /// The cell of the serving primary, from the topology (via the Shard's status).
    pub primary_cell: Option<String>,
    pub ready_pods: i32,
    pub total_pods: i32,
    /// Pods of the shard that are not Ready.
    pub not_ready: Vec<String>,
    pub conditions: Vec<Cond>,
    /// The last requested switchover (`kubectl multigres switchover`) and its outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_switchover: Option<LastSwitchover>,
    /// The last completed backup (docs/backup-restore.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<multigres_api::LastBackup>,
    /// The primary pod and each standby's lag, from multiadmin ([`crate::replication`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ShardReplication>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Cond {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

fn conds(conditions: &[Condition]) -> Vec<Cond> {
    conditions
        .iter()
        .map(|c| Cond {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect()
}

/// Everything read for one cluster.
pub struct Objects {
    pub cluster: MultigresCluster,
    pub topo_servers: Vec<TopoServer>,
    pub cells: Vec<Cell>,
    pub table_groups: Vec<TableGroup>,
    pub shards: Vec<Shard>,
    pub pods: Vec<Pod>,
}

pub fn build(objects: &Objects) -> ClusterTree {
    let cluster = &objects.cluster;
    let status = cluster.status.clone().unwrap_or_default();
    let topo_servers = objects
        .topo_servers
        .iter()
        .map(|t| {
            let s = t.status.clone().unwrap_or_default();
            Node {
                name: t.name_any(),
                summary: format!("etcd {}/{} ready", s.ready_replicas, t.spec.replicas),
                conditions: conds(&s.conditions),
            }
        })
        .collect();
    let cells = objects
        .cells
        .iter()
        .map(|c| {
            let s = c.status.clone().unwrap_or_default();
            Node {
                name: c.spec.name.clone(),
                summary: format!(
                    "gateways {}/{} ready, multiorch available {:?}",
                    s.gateway_ready_replicas, c.spec.multigateway.replicas, s.multiorch_available
                ),
                conditions: conds(&s.conditions),
            }
        })
        .collect();
    let mut by_table_group: BTreeMap<String, Vec<ShardNode>> = BTreeMap::new();
    for shard in &objects.shards {
        let key = format!("{}/{}", shard.spec.database, shard.spec.table_group);
        let s = shard.status.clone().unwrap_or_default();
        let name = shard.name_any();
        let not_ready = objects
            .pods
            .iter()
            .filter(|p| p.labels().get(labels::OWNER) == Some(&name))
            .filter(|p| !multigres_runtime::pods::is_ready(p))
            .map(|p| p.name_any())
            .collect();
        by_table_group.entry(key).or_default().push(ShardNode {
            name,
            shard: shard.spec.shard_name.clone(),
            primary_cell: s.primary_cell.clone(),
            ready_pods: s.ready_pods,
            total_pods: s.total_pods,
            not_ready,
            conditions: conds(&s.conditions),
            last_switchover: s.last_switchover.clone(),
            last_backup: s.last_backup.clone(),
            replication: None,
        });
    }
    let table_groups = objects
        .table_groups
        .iter()
        .map(|tg| {
            let key = format!("{}/{}", tg.spec.database, tg.spec.table_group);
            let mut shards = by_table_group.remove(&key).unwrap_or_default();
            shards.sort_by(|a, b| a.shard.cmp(&b.shard));
            TableGroupNode {
                database: tg.spec.database.clone(),
                table_group: tg.spec.table_group.clone(),
                name: tg.name_any(),
                conditions: conds(&tg.status.clone().unwrap_or_default().conditions),
                shards,
            }
        })
        .collect();
    ClusterTree {
        namespace: cluster.namespace().unwrap_or_default(),
        name: cluster.name_any(),
        conditions: conds(&status.conditions),
        topo_servers,
        cells,
        table_groups,
        replication_unknown: None,
    }
}

/// Adds each Shard's replication (by Shard name), or why it could not be asked.
pub fn attach_replication(
    tree: &mut ClusterTree,
    replication: Result<BTreeMap<String, ShardReplication>, String>,
) {
    match replication {
        Ok(mut by_shard) => {
            for shard in tree.table_groups.iter_mut().flat_map(|tg| &mut tg.shards) {
                shard.replication = by_shard.remove(&shard.name);
            }
        }
        Err(why) => tree.replication_unknown = Some(why),
    }
}

/// `Available=True Progressing=False Degraded=False`, the conditions that tell health.
fn headline(conditions: &[Cond]) -> String {
    [AVAILABLE, PROGRESSING, DEGRADED]
        .iter()
        .filter_map(|t| conditions.iter().find(|c| c.type_ == *t))
        .map(|c| format!("{}={}", c.type_, c.status))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What needs attention: every condition that is not in its healthy state, with its message.
fn attention(conditions: &[Cond], indent: &str, out: &mut String) {
    for c in conditions {
        // Conditions that report a problem when True (StaleShards: TableGroup; Retained: cluster).
        let problem_when_true = [PROGRESSING, DEGRADED, "StaleShards", "Retained"];
        let healthy = match problem_when_true.contains(&c.type_.as_str()) {
            true => c.status == "False",
            false => c.status == "True",
        };
        if !healthy {
            let _ = writeln!(out, "{indent}! {} {}: {}", c.type_, c.reason, c.message);
        }
    }
}

/// The tree as text for a terminal.
pub fn render(tree: &ClusterTree) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "MultigresCluster {}/{}  {}",
        tree.namespace,
        tree.name,
        headline(&tree.conditions)
    );
    attention(&tree.conditions, "  ", &mut out);
    if let Some(why) = &tree.replication_unknown {
        let _ = writeln!(out, "  replication not known: {why}");
    }
    for t in &tree.topo_servers {
        let _ = writeln!(
            out,
            "├─ TopoServer {}  {}  {}",
            t.name,
            t.summary,
            headline(&t.conditions)
        );
        attention(&t.conditions, "│    ", &mut out);
    }
    for c in &tree.cells {
        let _ = writeln!(
            out,
            "├─ Cell {}  {}  {}",
            c.name,
            c.summary,
            headline(&c.conditions)
        );
        attention(&c.conditions, "│    ", &mut out);
    }
    for tg in &tree.table_groups {
        let _ = writeln!(
            out,
            "├─ TableGroup {}/{} ({})  {}",
            tg.database,
            tg.table_group,
            tg.name,
            headline(&tg.conditions)
        );
        attention(&tg.conditions, "│    ", &mut out);
        for s in &tg.shards {
            let primary = s.primary_cell.as_deref().unwrap_or("none known");
            let _ = writeln!(
                out,
                "│  └─ Shard {}  primary in {}  pods {}/{} ready  {}",
                s.shard,
                primary,
                s.ready_pods,
                s.total_pods,
                headline(&s.conditions)
            );
            attention(&s.conditions, "│       ", &mut out);
            if !s.not_ready.is_empty() {
                let _ = writeln!(out, "│       not ready: {}", s.not_ready.join(", "));
            }
            if let Some(last) = &s.last_switchover {
                let _ = writeln!(
                    out,
                    "│       switchover requested at {}: {:?} {} → {}",
                    last.requested_at,
                    last.result,
                    last.from.as_deref().unwrap_or("?"),
                    last.to.as_deref().unwrap_or("?")
                );
            }
            if let Some(r) = &s.replication {
                replication_lines(r, &mut out);
            }
            match &s.last_backup {
                Some(b) => {
                    let _ = writeln!(
                        out,
                        "│       last backup {} at {} (Backup {})",
                        b.backup_id, b.completed_at.0, b.backup
                    );
                }
                None => {
                    let _ = writeln!(out, "│       no completed backup");
                }
            }
        }
    }
    out
}

/// The primary pod, each standby's lag, and what is wrong: lagging standbys, silent poolers.
fn replication_lines(r: &ShardReplication, out: &mut String) {
    const INDENT: &str = "│       ";
    let standbys: Vec<String> = r
        .standbys
        .iter()
        .map(|s| match s.replay_lag_bytes {
            Some(lag) => format!("{} {} behind", s.pod, bytes(lag)),
            None => format!("{} lag unknown", s.pod),
        })
        .collect();
    let _ = writeln!(
        out,
        "{INDENT}primary pod {} at {}; standbys: {}",
        r.primary.as_deref().unwrap_or("unknown"),
        r.primary_lsn.as_deref().unwrap_or("?"),
        if standbys.is_empty() {
            "none".to_string()
        } else {
            standbys.join(", ")
        }
    );
    for s in r.lagging() {
        let reason = s.reason.as_deref().unwrap_or_default();
        let _ = writeln!(out, "{INDENT}! lagging replica {}: {reason}", s.pod);
    }
    for (pod, error) in &r.unreachable {
        let _ = writeln!(out, "{INDENT}! pooler of {pod} did not answer: {error}");
    }
    if let Some(why) = &r.unknown {
        let _ = writeln!(out, "{INDENT}! replication lag not known: {why}");
    }
}

#[cfg(test)]
mod tests;
