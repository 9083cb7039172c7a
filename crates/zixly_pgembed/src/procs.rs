//! Process helpers: `postmaster.pid` parsing, liveness checks that see through
//! zombies, identifying our postmaster, signalling.

use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The interesting lines of `DIR/pg/postmaster.pid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PidFile {
    pub pid: i32,
    pub data_dir: PathBuf,
    pub port: Option<u16>,
    pub socket_dir: Option<PathBuf>,
    /// `starting`, `ready`, `stopping`, `standby` (absent in very early startup).
    pub status: Option<String>,
}

impl PidFile {
    pub fn read(path: &Path) -> Option<PidFile> {
        let text = std::fs::read_to_string(path).ok()?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Option<PidFile> {
        let lines: Vec<&str> = text.lines().collect();
        let pid: i32 = lines.first()?.trim().parse().ok()?;
        if pid <= 0 {
            return None;
        }
        let data_dir = PathBuf::from(lines.get(1)?.trim_end());
        let port = lines.get(3).and_then(|l| l.trim().parse().ok());
        let socket_dir = lines
            .get(4)
            .map(|l| l.trim_end())
            .filter(|l| !l.is_empty())
            .map(PathBuf::from);
        let status = lines
            .get(7)
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty());
        Some(PidFile {
            pid,
            data_dir,
            port,
            socket_dir,
            status,
        })
    }
}

/// True when `pid` names a running (non-zombie) process.
pub(crate) fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    if cfg!(target_os = "linux") {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !matches!(stat_state(&stat), Some('Z') | Some('X') | Some('x')),
            Err(_) => false,
        }
    } else {
        match kill(Pid::from_raw(pid), None) {
            Ok(()) => true,
            Err(nix::errno::Errno::EPERM) => true,
            Err(_) => false,
        }
    }
}

fn stat_after_comm(stat: &str) -> Option<&str> {
    stat.rfind(')').map(|i| stat[i + 1..].trim_start())
}

fn stat_state(stat: &str) -> Option<char> {
    stat_after_comm(stat)?.chars().next()
}

/// Start time of a process (clock ticks since boot, Linux only): with the pid it
/// identifies a process even across pid reuse.
pub(crate) fn process_start_time(pid: i32) -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after "(comm)": state is field 3, starttime is field 22.
    stat_after_comm(&stat)?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Whether `pid` is a PostgreSQL process working in `pg_dir`.
///
/// Every postmaster and backend `chdir`s into its data directory, so on Linux
/// `/proc/PID/cwd` identifies the cluster exactly. `None` means "cannot tell"
/// (not Linux, or no permission to look).
pub(crate) fn runs_in_dir(pid: i32, pg_dir: &Path) -> Option<bool> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let ours = std::fs::canonicalize(pg_dir).unwrap_or_else(|_| pg_dir.to_path_buf());
    Some(cwd == ours || cwd == pg_dir)
}

/// All live processes (Linux only) whose working directory is `pg_dir`:
/// leftovers of a postmaster that died, or the whole running cluster.
pub(crate) fn processes_in_dir(pg_dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| runs_in_dir(*pid, pg_dir) == Some(true) && pid_alive(*pid))
        .collect()
}

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub(crate) fn signal(pid: i32, signal: Signal) -> Result<(), nix::errno::Errno> {
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pid_file() {
        let text =
            "4242\n/tmp/x/pg\n1700000000\n5432\n/tmp/x/run\n\n  1234567     98304\nready   \n";
        let pf = PidFile::parse(text).unwrap();
        assert_eq!(pf.pid, 4242);
        assert_eq!(pf.data_dir, PathBuf::from("/tmp/x/pg"));
        assert_eq!(pf.port, Some(5432));
        assert_eq!(pf.socket_dir, Some(PathBuf::from("/tmp/x/run")));
        assert_eq!(pf.status.as_deref(), Some("ready"));
    }

    #[test]
    fn parses_early_pid_file() {
        let pf = PidFile::parse("17\n/d/pg\n").unwrap();
        assert_eq!(pf.pid, 17);
        assert_eq!(pf.port, None);
        assert_eq!(pf.status, None);
        assert!(PidFile::parse("").is_none());
        assert!(PidFile::parse("abc\n/d\n").is_none());
    }

    #[test]
    fn liveness() {
        let me = std::process::id() as i32;
        assert!(pid_alive(me));
        assert!(!pid_alive(0));
        assert!(!pid_alive(i32::MAX));
        if cfg!(target_os = "linux") {
            assert!(process_start_time(me).is_some());
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn zombie_is_dead() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Not waited for: it becomes a zombie once it exits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while pid_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!pid_alive(pid));
        drop(child);
    }
}
