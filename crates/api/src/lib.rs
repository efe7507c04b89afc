//! The Multigres operator's API: CRD types and everything pure about them (defaults, template
//! resolution, naming, labels). No I/O: controllers fetch and apply, this crate decides.

pub mod backup;
pub mod cell;
pub mod cluster;
pub mod common;
pub mod crd;
pub mod cron;
pub mod docs;
pub mod labels;
pub mod multigres;
pub mod naming;
pub mod quantity;
pub mod resolve;
pub mod scheduling;
pub mod shard;
pub mod tablegroup;
pub mod template;
pub mod toposerver;

pub use backup::{
    Backup, BackupConfig, BackupEncryption, BackupPhase, BackupRetention, BackupSpec, BackupStatus,
    BackupTarget, BackupType, FilesystemRepository, LastBackup, S3Credentials, S3Repository,
    ScheduledBackup, ScheduledBackupSpec, ScheduledBackupStatus, SecretKey, ShardBackup,
};
pub use cell::{Cell, CellSpec, CellStatus};
pub use cluster::{MultigresCluster, MultigresClusterSpec, MultigresClusterStatus};
pub use common::*;
pub use scheduling::{LogFormat, LogLevel, Logging, PodScheduling};
pub use shard::{LastSwitchover, Shard, ShardSpec, ShardStatus, SwitchoverResult};
pub use tablegroup::{TableGroup, TableGroupSpec, TableGroupStatus};
pub use template::{DeploymentTemplate, DeploymentTemplateSpec, DeploymentTemplateStatus};
pub use toposerver::{TopoServer, TopoServerSpec, TopoServerStatus, TopoServerTls};

/// API group of every kind.
pub const GROUP: &str = "multigres.com";
