//! Shared test support: a fresh SQLite database with the test directory, a fixed clock.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use std::path::{Path, PathBuf};

use ticketmilter::model::Envelope;
use ticketmilter::store::{Store, StoreOptions};
use ticketmilter::{Engine, store};

pub const DIRECTORY_SQL: &str = include_str!("../fixtures/directory.sql");

/// The instant every test message is received at.
pub fn test_clock() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
}

/// A migrated SQLite database in a temporary directory, loaded with `sql`.
pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub store: Store,
}

impl TestDb {
    pub fn new(sql: &str) -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let store = Store::open(path.to_str().unwrap(), StoreOptions::default()).expect("open");
        store.migrate().expect("migrate");
        store.write(|c| store::execute_script(c, sql)).expect("fixture");
        TestDb { dir, path, store }
    }

    /// The test directory of tests/fixtures/directory.sql.
    pub fn directory() -> TestDb {
        TestDb::new(DIRECTORY_SQL)
    }

    pub fn engine(&self) -> Engine {
        Engine::new(self.store.clone()).expect("engine")
    }

    pub fn url(&self) -> String {
        format!("sqlite:{}", self.path.display())
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
            store::AnyConnection::Sqlite(c) => diesel::sql_query(sql).get_result::<N>(c).unwrap().n,
            store::AnyConnection::Postgres(c) => diesel::sql_query(sql).get_result::<N>(c).unwrap().n,
        }
    }
}

/// An envelope from `from` to `rcpts`, received at the test clock.
pub fn envelope(from: &str, rcpts: &[&str]) -> Envelope {
    let mut e = Envelope::new(rcpts.iter().map(|s| s.to_string()));
    e.sender = from.to_string();
    e.received_at = test_clock();
    e
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
