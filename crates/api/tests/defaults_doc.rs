//! `docs/defaults.md` says what `multigres_api::resolve::defaults` does: every replica count,
//! resources block, image and volume size in its table is checked against the code.

use multigres_api::PoolType;
use multigres_api::resolve::defaults;
use serde_json::Value;

const DOC: &str = include_str!("../../../docs/defaults.md");

/// The third column of the table row whose first two columns are `component` and `field`.
fn documented(component: &str, field: &str) -> String {
    DOC.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells.len() >= 4 && cells[1] == component && cells[2] == field)
                .then(|| cells[3].to_string())
        })
        .next()
        .unwrap_or_else(|| panic!("docs/defaults.md has no row `{component}` / `{field}`"))
}

/// `requests cpu 250m, memory 256Mi; limit memory 512Mi`, as the table writes a resources block.
fn resources_text(resources: &Value) -> String {
    let list = |v: &Value| {
        ["cpu", "memory"]
            .iter()
            .filter_map(|k| {
                v.get(*k)
                    .and_then(Value::as_str)
                    .map(|q| format!("{k} {q}"))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "requests {}; limit {}",
        list(&resources["requests"]),
        list(&resources["limits"])
    )
}

fn starts_with(component: &str, field: &str, expected: &str) {
    let doc = documented(component, field);
    assert!(
        doc.starts_with(expected),
        "docs/defaults.md `{component}` / `{field}` says `{doc}`, the code `{expected}`"
    );
}

#[test]
fn the_defaults_table_matches_the_code() {
    for (component, value) in [
        ("multiadmin", defaults::multiadmin()),
        ("multigateway", defaults::multigateway()),
        ("multiorch", defaults::multiorch()),
    ] {
        starts_with(component, "`replicas`", &value["replicas"].to_string());
        starts_with(
            component,
            "`resources`",
            &resources_text(&value["resources"]),
        );
    }
    for (component, pool_type) in [
        ("shard pool, type `replica`", PoolType::Replica),
        ("shard pool, type `readOnly`", PoolType::ReadOnly),
    ] {
        let replicas = defaults::shard_pool(pool_type)["replicas"].to_string();
        assert_eq!(replicas, defaults::pool_replicas(pool_type).to_string());
        starts_with(component, "`replicas`", &replicas);
    }
    let pool = defaults::shard_pool(PoolType::Replica);
    for container in ["postgres", "multipooler"] {
        let field = format!("`{container}.resources`");
        starts_with(
            "shard pool",
            &field,
            &resources_text(&pool[container]["resources"]),
        );
    }
    let storage = pool["dataVolumeClaimTemplate"]["resources"]["requests"]["storage"].as_str();
    starts_with(
        "shard pool",
        "`dataVolumeClaimTemplate`",
        &format!("ReadWriteOnce, {}", storage.unwrap()),
    );

    let exporter = "postgres exporter";
    let image = format!("`{}`", defaults::POSTGRES_EXPORTER_IMAGE);
    starts_with(exporter, "`image`", &image);
    let resources = resources_text(&defaults::postgres_exporter()["resources"]);
    starts_with(exporter, "`resources`", &resources);

    let topo = defaults::topo_server();
    let component = "managed topology server";
    starts_with(component, "`image`", &format!("`{}`", defaults::ETCD_IMAGE));
    starts_with(component, "`replicas`", &topo["replicas"].to_string());
    starts_with(
        component,
        "`resources`",
        &resources_text(&topo["resources"]),
    );
    let storage = topo["dataVolumeClaimTemplate"]["resources"]["requests"]["storage"].as_str();
    starts_with(
        component,
        "`dataVolumeClaimTemplate`",
        &format!("ReadWriteOnce, {}", storage.unwrap()),
    );
    assert_eq!(topo["replicas"], defaults::TOPO_SERVER_REPLICAS);

    let images = documented(
        "images",
        "`multigateway`, `multiorch`, `multipooler`, `multiadmin`",
    );
    assert!(
        images.starts_with(&format!("`{}`", defaults::MULTIGRES_IMAGE)),
        "{images}"
    );
    let postgres = documented("images", "`postgres`");
    assert!(
        postgres.starts_with(&format!("`{}`", defaults::POSTGRES_IMAGE)),
        "{postgres}"
    );
    let durability = documented("database `durabilityPolicy` omitted (addition)", "");
    assert!(
        durability.contains(&format!(
            "`requiredCount` {}",
            defaults::DEFAULT_REQUIRED_COUNT
        )),
        "{durability}"
    );
}

/// The default spread of docs/defaults.md: keys, skew and `whenUnsatisfiable` as the code has them.
#[test]
fn the_default_spread_matches_the_code() {
    let row = documented("shard pool", "`topologySpreadConstraints`");
    let keys = defaults::SPREAD_TOPOLOGY_KEYS
        .map(|k| format!("`{k}`"))
        .join(", ");
    assert!(row.starts_with(&keys), "{row}");
    assert!(
        row.contains(&format!("maxSkew {}", defaults::SPREAD_MAX_SKEW)),
        "{row}"
    );
    assert!(
        row.contains(&format!("`{}`", defaults::SPREAD_WHEN_UNSATISFIABLE)),
        "{row}"
    );
    let spread = defaults::spread(&Default::default());
    assert_eq!(spread.len(), defaults::SPREAD_TOPOLOGY_KEYS.len());
}

/// The test reads the table, so a row it cannot find or a wrong value must fail it.
#[test]
#[should_panic(expected = "no row")]
fn a_missing_row_fails() {
    documented("multigateway", "`nonexistent`");
}
