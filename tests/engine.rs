//! The entry point against a real database (SQLite or PostgreSQL, see tests/common/mod.rs):
//! idempotency, threading, numbering, attribution, atomicity and concurrency.

mod common;

use common::{TestDb, envelope, test_clock};
use ticketmilter::Options;
use ticketmilter::model::{Outcome, SenderKind, Verdict};

const SUPPORT: &str = "support@msp.example";
const ALERTS: &str = "alerts@msp.example";

fn msg(from: &str, subject: &str, message_id: Option<&str>, extra_headers: &str, body: &str) -> Vec<u8> {
    let mut s = format!("From: {from}\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n");
    if let Some(id) = message_id {
        s.push_str(&format!("Message-ID: <{id}>\r\n"));
    }
    s.push_str(extra_headers);
    s.push_str("\r\n");
    s.push_str(body);
    s.into_bytes()
}

fn one(db: &TestDb, rcpts: &[&str], raw: &[u8]) -> Outcome {
    let out = db.engine().process(&envelope("", rcpts), raw, Options::default()).unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    out.into_iter().next().unwrap()
}

/// No trusted verifiers: staff addresses are believed as written (the installation cannot
/// tell authenticated mail; see tests/entities.rs for the other case).
fn without_trust(db: &TestDb) {
    db.store.write(|c| ticketmilter::store::conf::set_setting(c, "trusted_authserv_ids", "")).unwrap();
}

fn number(o: &Outcome) -> String {
    o.object.as_ref().and_then(|x| x.ticket_number.clone()).expect("ticket number")
}

#[test]
fn a_message_becomes_a_ticket_with_everything_stored() {
    let db = TestDb::directory();
    let raw = msg("Alice <alice@example.com>", "Drucker im 2. OG druckt leer", Some("p1@example.com"),
        "Content-Type: text/plain; charset=utf-8\r\n", "Hallo,\r\nder Drucker druckt nur leere Seiten.\r\n");
    let o = one(&db, &[SUPPORT], &raw);
    assert_eq!(o.outcome, Verdict::Created);
    assert_eq!(number(&o), "T20261127.0001");
    assert_eq!(o.title.as_deref(), Some("Drucker im 2. OG druckt leer"));
    assert_eq!(o.description.as_deref(), Some("Hallo,\nder Drucker druckt nur leere Seiten."));
    let s = o.sender.unwrap();
    assert_eq!((s.kind, s.company.as_deref()), (SenderKind::Contact, Some("Example Corp")));
    assert_eq!(o.tags, vec!["Printer"]);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE number = 'T20261127.0001' AND company_id = 1 AND contact_id = 1 AND mailbox_id = 1 AND source_id = 1 AND status_id = 1 AND queue_id = 1 AND priority_id = 3"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_tags WHERE origin = 'auto' AND tag_id = 1"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE outcome = 'created' AND dedup_key = 'mid:p1@example.com' AND raw IS NOT NULL"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM message_refs WHERE message_id = 'p1@example.com'"), 1);
}

#[test]
fn the_same_message_twice_makes_one_ticket_and_names_it() {
    let db = TestDb::directory();
    let raw = msg("alice@example.com", "VPN down", Some("same@example.com"), "", "help\r\n");
    let first = one(&db, &[SUPPORT], &raw);
    let second = one(&db, &[SUPPORT], &raw);
    assert_eq!(first.outcome, Verdict::Created);
    assert_eq!(second.outcome, Verdict::Duplicate);
    assert_eq!(second.object, first.object);
    assert!(second.reason.unwrap().contains("already processed"));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE number LIKE 'T20261127.%'"), 1);
}

#[test]
fn one_message_to_two_mailboxes_makes_one_object_in_each() {
    let db = TestDb::directory();
    let raw = msg("alice@example.com", "disk full", Some("two@example.com"), "", "x\r\n");
    let env = envelope("", &[SUPPORT, ALERTS, "someone@else.example"]);
    let out = db.engine().process(&env, &raw, Options::default()).unwrap();
    assert_eq!(out.iter().map(|o| (o.mailbox.as_str(), o.outcome)).collect::<Vec<_>>(),
        vec![(SUPPORT, Verdict::Created), (ALERTS, Verdict::Created)]);
    assert_ne!(out[0].object, out[1].object);
    // The alerts mailbox adds its required tag.
    assert_eq!(out[1].tags.first().map(String::as_str), Some("Monitoring"));
    let again = db.engine().process(&env, &raw, Options::default()).unwrap();
    assert!(again.iter().all(|o| o.outcome == Verdict::Duplicate));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE number LIKE 'T20261127.%'"), 2);
}

