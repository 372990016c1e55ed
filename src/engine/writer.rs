//! Group commit: one writer thread takes the prepared messages of concurrent callers and writes
//! them in one transaction, a savepoint per message; each caller is answered once the commit is
//! durable. On SQLite the commit returns before its flush, and a second thread flushes the WAL
//! and then answers (`store::flush`): the writer goes on with the next group meanwhile, and one
//! flush serves every group committed before it.

use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use super::{Prepared, write_prepared, write_prepared_alone};
use crate::error::{Error, Result};
use crate::model::Outcome;
use crate::store::{self, AnyConnection, Committer, Finish, Store};

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

/// A committed message's answer, waiting for the flush that makes its commit durable.
type Answer = (Reply, Result<Vec<Outcome>>);

/// Makes every commit before it durable (see `store::flush`).
type Flush = Box<dyn FnMut() -> Result<()> + Send>;

/// Handle on the writer thread; dropping it lets the thread finish what is queued and exit.
pub struct Writer {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    /// The writer thread, then the flushing thread (when there is one).
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Writer {
    pub fn start(store: Store) -> Result<Writer> {
        let (committer, wal) = store.committer()?;
        Writer::start_with(committer, wal.map(|w| Box::new(move || w.flush()) as Flush))
    }

    /// The writer over `committer`; with `flush`, a second thread runs it after each group's
    /// commit (and whatever was committed while the previous flush ran) and only then answers.
    fn start_with(mut committer: Committer, flush: Option<Flush>) -> Result<Writer> {
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| Error::Internal(format!("cannot start the {name} thread: {e}")))
        };
        let mut threads = Vec::new();
        let flushing = match flush {
            Some(flush) => {
                let (tx, rx) = mpsc::channel::<Vec<Answer>>();
                threads.push(spawn("ticketmilter-flush", Box::new(move || flush_and_answer(flush, rx)))?);
                Some(tx)
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel::<Job>();
        threads.insert(0, spawn("ticketmilter-writer", Box::new(move || run(&mut committer, flushing, rx)))?);
        Ok(Writer {
            queue: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        })
    }

    /// Write one prepared message; returns once its transaction is committed (or failed).
    pub fn submit(&self, prepared: Prepared) -> Result<Vec<Outcome>> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.enqueue(prepared, Reply::Thread(reply));
        answer
            .recv()
            .unwrap_or_else(|_| Err(Error::Internal("the writer stopped before answering".into())))
    }

    /// Hand a prepared message to the writer; the answer goes to `reply` after the commit (at
    /// once, as an error, when the writer has stopped).
    pub fn enqueue(&self, prepared: Prepared, reply: Reply) {
        let job = Job { prepared, reply };
        let unsent = match self.queue.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(q) => q.send(job).err().map(|mpsc::SendError(job)| job),
            None => Some(job),
        };
        if let Some(job) = unsent {
            job.reply.send(Err(Error::Internal("the writer has stopped".into())));
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
        // The writer finishes the queue and, ending, lets the flushing thread finish its own.
        for t in self.threads.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = t.join();
        }
    }
}

fn run(committer: &mut Committer, flushing: Option<mpsc::Sender<Vec<Answer>>>, rx: mpsc::Receiver<Job>) {
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
        let results = commit(committer, &batch);
        let answers = batch.into_iter().map(|job| job.reply).zip(results);
        match &flushing {
            Some(queue) => {
                if let Err(mpsc::SendError(unflushed)) = queue.send(answers.collect()) {
                    for (reply, _) in unflushed {
                        reply.send(Err(Error::Internal("the flushing thread has stopped".into())));
                    }
                }
            }
            None => answers.for_each(|(reply, result)| reply.send(result)),
        }
    }
}

