//! `shard-controller`: Shard -> pods, PVCs, headless Services and PDBs per pool. With `--partition`,
//! several replicas split the Shards between them (see docs/shard-controller.md).

use std::time::Duration;

use clap::Parser;
use multigres_runtime::settings::{parse_certificate_validity, parse_duration};
use multigres_runtime::topology_tls::TopologyTlsArgs;
use multigres_runtime::{CommonArgs, run};
use multigres_shard_controller::{CRDS, NAME, Settings};
use multigres_topology::{AddressMapping, AllowedHosts};

#[derive(Parser)]
#[command(name = NAME, version, about = "Turns each Shard into Postgres + multipooler pods, per pool")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    topology_tls: TopologyTlsArgs,
    /// Split Shards between replicas through membership Leases in --lease-namespace.
    #[arg(long, env = "MULTIGRES_PARTITION", default_value_t = false)]
    partition: bool,
    /// Dial-time rewrites of topology addresses, `from=to,...` (tests and demos; off when empty).
    #[arg(long, env = "MULTIGRES_TOPOLOGY_ADDRESS_MAP", default_value = "")]
    topology_address_map: String,
    /// Topology hosts the operator may dial, comma-separated: exact names or `*.<domain>` (e.g.
    /// `*.svc,etcd.example.com`). Empty allows every host (docs/security.md).
    #[arg(long, env = "MULTIGRES_TOPOLOGY_ALLOWED_HOSTS", default_value = "")]
    topology_allowed_hosts: String,
    /// Timeout of each topology call.
    #[arg(long, env = "MULTIGRES_TOPOLOGY_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    topology_timeout: Duration,
    /// Hold the pods of Shards the pinned Multigres cannot serve (table groups other than
    /// `default`, more than one shard): `false` when the images run a Multigres that serves them,
    /// or under a simulator.
    #[arg(long, env = "MULTIGRES_HOLD_UNSERVED_SHARDS", default_value_t = true, action = clap::ArgAction::Set)]
    hold_unserved_shards: bool,
    /// At most this many Shards of one table group roll at once (0: no limit). Slots are Leases
    /// in --lease-namespace, shared by every replica.
    #[arg(
        long,
        env = "MULTIGRES_MAX_ROLLING_SHARDS_PER_TABLE_GROUP",
        default_value_t = 1
    )]
    max_rolling_shards_per_table_group: u32,
    /// Timeout of a planned switchover call to multiadmin.
    #[arg(long, env = "MULTIGRES_SWITCHOVER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    switchover_timeout: Duration,
    /// How long the Shards' pgBackRest certificates, issued from a CA derived from the topology
    /// CA, are valid; each is renewed (a new Secret, the pool pods roll) when a third of it is left
    /// (docs/security.md, "Renewal").
    #[arg(long, env = "MULTIGRES_TOPOLOGY_CERTIFICATE_VALIDITY", default_value = "8760h", value_parser = parse_certificate_validity)]
    topology_certificate_validity: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let credentials = args.topology_tls.load()?;
    let settings = Settings {
        partition: args.partition,
        address_mapping: AddressMapping::parse(&args.topology_address_map)?
            .allowing(AllowedHosts::parse(&args.topology_allowed_hosts)?),
        topology_timeout: args.topology_timeout,
        topology_tls: credentials.clients,
        authority: credentials.authority,
        certificate_validity: args.topology_certificate_validity,
        hold_unserved_shards: args.hold_unserved_shards,
        max_rolling_shards_per_table_group: args.max_rolling_shards_per_table_group,
        switchover_timeout: args.switchover_timeout,
    };
    // Partitioned replicas split the Shards; leader election (off unless --leader-elect) is for an
    // unpartitioned controller with a standby.
    run::main(NAME, &args.common, CRDS, |started| {
        multigres_shard_controller::run(started, &args.common, settings)
    })
    .await
}
