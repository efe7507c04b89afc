//! Typed helpers for the records the operator owns (Cell, Database) and the ones it only
//! observes and garbage-collects (MultiPooler).

use std::collections::HashSet;

use tracing::warn;

use crate::client::decode;
use crate::keys::{cell_key, database_key, pooler_dir_of, pooler_key, poolers_prefix};
use crate::pb::PoolerLifecycleStatus;
use crate::pb::backup_location::Location;
use crate::pb::id::ComponentType;
use crate::primary::{self, PoolerRole};
use crate::{
    BackupLocation, Cell, Database, MultiPooler, QuorumType, Result, TopoClient, TopoError,
    WriteOutcome,
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
    /// The pooler's `ID.name`: its multipooler `--service-id`, which is not the pod name (map a
    /// record to its pod with [`LivePoolers`] or by [`PoolerRecord::host_label`]).
    pub fn name(&self) -> &str {
        self.pooler.id.as_ref().map_or("", |id| id.name.as_str())
    }

    /// The cell in the pooler's ID.
    pub fn cell(&self) -> &str {
        self.pooler.id.as_ref().map_or("", |id| id.cell.as_str())
    }

    /// The first DNS label of the hostname (a pod's DNS name starts with the pod name).
    pub fn host_label(&self) -> &str {
        self.pooler.hostname.split('.').next().unwrap_or_default()
    }

    /// The pooler's role: `routing_state.role`, the deprecated `type` only without it.
    pub fn role(&self) -> PoolerRole {
        primary::pooler_role(&self.pooler)
    }

    /// The lifecycle status; `None` for a value this operator does not know.
    pub fn lifecycle(&self) -> Option<PoolerLifecycleStatus> {
        primary::pooler_lifecycle(&self.pooler)
    }

    /// True only for serving status SERVING (DRAINING and DISABLED are not serving).
    pub fn is_serving(&self) -> bool {
        primary::is_serving(&self.pooler)
    }

    /// True when the pooler claims PRIMARY, is SERVING and is neither stopping, shut down nor
    /// quarantined. Which of several claimants is the primary is [`crate::shard_primary`]'s job.
    pub fn is_serving_primary(&self) -> bool {
        primary::is_serving_primary(&self.pooler)
    }
}

/// The poolers that may keep their records, named the two ways a record can be traced to its
/// pod: the multipooler service id (`ID.name`), or the pod's name as the hostname or its first
/// DNS label. A record's `ID.name` is never compared with a pod name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LivePoolers {
    /// Service ids (`ID.name`) of live poolers.
    pub service_ids: HashSet<String>,
    /// Pod names (or full hostnames) of live poolers.
    pub hosts: HashSet<String>,
}

impl LivePoolers {
    /// Whether any live pooler is the one that wrote `pooler`.
    pub fn names(&self, pooler: &MultiPooler) -> bool {
        let name = pooler.id.as_ref().map_or("", |id| id.name.as_str());
        let host = pooler.hostname.as_str();
        let first_label = host.split('.').next().unwrap_or_default();
        (!name.is_empty() && self.service_ids.contains(name))
            || [host, first_label]
                .iter()
                .any(|h| !h.is_empty() && self.hosts.contains(*h))
    }

    /// Whether the `multipooler-<cell>-<service id>` directory of a record that does not decode
    /// belongs to a live pooler.
    fn names_dir(&self, dir: &str) -> bool {
        self.service_ids
            .iter()
            .any(|id| !id.is_empty() && dir.ends_with(&format!("-{id}")))
    }
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
/// multiorch cannot bootstrap a shard without one and would stall instead of failing loudly. A
/// missing or incomplete backup location is refused too: multipooler will not start without one.
pub fn validate_database(db: &Database) -> Result<()> {
    validate_name("database", &db.name)?;
    let backup = db.backup_location.as_ref().ok_or_else(|| {
        TopoError::Invalid(format!("database {:?} has no backup location", db.name))
    })?;
    validate_backup_location(&db.name, backup)?;
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

/// The checks the pinned multipooler makes before it serves (a filesystem location needs a path,
/// an S3 one a bucket and a region; only the first repository generation, 0 or 1, exists), with
/// the filesystem path also required to be absolute, as the field is defined.
fn validate_backup_location(db: &str, backup: &BackupLocation) -> Result<()> {
    let invalid = |what: String| Err(TopoError::Invalid(format!("database {db:?}: {what}")));
    match &backup.location {
        None => return invalid("backup location names neither a filesystem nor S3".into()),
        Some(Location::Filesystem(fs)) if !fs.path.starts_with('/') => {
            return invalid(format!(
                "filesystem backup path {:?} is not an absolute path",
                fs.path
            ));
        }
        Some(Location::S3(s3)) if s3.bucket.is_empty() || s3.region.is_empty() => {
            return invalid("S3 backup location needs a bucket and a region".into());
        }
        Some(_) => {}
    }
    if !(0..=1).contains(&backup.authoritative_generation) {
        return invalid(format!(
            "backup authoritative_generation {} is not supported (only 0 or 1)",
            backup.authoritative_generation
        ));
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

    /// Deletes the pooler records of poolers that no longer exist: those `live` does not name
    /// (see [`LivePoolers`]). Each delete is conditional on the revision that was read, so a
    /// pooler that re-registers meanwhile keeps its record. Undecodable records are matched by
    /// their `multipooler-<cell>-<service id>` directory instead. Returns the removed keys.
    ///
    /// `live` must be complete for this cell: an empty one removes every record, so callers
    /// must not build it from a failed or partial pod listing.
    pub async fn prune_poolers(&self, cell_root: &str, live: &LivePoolers) -> Result<Vec<String>> {
        let prefix = poolers_prefix(cell_root);
        let mut removed = Vec::new();
        for entry in self.list_prefix_raw(&prefix).await? {
            let Some(dir) = pooler_dir_of(&prefix, &entry.key) else {
                continue;
            };
            let alive = match decode::<MultiPooler>(&entry.key, &entry.value) {
                Ok(pooler) => live.names(&pooler),
                Err(_) => live.names_dir(dir),
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
