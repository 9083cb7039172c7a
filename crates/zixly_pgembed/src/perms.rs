//! Which user PostgreSQL runs as, and making DIR usable by that user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{Gid, Uid, User};

use crate::error::IoContext;
use crate::PgEmbedError;

/// The identity the PostgreSQL child processes run as.
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// True when we are root and must switch to `uid`/`gid` for the child.
    pub switch: bool,
}

impl RunAs {
    /// The invoking user, unless that is root: PostgreSQL refuses to run as root,
    /// so then the `postgres` system user (or `nobody` when there is none).
    pub fn detect() -> Result<RunAs, PgEmbedError> {
        let euid = Uid::effective();
        if !euid.is_root() {
            let name = User::from_uid(euid)
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| euid.to_string());
            return Ok(RunAs {
                name,
                uid: euid.as_raw(),
                gid: Gid::effective().as_raw(),
                switch: false,
            });
        }
        for candidate in ["postgres", "nobody"] {
            if let Ok(Some(user)) = User::from_name(candidate) {
                if user.uid.is_root() {
                    continue;
                }
                return Ok(RunAs {
                    name: user.name,
                    uid: user.uid.as_raw(),
                    gid: user.gid.as_raw(),
                    switch: true,
                });
            }
        }
        Err(PgEmbedError::Invalid(
            "zixly runs as root, and PostgreSQL refuses to run as root; neither a `postgres` \
             nor a `nobody` user exists to run it as. Create one (e.g. `useradd --system postgres`) \
             or run zixly as an unprivileged user."
                .into(),
        ))
    }

    /// Applies the identity to a command (no-op unless switching from root).
    /// `std` clears the supplementary groups itself when it drops root via `uid`.
    pub fn apply_std(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        if self.switch {
            cmd.uid(self.uid).gid(self.gid);
        }
    }

    pub fn apply_tokio(&self, cmd: &mut tokio::process::Command) {
        if self.switch {
            cmd.uid(self.uid).gid(self.gid);
        }
    }

    /// `chown` to this identity (no-op unless switching from root).
    pub fn chown(&self, path: &Path) -> Result<(), PgEmbedError> {
        if self.switch {
            std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
                .ctx(|| format!("chown {} to {}", path.display(), self.name))?;
        }
        Ok(())
    }

    /// Recursively `lchown`s `dir` if its top-level owner is not this identity
    /// (e.g. a cluster created earlier by a different user, or copied around).
    pub fn adopt_tree(&self, dir: &Path) -> Result<(), PgEmbedError> {
        let meta = std::fs::metadata(dir).ctx(|| format!("stat {}", dir.display()))?;
        if meta.uid() == self.uid {
            return Ok(());
        }
        if !self.switch {
            return Err(PgEmbedError::Invalid(format!(
                "{} is owned by uid {}, but PostgreSQL would run as {} (uid {}); PostgreSQL \
                 requires its data directory to be owned by the user running it. Run zixly as \
                 the owner, or `chown -R {} {}`.",
                dir.display(),
                meta.uid(),
                self.name,
                self.uid,
                self.name,
                dir.display()
            )));
        }
        tracing::info!(dir = %dir.display(), user = %self.name, "handing PostgreSQL data directory to the user that runs PostgreSQL");
        chown_tree(dir, self.uid, self.gid)
    }

    fn can_traverse(&self, meta: &std::fs::Metadata) -> bool {
        can_traverse(meta.mode(), meta.uid(), meta.gid(), self.uid, self.gid)
    }

    /// Checks that this identity can enter every ancestor of `data_dir`, and makes
    /// `data_dir` itself traversable (adds `o+x`) when we own it.
    pub fn ensure_reachable(&self, data_dir: &Path) -> Result<(), PgEmbedError> {
        if !self.switch {
            return Ok(());
        }
        let mut ancestors: Vec<&Path> = data_dir.ancestors().skip(1).collect();
        ancestors.reverse();
        for dir in ancestors {
            let meta = std::fs::metadata(dir).ctx(|| format!("stat {}", dir.display()))?;
            if !self.can_traverse(&meta) {
                return Err(PgEmbedError::NotTraversable {
                    dir: dir.to_path_buf(),
                    data_dir: data_dir.to_path_buf(),
                    user: self.name.clone(),
                    uid: self.uid,
                    mode: meta.mode() & 0o7777,
                    owner: meta.uid(),
                });
            }
        }
        let meta = std::fs::metadata(data_dir).ctx(|| format!("stat {}", data_dir.display()))?;
        if !self.can_traverse(&meta) {
            if meta.uid() != Uid::effective().as_raw() && !Uid::effective().is_root() {
                return Err(PgEmbedError::NotTraversable {
                    dir: data_dir.to_path_buf(),
                    data_dir: data_dir.to_path_buf(),
                    user: self.name.clone(),
                    uid: self.uid,
                    mode: meta.mode() & 0o7777,
                    owner: meta.uid(),
                });
            }
            // Search permission only: others can pass through to DIR/pg and DIR/run
            // (which are private to the PostgreSQL user) but cannot list DIR, and
            // DIR/superuser.password stays 0600.
            let mode = (meta.mode() & 0o7777) | 0o001;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(mode))
                .ctx(|| format!("chmod o+x {}", data_dir.display()))?;
        }
        Ok(())
    }
}

/// POSIX permission check for the search (x) bit; owner class first, then group
/// (primary group only: supplementary groups are cleared for the child), then others.
pub(crate) fn can_traverse(mode: u32, owner: u32, group: u32, uid: u32, gid: u32) -> bool {
    if uid == 0 {
        return true;
    }
    if owner == uid {
        mode & 0o100 != 0
    } else if group == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<(), PgEmbedError> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
        .ctx(|| format!("chown {}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir).ctx(|| format!("stat {}", dir.display()))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).ctx(|| format!("read {}", dir.display()))? {
            let entry = entry.ctx(|| format!("read {}", dir.display()))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traverse_rules() {
        // owner class wins even when "other" would allow it
        assert!(!can_traverse(0o601, 101, 0, 101, 104));
        assert!(can_traverse(0o700, 101, 0, 101, 104));
        assert!(can_traverse(0o710, 0, 104, 101, 104));
        assert!(!can_traverse(0o701, 0, 104, 101, 104));
        assert!(can_traverse(0o701, 0, 0, 101, 104));
        assert!(!can_traverse(0o700, 0, 0, 101, 104));
        assert!(can_traverse(0o000, 5, 5, 0, 0));
    }

    #[test]
    fn detect_never_returns_root() {
        let run_as = RunAs::detect().unwrap();
        assert_ne!(run_as.uid, 0);
        assert_eq!(run_as.switch, Uid::effective().is_root());
    }
}
