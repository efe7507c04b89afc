//! No controller can read a Secret: each chart's ServiceAccount is refused a `get` and a `list` of
//! the Secrets its own controllers created (the generated credentials, a shard's pgBackRest TLS)
//! and of one it did not (docs/security.md).

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use multigres_api::{Shard, TopoServer, naming};
use multigres_e2e::{ControlPlane, stack};

const OPERATOR_NAMESPACE: &str = "multigres-system";

pub async fn no_controller_reads_a_secret(
    cp: &ControlPlane,
    admin: &Client,
    namespace: &str,
    cluster: &str,
) -> Result<()> {
    let secrets = Api::<Secret>::namespaced(admin.clone(), namespace);
    let foreign = "not-the-operators";
    let _ = secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some(foreign.into()),
                    ..Default::default()
                },
                string_data: Some([("key".to_string(), "value".to_string())].into()),
                ..Default::default()
            },
        )
        .await;
    let shard = Api::<Shard>::namespaced(admin.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .next()
        .context("no Shard")?;
    // The topology certificates are named for their expiry: as the global TopoServer has them.
    let global = Api::<TopoServer>::namespaced(admin.clone(), namespace)
        .get(&naming::global_topo_server(cluster))
        .await?;
    let member = global
        .spec
        .tls
        .clone()
        .context("no TLS on the global TopoServer")?;
    let expires = naming::topo_server_tls_expiry(&global.name_any(), &member.secret_name)
        .context("no expiry in the member Secret's name")?;
    // The pgBackRest and the cluster's own certificates too: as a pool pod and a Cell mount them.
    let of_shard = ListParams::default().labels(&format!(
        "{}={}",
        multigres_api::labels::OWNER,
        shard.name_any()
    ));
    let pgbackrest = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(admin.clone(), namespace)
        .list(&of_shard)
        .await?
        .items
        .iter()
        .find_map(|p| {
            p.annotations()
                .get(multigres_api::labels::PGBACKREST_TLS)
                .cloned()
        })
        .context("no pool pod names its pgBackRest Secret")?;
    let own = Api::<multigres_api::Cell>::namespaced(admin.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .find_map(|c| Some(c.spec.tls.as_ref()?.secret_name.clone()))
        .context("no Cell mounts the cluster's TLS Secret")?;
    let names = [
        naming::credentials_secret(cluster),
        pgbackrest,
        own,
        naming::topology_tls_secret_until(cluster, expires),
        member.secret_name,
        foreign.to_string(),
    ];
    // The controllers made theirs without reading: both exist.
    for name in &names {
        secrets
            .get_metadata(name)
            .await
            .with_context(|| format!("Secret {name}"))?;
    }
    let (server, ca) = stack::cluster_endpoint(cp.kubeconfig_path())?;
    for controller in stack::CONTROLLERS {
        let sa = controller.service_account;
        let token = stack::service_account_token(admin, OPERATOR_NAMESPACE, sa, 600).await?;
        let path = cp.log_dir().join(format!("{sa}-secrets.kubeconfig"));
        stack::write_token_kubeconfig(&path, &server, &ca, sa, &token)?;
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&path)?,
            &Default::default(),
        )
        .await?;
        let theirs = Api::<Secret>::namespaced(Client::try_from(config)?, namespace);
        for name in &names {
            let refused = theirs.get(name).await;
            ensure!(
                forbidden(&refused),
                "{sa} get Secret {name}: expected 403, got {:?}",
                refused.map(|s| s.name_any())
            );
            let refused = theirs.get_metadata(name).await;
            ensure!(
                forbidden(&refused),
                "{sa} get (metadata) Secret {name}: expected 403"
            );
        }
        let refused = theirs.list(&ListParams::default()).await;
        ensure!(forbidden(&refused), "{sa} list Secrets: expected 403");
    }
    secrets.delete(foreign, &Default::default()).await?;
    Ok(())
}

fn forbidden<T>(result: &kube::Result<T>) -> bool {
    matches!(result, Err(kube::Error::Api(e)) if e.code == 403)
}
