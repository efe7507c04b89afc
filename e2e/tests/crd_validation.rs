//! Every validation rule of the CRDs, against the real API server: a bad object is refused with the
//! rule's message, and the valid base object is accepted.

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use multigres_api::{Cell, DeploymentTemplate, MultigresCluster, TopoServer};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

async fn setup() -> (Client, String) {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let plane = multigres_e2e::shared();
    let client = plane.client();
    CRDS.get_or_init(|| async {
        multigres_e2e::install_crds(&plane.client())
            .await
            .expect("CRDs install")
    })
    .await;
    let ns = plane.namespace("crd").await.expect("namespace");
    (client, ns)
}

fn api<K: kube::Resource<DynamicType = ()>>(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<K>(&()))
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("test object is a Kubernetes object")
}

fn cluster(name: &str, spec: Value) -> DynamicObject {
    object(
        json!({"apiVersion": "multigres.com/v1alpha1", "kind": "MultigresCluster", "metadata": {"name": name}, "spec": spec}),
    )
}

fn valid_spec() -> Value {
    json!({
        "cells": [{"name": "zone-a"}, {"name": "zone-b"}],
        "databases": [{"name": "app", "spec": {"tablegroups": [{
            "name": "default",
            "partitioning": {"shards": 2},
            "shardTemplate": {"pools": [{"type": "replica", "cell": "zone-a"}, {"type": "readOnly", "cell": "zone-b"}]}
        }]}}]
    })
}

/// Creating `obj` must fail with a message containing `expected`.
async fn refused(api: &Api<DynamicObject>, obj: DynamicObject, expected: &str) {
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => panic!(
            "accepted, but should be refused with '{expected}': {}",
            serde_json::to_string(&obj).unwrap()
        ),
        Err(kube::Error::Api(e)) => assert!(
            e.message.contains(expected),
            "refused, but the message lacks '{expected}': {}",
            e.message
        ),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn with(mut spec: Value, pointer: &str, value: Value) -> Value {
    *spec
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} in base spec")) = value;
    spec
}

#[tokio::test]
async fn the_valid_cluster_is_accepted() {
    let (client, ns) = setup().await;
    let clusters = api::<MultigresCluster>(&client, &ns);
    clusters
        .create(&PostParams::default(), &cluster("ok", valid_spec()))
        .await
        .expect("valid cluster accepted");
}

#[tokio::test]
async fn component_blocks_take_a_template_or_inline_fields() {
    let (client, ns) = setup().await;
    let clusters = api::<MultigresCluster>(&client, &ns);
    let both = with(
        valid_spec(),
        "/cells/0",
        json!({"name": "zone-a", "spec": {"multigateway": {"deploymentTemplate": "t", "replicas": 2}}}),
    );
    refused(
        &clusters,
        cluster("both", both),
        "set either deploymentTemplate",
    )
    .await;
    let orphan = with(
        valid_spec(),
        "/cells/0",
        json!({"name": "zone-a", "spec": {"multiorch": {"overrides": {"replicas": 2}}}}),
    );
    refused(
        &clusters,
        cluster("orphan", orphan),
        "overrides apply to a deploymentTemplate",
    )
    .await;
    let pool = with(
        valid_spec(),
        "/databases/0/spec/tablegroups/0/shardTemplate/pools/0",
        json!({"type": "replica", "cell": "zone-a", "deploymentTemplate": "t", "replicas": 3}),
    );
    refused(&clusters, cluster("pool", pool), "inline pool fields").await;
}

#[tokio::test]
async fn topology_blocks_take_exactly_one_source() {
    let (client, ns) = setup().await;
    let clusters = api::<MultigresCluster>(&client, &ns);
    let mut spec = valid_spec();
    spec["globalTopoServer"] =
        json!({"deploymentTemplate": "t", "external": {"address": "etcd:2379"}});
    refused(
        &clusters,
        cluster("two", spec),
        "at most one of deploymentTemplate, managedSpec and external",
    )
    .await;
    let mut spec = valid_spec();
    spec["globalTopoServer"] =
        json!({"rootPath": "/a", "external": {"address": "etcd:2379", "rootPath": "/b"}});
    refused(&clusters, cluster("roots", spec), "set rootPath once").await;
}

