//! Database URLs, the connection type over both backends, and the pool manager that chooses the
//! backend from the URL scheme and prepares every new connection.

use diesel::connection::SimpleConnection;
use diesel::dsl::Limit;
use diesel::query_dsl::methods::{ExecuteDsl, LimitDsl, LoadQuery};
use diesel::{Connection, ConnectionError, PgConnection, QueryResult, RunQueryDsl, SqliteConnection};
use std::time::Duration;

/// One connection to either backend; all store code is written against this type.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Running a query on the backend connection inside an [`AnyConnection`].
///
/// `diesel::MultiConnection` serialises every query to SQL text on each of the passes diesel
/// makes over it (cache key, binds, the statement itself) and cannot cache prepared statements
/// by type; on the writer's hot path that was a quarter of its time. These methods match on
/// the connection and run the same query on the concrete `SqliteConnection` or `PgConnection`
/// (each query is compiled for both), so diesel's per-backend statement cache applies. Every
/// query of the store goes through them.
pub trait Run: Sized {
    /// `RunQueryDsl::execute` on the backend connection.
    fn execute_on(self, conn: &mut AnyConnection) -> QueryResult<usize>
    where
        Self: RunQueryDsl<SqliteConnection> + ExecuteDsl<SqliteConnection>,
        Self: RunQueryDsl<PgConnection> + ExecuteDsl<PgConnection>,
    {
        match conn {
            AnyConnection::Sqlite(c) => RunQueryDsl::<SqliteConnection>::execute(self, c),
            AnyConnection::Postgres(c) => RunQueryDsl::<PgConnection>::execute(self, c),
        }
    }

    /// `RunQueryDsl::load` on the backend connection.
    fn load_on<'q, U>(self, conn: &mut AnyConnection) -> QueryResult<Vec<U>>
    where
        Self: LoadQuery<'q, SqliteConnection, U> + LoadQuery<'q, PgConnection, U>,
    {
        match conn {
            AnyConnection::Sqlite(c) => RunQueryDsl::<SqliteConnection>::load(self, c),
            AnyConnection::Postgres(c) => RunQueryDsl::<PgConnection>::load(self, c),
        }
    }

    /// `RunQueryDsl::get_result` on the backend connection.
    fn get_result_on<'q, U>(self, conn: &mut AnyConnection) -> QueryResult<U>
    where
        Self: LoadQuery<'q, SqliteConnection, U> + LoadQuery<'q, PgConnection, U>,
    {
        match conn {
            AnyConnection::Sqlite(c) => RunQueryDsl::<SqliteConnection>::get_result(self, c),
            AnyConnection::Postgres(c) => RunQueryDsl::<PgConnection>::get_result(self, c),
        }
    }

    /// `RunQueryDsl::first` on the backend connection.
    fn first_on<'q, U>(self, conn: &mut AnyConnection) -> QueryResult<U>
    where
        Self: LimitDsl,
        Limit<Self>: LoadQuery<'q, SqliteConnection, U> + LoadQuery<'q, PgConnection, U>,
    {
        self.limit(1).get_result_on(conn)
    }
}

impl<T> Run for T {}

/// A bind value of a [`Fixed`] statement.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Time(chrono::NaiveDateTime),
    OptTime(Option<chrono::NaiveDateTime>),
    Text(&'a str),
}

/// A statement written as SQL text with `?` for each bind value, for the statements diesel's
/// DSL would compile anew on every run: diesel never caches the prepared statement of an
/// UPDATE (a changeset may skip `None` fields, so the text can vary). This one's text is fixed,
/// so the backend connection's statement cache keeps it by its text. `ST` is the SQL type of
/// what a `RETURNING` clause gives back (`()` when nothing is read). The `?` are written as the
/// backend's placeholders (`?` on SQLite, `$n` on PostgreSQL); the SQL must hold no other `?`.
#[derive(Debug, Clone, Copy)]
pub struct Fixed<'a, ST = ()> {
    sql: &'static str,
    values: &'a [Value<'a>],
    returns: std::marker::PhantomData<ST>,
}

