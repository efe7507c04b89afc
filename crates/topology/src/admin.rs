//! multiadmin, as the operator calls it:
//! - a planned switchover: the shard's primary quiesces writes and restarts as a standby, and
//!   multiorch elects a new primary through its normal consensus flow. The call returns once the
//!   old primary is quiesced; the caller watches the topology for the new one;
//! - backups: start one (multiadmin answers with a job id at once), follow the job, and list the
//!   repository's backups for their size and times.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::admin_pb::multiadmin_service_client::MultiadminServiceClient;
pub use crate::admin_pb::{BackupInfo, BackupStatus, JobStatus};
use crate::admin_pb::{
    BackupRequest, ExpireBackupsRequest, GetBackupJobStatusRequest, GetBackupsRequest,
    SwitchPrimaryRequest,
};
use crate::{AddressMapping, ShardKey};

/// Why a call to multiadmin did nothing.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// multiadmin could not be reached in time; nothing happened.
    #[error("multiadmin at {address} unreachable: {reason}")]
    Unreachable { address: String, reason: String },
    /// multiadmin refused or failed (no primary, no standby, resign failed, no replica to back up).
    #[error("multiadmin refused ({code:?}): {message}")]
    Refused { code: tonic::Code, message: String },
}

/// multiadmin at `address` (`host:port`, rewritten by `mapping`), every call bounded by `timeout`.
pub struct Multiadmin {
    address: String,
    client: MultiadminServiceClient<Channel>,
}

impl Multiadmin {
    pub async fn connect(
        address: &str,
        mapping: &AddressMapping,
        timeout: Duration,
    ) -> Result<Multiadmin, AdminError> {
        let unreachable = |reason: String| AdminError::Unreachable {
            address: address.to_string(),
            reason,
        };
        // With a mapping the request still names multiadmin's own address (`:authority`), as it
        // would through a proxy.
        let origin = format!("http://{address}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| unreachable(e.to_string()))?;
        let endpoint = Endpoint::from_shared(format!("http://{}", mapping.apply(address)))
            .map_err(|e| unreachable(e.to_string()))?
            .origin(origin)
            .connect_timeout(timeout)
            .timeout(timeout);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Multiadmin {
            address: address.to_string(),
            client: MultiadminServiceClient::new(channel),
        })
    }

    fn error(&self, status: tonic::Status) -> AdminError {
        match status.code() {
            tonic::Code::Unavailable => AdminError::Unreachable {
                address: self.address.clone(),
                reason: status.message().to_string(),
            },
            code => AdminError::Refused {
                code,
                message: status.message().to_string(),
            },
        }
    }

    /// Moves the primary of `shard` away. Returns the service id of the pooler that was demoted.
    pub async fn switch_primary(
        &mut self,
        shard: ShardKey,
        reason: &str,
    ) -> Result<String, AdminError> {
        let request = SwitchPrimaryRequest {
            shard_key: Some(shard),
            reason: reason.to_string(),
        };
        match self.client.switch_primary(request).await {
            Ok(response) => Ok(response
                .into_inner()
                .old_leader_id
                .map(|id| id.name)
                .unwrap_or_default()),
            Err(status) => Err(self.error(status)),
        }
    }

    /// Starts a backup of `shard` (`kind`: full, differential or incremental); returns the job id.
    pub async fn backup(
        &mut self,
        shard: &ShardKey,
        kind: &str,
        force_primary: bool,
    ) -> Result<String, AdminError> {
        let request = BackupRequest {
            database: shard.database.clone(),
            table_group: shard.table_group.clone(),
            shard: shard.shard.clone(),
            r#type: kind.to_string(),
            force_primary,
        };
        match self.client.backup(request).await {
            Ok(response) => Ok(response.into_inner().job_id),
            Err(status) => Err(self.error(status)),
        }
    }

    /// Where backup job `job_id` of `shard` stands: its status, the backup id once completed, and
    /// the error once failed.
    pub async fn backup_job(
        &mut self,
        shard: &ShardKey,
        job_id: &str,
    ) -> Result<BackupJob, AdminError> {
        let request = GetBackupJobStatusRequest {
            job_id: job_id.to_string(),
            database: shard.database.clone(),
            table_group: shard.table_group.clone(),
            shard: shard.shard.clone(),
        };
        match self.client.get_backup_job_status(request).await {
            Ok(response) => {
                let job = response.into_inner();
                Ok(BackupJob {
                    status: job.status(),
                    backup_id: job.backup_id,
                    error: job.error_message,
                })
            }
            Err(status) => Err(self.error(status)),
        }
    }

    /// The backups of `shard` in its repository.
    pub async fn backups(&mut self, shard: &ShardKey) -> Result<Vec<BackupInfo>, AdminError> {
        let request = GetBackupsRequest {
            database: shard.database.clone(),
            table_group: shard.table_group.clone(),
            shard: shard.shard.clone(),
            limit: 0,
        };
        match self.client.get_backups(request).await {
            Ok(response) => Ok(response.into_inner().backups),
            Err(status) => Err(self.error(status)),
        }
    }
}

impl Multiadmin {
    /// Expires the backups of `shard` beyond `full` full backups (pgBackRest's
    /// `repo1-retention-full`); returns the ids expired.
    pub async fn expire_backups(
        &mut self,
        shard: &ShardKey,
        full: u32,
    ) -> Result<Vec<String>, AdminError> {
        let request = ExpireBackupsRequest {
            database: shard.database.clone(),
            table_group: shard.table_group.clone(),
            shard: shard.shard.clone(),
            overrides: [("repo1-retention-full".to_string(), full.to_string())].into(),
        };
        match self.client.expire_backups(request).await {
            Ok(response) => Ok(response.into_inner().expired_backup_ids),
            Err(status) => Err(self.error(status)),
        }
    }
}

/// A backup job as multiadmin reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupJob {
    pub status: JobStatus,
    pub backup_id: String,
    pub error: String,
}

/// Asks multiadmin at `address` to move the primary of `shard` away. Returns the service id of
/// the pooler that was demoted.
pub async fn switch_primary(
    address: &str,
    mapping: &AddressMapping,
    shard: ShardKey,
    reason: &str,
    timeout: Duration,
) -> Result<String, AdminError> {
    Multiadmin::connect(address, mapping, timeout)
        .await?
        .switch_primary(shard, reason)
        .await
}