#[tokio::test]
async fn names_are_unique_and_pools_name_declared_cells() {
    let (client, ns) = setup().await;
    let clusters = api::<MultigresCluster>(&client, &ns);
    let dup = with(valid_spec(), "/cells/1", json!({"name": "zone-a"}));
    refused(&clusters, cluster("dupcell", dup), "Duplicate value").await;
    let undeclared = with(
        valid_spec(),
        "/databases/0/spec/tablegroups/0/shardTemplate/pools/1/cell",
        json!("zone-z"),
    );
    refused(
        &clusters,
        cluster("undeclared", undeclared),
        "must name a cell declared in spec.cells",
    )
    .await;
    let global = with(valid_spec(), "/cells/1", json!({"name": "global"}));
    refused(
        &clusters,
        cluster("global", global),
        "reserved for the global topology server",
    )
    .await;
    let mut spec = valid_spec();
    spec["databases"][0]["spec"]["tablegroups"][0]["shardTemplate"]["pools"][1] =
        json!({"type": "replica", "cell": "zone-a"});
    refused(&clusters, cluster("duppool", spec), "distinct (type, cell)").await;
    let no_replica = with(
        valid_spec(),
        "/databases/0/spec/tablegroups/0/shardTemplate/pools/0/type",
        json!("readOnly"),
    );
    refused(
        &clusters,
        cluster("noreplica", no_replica),
        "at least one pool of type replica",
    )
    .await;
    let long = "c".repeat(64);
    refused(
        &clusters,
        cluster(&long, valid_spec()),
        "at most 63 characters",
    )
    .await;
}

#[tokio::test]
async fn enums_and_minimums_are_enforced() {
    let (client, ns) = setup().await;
    let clusters = api::<MultigresCluster>(&client, &ns);
    let bad_type = with(
        valid_spec(),
        "/databases/0/spec/tablegroups/0/shardTemplate/pools/1/type",
        json!("primary"),
    );
    refused(&clusters, cluster("badtype", bad_type), "Unsupported value").await;
    let mut spec = valid_spec();
    spec["images"] = json!({"imagePullPolicy": "Sometimes"});
    refused(&clusters, cluster("badpolicy", spec), "Unsupported value").await;
    let zero = with(
        valid_spec(),
        "/databases/0/spec/tablegroups/0/partitioning/shards",
        json!(0),
    );
    refused(
        &clusters,
        cluster("zero", zero),
        "should be greater than or equal to 1",
    )
    .await;
    let mut spec = valid_spec();
    spec["cells"][0]["spec"] = json!({"multigateway": {"replicas": -1}});
    refused(
        &clusters,
        cluster("negative", spec),
        "should be greater than or equal to 0",
    )
    .await;
    let mut spec = valid_spec();
    spec["gatewayService"] = json!({"type": "Ingress"});
    refused(&clusters, cluster("expose", spec), "Unsupported value").await;
    let mut spec = valid_spec();
    spec["cells"][0]["spec"] =
        json!({"gatewayService": {"loadBalancerSourceRanges": ["10.0.0.0/8"]}});
    refused(
        &clusters,
        cluster("ranges", spec),
        "loadBalancerSourceRanges applies to type LoadBalancer",
    )
    .await;
}

