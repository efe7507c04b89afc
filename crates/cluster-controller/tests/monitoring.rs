//! The cluster's PodMonitor and PrometheusRule against a real API server with the Prometheus
//! operator's own CRDs (tests/fixtures/prometheus-operator-v0.85.0, from the module
//! github.com/prometheus-operator/prometheus-operator@v0.85.0, example/prometheus-operator-crd):
//! without them the controller builds the cluster and creates nothing of theirs; once they are
//! installed, a running controller finds them (discovery on a timer) and a starting one at once,
//! the API server accepts both objects under strict field validation, and turning one off deletes
//! it. Its own control plane (this binary), because it installs CRDs the other tests must not see.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use multigres_api::MultigresCluster;
use multigres_cluster_controller::build::{self, PodMonitor, PrometheusRule};
use multigres_cluster_controller::monitoring;
use multigres_e2e::{wait_deleted, wait_for};

const CRDS: [&str; 2] = [
    include_str!("fixtures/prometheus-operator-v0.85.0/monitoring.coreos.com_podmonitors.yaml"),
    include_str!("fixtures/prometheus-operator-v0.85.0/monitoring.coreos.com_prometheusrules.yaml"),
];

/// Installs the Prometheus operator's PodMonitor and PrometheusRule CRDs.
async fn install_prometheus_crds(client: &Client) -> anyhow::Result<()> {
    for text in CRDS {
        install_crd(client, text).await?;
    }
    Ok(())
}

/// How long a running controller may take to see new kinds: its discovery timer, plus a reconcile.
const REDISCOVERY: Duration = Duration::from_secs(monitoring::REDISCOVER_EVERY.as_secs() + 30);

#[tokio::test]
async fn monitoring_objects_follow_the_prometheus_operators_crds_and_the_spec() {
    let cp = cp();
    setup().await;
    let client = cp.client();

    // No Prometheus operator: the cluster is built, and nothing about monitoring fails.
    let before = cp.namespace("mon-before").await.unwrap();
    let early = start_controller(&before, "").await.unwrap();
    apply_templates(&client, &before).await.unwrap();
    apply(&client, &sample_cluster(&before)).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &before);
    let sample = sample_cluster(&before);
    let multiadmin =
        build::multiadmin_deployment(&sample, &common::tree::resolved(&before, &sample)).name_any();
    wait_for(&deployments, &multiadmin, WAIT, |_| true)
        .await
        .unwrap();
    assert_eq!(monitoring::discover(&client).await.unwrap(), (false, false));
    // Nothing about the missing kinds is logged as a problem: no failed discovery, no failed
    // apply (the controller never asked for them).
    let log = early.log();
    assert!(
        !log.contains("monitoring.coreos.com") && !log.contains("podmonitors"),
        "log:\n{log}"
    );

    // The operator's own metrics the dashboards read are the ones a controller serves.
    let served = early.get("/metrics").await.unwrap();
    for name in include_str!("../src/build/known_metrics.txt")
        .lines()
        .filter(|l| l.starts_with("multigres_"))
    {
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .fold(name, |n, suffix| n.strip_suffix(suffix).unwrap_or(n));
        assert!(
            served.contains(&format!("# TYPE {family} ")),
            "{name} not on the controller's /metrics:\n{served}"
        );
    }

    // The CRDs arrive.
    install_prometheus_crds(&client).await.unwrap();
    assert_eq!(monitoring::discover(&client).await.unwrap(), (true, true));

    // A controller started now applies both at once; the API server validated them against the
    // CRDs' schemas, and a strict dry run shows no field of ours is unknown to them.
    let after = cp.namespace("mon-after").await.unwrap();
    let _late = start_controller(&after, "").await.unwrap();
    apply_templates(&client, &after).await.unwrap();
    let cluster = apply(&client, &sample_cluster(&after)).await.unwrap();
    let monitors: Api<PodMonitor> = Api::namespaced(client.clone(), &after);
    let rules: Api<PrometheusRule> = Api::namespaced(client.clone(), &after);
    let monitor = wait_for(&monitors, SAMPLE, WAIT, |_| true).await.unwrap();
    let rule = wait_for(&rules, SAMPLE, WAIT, |_| true).await.unwrap();
    let owner = &monitor.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("MultigresCluster", cluster.uid().unwrap().as_str())
    );
    assert_eq!(rule.owner_references()[0].uid, cluster.uid().unwrap());
    // What the API server kept is what was built: nothing pruned as unknown.
    assert_eq!(monitor.spec, build::pod_monitor(&cluster).unwrap().spec);
    assert_eq!(rule.spec, build::prometheus_rule(&cluster).unwrap().spec);
    let strict = PatchParams::apply("strict-check")
        .validation_strict()
        .dry_run();
    monitors
        .patch(
            SAMPLE,
            &strict,
            &Patch::Apply(build::pod_monitor(&cluster).unwrap()),
        )
        .await
        .unwrap();
    rules
        .patch(
            SAMPLE,
            &strict,
            &Patch::Apply(build::prometheus_rule(&cluster).unwrap()),
        )
        .await
        .unwrap();

    // The controller that started without them finds them on its discovery timer.
    let early_monitors: Api<PodMonitor> = Api::namespaced(client.clone(), &before);
    let early_rules: Api<PrometheusRule> = Api::namespaced(client.clone(), &before);
    wait_for(&early_monitors, SAMPLE, REDISCOVERY, |_| true)
        .await
        .unwrap();
    wait_for(&early_rules, SAMPLE, WAIT, |_| true)
        .await
        .unwrap();

    // Turned off: deleted; the PrometheusRule stays.
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &after);
    let off = serde_json::json!({"spec": {"observability": {"podMonitor": {"enabled": false}}}});
    clusters
        .patch(SAMPLE, &PatchParams::default(), &Patch::Merge(&off))
        .await
        .unwrap();
    wait_deleted(&monitors, SAMPLE, WAIT).await.unwrap();
    assert!(rules.get_opt(SAMPLE).await.unwrap().is_some());
}
