//! SQLite WAL checkpoints in a thread of their own: commits only append to the WAL, the copy
//! into the database file (with its flush) never delays a message's answer, and the WAL is
//! started over from its beginning even under sustained load.
//!
//! Why the restart matters: a commit that appends past the end of the WAL file makes the flush
//! also write the file system's metadata (≈ 2 ms here for a batch), while a commit that
//! overwrites blocks the file already has costs a plain data flush (≈ 0.3 ms). SQLite starts
//! the WAL over when a write transaction begins after a checkpoint copied every frame; a
//! passive checkpoint running beside a writer that never pauses never copies the last frames.
//! So the thread copies the WAL without stopping anyone whenever it is not small; when a copy
//! catches up while the writer pauses, the next transaction starts the WAL over by itself. A
//! writer that never pauses gives it no such moment: when the WAL reaches [`RESTART_FRAMES`]
//! (by default), the thread takes the store's write lock for a second, short checkpoint of the
//! frames written since its last copy, and the next transaction starts the WAL over. The file
//! keeps its size, and later commits overwrite it.

use diesel::sql_types::Integer;
use diesel::{QueryableByName, RunQueryDsl, SqliteConnection};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::conn::{AnyConnection, ConnOptions, DbUrl, establish};
use crate::error::{Error, Result};

/// How often the WAL is looked at.
const EVERY: Duration = Duration::from_millis(100);
/// Frames (pages) in the WAL from which writers wait for a checkpoint that lets it start over,
/// by default: ≈ 16 MB with 4 KB pages.
pub const RESTART_FRAMES: u32 = 4000;
/// WAL size from which the thread copies it (SQLite's own threshold: 1,000 pages).
const COPY_BYTES: u64 = 4 * 1024 * 1024;

pub struct Checkpointer {
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    /// Start the thread for the database at `path`; `write_lock` is the store's own lock that
    /// every write transaction of this process holds.
    pub fn start(path: String, opts: ConnOptions, write_lock: Arc<Mutex<()>>, restart_frames: u32) -> Result<Checkpointer> {
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ticketmilter-checkpoint".into())
            .spawn(move || run(path, opts, write_lock, restart_frames, rx))
            .map_err(|e| Error::Internal(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            stop: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// The row `PRAGMA wal_checkpoint` answers.
#[derive(QueryableByName, Debug, Clone, Copy)]
struct Progress {
    /// 1 when the checkpoint could not run (a lock was held).
    #[diesel(sql_type = Integer)]
    busy: i32,
    /// Frames in the WAL.
    #[diesel(sql_type = Integer)]
    log: i32,
    /// Frames copied into the database file, in all.
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

fn passive(c: &mut SqliteConnection) -> diesel::QueryResult<Progress> {
    // PASSIVE never waits for readers or writers; what it cannot copy now, it copies next time.
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
        .get_result::<Progress>(c)
}

fn run(path: String, opts: ConnOptions, write_lock: Arc<Mutex<()>>, restart_frames: u32, stop: mpsc::Receiver<()>) {
    let restart_frames = restart_frames.clamp(1, i32::MAX as u32) as i32;
    let wal = format!("{path}-wal");
    let url = DbUrl::Sqlite(path);
    let mut conn: Option<AnyConnection> = None;
    loop {
        match stop.recv_timeout(EVERY) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Stopped: the last connection to close checkpoints what is left.
            _ => return,
        }
        // No connection is opened (and no file kept open) while the WAL is small.
        if conn.is_none() {
            let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
            if size < COPY_BYTES.min(restart_frames as u64 * 4096) {
                continue;
            }
            conn = establish(&url, &opts).ok();
        }
        let Some(AnyConnection::Sqlite(c)) = conn.as_mut() else {
            conn = None;
            continue;
        };
        if let Err(e) = step(c, &write_lock, restart_frames) {
            tracing::debug!("WAL checkpoint failed: {e}");
            conn = None;
        }
    }
}

/// One look at the WAL: when it is long, copy it and let the next transaction start it over.
fn step(c: &mut SqliteConnection, write_lock: &Mutex<()>, restart_frames: i32) -> diesel::QueryResult<()> {
    let first = passive(c)?;
    if first.log < restart_frames {
        return Ok(());
    }
    let started = Instant::now();
    let (last, locked) = {
        let _writers_wait = write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let locked = Instant::now();
        (passive(c)?, locked)
    };
    tracing::debug!(
        "WAL checkpoint: {} frames, {} copied with writers running, the rest in {} µs with writers waiting (after {} µs for the lock){}",
        last.log,
        first.checkpointed,
        locked.elapsed().as_micros(),
        (locked - started).as_micros(),
        if last.busy != 0 || last.checkpointed < last.log { " (a reader holds the WAL: not started over)" } else { "" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreOptions};
    use diesel::connection::SimpleConnection;

    /// A writer that never pauses: 4,000 transactions of a 4 KB row each, back to back, two or
    /// three frames each (≈ 50 MB of WAL frames in all). Without the restart the WAL file grows
    /// to about that size (a passive checkpoint beside the writer never copies the last
    /// frames); with it, it stays near what is written between two looks of the thread.
    #[test]
    fn the_wal_is_started_over_under_sustained_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let url = format!("sqlite:{}", path.display());
        let store = Store::open(&url, StoreOptions { wal_restart_frames: 64, ..StoreOptions::default() }).unwrap();
        store.write(|c| crate::store::execute_script(c, "CREATE TABLE scratch (id INTEGER PRIMARY KEY, body BLOB)")).unwrap();
        let wal = format!("{}-wal", path.display());
        let mut largest = 0;
        for i in 0..4000 {
            store
                .write(|c| {
                    c.batch_execute(&format!("INSERT INTO scratch (body) VALUES (zeroblob(4000 + {}))", i % 7))?;
                    Ok(())
                })
                .unwrap();
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
        let rows: i64 = store
            .read(|c| {
                #[derive(QueryableByName)]
                struct N {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                Ok(diesel::sql_query("SELECT count(*) AS n FROM scratch").get_result::<N>(c)?.n)
            })
            .unwrap();
        assert_eq!(rows, 4000);
        assert!(
            largest < 12 * 1024 * 1024,
            "the WAL grew to {largest} bytes for ≈ 50 MB written: it was not started over"
        );
    }
}
