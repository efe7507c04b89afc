//! `crdgen [FILE]` writes the CRDs (to stdout without FILE); `crdgen --docs FILE` writes the generated
//! API reference.

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (text, path) = match args.as_slice() {
        [flag, path] if flag == "--docs" => (multigres_api::docs::markdown(), Some(path)),
        [path] => (multigres_api::crd::to_yaml(), Some(path)),
        [] => (multigres_api::crd::to_yaml(), None),
        _ => {
            eprintln!("usage: crdgen [FILE] | crdgen --docs FILE");
            std::process::exit(2);
        }
    };
    match path {
        Some(path) => std::fs::write(path, text),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
