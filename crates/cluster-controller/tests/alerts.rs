//! The alerts evaluated by Prometheus' own rule engine: `promtool test rules` with synthetic series
//! (tests/fixtures/alerts_test.yaml) checks that each alert fires when it should, with the labels and
//! annotations it should, and that the rule file passes `promtool check rules`. promtool is not part of
//! the local control plane's binaries: the test runs when `$PROMTOOL` names one (docs/monitoring.md
//! says how to build it) and otherwise says it was skipped.

use std::process::Command;

use multigres_api::MultigresCluster;
use multigres_cluster_controller::build;

#[test]
fn alerts_fire_as_the_runbooks_say_under_promtool() {
    let Ok(promtool) = std::env::var("PROMTOOL") else {
        eprintln!("PROMTOOL not set: promtool test of the alerts skipped");
        return;
    };
    let mut cluster = MultigresCluster::new("prod", Default::default());
    cluster.metadata.namespace = Some("db".into());
    let rule = build::prometheus_rule(&cluster).expect("on by default");
    let dir = tempfile::tempdir().unwrap();
    let rules = serde_json::json!({ "groups": rule.spec.groups });
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml::to_string(&rules).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("alerts_test.yaml"),
        include_str!("fixtures/alerts_test.yaml"),
    )
    .unwrap();
    for args in [
        ["check", "rules", "rules.yaml"],
        ["test", "rules", "alerts_test.yaml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("runs promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
