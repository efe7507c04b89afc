//! `kubectl multigres status` with replication: each Shard's primary pod and standbys from
//! multiadmin's pooler status (the simulator's REST stand-in, `--admin-url`), a standby annotated
//! 64 MiB behind shown as lagging, and `status` still answering when multiadmin cannot be reached.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use multigres_e2e::{ControlPlane, samples};

pub async fn lagging_replicas(
    cp: &ControlPlane,
    client: &Client,
    plugin: &std::path::Path,
    sample: &samples::SampleCluster,
    sim_admin_http: &str,
) -> Result<()> {
    let ns = sample.namespace.as_str();
    let admin_url = format!("http://{sim_admin_http}/{ns}/{}", sample.name);
    let status = |extra: &[&str]| -> Result<String> {
        let mut args = vec!["status", &sample.name, "-n", ns, "--admin-url", &admin_url];
        args.extend_from_slice(extra);
        super::run_plugin(cp, plugin, &args)
    };
    let tree: serde_json::Value = serde_json::from_str(&status(&["-o", "json"])?)?;
    let shards = shards_of(&tree);
    assert!(!shards.is_empty(), "{tree:#}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut a_standby = None;
    for shard in &shards {
        let r = &shard["replication"];
        let owned = ListParams::default().labels(&format!(
            "{}={}",
            multigres_api::labels::OWNER,
            shard["name"].as_str().unwrap_or_default()
        ));
        let names: Vec<String> = pods
            .list(&owned)
            .await?
            .iter()
            .map(|p| p.name_any())
            .collect();
        let primary = r["primary"].as_str().context("a primary pod")?;
        assert!(names.iter().any(|n| n == primary), "{shard:#}");
        let standbys = r["standbys"].as_array().context("standbys")?;
        assert_eq!(standbys.len() + 1, names.len(), "{shard:#}");
        for s in standbys {
            assert_eq!(s["lagging"], false, "{shard:#}");
            assert_eq!(s["walReceiver"], "streaming", "{shard:#}");
            assert_eq!(s["replayLagBytes"], 0, "{shard:#}");
        }
        a_standby = a_standby.or(standbys
            .first()
            .and_then(|s| s["pod"].as_str())
            .map(String::from));
    }

    let lagging = a_standby.context("a Shard with a standby")?;
    let annotate = |value: serde_json::Value| {
        serde_json::json!({"metadata": {"annotations": {
            multigres_dataplane_sim::REPLAY_LAG_BYTES: value
        }}})
    };
    pods.patch(
        &lagging,
        &PatchParams::default(),
        &Patch::Merge(annotate((64u64 << 20).to_string().into())),
    )
    .await?;
    let text = status(&[])?;
    assert!(
        text.contains(&format!(
            "! lagging replica {lagging}: 64.0 MiB behind the primary"
        )),
        "{text}"
    );
    assert_eq!(text.matches("! lagging replica").count(), 1, "{text}");
    pods.patch(
        &lagging,
        &PatchParams::default(),
        &Patch::Merge(annotate(serde_json::Value::Null)),
    )
    .await?;

    // No multiadmin at this address: the tree still comes, and says why replication is missing.
    let unreachable = super::run_plugin(
        cp,
        plugin,
        &[
            "status",
            &sample.name,
            "-n",
            ns,
            "--admin-url",
            "http://127.0.0.1:9",
            "-o",
            "json",
        ],
    )?;
    let tree: serde_json::Value = serde_json::from_str(&unreachable)?;
    let why = tree["replicationUnknown"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("multiadmin at http://127.0.0.1:9"),
        "{tree:#}"
    );
    assert!(shards_of(&tree).iter().all(|s| s["replication"].is_null()));
    Ok(())
}

fn shards_of(tree: &serde_json::Value) -> Vec<&serde_json::Value> {
    tree["tableGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|tg| tg["shards"].as_array().into_iter().flatten())
        .collect()
}
