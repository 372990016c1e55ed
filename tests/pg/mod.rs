//! PostgreSQL for tests: a server to talk to, and a fresh database per test.
//!
//! Use it from a test file with `mod pg;` (Cargo does not build `tests/pg/mod.rs` as a test of
//! its own).
//!
//! * `TICKETMILTER_TEST_PG` set (e.g. `postgres://postgres@127.0.0.1:55432/postgres`): that
//!   server is used as it is; nothing is started or stopped. Databases made by
//!   [`fresh_database`] stay there unless a test drops them ([`drop_database`]).
//! * Unset: the first call in a test process starts a private cluster with `tests/pg-cluster
//!   start` (initdb + pg_ctl on a free loopback port, state in
//!   `/tmp/ticketmilter-pg-test-<pid>`), and the process takes it down again:
//!   - on every normal end of the test binary, passing or failing (libtest returns from `main`
//!     or calls `exit`), a `libc::atexit` handler runs `tests/pg-cluster stop`, which stops the
//!     server and removes its directory before the process is gone;
//!   - when the binary dies without running exit handlers (SIGKILL, a timeout, abort), a small
//!     watchdog started alongside (its own process group, stdio on /dev/null) notices within a second
//!     that the test process is gone and runs the same `stop`. On a normal end the atexit handler
//!     kills the watchdog, so nothing of ours outlives the test binary.
//!
//! Nothing is skipped silently: when no server can be had, the calling test panics and says why.
#![allow(dead_code)]

use diesel::{Connection, PgConnection, RunQueryDsl};
use std::path::PathBuf;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable naming an existing server to use instead of a private cluster.
pub const ENV: &str = "TICKETMILTER_TEST_PG";

/// `tests/pg-cluster`.
pub fn cluster_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pg-cluster")
}

/// The URL of the server tests use (its maintenance database, normally `postgres`): the one
/// named by `TICKETMILTER_TEST_PG`, else a private cluster started once per test process.
/// Panics with the reason when neither works.
pub fn server_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var(ENV) {
        Ok(url) if !url.trim().is_empty() => {
            let url = url.trim().to_string();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                panic!("{ENV}={url:?} is not a PostgreSQL URL (want postgres://user@host:port/database)");
            }
            url
        }
        _ => start_private_cluster(),
    })
    .clone()
}

/// A new, empty database on the test server (named `tm_<pid>_<counter>_<nanos>`); returns its
/// URL. Migrations are not applied.
pub fn fresh_database() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let server = server_url();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let name = format!("tm_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos);
    let mut conn = connect(&server);
    // template0: never in use by anyone else, so concurrent creations cannot collide on it, and
    // the database is UTF-8 whatever the server's default template says. Locale C, so that text
    // sorts by code point and lower() folds ASCII only, as in SQLite (a production database
    // with, say, en_US.UTF-8 sorts and folds differently).
    diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"))
        .execute(&mut conn)
        .unwrap_or_else(|e| panic!("cannot create database {name} on {}: {e}", redact(&server)));
    with_database(&server, &name)
}

/// Move every identity column of the database at `url` past the largest value in it. SQLite
/// hands out max(rowid)+1 by itself; a PostgreSQL identity only counts what it handed out, so
/// after rows were inserted with fixed ids (test fixtures such as tests/fixtures/directory.sql)
/// the next insert would collide. (The migrations do this for their own seed rows.)
pub fn sync_identities(url: &str) {
    #[derive(diesel::QueryableByName)]
    struct Col {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        column_name: String,
    }
    let mut conn = connect(url);
    let cols: Vec<Col> = diesel::sql_query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )
    .load(&mut conn)
    .unwrap_or_else(|e| panic!("cannot list identity columns: {e}"));
    for Col { table_name: t, column_name: c } in cols {
        diesel::sql_query(format!(
            "SELECT setval(pg_get_serial_sequence('\"{t}\"', '{c}'), COALESCE((SELECT max(\"{c}\") FROM \"{t}\"), 0) + 1, false)"
        ))
        .execute(&mut conn)
        .unwrap_or_else(|e| panic!("cannot move the identity of {t}.{c}: {e}"));
    }
}

