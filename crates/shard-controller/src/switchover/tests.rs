use super::*;
use crate::plan::ObservedPod;

fn pod(name: &str, ready: bool) -> ObservedPod {
    ObservedPod {
        name: name.into(),
        index: name.rsplit('-').next().unwrap().parse().unwrap(),
        outdated: false,
        ready,
        terminating: false,
    }
}

/// A replica pool `r-0..` (pods Ready as given) and a read-only pool `ro-0`.
fn pools(ready: &[bool]) -> Vec<PoolState> {
    vec![
        PoolState {
            id: "replica".into(),
            can_be_primary: true,
            replicas: ready.len() as u32,
            pods: ready
                .iter()
                .enumerate()
                .map(|(i, r)| pod(&format!("r-{i}"), *r))
                .collect(),
        },
        PoolState {
            id: "readonly".into(),
            can_be_primary: false,
            replicas: 1,
            pods: vec![pod("ro-0", true)],
        },
    ]
}

fn primary(pod: &str) -> Primary {
    Primary::Known(Some(pod.into()))
}

fn request(target: Option<&str>) -> Request {
    Request {
        requested_at: "2026-12-02T10:00:00Z".into(),
        target: target.map(String::from),
    }
}

fn recorded(result: SwitchoverResult, target: Option<&str>) -> LastSwitchover {
    LastSwitchover {
        requested_at: "2026-12-02T10:00:00Z".into(),
        target: target.map(String::from),
        from: Some("r-0".into()),
        to: None,
        result,
        message: String::new(),
        time: None,
    }
}

const NOW: Duration = Duration::ZERO;

#[test]
fn the_annotation_parses_into_a_time_and_an_optional_target() {
    assert_eq!(Request::parse(""), None);
    assert_eq!(Request::parse(" , r-1"), None);
    assert_eq!(Request::parse("t1"), Some(request_at("t1", None)));
    assert_eq!(Request::parse("t1,"), Some(request_at("t1", None)));
    assert_eq!(
        Request::parse("t1, r-1"),
        Some(request_at("t1", Some("r-1")))
    );
    for value in ["t1", "t1,r-1"] {
        assert_eq!(Request::parse(value).unwrap().value(), value);
    }
}

fn request_at(at: &str, target: Option<&str>) -> Request {
    Request {
        requested_at: at.into(),
        target: target.map(String::from),
    }
}

#[test]
fn a_new_request_with_a_known_primary_and_a_ready_standby_asks_multiadmin() {
    let step = decide(
        Some(&request(None)),
        None,
        NOW,
        &primary("r-0"),
        &pools(&[true, true]),
    );
    assert_eq!(step, Step::Ask { from: "r-0".into() });
    assert!(step.holds_replica_pools());
    let step = decide(
        Some(&request(Some("r-2"))),
        None,
        NOW,
        &primary("r-0"),
        &pools(&[true, false, true]),
    );
    assert_eq!(step, Step::Ask { from: "r-0".into() });
}

#[test]
fn each_request_is_acted_on_once_whatever_became_of_it() {
    use SwitchoverResult::*;
    for result in [Succeeded, Refused, Failed] {
        let last = recorded(result, None);
        let step = decide(
            Some(&request(None)),
            Some(&last),
            NOW,
            &primary("r-1"),
            &pools(&[true, true]),
        );
        assert_eq!(step, Step::Idle, "{result:?}");
    }
    // The same time with another target is another request.
    let last = recorded(Succeeded, None);
    let step = decide(
        Some(&request(Some("r-0"))),
        Some(&last),
        NOW,
        &primary("r-1"),
        &pools(&[true, true]),
    );
    assert_eq!(step, Step::Ask { from: "r-1".into() });
    assert_eq!(
        decide(None, None, NOW, &primary("r-0"), &pools(&[true, true])),
        Step::Idle
    );
}

#[test]
fn the_primary_unknown_makes_a_request_wait_and_say_why() {
    let step = decide(
        Some(&request(None)),
        None,
        NOW,
        &Primary::Unknown,
        &pools(&[true, true]),
    );
    assert!(
        matches!(&step, Step::Wait(m) if m.contains("the primary is unknown")),
        "{step:?}"
    );
    assert!(!step.holds_replica_pools());
}

#[test]
fn a_bad_target_is_refused_naming_why() {
    let cases = [
        ("r-9", "not a pod of this Shard"),
        ("ro-0", "read-only pool readonly"),
        ("r-1", "r-1 is not Ready"),
        ("r-0", "r-0 is already the primary"),
    ];
    for (target, why) in cases {
        let step = decide(
            Some(&request(Some(target))),
            None,
            NOW,
            &primary("r-0"),
            &pools(&[true, false]),
        );
        assert!(
            matches!(&step, Step::Refuse(m) if m.contains(why)),
            "{target}: {step:?}"
        );
    }
    let mut terminating = pools(&[true, true]);
    terminating[0].pods[1].terminating = true;
    let step = decide(
        Some(&request(Some("r-1"))),
        None,
        NOW,
        &primary("r-0"),
        &terminating,
    );
    assert!(
        matches!(&step, Step::Refuse(m) if m.contains("terminating")),
        "{step:?}"
    );
    // An unfit target is refused even while the primary is unknown: waiting would not help.
    let step = decide(
        Some(&request(Some("r-9"))),
        None,
        NOW,
        &Primary::Unknown,
        &pools(&[true]),
    );
    assert!(matches!(step, Step::Refuse(_)));
}

#[test]
fn without_a_ready_standby_or_a_primary_the_request_is_refused() {
    let step = decide(
        Some(&request(None)),
        None,
        NOW,
        &primary("r-0"),
        &pools(&[true, false]),
    );
    assert!(
        matches!(&step, Step::Refuse(m) if m.contains("no Ready standby")),
        "{step:?}"
    );
    let step = decide(
        Some(&request(None)),
        None,
        NOW,
        &primary("r-0"),
        &pools(&[true]),
    );
    assert!(matches!(step, Step::Refuse(_)));
    let step = decide(Some(&request(None)), None, NOW, &Primary::Known(None), &[]);
    assert!(
        matches!(&step, Step::Refuse(m) if m.contains("no primary")),
        "{step:?}"
    );
}

#[test]
fn a_switchover_in_progress_ends_when_another_pod_is_primary_or_times_out() {
    let last = recorded(SwitchoverResult::InProgress, None);
    let p = pools(&[true, true]);
    let watch =
        |primary: &Primary, since| decide(Some(&request(None)), Some(&last), since, primary, &p);
    assert!(matches!(watch(&primary("r-0"), NOW), Step::Watch(_)));
    assert!(watch(&primary("r-0"), NOW).holds_replica_pools());
    assert!(matches!(watch(&Primary::Unknown, NOW), Step::Watch(_)));
    assert_eq!(watch(&primary("r-1"), NOW), Step::Done { to: "r-1".into() });
    assert!(matches!(
        watch(&Primary::Unknown, ELECTION_WAIT),
        Step::Fail(_)
    ));
    assert!(matches!(
        watch(&primary("r-0"), ELECTION_WAIT),
        Step::Fail(_)
    ));
    // Even with the annotation gone or replaced, the one in progress is seen through first.
    assert!(matches!(
        decide(None, Some(&last), NOW, &primary("r-0"), &p),
        Step::Watch(_)
    ));
    let newer = request_at("2026-12-02T11:00:00Z", None);
    assert_eq!(
        decide(Some(&newer), Some(&last), NOW, &primary("r-1"), &p),
        Step::Done { to: "r-1".into() }
    );
}
