//! The names the topology holds, checked against the hosts file: every Pooler record multipooler
//! wrote must name a host that resolves to its pod, and publish the pgBackRest port the rewrite
//! table gave that pod (the other poolers dial it there).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::api::ListParams;
use kube::{Api, Client};
use multigres_api::{Cell, Shard};
use multigres_topology::{AddressMapping, ClientTls, TopoClient, cell_root_on_global};

use super::dns::Hosts;

/// The sample's one Shard in `ns`.
pub async fn the_shard(admin: &Client, ns: &str) -> Result<Shard> {
    Api::<Shard>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .next()
        .context("no Shard")
}

/// Prints one line per Pooler record; fails if a hostname does not resolve.
pub async fn check(
    admin: &Client,
    ns: &str,
    address_map: &str,
    tls: Option<&ClientTls>,
    hosts: &Hosts,
) -> Result<()> {
    let shard = the_shard(admin, ns).await?;
    let global = &shard.spec.global_topo_server;
    let mapping = AddressMapping::parse(address_map)?;
    let topo = TopoClient::connect(
        std::slice::from_ref(&global.address),
        &mapping,
        Duration::from_secs(5),
        tls.filter(|_| global.tls_secret_name.is_some()),
    )
    .await?;
    let mut unresolved = Vec::new();
    for cell in Api::<Cell>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await?
    {
        let root = cell_root_on_global(&global.root_path, &cell.spec.name);
        for record in topo.list_poolers(&root).await? {
            let p = &record.pooler;
            let resolved = hosts.resolve(&p.hostname);
            let pgbackrest = p.port_map.get("pgbackrest").copied().unwrap_or_default();
            println!(
                "  topology: pooler {} in {}: hostname {} -> {}, pgbackrest port {pgbackrest}",
                record.name(),
                cell.spec.name,
                p.hostname,
                resolved
                    .map(|ip| ip.to_string())
                    .unwrap_or_else(|| "UNRESOLVED".into())
            );
            if resolved.is_none() {
                unresolved.push(p.hostname.clone());
            }
        }
    }
    if !unresolved.is_empty() {
        bail!("topology names that resolve to no pod: {unresolved:?}");
    }
    println!("  CHECK every hostname in the Pooler records resolves to its pod: ok");
    Ok(())
}