#[tokio::test]
async fn shards_never_decrease() {
    let (client, ns) = setup().await;
    let clusters = api::<MultigresCluster>(&client, &ns);
    clusters
        .create(&PostParams::default(), &cluster("grow", valid_spec()))
        .await
        .expect("created");
    let more = json!({"spec": {"databases": [{"name": "app", "spec": {"tablegroups": [{"name": "default", "partitioning": {"shards": 3},
        "shardTemplate": {"pools": [{"type": "replica", "cell": "zone-a"}, {"type": "readOnly", "cell": "zone-b"}]}}]}}]}});
    clusters
        .patch("grow", &PatchParams::default(), &Patch::Merge(&more))
        .await
        .expect("growing is allowed");
    let fewer = with(
        more,
        "/spec/databases/0/spec/tablegroups/0/partitioning/shards",
        json!(1),
    );
    let err = clusters
        .patch("grow", &PatchParams::default(), &Patch::Merge(&fewer))
        .await
        .expect_err("shrinking is refused");
    assert!(err.to_string().contains("cannot decrease"), "{err}");
}

#[tokio::test]
async fn a_template_needs_a_section() {
    let (client, ns) = setup().await;
    let templates = api::<DeploymentTemplate>(&client, &ns);
    let empty = object(
        json!({"apiVersion": "multigres.com/v1alpha1", "kind": "DeploymentTemplate", "metadata": {"name": "empty"}, "spec": {}}),
    );
    refused(&templates, empty, "needs at least one section").await;
}

#[tokio::test]
async fn etcd_replicas_are_odd_and_immutable() {
    let (client, ns) = setup().await;
    let servers = api::<TopoServer>(&client, &ns);
    let server = |replicas: i32| {
        object(
            json!({"apiVersion": "multigres.com/v1alpha1", "kind": "TopoServer", "metadata": {"name": "etcd"},
            "spec": {"rootPath": "/r", "image": "etcd", "replicas": replicas, "dataVolumeClaimTemplate": {}}}),
        )
    };
    refused(&servers, server(2), "must be odd").await;
    servers
        .create(&PostParams::default(), &server(3))
        .await
        .expect("3 members accepted");
    let err = servers
        .patch(
            "etcd",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect_err("membership change refused");
    assert!(err.to_string().contains("immutable"), "{err}");
}

#[tokio::test]
async fn a_cell_topology_is_external_or_managed() {
    let (client, ns) = setup().await;
    let cells = api::<Cell>(&client, &ns);
    let cell = object(
        json!({"apiVersion": "multigres.com/v1alpha1", "kind": "Cell", "metadata": {"name": "c"},
        "spec": {"name": "c", "images": {"multigateway": "m", "multiorch": "m"}, "multigateway": {"replicas": 1}, "multiorch": {"replicas": 1},
            "globalTopoServer": {"rootPath": "/r", "address": "a:2379"},
            "topoServer": {"external": {"address": "e:2379"}, "managedSpec": {}}}}),
    );
    refused(&cells, cell, "at most one of external and managedSpec").await;
}

#[tokio::test]
async fn topology_settings_change_only_when_the_user_allows_it() {
    let (client, ns) = setup().await;
    let clusters = api::<MultigresCluster>(&client, &ns);
    let mut spec = valid_spec();
    spec["cells"][1]["spec"] = json!({"topoServer": {"managedSpec": {}, "rootPath": "/b"}});
    clusters
        .create(&PostParams::default(), &cluster("topo", spec.clone()))
        .await
        .expect("created");
    let patch = |spec: Value| json!({"spec": spec});
    let refused_edit = |spec: Value, expected: &'static str| {
        let clusters = clusters.clone();
        async move {
            let err = clusters
                .patch("topo", &PatchParams::default(), &Patch::Merge(&patch(spec)))
                .await
                .expect_err("topology change refused");
            assert!(err.to_string().contains(expected), "{err}");
        }
    };
    // The global server moves to an external etcd, or to another root.
    refused_edit(
        json!({"globalTopoServer": {"external": {"address": "etcd:2379"}}}),
        "globalTopoServer: managed/external",
    )
    .await;
    refused_edit(
        json!({"globalTopoServer": {"rootPath": "/elsewhere"}}),
        "globalTopoServer: managed/external",
    )
    .await;
    // A cell's root, or its server, changes.
    let mut moved = spec.clone();
    moved["cells"][1]["spec"]["topoServer"]["rootPath"] = json!("/c");
    refused_edit(json!({"cells": moved["cells"]}), "cells[].spec.topoServer").await;
    let mut global = spec.clone();
    global["cells"][1]["spec"] = json!({});
    refused_edit(json!({"cells": global["cells"]}), "cells[].spec.topoServer").await;
    // Settings that leave the topology where it is are fine: a managed block with the default root.
    clusters
        .patch(
            "topo",
            &PatchParams::default(),
            &Patch::Merge(&patch(
                json!({"globalTopoServer": {"managedSpec": {"replicas": 5}}}),
            )),
        )
        .await
        .expect("sizing the managed etcd is allowed");
    // With the migration switch on, the move is accepted.
    let mut allowed = moved.clone();
    allowed["allowTopologyChange"] = json!(true);
    clusters
        .patch(
            "topo",
            &PatchParams::default(),
            &Patch::Merge(&patch(json!({
                "cells": allowed["cells"], "allowTopologyChange": true
            }))),
        )
        .await
        .expect("an allowed migration");
}