#[test]
fn without_message_id_the_content_decides_what_is_a_duplicate() {
    let db = TestDb::directory();
    let raw = msg("alice@example.com", "no id", None, "", "body one\r\n");
    assert_eq!(one(&db, &[SUPPORT], &raw).outcome, Verdict::Created);
    // An MTA retry adds trace headers and may change line ends: still the same message.
    let mut retried = b"Received: from relay.example by mx.example; Fri, 27 Nov 2026 10:05:00 +0000\n".to_vec();
    retried.extend(String::from_utf8(raw.clone()).unwrap().replace("\r\n", "\n").into_bytes());
    assert_eq!(one(&db, &[SUPPORT], &retried).outcome, Verdict::Duplicate);
    let other = msg("alice@example.com", "no id either", None, "", "body two\r\n");
    assert_eq!(one(&db, &[SUPPORT], &other).outcome, Verdict::Created);
}

#[test]
fn replies_thread_by_references_without_a_number() {
    let db = TestDb::directory();
    without_trust(&db);
    let first = one(&db, &[SUPPORT], &msg("alice@example.com", "Outlook crashes", Some("orig@example.com"), "", "crash\r\n"));
    let reply = msg("alice@example.com", "Re: Outlook crashes", Some("r1@example.com"),
        "In-Reply-To: <orig@example.com>\r\nReferences: <orig@example.com>\r\n", "still crashing\r\n");
    let r = one(&db, &[SUPPORT], &reply);
    assert_eq!(r.outcome, Verdict::NoteAdded);
    assert_eq!(number(&r), number(&first));
    // A reply to the reply references both; the newest known one decides.
    let reply2 = msg("tina@msp.example", "Re: Re: Outlook crashes", Some("r2@msp.example"),
        "References: <unknown@elsewhere> <orig@example.com> <r1@example.com>\r\n", "fixed\r\n");
    let r2 = one(&db, &[SUPPORT], &reply2);
    assert_eq!((r2.outcome, number(&r2)), (Verdict::NoteAdded, number(&first)));
    assert_eq!(r2.sender.unwrap().kind, SenderKind::Resource);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE author_resource_id = 1 AND body = 'fixed'"), 1);
}

#[test]
fn a_number_in_the_subject_adds_a_note_and_an_unknown_number_makes_a_ticket() {
    let db = TestDb::directory();
    let r = one(&db, &[SUPPORT], &msg("stranger@nowhere.example", "AW: WG: [T20261120.0001] VPN", Some("n1@x"), "", "ok\r\n"));
    assert_eq!((r.outcome, number(&r)), (Verdict::NoteAdded, "T20261120.0001".to_string()));
    let s = r.sender.unwrap();
    assert_eq!((s.kind, s.company.as_deref()), (SenderKind::Unknown, Some("Example Corp")));
    let u = one(&db, &[SUPPORT], &msg("alice@example.com", "Re: T20261120.0999 printer", Some("n2@x"), "", "?\r\n"));
    assert_eq!(u.outcome, Verdict::Created);
    assert!(u.reason.unwrap().contains("T20261120.0999 in the subject matches no ticket"));
}

#[test]
fn private_mail_is_ignored_and_recorded() {
    let db = TestDb::directory();
    let raw = msg("alice@example.com", "salary", Some("priv@x"), "Sensitivity: Private\r\n", "secret\r\n");
    let o = one(&db, &[SUPPORT], &raw);
    assert_eq!(o.outcome, Verdict::Ignored);
    assert!(o.reason.unwrap().contains("private"));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE number LIKE 'T20261127.%'"), 0);
    assert_eq!(one(&db, &[SUPPORT], &raw).outcome, Verdict::Duplicate);
}

