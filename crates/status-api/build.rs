//! Generates the `multigres.operator.v1` gRPC server and client at build time.
//!
//! protoc comes from `protoc-bin-vendored`, so building this crate needs no system protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let proto = proto_root.join("multigres/operator/v1/status.proto");
    println!("cargo:rerun-if-changed={}", proto.display());

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // BTreeMap keeps maps ordered, like MultigresClusterStatus, so equal statuses encode equally.
    config.btree_map(["."]);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &[proto], &[proto_root])?;
    Ok(())
}
