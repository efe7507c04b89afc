//! Key layout of the Multigres topology in etcd.
//!
//! Multigres builds every key with Go's `path.Join(root, relative)`, which drops empty segments,
//! so `/multigres/global/` and `/multigres/global` name the same tree. These builders do the same
//! cleaning so a root written with or without a trailing slash (or with doubled slashes) yields
//! exactly the key multigres itself reads.

/// File name of a cell record under `cells/<cell>/`.
pub const CELL_FILE: &str = "Cell";
/// File name of a database record under `databases/<db>/`.
pub const DATABASE_FILE: &str = "Database";
/// File name of a pooler record under `poolers/multipooler-<cell>-<name>/`.
pub const POOLER_FILE: &str = "Pooler";
/// Directory of cell records in the global topology.
pub const CELLS_PATH: &str = "cells";
/// Directory of database records in the global topology.
pub const DATABASES_PATH: &str = "databases";
/// Directory of pooler records in a cell topology.
pub const POOLERS_PATH: &str = "poolers";
/// Lower-cased `ID.ComponentType` name multigres uses as the pooler directory prefix.
pub const POOLER_COMPONENT: &str = "multipooler";

/// Joins `root` and `parts` like Go's `path.Join`: empty and `.` segments are dropped and a
/// leading `/` on `root` is kept. `..` is not resolved: topology names never contain it and the
/// typed helpers reject names containing `/`.
pub fn join(root: &str, parts: &[&str]) -> String {
    let absolute = root.starts_with('/');
    let segments: Vec<&str> = std::iter::once(root)
        .chain(parts.iter().copied())
        .flat_map(|p| p.split('/'))
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let joined = segments.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// `<global_root>/cells/<cell>/Cell`
pub fn cell_key(global_root: &str, cell: &str) -> String {
    join(global_root, &[CELLS_PATH, cell, CELL_FILE])
}

/// `<global_root>/databases/<db>/Database`
pub fn database_key(global_root: &str, db: &str) -> String {
    join(global_root, &[DATABASES_PATH, db, DATABASE_FILE])
}

/// `<cell_root>/poolers/` — with the trailing slash, so a prefix scan cannot pick up a sibling
/// such as `poolers-old/`.
pub fn poolers_prefix(cell_root: &str) -> String {
    format!("{}/", join(cell_root, &[POOLERS_PATH]))
}

/// `<cell_root>/poolers/multipooler-<cell>-<name>/Pooler`, the key multipooler registers under
/// (`MultiPoolerIDString` in go/common/topoclient/multipooler.go).
pub fn pooler_key(cell_root: &str, cell: &str, name: &str) -> String {
    let dir = format!("{POOLER_COMPONENT}-{cell}-{name}");
    join(cell_root, &[POOLERS_PATH, &dir, POOLER_FILE])
}

/// Root of a cell whose records live on the global topology server: `<global_root>/<cell>`.
pub fn cell_root_on_global(global_root: &str, cell: &str) -> String {
    join(global_root, &[cell])
}

/// The `multipooler-<cell>-<name>` directory of a pooler key under `prefix`, if the key has the
/// `<prefix><dir>/Pooler` shape.
pub(crate) fn pooler_dir_of<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(prefix)?;
    let dir = rest.strip_suffix(POOLER_FILE)?.strip_suffix('/')?;
    (!dir.is_empty() && !dir.contains('/')).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_keys() {
        assert_eq!(
            cell_key("/multigres/global", "us-east-1"),
            "/multigres/global/cells/us-east-1/Cell"
        );
        assert_eq!(
            database_key("/multigres/global", "postgres"),
            "/multigres/global/databases/postgres/Database"
        );
    }

    #[test]
    fn trailing_and_doubled_slashes_are_tolerated() {
        for root in [
            "/multigres/global",
            "/multigres/global/",
            "//multigres//global//",
        ] {
            assert_eq!(cell_key(root, "z1"), "/multigres/global/cells/z1/Cell");
            assert_eq!(cell_root_on_global(root, "z1"), "/multigres/global/z1");
        }
        assert_eq!(
            poolers_prefix("/multigres/global/z1/"),
            "/multigres/global/z1/poolers/"
        );
    }

    #[test]
    fn relative_and_empty_roots() {
        assert_eq!(cell_key("multigres", "c"), "multigres/cells/c/Cell");
        assert_eq!(cell_key("", "c"), "cells/c/Cell");
        assert_eq!(poolers_prefix("/"), "/poolers/");
    }

    #[test]
    fn pooler_keys() {
        let key = pooler_key("/multigres/global/z1", "z1", "pool-0");
        assert_eq!(
            key,
            "/multigres/global/z1/poolers/multipooler-z1-pool-0/Pooler"
        );
        let prefix = poolers_prefix("/multigres/global/z1");
        assert_eq!(pooler_dir_of(&prefix, &key), Some("multipooler-z1-pool-0"));
        assert_eq!(
            pooler_dir_of(&prefix, "/multigres/global/z1/poolers/x/y/Pooler"),
            None
        );
        assert_eq!(pooler_dir_of(&prefix, "/other/poolers/x/Pooler"), None);
        assert_eq!(pooler_dir_of(&prefix, &format!("{prefix}/Pooler")), None);
    }
}

/// One topology server and the root to read under it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub address: String,
    pub root: String,
}
