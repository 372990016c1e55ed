//! SQLite WAL checkpoints in a thread of their own: commits only append to the WAL, and the
//! copy into the database file (with its flush) never delays a message's answer.

use diesel::connection::SimpleConnection;
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::conn::{ConnOptions, DbUrl, establish};
use crate::error::{Error, Result};

/// How often the WAL is looked at.
const EVERY: Duration = Duration::from_millis(250);
/// WAL size from which a checkpoint is run (SQLite's own default threshold: 1,000 pages).
const THRESHOLD: u64 = 4 * 1024 * 1024;

pub struct Checkpointer {
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    pub fn start(path: String, opts: ConnOptions) -> Result<Checkpointer> {
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ticketmilter-checkpoint".into())
            .spawn(move || run(path, opts, rx))
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

fn run(path: String, opts: ConnOptions, stop: mpsc::Receiver<()>) {
    let wal = format!("{path}-wal");
    let url = DbUrl::Sqlite(path);
    let mut conn = None;
    loop {
        match stop.recv_timeout(EVERY) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Stopped: the last connection to close checkpoints what is left.
            _ => return,
        }
        let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if size < THRESHOLD {
            continue;
        }
        if conn.is_none() {
            conn = establish(&url, &opts).ok();
        }
        if let Some(c) = conn.as_mut() {
            // PASSIVE never waits for readers or writers; what it cannot copy now, it copies
            // next time.
            if let Err(e) = c.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                tracing::debug!("WAL checkpoint failed: {e}");
                conn = None;
            }
        }
    }
}
