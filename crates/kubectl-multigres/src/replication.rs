//! Replication per Shard, as `status` shows it: which pool pod's postgres is the primary, and how
//! far each standby's replay is behind it. Pure: the poolers' answers in, a verdict out.
//!
//! The answers are multiadmin's `GetPoolerStatus` (REST `GET /api/v1/poolers/{cell}/{name}/status`,
//! canonical proto3 JSON). The pinned Multigres never fills `replicationStatus.lag`, so the lag
//! is the primary's WAL position minus the standby's replay position, in bytes
//! (docs/operations.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A standby this far behind (or not streaming at all) is shown as lagging; one WAL segment.
pub const DEFAULT_MAX_LAG_BYTES: u64 = 16 * 1024 * 1024;

/// multiadmin's `GetPoolerStatusResponse`, the fields `status` reads.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PoolerStatusResponse {
    pub status: PoolerStatus,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PoolerStatus {
    /// `POSTGRES_STATUS_PRIMARY`, `POSTGRES_STATUS_STANDBY`, ...: what postgres is right now.
    pub postgres_status: String,
    /// `PRIMARY` or `REPLICA`: the role the pooler publishes (may trail a transition).
    pub pooler_type: String,
    pub postgres_ready: bool,
    pub wal_position: String,
    pub primary_status: Option<PrimaryStatus>,
    pub replication_status: Option<StandbyStatus>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PrimaryStatus {
    pub lsn: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct StandbyStatus {
    pub last_replay_lsn: String,
    pub last_receive_lsn: String,
    pub is_wal_replay_paused: bool,
    /// `pg_stat_wal_receiver.status`; empty when no WAL receiver runs.
    pub wal_receiver_status: String,
}

impl PoolerStatus {
    fn is_primary(&self) -> bool {
        match self.postgres_status.as_str() {
            "POSTGRES_STATUS_PRIMARY" => true,
            "POSTGRES_STATUS_STANDBY" => false,
            _ => self.primary_status.is_some() || self.pooler_type == "PRIMARY",
        }
    }

    fn primary_lsn(&self) -> Option<u64> {
        self.primary_status
            .as_ref()
            .and_then(|p| parse_lsn(&p.lsn))
            .or_else(|| parse_lsn(&self.wal_position))
    }
}

/// A PostgreSQL LSN (`X/XXXXXXXX`, two hex halves) as a byte position.
pub fn parse_lsn(lsn: &str) -> Option<u64> {
    let (high, low) = lsn.split_once('/')?;
    let high = u64::from_str_radix(high, 16).ok()?;
    let low = u64::from_str_radix(low, 16).ok()?;
    (high <= u64::from(u32::MAX) && low <= u64::from(u32::MAX)).then_some(high << 32 | low)
}

/// What one pool pod's pooler answered, or why it did not.
pub type Answer = Result<PoolerStatus, String>;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardReplication {
    /// The pod whose postgres is the primary; none when no pooler says so (or more than one does).
    pub primary: Option<String>,
    pub primary_lsn: Option<String>,
    pub standbys: Vec<Standby>,
    /// Pods whose pooler did not answer, with the reason.
    pub unreachable: BTreeMap<String, String>,
    /// Why no standby's lag could be measured, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Standby {
    pub pod: String,
    pub replay_lsn: String,
    /// Bytes of WAL the primary has and this standby has not replayed.
    pub replay_lag_bytes: Option<u64>,
    /// `streaming`, or what the WAL receiver is doing instead (`none` when it is not running).
    pub wal_receiver: String,
    pub lagging: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ShardReplication {
    pub fn lagging(&self) -> impl Iterator<Item = &Standby> {
        self.standbys.iter().filter(|s| s.lagging)
    }
}

/// The verdict for one Shard from its pool pods' answers (by pod name).
pub fn assess(answers: &BTreeMap<String, Answer>, max_lag_bytes: u64) -> ShardReplication {
    let mut out = ShardReplication::default();
    let mut primaries = Vec::new();
    let mut standbys = Vec::new();
    for (pod, answer) in answers {
        match answer {
            Err(error) => {
                out.unreachable.insert(pod.clone(), error.clone());
            }
            Ok(status) if status.is_primary() => primaries.push((pod, status)),
            Ok(status) => standbys.push((pod, status)),
        }
    }
    let primary_lsn = match primaries.as_slice() {
        [(pod, status)] => {
            out.primary = Some((*pod).clone());
            let lsn = status.primary_lsn();
            out.primary_lsn = lsn.map(format_lsn);
            if lsn.is_none() {
                out.unknown = Some(format!("primary {pod} reports no WAL position"));
            }
            lsn
        }
        [] => {
            out.unknown = Some("no pooler reports a primary".into());
            None
        }
        many => {
            let pods: Vec<&str> = many.iter().map(|(p, _)| p.as_str()).collect();
            out.unknown = Some(format!("more than one primary: {}", pods.join(", ")));
            None
        }
    };
    out.standbys = standbys
        .into_iter()
        .map(|(pod, status)| standby(pod, status, primary_lsn, max_lag_bytes))
        .collect();
    out
}

fn standby(pod: &str, status: &PoolerStatus, primary_lsn: Option<u64>, max: u64) -> Standby {
    let replication = status.replication_status.clone().unwrap_or_default();
    let replay = parse_lsn(&replication.last_replay_lsn);
    let lag = primary_lsn
        .zip(replay)
        .map(|(primary, replay)| primary.saturating_sub(replay));
    let wal_receiver = match replication.wal_receiver_status.as_str() {
        "" => "none".to_string(),
        s => s.to_string(),
    };
    let reason = if status.replication_status.is_none() {
        Some("postgres is not answering (no replication status)".to_string())
    } else if replication.is_wal_replay_paused {
        Some("WAL replay is paused".to_string())
    } else if wal_receiver != "streaming" {
        Some(format!("WAL receiver is {wal_receiver}, not streaming"))
    } else {
        lag.filter(|l| *l > max)
            .map(|l| format!("{} behind the primary", bytes(l)))
    };
    Standby {
        pod: pod.to_string(),
        replay_lsn: replication.last_replay_lsn,
        replay_lag_bytes: lag,
        wal_receiver,
        lagging: reason.is_some(),
        reason,
    }
}

pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Bytes for a terminal: `512 B`, `3.0 MiB`, `1.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests;
