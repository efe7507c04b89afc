//! Writes the CRDs to stdout, or to the file given as the first argument.

fn main() -> std::io::Result<()> {
    let yaml = multigres_api::crd::to_yaml();
    match std::env::args().nth(1) {
        Some(path) => std::fs::write(path, yaml),
        None => {
            print!("{yaml}");
            Ok(())
        }
    }
}
