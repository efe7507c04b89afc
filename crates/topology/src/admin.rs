//! multiadmin's planned switchover: the shard's primary quiesces writes and restarts as a standby,
//! and multiorch elects a new primary through its normal consensus flow. The call returns once the
//! old primary is quiesced; the caller watches the topology for the new one.

use std::time::Duration;

use tonic::transport::Endpoint;

use crate::admin_pb::SwitchPrimaryRequest;
use crate::admin_pb::multiadmin_service_client::MultiadminServiceClient;
use crate::{AddressMapping, ShardKey};

/// Why a switchover was not started.
#[derive(Debug, thiserror::Error)]
pub enum SwitchoverError {
    /// multiadmin could not be reached in time; nothing happened.
    #[error("multiadmin at {address} unreachable: {reason}")]
    Unreachable { address: String, reason: String },
    /// multiadmin refused or failed (no primary, no standby, resign failed).
    #[error("multiadmin refused the switchover ({code:?}): {message}")]
    Refused { code: tonic::Code, message: String },
}

/// Asks multiadmin at `address` (`host:port`, rewritten by `mapping`) to move the primary of
/// `shard` away. Returns the service id of the pooler that was demoted.
pub async fn switch_primary(
    address: &str,
    mapping: &AddressMapping,
    shard: ShardKey,
    reason: &str,
    timeout: Duration,
) -> Result<String, SwitchoverError> {
    let unreachable = |reason: String| SwitchoverError::Unreachable {
        address: address.to_string(),
        reason,
    };
    // With a mapping the request still names multiadmin's own address (`:authority`), as it would
    // through a proxy.
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
    let request = SwitchPrimaryRequest {
        shard_key: Some(shard),
        reason: reason.to_string(),
    };
    match MultiadminServiceClient::new(channel)
        .switch_primary(request)
        .await
    {
        Ok(response) => Ok(response
            .into_inner()
            .old_leader_id
            .map(|id| id.name)
            .unwrap_or_default()),
        Err(status) if matches!(status.code(), tonic::Code::Unavailable) => {
            Err(unreachable(status.message().to_string()))
        }
        Err(status) => Err(SwitchoverError::Refused {
            code: status.code(),
            message: status.message().to_string(),
        }),
    }
}
