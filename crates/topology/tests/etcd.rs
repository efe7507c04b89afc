//! Integration tests against a real etcd process.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Etcd, TIMEOUT};
use multigres_topology::pb::backup_location::Location;
use multigres_topology::pb::id::ComponentType;
use multigres_topology::{
    AddressMapping, BackupLocation, Cell, Database, DurabilityPolicy, FilesystemBackup, Id,
    LivePoolers, MultiPooler, PoolerChange, PoolerServingStatus, PoolerWatches, QuorumType,
    RoutingRole, RoutingState, ShardKey, ShardPrimary, TopoClient, TopoError, Transport, WatchKey,
    WriteOutcome, cell_key, cell_root_on_global, database_key, pooler_key, poolers_prefix,
    shard_primary,
};
use tokio::sync::mpsc::UnboundedReceiver;

const ROOT: &str = "/multigres/global/";

fn cell(name: &str, addr: &str) -> Cell {
    Cell {
        name: name.into(),
        server_addresses: vec![addr.into()],
        root: cell_root_on_global(ROOT, name),
    }
}

fn database(quorum: QuorumType) -> Database {
    Database {
        name: "postgres".into(),
        backup_location: Some(BackupLocation {
            location: Some(Location::Filesystem(FilesystemBackup {
                path: "/backups".into(),
            })),
            ..Default::default()
        }),
        cells: vec!["z1".into()],
        bootstrap_durability_policy: Some(DurabilityPolicy {
            policy_name: "AT_LEAST_2".into(),
            policy_version: 1,
            quorum_type: quorum.into(),
            required_count: 2,
            description: "two nodes".into(),
        }),
    }
}

