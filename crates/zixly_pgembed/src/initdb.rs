//! The first start of a data directory: `initdb` into `DIR/pg.initdb`, renamed to `DIR/pg` only
//! when complete, with a generated superuser password (kept 0600 in `DIR/superuser.password`,
//! handed to initdb through a short-lived pwfile) and the locale the system offers.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;

use rand::Rng;

use crate::error::IoContext;
use crate::perms::RunAs;
use crate::{EmbeddedCluster, PgEmbedError, SUPERUSER};

impl EmbeddedCluster {
    pub(crate) async fn initdb(&self, bindir: &Path, run_as: &RunAs) -> Result<(), PgEmbedError> {
        let tmp = self.data_dir.join("pg.initdb");
        if tmp.exists() {
            tracing::info!(dir = %tmp.display(), "removing leftovers of an interrupted initdb");
            std::fs::remove_dir_all(&tmp).ctx(|| format!("remove {}", tmp.display()))?;
        }
        std::fs::create_dir(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))
            .ctx(|| format!("chmod {}", tmp.display()))?;
        run_as.chown(&tmp)?;

        let password = generate_password(32);
        let pw_path = self.password_file();
        let pw_tmp = self.data_dir.join("superuser.password.tmp");
        write_private_file(&pw_tmp, password.as_bytes())?;
        std::fs::rename(&pw_tmp, &pw_path).ctx(|| format!("write {}", pw_path.display()))?;

        // The PostgreSQL user must read this one; it lives only while initdb runs.
        let pwfile = self
            .data_dir
            .join(format!(".initdb-pwfile-{}", generate_password(12)));
        write_private_file(&pwfile, format!("{password}\n").as_bytes())?;
        let result = async {
            run_as.chown(&pwfile)?;
            let mut cmd = tokio::process::Command::new(bindir.join("initdb"));
            cmd.arg("-D")
                .arg(&tmp)
                .arg("--username")
                .arg(SUPERUSER)
                .arg("--pwfile")
                .arg(&pwfile)
                .arg("--encoding=UTF8")
                .arg(format!("--locale={}", initdb_locale()))
                .arg("--auth-local=scram-sha-256")
                .arg("--auth-host=scram-sha-256");
            if self.for_tests {
                cmd.arg("--no-sync");
            }
            cmd.current_dir(&self.data_dir)
                .stdin(Stdio::null())
                .kill_on_drop(true);
            run_as.apply_tokio(&mut cmd);
            cmd.output()
                .await
                .ctx(|| format!("run {}", bindir.join("initdb").display()))
        }
        .await;
        let _ = std::fs::remove_file(&pwfile);
        let output = result?;

        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let _ = std::fs::write(self.data_dir.join("log").join("initdb.log"), &text);
        if !output.status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(PgEmbedError::InitDb {
                data_dir: self.pg_data_dir(),
                status: output.status.to_string(),
                output: text,
            });
        }
        let pg = self.pg_data_dir();
        std::fs::rename(&tmp, &pg)
            .ctx(|| format!("rename {} to {}", tmp.display(), pg.display()))?;
        Ok(())
    }
}

pub(crate) fn generate_password(len: usize) -> String {
    rand::rngs::OsRng
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Creates or truncates `path` with mode 0600 and writes `data`.
pub(crate) fn write_private_file(path: &Path, data: &[u8]) -> Result<(), PgEmbedError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .ctx(|| format!("create {}", path.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .ctx(|| format!("chmod {}", path.display()))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .ctx(|| format!("write {}", path.display()))
}

/// `C.UTF-8` where the system has it (better ctype for non-ASCII text), else `C`.
pub(crate) fn initdb_locale() -> &'static str {
    static LOCALE: OnceLock<&'static str> = OnceLock::new();
    LOCALE.get_or_init(|| {
        let has_c_utf8 = std::process::Command::new("locale")
            .arg("-a")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| matches!(l.trim().to_ascii_lowercase().as_str(), "c.utf8" | "c.utf-8"))
            })
            .unwrap_or(false);
        if has_c_utf8 {
            "C.UTF-8"
        } else {
            "C"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_strong() {
        let a = generate_password(32);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, generate_password(32));
    }
}