impl<'a, ST> Fixed<'a, ST> {
    pub fn new(sql: &'static str, values: &'a [Value<'a>]) -> Self {
        debug_assert_eq!(sql.matches('?').count(), values.len(), "one value per `?` in {sql}");
        Fixed { sql, values, returns: std::marker::PhantomData }
    }
}

impl<ST> diesel::query_builder::QueryId for Fixed<'_, ST> {
    type QueryId = ();
    // Cached by the SQL text, not by type: every statement shares this one type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB, ST> diesel::query_builder::QueryFragment<DB> for Fixed<'_, ST>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<diesel::sql_types::BigInt>
        + diesel::sql_types::HasSqlType<diesel::sql_types::Timestamp>
        + diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
    chrono::NaiveDateTime: diesel::serialize::ToSql<diesel::sql_types::Timestamp, DB>,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    Option<i64>: diesel::serialize::ToSql<diesel::sql_types::Nullable<diesel::sql_types::BigInt>, DB>,
    Option<chrono::NaiveDateTime>: diesel::serialize::ToSql<diesel::sql_types::Nullable<diesel::sql_types::Timestamp>, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
        let mut parts = self.sql.split('?');
        out.push_sql(parts.next().unwrap_or_default());
        for (value, part) in self.values.iter().zip(parts) {
            match value {
                Value::Int(v) => out.push_bind_param::<BigInt, i64>(v)?,
                Value::OptInt(v) => out.push_bind_param::<Nullable<BigInt>, Option<i64>>(v)?,
                Value::Time(v) => out.push_bind_param::<Timestamp, chrono::NaiveDateTime>(v)?,
                Value::OptTime(v) => out.push_bind_param::<Nullable<Timestamp>, Option<chrono::NaiveDateTime>>(v)?,
                Value::Text(v) => out.push_bind_param::<Text, str>(*v)?,
            }
            out.push_sql(part);
        }
        Ok(())
    }
}

impl<ST> diesel::query_builder::Query for Fixed<'_, ST> {
    type SqlType = ST;
}

impl<ST, Conn> RunQueryDsl<Conn> for Fixed<'_, ST> {}

/// Which backend a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// A file path (`sqlite:PATH`, `sqlite://PATH` or a plain path).
    Sqlite(String),
    /// A libpq URL (`postgres://…` or `postgresql://…`).
    Postgres(String),
}

impl DbUrl {
    pub fn parse(url: &str) -> Result<DbUrl, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("the database URL is empty".into());
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DbUrl::Postgres(url.to_string()));
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(format!("database URL {url:?} names no file"));
            }
            return Ok(DbUrl::Sqlite(path.to_string()));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(format!(
                "database URL scheme {scheme:?} is not supported (use sqlite:PATH, a plain path, or postgres://…)"
            ));
        }
        Ok(DbUrl::Sqlite(url.to_string()))
    }

    /// The URL with any password replaced, for messages.
    pub fn redacted(&self) -> String {
        match self {
            DbUrl::Sqlite(p) => format!("sqlite:{p}"),
            DbUrl::Postgres(u) => redact_password(u),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, DbUrl::Sqlite(_))
    }
}

fn redact_password(url: &str) -> String {
    // postgres://user:secret@host/db -> postgres://user:***@host/db
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct ConnOptions {
    /// How long a statement waits for a lock held elsewhere before it fails (SQLite's busy
    /// timeout, PostgreSQL's `lock_timeout`).
    pub busy_timeout: Duration,
    /// How long a PostgreSQL connection attempt may take (libpq `connect_timeout`).
    pub connect_timeout: Duration,
    /// SQLite: each COMMIT flushes the WAL to disk before it returns (`synchronous = FULL`).
    /// The group-commit writer's own connection turns it off and has the WAL flushed
    /// (`flush::WalFlush`) before it answers anyone. A store opened with it off flushes no
    /// commit at all — only benchmarks do that, to measure what the flush costs.
    pub flush_commits: bool,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            busy_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            flush_commits: true,
        }
    }
}

