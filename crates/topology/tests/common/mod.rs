//! The throwaway etcd of `multigres_e2e::etcd`, and a topology client for it.

use std::time::Duration;

pub use multigres_e2e::etcd::TestEtcd as Etcd;
use multigres_topology::{AddressMapping, TopoClient};

pub const TIMEOUT: Duration = Duration::from_secs(2);

/// A client of `etcd`, unmapped, with [`TIMEOUT`].
pub async fn client(etcd: &Etcd) -> TopoClient {
    let endpoints = [etcd.endpoint().to_string()];
    TopoClient::connect(&endpoints, &AddressMapping::off(), TIMEOUT, None)
        .await
        .expect("connect")
}