/// The flushing thread: takes every group committed so far, flushes once, answers them all.
///
/// A failed flush is the answer of every message it was to make durable — and of every message
/// after it until the daemon restarts: after a failed flush the kernel may have dropped the
/// pages it could not write and report the next flush as a success, so no later flush vouches
/// for them, and a retry would find its first try's record and be accepted on the strength of
/// it (PostgreSQL stops on a failed flush for the same reason). Meanwhile the mail waits in the
/// MTA's queue.
fn flush_and_answer(mut flush: Flush, rx: mpsc::Receiver<Vec<Answer>>) {
    let mut failed: Option<Error> = None;
    while let Ok(mut answers) = rx.recv() {
        while let Ok(more) = rx.try_recv() {
            answers.extend(more);
        }
        let started = std::time::Instant::now();
        let flushed = match &failed {
            Some(e) => Err(e.clone()),
            None => flush(),
        };
        tracing::debug!("writer: {} message(s) flushed in {} µs", answers.len(), started.elapsed().as_micros());
        if let (Err(e), None) = (&flushed, &failed) {
            tracing::error!("{e}: every message is deferred until ticketmilter is restarted (check the disk first)");
            let cause = match e {
                Error::Database(m) => m.clone(),
                e => e.to_string(),
            };
            failed = Some(Error::Database(format!("earlier, {cause}: every message is deferred until ticketmilter is restarted")));
        }
        for (reply, result) in answers {
            reply.send(match (&flushed, result) {
                (Err(e), Ok(_)) => Err(e.clone()),
                (_, result) => result,
            });
        }
    }
}

