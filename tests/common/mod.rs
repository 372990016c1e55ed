//! Shared test support: a fresh database with the test directory, a fixed clock.
//!
//! The backend of every database made here is chosen in one place, [`backend`]: the environment
//! variable `TICKETMILTER_TEST_BACKEND` — unset, empty or `sqlite`: a SQLite file in a temporary
//! directory (as always); `postgres`: a fresh database on the PostgreSQL server of
//! `TICKETMILTER_TEST_PG` (see tests/pg/mod.rs; without it each test process starts a private
//! cluster of its own), dropped again when the test passed (kept, and named, when it failed).
//! `tests/run-all` runs the whole suite once with each.
//!
//! The few statements whose SQL must differ between the backends (triggers, locks, blob search)
//! are here too, one function each.
#![allow(dead_code)]

pub mod daemon;
pub mod mta;
#[path = "../pg/mod.rs"]
pub mod pg;

use chrono::{DateTime, TimeZone, Utc};
use std::path::{Path, PathBuf};

use ticketmilter::model::Envelope;
use ticketmilter::store::{Store, StoreOptions};
use ticketmilter::{Engine, store};

pub const DIRECTORY_SQL: &str = include_str!("../fixtures/directory.sql");

/// The variable that selects the backend of the test databases.
pub const BACKEND_ENV: &str = "TICKETMILTER_TEST_BACKEND";

/// The instant every test message is received at.
pub fn test_clock() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
}

// ------------------------------------------------------------------------------------------
// The backend
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backend the tests of this process run on (`TICKETMILTER_TEST_BACKEND`). An unknown value
/// fails the test rather than silently testing SQLite.
pub fn backend() -> Backend {
    match std::env::var(BACKEND_ENV) {
        Err(std::env::VarError::NotPresent) => Backend::Sqlite,
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" | "pg" => Backend::Postgres,
            other => panic!("{BACKEND_ENV}={other:?}: expected sqlite or postgres"),
        },
        Err(e) => panic!("{BACKEND_ENV}: {e}"),
    }
}

pub fn is_postgres() -> bool {
    backend() == Backend::Postgres
}

/// A new, empty database (no migrations applied) of the selected backend; its URL.
/// SQLite: the file `name.db` in `dir`; PostgreSQL: a fresh database on the test server.
pub fn new_database(dir: &Path, name: &str) -> String {
    match backend() {
        Backend::Sqlite => format!("sqlite:{}", dir.join(format!("{name}.db")).display()),
        Backend::Postgres => pg::fresh_database(),
    }
}

/// Call after loading SQL that inserts rows with fixed ids (tests/fixtures/directory.sql and
/// the like): PostgreSQL's identity columns are moved past them (SQLite needs nothing).
pub fn fixture_loaded(url: &str) {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        pg::sync_identities(url);
    }
}

/// Drop a database made by [`new_database`] when it lives on PostgreSQL (a SQLite file goes
/// with its temporary directory). Never panics: a failure is only reported.
pub fn discard_database(url: &str) {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return;
    }
    use diesel::{Connection, PgConnection, RunQueryDsl};
    let name = pg::database_of(url);
    if !name.starts_with("tm_") {
        return;
    }
    if std::thread::panicking() {
        eprintln!("keeping the PostgreSQL database of the failed test: {url}");
        return;
    }
    let server = pg::with_database(url, "postgres");
    match PgConnection::establish(&server) {
        Ok(mut c) => {
            if let Err(e) = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c) {
                eprintln!("cannot drop the test database {name}: {e}");
            }
        }
        Err(e) => eprintln!("cannot connect to drop the test database {name}: {e}"),
    }
}

// ------------------------------------------------------------------------------------------
// SQL that differs between the backends
// ------------------------------------------------------------------------------------------

/// A trigger `name` that makes every insert into `table` (only rows where `when` holds, an SQL
/// condition on NEW, when given) fail with `message`.
pub fn refuse_inserts_sql(name: &str, table: &str, when: Option<&str>, message: &str) -> String {
    match backend() {
        Backend::Sqlite => format!(
            "CREATE TRIGGER {name} BEFORE INSERT ON {table} {} BEGIN SELECT RAISE(ABORT, '{message}'); END;",
            when.map(|w| format!("WHEN {w}")).unwrap_or_default()
        ),
        Backend::Postgres => format!(
            "CREATE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{message}'; END $$;\n\
             CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW {} EXECUTE FUNCTION {name}_fn();",
            when.map(|w| format!("WHEN ({w})")).unwrap_or_default()
        ),
    }
}

