//! The embedded PostgreSQL cluster that `zixly up` (and every other `zixly`
//! command that needs the database) runs.
//!
//! # Layout of the data directory `DIR`
//!
//! | path                       | what                                                   | owner            |
//! |----------------------------|--------------------------------------------------------|------------------|
//! | `DIR/pg`                   | the PostgreSQL data directory (`PGDATA`)               | PostgreSQL user  |
//! | `DIR/run`                  | Unix socket directory (`.s.PGSQL.<port>`), mode 0700   | PostgreSQL user  |
//! | `DIR/log/postgresql.log`   | server log (stdout/stderr of the postmaster), `initdb.log` | invoking user |
//! | `DIR/superuser.password`   | generated password of the `postgres` superuser, 0600   | invoking user    |
//! | `DIR/zixly.lock`           | advisory `flock`, held only while starting/stopping    | invoking user    |
//! | `DIR/zixly.owner.json`     | which zixly process is responsible for the postmaster  | invoking user    |
//! | `DIR/zixly.users.lock`     | shared `flock` held by every process using the server  | invoking user    |
//!
//! # Lifecycle
//!
//! [`EmbeddedCluster::start`] takes the `DIR/zixly.lock` flock (so concurrent
//! `zixly` processes serialise their start/stop steps), then:
//!
//! 1. **Discovery** — [`find_postgres_bindir`] picks the newest installed server
//!    (>= 15); an existing cluster is run by the major version that created it.
//!    When nothing is installed the error says what to install.
//! 2. **initdb** (first start only) — into `DIR/pg.initdb`, renamed to `DIR/pg`
//!    when complete, so a crash during initdb never leaves a half-made cluster.
//!    UTF-8, scram-sha-256 for local and host auth, superuser `postgres` with a
//!    generated 32-character password (kept in `DIR/superuser.password`, handed
//!    to initdb through a short-lived `--pwfile` that is deleted afterwards).
//! 3. **Reuse / adoption** — if `DIR/pg/postmaster.pid` names a live postmaster
//!    of *this* data directory (on Linux verified through `/proc/PID/cwd`, since
//!    every PostgreSQL process `chdir`s into its data dir) and it accepts
//!    connections, no second server is started. If the zixly process recorded in
//!    `DIR/zixly.owner.json` is still alive (e.g. `zixly up` in another shell),
//!    the cluster is merely *reused*: [`RunningCluster::stop`] will not stop it.
//!    If that process is gone (it was SIGKILLed and left the postmaster
//!    orphaned), the postmaster is *adopted*: we record ourselves as the owner
//!    and stop it like our own.
//! 4. **Start** — otherwise `postgres -D DIR/pg` is spawned directly as our child
//!    (not through `pg_ctl`, so we own its lifetime and see when it dies), in its
//!    own process group (a terminal Ctrl-C reaches zixly, which then stops the
//!    database in order), listening only on `DIR/run` (`listen_addresses=''`)
//!    unless a TCP port was asked for (then on `localhost` too). A stale
//!    `postmaster.pid` from a killed server is handled by PostgreSQL itself; we
//!    first wait for (and if need be kill) leftover backends of that server so
//!    that its shared memory is released, and retry if it was not yet. Readiness
//!    is polled with `pg_isready` on the socket.
//!
//! 5. **Use count** — every [`RunningCluster`] holds a shared `flock` on
//!    `DIR/zixly.users.lock` until it is stopped or dropped. The responsible
//!    process stops the server only when no other process holds one; otherwise
//!    it marks the server *handed over* in `DIR/zixly.owner.json` and leaves it
//!    running, and the last user stops it (a new start adopts it). So a short
//!    command that started the cluster never stops it under a `zixly up` that
//!    began meanwhile.
//!
//! [`RunningCluster::stop`] sends SIGINT (fast shutdown), waits, falls back to
//! SIGQUIT (immediate shutdown) and finally SIGKILL, and waits until no process
//! of the cluster is left. Dropping a [`RunningCluster`] that owns the server
//! without calling `stop` sends SIGINT as a best effort (nothing waits for it);
//! a process killed outright leaves the postmaster running, to be adopted by
//! the next start.
//!
//! # Running as root
//!
//! PostgreSQL refuses to run as root. When zixly runs as root (containers, CI)
//! `initdb` and `postgres` run as the `postgres` system user (or `nobody`),
//! via `CommandExt::{uid,gid}` (std also clears supplementary groups). `DIR/pg`
//! and `DIR/run` are chowned to that user; `DIR` itself gets `o+x` (search only)
//! if needed, and every parent directory of `DIR` must already be traversable by
//! that user — if not, start fails naming the directory and the fix.
//!
//! # Connection URLs
//!
//! [`EmbeddedCluster::superuser_url`] / [`EmbeddedCluster::url_for`] produce
//! `postgresql://USER:PASSWORD@%2Fabs%2Fpath%2Frun:5432/DBNAME`: the socket
//! directory, percent-encoded, is the host. Both libpq (`psql`) and
//! `tokio_postgres::Config::from_str` (0.7) accept this form: tokio-postgres
//! percent-decodes the host and treats a value starting with `/` as a Unix
//! socket directory (its docs show `postgresql://user:password@%2Fvar%2Frun%2Fpostgresql/mydb`);
//! the integration tests check both.

//!
//! # Modules
//!
//! `cluster` (options, paths, URLs), `start` (the start sequence and spawning `postgres`),
//! `initdb` (first start), `adopt` (a postmaster already running), `running` (the handle, use
//! count and stop), `shutdown` (signals and leftovers), `locks` (the two `flock`s), `owner`
//! (`DIR/zixly.owner.json`), `supervisor` (restarts under `zixly up`), `discovery` (server
//! binaries), `perms` (running as root), `procs` (`postmaster.pid` and `/proc`).

mod adopt;
mod cluster;
mod discovery;
mod error;
mod initdb;
mod locks;
mod owner;
mod perms;
mod procs;
mod running;
mod shutdown;
mod start;
mod supervisor;

use std::time::Duration;

pub use cluster::{ClusterOptions, EmbeddedCluster};
pub use discovery::{
    default_bindir_candidates, find_postgres_bindir, find_postgres_bindir_in, MIN_MAJOR,
};
pub use error::PgEmbedError;
pub use running::RunningCluster;
pub use supervisor::{StandDown, Supervisor};

/// Name of the superuser role created by initdb.
pub const SUPERUSER: &str = "postgres";
/// Port used in the socket name when no TCP port is configured.
pub const DEFAULT_PORT: u16 = 5432;

/// How often the start, adoption and shutdown loops poll.
const POLL: Duration = Duration::from_millis(20);