/// Drop a database made by [`fresh_database`] (closing any connections still open to it).
pub fn drop_database(url: &str) {
    let server = server_url();
    let name = database_of(url);
    assert!(name.starts_with("tm_"), "drop_database only drops test databases (tm_…), not {name:?}");
    let mut conn = connect(&server);
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .unwrap_or_else(|e| panic!("cannot drop database {name} on {}: {e}", redact(&server)));
}

/// A direct diesel connection, or a panic naming the server and the cause.
pub fn connect(url: &str) -> PgConnection {
    PgConnection::establish(url).unwrap_or_else(|e| {
        panic!(
            "cannot connect to PostgreSQL at {}: {}{}",
            redact(url),
            e.to_string().trim(),
            if std::env::var(ENV).is_ok() { format!(" (the server comes from {ENV})") } else { String::new() }
        )
    })
}

/// `url` with its database (the path) replaced by `db`; a query string is kept.
pub fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or_else(|| panic!("not a URL: {url:?}"));
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let authority = main.split('/').next().unwrap_or_default();
    let mut out = format!("{scheme}://{authority}/{db}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The database (path) of a URL.
pub fn database_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let main = rest.split('?').next().unwrap_or_default();
    main.split_once('/').map(|(_, d)| d.to_string()).unwrap_or_default()
}

fn redact(url: &str) -> String {
    match url.split_once("://").and_then(|(s, r)| r.split_once('@').map(|(u, h)| (s, u, h))) {
        Some((s, userinfo, host)) if userinfo.contains(':') => {
            format!("{s}://{}:***@{host}", userinfo.split(':').next().unwrap_or_default())
        }
        _ => url.to_string(),
    }
}

/// The private cluster of this process: its state directory and the watchdog's pid.
struct Private {
    dir: PathBuf,
    watchdog: Option<u32>,
}

static PRIVATE: OnceLock<Private> = OnceLock::new();

fn start_private_cluster() -> String {
    let script = cluster_script();
    // Under /tmp, not $TMPDIR: the postgres user (the server's owner when we run as root) must
    // be able to reach the directory.
    let dir = PathBuf::from(format!("/tmp/ticketmilter-pg-test-{}", std::process::id()));
    let out = Command::new(&script)
        .arg("start")
        .env("TICKETMILTER_PG_DIR", &dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    if !out.status.success() {
        // Whatever got created is removed again (best effort).
        let _ = Command::new(&script).arg("stop").env("TICKETMILTER_PG_DIR", &dir).output();
        panic!(
            "no PostgreSQL for the tests: `{} start` failed ({}):\n{}\nSet {ENV} to a server URL to use an existing server instead.",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(url.starts_with("postgres://"), "`pg-cluster start` printed no URL: {url:?}");

    // The watchdog: stops the cluster when this process is gone without running exit handlers.
    // Its own process group, so a Ctrl-C to the test run does not take it down before it acted.
    let watchdog = Command::new("bash")
        .args(["-c", r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$0" stop"#])
        .arg(&script)
        .arg(std::process::id().to_string())
        .env("TICKETMILTER_PG_DIR", &dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
        .map(|c| c.id());
    let _ = PRIVATE.set(Private { dir, watchdog });
    unsafe {
        libc::atexit(stop_private_cluster);
    }
    url
}

extern "C" fn stop_private_cluster() {
    let Some(p) = PRIVATE.get() else { return };
    if let Some(pid) = p.watchdog {
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
    let out = Command::new(cluster_script())
        .arg("stop")
        .env("TICKETMILTER_PG_DIR", &p.dir)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "tests/pg: stopping the private PostgreSQL in {} failed: {}",
            p.dir.display(),
            String::from_utf8_lossy(&o.stderr).trim_end()
        ),
        Err(e) => eprintln!("tests/pg: cannot run pg-cluster stop: {e}"),
    }
}
