//! Faults end to end, through the private Postfix of tests/support/mod.rs (swaks' place taken by
//! several concurrent plain SMTP clients): the daemon killed with SIGKILL in the middle of a
//! stream, the SQLite database's disk full, a database lock held longer than the milter's
//! deadline, and the database unavailable while mail streams in. Afterwards every test counts:
//! each message converted exactly once (one ticket, one processed record, its Message-ID on one
//! ticket), every answer a client or Postfix's queue saw was 250 or 4xx (never 5xx, never a
//! bounce), and a message that was committed while its answer was lost is recognised as a
//! duplicate when it comes again. Each test prints what it measured.
//!
//! Half of the clients talk to the milter'd smtpd directly and retry a 4xx themselves (as an
//! MTA does); the other half submit to the front smtpd, whose Postfix queue forwards to the
//! milter'd smtpd and keeps what was tempfailed deferred until `postqueue -f`.
//!
//! Backends as tests/common/mod.rs selects (`TICKETMILTER_TEST_BACKEND`), except two tests that
//! are about one backend and run on it in both passes: the disk-full test (SQLite's file on a
//! tmpfs) and the test that kills the daemon between commit and answer (a PostgreSQL cluster of
//! its own, whose COMMIT can be held after it is durable). Needs root (Postfix, a tmpfs mount),
//! Postfix, swaks and the PostgreSQL server binaries; a missing tool fails the test (it never
//! skips).

mod support;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::common::Backend;
use support::{Env, Setup, SmtpReply, log_field, message, smtp_send, unique_id, wait_for};

const ALICE: &str = "alice@example.com";
const SUPPORT: &str = "support@msp.example";

/// How long a client waits for any one SMTP reply (above Postfix's milter timeouts).
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the repair may take: retries of the clients, flushes of Postfix's queue.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How a message reaches the milter'd smtpd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The test's client talks to it and retries a 4xx itself.
    Direct,
    /// Through the front smtpd and Postfix's queue, which defers a 4xx.
    Queue,
}

/// One message of a stream and the answer to its first attempt.
#[derive(Debug, Clone)]
struct Mail {
    n: usize,
    mid: String,
    subject: String,
    text: String,
    route: Route,
    first: SmtpReply,
    /// When the first attempt began and when its answer came.
    sent: Instant,
    answered: Instant,
}

/// `clients` concurrent SMTP clients send `per_client` messages each, one every `pace` (as fast
/// as the answers come when behind); even-numbered clients talk to the milter'd smtpd directly,
/// odd ones submit to the front smtpd. `fault` runs on the calling thread meanwhile, given the
/// number of first answers so far; the last `after` messages of each client wait until it has
/// returned (traffic after the repair). Returns every message, in order of number.
fn stream(
    env: &Env,
    tag: &str,
    shape: (usize, usize, usize),
    pace: Duration,
    fault: impl FnOnce(&AtomicUsize),
) -> Vec<Mail> {
    stream_of(env, tag, shape, pace, 0, fault)
}