#[tokio::test]
async fn database_and_table_group_names_fit_in_label_values() {
    let (client, ns) = setup().await;
    let clusters = api::<MultigresCluster>(&client, &ns);
    for (pointer, bad) in [
        ("/databases/0/name", "_app"),
        ("/databases/0/name", "app_"),
        ("/databases/0/spec/tablegroups/0/name", "_orders"),
    ] {
        let spec = with(valid_spec(), pointer, json!(bad));
        refused(&clusters, cluster("labels", spec), "should match").await;
    }
}

#[tokio::test]
async fn pod_labels_and_annotations_leave_the_operators_keys_alone() {
    let (client, ns) = setup().await;
    let clusters = api::<MultigresCluster>(&client, &ns);
    let mut spec = valid_spec();
    spec["cells"][0]["spec"] =
        json!({"multigateway": {"podLabels": {"multigres.com/cell": "elsewhere"}}});
    refused(&clusters, cluster("gwlabel", spec), "podLabels: keys under").await;
    let pool = with(
        valid_spec(),
        "/databases/0/spec/tablegroups/0/shardTemplate/pools/0",
        json!({"type": "replica", "cell": "zone-a", "podLabels": {"app.kubernetes.io/name": "x"}}),
    );
    refused(
        &clusters,
        cluster("poollabel", pool),
        "podLabels: keys under",
    )
    .await;
    let mut spec = valid_spec();
    spec["multiadmin"] = json!({"podAnnotations": {"multigres.com/spec-hash": "forged"}});
    refused(
        &clusters,
        cluster("annotation", spec),
        "podAnnotations: keys under multigres.com/",
    )
    .await;
    let templates = api::<DeploymentTemplate>(&client, &ns);
    let template = object(json!({
        "apiVersion": "multigres.com/v1alpha1", "kind": "DeploymentTemplate",
        "metadata": {"name": "labels"},
        "spec": {"shardPool": {"podLabels": {"multigres.com/pool": "x"}}}
    }));
    refused(&templates, template, "podLabels: keys under").await;

    // Everything set as intended is accepted.
    let mut spec = valid_spec();
    spec["logging"] = json!({"logLevel": "warn", "logFormat": "text"});
    spec["cells"][0]["spec"] = json!({"multiorch": {
        "podLabels": {"team": "db", "example.com/tier": "control"},
        "podAnnotations": {"sidecar.istio.io/inject": "false"},
        "priorityClassName": "high",
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [{"topologyKey": "kubernetes.io/hostname", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}],
        "logLevel": "debug",
        "logFormat": "json"
    }});
    spec["databases"][0]["spec"]["tablegroups"][0]["shardTemplate"]["pools"][0] = json!({
        "type": "replica", "cell": "zone-a", "priorityClassName": "db",
        "postgres": {"logLevel": "error"}, "multipooler": {"logFormat": "text"}
    });
    clusters
        .create(&PostParams::default(), &cluster("knobs", spec))
        .await
        .expect("scheduling knobs and logging accepted");
}

