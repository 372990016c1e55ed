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
    /// How long SQLite waits for a lock before giving up.
    pub busy_timeout: Duration,
    /// How long a PostgreSQL connection attempt may take (libpq `connect_timeout`).
    pub connect_timeout: Duration,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            busy_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Open one connection and prepare it (SQLite: busy timeout, foreign keys, WAL, full sync).
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
            c.batch_execute("SET client_min_messages = WARNING; SET TIME ZONE 'UTC'")
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
            let mut c = SqliteConnection::establish(path)?;
            let ms = opts.busy_timeout.as_millis().min(i32::MAX as u128);
            c.batch_execute(&format!(
                "PRAGMA busy_timeout = {ms}; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; \
                 PRAGMA temp_store = MEMORY;"
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

    #[test]
    fn passwords_are_redacted() {
        let u = DbUrl::parse("postgres://tm:s3cret@db.example:5432/tm").unwrap();
        assert_eq!(u.redacted(), "postgres://tm:***@db.example:5432/tm");
    }
}