fn pooler(cell: &str, name: &str, role: RoutingRole, host: &str) -> MultiPooler {
    MultiPooler {
        id: Some(Id {
            component: ComponentType::Multipooler.into(),
            cell: cell.into(),
            name: name.into(),
        }),
        shard_key: Some(ShardKey {
            database: "postgres".into(),
            table_group: "default".into(),
            shard: "0-inf".into(),
        }),
        serving_status: PoolerServingStatus::Serving.into(),
        routing_state: Some(RoutingState {
            role: role.into(),
            rule: None,
        }),
        hostname: host.into(),
        port_map: BTreeMap::from([("grpc".to_owned(), 15270)]),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_unchanged_update() {
    let etcd = Etcd::start().await;
    let topo = common::client(&etcd).await;

    let c = cell("z1", "etcd:2379");
    assert_eq!(
        topo.register_cell(ROOT, &c).await.unwrap(),
        WriteOutcome::Created
    );

    let rev = topo.revision().await.unwrap();
    assert_eq!(
        topo.register_cell(ROOT, &c).await.unwrap(),
        WriteOutcome::Unchanged
    );
    assert_eq!(
        topo.revision().await.unwrap(),
        rev,
        "a no-op must not write"
    );

    let changed = cell("z1", "etcd-2:2379");
    assert_eq!(
        topo.register_cell(ROOT, &changed).await.unwrap(),
        WriteOutcome::Updated
    );
    let (stored, mod_rev) = topo
        .get::<Cell>(&cell_key(ROOT, "z1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, changed);
    assert!(mod_rev > rev);

    assert!(topo.deregister_cell(ROOT, "z1").await.unwrap());
    assert!(!topo.deregister_cell(ROOT, "z1").await.unwrap());
    assert!(
        topo.get::<Cell>(&cell_key(ROOT, "z1"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn database_refuses_unknown_quorum() {
    let etcd = Etcd::start().await;
    let topo = common::client(&etcd).await;
    let key = database_key(ROOT, "postgres");

    let err = topo
        .register_database(ROOT, &database(QuorumType::Unknown))
        .await
        .unwrap_err();
    assert!(matches!(err, TopoError::Invalid(_)), "{err}");
    let mut no_policy = database(QuorumType::AtLeastN);
    no_policy.bootstrap_durability_policy = None;
    let err = topo.register_database(ROOT, &no_policy).await.unwrap_err();
    assert!(matches!(err, TopoError::Invalid(_)), "{err}");
    // multipooler refuses a Database without a usable backup location: so does the operator.
    let mut no_backup = database(QuorumType::AtLeastN);
    no_backup.backup_location = None;
    let mut relative = database(QuorumType::AtLeastN);
    relative.backup_location = Some(BackupLocation {
        location: Some(Location::Filesystem(FilesystemBackup {
            path: "backups".into(),
        })),
        ..Default::default()
    });
    let mut later_generation = database(QuorumType::AtLeastN);
    if let Some(b) = later_generation.backup_location.as_mut() {
        b.authoritative_generation = 2;
    }
    for db in [no_backup, relative, later_generation] {
        let err = topo.register_database(ROOT, &db).await.unwrap_err();
        assert!(matches!(err, TopoError::Invalid(_)), "{err}");
    }
    assert!(
        topo.get::<Database>(&key).await.unwrap().is_none(),
        "nothing written"
    );

    let db = database(QuorumType::AtLeastN);
    assert_eq!(
        topo.register_database(ROOT, &db).await.unwrap(),
        WriteOutcome::Created
    );
    assert_eq!(
        topo.register_database(ROOT, &db).await.unwrap(),
        WriteOutcome::Unchanged
    );
    let listed: Vec<(String, Database)> = topo
        .list_prefix("/multigres/global/databases/")
        .await
        .unwrap();
    assert_eq!(listed, vec![(key.clone(), db)]);
    assert!(topo.deregister_database(ROOT, "postgres").await.unwrap());
}

#[tokio::test]
async fn concurrent_modification_is_detected() {
    let etcd = Etcd::start().await;
    let topo = common::client(&etcd).await;
    let key = cell_key(ROOT, "z1");

    topo.create_or_update(&key, &cell("z1", "a:1"))
        .await
        .unwrap();
    let (_, read_rev) = topo.get::<Cell>(&key).await.unwrap().unwrap();
    // Someone else writes after our read.
    let other = common::client(&etcd).await;
    assert_eq!(
        other
            .create_or_update(&key, &cell("z1", "b:1"))
            .await
            .unwrap(),
        WriteOutcome::Updated
    );
    // Our stale compare-and-swaps must not clobber it.
    let err = topo
        .update_if_unchanged(&key, &cell("z1", "c:1"), read_rev)
        .await
        .unwrap_err();
    assert!(matches!(err, TopoError::Conflict { .. }), "{err}");
    assert!(!topo.delete_if_unchanged(&key, read_rev).await.unwrap());
    let (now, _) = topo.get::<Cell>(&key).await.unwrap().unwrap();
    assert_eq!(now.server_addresses, vec!["b:1".to_owned()]);

    // create_or_update re-reads, so it wins cleanly.
    assert_eq!(
        topo.create_or_update(&key, &cell("z1", "c:1"))
            .await
            .unwrap(),
        WriteOutcome::Updated
    );

    // Racing writers on a fresh key: every one succeeds via retries (each loses at most once per
    // other writer) and exactly one of them creates it.
    let race_key = cell_key(ROOT, "race");
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let (client, key) = (topo.clone(), race_key.clone());
            tokio::spawn(async move {
                client
                    .create_or_update(&key, &cell("race", &format!("w{i}:1")))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            WriteOutcome::Created => created += 1,
            WriteOutcome::Updated => {}
            WriteOutcome::Unchanged => panic!("values differ, nothing can be unchanged"),
        }
    }
    assert_eq!(created, 1);

    // A value this schema cannot decode is reported, not overwritten.
    let junk_key = cell_key(ROOT, "junk");
    let raw = common::client(&etcd).await;
    raw.create_or_update(&junk_key, &Junk(vec![0xff, 0xff, 0xff]))
        .await
        .unwrap();
    let err = topo
        .create_or_update(&junk_key, &cell("junk", "a:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, TopoError::Decode { .. }), "{err}");
}

/// Writes arbitrary bytes through the typed API (a `bytes` field would add a tag).
#[derive(Clone, PartialEq, Default, Debug)]
struct Junk(Vec<u8>);

impl prost::Message for Junk {
    fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
        buf.put_slice(&self.0);
    }
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

#[tokio::test]
async fn prune_removes_exactly_the_stale_poolers() {
    let etcd = Etcd::start().await;
    let topo = common::client(&etcd).await;
    let z1 = cell_root_on_global(ROOT, "z1");
    let z2 = cell_root_on_global(ROOT, "z2");

    let p0 = pooler(
        "z1",
        "p0",
        RoutingRole::Primary,
        "p0.pool.ns.svc.cluster.local",
    );
    let p1 = pooler("z1", "p1", RoutingRole::Replica, "10.0.0.7");
    let p2 = pooler(
        "z1",
        "p2",
        RoutingRole::Replica,
        "p2.pool.ns.svc.cluster.local",
    );
    for p in [&p0, &p1, &p2] {
        assert_eq!(
            topo.write_pooler(&z1, p).await.unwrap(),
            WriteOutcome::Created
        );
    }
    // Another cell's stale pooler must survive a prune of z1.
    let other_cell = pooler("z2", "p9", RoutingRole::Replica, "p9");
    topo.write_pooler(&z2, &other_cell).await.unwrap();
    // An undecodable record (stale) and a foreign key under the prefix (ignored).
    let junk_key = pooler_key(&z1, "z1", "p3");
    topo.create_or_update(&junk_key, &Junk(vec![0xff, 0xff, 0xff]))
        .await
        .unwrap();
    let foreign_key = format!("{}README", poolers_prefix(&z1));
    topo.create_or_update(&foreign_key, &Junk(b"x".to_vec()))
        .await
        .unwrap();

    let listed = topo.list_poolers(&z1).await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.name()).collect::<Vec<_>>(),
        ["p0", "p1", "p2"]
    );
    let shard = p0.shard_key.clone().unwrap();
    let ShardPrimary::One(primary) = shard_primary(&listed, &shard) else {
        panic!("want one primary");
    };
    assert!(primary.is_serving_primary());
    assert_eq!(primary.name(), "p0");
    assert_eq!(
        primary.key,
        "/multigres/global/z1/poolers/multipooler-z1-p0/Pooler"
    );

    // p0 is live by its service id, p2 by its hostname's first label (the pod name). A pod named
    // "p1" does not keep p1's record: a service id is never compared with a pod name.
    let live = LivePoolers {
        service_ids: ["p0".to_string()].into(),
        hosts: ["p2".to_string(), "p1".to_string()].into(),
    };
    let removed = topo.prune_poolers(&z1, &live).await.unwrap();
    assert_eq!(removed, vec![pooler_key(&z1, "z1", "p1"), junk_key]);

    let left: Vec<_> = topo.list_prefix_raw(&poolers_prefix(&z1)).await.unwrap();
    let left: Vec<_> = left.into_iter().map(|e| e.key).collect();
    assert_eq!(
        left,
        vec![
            foreign_key,
            pooler_key(&z1, "z1", "p0"),
            pooler_key(&z1, "z1", "p2")
        ]
    );
    assert_eq!(topo.list_poolers(&z2).await.unwrap().len(), 1);

    // Pruning again is a no-op.
    assert!(topo.prune_poolers(&z1, &live).await.unwrap().is_empty());
}

#[tokio::test]
async fn address_mapping_redirects_dialing() {
    let etcd = Etcd::start().await;
    let mapping =
        AddressMapping::parse(&format!("etcd.demo.svc:2379={}", etcd.endpoint())).unwrap();
    let topo = TopoClient::connect(&["etcd.demo.svc:2379".to_owned()], &mapping, TIMEOUT, None)
        .await
        .unwrap();
    assert_eq!(
        topo.register_cell(ROOT, &cell("z1", "etcd.demo.svc:2379"))
            .await
            .unwrap(),
        WriteOutcome::Created
    );
}

async fn assert_unreachable_fast(topo: &TopoClient) {
    let start = Instant::now();
    let err = topo.get::<Cell>(&cell_key(ROOT, "z1")).await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    let err = topo
        .register_cell(ROOT, &cell("z1", "a:1"))
        .await
        .unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    let elapsed = start.elapsed();
    assert!(
        elapsed < 2 * TIMEOUT + Duration::from_secs(1),
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn unreachable_server_fails_within_timeout() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = TopoClient::connect(
        &[format!("127.0.0.1:{port}")],
        &AddressMapping::off(),
        TIMEOUT,
        None,
    )
    .await
    .unwrap();
    assert_unreachable_fast(&closed).await;

    // Accepts TCP (kernel backlog) but never speaks HTTP/2: the case that hangs naive clients.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = blackhole.local_addr().unwrap().to_string();
    let silent = TopoClient::connect(&[addr], &AddressMapping::off(), TIMEOUT, None)
        .await
        .unwrap();
    assert_unreachable_fast(&silent).await;
    drop(blackhole);

    // A server that goes away after working.
    let etcd = Etcd::start().await;
    let topo = common::client(&etcd).await;
    topo.register_cell(ROOT, &cell("z1", "a:1")).await.unwrap();
    drop(etcd);
    assert_unreachable_fast(&topo).await;
}

#[tokio::test]
async fn invalid_requests_are_rejected_locally() {
    let err = TopoClient::connect(&[], &AddressMapping::off(), TIMEOUT, None)
        .await
        .unwrap_err();
    assert!(matches!(err, TopoError::Invalid(_)), "{err}");
    let topo = TopoClient::connect(
        &["127.0.0.1:1".to_owned()],
        &AddressMapping::off(),
        TIMEOUT,
        None,
    )
    .await
    .unwrap();
    for bad in ["", "a/b", ".."] {
        let err = topo
            .register_cell(ROOT, &cell(bad, "a:1"))
            .await
            .unwrap_err();
        assert!(matches!(err, TopoError::Invalid(_)), "{bad:?}: {err}");
    }
    let err = topo.list_prefix_raw("").await.unwrap_err();
    assert!(matches!(err, TopoError::Invalid(_)), "{err}");
    let mut no_id = pooler("z1", "p0", RoutingRole::Primary, "h");
    no_id.id = None;
    let err = topo.write_pooler("/r/z1", &no_id).await.unwrap_err();
    assert!(matches!(err, TopoError::Invalid(_)), "{err}");
}

#[tokio::test]
async fn a_database_record_is_written_and_deleted_only_by_its_owner() {
    use multigres_topology::Claim;
    let etcd = Etcd::start().await;
    let topo = common::client(&etcd).await;
    let db = database(QuorumType::AtLeastN);
    let key = database_key(ROOT, &db.name);

    // First owner: marker and record written; a second cluster neither overwrites nor deletes.
    let claim = topo
        .register_database_as(ROOT, &db, "ns/a/uid-a", false)
        .await
        .unwrap();
    assert_eq!(claim, Claim::Ours(WriteOutcome::Created));
    let mut other = db.clone();
    other.cells = vec!["z2".into()];
    let claim = topo
        .register_database_as(ROOT, &other, "ns/b/uid-b", true)
        .await
        .unwrap();
    assert_eq!(claim, Claim::Foreign("ns/a/uid-a".into()));
    assert_eq!(topo.get::<Database>(&key).await.unwrap().unwrap().0, db);
    let claim = topo
        .deregister_database_as(ROOT, &db.name, "ns/b/uid-b", true)
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Foreign(_)));
    assert!(topo.get::<Database>(&key).await.unwrap().is_some());

    // A record nobody marked (written by hand) is not adopted unless the caller wrote it before.
    topo.deregister_database_as(ROOT, &db.name, "ns/a/uid-a", false)
        .await
        .unwrap();
    topo.register_database(ROOT, &db).await.unwrap();
    let claim = topo
        .register_database_as(ROOT, &db, "ns/c/uid-c", false)
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Foreign(_)), "{claim:?}");
    let claim = topo
        .register_database_as(ROOT, &db, "ns/c/uid-c", true)
        .await
        .unwrap();
    assert_eq!(claim, Claim::Ours(WriteOutcome::Unchanged));
    assert!(matches!(
        topo.deregister_database_as(ROOT, &db.name, "ns/c/uid-c", false)
            .await
            .unwrap(),
        Claim::Ours(_)
    ));
    assert!(topo.get::<Database>(&key).await.unwrap().is_none());
}

/// Until `watches` answers `key` from memory (its watch has listed the root).
async fn in_sync(watches: &PoolerWatches, topo: &TopoClient, key: &WatchKey) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((records, true)) = watches.poolers(topo, key).await {
            return records.into_iter().map(|r| r.name().to_string()).collect();
        }
        assert!(Instant::now() < deadline, "the watch never got in sync");
        // The watch's own listing has no event to wait on; this is the only poll.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next_change(changes: &mut UnboundedReceiver<PoolerChange>) -> PoolerChange {
    tokio::time::timeout(Duration::from_secs(30), changes.recv())
        .await
        .expect("a change within 30 s")
        .expect("the watches are alive")
}

#[tokio::test]
async fn pooler_watches_follow_writes_removals_and_outages_and_name_the_shards() {
    let mut etcd = Etcd::start().await;
    let topo = common::client(&etcd).await;
    let root = cell_root_on_global(ROOT, "z1");
    let p1 = pooler_key(&root, "z1", "p1");
    let replica = pooler("z1", "p1", RoutingRole::Replica, "h1");
    topo.create_or_update(&p1, &replica).await.unwrap();
    let (watches, mut changes) = PoolerWatches::new(Duration::from_secs(600));
    let key = WatchKey {
        addresses: vec![etcd.endpoint().to_string()],
        transport: Transport::Plaintext,
        root: root.clone(),
    };
    let (first, watched) = watches.poolers(&topo, &key).await.unwrap();
    assert_eq!(
        (first.len(), watched),
        (1, false),
        "the first read asks the server"
    );
    assert_eq!(in_sync(&watches, &topo, &key).await, ["p1"]);
    // The first listing names every shard it holds: a record written between a caller's read of
    // the server and the listing would otherwise wake nobody.
    let listed = next_change(&mut changes).await;
    assert_eq!(listed.shards, vec![replica.shard_key.clone().unwrap()]);

    // A promotion reaches memory before its change is announced, naming the record's shard.
    let primary = pooler("z1", "p1", RoutingRole::Primary, "h1");
    topo.create_or_update(&p1, &primary).await.unwrap();
    let change = next_change(&mut changes).await;
    assert_eq!(change.watch, key);
    assert_eq!(change.shards, vec![primary.shard_key.clone().unwrap()]);
    let (records, watched) = watches.poolers(&topo, &key).await.unwrap();
    assert!(watched);
    assert_eq!(records[0].pooler, primary);

    assert!(topo.delete(&p1).await.unwrap());
    assert_eq!(next_change(&mut changes).await.shards.len(), 1);
    assert!(watches.poolers(&topo, &key).await.unwrap().0.is_empty());

    // While the server is away nothing is answered from memory; after it is back the watch lists
    // again and a record written meanwhile is announced.
    etcd.stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    while watches.poolers(&topo, &key).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "answers from memory while etcd is down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(etcd.restart().await);
    let p2 = pooler_key(&root, "z1", "p2");
    topo.create_or_update(&p2, &pooler("z1", "p2", RoutingRole::Replica, "h2"))
        .await
        .unwrap();
    assert_eq!(next_change(&mut changes).await.shards.len(), 1);
    assert_eq!(in_sync(&watches, &topo, &key).await, ["p2"]);
}
