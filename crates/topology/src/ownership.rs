//! Which operator-managed cluster wrote a Database record. A cluster never acts on records it did not
//! write: another cluster's (sharing an external etcd and root) or one written by hand are neither
//! overwritten nor deleted. The marker lives outside the layout Multigres reads
//! (`<root>/multigres-operator/owners/databases/<db>`), so Multigres never sees it.

use crate::client::{TopoClient, WriteOutcome};
use crate::keys::{database_key, join};
use crate::pb::Database;
use crate::records::validate_database;
use crate::{Result, TopoError};

/// `<global root>/multigres-operator/owners/databases/<db>`.
pub fn database_owner_key(global_root: &str, db: &str) -> String {
    join(
        global_root,
        &["multigres-operator", "owners", "databases", db],
    )
}

/// The outcome of a registration or a deregistration by one owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The record is this owner's: it was written (or found as desired) or deleted.
    Ours(WriteOutcome),
    /// Someone else's record: nothing was written. Names the owner, or says it has none.
    Foreign(String),
}

impl TopoClient {
    /// Registers `db` as `owner` (e.g. `<namespace>/<cluster>/<uid>`). A record without a marker is
    /// adopted only when `adopt_unmarked` (this owner wrote it before markers existed); otherwise a
    /// present record belongs to someone else and is left alone.
    pub async fn register_database_as(
        &self,
        global_root: &str,
        db: &Database,
        owner: &str,
        adopt_unmarked: bool,
    ) -> Result<Claim> {
        validate_database(db)?;
        let marker = database_owner_key(global_root, &db.name);
        match self.get_raw(&marker).await? {
            Some(entry) if entry.value != owner.as_bytes() => {
                return Ok(Claim::Foreign(String::from_utf8_lossy(&entry.value).into()));
            }
            Some(_) => {}
            None => {
                let record = database_key(global_root, &db.name);
                if !adopt_unmarked && self.get_raw(&record).await?.is_some() {
                    return Ok(Claim::Foreign("a writer that left no owner marker".into()));
                }
                if !self.create_raw(&marker, owner.as_bytes().to_vec()).await? {
                    return Err(TopoError::Conflict { key: marker });
                }
            }
        }
        let outcome = self
            .create_or_update(&database_key(global_root, &db.name), db)
            .await?;
        Ok(Claim::Ours(outcome))
    }

    /// Deletes the record of `db` and its marker, only if `owner` holds it (or, with
    /// `adopt_unmarked`, if it has no marker).
    pub async fn deregister_database_as(
        &self,
        global_root: &str,
        db_name: &str,
        owner: &str,
        adopt_unmarked: bool,
    ) -> Result<Claim> {
        let marker = database_owner_key(global_root, db_name);
        match self.get_raw(&marker).await? {
            Some(entry) if entry.value != owner.as_bytes() => {
                return Ok(Claim::Foreign(String::from_utf8_lossy(&entry.value).into()));
            }
            None if !adopt_unmarked => {
                return Ok(Claim::Foreign("a writer that left no owner marker".into()));
            }
            _ => {}
        }
        let existed = self.deregister_database(global_root, db_name).await?;
        self.delete(&marker).await?;
        Ok(Claim::Ours(if existed {
            WriteOutcome::Updated
        } else {
            WriteOutcome::Unchanged
        }))
    }
}
