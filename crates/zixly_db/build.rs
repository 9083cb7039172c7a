//! Embeds `/migrations`: every `NNNN_name.sql` there becomes an entry of `migrate::MIGRATIONS`,
//! so adding a file is adding a migration (no list to edit). The generated file
//! (`$OUT_DIR/migrations.rs`) holds one `Migration` per file, sorted by version, with the SQL
//! through `include_str!`. A file under `migrations/` whose name is not `NNNN_name.sql`, two files
//! with one version, or a gap in the versions fails the build, naming the file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dir = manifest.join("../../migrations");
    // A directory: cargo rescans it, so a new, renamed or edited file re-runs this script.
    println!("cargo:rerun-if-changed={}", dir.display());

    let mut found = Vec::new();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading the migrations directory {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
            .path();
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_else(|| panic!("{}: file name is not UTF-8", path.display()))
            .to_owned();
        if file.starts_with('.') {
            continue; // editor and VCS droppings
        }
        let (version, name) = parse_name(&file)
            .unwrap_or_else(|| panic!("migrations/{file}: expected NNNN_name.sql (four digits, then lowercase letters, digits or _)"));
        found.push((version, name.to_owned(), path));
    }
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for pair in found.windows(2) {
        assert!(
            pair[0].0 != pair[1].0,
            "migrations/{:04}_{}.sql and migrations/{:04}_{}.sql: two migrations with version {}",
            pair[0].0,
            pair[0].1,
            pair[1].0,
            pair[1].1,
            pair[0].0
        );
    }
    for (i, (version, name, _)) in found.iter().enumerate() {
        let expected = i32::try_from(i + 1).expect("fewer than 2^31 migrations");
        assert!(
            *version == expected,
            "migrations/{version:04}_{name}.sql: expected version {expected} (versions start at 1, \
             are unique and have no gaps)"
        );
    }

    let mut out = String::from("&[\n");
    for (version, name, path) in &found {
        let path = absolute(path);
        writeln!(
            out,
            "    Migration {{ version: {version}, name: {name:?}, sql: include_str!({path:?}) }},"
        )
        .expect("writing to a String");
    }
    out.push_str("]\n");
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("migrations.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
}

/// `0007_jobs_claim_index.sql` → `(7, "jobs_claim_index")`.
fn parse_name(file: &str) -> Option<(i32, &str)> {
    let stem = file.strip_suffix(".sql")?;
    let (digits, name) = stem.split_once('_')?;
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) || !valid_name {
        return None;
    }
    Some((digits.parse().ok()?, name))
}

fn absolute(path: &Path) -> String {
    let path = path
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path.to_str()
        .unwrap_or_else(|| panic!("{}: path is not UTF-8", path.display()))
        .to_owned()
}