#[tokio::test]
async fn new_fields_are_inline_fields_and_log_settings_are_enums() {
    let (client, ns) = setup().await;
    let clusters = api::<MultigresCluster>(&client, &ns);
    for (name, field) in [
        ("tplspread", json!({"topologySpreadConstraints": []})),
        ("tplprio", json!({"priorityClassName": "high"})),
        ("tpllabels", json!({"podLabels": {"team": "db"}})),
        ("tpllog", json!({"logLevel": "debug"})),
    ] {
        let mut block = json!({"deploymentTemplate": "t"});
        block
            .as_object_mut()
            .unwrap()
            .extend(field.as_object().unwrap().clone());
        let spec = with(
            valid_spec(),
            "/cells/0",
            json!({"name": "zone-a", "spec": {"multigateway": block}}),
        );
        refused(
            &clusters,
            cluster(name, spec),
            "set either deploymentTemplate",
        )
        .await;
    }
    let pool = with(
        valid_spec(),
        "/databases/0/spec/tablegroups/0/shardTemplate/pools/0",
        json!({"type": "replica", "cell": "zone-a", "deploymentTemplate": "t", "nodeSelector": {"disk": "ssd"}}),
    );
    refused(&clusters, cluster("poolsel", pool), "inline pool fields").await;
    let mut spec = valid_spec();
    spec["logging"] = json!({"logLevel": "trace"});
    refused(&clusters, cluster("trace", spec), "Unsupported value").await;
    let mut spec = valid_spec();
    spec["cells"][0]["spec"] = json!({"multigateway": {"logFormat": "xml"}});
    refused(&clusters, cluster("xml", spec), "Unsupported value").await;
}

fn backup(name: &str, spec: Value) -> DynamicObject {
    object(
        json!({"apiVersion": "multigres.com/v1alpha1", "kind": "Backup", "metadata": {"name": name}, "spec": spec}),
    )
}

#[tokio::test]
async fn backups_and_schedules_are_checked_at_admission() {
    let (client, ns) = setup().await;
    let backups = api::<multigres_api::Backup>(&client, &ns);
    let target = json!({"cluster": "c", "database": "app"});
    refused(
        &backups,
        backup(
            "lone-shard",
            json!({"cluster": "c", "database": "app", "shard": "0"}),
        ),
        "shard needs tableGroup",
    )
    .await;
    backups
        .create(&PostParams::default(), &backup("ok", target.clone()))
        .await
        .expect("a valid Backup");
    let changed = backups
        .patch(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"database": "other"}})),
        )
        .await;
    assert!(
        matches!(&changed, Err(kube::Error::Api(e)) if e.message.contains("a Backup's spec cannot change")),
        "{changed:?}"
    );

    let schedules = api::<multigres_api::ScheduledBackup>(&client, &ns);
    let schedule = |name: &str, cron: &str| {
        object(
            json!({"apiVersion": "multigres.com/v1alpha1", "kind": "ScheduledBackup",
            "metadata": {"name": name}, "spec": {"schedule": cron, "backup": target}}),
        )
    };
    refused(
        &schedules,
        schedule("four", "0 3 * *"),
        "schedule must have five fields",
    )
    .await;
    refused(
        &schedules,
        schedule("odd", "@often"),
        "schedule must have five fields",
    )
    .await;
    schedules
        .create(&PostParams::default(), &schedule("nightly", "0 3 * * *"))
        .await
        .expect("a valid schedule");

    let clusters = api::<MultigresCluster>(&client, &ns);
    let with_backup = |backup: Value| {
        let mut spec = valid_spec();
        spec["backup"] = backup;
        spec
    };
    let both = with_backup(json!({"filesystem": {}, "s3": {"bucket": "bkt", "region": "r"}}));
    refused(
        &clusters,
        cluster("both", both),
        "set filesystem or s3, not both",
    )
    .await;
    let too_many = with_backup(json!({"retention": {"fullBackups": 9}}));
    refused(&clusters, cluster("keeps-nine", too_many), "fullBackups").await;
}
