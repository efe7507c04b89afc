use super::*;

fn collected(logs: Vec<Log>) -> Collected {
    let secret_like = serde_json::json!({"kind": "Shard", "metadata": {"name": "s-0"}});
    Collected {
        namespace: "ns".into(),
        cluster: "c".into(),
        tree: "MultigresCluster ns/c  Available=True\n".into(),
        tree_json: serde_json::json!({"name": "c"}),
        objects: vec![
            Object {
                plural: "shards".into(),
                name: "s-0".into(),
                value: secret_like,
            },
            Object {
                plural: "pods".into(),
                name: "p-0".into(),
                value: serde_json::json!({"kind": "Pod"}),
            },
        ],
        events: vec![serde_json::json!({"reason": "Switchover"})],
        secret_names: vec!["c-postgres-credentials".into()],
        operator_namespace: "multigres-system".into(),
        logs,
        problems: vec![],
    }
}

#[test]
fn the_summary_comes_first_and_says_what_the_bundle_holds() {
    let files = bundle(&collected(vec![]));
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "summary.txt",
            "status.json",
            "shards/s-0.yaml",
            "pods/p-0.yaml",
            "events.yaml",
            "secrets.txt"
        ]
    );
    let summary = &files[0].1;
    assert!(
        summary.contains("MultigresCluster ns/c  Available=True"),
        "{summary}"
    );
    assert!(summary.contains("  shards/: 1\n"), "{summary}");
    assert!(
        summary.contains("no operator pods found in namespace multigres-system"),
        "{summary}"
    );
    assert_eq!(files[5].1.lines().last(), Some("c-postgres-credentials"));
}

#[test]
fn operator_logs_go_under_logs() {
    let files = bundle(&collected(vec![Log {
        pod: "shard-controller-0".into(),
        container: "controller".into(),
        text: "line\n".into(),
    }]));
    assert!(
        files
            .iter()
            .any(|(p, t)| p == "logs/shard-controller-0/controller.log" && t == "line\n")
    );
    assert!(files[0].1.contains("of 1 containers"));
}

#[test]
fn templates_named_anywhere_in_the_spec_are_found() {
    let spec = serde_json::json!({
        "globalTopoServer": {"deploymentTemplate": "standard-ha"},
        "cells": [{"name": "a", "spec": {"multigateway": {"deploymentTemplate": "gw"}}}],
        "databases": [{"spec": {"tablegroups": [{"shardTemplate": {"deploymentTemplate": "pools"}}]}}]
    });
    let mut names = BTreeSet::new();
    template_names(&spec, &mut names);
    assert_eq!(
        names,
        BTreeSet::from(["gw".into(), "pools".into(), "standard-ha".into()])
    );
}

#[test]
fn a_directory_bundle_is_written_and_not_over_another() {
    let dir = std::env::temp_dir().join(format!("mg-report-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files = bundle(&collected(vec![]));
    write(&files, &dir).unwrap();
    assert!(dir.join("summary.txt").exists());
    assert!(dir.join("shards/s-0.yaml").exists());
    assert!(write(&files, &dir).is_err(), "an existing bundle is kept");
    let tgz = std::env::temp_dir().join(format!("mg-report-test-{}.tar.gz", std::process::id()));
    write(&files, &tgz).unwrap();
    assert!(tgz.metadata().unwrap().len() > 0);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&tgz);
}
