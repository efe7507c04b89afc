//! Typed helpers for the records the operator owns (Cell, Database) and the ones it only
//! observes and garbage-collects (MultiPooler).

use std::collections::HashSet;

use tracing::warn;

use crate::client::decode;
use crate::keys::{cell_key, database_key, pooler_dir_of, pooler_key, poolers_prefix};
use crate::pb::id::ComponentType;
use crate::{
    Cell, Database, MultiPooler, PoolerServingStatus, PoolerType, QuorumType, Result, TopoClient,
    TopoError, WriteOutcome,
};

/// A multipooler record read from a cell topology.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolerRecord {
    /// Full etcd key (`<cellRoot>/poolers/multipooler-<cell>-<name>/Pooler`).
    pub key: String,
    /// Revision of the last modification; pruning deletes only if it is unchanged.
    pub mod_revision: i64,
    /// The decoded record.
    pub pooler: MultiPooler,
}

impl PoolerRecord {
    /// The pooler's name (`ID.name`; the pod name in Kubernetes deployments).
    pub fn name(&self) -> &str {
        self.pooler.id.as_ref().map_or("", |id| id.name.as_str())
    }

    /// True when multipooler reports itself PRIMARY and SERVING.
    pub fn is_serving_primary(&self) -> bool {
        self.pooler.r#type() == PoolerType::Primary
            && self.pooler.serving_status() == PoolerServingStatus::Serving
    }
}

/// Whether any of `live` names this pooler: its `ID.name`, its hostname, or the first DNS label
/// of its hostname (a pod's FQDN starts with the pod name).
fn is_named_by(pooler: &MultiPooler, live: &HashSet<String>) -> bool {
    let name = pooler.id.as_ref().map_or("", |id| id.name.as_str());
    let host = pooler.hostname.as_str();
    let first_label = host.split('.').next().unwrap_or_default();
    [name, host, first_label]
        .iter()
        .any(|n| !n.is_empty() && live.contains(*n))
}

/// Rejects names that would break the key layout (empty, or containing `/`).
fn validate_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(TopoError::Invalid(format!("invalid {kind} name {name:?}")));
    }
    Ok(())
}

/// Checks a Cell before it is published: components dial `server_addresses` under `root`.
pub fn validate_cell(cell: &Cell) -> Result<()> {
    validate_name("cell", &cell.name)?;
    if cell.server_addresses.iter().all(|a| a.trim().is_empty()) {
        return Err(TopoError::Invalid(format!(
            "cell {:?} has no server address",
            cell.name
        )));
    }
    if cell.root.trim_matches('/').is_empty() {
        return Err(TopoError::Invalid(format!(
            "cell {:?} has an empty root",
            cell.name
        )));
    }
    Ok(())
}

/// Checks a Database before it is published. An unset or unknown quorum type is refused:
/// multiorch cannot bootstrap a shard without one and would stall instead of failing loudly.
pub fn validate_database(db: &Database) -> Result<()> {
    validate_name("database", &db.name)?;
    let policy = db.bootstrap_durability_policy.as_ref().ok_or_else(|| {
        TopoError::Invalid(format!(
            "database {:?} has no bootstrap durability policy",
            db.name
        ))
    })?;
    match QuorumType::try_from(policy.quorum_type) {
        Ok(QuorumType::AtLeastN | QuorumType::MultiCellAtLeastN) => {}
        Ok(QuorumType::Unknown) | Err(_) => {
            return Err(TopoError::Invalid(format!(
                "database {:?}: durability policy quorum type {} is not a known quorum type \
                 (want QUORUM_TYPE_AT_LEAST_N or QUORUM_TYPE_MULTI_CELL_AT_LEAST_N)",
                db.name, policy.quorum_type
            )));
        }
    }
    if policy.required_count < 1 {
        return Err(TopoError::Invalid(format!(
            "database {:?}: durability policy required_count must be at least 1, got {}",
            db.name, policy.required_count
        )));
    }
    Ok(())
}

/// Checks a MultiPooler the way multipooler fills it: an ID with component MULTIPOOLER, a
/// cell and a name, which together form its key.
pub fn validate_pooler(pooler: &MultiPooler) -> Result<()> {
    let id = pooler
        .id
        .as_ref()
        .ok_or_else(|| TopoError::Invalid("pooler has no id".into()))?;
    if id.component() != ComponentType::Multipooler {
        return Err(TopoError::Invalid(format!(
            "pooler {:?} has component {}, want MULTIPOOLER",
            id.name, id.component
        )));
    }
    validate_name("cell", &id.cell)?;
    validate_name("pooler", &id.name)
}