/// Write a batch in one transaction. A message whose writing fails is rolled back to its
/// savepoint and gets its error; one that failed only after the lock wait gives its error to
/// the messages after it too (see `waited_for_a_lock`); when the commit itself fails, every
/// message gets that error.
fn commit(committer: &mut Committer, batch: &[Job]) -> Vec<Result<Vec<Outcome>>> {
    if let [job] = batch {
        if let Some(done) = commit_alone(committer, &job.prepared) {
            return vec![done];
        }
    }
    let mut results: Vec<Result<Vec<Outcome>>> = Vec::with_capacity(batch.len());
    let started = std::time::Instant::now();
    let mut work = std::time::Duration::ZERO;
    let lock_wait = committer.lock_wait();
    let committed = committer.transact(Finish::Commit, |conn| {
        for job in batch {
            let began = std::time::Instant::now();
            let result = one(conn, &job.prepared);
            if let Err(e) = &result {
                if waited_for_a_lock(e, began, lock_wait) {
                    // The others would each wait as long again (PostgreSQL takes its locks
                    // statement by statement): they get the same answer now.
                    results.resize_with(batch.len(), || Err(e.clone()));
                    break;
                }
            }
            results.push(result);
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
fn commit_alone(committer: &mut Committer, p: &Prepared) -> Option<Result<Vec<Outcome>>> {
    let started = std::time::Instant::now();
    let mut work = std::time::Duration::ZERO;
    let mut retry = false;
    let lock_wait = committer.lock_wait();
    let committed = committer.transact(Finish::Commit, |conn| {
        let written = write_prepared_alone(conn, p);
        work = started.elapsed();
        // Not after a lock wait that timed out: the retry would wait as long again.
        retry = written.as_ref().err().is_some_and(|e| !waited_for_a_lock(e, started, lock_wait));
        written
    });
    if retry {
        return None;
    }
    log_transaction(1, started, work);
    Some(committed)
}

/// A database error after at least the lock wait: most likely a lock held elsewhere that the
/// statement gave up on (PostgreSQL's `lock_timeout`). Whatever it was, trying again in the same
/// transaction would keep the messages behind it waiting as long again. A lock wait shorter
/// than `LOCK_WAIT_FLOOR` counts as that floor: with `busy_timeout_ms` at 0 or a few ms, an
/// ordinary failure (a unique-key conflict with a concurrent twin) still gets its retry.
fn waited_for_a_lock(e: &Error, began: std::time::Instant, lock_wait: std::time::Duration) -> bool {
    matches!(e, Error::Database(_)) && began.elapsed() >= lock_wait.max(LOCK_WAIT_FLOOR)
}

/// See `waited_for_a_lock`.
const LOCK_WAIT_FLOOR: std::time::Duration = std::time::Duration::from_millis(250);

/// Where the writer's time goes: the statements (`work`, from `started`), then the commit (with
/// its flush when there is no flushing thread).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::model::Envelope;
    use std::time::Duration;

    fn tickets(store: &Store) -> i64 {
        store.read(|c| store::plans::int(c, "SELECT count(*) AS n FROM tickets")).unwrap()
    }

    /// A store with the test directory's mailboxes, and an engine on it.
    fn setup() -> (tempfile::TempDir, Store, Engine) {
        let (dir, store) = store::plans::store();
        store.write(|c| store::execute_script(c, include_str!("../../tests/fixtures/directory.sql"))).unwrap();
        let engine = Engine::new(store.clone()).unwrap();
        (dir, store, engine)
    }

    /// Message `n` for support@, prepared.
    fn message(engine: &Engine, n: u32) -> Prepared {
        let raw = format!("From: Carla <carla@acme.example>\r\nTo: support@msp.example\r\nSubject: Printer jammed ({n})\r\nMessage-ID: <w{n}@acme.example>\r\n\r\nThe printer on floor {n} is jammed.\r\n");
        let mut envelope = Envelope::new(["support@msp.example"]);
        envelope.sender = "carla@acme.example".into();
        let p = engine.prepare(envelope, raw.into_bytes());
        assert_eq!(p.targets.len(), 1);
        p
    }

    /// The flushing thread: each flush waits for the test's go-ahead, then the first one ends as
    /// `first` says and the others succeed.
    fn held_flush(first: Result<()>) -> (Flush, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (started_tx, started) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        let mut next = Some(first);
        let flush: Flush = Box::new(move || {
            let _ = started_tx.send(());
            let _ = go_rx.recv_timeout(Duration::from_secs(10));
            next.take().unwrap_or(Ok(()))
        });
        (flush, started, go)
    }

    #[test]
    fn only_a_database_error_after_the_lock_wait_counts_as_a_lock_wait() {
        let db = || Error::Database("canceling statement due to lock timeout".into());
        let ago = |ms| std::time::Instant::now() - Duration::from_millis(ms);
        assert!(waited_for_a_lock(&db(), ago(1_100), Duration::from_secs(1)));
        assert!(!waited_for_a_lock(&db(), ago(500), Duration::from_secs(1)), "before the wait was over");
        assert!(!waited_for_a_lock(&Error::Internal("panicked".into()), ago(1_100), Duration::from_secs(1)), "not a database error");
        // A lock wait of 0 (fail at once) does not make every failure a lock wait.
        assert!(!waited_for_a_lock(&db(), ago(5), Duration::ZERO));
        assert!(waited_for_a_lock(&db(), ago(300), Duration::ZERO));
    }

    #[test]
    fn a_message_is_answered_only_after_the_flush_that_follows_its_commit() {
        let (_dir, store, engine) = setup();
        let p = message(&engine, 1);
        let (committer, wal) = store.committer().unwrap();
        assert!(wal.is_some(), "SQLite's WAL is flushed beside the writer");
        let (flush, started, go) = held_flush(Ok(()));
        let before = tickets(&store);
        let writer = Writer::start_with(committer, Some(flush)).unwrap();
        let (reply, answer) = mpsc::sync_channel(1);
        writer.enqueue(p, Reply::Thread(reply));
        started.recv_timeout(Duration::from_secs(10)).expect("the flush to begin");
        // Committed (visible to others) but not yet flushed: nobody has been answered.
        assert_eq!(tickets(&store), before + 1);
        assert!(answer.recv_timeout(Duration::from_millis(200)).is_err(), "answered before the flush");
        go.send(()).unwrap();
        let outcomes = answer.recv_timeout(Duration::from_secs(10)).expect("the answer after the flush").unwrap();
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].outcome, crate::model::Verdict::Created, "{outcomes:?}");
    }

    #[test]
    fn a_failed_flush_defers_its_messages_and_every_later_one() {
        let (_dir, store, engine) = setup();
        let (committer, _wal) = store.committer().unwrap();
        let (flush, _started, go) = held_flush(Err(Error::Database("cannot flush t.db-wal to disk: Input/output error".into())));
        for _ in 0..2 {
            go.send(()).unwrap();
        }
        let writer = Writer::start_with(committer, Some(flush)).unwrap();
        match writer.submit(message(&engine, 1)) {
            Err(Error::Database(m)) => assert!(m.contains("cannot flush"), "{m}"),
            other => panic!("the flush's failure should be the answer: {other:?}"),
        }
        // The next flush would succeed, but it cannot vouch for what the failed one lost.
        match writer.submit(message(&engine, 2)) {
            Err(Error::Database(m)) => assert!(m.contains("cannot flush") && m.contains("until ticketmilter is restarted"), "{m}"),
            other => panic!("a message after a failed flush should be deferred: {other:?}"),
        }
    }
}
