//! Group commit: one writer thread takes the prepared messages of concurrent callers and writes
//! them in one transaction, a savepoint per message; each caller is answered after the commit.

use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use super::{Prepared, write_prepared, write_prepared_alone};
use crate::error::{Error, Result};
use crate::model::Outcome;
use crate::store::{self, AnyConnection, Finish, Store};

/// Most messages in one transaction.
const MAX_BATCH: usize = 256;
/// Most raw bytes in one transaction (large messages commit in smaller groups).
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Where the answer goes: a waiting thread, or a waiting task (no thread blocked meanwhile).
pub enum Reply {
    Thread(mpsc::SyncSender<Result<Vec<Outcome>>>),
    Task(tokio::sync::oneshot::Sender<Result<Vec<Outcome>>>),
}

impl Reply {
    fn send(self, r: Result<Vec<Outcome>>) {
        match self {
            Reply::Thread(tx) => {
                let _ = tx.send(r);
            }
            Reply::Task(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

struct Job {
    prepared: Prepared,
    reply: Reply,
}

/// Handle on the writer thread; dropping it lets the thread finish what is queued and exit.
pub struct Writer {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub fn start(store: Store) -> Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("ticketmilter-writer".into())
            .spawn(move || run(store, rx))
            .map_err(|e| Error::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            queue: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Write one prepared message; returns once its transaction is committed (or failed).
    pub fn submit(&self, prepared: Prepared) -> Result<Vec<Outcome>> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.enqueue(prepared, Reply::Thread(reply))?;
        answer
            .recv()
            .unwrap_or_else(|_| Err(Error::Internal("the writer stopped before answering".into())))
    }

    /// Hand a prepared message to the writer; the answer goes to `reply` after the commit.
    pub fn enqueue(&self, prepared: Prepared, reply: Reply) -> Result<()> {
        let sent = match self.queue.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(q) => q.send(Job { prepared, reply }).is_ok(),
            None => false,
        };
        if sent { Ok(()) } else { Err(Error::Internal("the writer has stopped".into())) }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn run(store: Store, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut bytes = first.prepared.raw.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.prepared.raw.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let results = commit(&store, &batch);
        for (job, result) in batch.into_iter().zip(results) {
            job.reply.send(result);
        }
    }
}

/// Write a batch in one transaction. A message whose writing fails is rolled back to its
/// savepoint and gets its error; when the commit itself fails, every message gets that error.
fn commit(store: &Store, batch: &[Job]) -> Vec<Result<Vec<Outcome>>> {
    if let [job] = batch {
        if let Some(done) = commit_alone(store, &job.prepared) {
            return vec![done];
        }
    }
    let mut results: Vec<Result<Vec<Outcome>>> = Vec::with_capacity(batch.len());
    let started = std::time::Instant::now();
    let mut work = std::time::Duration::ZERO;
    let committed = store.transact(Finish::Commit, |conn| {
        for job in batch {
            results.push(one(conn, &job.prepared));
        }
        work = started.elapsed();
        Ok(())
    });
    log_transaction(batch.len(), started, work);
    match committed {
        Ok(()) => results,
        Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// A message alone in its transaction (the usual case when messages come one at a time) is
/// written without savepoints: the transaction is its all-or-none. When writing it fails, the
/// transaction is rolled back and `None` returned, and the caller writes it again the usual way
/// (savepoints, a retry after a unique-key conflict, the error of that message); a failure to
/// begin or to commit is the message's answer.
fn commit_alone(store: &Store, p: &Prepared) -> Option<Result<Vec<Outcome>>> {
    let started = std::time::Instant::now();
    let mut work = std::time::Duration::ZERO;
    let mut write_failed = false;
    let committed = store.transact(Finish::Commit, |conn| {
        let written = write_prepared_alone(conn, p);
        work = started.elapsed();
        write_failed = written.is_err();
        written
    });
    if write_failed {
        return None;
    }
    log_transaction(1, started, work);
    Some(committed)
}

/// Where the writer's time goes: the statements (`work`, from `started`), then the commit with
/// its flush.
fn log_transaction(messages: usize, started: std::time::Instant, work: std::time::Duration) {
    tracing::debug!(
        "writer: {messages} message(s) in one transaction, statements {} µs, commit {} µs",
        work.as_micros(),
        (started.elapsed() - work).as_micros()
    );
}

/// One message. `write_prepared` writes each of its mailboxes in a savepoint (a failure or a
/// panic there undoes only that message); a message for several mailboxes gets one more
/// savepoint around them all, so that it is written for all of them or for none.
fn one(conn: &mut AnyConnection, p: &Prepared) -> Result<Vec<Outcome>> {
    if p.targets.len() <= 1 {
        return write_prepared(conn, p);
    }
    store::savepoint(conn, |c| write_prepared(c, p).map_err(store::StoreFail::Other)).map_err(Error::from)
}
