//! The crate's error type and its classification (transient -> tempfail, permanent -> reject).

use thiserror::Error;

#[derive(Debug, Clone, Error)]
pub enum Error {
    /// The database could not be reached, was busy, full or failed a statement.
    #[error("database error: {0}")]
    Database(String),
    /// The configuration (file or SQL) is unusable.
    #[error("configuration error: {0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(String),
    /// A usage error of an admin command (unknown name, bad value).
    #[error("{0}")]
    Usage(String),
    /// Anything else: a bug or an exhausted resource.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A failure that may go away by itself (retrying later can succeed).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Database(_) | Error::Io(_) | Error::Internal(_))
    }
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        Error::Database(describe_diesel(&e))
    }
}

impl From<diesel::ConnectionError> for Error {
    fn from(e: diesel::ConnectionError) -> Self {
        Error::Database(format!("cannot connect: {}", e.to_string().trim()))
    }
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Self {
        Error::Database(format!("no database connection available: {e}"))
    }
}

impl From<diesel_migrations::MigrationError> for Error {
    fn from(e: diesel_migrations::MigrationError) -> Self {
        Error::Database(format!("migration failed: {e}"))
    }
}

/// A diesel error in words, with the driver's message where there is one.
pub fn describe_diesel(e: &diesel::result::Error) -> String {
    use diesel::result::Error as E;
    match e {
        E::DatabaseError(kind, info) => {
            let mut s = format!("{kind:?}: {}", info.message().trim());
            if let Some(d) = info.details() {
                s.push_str(&format!(" ({})", d.trim()));
            }
            s
        }
        other => other.to_string(),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The text of a caught panic (its `String` or `&str` payload).
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
