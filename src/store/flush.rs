//! Commits made durable after they return: the group-commit writer's own SQLite connection
//! commits without flushing (`synchronous = NORMAL`: the WAL is written, not flushed), and
//! [`WalFlush`] flushes the WAL file before any message of those commits is answered.
//!
//! Why: with `synchronous = FULL` SQLite flushes inside COMMIT while it holds the write lock,
//! so the next transaction could not begin until the disk had answered. Flushed here, beside
//! the writer, the flush of one group overlaps the statements of the next, and one flush
//! covers every commit made before it. Durability is unchanged for what matters: a message is
//! answered only after a flush that began after its commit; a later commit's flush covers the
//! earlier ones (one file, written in order), so no answered message can depend on one that is
//! lost. Until the flush, other connections may see the commit — the message has not been
//! answered then, and every answer that depended on it waits for a later flush.
//!
//! The flush goes through SQLite's own descriptor of the WAL, held by a connection of this
//! module that stays open: while a connection is open SQLite never deletes the WAL, so the
//! descriptor stays the file the writer writes to.

use libsqlite3_sys as ffi;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};

use super::checkpoint::{Connection, sqlite_descriptor};
use super::conn::ConnOptions;
use crate::error::{Error, Result};

/// Flushes a database's WAL file to disk.
pub struct WalFlush {
    /// Kept open: it holds the WAL (and SQLite's descriptor of it) for as long as it lives.
    _conn: Connection,
    fd: RawFd,
    wal: String,
}

// SAFETY: the connection is only kept open (SQLite is built thread-safe), never used after
// `open`; the descriptor is flushed from whichever thread owns the value.
unsafe impl Send for WalFlush {}

impl WalFlush {
    /// Open the database at `path` and find its WAL's descriptor. Fails when SQLite does not
    /// keep the WAL in a file of its unix VFS (the caller then commits with flushes).
    pub fn open(path: &str, opts: &ConnOptions) -> Result<WalFlush> {
        let wal = format!("{path}-wal");
        let fail = |why: String| Error::Database(format!("cannot flush {wal} beside the writer: {why}"));
        let mut conn = Connection::open(path, opts).map_err(fail)?;
        // A read opens the WAL (creating it if need be).
        conn.exec(c"SELECT count(*) FROM sqlite_schema").map_err(fail)?;
        let fd = sqlite_descriptor(conn.db, ffi::SQLITE_FCNTL_JOURNAL_POINTER, &wal)
            .ok_or_else(|| fail("SQLite's descriptor of it was not found".into()))?;
        // The WAL file may have just been created: its directory entry is made durable once
        // (SQLite would flush the directory at its first flush of a new WAL).
        let dir = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fail(format!("flushing {}: {e}", dir.display())))?;
        let flush = WalFlush { _conn: conn, fd, wal: wal.clone() };
        flush.flush()?;
        Ok(flush)
    }

    /// Flush the WAL: every commit made before this call is on disk when it returns `Ok`.
    pub fn flush(&self) -> Result<()> {
        // SAFETY: SQLite's open descriptor of the WAL, borrowed: ManuallyDrop never closes it,
        // and the connection that owns it outlives this call.
        let file = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(self.fd) });
        file.sync_data().map_err(|e| Error::Database(format!("cannot flush {} to disk: {e}", self.wal)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::plans::int;
    use std::os::unix::fs::MetadataExt;

    const LEVEL: &str = "SELECT synchronous AS n FROM pragma_synchronous";

    #[test]
    fn the_writers_commits_leave_their_flush_to_the_wal_flush() {
        let (dir, store) = crate::store::plans::store();
        let (mut committer, wal) = store.committer().unwrap();
        let wal = wal.expect("SQLite's descriptor of the WAL");
        // The descriptor is the WAL file's, the one every connection writes to.
        let opened = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(wal.fd) }).metadata().unwrap();
        assert_eq!(opened.ino(), std::fs::metadata(dir.path().join("t.db-wal")).unwrap().ino());
        // NORMAL (1) on the writer's own connection, FULL (2) on every other.
        assert_eq!(committer.transact(crate::store::Finish::Rollback, |c| int(c, LEVEL)).unwrap(), 1);
        assert_eq!(store.read(|c| int(c, LEVEL)).unwrap(), 2);
        committer
            .transact(crate::store::Finish::Commit, |c| crate::store::execute_script(c, "CREATE TABLE scratch (x BLOB); INSERT INTO scratch VALUES (zeroblob(10000));"))
            .unwrap();
        wal.flush().unwrap();
        assert_eq!(store.read(|c| int(c, "SELECT count(*) AS n FROM scratch")).unwrap(), 1);
    }

    /// A store opened to flush no commit (benchmarks only) gives the writer no flush either.
    #[test]
    fn a_store_without_flushes_gives_the_writer_none() {
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::store::StoreOptions {
            conn: ConnOptions { flush_commits: false, ..ConnOptions::default() },
            ..crate::store::StoreOptions::default()
        };
        let store = crate::store::Store::open(&format!("sqlite:{}", dir.path().join("t.db").display()), opts).unwrap();
        let (mut committer, wal) = store.committer().unwrap();
        assert!(wal.is_none());
        assert_eq!(committer.transact(crate::store::Finish::Rollback, |c| int(c, LEVEL)).unwrap(), 1);
    }
}
