//! Finding the PostgreSQL server binaries (`postgres`, `initdb`, `pg_isready`).
//!
//! Candidates are, in order of preference: `$ZIXLY_PG_BINDIR`, `pg_config --bindir`
//! (first `pg_config` on `PATH`), every `PATH` entry, then the usual per-version
//! install locations (`/usr/lib/postgresql/*/bin` on Debian/Ubuntu,
//! `/usr/pgsql-*/bin` for PGDG RPMs, Homebrew's `postgresql@*/bin`). Among the
//! directories that contain all three programs, the newest major version wins
//! (earlier candidates win ties); it must be at least [`MIN_MAJOR`].

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::PgEmbedError;

/// Oldest supported PostgreSQL major version.
pub const MIN_MAJOR: u32 = 15;

/// Programs a bindir must contain to be usable.
const REQUIRED: [&str; 3] = ["postgres", "initdb", "pg_isready"];

/// Directories under which each `<prefix>*/bin` child is a candidate.
const VERSIONED_ROOTS: [(&str, &str); 5] = [
    ("/usr/lib/postgresql", ""),
    ("/usr", "pgsql-"),
    ("/opt/homebrew/opt", "postgresql@"),
    ("/usr/local/opt", "postgresql@"),
    ("/usr/local/pgsql", ""),
];

/// The default candidate list (see the module docs), in preference order.
pub fn default_bindir_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::var_os("ZIXLY_PG_BINDIR") {
        out.push(PathBuf::from(dir));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path_dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if let Some(pg_config) = path_dirs
        .iter()
        .map(|d| d.join("pg_config"))
        .find(|p| is_executable(p))
    {
        if let Ok(output) = Command::new(&pg_config)
            .arg("--bindir")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        {
            if output.status.success() {
                let dir = String::from_utf8_lossy(&output.stdout).trim().to_string();
                if !dir.is_empty() {
                    out.push(PathBuf::from(dir));
                }
            }
        }
    }
    out.extend(path_dirs);
    for (root, prefix) in VERSIONED_ROOTS {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| e.path().join("bin"))
            .filter(|p| p.is_dir())
            .collect();
        found.sort();
        found.reverse();
        out.extend(found);
    }
    out
}

/// Finds the newest PostgreSQL server bindir with major >= [`MIN_MAJOR`] using
/// [`default_bindir_candidates`]. A successful result is cached for the process.
pub fn find_postgres_bindir() -> Result<(PathBuf, u32), PgEmbedError> {
    static CACHE: OnceLock<(PathBuf, u32)> = OnceLock::new();
    if let Some(found) = CACHE.get() {
        return Ok(found.clone());
    }
    let found = find_postgres_bindir_in(&default_bindir_candidates())?;
    Ok(CACHE.get_or_init(|| found).clone())
}

/// Like [`find_postgres_bindir`] but searches only `candidates` (in preference
/// order). Exposed so that the "nothing installed" path can be tested.
pub fn find_postgres_bindir_in(candidates: &[PathBuf]) -> Result<(PathBuf, u32), PgEmbedError> {
    let (usable, too_old) = scan(candidates);
    let mut best: Option<(PathBuf, u32)> = None;
    for (dir, major) in usable {
        if best.as_ref().is_none_or(|(_, m)| major > *m) {
            best = Some((dir, major));
        }
    }
    best.ok_or_else(|| PgEmbedError::NotFound(not_found_message(candidates, &too_old)))
}

