//! What a pool's scheduling, labels, annotations and logging do to its pods, and what they leave
//! alone when unset (the spec hash decides whether a pod is replaced).
use super::tests::shard;
use super::*;
use k8s_openapi::api::core::v1::{Toleration, TopologySpreadConstraint};
use multigres_api::resolve::defaults;
use multigres_api::{LogFormat, Logging, Placement, PodScheduling};

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn args(pod: &Pod, name: &str) -> Vec<String> {
    let spec = pod.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .and_then(|c| c.args.clone())
        .unwrap()
}

#[test]
fn unset_knobs_leave_the_pod_as_it_was_but_for_the_default_spread() {
    let shard = shard();
    let pool = &pools(&shard)[0];
    let pod = pod(&shard, pool, 0);
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        spec.node_selector,
        Some(map(&[("topology.kubernetes.io/zone", "zone-a")]))
    );
    assert_eq!(spec.tolerations, None);
    assert_eq!(spec.priority_class_name, None);
    assert_eq!(pod.metadata.labels.as_ref(), Some(&pool.labels));
    let annotations: Vec<_> = pod.annotations().keys().collect();
    // The operator's own: which pgBackRest Secret the pod mounts (read back from the cache) and
    // the spec hash; no user annotation.
    assert_eq!(annotations, [labels::PGBACKREST_TLS, SPEC_HASH]);
    for container in ["postgres", "multipooler"] {
        let args = args(&pod, container);
        assert_eq!(
            args.iter()
                .filter(|a| a.starts_with("--log-"))
                .collect::<Vec<_>>(),
            ["--log-level=info"],
            "{container}"
        );
    }
    // The default spread: zones, then nodes, of exactly this pool's pods.
    let spread = spec.topology_spread_constraints.clone().unwrap();
    assert_eq!(spread, defaults::spread(&pool.selector()));
    let keys: Vec<_> = spread.iter().map(|c| c.topology_key.as_str()).collect();
    assert_eq!(keys, defaults::SPREAD_TOPOLOGY_KEYS);
    assert!(spread.iter().all(|c| c.max_skew == 1
        && c.when_unsatisfiable == "ScheduleAnyway"
        && c.label_selector.as_ref().unwrap().match_labels == Some(pool.selector())));
}

#[test]
fn a_pools_scheduling_reaches_its_pods_and_the_operator_keeps_its_labels() {
    let mut shard = shard();
    shard.spec.pools[0].placement = Some(Placement {
        zone: Some("zone-a".into()),
        node_selector: Some(map(&[("disk", "hdd")])),
        tolerations: Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    shard.spec.pools[0].scheduling = PodScheduling {
        topology_spread_constraints: Some(vec![TopologySpreadConstraint {
            topology_key: "rack".into(),
            max_skew: 2,
            when_unsatisfiable: "DoNotSchedule".into(),
            ..Default::default()
        }]),
        priority_class_name: Some("database".into()),
        pod_labels: Some(map(&[("team", "db"), (labels::POOL, "forged")])),
        pod_annotations: Some(map(&[("backup", "daily")])),
        tolerations: Some(vec![Toleration {
            key: Some("spot".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }]),
        node_selector: Some(map(&[("disk", "ssd")])),
    };
    let pool = &pools(&shard)[0];
    let pod = pod(&shard, pool, 0);
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        spec.node_selector,
        Some(map(&[
            ("disk", "ssd"),
            ("topology.kubernetes.io/zone", "zone-a")
        ]))
    );
    let tolerations: Vec<_> = spec
        .tolerations
        .iter()
        .flatten()
        .filter_map(|t| t.key.as_deref())
        .collect();
    assert_eq!(tolerations, ["dedicated", "spot"]);
    assert_eq!(spec.priority_class_name.as_deref(), Some("database"));
    let spread = spec.topology_spread_constraints.clone().unwrap();
    assert_eq!(spread.len(), 1, "the user's list replaces the default");
    assert_eq!(
        spread[0].label_selector.as_ref().unwrap().match_labels,
        Some(pool.selector()),
        "a constraint without a selector counts the pool's pods"
    );
    let labels = pod.labels();
    assert_eq!(labels["team"], "db");
    assert_eq!(labels[labels::POOL], pool.id, "the operator's label wins");
    assert_eq!(pod.annotations()["backup"], "daily");
}

#[test]
fn annotations_and_log_settings_roll_pods_only_when_set() {
    let plain = shard();
    let base = hash_of(&pod(&plain, &pools(&plain)[0], 0))
        .unwrap()
        .to_string();

    let mut annotated = shard();
    annotated.spec.pools[0].scheduling.pod_annotations = Some(map(&[("backup", "daily")]));
    let hash = hash_of(&pod(&annotated, &pools(&annotated)[0], 0))
        .unwrap()
        .to_string();
    assert_ne!(
        hash, base,
        "pods are never updated: a new annotation replaces them"
    );

    let mut logged = shard();
    logged.spec.pools[0].multipooler.logging = Logging {
        log_level: Some(LogLevel::Debug),
        log_format: Some(LogFormat::Text),
    };
    let pod = pod(&logged, &pools(&logged)[0], 0);
    assert_ne!(hash_of(&pod).unwrap(), base);
    let pooler = args(&pod, "multipooler");
    assert!(
        pooler.contains(&"--log-level=debug".to_string()),
        "{pooler:?}"
    );
    assert!(
        pooler.contains(&"--log-format=text".to_string()),
        "{pooler:?}"
    );
    let pgctld = args(&pod, "postgres");
    assert!(
        pgctld.contains(&"--log-level=info".to_string()),
        "{pgctld:?}"
    );
    assert!(!pgctld.iter().any(|a| a.starts_with("--log-format")));
}
