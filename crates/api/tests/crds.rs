//! The checked-in CRDs are exactly what crdgen writes.

#[test]
fn checked_in_crds_are_fresh() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds/crds.yaml");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == multigres_api::crd::to_yaml(),
        "deploy/crds/crds.yaml is stale: run `cargo run -p multigres-api --bin crdgen deploy/crds/crds.yaml`"
    );
}

#[test]
fn generated_api_reference_is_fresh() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == multigres_api::docs::markdown(),
        "docs/api.md is stale: run `cargo run -p multigres-api --bin crdgen -- --docs docs/api.md`"
    );
}
