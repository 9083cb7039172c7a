//! `DIR/zixly.owner.json`: which zixly process is responsible for the running postmaster (its pid
//! and start time, so a reused pid is not mistaken for it), and whether it handed the server over.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::procs;
use crate::PgEmbedError;

/// Who is responsible for the running postmaster (`DIR/zixly.owner.json`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OwnerRecord {
    pub(crate) owner_pid: i32,
    pub(crate) owner_start: Option<u64>,
    pub(crate) postmaster_pid: i32,
    /// The owner stopped using the server while other zixly processes still did: whichever of
    /// them is last stops it (and a new start adopts it).
    #[serde(default)]
    pub(crate) handed_over: bool,
}

impl OwnerRecord {
    pub(crate) fn mine(postmaster_pid: i32) -> Self {
        let owner_pid = std::process::id() as i32;
        OwnerRecord {
            owner_pid,
            owner_start: procs::process_start_time(owner_pid),
            postmaster_pid,
            handed_over: false,
        }
    }

    pub(crate) fn read(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    pub(crate) fn write(&self, path: &Path) -> Result<(), PgEmbedError> {
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec(self).expect("owner record serialises");
        std::fs::write(&tmp, json).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).ctx(|| format!("write {}", path.display()))
    }

    pub(crate) fn is_alive(&self) -> bool {
        procs::pid_alive(self.owner_pid)
            && (self.owner_start.is_none()
                || procs::process_start_time(self.owner_pid) == self.owner_start)
    }
}