#[test]
fn rejections_are_not_remembered_so_a_retry_after_a_fix_converts() {
    let db = TestDb::directory();
    let raw = msg("newbie@unknown.example", "alert", Some("rej@x"), "", "x\r\n");
    let o = one(&db, &[ALERTS], &raw);
    assert_eq!(o.outcome, Verdict::Rejected);
    assert!(o.reason.unwrap().contains("newbie@unknown.example"));
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages"), 0);
    db.store.write(|c| ticketmilter::store::directory::add_contact(c, "newbie@unknown.example", "Acme GmbH", None, &[])).unwrap();
    assert_eq!(one(&db, &[ALERTS], &raw).outcome, Verdict::Created);
}

#[test]
fn attribution_paths() {
    let db = TestDb::directory();
    without_trust(&db);
    let cases: &[(&str, SenderKind, Option<&str>)] = &[
        ("TINA@msp.example", SenderKind::Resource, Some("Fallback Inc")),
        ("bernd.private@gmx.DE", SenderKind::Contact, Some("Acme GmbH")),
        ("b3@acme.example", SenderKind::Contact, Some("Acme GmbH")),
        ("carol@example.com", SenderKind::CompanyDomain, Some("Example Corp")),
        ("new.person@acme.example", SenderKind::CompanyDomain, Some("Acme GmbH")),
        ("dave@gone.example", SenderKind::Fallback, Some("Fallback Inc")),
        ("someone@gmail.com", SenderKind::Fallback, Some("Fallback Inc")),
        ("x@twins.example", SenderKind::Fallback, Some("Fallback Inc")),
        ("old@msp.example", SenderKind::Fallback, Some("Fallback Inc")),
    ];
    for (i, (from, kind, company)) in cases.iter().enumerate() {
        let o = one(&db, &[SUPPORT], &msg(from, "hello", Some(&format!("a{i}@x")), "", "x\r\n"));
        let s = o.sender.unwrap();
        assert_eq!((s.kind, s.company.as_deref()), (*kind, *company), "{from}");
    }
    let o = one(&db, &["nofallback@msp.example"], &msg("x@nowhere.example", "hello", Some("nf@x"), "", "x\r\n"));
    assert_eq!((o.outcome, o.sender.unwrap().company), (Verdict::Created, None));
}

#[test]
fn recipients_match_case_insensitively_with_detail_and_only_active_mailboxes() {
    let db = TestDb::directory();
    let raw = msg("alice@example.com", "x", Some("rc@x"), "", "x\r\n");
    assert_eq!(one(&db, &["Support+Urgent@MSP.example"], &raw).outcome, Verdict::Created);
    let o = one(&db, &["old@msp.example", "nobody@msp.example"], &raw);
    assert_eq!(o.outcome, Verdict::NotOurs);
}

#[test]
fn dry_run_reports_but_writes_nothing() {
    let db = TestDb::directory();
    let raw = msg("alice@example.com", "try", Some("dry@x"), "", "x\r\n");
    for _ in 0..2 {
        let o = db.engine().process(&envelope("", &[SUPPORT]), &raw, Options { dry_run: true, ..Options::default() }).unwrap();
        assert_eq!((o[0].outcome, number(&o[0])), (Verdict::Created, "T20261127.0001".to_string()));
    }
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), 2);
    assert_eq!(number(&one(&db, &[SUPPORT], &raw)), "T20261127.0001");
}

#[test]
fn numbers_run_per_day() {
    let db = TestDb::directory();
    let engine = db.engine();
    let mut got = Vec::new();
    for (i, day_offset) in [0, 0, 1, 1, 1].iter().enumerate() {
        let mut env = envelope("", &[SUPPORT]);
        env.received_at = test_clock() + chrono::Duration::days(*day_offset);
        let o = engine.process(&env, &msg("alice@example.com", &format!("n{i}"), Some(&format!("d{i}@x")), "", "x\r\n"), Options::default()).unwrap();
        got.push(number(&o[0]));
    }
    assert_eq!(got, ["T20261127.0001", "T20261127.0002", "T20261128.0001", "T20261128.0002", "T20261128.0003"]);
}

#[test]
fn a_failure_half_way_writes_nothing() {
    // Attachments fail to store: the ticket, its number and the record must all be undone.
    let db = TestDb::new(&(common::DIRECTORY_SQL.to_string()
        + &common::refuse_inserts_sql("no_files", "attachments", None, "disk says no")));
    let raw = b"From: alice@example.com\r\nSubject: with file\r\nMessage-ID: <f@x>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0K\r\n--b--\r\n";
    let err = db.engine().process(&envelope("", &[SUPPORT]), raw, Options::default()).unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("disk says no"), "{err}");
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), 2);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM blobs"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM number_sequences WHERE day = '20261127'"), 0);
}