/// [`stream`] with bodies of about `body_bytes` bytes (at least one line).
fn stream_of(
    env: &Env,
    tag: &str,
    (clients, per_client, after): (usize, usize, usize),
    pace: Duration,
    body_bytes: usize,
    fault: impl FnOnce(&AtomicUsize),
) -> Vec<Mail> {
    assert!(after <= per_client);
    let answered = AtomicUsize::new(0);
    let fault_over = AtomicBool::new(false);
    let mails: Mutex<Vec<Mail>> = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let (answered, mails, fault_over) = (&answered, &mails, &fault_over);
            s.spawn(move || {
                let route = if c % 2 == 0 { Route::Direct } else { Route::Queue };
                let port = if route == Route::Direct { env.smtp_port } else { env.front_port };
                for i in 0..per_client {
                    if i + after >= per_client {
                        while !fault_over.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    let due = start + pace * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let n = i * clients + c;
                    let mid = unique_id(&format!("{tag}-{n}"));
                    let subject = format!("{tag} message {n}");
                    let mut body = format!("Message {n} of the {tag} stream.\n");
                    while body.len() < body_bytes {
                        body.push_str(&format!("Line {} of the report that message {n} carries along.\n", body.len()));
                    }
                    let text = message(ALICE, SUPPORT, &subject, &mid, &[], &body);
                    let sent = Instant::now();
                    let first = smtp_send(port, ALICE, &[SUPPORT], &text, REPLY_TIMEOUT);
                    let mail = Mail { n, mid, subject, text, route, first, sent, answered: Instant::now() };
                    mails.lock().unwrap().push(mail);
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // Also when the fault panics: the clients must not wait for it forever.
        struct Over<'a>(&'a AtomicBool);
        impl Drop for Over<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _over = Over(&fault_over);
        fault(&answered);
    });
    let mut mails = mails.into_inner().unwrap();
    mails.sort_by_key(|m| m.n);
    mails
}

/// Wait until `answered` reaches `n` (a point in the stream).
fn wait_answers(answered: &AtomicUsize, n: usize) {
    wait_for(&format!("{n} answers in the stream"), Duration::from_secs(60), || {
        (answered.load(Ordering::SeqCst) >= n).then_some(())
    });
}

/// The front queue id of a message that went through Postfix's queue.
fn front_qid(m: &Mail) -> String {
    m.first.queue_id().unwrap_or_else(|| panic!("message {}: the front smtpd did not accept it: {}", m.n, m.first))
}

/// Assert the clients' first answers: a direct client got 250 or 4xx, the front smtpd 250.
/// Returns the number of direct messages tempfailed at their first attempt.
fn check_first_answers(mails: &[Mail]) -> usize {
    let mut temporary = 0;
    for m in mails {
        match m.route {
            Route::Direct if m.first.accepted() => {}
            Route::Direct if m.first.temporary() => temporary += 1,
            Route::Direct => panic!("message {} <{}>: answer {} — only 250 or 4xx may reach a client", m.n, m.mid, m.first),
            Route::Queue => assert!(m.first.accepted(), "message {}: the front smtpd answered {}", m.n, m.first),
        }
    }
    temporary
}

/// Wait until Postfix's queue has tried each queued message once (a `status=` line of its front
/// queue id); assert that each try was `sent` or `deferred` with a 4xx. Returns the queue ids of
/// those deferred.
fn first_deliveries(env: &Env, mails: &[Mail]) -> HashSet<String> {
    let mut deferred = HashSet::new();
    for m in mails.iter().filter(|m| m.route == Route::Queue) {
        let qid = front_qid(m);
        let line = env.wait_maillog(&qid, "status=");
        if line.contains("status=deferred") {
            assert!(
                line.contains(" said: 4"),
                "message {}: deferred, but not by a 4xx: {line}",
                m.n
            );
            deferred.insert(qid);
        } else {
            assert!(line.contains("status=sent"), "message {}: neither sent nor deferred: {line}", m.n);
        }
    }
    deferred
}

fn processed(env: &Env, mid: &str) -> i64 {
    env.count("SELECT count(*) AS n FROM processed_messages WHERE message_id = ?", &[mid])
}

/// What is known about a stream once the fault is over, before any retry.
struct AfterFault {
    /// Messages not converted at their first attempt (a direct 4xx or a deferral in the queue).
    retried: Vec<usize>,
    /// Of those, the ones committed all the same: the conversion finished but its answer did
    /// not reach the client. Their retry must be recognised as a duplicate.
    answer_lost: HashSet<usize>,
}

/// Which messages need a retry and which of them were committed already. Also asserts that
/// every message that was accepted at its first attempt was committed (accept only after the
/// commit).
fn after_fault(env: &Env, mails: &[Mail], deferred: &HashSet<String>) -> AfterFault {
    let mut retried = Vec::new();
    let mut answer_lost = HashSet::new();
    for m in mails {
        let first_failed = match m.route {
            Route::Direct => !m.first.accepted(),
            Route::Queue => deferred.contains(&front_qid(m)),
        };
        let committed = processed(env, &m.mid);
        if first_failed {
            retried.push(m.n);
            if committed == 1 {
                answer_lost.insert(m.n);
            }
        } else {
            assert_eq!(committed, 1, "message {} <{}> was accepted ({}) but is not recorded", m.n, m.mid, m.first);
        }
    }
    AfterFault { retried, answer_lost }
}

/// The repair seen from the senders: each direct client resends what got a 4xx until it is
/// accepted (every answer 250 or 4xx); Postfix's queue is flushed until every queued message was
/// delivered. Returns, per message number, the queue id at the milter'd smtpd of the attempt
/// that was accepted.
fn retry_until_delivered(env: &Env, mails: &[Mail]) -> Vec<(usize, String)> {
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    let mut accepted: Vec<(usize, String)> = Vec::new();
    for m in mails.iter().filter(|m| m.route == Route::Direct) {
        let mut reply = m.first.clone();
        let mut tries = 1;
        while !reply.accepted() {
            assert!(
                reply.temporary(),
                "message {} <{}>: retry {tries} answered {reply} — only 250 or 4xx may reach a client",
                m.n,
                m.mid
            );
            assert!(Instant::now() < deadline, "message {} still not accepted after {tries} tries: {reply}", m.n);
            if tries > 1 {
                std::thread::sleep(Duration::from_millis(200));
            }
            reply = smtp_send(env.smtp_port, ALICE, &[SUPPORT], &m.text, REPLY_TIMEOUT);
            tries += 1;
        }
        accepted.push((m.n, reply.queue_id().expect("queue id of an accepted message")));
    }
    let queued: Vec<&Mail> = mails.iter().filter(|m| m.route == Route::Queue).collect();
    let removed = |qid: &str| env.maillog_lines(qid).iter().any(|l| l.contains(&format!("{qid}: removed")));
    loop {
        if queued.iter().all(|m| removed(&front_qid(m))) {
            break;
        }
        assert!(Instant::now() < deadline, "Postfix's queue still holds messages:\n{}", env.postqueue_list());
        // A flush again every few seconds: a message Postfix's queue manager was still busy
        // with when the previous flush came waits for the next one.
        env.postqueue_flush();
        let round = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < round && !queued.iter().all(|m| removed(&front_qid(m))) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for m in queued {
        let qid = front_qid(m);
        let lines = env.maillog_lines(&qid);
        for l in lines.iter().filter(|l| l.contains("status=")) {
            assert!(
                l.contains("status=sent") || (l.contains("status=deferred") && !l.contains(" said: 5")),
                "message {}: Postfix's queue saw an answer other than 250 or 4xx: {l}",
                m.n
            );
        }
        let sent = lines.iter().find(|l| l.contains("status=sent")).unwrap_or_else(|| panic!("{qid} was not sent"));
        let inner = sent
            .split("queued as ")
            .nth(1)
            .map(|s| s.trim_end_matches(')').trim().to_string())
            .unwrap_or_else(|| panic!("no inner queue id in {sent}"));
        accepted.push((m.n, inner));
    }
    accepted.sort();
    accepted
}

/// Every message of the stream converted exactly once: one ticket with its subject, one
/// processed record, its Message-ID on one ticket; the accepted attempt's milter line says
/// `created`, or `duplicate` naming that same ticket exactly when an earlier attempt committed
/// while its answer was lost. Returns the tickets made.
fn assert_exactly_once(env: &Env, tag: &str, mails: &[Mail], accepted: &[(usize, String)], lost: &HashSet<usize>) -> i64 {
    assert_eq!(accepted.len(), mails.len(), "every message must be accepted in the end");
    for (m, (n, qid)) in mails.iter().zip(accepted) {
        assert_eq!(m.n, *n);
        assert_eq!(processed(env, &m.mid), 1, "message {} <{}>: processed records", m.n, m.mid);
        assert_eq!(
            env.count("SELECT count(*) AS n FROM tickets WHERE title = ?", &[&m.subject]),
            1,
            "message {} <{}>: tickets titled {:?}",
            m.n,
            m.mid,
            m.subject
        );
        assert_eq!(
            env.count("SELECT count(DISTINCT ticket_id) AS n FROM message_refs WHERE message_id = ?", &[&m.mid]),
            1,
            "message {} <{}>: tickets its Message-ID belongs to",
            m.n,
            m.mid
        );
        let line = env.milter_line(qid, SUPPORT);
        let action = log_field(&line, "action").unwrap_or_default();
        let expected = if lost.contains(&m.n) { "duplicate" } else { "created" };
        assert_eq!(action, expected, "message {} <{}> (accepted as {qid}): milter line {line}", m.n, m.mid);
        let number = log_field(&line, "ticket").expect("ticket= in the milter line");
        assert_eq!(
            env.count("SELECT count(*) AS n FROM tickets WHERE number = ? AND title = ?", &[&number, &m.subject]),
            1,
            "message {}: the milter line names {number}, which is not the ticket titled {:?}: {line}",
            m.n,
            m.subject
        );
    }
    let tickets = env.count("SELECT count(*) AS n FROM tickets WHERE title LIKE ?", &[&format!("{tag} message %")]);
    assert_eq!(tickets, mails.len() as i64, "tickets of the {tag} stream");
    tickets
}

/// The milter's error line for a message that was tempfailed: `QID: from=<…> <why>;
/// answer=tempfail (451 4.3.0 …)`, found by any queue id Postfix gave the message.
fn tempfail_line(env: &Env, m: &Mail) -> String {
    wait_for(&format!("the milter's tempfail line for message {} <{}>", m.n, m.mid), support::EVENT_TIMEOUT, || {
        let qids = env.queue_ids_of(&m.mid);
        let log = env.milter_log();
        log.lines()
            .find(|l| {
                l.contains("answer=tempfail (451 4.3.0 ") && qids.iter().any(|q| l.contains(&format!("{q}: from=<{ALICE}> ")))
            })
            .map(str::to_string)
    })
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// `kill -9` of the daemon while four clients send 80 messages (two straight to the milter'd
/// smtpd, two through Postfix's queue); Postfix (`milter_default_action = tempfail`) answers 4xx
/// for what the dead milter did not answer; the daemon is started again on the same socket and
/// database. Just before the kill a lock held elsewhere (as in the slow-database test) makes the
/// messages arriving meanwhile wait in the writer, so that the kill finds conversions in flight.
/// Every message accepted before the kill was committed; in the end every message is converted
/// exactly once, and any committed whose answer died with the daemon comes back as a duplicate.
#[test]
fn daemon_killed_mid_stream_converts_every_message_once() {
    let test_started = Instant::now();
    let env = Env::start_setup(Setup { busy_timeout_ms: 30_000, ..Setup::default() });
    let started = Instant::now();
    let mut killed_at = None;
    let mut back_at = None;
    let mails = stream(&env, "killed", (4, 20, 4), Duration::from_millis(150), |answered| {
        wait_answers(answered, 24);
        let lock = env.hold_write_lock();
        std::thread::sleep(Duration::from_millis(500));
        killed_at = Some(Instant::now());
        env.kill_milter();
        lock.release();
        // The stream goes on against the dead socket for a while.
        std::thread::sleep(Duration::from_millis(700));
        env.restart_milter();
        back_at = Some(Instant::now());
    });
    let (killed_at, back_at) = (killed_at.unwrap(), back_at.unwrap());
    let stream_time = started.elapsed();
    let temporary = check_first_answers(&mails);
    let deferred = first_deliveries(&env, &mails);
    let during: Vec<&Mail> = mails.iter().filter(|m| m.answered > killed_at && m.answered < back_at).collect();
    assert!(!during.is_empty(), "no message was answered while the milter was down: the fault missed the stream");
    let in_flight = mails
        .iter()
        .filter(|m| m.route == Route::Direct && m.first.temporary() && m.first.stage == "end of data")
        .count();
    assert!(in_flight > 0, "no direct message was waiting for its answer when the milter was killed");
    let after = after_fault(&env, &mails, &deferred);
    let first_after = mails
        .iter()
        .filter(|m| m.route == Route::Direct && m.first.accepted() && m.answered > back_at)
        .map(|m| m.answered)
        .min();
    assert!(first_after.is_some(), "no message was accepted after the restart: the stream ended before it");

    let repair = Instant::now();
    let accepted = retry_until_delivered(&env, &mails);
    let repaired = repair.elapsed();
    let tickets = assert_exactly_once(&env, "killed", &mails, &accepted, &after.answer_lost);
    let starts = env.milter_log().matches(" listening on ").count();
    assert_eq!(starts, 2, "the milter started twice (once after the kill)");
    eprintln!(
        "kill -9 mid-stream ({:?}): {} messages from 4 clients in {} ms; milter down {} ms (killed, restarted, listening); \
         first message accepted {} ms after the kill; tempfailed at the first attempt: {} direct (by step: {:?}), {} deferred \
         in the queue; committed with the answer lost: {} {:?}; retries and queue flushes took {} ms; tickets {tickets}; \
         the whole test took {} ms",
        support::common::backend(),
        mails.len(),
        ms(stream_time),
        ms(back_at - killed_at),
        ms(first_after.unwrap() - killed_at),
        temporary,
        stages(&mails),
        deferred.len(),
        after.answer_lost.len(),
        after.answer_lost,
        ms(repaired),
        ms(test_started.elapsed()),
    );
}

/// The window between commit and answer, made wide: PostgreSQL only (it runs on a private
/// cluster in both passes), because only there can a commit be held after it is durable —
/// `synchronous_standby_names` naming a standby that never comes makes each COMMIT wait for it
/// once it is written locally. Messages stream in; when a conversion's commit waits so, the
/// daemon is killed with SIGKILL, and Postfix answers 4xx for everything it had sent it. Then
/// the standby requirement is dropped: the waiting transaction completes — committed, its answer
/// lost with the daemon. After the restart the retries of exactly those messages are recognised
/// as duplicates of their tickets; the others (which had not reached the database) are
/// converted now; every message once.
#[test]
fn daemon_killed_between_commit_and_answer_converts_once() {
    let test_started = Instant::now();
    let env = Env::start_setup(Setup {
        backend: Some(Backend::Postgres),
        own_database_server: true,
        ..Setup::default()
    });
    let waiting_commits = || {
        env.count("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event = 'SyncRep'", &[])
    };
    env.execute("ALTER SYSTEM SET synchronous_standby_names = 'tm_standby_that_never_comes'");
    env.execute("SELECT pg_reload_conf()");
    let mut killed_at = None;
    let mut held = 0;
    let mails = stream(&env, "window", (4, 2, 0), Duration::from_millis(100), |_| {
        wait_for("a conversion's COMMIT to wait for the synchronous standby", support::EVENT_TIMEOUT, || {
            (waiting_commits() > 0).then_some(())
        });
        // Let a few more messages reach the milter behind it.
        std::thread::sleep(Duration::from_millis(300));
        held = waiting_commits();
        killed_at = Some(Instant::now());
        env.kill_milter();
    });
    let killed_at = killed_at.unwrap();
    let temporary = check_first_answers(&mails);
    assert_eq!(temporary, 4, "every direct message is tempfailed: none was answered before the kill");
    for m in mails.iter().filter(|m| m.route == Route::Direct) {
        assert!(m.answered >= killed_at, "message {} was answered before the kill: {}", m.n, m.first);
    }
    let deferred = first_deliveries(&env, &mails);
    assert_eq!(deferred.len(), 4, "every queued message is deferred");
    // The daemon is gone; its transaction completes once no standby is required.
    env.execute("ALTER SYSTEM RESET synchronous_standby_names");
    env.execute("SELECT pg_reload_conf()");
    // Done once the killed daemon's sessions are all gone (the released one ends its
    // transaction first, then finds its client gone).
    wait_for("the held COMMIT to complete and the killed daemon's sessions to end", support::EVENT_TIMEOUT, || {
        let others = env.count(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[],
        );
        (waiting_commits() == 0 && others == 0).then_some(())
    });
    let after = after_fault(&env, &mails, &deferred);
    assert!(!after.answer_lost.is_empty(), "the held COMMIT should have committed a message whose answer was lost");
    env.restart_milter();
    let accepted = retry_until_delivered(&env, &mails);
    let tickets = assert_exactly_once(&env, "window", &mails, &accepted, &after.answer_lost);
    eprintln!(
        "kill -9 between commit and answer (Postgres, private cluster): {} messages; {held} COMMIT(s) held at the kill; \
         tempfailed: {temporary} direct (by step: {:?}), {} deferred in the queue; committed with the answer lost: {} {:?}, \
         each retry of those a duplicate; tickets {tickets}; \
         the whole test took {} ms",
        mails.len(),
        stages(&mails),
        deferred.len(),
        after.answer_lost.len(),
        after.answer_lost,
        ms(test_started.elapsed()),
    );
}

/// Which steps the direct clients' 4xx answers came at, and how many at each.
fn stages(mails: &[Mail]) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = Vec::new();
    for m in mails.iter().filter(|m| m.route == Route::Direct && m.first.temporary()) {
        let key = format!("{} {}", m.first.stage, m.first.code);
        match v.iter_mut().find(|(k, _)| *k == key) {
            Some((_, c)) => *c += 1,
            None => v.push((key, 1)),
        }
    }
    v
}

/// SQLite only (the test is about the database file's disk, so it runs on SQLite in the
/// PostgreSQL pass too): the database lives on a tmpfs of 8 MB that a filler file fills up
/// completely. The database cannot grow: each message gets 451 4.3.0 (a direct client) or is
/// deferred (Postfix's queue), and the milter says why in one line with the queue id. Then the
/// filler gives back 64 KB and messages of 18 KB stream in until the room runs out again in the
/// middle of the stream: what fits is accepted (and committed), the rest tempfailed. Throughout
/// the file stays sound (`PRAGMA integrity_check`). Once the filler is gone, the retries convert
/// each message of both streams once.
#[test]
fn full_disk_tempfails_and_converts_once_after_space_returns() {
    let test_started = Instant::now();
    let env = Env::start_setup(Setup {
        backend: Some(Backend::Sqlite),
        database_disk_bytes: Some(8 << 20),
        ..Setup::default()
    });
    // The database works on its tmpfs.
    let warm = stream(&env, "warm", (2, 1, 0), Duration::ZERO, |_| {});
    for m in &warm {
        assert!(m.first.accepted(), "before the disk is full: {}", m.first);
    }
    let warm_accepted = retry_until_delivered(&env, &warm);
    assert_exactly_once(&env, "warm", &warm, &warm_accepted, &HashSet::new());

    // No room at all: every commit would have to extend the WAL.
    let filler = env.fill_database_disk(0);
    let mails = stream(&env, "diskfull", (4, 3, 0), Duration::from_millis(100), |_| {});
    assert_eq!(check_first_answers(&mails), 6, "every direct message must be tempfailed while the disk is full");
    for m in mails.iter().filter(|m| m.route == Route::Direct) {
        assert!(m.first.stage == "end of data" && m.first.text.starts_with("4.3.0 "), "message {}: {}", m.n, m.first);
    }
    let deferred = first_deliveries(&env, &mails);
    assert_eq!(deferred.len(), 6, "every queued message must be deferred while the disk is full");
    let mut example = String::new();
    for m in &mails {
        let line = tempfail_line(&env, m);
        assert!(
            line.contains("database or disk is full"),
            "message {}: the milter's line should say that the disk is full: {line}",
            m.n
        );
        example = line;
    }
    assert_eq!(env.sqlite_integrity_check(), "ok", "the database file while its disk is full");
    let after = after_fault(&env, &mails, &deferred);
    assert_eq!(after.retried.len(), mails.len());
    assert!(after.answer_lost.is_empty(), "nothing may be committed on a full disk: {:?}", after.answer_lost);

    // A little room, used up in the middle of a stream.
    const ROOM: u64 = 256 * 1024;
    env.free_database_disk();
    let filler = filler.max(env.fill_database_disk(ROOM));
    let running_out = stream_of(&env, "runningout", (4, 3, 0), Duration::from_millis(50), 18_000, |_| {});
    let running_temporary = check_first_answers(&running_out);
    let running_deferred = first_deliveries(&env, &running_out);
    let running_after = after_fault(&env, &running_out, &running_deferred);
    assert!(!running_after.retried.is_empty(), "12 messages of 18 KB cannot all fit into {ROOM} bytes");
    for n in &running_after.retried {
        let line = tempfail_line(&env, &running_out[*n]);
        assert!(line.contains("database or disk is full"), "message {n}: {line}");
    }
    assert_eq!(env.sqlite_integrity_check(), "ok", "the database file once its disk ran out again");

    env.free_database_disk();
    let freed = Instant::now();
    let accepted = retry_until_delivered(&env, &mails);
    let running_accepted = retry_until_delivered(&env, &running_out);
    let recovered = freed.elapsed();
    assert_exactly_once(&env, "diskfull", &mails, &accepted, &after.answer_lost);
    assert_exactly_once(&env, "runningout", &running_out, &running_accepted, &running_after.answer_lost);
    assert_eq!(env.sqlite_integrity_check(), "ok", "the database file after the disk has room again");
    eprintln!(
        "disk full (SQLite on an 8 MB tmpfs, filler up to {filler} bytes): full: {} messages, all tempfailed (6 direct \
         451, 6 deferred); then {ROOM} bytes of room and {} messages of 18 KB: {} accepted, {} tempfailed \
         ({running_temporary} direct 451, {} deferred), committed with the answer lost: {}; integrity_check ok \
         throughout; after the filler went, every message converted once within {} ms. Milter line: {}; \
         the whole test took {} ms",
        mails.len(),
        running_out.len(),
        running_out.len() - running_after.retried.len(),
        running_after.retried.len(),
        running_deferred.len(),
        running_after.answer_lost.len(),
        ms(recovered),
        example.trim(),
        ms(test_started.elapsed()),
    );
}

/// A transaction elsewhere holds the lock the milter's writer needs (SQLite: the write lock,
/// PostgreSQL: an EXCLUSIVE lock on the tables a conversion writes; the milter's lock wait,
/// `busy_timeout_ms`, is a minute) for longer than Postfix's
/// `milter_content_timeout` (5 s here). The milter answers each message at its own deadline
/// (`eom_timeout` = 2 s) with 451 4.3.0 and a line saying so — Postfix never times the milter
/// out. The conversions waiting behind the lock commit when it is released, after their answer:
/// each retry is then a duplicate of its ticket, and every message is converted once.
#[test]
fn slow_database_is_answered_at_the_deadline_and_converts_once() {
    let test_started = Instant::now();
    const EOM_TIMEOUT: u64 = 2;
    const CONTENT_TIMEOUT: u64 = 5;
    let env = Env::start_setup(Setup {
        busy_timeout_ms: 60_000,
        eom_timeout: EOM_TIMEOUT,
        milter_content_timeout: CONTENT_TIMEOUT,
        ..Setup::default()
    });
    let lock = env.hold_write_lock();
    let held = Instant::now();
    let mails = stream(&env, "slow", (4, 2, 0), Duration::from_millis(200), |_| {});
    assert_eq!(check_first_answers(&mails), 4, "every direct message must be tempfailed while the lock is held");
    let deferred = first_deliveries(&env, &mails);
    assert_eq!(deferred.len(), 4, "every queued message must be deferred while the lock is held");
    let bound = Duration::from_secs(EOM_TIMEOUT) + Duration::from_millis(1500);
    let mut slowest = Duration::ZERO;
    for m in mails.iter().filter(|m| m.route == Route::Direct) {
        assert!(
            m.first.stage == "end of data" && m.first.text.starts_with("4.3.0 ") && m.first.text.contains("timed out"),
            "message {}: expected the milter's 451 4.3.0 (conversion timed out), got {}",
            m.n,
            m.first
        );
        assert!(m.first.eom_latency <= bound, "message {}: answered after {:?} (bound {bound:?})", m.n, m.first.eom_latency);
        slowest = slowest.max(m.first.eom_latency);
    }
    for m in &mails {
        let line = tempfail_line(&env, m);
        assert!(
            line.contains(&format!("conversion did not finish within {EOM_TIMEOUT} s")),
            "message {}: the milter's line should name the deadline: {line}",
            m.n
        );
    }
    // Outlast Postfix's own timeout with the lock: had the milter not bounded its work,
    // Postfix would have given up on it.
    if let Some(rest) = (Duration::from_secs(CONTENT_TIMEOUT + 1)).checked_sub(held.elapsed()) {
        std::thread::sleep(rest);
    }
    let warnings: Vec<String> = env.maillog().lines().filter(|l| l.contains("warning: milter")).map(str::to_string).collect();
    assert!(warnings.is_empty(), "Postfix had trouble with the milter:\n{}", warnings.join("\n"));
    for m in &mails {
        assert_eq!(processed(&env, &m.mid), 0, "message {}: nothing may commit while the lock is held", m.n);
    }
    let held_for = held.elapsed();
    lock.release();
    let released = Instant::now();
    // The conversions that waited behind the lock commit now, after their answers.
    wait_for("the waiting conversions to commit after the lock was released", support::EVENT_TIMEOUT, || {
        mails.iter().all(|m| processed(&env, &m.mid) == 1).then_some(())
    });
    let committed_after = released.elapsed();
    let after = after_fault(&env, &mails, &deferred);
    assert_eq!(after.answer_lost.len(), mails.len(), "every message committed after its tempfail");
    let accepted = retry_until_delivered(&env, &mails);
    let recovered = released.elapsed();
    assert_exactly_once(&env, "slow", &mails, &accepted, &after.answer_lost);
    eprintln!(
        "slow database ({:?}, lock held {} ms): {} messages, all answered 451 4.3.0 at the deadline (slowest direct answer \
         {} ms, eom_timeout {EOM_TIMEOUT} s, Postfix's milter_content_timeout {CONTENT_TIMEOUT} s, no Postfix milter \
         warning); the waiting conversions committed {} ms after the release; every retry a duplicate; all converted once \
         {} ms after the release; \
         the whole test took {} ms",
        support::common::backend(),
        ms(held_for),
        mails.len(),
        ms(slowest),
        ms(committed_after),
        ms(recovered),
        ms(test_started.elapsed()),
    );
}

/// The database becomes unavailable (SQLite: its write lock held elsewhere, busy timeout 300 ms;
/// PostgreSQL: the server stopped and started again, connection timeout 1 s) for 2.5 s while
/// four clients stream 48 messages: what arrives meanwhile is tempfailed or deferred, the daemon
/// recovers by itself — every message sent after the database is back is accepted at once — and
/// after the retries every message is converted exactly once. (tests/postfix.rs has the same
/// fault with one sender at a time.)
#[test]
fn database_outage_under_load_converts_every_message_once() {
    let test_started = Instant::now();
    let env = Env::start_setup(Setup { own_database_server: true, connect_timeout: 1, ..Setup::default() });
    let mut down_at = None;
    let mut up_at = None;
    let mails = stream(&env, "outage", (4, 12, 3), Duration::from_millis(250), |answered| {
        wait_answers(answered, 12);
        let outage = env.take_database_down();
        down_at = Some(Instant::now());
        std::thread::sleep(Duration::from_millis(2500));
        outage.end();
        up_at = Some(Instant::now());
    });
    let (down_at, up_at) = (down_at.unwrap(), up_at.unwrap());
    let temporary = check_first_answers(&mails);
    let deferred = first_deliveries(&env, &mails);
    assert!(temporary > 0 && !deferred.is_empty(), "the outage must tempfail direct and queued messages alike");
    for m in mails.iter().filter(|m| m.route == Route::Direct && m.first.temporary()) {
        assert!(
            m.first.stage == "end of data"
                && m.first.text.starts_with("4.3.0 ")
                && m.first.text.contains("database is unavailable"),
            "message {}: expected the milter's 451 4.3.0 (database unavailable), got {}",
            m.n,
            m.first
        );
    }
    let later: Vec<&Mail> = mails.iter().filter(|m| m.route == Route::Direct && m.sent > up_at).collect();
    assert!(!later.is_empty(), "no direct message was sent after the outage");
    for m in &later {
        assert!(m.first.accepted(), "message {} was sent after the database returned, but answered {}", m.n, m.first);
    }
    let first_after = later.iter().map(|m| m.answered).min().unwrap();
    let after = after_fault(&env, &mails, &deferred);
    let repair = Instant::now();
    let accepted = retry_until_delivered(&env, &mails);
    let repaired = repair.elapsed();
    let tickets = assert_exactly_once(&env, "outage", &mails, &accepted, &after.answer_lost);
    eprintln!(
        "database outage under load ({:?}): {} messages from 4 clients; database away {} ms; tempfailed at the first \
         attempt: {temporary} direct, {} deferred in the queue; committed with the answer lost: {}; first message sent after \
         the database returned accepted {} ms after it returned; retries and queue flushes took {} ms; tickets {tickets}; \
         the whole test took {} ms",
        support::common::backend(),
        mails.len(),
        ms(up_at - down_at),
        deferred.len(),
        after.answer_lost.len(),
        ms(first_after - up_at),
        ms(repaired),
        ms(test_started.elapsed()),
    );
}