/// Finds a bindir of exactly `major` (an existing cluster can only be run by the
/// major version that created it).
pub(crate) fn find_bindir_for_major(major: u32) -> Result<PathBuf, PgEmbedError> {
    if let Ok((dir, found)) = find_postgres_bindir() {
        if found == major {
            return Ok(dir);
        }
    }
    let candidates = default_bindir_candidates();
    let (usable, too_old) = scan(&candidates);
    if let Some((dir, _)) = usable
        .iter()
        .chain(too_old.iter())
        .find(|(_, m)| *m == major)
    {
        return Ok(dir.clone());
    }
    let installed: Vec<String> = usable
        .iter()
        .chain(too_old.iter())
        .map(|(d, m)| format!("{m} ({})", d.display()))
        .collect();
    Err(PgEmbedError::NotFound(format!(
        "the existing database cluster was created by PostgreSQL {major}, but PostgreSQL {major} \
         server binaries were not found (installed: {}). Install them (Debian/Ubuntu: \
         `apt-get install -y postgresql-{major}`; Fedora/RHEL: `dnf install postgresql{major}-server`; \
         macOS: `brew install postgresql@{major}`), or point ZIXLY_PG_BINDIR at them. To move the \
         data to a newer major version use pg_upgrade.",
        if installed.is_empty() {
            "none".to_string()
        } else {
            installed.join(", ")
        }
    )))
}

type Found = Vec<(PathBuf, u32)>;

/// Returns (usable >= MIN_MAJOR, too old) bindirs among `candidates`, deduplicated.
fn scan(candidates: &[PathBuf]) -> (Found, Found) {
    let mut seen = HashSet::new();
    let mut usable = Vec::new();
    let mut too_old = Vec::new();
    for dir in candidates {
        let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        if !seen.insert(key) {
            continue;
        }
        if !REQUIRED.iter().all(|p| is_executable(&dir.join(p))) {
            continue;
        }
        let Some(major) = server_major_version(&dir.join("postgres")) else {
            continue;
        };
        if major < MIN_MAJOR {
            too_old.push((dir.clone(), major));
        } else {
            usable.push((dir.clone(), major));
        }
    }
    (usable, too_old)
}

fn not_found_message(candidates: &[PathBuf], too_old: &[(PathBuf, u32)]) -> String {
    let mut msg = format!(
        "PostgreSQL server binaries (postgres, initdb, pg_isready) version {MIN_MAJOR} or newer \
         were not found; zixly needs them to run its embedded database.\n"
    );
    if !too_old.is_empty() {
        msg.push_str("Found, but too old:\n");
        for (dir, major) in too_old {
            msg.push_str(&format!("  {} (PostgreSQL {major})\n", dir.display()));
        }
    }
    let searched: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    msg.push_str(&format!("Searched: {}\n", searched.join(", ")));
    msg.push_str(&format!(
        "Install the PostgreSQL server ({MIN_MAJOR} or newer), for example:\n\
         \x20 Debian/Ubuntu:  apt-get install -y postgresql   (binaries go to /usr/lib/postgresql/<major>/bin; \
         if your release only ships an older major, add the PGDG apt repository and install postgresql-16)\n\
         \x20 Fedora/RHEL:    dnf install postgresql-server\n\
         \x20 Alpine:         apk add postgresql16\n\
         \x20 Arch:           pacman -S postgresql\n\
         \x20 macOS:          brew install postgresql@16\n\
         Or point zixly at an existing installation with ZIXLY_PG_BINDIR=/path/to/postgresql/bin."
    ));
    msg
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs `postgres --version` (allowed even as root) and returns the major version.
fn server_major_version(postgres: &Path) -> Option<u32> {
    let output = Command::new(postgres)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse_major(&String::from_utf8_lossy(&output.stdout))
}

/// Parses `postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)` -> 15.
pub(crate) fn parse_major(version_output: &str) -> Option<u32> {
    let rest = version_output
        .split_once("(PostgreSQL)")
        .map(|(_, r)| r)
        .unwrap_or(version_output);
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("postgres (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("garbage"), None);
    }

    #[test]
    fn message_names_install_commands() {
        let msg = not_found_message(
            &[PathBuf::from("/nope")],
            &[(PathBuf::from("/old/bin"), 13)],
        );
        assert!(msg.contains("apt-get install -y postgresql"), "{msg}");
        assert!(msg.contains("dnf install postgresql-server"), "{msg}");
        assert!(msg.contains("brew install postgresql@16"), "{msg}");
        assert!(msg.contains("/old/bin (PostgreSQL 13)"), "{msg}");
        assert!(msg.contains("/nope"), "{msg}");
    }
}