#[test]
fn identical_attachments_share_one_blob() {
    let db = TestDb::directory();
    let mk = |id: &str, name: &str| format!("From: alice@example.com\r\nSubject: file\r\nMessage-ID: <{id}>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: application/pdf; name={name}\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n").into_bytes();
    let a = one(&db, &[SUPPORT], &mk("b1@x", "a.pdf"));
    let b = one(&db, &[SUPPORT], &mk("b2@x", "copy.pdf"));
    assert_eq!(a.attachments[0].filename, "a.pdf");
    assert_eq!(b.attachments[0].filename, "copy.pdf");
    assert_eq!(a.attachments[0].size, 9);
    assert_eq!(db.count("SELECT count(*) AS n FROM attachments"), 2);
    assert_eq!(db.count("SELECT count(*) AS n FROM blobs"), 1);
}

#[test]
fn concurrent_messages_get_unique_consecutive_numbers() {
    let db = TestDb::directory();
    let engine = std::sync::Arc::new(db.engine());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let raw = msg("alice@example.com", &format!("load {t}-{i}"), Some(&format!("c{t}-{i}@x")), "", "x\r\n");
                    let o = engine.process(&envelope("", &[SUPPORT]), &raw, Options::default()).unwrap();
                    assert_eq!(o[0].outcome, Verdict::Created);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(db.count("SELECT count(DISTINCT number) AS n FROM tickets WHERE number LIKE 'T20261127.%'"), 200);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE number = 'T20261127.0200'"), 1);
    assert_eq!(db.count("SELECT last_value AS n FROM number_sequences WHERE day = '20261127'"), 200);
}

#[test]
fn the_same_message_racing_on_many_connections_converts_once() {
    let db = TestDb::directory();
    let engine = std::sync::Arc::new(db.engine());
    let raw = std::sync::Arc::new(msg("alice@example.com", "race", Some("race@x"), "", "x\r\n"));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (engine, raw) = (engine.clone(), raw.clone());
            std::thread::spawn(move || engine.process(&envelope("", &[SUPPORT]), &raw, Options::default()).unwrap()[0].outcome)
        })
        .collect();
    let verdicts: Vec<Verdict> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Created).count(), 1, "{verdicts:?}");
    assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Duplicate).count(), 7, "{verdicts:?}");
}

#[test]
fn configuration_changes_apply_after_reload() {
    let db = TestDb::directory();
    let engine = db.engine();
    let raw = msg("alice@example.com", "x", Some("rl@x"), "", "x\r\n");
    db.store.write(|c| ticketmilter::store::mailboxes::add(c, "billing@msp.example", &Default::default())).unwrap();
    let env = envelope("", &["billing@msp.example"]);
    assert_eq!(engine.process(&env, &raw, Options::default()).unwrap()[0].outcome, Verdict::NotOurs);
    engine.reload().unwrap();
    assert_eq!(engine.process(&env, &raw, Options::default()).unwrap()[0].outcome, Verdict::Created);
}

#[test]
fn one_failing_message_does_not_fail_the_messages_committed_with_it() {
    // A trigger refuses one particular ticket; everything written beside it must survive.
    let db = TestDb::new(&(common::DIRECTORY_SQL.to_string()
        + &common::refuse_inserts_sql("poison", "tickets", Some("NEW.title = 'poison'"), "poisoned")));
    let engine = std::sync::Arc::new(db.engine());
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let subject = if i % 4 == 0 { "poison".to_string() } else { format!("fine {i}") };
                let raw = msg("alice@example.com", &subject, Some(&format!("g{i}@x")), "", "x\r\n");
                (i, engine.process(&envelope("", &[SUPPORT]), &raw, Options::default()))
            })
        })
        .collect();
    for t in threads {
        let (i, r) = t.join().unwrap();
        if i % 4 == 0 {
            let e = r.unwrap_err();
            assert!(e.to_string().contains("poisoned") && e.is_transient(), "{e}");
        } else {
            assert_eq!(r.unwrap()[0].outcome, Verdict::Created, "message {i}");
        }
    }
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE title LIKE 'fine %'"), 12);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages"), 12);
    // Numbers stay gap-free: the refused ones gave theirs back.
    assert_eq!(db.count("SELECT last_value AS n FROM number_sequences WHERE day = '20261127'"), 12);
}