/// Open one connection and prepare it (SQLite: busy timeout, foreign keys, WAL, full sync
/// unless `flush_commits` is off).
pub fn establish(url: &DbUrl, opts: &ConnOptions) -> Result<AnyConnection, ConnectionError> {
    match url {
        DbUrl::Postgres(u) => {
            // An unreachable host must not hang a connection attempt for minutes.
            let url = if u.contains("connect_timeout=") {
                u.clone()
            } else {
                let sep = if u.contains('?') { '&' } else { '?' };
                format!("{u}{sep}connect_timeout={}", opts.connect_timeout.as_secs().max(1))
            };
            let mut c = PgConnection::establish(&url)?;
            // UTC like SQLite: CURRENT_TIMESTAMP in admin SQL and the stored times agree.
            // lock_timeout like SQLite's busy timeout: a lock held elsewhere (an open
            // transaction in psql, a long report) fails the statement after a bounded wait, and
            // the message is tempfailed then instead of at the end-of-message deadline.
            let ms = opts.busy_timeout.as_millis().clamp(1, i32::MAX as u128);
            c.batch_execute(&format!("SET client_min_messages = WARNING; SET TIME ZONE 'UTC'; SET lock_timeout = {ms}"))
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(AnyConnection::Postgres(c))
        }
        DbUrl::Sqlite(path) => {
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() && !parent.exists() {
                    return Err(ConnectionError::BadConnection(format!(
                        "directory {} does not exist",
                        parent.display()
                    )));
                }
            }
            keep_sqlite_plans();
            let mut c = SqliteConnection::establish(path)?;
            let ms = opts.busy_timeout.as_millis().min(i32::MAX as u128);
            c.batch_execute(&format!(
                "PRAGMA busy_timeout = {ms}; PRAGMA foreign_keys = ON; PRAGMA synchronous = {}; \
                 PRAGMA temp_store = MEMORY;",
                if opts.flush_commits { "FULL" } else { "NORMAL" }
            ))
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
            // temp_store = MEMORY: the statement journals of the per-message savepoints stay in
            // memory instead of a temporary file created and unlinked for each one.
            // WAL lets readers work while one writer commits; it persists in the file.
            // Checkpoints (copying the WAL into the database, with a flush) run in the store's
            // checkpoint thread, not in the commit that happens to cross the threshold: a
            // message's answer never waits for one.
            c.batch_execute("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(AnyConnection::Sqlite(c))
        }
    }
}

