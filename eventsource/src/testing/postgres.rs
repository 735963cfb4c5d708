//! A throwaway PostgreSQL server for tests (features `testing` and `postgres`): the one
//! this project's own suites run on, for yours.
//!
//! With `EVENTSOURCE_TEST_POSTGRES_URL` set, tests use that server. Otherwise, where the
//! PostgreSQL binaries are installed (`initdb`, `pg_ctl` on the PATH or under
//! `/usr/lib/postgresql/*/bin`), the first test that asks starts a private cluster in a
//! temp dir, listening on 127.0.0.1 on a free port (as the `postgres` user when the tests
//! run as root), and a watchdog stops it and removes the dir when the test process ends.
//! Without either, [`server`] returns `None` after printing that the PostgreSQL tests
//! are skipped, or panics when `EVENTSOURCE_REQUIRE_POSTGRES=1` (as `.ci/run` sets).
//!
//! Each test works in a schema of its own, so tests run in parallel on one server.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> eventsource::Result<()> {
//! use eventsource::prelude::*;
//! use eventsource::testing::postgres;
//!
//! // None (after saying so on stderr) where no server can be had: the test passes empty.
//! let Some(server) = postgres::server() else { return Ok(()) };
//! let store = server.store().await; // a fresh, initialized schema of its own
//! assert_eq!(store.get_global_position().await?, 0);
//! # Ok(()) }
//! ```

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::store::postgres::{PostgresEventStore, PostgresStoreOptions};
use uuid::Uuid;

/// The URL variable of an external server.
pub const URL_VAR: &str = "EVENTSOURCE_TEST_POSTGRES_URL";

/// A PostgreSQL server the tests can use.
#[derive(Debug)]
pub struct PgServer {
    url: String,
    /// The cluster this process manages (none for an external server).
    cluster: Option<Cluster>,
}

#[derive(Debug)]
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
}

impl PgServer {
    /// The server's URL (database `postgres`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Options for a store in a fresh schema of its own.
    pub fn options(&self) -> PostgresStoreOptions {
        let schema = format!("t_{}", Uuid::new_v4().simple());
        PostgresEventStore::options(&self.url)
            .schema(schema)
            .max_connections(8)
    }

    /// A store in a fresh, initialized schema.
    ///
    /// # Panics
    /// When the server refuses the connection or the schema cannot be created (the test
    /// fails with the store's error).
    pub async fn store(&self) -> PostgresEventStore {
        let store = self
            .options()
            .connect()
            .await
            .expect("connect to PostgreSQL");
        store.initialize().await.expect("initialize");
        store
    }

    /// `true` when this process manages the server (so it can stop and restart it).
    pub fn is_managed(&self) -> bool {
        self.cluster.is_some()
    }

    /// Restarts the server (fast shutdown: open connections are cut).
    ///
    /// # Panics
    /// On an external server, or when `pg_ctl` fails.
    pub fn restart(&self) {
        let cluster = self
            .cluster
            .as_ref()
            .expect("only a managed cluster restarts");
        cluster.pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60"]);
    }

    /// Stops the server now and removes its directory (a dedicated server's end).
    pub fn stop(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.pg_ctl(&["stop", "-m", "immediate", "-w"]);
            let _ = std::fs::remove_dir_all(&cluster.dir);
        }
    }
}

impl Cluster {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.arg("-u").arg("postgres").arg("--").arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn pg_ctl(&self, args: &[&str]) {
        assert!(
            self.try_pg_ctl(args),
            "pg_ctl {args:?} failed; see {}",
            self.dir.join("server.log").display()
        );
    }

    fn try_pg_ctl(&self, args: &[&str]) -> bool {
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl")
            .success()
    }
}

/// The directory of `initdb` and `pg_ctl`, if PostgreSQL is installed.
fn find_binaries() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|d| has(d)) {
            return Some(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| has(d))
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Not root, or root with a `postgres` user to run the server as.
fn can_run_server() -> bool {
    !is_root()
        || Command::new("id")
            .arg("-u")
            .arg("postgres")
            .output()
            .is_ok_and(|o| o.status.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts a new cluster in a temp dir; a watchdog stops it when this process ends.
// The watchdog outlives this process on purpose (init reaps it): it is never waited for.
#[allow(clippy::zombie_processes)]
fn start_cluster(bin: PathBuf) -> PgServer {
    let dir = std::env::temp_dir().join(format!("eventsource-pg-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create the cluster dir");
    let as_postgres = is_root();
    if as_postgres {
        // PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
        run(
            Command::new("chown").arg("postgres:").arg(&dir),
            "chown the cluster dir",
        );
    }
    let cluster = Cluster {
        bin,
        dir: dir.clone(),
        as_postgres,
    };
    run(
        cluster
            .command("initdb")
            .arg("-D")
            .arg(cluster.data())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]),
        "initdb",
    );
    // TCP only (a unix socket path in a long TMPDIR can exceed the 107-byte limit). The
    // port is free when picked; another process may take it first: try again.
    let mut port = 0;
    let started = (0..3).any(|_| {
        port = free_port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' \
             -c max_connections=400 -c fsync=off -c full_page_writes=off"
        );
        cluster.try_pg_ctl(&["start", "-w", "-t", "60", "-o", &options])
    });
    assert!(
        started,
        "the test PostgreSQL server did not start; see {}",
        dir.join("server.log").display()
    );
    // The watchdog: when this process is gone, stop the cluster and remove its dir.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {ctl} -D '{data}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        ctl = if as_postgres {
            format!("runuser -u postgres -- '{}'", cluster.bin.join("pg_ctl").display())
        } else {
            format!("'{}'", cluster.bin.join("pg_ctl").display())
        },
        data = cluster.data().display(),
        dir = dir.display(),
    );
    // In a process group of its own: a CI timeout that kills the tests' group still
    // leaves the watchdog to stop the server.
    Command::new("sh")
        .process_group(0)
        .arg("-c")
        .arg(stop)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the cluster watchdog");
    PgServer {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        cluster: Some(cluster),
    }
}

fn unavailable() -> Option<PgServer> {
    let message = format!(
        "PostgreSQL tests SKIPPED: no PostgreSQL binaries (initdb, pg_ctl) found (or, as root, no `postgres` user to run them as) and {URL_VAR} is not set"
    );
    if std::env::var("EVENTSOURCE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("{message}, but EVENTSOURCE_REQUIRE_POSTGRES=1");
    }
    eprintln!("\n*** {message} ***\n");
    None
}

/// The server shared by the tests of this process, started on first use.
///
/// # Panics
/// When the binaries are there but the cluster does not start (`initdb` or `pg_ctl`
/// fails; the message names the server log), and without any server when
/// `EVENTSOURCE_REQUIRE_POSTGRES=1`.
pub fn server() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var(URL_VAR) {
            Ok(url) if !url.is_empty() => Some(PgServer { url, cluster: None }),
            _ => match find_binaries() {
                Some(bin) if can_run_server() => Some(start_cluster(bin)),
                _ => unavailable(),
            },
        })
        .as_ref()
}

/// A server of its own (for tests that restart it), or `None` where this process cannot
/// start one (no binaries, or an external server: said loudly).
pub fn dedicated_server() -> Option<PgServer> {
    match find_binaries() {
        Some(bin) if can_run_server() => Some(start_cluster(bin)),
        _ => {
            eprintln!("\n*** a test needing its own PostgreSQL cluster is SKIPPED: no PostgreSQL binaries ***\n");
            unavailable()
        }
    }
}
