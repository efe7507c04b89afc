//! Generates the `clustermetadata` protobuf types and the `multiadmin` switchover API at build time.
//!
//! protoc and its well-known types (`google/protobuf/timestamp.proto`) come from
//! `protoc-bin-vendored`, so building this crate needs no system protoc; the generated code uses
//! `prost_types::Timestamp` for them.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("../../proto/multigres");
    let protos = [
        proto_dir.join("clustermetadata.proto"),
        proto_dir.join("multiadmin.proto"),
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // BTreeMap makes encoding deterministic, so equal records always produce equal bytes.
    config.btree_map(["."]);
    // The server side is for test stand-ins of multiadmin (the data-plane simulator).
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(
            config,
            &protos,
            &[proto_dir, protoc_bin_vendored::include_path()?],
        )?;
    Ok(())
}
