//! Old `postgresql.conf` ConfigMaps of a Shard's pools: each parameters change makes a new,
//! immutable ConfigMap named after its content (`build::pg_conf_config_map_name`), and the pods
//! roll onto it. Once the Shard has settled and no pod mounts an old one, it is deleted.

use std::collections::BTreeSet;

use kube::api::ListParams;

use super::*;

/// The pool ConfigMaps (`multigres.com/owner=<shard>`, with a `multigres.com/pool` label) that are
/// neither `desired` nor mounted by any of `pods`. Pure.
pub fn stale<'a>(
    config_maps: impl IntoIterator<Item = &'a kube::core::PartialObjectMeta<ConfigMap>>,
    desired: &BTreeSet<String>,
    pods: &[Arc<Pod>],
) -> Vec<String> {
    let mounted: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.volumes.as_ref())
        .flatten()
        .filter_map(|v| Some(v.config_map.as_ref()?.name.as_str()))
        .collect();
    config_maps
        .into_iter()
        .filter(|cm| cm.labels().contains_key(labels::POOL))
        .map(|cm| cm.name_any())
        .filter(|name| !desired.contains(name) && !mounted.contains(name.as_str()))
        .collect()
}

/// Deletes the Shard's stale pool ConfigMaps, asking the API server only when the set of wanted
/// ConfigMaps differs from the one last pruned for (once per Shard after a start, then after each
/// parameters change), and only while nothing rolls.
pub(super) async fn prune(
    shard: &Shard,
    ctx: &Ctx,
    pools: &[Pool],
    pods: &[Arc<Pod>],
) -> Result<(), ChildError> {
    let desired: BTreeSet<String> = pools
        .iter()
        .map(|p| build::pg_conf_config_map_name(shard, p))
        .collect();
    let uid = shard.uid().unwrap_or_default();
    if ctx.state.pruned_pg_confs.lock().expect("pruned").get(&uid) == Some(&desired) {
        return Ok(());
    }
    let ns = shard.namespace().unwrap_or_default();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{}={},{}", labels::OWNER, shard.name_any(), labels::POOL);
    let listed = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| ChildError::kube(shard, "listing the pools' ConfigMaps", e))?;
    let owned = listed
        .items
        .iter()
        .filter(|cm| multigres_runtime::apply::controlled_by(*cm, shard));
    for name in stale(owned, &desired, pods) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => {
                return Err(ChildError::kube(
                    shard,
                    format!("deleting ConfigMap {name}"),
                    e,
                ));
            }
        }
        ctx.events
            .normal(
                shard,
                "Pruned",
                &format!(
                    "Deleted ConfigMap {name}: postgresql.conf parameters no pod uses any more"
                ),
            )
            .await;
    }
    ctx.state
        .pruned_pg_confs
        .lock()
        .expect("pruned")
        .insert(uid, desired);
    Ok(())
}

/// Drops what was remembered of a Shard that is going away.
pub(super) fn forget(shard: &Shard, ctx: &Ctx) {
    let uid = shard.uid().unwrap_or_default();
    ctx.state
        .pruned_pg_confs
        .lock()
        .expect("pruned")
        .remove(&uid);
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, PodSpec, Volume};
    use kube::core::PartialObjectMeta;

    use super::*;

    fn config_map(name: &str, pool: bool) -> PartialObjectMeta<ConfigMap> {
        let mut meta = PartialObjectMeta::<ConfigMap>::default();
        meta.metadata.name = Some(name.into());
        let mut labels = BTreeMap::from([(labels::OWNER.to_string(), "s".to_string())]);
        if pool {
            labels.insert(labels::POOL.into(), "p".into());
        }
        meta.metadata.labels = Some(labels);
        meta
    }

    fn pod_mounting(config_map: &str) -> Arc<Pod> {
        Arc::new(Pod {
            spec: Some(PodSpec {
                volumes: Some(vec![Volume {
                    name: "pgconf".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: config_map.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn only_unwanted_unmounted_pool_config_maps_are_stale() {
        let cms = [
            config_map("s-p-pgconf-new", true),
            config_map("s-p-pgconf-old", true),
            config_map("s-p-pgconf-older", true),
            // The shard's pg_hba template has no pool label: never a candidate.
            config_map("s-pg-hba", false),
        ];
        let desired = BTreeSet::from(["s-p-pgconf-new".to_string()]);
        // A pod still on the old parameters keeps its ConfigMap.
        let rolling = [
            pod_mounting("s-p-pgconf-new"),
            pod_mounting("s-p-pgconf-old"),
        ];
        assert_eq!(stale(&cms, &desired, &rolling), ["s-p-pgconf-older"]);
        let settled = [pod_mounting("s-p-pgconf-new")];
        assert_eq!(
            stale(&cms, &desired, &settled),
            ["s-p-pgconf-old", "s-p-pgconf-older"]
        );
        assert!(stale(&cms[..1], &desired, &settled).is_empty());
    }
}
