//! The only module that speaks SQL: the connection pool, migrations, transactions, the lookups
//! that feed the pipeline and `apply(Plan)`. Every query here runs unchanged on both backends.

pub mod apply;
mod checkpoint;
pub mod flush;
pub mod attachments;
pub mod conf;
pub mod conn;
pub mod directory;
pub mod mailboxes;
pub mod messages;
pub mod notes;
pub mod outbox;
pub mod projects;
pub mod processed;
pub mod schema;
pub mod tags;
pub mod templates;
pub mod tickets;
pub mod workflow;

use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use conn::{AnyConnection, ConnOptions, DbUrl, Fixed, Run, Value};
pub use flush::WalFlush;

use crate::error::{Error, Result};

/// Migrations for SQLite, embedded in the binary.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("sql/sqlite");

/// Migrations for PostgreSQL, embedded in the binary: the same versions as `sql/sqlite/`, one
/// for one (tests/schema_parity.rs compares the schemas they make).
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("sql/postgres");

/// PostgreSQL advisory lock key held while migrating ("tkmigr" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x746b_6d69_6772;

/// The migration tree for a backend.
pub fn migrations_for(url: &DbUrl) -> EmbeddedMigrations {
    match url {
        DbUrl::Sqlite(_) => SQLITE_MIGRATIONS,
        DbUrl::Postgres(_) => POSTGRES_MIGRATIONS,
    }
}

/// Pool and connection settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections open at once.
    pub pool_size: u32,
    /// How long to wait for a free connection (or to open one) before failing.
    pub connect_timeout: Duration,
    /// Per-connection settings.
    pub conn: ConnOptions,
    /// SQLite: WAL frames (pages) from which the checkpoint thread copies the WAL and has it
    /// started over (see `checkpoint`).
    pub wal_restart_frames: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            pool_size: 8,
            connect_timeout: Duration::from_secs(10),
            conn: ConnOptions::default(),
            wal_restart_frames: checkpoint::RESTART_FRAMES,
        }
    }
}

/// A handle on the database: cheap to clone, shared by every thread.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<conn::Manager>,
    url: DbUrl,
    conn_opts: ConnOptions,
    /// SQLite has one writer at a time. Writers of this process queue here instead of in
    /// SQLite's busy handler, which sleeps in growing steps and wastes most of the time.
    /// (Other processes still meet `busy_timeout`.)
    write_lock: Option<Arc<Mutex<()>>>,
    /// SQLite only: the thread that checkpoints the WAL in the background.
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url.redacted()).finish()
    }
}