/// Turn on SQLite's query-planner stability guarantee for every connection this process opens.
///
/// Without it SQLite plans a `LIMIT ?` (diesel's `.first()`) from the bound value and marks the
/// prepared statement stale whenever that parameter is bound again — that is, on every run — so
/// each such query was compiled anew despite diesel's statement cache (a tenth of the writer's
/// time with workflow rules on, found in a profile). The guarantee makes the plan independent of
/// the bound values; nothing here depends on a value-specific plan (no LIKE with a bound
/// pattern, no ANALYZE statistics). The setting is per connection and has no PRAGMA, and diesel
/// does not hand out its handle, so it is applied through SQLite's auto-extension hook, which
/// runs for each connection opened afterwards.
pub fn keep_sqlite_plans() {
    use libsqlite3_sys as ffi;
    use std::os::raw::{c_char, c_int};
    unsafe extern "C" fn enable(db: *mut ffi::sqlite3, _err: *mut *mut c_char, _api: *const ffi::sqlite3_api_routines) -> c_int {
        // SAFETY: SQLite calls this with a valid, open handle; the last argument may be null.
        unsafe { ffi::sqlite3_db_config(db, ffi::SQLITE_DBCONFIG_ENABLE_QPSG, 1 as c_int, std::ptr::null_mut::<c_int>()) }
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a function with the signature SQLite expects; it stays valid for the
    // life of the process.
    ONCE.call_once(|| unsafe {
        ffi::sqlite3_auto_extension(Some(enable));
    });
}

/// r2d2 manager that knows which backend to open.
#[derive(Debug, Clone)]
pub struct Manager {
    pub url: DbUrl,
    pub opts: ConnOptions,
}

impl r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<AnyConnection, ConnectionError> {
        establish(&self.url, &self.opts)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnectionError> {
        conn.batch_execute("SELECT 1")
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        use diesel::connection::TransactionManager;
        <AnyConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend() {
        assert_eq!(DbUrl::parse("sqlite:/tmp/x.db"), Ok(DbUrl::Sqlite("/tmp/x.db".into())));
        assert_eq!(DbUrl::parse("sqlite:///tmp/x.db"), Ok(DbUrl::Sqlite("/tmp/x.db".into())));
        assert_eq!(DbUrl::parse("/var/lib/t.db"), Ok(DbUrl::Sqlite("/var/lib/t.db".into())));
        assert!(matches!(DbUrl::parse("postgres://u@h/db"), Ok(DbUrl::Postgres(_))));
        assert!(matches!(DbUrl::parse("postgresql://u@h/db"), Ok(DbUrl::Postgres(_))));
        assert!(DbUrl::parse("mysql://x").unwrap_err().contains("not supported"));
        assert!(DbUrl::parse("").is_err());
        assert!(DbUrl::parse("sqlite:").is_err());
    }

    /// Prepares `SELECT … LIMIT ?` on a connection opened the way the store opens them, runs
    /// it twice with the limit bound each time, and returns how often SQLite re-prepared it.
    fn reprepares_of_a_limit_query(qpsg: Option<i32>) -> i32 {
        use libsqlite3_sys as ffi;
        keep_sqlite_plans();
        let mut db: *mut ffi::sqlite3 = std::ptr::null_mut();
        let sql = c"SELECT x FROM t ORDER BY x LIMIT ?1";
        // SAFETY: plain use of the C API on an in-memory database owned by this function.
        unsafe {
            assert_eq!(ffi::sqlite3_open(c":memory:".as_ptr(), &mut db), ffi::SQLITE_OK);
            if let Some(v) = qpsg {
                ffi::sqlite3_db_config(db, ffi::SQLITE_DBCONFIG_ENABLE_QPSG, v, std::ptr::null_mut::<i32>());
            }
            let setup = c"CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1), (2), (3);";
            assert_eq!(ffi::sqlite3_exec(db, setup.as_ptr(), None, std::ptr::null_mut(), std::ptr::null_mut()), ffi::SQLITE_OK);
            let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
            assert_eq!(ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt, std::ptr::null_mut()), ffi::SQLITE_OK);
            for _ in 0..2 {
                ffi::sqlite3_bind_int64(stmt, 1, 1);
                assert_eq!(ffi::sqlite3_step(stmt), ffi::SQLITE_ROW);
                ffi::sqlite3_reset(stmt);
            }
            let n = ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
            ffi::sqlite3_finalize(stmt);
            ffi::sqlite3_close(db);
            n
        }
    }

    #[test]
    fn sqlite_statements_with_a_bound_limit_are_not_compiled_again() {
        assert_eq!(reprepares_of_a_limit_query(None), 0, "connections keep their plans");
        // The same query without the guarantee is re-prepared at every run after the first:
        // this is what the setting prevents.
        assert!(reprepares_of_a_limit_query(Some(0)) >= 1);
    }

    #[test]
    fn passwords_are_redacted() {
        let u = DbUrl::parse("postgres://tm:s3cret@db.example:5432/tm").unwrap();
        assert_eq!(u.redacted(), "postgres://tm:***@db.example:5432/tm");
    }
}
