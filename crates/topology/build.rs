//! Generates the `clustermetadata` protobuf types at build time.
//!
//! protoc and its well-known types (`google/protobuf/timestamp.proto`) come from
//! `protoc-bin-vendored`, so building this crate needs no system protoc; the generated code uses
//! `prost_types::Timestamp` for them.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("../../proto/multigres");
    let proto = proto_dir.join("clustermetadata.proto");
    println!("cargo:rerun-if-changed={}", proto.display());

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // BTreeMap makes encoding deterministic, so equal records always produce equal bytes.
    config.btree_map(["."]);
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_with_config(
            config,
            &[proto],
            &[proto_dir, protoc_bin_vendored::include_path()?],
        )?;
    Ok(())
}