impl Store {
    /// Open the database named by `url`. Fails with the driver's reason when it cannot connect.
    pub fn open(url: &str, opts: StoreOptions) -> Result<Store> {
        let url = DbUrl::parse(url).map_err(Error::Config)?;
        // One direct attempt first, so the error names the cause (not just a pool timeout).
        drop(open_one(&url, &opts.conn)?);
        let conn_opts = opts.conn.clone();
        let manager = conn::Manager {
            url: url.clone(),
            opts: conn_opts.clone(),
        };
        let pool = r2d2::Pool::builder()
            .max_size(opts.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(opts.connect_timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        let (write_lock, _checkpointer) = match &url {
            DbUrl::Sqlite(path) => {
                let lock = Arc::new(Mutex::new(()));
                let checkpointer = checkpoint::Checkpointer::start(path.clone(), opts.conn.clone(), lock.clone(), opts.wal_restart_frames)?;
                (Some(lock), Some(Arc::new(checkpointer)))
            }
            DbUrl::Postgres(_) => (None, None),
        };
        Ok(Store { pool, url, conn_opts, write_lock, _checkpointer })
    }

    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// A pooled connection.
    pub fn conn(&self) -> Result<r2d2::PooledConnection<conn::Manager>> {
        self.pool.get().map_err(|e| {
            single_line(Error::Database(format!("cannot get a connection to {}: {e}", self.url.redacted())))
        })
    }

    /// Apply pending migrations (the tree of the URL's backend); returns the versions applied.
    /// On PostgreSQL the run uses a connection of its own that holds a session advisory lock, so
    /// daemons of several hosts starting at once migrate one after the other (the later ones
    /// find nothing pending); closing the connection releases the lock whatever happened.
    pub fn migrate(&self) -> Result<Vec<String>> {
        let run = |conn: &mut AnyConnection| {
            conn.run_pending_migrations(migrations_for(&self.url))
                .map(|v| v.iter().map(|v| v.to_string()).collect())
                .map_err(|e| Error::Database(format!("migration failed: {e}")))
        };
        match &self.url {
            DbUrl::Sqlite(_) => run(&mut *self.conn()?),
            DbUrl::Postgres(_) => {
                use diesel::connection::SimpleConnection;
                // Another process's migration is waited for however long it takes (no
                // lock_timeout): both would otherwise fail their start.
                let mut conn = open_one(&self.url, &ConnOptions::default())?;
                conn.batch_execute(&format!("SET lock_timeout = 0; SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                    .map_err(|e| single_line(Error::Database(format!("cannot take the migration lock: {e}"))))?;
                run(&mut conn).map_err(single_line)
            }
        }
    }

    /// Migrations not yet applied.
    pub fn pending_migrations(&self) -> Result<Vec<String>> {
        let mut conn = self.conn()?;
        let pending = conn
            .pending_migrations(migrations_for(&self.url))
            .map_err(|e| Error::Database(format!("cannot read migration state: {e}")))?;
        Ok(pending.iter().map(|m| m.name().to_string()).collect())
    }

    /// Run `f` in one write transaction and commit.
    pub fn write<T>(&self, f: impl FnOnce(&mut AnyConnection) -> Result<T>) -> Result<T> {
        self.transact(Finish::Commit, f)
    }

    /// Run `f` in one write transaction and roll it back (dry runs).
    pub fn write_rollback<T>(&self, f: impl FnOnce(&mut AnyConnection) -> Result<T>) -> Result<T> {
        self.transact(Finish::Rollback, f)
    }

    /// Run `f` in one write transaction that ends as `finish` says.
    pub fn transact<T>(&self, finish: Finish, f: impl FnOnce(&mut AnyConnection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let _writer = self.write_lock.as_ref().map(|l| l.lock().unwrap_or_else(|p| p.into_inner()));
        transaction(&mut conn, finish, f)
    }

    /// Write transactions for the group-commit writer, and what makes them durable. On SQLite:
    /// a connection of its own whose commits return before they are flushed, and the
    /// [`WalFlush`] that must have flushed them before anyone is told they were written (when
    /// SQLite's descriptor of the WAL cannot be found, a connection that flushes each commit,
    /// and no `WalFlush`). On PostgreSQL: the pool's connections, durable at each commit, and
    /// no `WalFlush`.
    pub fn committer(&self) -> Result<(Committer, Option<WalFlush>)> {
        let DbUrl::Sqlite(path) = &self.url else {
            return Ok((Committer { store: self.clone(), own: None }, None));
        };
        let (flush, flush_commits) = if !self.conn_opts.flush_commits {
            (None, false)
        } else {
            match WalFlush::open(path, &self.conn_opts) {
                Ok(f) => (Some(f), false),
                Err(e) => {
                    tracing::info!("{e}; each commit flushes the WAL itself");
                    (None, true)
                }
            }
        };
        let opts = ConnOptions { flush_commits, ..self.conn_opts.clone() };
        let own = open_one(&self.url, &opts)?;
        Ok((Committer { store: self.clone(), own: Some(own) }, flush))
    }

    /// Run `f` with a connection, outside an explicit transaction (reads).
    pub fn read<T>(&self, f: impl FnOnce(&mut AnyConnection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        f(&mut conn).map_err(single_line)
    }
}

/// One connection outside the pool; the error names the cause.
fn open_one(url: &DbUrl, opts: &ConnOptions) -> Result<AnyConnection> {
    conn::establish(url, opts)
        .map_err(|e| single_line(Error::Database(format!("cannot open {}: {}", url.redacted(), e.to_string().trim()))))
}

/// The group-commit writer's write transactions ([`Store::committer`]).
pub struct Committer {
    store: Store,
    /// SQLite: the writer's own connection.
    own: Option<AnyConnection>,
}

impl Committer {
    /// How long a statement of this committer waits for a lock held elsewhere.
    pub fn lock_wait(&self) -> std::time::Duration {
        self.store.conn_opts.busy_timeout
    }

    /// Run `f` in one write transaction that ends as `finish` says. On SQLite the commit is
    /// durable only once the `WalFlush` that came with this committer (if any) has flushed.
    pub fn transact<T>(&mut self, finish: Finish, f: impl FnOnce(&mut AnyConnection) -> Result<T>) -> Result<T> {
        match &mut self.own {
            Some(conn) => {
                let _writer = self.store.write_lock.as_ref().map(|l| l.lock().unwrap_or_else(|p| p.into_inner()));
                transaction(conn, finish, f)
            }
            None => self.store.transact(finish, f),
        }
    }
}

/// A database error on one line. libpq's messages span several (`connection refused` is
/// followed by "\n\tIs the server running on that host …?", a lost connection by "\n\tThis
/// probably means …"), and they end up in the mail log, whose every entry must be one line
/// (one message, one line, found by its queue id). SQLite's messages are one line already.
pub fn single_line(e: Error) -> Error {
    match e {
        Error::Database(m) if m.contains(['\n', '\r']) => {
            let mut out = String::with_capacity(m.len());
            for line in m.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(line);
            }
            Error::Database(out)
        }
        e => e,
    }
}

/// Run a script of SQL statements (admin-supplied configuration) inside the current transaction.
pub fn execute_script(conn: &mut AnyConnection, sql: &str) -> Result<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute(sql)?;
    Ok(())
}

/// How a transaction ends when its body succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Commit,
    Rollback,
}

/// Run `f` in a transaction. SQLite transactions take the write lock up front (`BEGIN
/// IMMEDIATE`), so a read-then-write never fails on a lock upgrade. A panic in `f` rolls back
/// and becomes an internal error.
pub fn transaction<T>(
    conn: &mut AnyConnection,
    finish: Finish,
    f: impl FnOnce(&mut AnyConnection) -> Result<T>,
) -> Result<T> {
    transaction_inner(conn, finish, f).map_err(single_line)
}

fn transaction_inner<T>(
    conn: &mut AnyConnection,
    finish: Finish,
    f: impl FnOnce(&mut AnyConnection) -> Result<T>,
) -> Result<T> {
    type Tm = <AnyConnection as Connection>::TransactionManager;
    match conn {
        AnyConnection::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
        AnyConnection::Postgres(_) => Tm::begin_transaction(conn)?,
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
    match result {
        Ok(Ok(v)) if finish == Finish::Commit => {
            if let Err(e) = Tm::commit_transaction(conn) {
                let _ = Tm::rollback_transaction(conn);
                return Err(e.into());
            }
            Ok(v)
        }
        Ok(Ok(v)) => {
            Tm::rollback_transaction(conn)?;
            Ok(v)
        }
        Ok(Err(e)) => {
            let _ = Tm::rollback_transaction(conn);
            Err(e)
        }
        Err(panic) => {
            let _ = Tm::rollback_transaction(conn);
            Err(Error::Internal(format!("processing panicked: {}", crate::error::panic_text(&*panic))))
        }
    }
}

/// Run `f` inside a savepoint of the current transaction: on error only its work is undone.
pub fn savepoint<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> std::result::Result<T, StoreFail>,
) -> std::result::Result<T, StoreFail> {
    conn.transaction(f)
}

/// An error inside a savepoint, keeping diesel's kind so callers can react to conflicts.
#[derive(Debug)]
pub enum StoreFail {
    Diesel(DieselError),
    Other(Error),
}

impl From<DieselError> for StoreFail {
    fn from(e: DieselError) -> Self {
        StoreFail::Diesel(e)
    }
}

impl From<Error> for StoreFail {
    fn from(e: Error) -> Self {
        StoreFail::Other(e)
    }
}

impl From<StoreFail> for Error {
    fn from(e: StoreFail) -> Self {
        single_line(match e {
            StoreFail::Diesel(d) => d.into(),
            StoreFail::Other(e) => e,
        })
    }
}

impl StoreFail {
    /// A unique key was already taken (another message or host got there first).
    pub fn is_unique_violation(&self) -> bool {
        is_unique_violation(match self {
            StoreFail::Diesel(d) => d,
            StoreFail::Other(_) => return false,
        })
    }
}

pub fn is_unique_violation(e: &DieselError) -> bool {
    matches!(e, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
}

/// Longest indexed text value (bytes) stored as it is.
pub const MAX_INDEX_KEY: usize = 1000;

/// An indexed text value as stored and looked up: unchanged up to [`MAX_INDEX_KEY`] bytes,
/// else `sha256:<hex>` of it. PostgreSQL refuses B-tree entries over about 2.7 KB, so a
/// hostile 4 KB sender address, alert id or Message-ID would otherwise fail every attempt (and
/// the message be tempfailed for good); equal values still compare equal, so duplicate
/// detection, threading and the loop guard work on such values too. Both backends store the
/// same.
pub fn index_key(value: &str) -> std::borrow::Cow<'_, str> {
    if value.len() <= MAX_INDEX_KEY {
        return std::borrow::Cow::Borrowed(value);
    }
    std::borrow::Cow::Owned(format!("sha256:{}", crate::pipeline::parse::sha256_hex(value.as_bytes())))
}

/// `lower(text)` in SQL; both backends have it.
pub mod sqlfn {
    diesel::define_sql_function! {
        /// Lower-case a text value.
        fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
    }
    diesel::define_sql_function! {
        /// Lower-case a nullable text value.
        #[sql_name = "lower"]
        fn lower_nullable(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
    }
}

/// Query plans of SQLite for tests: that a lookup on a table which grows with the mail is served
/// by an index.
#[cfg(test)]
pub(crate) mod plans {
    use super::{Store, StoreOptions};
    use diesel::RunQueryDsl;
    use diesel::query_builder::QueryFragment;
    use diesel::sqlite::Sqlite;

    #[derive(diesel::QueryableByName)]
    struct PlanStep {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }

    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }

    /// The one integer a query selects, named `n`.
    pub fn int(c: &mut super::AnyConnection, sql: &str) -> crate::error::Result<i64> {
        Ok(diesel::sql_query(sql).get_result::<N>(c)?.n)
    }

    /// A migrated SQLite store in a temporary directory.
    pub fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite:{}", dir.path().join("t.db").display()), StoreOptions::default()).unwrap();
        store.migrate().unwrap();
        (dir, store)
    }

    /// SQLite's plan of a statement (its SQL as diesel writes it, binds as `?`).
    pub fn of<Q: QueryFragment<Sqlite>>(store: &Store, query: &Q) -> Vec<String> {
        let sql = diesel::debug_query::<Sqlite, _>(query).to_string();
        let sql = sql.split(" -- binds:").next().unwrap();
        let steps: Vec<PlanStep> = store.read(|c| Ok(diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(c)?)).unwrap();
        steps.into_iter().map(|s| s.detail).collect()
    }

    /// Assert that the statement searches `table` through `index`.
    pub fn assert_uses<Q: QueryFragment<Sqlite>>(store: &Store, query: &Q, table: &str, index: &str) {
        let plan = of(store, query);
        assert!(
            plan.iter().any(|d| d.starts_with(&format!("SEARCH {table} USING")) && d.contains(&format!("INDEX {index} "))),
            "{}\n{plan:#?}",
            diesel::debug_query::<Sqlite, _>(query)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_become_one_line() {
        let libpq = "cannot get a connection to postgres://tm@db/tm: connection to server at \"127.0.0.1\", port 5432 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\n";
        assert_eq!(
            single_line(Error::Database(libpq.into())).to_string(),
            "database error: cannot get a connection to postgres://tm@db/tm: connection to server at \"127.0.0.1\", port 5432 failed: Connection refused Is the server running on that host and accepting TCP/IP connections?"
        );
        assert_eq!(single_line(Error::Database("database is locked".into())).to_string(), "database error: database is locked");
        assert_eq!(single_line(Error::Usage("a\nb".into())).to_string(), "a\nb");
    }
}
