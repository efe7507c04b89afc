//! Pure: which TableGroups the spec no longer names are kept, and which the user confirmed for
//! deletion. Removing a database or a table group from the spec never deletes data by itself: the
//! TableGroup (its Shards, pods and volumes) and the Database record stay, and the same name added
//! back adopts them. They go only when the cluster's `multigres.com/delete-retained` annotation names
//! them (`*` for all).

use std::collections::BTreeSet;

use kube::ResourceExt;
use multigres_api::{MultigresCluster, TableGroup};

/// Annotation on the MultigresCluster: comma-separated TableGroup names (or `*`) to delete for real.
pub const DELETE_RETAINED: &str = "multigres.com/delete-retained";

/// A TableGroup kept although the spec no longer names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kept {
    pub name: String,
    pub database: String,
    pub table_group: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Retention {
    /// Not in the spec, not confirmed: kept with everything under it.
    pub kept: Vec<Kept>,
    /// Not in the spec and named by the annotation: to delete.
    pub confirmed: BTreeSet<String>,
}

impl Retention {
    /// Databases whose records stay registered for the kept TableGroups.
    pub fn databases(&self) -> BTreeSet<String> {
        self.kept.iter().map(|k| k.database.clone()).collect()
    }

    /// Names the pruning keeps besides the desired ones.
    pub fn kept_names(&self) -> BTreeSet<String> {
        self.kept.iter().map(|k| k.name.clone()).collect()
    }

    /// The `Retained` condition: status, reason, message.
    pub fn condition(&self) -> (bool, &'static str, String) {
        if self.kept.is_empty() {
            return (
                false,
                "NothingRetained",
                "every TableGroup of the cluster is in its spec".into(),
            );
        }
        let names: Vec<String> = self
            .kept
            .iter()
            .map(|k| {
                format!(
                    "{} (database {:?}, table group {:?})",
                    k.name, k.database, k.table_group
                )
            })
            .collect();
        (
            true,
            "DataRetained",
            format!(
                "kept, with their Shards, pods, volumes and Database records, though the spec no longer \
                 names them: {}. Add them back to adopt them, or annotate the cluster \
                 {DELETE_RETAINED}=<name>[,<name>...] (or *) to delete them and their data",
                names.join(", ")
            ),
        )
    }
}

/// Splits the TableGroups `cluster` controls that are not `desired` into kept and confirmed.
pub fn retention<'a>(
    cluster: &MultigresCluster,
    controlled: impl IntoIterator<Item = &'a TableGroup>,
    desired: &BTreeSet<String>,
) -> Retention {
    let confirmation = cluster
        .annotations()
        .get(DELETE_RETAINED)
        .map(String::as_str)
        .unwrap_or_default();
    let all = confirmation.trim() == "*";
    let named: BTreeSet<&str> = confirmation
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let mut out = Retention::default();
    for tg in controlled {
        let name = tg.name_any();
        if desired.contains(&name) || tg.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if all || named.contains(name.as_str()) {
            out.confirmed.insert(name);
        } else {
            out.kept.push(Kept {
                name,
                database: tg.spec.database.clone(),
                table_group: tg.spec.table_group.clone(),
            });
        }
    }
    out.kept.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use multigres_api::TableGroupSpec;

    fn tg(name: &str, db: &str) -> TableGroup {
        let spec: TableGroupSpec = serde_json::from_value(serde_json::json!({
            "database": db, "tableGroup": name, "images": {"multipooler": "m", "postgres": "p"},
            "partitioning": {"shards": 1}, "shardTemplate": {"pools": []},
            "globalTopoServer": {"rootPath": "/r", "address": "a:1"},
            "credentials": {"secretName": "s"}
        }))
        .unwrap();
        TableGroup::new(name, spec)
    }

    fn cluster(annotation: Option<&str>) -> MultigresCluster {
        let mut c: MultigresCluster =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "c"}, "spec": {}}))
                .unwrap();
        if let Some(a) = annotation {
            c.annotations_mut().insert(DELETE_RETAINED.into(), a.into());
        }
        c
    }

    #[test]
    fn removed_table_groups_are_kept_until_named_for_deletion() {
        let all = [tg("a", "db1"), tg("b", "db1"), tg("c", "db2")];
        let desired = BTreeSet::from(["a".to_string()]);
        let kept = retention(&cluster(None), &all, &desired);
        assert_eq!(kept.kept_names(), BTreeSet::from(["b".into(), "c".into()]));
        assert!(kept.confirmed.is_empty());
        assert_eq!(
            kept.databases(),
            BTreeSet::from(["db1".into(), "db2".into()])
        );
        let (status, reason, message) = kept.condition();
        assert!(status && reason == "DataRetained" && message.contains(DELETE_RETAINED));

        let one = retention(&cluster(Some("c, x")), &all, &desired);
        assert_eq!(one.kept_names(), BTreeSet::from(["b".into()]));
        assert_eq!(one.confirmed, BTreeSet::from(["c".into()]));

        let every = retention(&cluster(Some("*")), &all, &desired);
        assert!(every.kept.is_empty() && every.confirmed.len() == 2);
        // A desired TableGroup is never deleted, whatever the annotation says.
        assert!(!every.confirmed.contains("a"));
        assert!(!retention(&cluster(None), &all[..1], &desired).condition().0);
    }
}
