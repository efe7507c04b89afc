//! The admission warning about what the pinned Multigres serves names the pinned commit.

use multigres_api::multigres;

#[test]
fn the_served_warning_names_the_pinned_multigres() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/admission/multigres-served.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    // Every "Multigres <7 hex digits>" in the file.
    let named: Vec<&str> = text
        .match_indices("Multigres ")
        .map(|(i, _)| &text[i + 10..(i + 17).min(text.len())])
        .filter(|w| w.len() == 7 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    assert_eq!(named.len(), 2, "{named:?}");
    for commit in named {
        assert_eq!(
            commit,
            multigres::short_commit(),
            "update deploy/admission/multigres-served.yaml"
        );
    }
    assert!(text.contains(&format!("\"{}\"", multigres::SERVED_TABLE_GROUP)));
}
