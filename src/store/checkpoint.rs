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
//!
//! SQLite flushes the database file only at the end of a checkpoint that copied the whole WAL —
//! beside a writer that never pauses, that is the locked one, which then had to flush every page
//! the copies before it had written (≈ 16 MB: 20–30 ms here, with every writer waiting). So the
//! thread flushes the database file itself as the copies go (each time a quarter of a restart's
//! worth of frames has been copied, and once more before it takes the lock), beside the
//! writers, and the locked checkpoint is left the few pages it copies. It does so through
//! SQLite's own descriptor of the file: opening the file a second time and closing it would drop
//! the process's POSIX locks on it (and with them SQLite's guarantee that another process does
//! not delete the WAL).

use libsqlite3_sys as ffi;
use std::ffi::{CStr, CString, c_int, c_void};
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::conn::ConnOptions;
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

/// What a checkpoint reports.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Another checkpoint was running: nothing was done.
    busy: bool,
    /// Frames in the WAL.
    log: i32,
    /// Frames copied into the database file, in all.
    checkpointed: i32,
}

/// A connection through SQLite's C API, for what diesel does not hand out: checkpoints and
/// SQLite's descriptors of its files (also used by `flush`).
pub(super) struct Connection {
    pub(super) db: *mut ffi::sqlite3,
    /// SQLite's descriptor of the database file (never closed here), when it could be found.
    file: Option<RawFd>,
    /// Frames of the current WAL copied when the database file was last flushed.
    flushed_at: i32,
}

impl Connection {
    pub(super) fn open(path: &str, opts: &ConnOptions) -> std::result::Result<Connection, String> {
        let c_path = CString::new(path).map_err(|_| format!("{path:?}: NUL in the path"))?;
        let mut db: *mut ffi::sqlite3 = std::ptr::null_mut();
        // SAFETY: a valid C string and out-pointer; the handle is closed in Drop (also on error).
        let rc = unsafe { ffi::sqlite3_open_v2(c_path.as_ptr(), &mut db, ffi::SQLITE_OPEN_READWRITE, std::ptr::null()) };
        let mut conn = Connection { db, file: None, flushed_at: 0 };
        if rc != ffi::SQLITE_OK {
            return Err(conn.error());
        }
        let ms = opts.busy_timeout.as_millis().min(i32::MAX as u128) as c_int;
        // SAFETY: an open handle.
        unsafe { ffi::sqlite3_busy_timeout(db, ms) };
        // A checkpoint flushes as the connection's `synchronous` says: FULL, as the writers'.
        conn.exec(c"PRAGMA synchronous = FULL")?;
        conn.file = sqlite_descriptor(db, ffi::SQLITE_FCNTL_FILE_POINTER, path);
        Ok(conn)
    }

    fn error(&self) -> String {
        if self.db.is_null() {
            return "out of memory".into();
        }
        // SAFETY: an open handle; SQLite returns a NUL-terminated message it owns.
        unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db)) }.to_string_lossy().into_owned()
    }

    pub(super) fn exec(&mut self, sql: &CStr) -> std::result::Result<(), String> {
        // SAFETY: an open handle and a NUL-terminated statement; no callback.
        let rc = unsafe { ffi::sqlite3_exec(self.db, sql.as_ptr(), None, std::ptr::null_mut(), std::ptr::null_mut()) };
        if rc == ffi::SQLITE_OK { Ok(()) } else { Err(self.error()) }
    }

    /// PASSIVE never waits for readers or writers; what it cannot copy now, it copies next time.
    fn passive(&mut self) -> std::result::Result<Progress, String> {
        let (mut log, mut checkpointed): (c_int, c_int) = (0, 0);
        // SAFETY: an open handle and valid out-pointers.
        let rc = unsafe { ffi::sqlite3_wal_checkpoint_v2(self.db, c"main".as_ptr(), ffi::SQLITE_CHECKPOINT_PASSIVE, &mut log, &mut checkpointed) };
        match rc {
            ffi::SQLITE_OK => Ok(Progress { busy: false, log, checkpointed }),
            ffi::SQLITE_BUSY => Ok(Progress { busy: true, log, checkpointed }),
            _ => Err(self.error()),
        }
    }

    /// Flush the database file's pages to disk. An extra flush never weakens durability; a
    /// failure only leaves the work to SQLite's own flush.
    fn flush_database(&self) {
        if let Some(fd) = self.file {
            // SAFETY: SQLite's open descriptor of the file, borrowed: ManuallyDrop never closes it.
            let file = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
            if let Err(e) = file.sync_data() {
                tracing::debug!("flushing the database file: {e}");
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and no statement of it is left unfinalized.
        unsafe { ffi::sqlite3_close(self.db) };
    }
}

/// SQLite's descriptor of one of a connection's files — the database file (`FILE_POINTER`) or
/// its WAL (`JOURNAL_POINTER`): the file object's `h`, read only when the file is SQLite's unix
/// VFS's (whose file structure begins with three pointers and the descriptor) and checked to be
/// the file at `path` (same device and inode).
pub(super) fn sqlite_descriptor(db: *mut ffi::sqlite3, op: c_int, path: &str) -> Option<RawFd> {
    #[repr(C)]
    struct UnixFileHead {
        methods: *const c_void,
        vfs: *const ffi::sqlite3_vfs,
        inode: *const c_void,
        h: c_int,
    }
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: an open handle; both operations write a `sqlite3_file *` to the given address.
    let rc = unsafe { ffi::sqlite3_file_control(db, c"main".as_ptr(), op, (&mut file as *mut *mut ffi::sqlite3_file).cast()) };
    if rc != ffi::SQLITE_OK || file.is_null() {
        return None;
    }
    // SAFETY: `file` points to the file object; a closed one has no methods. Its VFS pointer is
    // read only after the VFS's own size says the object is a unix file at least as large as
    // the head.
    let fd = unsafe {
        let head = file as *const UnixFileHead;
        if (*head).methods.is_null() {
            return None;
        }
        let vfs = (*head).vfs;
        if vfs.is_null() || ((*vfs).szOsFile as usize) < std::mem::size_of::<UnixFileHead>() {
            return None;
        }
        if !CStr::from_ptr((*vfs).zName).to_bytes().starts_with(b"unix") {
            return None;
        }
        (*head).h
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: borrowed descriptor (ManuallyDrop: never closed), used only for fstat.
    let opened = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) }).metadata().ok()?;
    let named = std::fs::metadata(path).ok()?;
    (opened.dev() == named.dev() && opened.ino() == named.ino()).then_some(fd)
}