/// Drop the trigger made by [`refuse_inserts_sql`].
pub fn drop_trigger_sql(name: &str, table: &str) -> String {
    match backend() {
        Backend::Sqlite => format!("DROP TRIGGER {name};"),
        Backend::Postgres => format!("DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}_fn();"),
    }
}

/// Drop a table that others may reference (a broken schema).
pub fn drop_table_sql(table: &str) -> String {
    match backend() {
        Backend::Sqlite => format!("PRAGMA foreign_keys = OFF; DROP TABLE {table};"),
        Backend::Postgres => format!("DROP TABLE {table} CASCADE;"),
    }
}

/// An SQL condition: the blob column `column` contains the bytes `needle`.
pub fn blob_contains_sql(column: &str, needle: &[u8]) -> String {
    let hex: String = needle.iter().map(|b| format!("{b:02x}")).collect();
    match backend() {
        Backend::Sqlite => format!("instr({column}, x'{hex}') > 0"),
        Backend::Postgres => format!("position('\\x{hex}'::bytea in {column}) > 0"),
    }
}

/// Statements that open a transaction holding the lock every writer of the milter needs, until
/// `ROLLBACK`: SQLite's write lock (`BEGIN IMMEDIATE` and a write); on PostgreSQL a lock on the
/// tables a conversion writes that blocks their writers but not their readers.
pub fn hold_write_lock_sql() -> &'static str {
    match backend() {
        Backend::Sqlite => "BEGIN IMMEDIATE; INSERT INTO settings (key, value) VALUES ('lock', 'held');",
        Backend::Postgres => "BEGIN; LOCK TABLE processed_messages, tickets, number_sequences IN EXCLUSIVE MODE;",
    }
}

// ------------------------------------------------------------------------------------------
// The test database
// ------------------------------------------------------------------------------------------

/// A migrated database of the selected backend, loaded with `sql`; a temporary directory for
/// whatever else a test writes (configuration, sockets).
pub struct TestDb {
    pub dir: tempfile::TempDir,
    url: String,
    pub store: Store,
}

impl TestDb {
    pub fn new(sql: &str) -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = new_database(dir.path(), "t");
        let store = Store::open(&url, StoreOptions::default()).expect("open");
        store.migrate().expect("migrate");
        store.write(|c| store::execute_script(c, sql)).expect("fixture");
        fixture_loaded(&url);
        TestDb { dir, url, store }
    }

    /// The test directory of tests/fixtures/directory.sql.
    pub fn directory() -> TestDb {
        TestDb::new(DIRECTORY_SQL)
    }

    /// A database made and loaded by someone else (e.g. `ticketmilter load`), with `dir` as its
    /// directory; dropped like one made by [`TestDb::new`].
    pub fn attach(dir: tempfile::TempDir, url: String) -> TestDb {
        let store = Store::open(&url, StoreOptions::default()).expect("open the test database");
        TestDb { dir, url, store }
    }

    pub fn engine(&self) -> Engine {
        Engine::new(self.store.clone()).expect("engine")
    }

    /// The database URL (`sqlite:PATH` or `postgres://…`), as `--database` takes it.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Run an SQL script in one transaction (rows with fixed ids are fine: see
    /// [`fixture_loaded`]).
    pub fn exec(&self, sql: &str) {
        self.store.write(|c| store::execute_script(c, sql)).unwrap_or_else(|e| panic!("{sql}: {e}"));
        fixture_loaded(&self.url);
    }

    /// One integer from a query such as `SELECT count(*) AS n FROM tickets`.
    pub fn count(&self, sql: &str) -> i64 {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.store.conn().unwrap();
        match &mut *conn {
            store::AnyConnection::Sqlite(c) => diesel::sql_query(sql).get_result::<N>(c).unwrap_or_else(|e| panic!("{sql}: {e}")).n,
            store::AnyConnection::Postgres(c) => diesel::sql_query(sql).get_result::<N>(c).unwrap_or_else(|e| panic!("{sql}: {e}")).n,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        discard_database(&self.url);
    }
}

/// An envelope from `from` to `rcpts`, received at the test clock.
pub fn envelope(from: &str, rcpts: &[&str]) -> Envelope {
    let mut e = Envelope::new(rcpts.iter().map(|s| s.to_string()));
    e.sender = from.to_string();
    e.received_at = test_clock();
    e
}

/// A loopback TCP port free at the moment of asking (for a daemon about to bind it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The built binary (cargo builds it for integration tests).
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ticketmilter"))
}

/// Every corpus message, sorted by name.
pub fn corpus_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/corpus exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    v.sort();
    v
}
