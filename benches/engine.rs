//! `Engine::process` of 1,000 distinct small messages (distinct Message-IDs) into a fresh SQLite
//! database on disk, one durable transaction per message: messages per second end to end.
//!
//! Every iteration makes a fresh database in a temporary directory (migrated, loaded with the
//! benchmark directory: one mailbox, 50 tags), which is not timed; the 1,000 `process` calls are.
//!
//! - `engine_1000/process_sync_full`: the shipped configuration (WAL; the writer's commit, then
//!   the flush of the WAL before the answer): every message is one flushed commit.
//! - `engine_1000/process_sync_normal_experiment`: the same with no flush at all (a store opened
//!   with `ConnOptions::flush_commits` off: `synchronous = NORMAL` and no WAL flush), to show
//!   what the flush costs. Never the daemon's.
//! - `engine_1000/process_dry_run`: the same work rolled back (`Options { dry_run: true }`): every
//!   lookup and insert, no commit (and no hand-off to the writer thread).
//!
//! Run: `cargo bench --bench engine`.

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use diesel::RunQueryDsl;

use ticketmilter::model::{Envelope, Verdict};
use ticketmilter::store::{AnyConnection, ConnOptions, Store, StoreOptions};
use ticketmilter::{Engine, Options};

const MESSAGES: usize = 1000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    SyncFull,
    SyncNormal,
    DryRun,
}

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn query_int(store: &Store, sql: &str) -> i64 {
    store
        .read(|c| {
            let n = match c {
                AnyConnection::Sqlite(c) => diesel::sql_query(sql).get_result::<N>(c)?.n,
                AnyConnection::Postgres(c) => diesel::sql_query(sql).get_result::<N>(c)?.n,
            };
            Ok(n)
        })
        .expect(sql)
}

/// A fresh, migrated database with the benchmark directory, and an engine on it.
fn fresh_engine(mode: Mode) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = match mode {
        Mode::SyncNormal => StoreOptions {
            conn: ConnOptions { flush_commits: false, ..ConnOptions::default() },
            ..StoreOptions::default()
        },
        Mode::SyncFull | Mode::DryRun => StoreOptions::default(),
    };
    let store = common::fresh_store(dir.path(), opts);
    let engine = Engine::new(store).expect("engine");
    (dir, engine)
}

/// Process every message once into a fresh database; returns the time the `process` calls took.
fn run_once(mode: Mode, envelope: &Envelope, messages: &[Vec<u8>]) -> Duration {
    let (_dir, engine) = fresh_engine(mode);
    let opts = Options {
        dry_run: mode == Mode::DryRun,
        ..Options::default()
    };
    let start = Instant::now();
    for raw in messages {
        let outcomes = engine.process(envelope, raw, opts).expect("process");
        assert_eq!(outcomes[0].outcome, Verdict::Created);
    }
    let elapsed = start.elapsed();

    // Outside the measurement: the run did what it claims.
    let store = engine.store();
    let want_tickets = if mode == Mode::DryRun { 0 } else { messages.len() as i64 };
    assert_eq!(query_int(store, "SELECT count(*) AS n FROM tickets"), want_tickets);
    let want_sync = if mode == Mode::SyncNormal { 1 } else { 2 };
    assert_eq!(
        query_int(store, "SELECT synchronous AS n FROM pragma_synchronous"),
        want_sync,
        "synchronous level of the pooled connections"
    );
    elapsed
}

fn engine_1000(c: &mut Criterion) {
    let envelope = common::envelope();
    let messages: Vec<Vec<u8>> = (0..MESSAGES).map(common::small_message).collect();

    let mut g = c.benchmark_group("engine_1000");
    // One sample is one run of 1,000 messages into a fresh database. The measurement target is
    // deliberately short so that each of the 10 samples is exactly one run; criterion notes that
    // it cannot finish 10 samples in that time, which is expected.
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(MESSAGES as u64));
    for (name, mode) in [
        ("process_sync_full", Mode::SyncFull),
        ("process_sync_normal_experiment", Mode::SyncNormal),
        ("process_dry_run", Mode::DryRun),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run_once(mode, &envelope, &messages)).sum())
        });
    }
    g.finish();
}

criterion_group!(benches, engine_1000);
criterion_main!(benches);