fn run(path: String, opts: ConnOptions, write_lock: Arc<Mutex<()>>, restart_frames: u32, stop: mpsc::Receiver<()>) {
    let restart_frames = restart_frames.clamp(1, i32::MAX as u32) as i32;
    let wal = format!("{path}-wal");
    let mut conn: Option<Connection> = None;
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
            match Connection::open(&path, &opts) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!("WAL checkpoint: cannot open {path}: {e}");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        if let Err(e) = step(c, &write_lock, restart_frames) {
            tracing::debug!("WAL checkpoint failed: {e}");
            conn = None;
        }
    }
}

/// One look at the WAL: copy it and flush the copy beside the writers; when it is long, copy
/// what came meanwhile, then hold the writers for the last few frames so that the next
/// transaction starts the WAL over.
fn step(c: &mut Connection, write_lock: &Mutex<()>, restart_frames: i32) -> std::result::Result<(), String> {
    let first = c.passive()?;
    // Flushed as it goes (each time a good part of a restart's worth has been copied), the
    // database file's writes are spread out instead of coming in one burst that also delays
    // the writers' own flushes.
    if first.checkpointed - c.flushed_at >= restart_frames / 4 || first.checkpointed < c.flushed_at {
        c.flush_database();
        c.flushed_at = first.checkpointed;
    }
    if first.log < restart_frames {
        return Ok(());
    }
    let started = Instant::now();
    // What the writers appended meanwhile, copied and flushed beside them too.
    let second = c.passive()?;
    c.flush_database();
    let (last, locked) = {
        let _writers_wait = write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let locked = Instant::now();
        (c.passive()?, locked)
    };
    c.flushed_at = last.checkpointed;
    tracing::debug!(
        "WAL checkpoint: {} frames, {} copied with writers running, the rest in {} µs with writers waiting (after {} µs of copying and flushing and the lock){}",
        last.log,
        second.checkpointed,
        locked.elapsed().as_micros(),
        (locked - started).as_micros(),
        if last.busy || last.checkpointed < last.log { " (a reader holds the WAL: not started over)" } else { "" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreOptions};
    use diesel::connection::SimpleConnection;
    use diesel::{QueryableByName, RunQueryDsl};

    /// A writer that never pauses: 4,000 transactions of a 4 KB row each, back to back, two or
    /// three frames each (≈ 50 MB of WAL frames in all). Without the restart the WAL is never
    /// started over (a passive checkpoint beside the writer never copies the last frames) and
    /// its file grows to about that size; with it, the WAL's header counts the restarts, and the
    /// file stays near what is written between two looks of the thread — or during a stall of
    /// the thread's own flush on a busy disk, hence the loose bound.
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
        // The WAL header's checkpoint sequence number (bytes 12–15, big-endian) counts restarts.
        let mut header = [0u8; 16];
        std::io::Read::read_exact(&mut std::fs::File::open(&wal).unwrap(), &mut header).unwrap();
        let restarts = u32::from_be_bytes(header[12..16].try_into().unwrap());
        assert!(restarts >= 2, "the WAL was started over {restarts} time(s) while ≈ 50 MB were written");
        assert!(
            largest < 30 * 1024 * 1024,
            "the WAL grew to {largest} bytes for ≈ 50 MB written: it was not started over"
        );
    }

    /// The thread finds SQLite's own descriptor of the database file (the extra flushes depend
    /// on it), and checkpoints through its connection report the WAL.
    #[test]
    fn the_database_files_descriptor_is_found_and_checkpoints_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db").display().to_string();
        std::fs::File::create(&path).unwrap(); // an empty file is an empty database
        let mut writer = Connection::open(&path, &ConnOptions::default()).unwrap();
        writer.exec(c"PRAGMA journal_mode = WAL; CREATE TABLE t (x BLOB); INSERT INTO t VALUES (zeroblob(100000));").unwrap();
        let mut c = Connection::open(&path, &ConnOptions::default()).unwrap();
        let fd = c.file.expect("SQLite's descriptor of the database file");
        let opened = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) }).metadata().unwrap();
        assert_eq!(opened.ino(), std::fs::metadata(&path).unwrap().ino());
        let p = c.passive().unwrap();
        assert!(!p.busy && p.log > 0 && p.checkpointed == p.log, "{p:?}");
        c.flush_database();
        // A file that is not the database: no descriptor.
        assert_eq!(sqlite_descriptor(c.db, ffi::SQLITE_FCNTL_FILE_POINTER, &format!("{path}-wal")), None);
    }
}
