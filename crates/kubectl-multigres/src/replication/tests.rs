use super::*;

fn primary(lsn: &str) -> Answer {
    Ok(PoolerStatus {
        postgres_status: "POSTGRES_STATUS_PRIMARY".into(),
        pooler_type: "PRIMARY".into(),
        primary_status: Some(PrimaryStatus { lsn: lsn.into() }),
        ..Default::default()
    })
}

fn standby_at(replay: &str, receiver: &str) -> Answer {
    Ok(PoolerStatus {
        postgres_status: "POSTGRES_STATUS_STANDBY".into(),
        pooler_type: "REPLICA".into(),
        replication_status: Some(StandbyStatus {
            last_replay_lsn: replay.into(),
            last_receive_lsn: replay.into(),
            wal_receiver_status: receiver.into(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn answers(list: Vec<(&str, Answer)>) -> BTreeMap<String, Answer> {
    list.into_iter().map(|(p, a)| (p.to_string(), a)).collect()
}

#[test]
fn lsns_are_two_hex_halves() {
    assert_eq!(parse_lsn("0/3000060"), Some(0x300_0060));
    assert_eq!(parse_lsn("1/0"), Some(1 << 32));
    assert_eq!(parse_lsn("A/FF"), Some(0xA_0000_00FF));
    assert_eq!(parse_lsn(""), None);
    assert_eq!(parse_lsn("0/xyz"), None);
    assert_eq!(parse_lsn("100000000/0"), None);
    assert_eq!(format_lsn(0xA_0000_00FF), "A/FF");
}

#[test]
fn a_standby_close_behind_is_fine_and_one_far_behind_is_lagging() {
    let got = assess(
        &answers(vec![
            ("pod-0", primary("1/2000000")),
            ("pod-1", standby_at("1/1FFF000", "streaming")),
            ("pod-2", standby_at("1/0", "streaming")),
        ]),
        DEFAULT_MAX_LAG_BYTES,
    );
    assert_eq!(got.primary.as_deref(), Some("pod-0"));
    assert_eq!(got.primary_lsn.as_deref(), Some("1/2000000"));
    assert_eq!(got.unknown, None);
    let close = &got.standbys[0];
    assert_eq!(
        (close.pod.as_str(), close.replay_lag_bytes, close.lagging),
        ("pod-1", Some(0x1000), false)
    );
    let far = &got.standbys[1];
    assert_eq!(far.replay_lag_bytes, Some(0x200_0000));
    assert!(far.lagging);
    assert_eq!(far.reason.as_deref(), Some("32.0 MiB behind the primary"));
    let lagging: Vec<&str> = got.lagging().map(|s| s.pod.as_str()).collect();
    assert_eq!(lagging, ["pod-2"]);
}

#[test]
fn a_standby_not_streaming_or_paused_is_lagging_whatever_its_position() {
    let mut paused = standby_at("1/2000000", "streaming").unwrap();
    paused
        .replication_status
        .as_mut()
        .unwrap()
        .is_wal_replay_paused = true;
    let got = assess(
        &answers(vec![
            ("a", primary("1/2000000")),
            ("b", standby_at("1/2000000", "")),
            ("c", standby_at("1/2000000", "waiting")),
            ("d", Ok(paused)),
        ]),
        DEFAULT_MAX_LAG_BYTES,
    );
    let reasons: Vec<(&str, Option<&str>)> = got
        .standbys
        .iter()
        .map(|s| (s.pod.as_str(), s.reason.as_deref()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("b", Some("WAL receiver is none, not streaming")),
            ("c", Some("WAL receiver is waiting, not streaming")),
            ("d", Some("WAL replay is paused")),
        ]
    );
    assert!(got.standbys.iter().all(|s| s.replay_lag_bytes == Some(0)));
}

#[test]
fn without_one_primary_lag_is_unknown_not_zero() {
    let none = assess(
        &answers(vec![
            ("a", standby_at("1/0", "streaming")),
            ("b", Err("unavailable: connection refused".into())),
        ]),
        DEFAULT_MAX_LAG_BYTES,
    );
    assert_eq!(none.primary, None);
    assert_eq!(none.unknown.as_deref(), Some("no pooler reports a primary"));
    assert_eq!(none.standbys[0].replay_lag_bytes, None);
    assert!(!none.standbys[0].lagging);
    assert_eq!(
        none.unreachable.get("b").map(String::as_str),
        Some("unavailable: connection refused")
    );

    let two = assess(
        &answers(vec![("a", primary("1/0")), ("b", primary("1/0"))]),
        DEFAULT_MAX_LAG_BYTES,
    );
    assert_eq!(two.primary, None);
    assert_eq!(two.unknown.as_deref(), Some("more than one primary: a, b"));
}

/// Canonical proto3 JSON as multiadmin's REST API serves it: camelCase, enums by name, unset
/// fields left out, fields this module does not read ignored.
#[test]
fn reads_multiadmins_json() {
    let standby: PoolerStatusResponse = serde_json::from_str(
        r#"{"status":{"poolerType":"REPLICA","replicationStatus":{"lastReplayLsn":"0/5000148",
        "lastReceiveLsn":"0/5000148","walReplayPauseState":"not paused","walReceiverStatus":"streaming",
        "lastMsgReceiveTime":"2026-12-02T21:00:00Z","walReceiverStatusInterval":"10s"},
        "isInitialized":true,"hasDataDirectory":true,"postgresRunning":true,
        "postgresStatus":"POSTGRES_STATUS_STANDBY","walPosition":"0/5000148","shardId":"0-inf",
        "postgresReady":true},"consensusStatus":{"id":{"component":"MULTIPOOLER","cell":"z1","name":"p"}}}"#,
    )
    .unwrap();
    assert!(!standby.status.is_primary());
    assert_eq!(
        standby.status.replication_status.unwrap().last_replay_lsn,
        "0/5000148"
    );
    let primary: PoolerStatusResponse = serde_json::from_str(
        r#"{"status":{"poolerType":"PRIMARY","primaryStatus":{"lsn":"0/5000148","ready":true,
        "connectedFollowers":[{"component":"MULTIPOOLER","cell":"z1","name":"q"}]},
        "postgresStatus":"POSTGRES_STATUS_PRIMARY"}}"#,
    )
    .unwrap();
    assert!(primary.status.is_primary());
    assert_eq!(primary.status.primary_lsn(), Some(0x500_0148));
}

#[test]
fn bytes_for_a_terminal() {
    assert_eq!(bytes(512), "512 B");
    assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    assert_eq!(bytes(1288490188), "1.2 GiB");
}