impl TopoClient {
    /// Publishes `cell` at `<global_root>/cells/<name>/Cell`.
    pub async fn register_cell(&self, global_root: &str, cell: &Cell) -> Result<WriteOutcome> {
        validate_cell(cell)?;
        self.create_or_update(&cell_key(global_root, &cell.name), cell)
            .await
    }

    /// Removes a cell record. Returns whether it existed.
    pub async fn deregister_cell(&self, global_root: &str, cell_name: &str) -> Result<bool> {
        validate_name("cell", cell_name)?;
        self.delete(&cell_key(global_root, cell_name)).await
    }

    /// Publishes `db` at `<global_root>/databases/<name>/Database` after [`validate_database`].
    pub async fn register_database(
        &self,
        global_root: &str,
        db: &Database,
    ) -> Result<WriteOutcome> {
        validate_database(db)?;
        self.create_or_update(&database_key(global_root, &db.name), db)
            .await
    }

    /// Removes a database record. Returns whether it existed.
    pub async fn deregister_database(&self, global_root: &str, db_name: &str) -> Result<bool> {
        validate_name("database", db_name)?;
        self.delete(&database_key(global_root, db_name)).await
    }

    /// All pooler records under `<cell_root>/poolers/`, sorted by key. Values that do not decode
    /// (e.g. written by an incompatible multigres) are skipped with a warning: one bad record
    /// must not hide the primary from the operator.
    pub async fn list_poolers(&self, cell_root: &str) -> Result<Vec<PoolerRecord>> {
        let prefix = poolers_prefix(cell_root);
        let mut out = Vec::new();
        for entry in self.list_prefix_raw(&prefix).await? {
            if pooler_dir_of(&prefix, &entry.key).is_none() {
                continue; // not a `<dir>/Pooler` file (multigres keeps nothing else here today)
            }
            match decode::<MultiPooler>(&entry.key, &entry.value) {
                Ok(pooler) => out.push(PoolerRecord {
                    key: entry.key,
                    mod_revision: entry.mod_revision,
                    pooler,
                }),
                Err(err) => warn!(%err, "skipping undecodable pooler record"),
            }
        }
        Ok(out)
    }

    /// Deletes the pooler records of poolers that no longer exist: those not named by any entry
    /// of `live` (pod names or hostnames; see [`PoolerRecord`] matching). Each delete is
    /// conditional on the revision that was read, so a pooler that re-registers meanwhile keeps
    /// its record. Undecodable records are matched by their `multipooler-<cell>-<name>`
    /// directory instead. Returns the removed keys.
    ///
    /// `live` must be the complete set for this cell: an empty set removes every record, so
    /// callers must not pass one built from a failed or partial pod listing.
    pub async fn prune_poolers(
        &self,
        cell_root: &str,
        live: &HashSet<String>,
    ) -> Result<Vec<String>> {
        let prefix = poolers_prefix(cell_root);
        let mut removed = Vec::new();
        for entry in self.list_prefix_raw(&prefix).await? {
            let Some(dir) = pooler_dir_of(&prefix, &entry.key) else {
                continue;
            };
            let alive = match decode::<MultiPooler>(&entry.key, &entry.value) {
                Ok(pooler) => is_named_by(&pooler, live),
                Err(_) => live
                    .iter()
                    .any(|n| !n.is_empty() && dir.ends_with(&format!("-{n}"))),
            };
            if !alive
                && self
                    .delete_if_unchanged(&entry.key, entry.mod_revision)
                    .await?
            {
                removed.push(entry.key);
            }
        }
        Ok(removed)
    }

    /// Writes `pooler` exactly where multipooler registers itself. Meant for data-plane
    /// simulators in tests; in a real cluster multipooler owns these records.
    pub async fn write_pooler(
        &self,
        cell_root: &str,
        pooler: &MultiPooler,
    ) -> Result<WriteOutcome> {
        validate_pooler(pooler)?;
        let id = pooler
            .id
            .as_ref()
            .ok_or_else(|| TopoError::Invalid("pooler has no id".into()))?;
        self.create_or_update(&pooler_key(cell_root, &id.cell, &id.name), pooler)
            .await
    }
}