/// Hostile sizes of indexed values (a 4 KB sender address, alert id and Message-ID) convert on
/// both backends — PostgreSQL refuses index entries over ≈ 2.7 KB, so such values are stored as
/// their hash — and a second delivery of the same message is still recognised.
#[test]
fn oversized_indexed_values_convert_and_stay_idempotent() {
    let db = TestDb::directory();
    let long_local = "x".repeat(4000);
    let from = format!("{long_local}@example.com");
    let mid = format!("{}@example.com", "m".repeat(4000));
    let body = format!("Disk full.\n\nalertid={}\n", "a".repeat(4000));
    let raw = msg(&from, "Disk C: full", Some(&mid), "", &body);
    let first = one(&db, &[ALERTS], &raw);
    assert_eq!(first.outcome, Verdict::Created, "{first:?}");
    let again = one(&db, &[ALERTS], &raw);
    assert_eq!(again.outcome, Verdict::Duplicate, "{again:?}");
    assert_eq!(again.object, first.object);
    // A new message with the same alert id is a duplicate of the open ticket (alert criterion).
    let raw2 = msg(&from, "Disk C: still full", Some("other@example.com"), "", &body);
    let second = one(&db, &[ALERTS], &raw2);
    assert_ne!(second.outcome, Verdict::Created, "{second:?}");
    assert_eq!(second.object.as_ref().and_then(|o| o.ticket_number.clone()), Some(number(&first)));
}

/// A lock held elsewhere for longer than the lock wait (`busy_timeout_ms`): every message queued
/// behind it gets its database error after about one wait — on PostgreSQL too, whose locks are
/// taken statement by statement, so that each message of a group would otherwise wait again —
/// and, once the lock is gone, each converts once.
#[test]
fn messages_behind_a_lock_held_elsewhere_fail_after_one_lock_wait() {
    use diesel::connection::SimpleConnection;
    use std::time::{Duration, Instant};
    use ticketmilter::store::{ConnOptions, Store, StoreOptions};
    const MESSAGES: usize = 8;
    let wait = Duration::from_millis(1000);
    let db = TestDb::directory();
    let opts = StoreOptions { conn: ConnOptions { busy_timeout: wait, ..ConnOptions::default() }, ..StoreOptions::default() };
    let engine = std::sync::Arc::new(ticketmilter::Engine::new(Store::open(&db.url(), opts).unwrap()).unwrap());
    let raw = |i: usize| msg("alice@example.com", &format!("behind the lock {i}"), Some(&format!("lock{i}@x")), "", "x\r\n");
    let mut locker = db.store.conn().unwrap();
    locker.batch_execute(common::hold_write_lock_sql()).unwrap();
    // The lock goes when the test says so, or after a minute: a wait without limit shows as a
    // failure, not a hang.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _ = released.recv_timeout(Duration::from_secs(60));
        locker.batch_execute("ROLLBACK;").unwrap();
    });
    let started = Instant::now();
    let threads: Vec<_> = (0..MESSAGES)
        .map(|i| {
            let engine = engine.clone();
            std::thread::spawn(move || engine.process(&envelope("", &[SUPPORT]), &raw(i), Options::default()))
        })
        .collect();
    for t in threads {
        match t.join().unwrap() {
            Err(ticketmilter::Error::Database(m)) => assert!(m.contains("lock"), "the error should name the lock: {m}"),
            other => panic!("a message behind the lock should fail with a database error: {other:?}"),
        }
    }
    let took = started.elapsed();
    // One or two groups of messages, each failing after one wait; a wait per message would be
    // at least MESSAGES waits.
    assert!(took < wait * 5, "{MESSAGES} messages behind the lock were answered after {took:?} (lock wait {wait:?})");
    release.send(()).unwrap();
    holder.join().unwrap();
    for i in 0..MESSAGES {
        let o = engine.process(&envelope("", &[SUPPORT]), &raw(i), Options::default()).unwrap();
        assert_eq!(o[0].outcome, Verdict::Created, "message {i} after the release: {o:?}");
    }
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE title LIKE 'behind the lock %'"), MESSAGES as i64);
    eprintln!("{MESSAGES} messages behind a lock held elsewhere answered in {took:?} (lock wait {wait:?})");
}
