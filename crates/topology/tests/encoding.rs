//! Wire-format checks against hand-computed protobuf bytes, so a schema edit that would make the
//! operator disagree with multigres (field number, type, enum value) fails here.

use std::collections::BTreeMap;

use multigres_topology::pb::backup_location::Location;
use multigres_topology::pb::id::ComponentType;
use multigres_topology::{
    BackupLocation, Cell, Database, DurabilityPolicy, FilesystemBackup, Id, MultiPooler,
    PoolerLifecycle, PoolerLifecycleStatus, PoolerServingStatus, PoolerType, QuorumType,
    RoutingRole, RoutingState, RuleNumber, S3Backup, ShardKey,
};
use prost::Message;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(text, 16).expect("hex digit pair")
        })
        .collect()
}

fn check<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, expected_hex: &str) {
    let expected = hex(expected_hex);
    assert_eq!(msg.encode_to_vec(), expected, "encoding of {msg:?}");
    assert_eq!(&M::decode(expected.as_slice()).expect("decodes"), msg);
}

#[test]
fn cell_bytes() {
    let cell = Cell {
        name: "us-east-1".into(),
        server_addresses: vec!["a:2379".into()],
        root: "/multigres/global/us-east-1".into(),
    };
    check(
        &cell,
        "0a09 75732d656173742d31
         1206 613a32333739
         1a1b 2f6d756c7469677265732f676c6f62616c2f75732d656173742d31",
    );
}

#[test]
fn database_bytes() {
    let db = Database {
        name: "postgres".into(),
        backup_location: Some(BackupLocation {
            location: Some(Location::Filesystem(FilesystemBackup {
                path: "/backups".into(),
            })),
            ..Default::default()
        }),
        cells: vec!["z1".into(), "z2".into()],
        bootstrap_durability_policy: Some(DurabilityPolicy {
            policy_name: "AT_LEAST_2".into(),
            policy_version: 1,
            quorum_type: QuorumType::AtLeastN.into(),
            required_count: 2,
            description: String::new(),
        }),
    };
    check(
        &db,
        "0a08 706f737467726573
         120c 0a0a 0a08 2f6261636b757073
         1a02 7a31
         1a02 7a32
         2212 0a0a 41545f4c454153545f32 1001 1803 2002",
    );
}

#[test]
#[allow(deprecated)] // the deprecated `type` is part of the wire format checked here
fn multipooler_bytes() {
    let pooler = MultiPooler {
        id: Some(Id {
            component: ComponentType::Multipooler.into(),
            cell: "z1".into(),
            name: "p0".into(),
        }),
        shard_key: Some(ShardKey {
            database: "postgres".into(),
            table_group: "default".into(),
            shard: "0-inf".into(),
        }),
        key_range: None,
        r#type: PoolerType::Primary.into(),
        serving_status: PoolerServingStatus::Serving.into(),
        hostname: "p0.ns".into(),
        port_map: BTreeMap::from([("grpc".to_owned(), 15270)]),
        pooler_dir: String::new(),
        pg_data_dir: String::new(),
        lifecycle_status: None,
        routing_state: None,
    };
    check(
        &pooler,
        "0a0a 0801 1202 7a31 1a02 7030
         121a 0a08 706f737467726573 1207 64656661756c74 1a05 302d696e66
         3001
         4205 70302e6e73
         4a09 0a04 67727063 10a677",
    );
}

#[test]
fn backup_location_bytes() {
    let s3 = BackupLocation {
        location: Some(Location::S3(S3Backup {
            bucket: "b".into(),
            region: "r".into(),
            endpoint: String::new(),
            key_prefix: "k/".into(),
            use_env_credentials: true,
        })),
        require_initial_repo_encryption: true,
        authoritative_generation: 1,
    };
    check(&s3, "120c 0a0162 120172 22026b2f 2801 1801 2001");
}

/// A primary as the pinned multipooler publishes it while it drains for a demotion: routing
/// role PRIMARY with its rule, lifecycle ACTIVE, serving status DRAINING.
#[test]
fn draining_primary_bytes() {
    let pooler = MultiPooler {
        id: Some(Id {
            component: ComponentType::Multipooler.into(),
            cell: "z1".into(),
            name: "p0".into(),
        }),
        serving_status: PoolerServingStatus::Draining.into(),
        lifecycle_status: Some(PoolerLifecycle {
            status: PoolerLifecycleStatus::LifecycleActive.into(),
            reason: "a".into(),
            updated: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
        }),
        routing_state: Some(RoutingState {
            role: RoutingRole::Primary.into(),
            rule: Some(RuleNumber {
                coordinator_term: 3,
                leader_subterm: 1,
            }),
        }),
        ..Default::default()
    };
    check(
        &pooler,
        "0a0a 0801 1202 7a31 1a02 7030
         3804
         6209 0802 120161 1a020801
         6a08 0801 1204 0803 1001",
    );
    let record = multigres_topology::PoolerRecord {
        key: String::new(),
        mod_revision: 0,
        pooler,
    };
    assert_eq!(record.role(), multigres_topology::PoolerRole::Primary);
    assert!(!record.is_serving_primary());
}

#[test]
#[allow(deprecated)] // PoolerType and its DRAINED value are deprecated upstream
fn enum_values_match_upstream() {
    assert_eq!(QuorumType::Unknown as i32, 0);
    assert_eq!(QuorumType::AtLeastN as i32, 3);
    assert_eq!(QuorumType::MultiCellAtLeastN as i32, 4);
    assert_eq!(PoolerType::Unknown as i32, 0);
    assert_eq!(PoolerType::Primary as i32, 1);
    assert_eq!(PoolerType::Replica as i32, 2);
    assert_eq!(PoolerType::Drained as i32, 3);
    assert_eq!(PoolerServingStatus::Serving as i32, 0);
    assert_eq!(PoolerServingStatus::Disabled as i32, 1);
    assert_eq!(PoolerServingStatus::Draining as i32, 4);
    assert_eq!(PoolerLifecycleStatus::LifecycleUnknown as i32, 0);
    assert_eq!(PoolerLifecycleStatus::LifecycleStarting as i32, 1);
    assert_eq!(PoolerLifecycleStatus::LifecycleActive as i32, 2);
    assert_eq!(PoolerLifecycleStatus::LifecycleStopping as i32, 3);
    assert_eq!(PoolerLifecycleStatus::LifecycleShutdown as i32, 4);
    assert_eq!(PoolerLifecycleStatus::LifecycleQuarantined as i32, 5);
    assert_eq!(RoutingRole::Unknown as i32, 0);
    assert_eq!(RoutingRole::Primary as i32, 1);
    assert_eq!(RoutingRole::Replica as i32, 2);
    assert_eq!(ComponentType::Multipooler as i32, 1);
}

#[test]
fn garbage_does_not_panic() {
    for bytes in [
        &[0xffu8, 0xff, 0xff][..],
        &[0x0a, 0x09, b'x'][..],
        &[0x08][..],
    ] {
        assert!(Cell::decode(bytes).is_err());
        assert!(MultiPooler::decode(bytes).is_err());
    }
}
