//! The sender worker: claims outbox rows, delivers them over SMTP, retries with backoff.
//!
//! A pass claims due rows in one short transaction (which commits before any SMTP traffic),
//! sends them over one plain SMTP connection to the relay, and records each outcome in its own
//! short write: sent; retried later with exponential backoff and jitter (4xx replies, network
//! trouble); or failed (5xx replies, rows that cannot be built, too many attempts).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use lettre::Transport;
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{PoolConfig, SmtpTransport};
use tracing::{error, info, warn};

use super::mail;
use crate::config::NotifyConfig;
use crate::store::Store;
use crate::store::outbox::{self, OutboxRow};

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassReport {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

/// How delivering one row ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Sent,
    /// May work later: 4xx, network trouble, an unreachable relay.
    Transient(String),
    /// Will not work: 5xx, or a row that cannot be turned into a message.
    Permanent(String),
    /// Not attempted in this pass (it ran out of time); due again at once.
    Deferred(String),
}

fn now() -> NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Seconds as a `Duration`, at least one second.
fn secs(s: u64) -> Duration {
    Duration::from_secs(s.max(1))
}

/// The SMTP client for one pass: plain SMTP to the relay, one connection reused for every row.
fn transport(cfg: &NotifyConfig) -> SmtpTransport {
    let hello = match cfg.helo_name.trim() {
        "" => ClientId::default(),
        name => ClientId::Domain(name.to_string()),
    };
    SmtpTransport::builder_dangerous(cfg.relay.trim())
        .port(cfg.port)
        .timeout(Some(secs(cfg.timeout)))
        .hello_name(hello)
        .pool_config(PoolConfig::new().max_size(1).min_idle(0))
        .build()
}

/// The server's reply (or the network problem) in one line.
fn describe(e: &lettre::transport::smtp::Error, cfg: &NotifyConfig) -> String {
    let text = match (e.status(), std::error::Error::source(e)) {
        (Some(code), Some(reply)) => format!("{code} {reply}"),
        (Some(code), None) => format!("{code}"),
        (None, _) => format!("relay {}:{}: {e}", cfg.relay.trim(), cfg.port),
    };
    text.replace(['\r', '\n'], " ").trim().to_string()
}

/// Whether an error means the relay cannot be talked to at all (as opposed to a reply about
/// this one message): the rest of the pass is then not attempted.
fn relay_unreachable(e: &lettre::transport::smtp::Error) -> bool {
    e.status().is_none() && !e.is_client()
}

/// One pass: claim up to `cfg.batch` due rows (lease `cfg.lease`), send each to
/// `cfg.relay:cfg.port` over plain SMTP on one reused connection, and record each outcome.
/// Fails only when the database does; rows whose outcome could not be recorded are taken
/// again once their lease runs out.
pub fn send_pass(store: &Store, cfg: &NotifyConfig) -> crate::Result<PassReport> {
    let started = Instant::now();
    let lease = secs(cfg.lease);
    let limit = i64::from(cfg.batch.max(1));
    let rows = store.write(|conn| outbox::claim(conn, now(), chrono_duration(lease), limit))?;
    let mut report = PassReport { claimed: rows.len(), ..PassReport::default() };
    if rows.is_empty() {
        return Ok(report);
    }

    let smtp = transport(cfg);
    // Set once the relay proved unreachable: the remaining rows wait for the next try.
    let mut unreachable: Option<String> = None;
    let mut result = Ok(());
    for row in &rows {
        let outcome = if let Some(reason) = &unreachable {
            Outcome::Transient(reason.clone())
        } else if started.elapsed() + secs(cfg.timeout).min(lease / 2) >= lease {
            // The lease could run out while talking to the relay, and another worker could
            // then send the same row: leave it for the next pass. (The first row of a pass
            // is always attempted.)
            Outcome::Deferred("not attempted: the pass ran out of its lease".into())
        } else {
            match mail::build(row) {
                Err(e) => Outcome::Permanent(format!("cannot build the message: {e}")),
                Ok((envelope, bytes)) => match smtp.send_raw(&envelope, &bytes) {
                    Ok(_) => Outcome::Sent,
                    Err(e) if e.is_permanent() => Outcome::Permanent(describe(&e, cfg)),
                    Err(e) => {
                        let reason = describe(&e, cfg);
                        if relay_unreachable(&e) {
                            unreachable = Some(reason.clone());
                        }
                        Outcome::Transient(reason)
                    }
                },
            }
        };
        if let Err(e) = record(store, cfg, row, outcome, &mut report) {
            // The database is gone: stop sending what could not be recorded.
            result = Err(e);
            break;
        }
    }
    smtp.shutdown();
    result.map(|()| report)
}

/// Store the outcome of one row and log it.
fn record(store: &Store, cfg: &NotifyConfig, row: &OutboxRow, outcome: Outcome, report: &mut PassReport) -> crate::Result<()> {
    match outcome {
        Outcome::Sent => {
            store.write(|conn| outbox::mark_sent(conn, row.id, now()))?;
            report.sent += 1;
            info!(id = row.id, kind = %row.kind, to = %row.recipient, message_id = %row.message_id, "notification sent");
        }
        Outcome::Permanent(reply) => {
            store.write(|conn| outbox::mark_failed(conn, row.id, &reply))?;
            report.failed += 1;
            crate::metrics::global().outbox_failure();
            warn!(id = row.id, kind = %row.kind, to = %row.recipient, reply = %reply, "notification failed");
        }
        Outcome::Deferred(reason) => {
            store.write(|conn| outbox::mark_retry(conn, row.id, now(), &reason))?;
            report.retried += 1;
            warn!(id = row.id, kind = %row.kind, to = %row.recipient, reason = %reason, "notification deferred");
        }
        Outcome::Transient(reply) if row.attempts >= i32::try_from(cfg.max_attempts).unwrap_or(i32::MAX) => {
            let error = format!("gave up after {} attempts: {reply}", row.attempts);
            store.write(|conn| outbox::mark_failed(conn, row.id, &error))?;
            report.failed += 1;
            crate::metrics::global().outbox_failure();
            warn!(id = row.id, kind = %row.kind, to = %row.recipient, attempts = row.attempts, reply = %reply, "notification failed: too many attempts");
        }
        Outcome::Transient(reply) => {
            let delay = retry_delay(cfg, row.attempts);
            let next_try = now() + chrono_duration(delay);
            store.write(|conn| outbox::mark_retry(conn, row.id, next_try, &reply))?;
            report.retried += 1;
            warn!(
                id = row.id,
                kind = %row.kind,
                to = %row.recipient,
                attempts = row.attempts,
                retry_in_secs = delay.as_secs(),
                reply = %reply,
                "notification will be retried"
            );
        }
    }
    Ok(())
}

/// A number in [0, 1) that differs per call (spreads retries).
fn random_unit() -> f64 {
    (super::random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Delay before retry number `attempts` (1 = first retry): backoff * 2^(attempts-1), at most
/// backoff_max, then multiplied by a random factor in [0.8, 1.2]; never below 1 second.
pub fn retry_delay(cfg: &NotifyConfig, attempts: i32) -> Duration {
    let exponent = attempts.saturating_sub(1).clamp(0, 62) as u32;
    let base = cfg.backoff.saturating_mul(1u64 << exponent).min(cfg.backoff_max) as f64;
    let factor = 0.8 + 0.4 * random_unit();
    Duration::from_secs_f64((base * factor).max(1.0))
}

/// The worker thread inside the daemon: runs [`send_pass`] every `cfg.interval` seconds
/// (immediately again when a pass was full) until `stop` is set. A failing pass (database
/// down) is logged and tried again at the next interval; it never ends the thread.
pub fn spawn(store: Store, cfg: NotifyConfig, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("notify-sender".into()).spawn(move || {
        info!(relay = %cfg.relay, port = cfg.port, interval = cfg.interval, "notification sender started");
        while !stop.load(Ordering::Relaxed) {
            let pass = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| send_pass(&store, &cfg)));
            let full = match pass {
                Ok(Ok(report)) => report.claimed > 0 && report.claimed >= cfg.batch.max(1) as usize,
                Ok(Err(e)) => {
                    crate::metrics::global().database_error();
                    error!(error = %e, "notification pass failed; trying again later");
                    false
                }
                Err(_) => {
                    error!("notification pass panicked; trying again later");
                    false
                }
            };
            if !full {
                sleep_unless_stopped(secs(cfg.interval), &stop);
            }
        }
        info!("notification sender stopped");
    })
}

/// Sleep for `total`, waking early when `stop` is set.
fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;
    use crate::store::outbox::NewOutbox;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Mutex;

    fn cfg(port: u16) -> NotifyConfig {
        NotifyConfig {
            enabled: true,
            relay: "127.0.0.1".into(),
            port,
            helo_name: "worker.test".into(),
            timeout: 5,
            interval: 1,
            batch: 10,
            lease: 300,
            max_attempts: 3,
            backoff: 60,
            backoff_max: 3600,
        }
    }

    #[test]
    fn retry_delay_grows_capped_with_jitter() {
        let c = NotifyConfig { backoff: 60, backoff_max: 1000, ..cfg(25) };
        for _ in 0..200 {
            let d1 = retry_delay(&c, 1).as_secs_f64();
            assert!((48.0..=72.0).contains(&d1), "{d1}");
            let d3 = retry_delay(&c, 3).as_secs_f64();
            assert!((192.0..=288.0).contains(&d3), "{d3}");
            let d10 = retry_delay(&c, 10).as_secs_f64();
            assert!((800.0..=1200.0).contains(&d10), "{d10}");
            let huge = retry_delay(&c, i32::MAX).as_secs_f64();
            assert!((800.0..=1200.0).contains(&huge), "{huge}");
            let zero = retry_delay(&c, 0).as_secs_f64();
            assert!((48.0..=72.0).contains(&zero), "{zero}");
        }
        let tiny = NotifyConfig { backoff: 0, backoff_max: 0, ..cfg(25) };
        assert_eq!(retry_delay(&tiny, 1), Duration::from_secs(1));
        // The jitter actually varies.
        let samples: std::collections::HashSet<u128> = (0..20).map(|_| retry_delay(&c, 1).as_millis()).collect();
        assert!(samples.len() > 10, "{samples:?}");
    }

    /// What the fake relay saw.
    #[derive(Default, Debug)]
    struct Seen {
        mail_from: Vec<String>,
        rcpt_to: Vec<String>,
        messages: Vec<String>,
        helo: Vec<String>,
        connections: usize,
    }

    /// A minimal SMTP server on 127.0.0.1: RCPT to "reject@…" gets 550, to "later@…" 451, to
    /// "slow@…" 250 after 1.2 s.
    struct FakeSmtp {
        port: u16,
        seen: Arc<Mutex<Seen>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl FakeSmtp {
        fn start() -> FakeSmtp {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let port = listener.local_addr().unwrap().port();
            let seen = Arc::new(Mutex::new(Seen::default()));
            let stop = Arc::new(AtomicBool::new(false));
            let (seen2, stop2) = (seen.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            seen2.lock().unwrap().connections += 1;
                            let _ = Self::session(stream, &seen2);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            });
            FakeSmtp { port, seen, stop, thread: Some(thread) }
        }

        fn session(stream: TcpStream, seen: &Mutex<Seen>) -> std::io::Result<()> {
            stream.set_nonblocking(false)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.set_write_timeout(Some(Duration::from_secs(10)))?;
            let mut out = stream.try_clone()?;
            let mut input = BufReader::new(stream);
            out.write_all(b"220 fake.test ESMTP\r\n")?;
            let mut line = String::new();
            loop {
                line.clear();
                if input.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let cmd = line.trim_end().to_string();
                let upper = cmd.to_ascii_uppercase();
                let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                    seen.lock().unwrap().helo.push(cmd.clone());
                    b"250-fake.test\r\n250 8BITMIME\r\n"
                } else if upper.starts_with("MAIL FROM:") {
                    seen.lock().unwrap().mail_from.push(cmd.clone());
                    b"250 2.1.0 ok\r\n"
                } else if upper.starts_with("RCPT TO:") {
                    seen.lock().unwrap().rcpt_to.push(cmd.clone());
                    if upper.contains("<REJECT@") {
                        b"550 5.1.1 reject@example.com: user unknown\r\n"
                    } else if upper.contains("<SLOW@") {
                        std::thread::sleep(Duration::from_millis(1200));
                        b"250 2.1.5 ok, eventually\r\n"
                    } else if upper.contains("<LATER@") {
                        b"451 4.3.0 try again later\r\n"
                    } else {
                        b"250 2.1.5 ok\r\n"
                    }
                } else if upper == "DATA" {
                    out.write_all(b"354 go ahead\r\n")?;
                    let mut data = String::new();
                    loop {
                        line.clear();
                        if input.read_line(&mut line)? == 0 {
                            return Ok(());
                        }
                        if line == ".\r\n" {
                            break;
                        }
                        data.push_str(&line);
                    }
                    seen.lock().unwrap().messages.push(data);
                    b"250 2.0.0 queued\r\n"
                } else if upper == "QUIT" {
                    out.write_all(b"221 bye\r\n")?;
                    return Ok(());
                } else if upper == "NOOP" || upper == "RSET" {
                    b"250 ok\r\n"
                } else {
                    b"502 5.5.2 unknown command\r\n"
                };
                out.write_all(reply)?;
            }
        }
    }

    impl Drop for FakeSmtp {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let store = Store::open(path.to_str().unwrap(), StoreOptions::default()).unwrap();
        store.migrate().unwrap();
        (dir, store)
    }

    fn queue(store: &Store, recipient: &str, envelope_from: &str, n: u32) -> i64 {
        let row = NewOutbox {
            kind: if envelope_from.is_empty() { "acknowledgement" } else { "notification" }.into(),
            mailbox_id: None,
            ticket_id: None,
            template_id: None,
            recipient: recipient.into(),
            envelope_from: envelope_from.into(),
            from_header: "Support <support@msp.example>".into(),
            subject: format!("[T{n}] Test"),
            body_text: "Hello.\n.\nA line with a dot above.\n".into(),
            body_html: None,
            headers: vec![("X-Ticketmilter-Loop".into(), "msp.example".into())],
            message_id: format!("t{n}.test@msp.example"),
            in_reply_to: None,
            references: Vec::new(),
        };
        store.write(|c| Ok(outbox::insert(c, &row, now())?)).unwrap()
    }

    fn view(store: &Store, id: i64) -> outbox::OutboxView {
        store
            .read(|c| outbox::list(c, None, 1000))
            .unwrap()
            .into_iter()
            .find(|v| v.id == id)
            .unwrap()
    }

    #[test]
    fn pass_sends_retries_and_fails() {
        let smtp = FakeSmtp::start();
        let (_dir, store) = temp_store();
        let ok = queue(&store, "alex@example.com", "", 1);
        let rejected = queue(&store, "reject@example.com", "", 2);
        let later = queue(&store, "later@example.com", "", 3);
        let from_us = queue(&store, "sam@example.com", "notify@msp.example", 4);
        let before = now();

        let report = send_pass(&store, &cfg(smtp.port)).unwrap();
        assert_eq!(report, PassReport { claimed: 4, sent: 2, retried: 1, failed: 1 });

        let v = view(&store, ok);
        assert_eq!((v.status.as_str(), v.attempts, v.last_error.as_deref()), ("sent", 1, None));
        let v = view(&store, rejected);
        assert_eq!(v.status, "failed");
        let err = v.last_error.unwrap();
        assert!(err.contains("550") && err.contains("user unknown"), "{err}");
        let v = view(&store, later);
        assert_eq!((v.status.as_str(), v.attempts), ("queued", 1));
        assert!(v.last_error.unwrap().contains("451"));
        let next = NaiveDateTime::parse_from_str(&v.next_try_at, "%Y-%m-%d %H:%M:%S").unwrap();
        assert!(next >= before + chrono::Duration::seconds(47), "{next} vs {before}");
        assert_eq!(view(&store, from_us).status, "sent");

        {
            let seen = smtp.seen.lock().unwrap();
            assert_eq!(seen.mail_from.len(), 4, "{seen:?}");
            assert_eq!(seen.mail_from[0], "MAIL FROM:<>");
            assert!(seen.mail_from[3].starts_with("MAIL FROM:<notify@msp.example>"), "{seen:?}");
            assert_eq!(seen.messages.len(), 2);
            assert!(seen.messages[0].contains("Auto-Submitted: auto-replied\r\n"), "{}", seen.messages[0]);
            assert!(seen.messages[0].contains("Message-ID: <t1.test@msp.example>\r\n"));
            assert!(seen.messages[0].contains("\r\n..\r\n"), "dot-stuffed: {}", seen.messages[0]);
            assert!(seen.helo.iter().all(|h| h == "EHLO worker.test"), "{seen:?}");
            // A refused recipient ends a connection; the others share one.
            assert!(seen.connections <= 3, "{seen:?}");
        }

        // Nothing is due now: the retried row waits for its time.
        assert_eq!(send_pass(&store, &cfg(smtp.port)).unwrap(), PassReport::default());
    }

    #[test]
    fn closed_relay_leaves_rows_queued_then_gives_up() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (_dir, store) = temp_store();
        let a = queue(&store, "alex@example.com", "", 1);
        let b = queue(&store, "sam@example.com", "", 2);
        let mut c = cfg(port);
        c.max_attempts = 2;
        c.backoff = 1;
        let report = send_pass(&store, &c).unwrap();
        assert_eq!(report, PassReport { claimed: 2, sent: 0, retried: 2, failed: 0 });
        for id in [a, b] {
            let v = view(&store, id);
            assert_eq!((v.status.as_str(), v.attempts), ("queued", 1));
            let err = v.last_error.unwrap();
            assert!(err.contains(&format!("relay 127.0.0.1:{port}")), "{err}");
        }
        // Due again after the (short) backoff; the second attempt is the last.
        std::thread::sleep(Duration::from_millis(2600));
        let report = send_pass(&store, &c).unwrap();
        assert_eq!(report, PassReport { claimed: 2, sent: 0, retried: 0, failed: 2 });
        let v = view(&store, a);
        assert_eq!(v.status, "failed");
        assert!(v.last_error.unwrap().starts_with("gave up after 2 attempts: relay 127.0.0.1:"));
    }

    #[test]
    fn rows_that_could_outlive_the_lease_are_deferred() {
        let smtp = FakeSmtp::start();
        let (_dir, store) = temp_store();
        let slow = queue(&store, "slow@example.com", "", 1);
        let next = queue(&store, "alex@example.com", "", 2);
        let c = NotifyConfig { lease: 2, ..cfg(smtp.port) };
        let report = send_pass(&store, &c).unwrap();
        assert_eq!(report, PassReport { claimed: 2, sent: 1, retried: 1, failed: 0 });
        assert_eq!(view(&store, slow).status, "sent");
        let v = view(&store, next);
        assert_eq!(v.status, "queued");
        assert!(v.last_error.unwrap().contains("ran out of its lease"));
        // Due again at once.
        let report = send_pass(&store, &c).unwrap();
        assert_eq!(report, PassReport { claimed: 1, sent: 1, retried: 0, failed: 0 });
        assert_eq!(smtp.seen.lock().unwrap().messages.len(), 2);
    }

    #[test]
    fn unbuildable_row_fails_permanently() {
        let (_dir, store) = temp_store();
        let id = queue(&store, "not an address", "", 1);
        // No relay is needed: the row fails before any connection.
        let report = send_pass(&store, &cfg(1)).unwrap();
        assert_eq!(report, PassReport { claimed: 1, sent: 0, retried: 0, failed: 1 });
        let v = view(&store, id);
        assert_eq!(v.status, "failed");
        assert!(v.last_error.unwrap().starts_with("cannot build the message: the recipient"));
    }

    #[test]
    fn worker_thread_sends_and_stops() {
        let smtp = FakeSmtp::start();
        let (_dir, store) = temp_store();
        let id = queue(&store, "alex@example.com", "", 1);
        let stop = Arc::new(AtomicBool::new(false));
        let handle = spawn(store.clone(), cfg(smtp.port), stop.clone()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while view(&store, id).status != "sent" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap();
        assert_eq!(view(&store, id).status, "sent");
    }

    #[test]
    fn concurrent_workers_send_every_row_exactly_once() {
        let smtp = FakeSmtp::start();
        let (_dir, store) = temp_store();
        let ids: Vec<i64> = (0..30).map(|n| queue(&store, "alex@example.com", "", 100 + n)).collect();
        let c = NotifyConfig { batch: 4, ..cfg(smtp.port) };
        let workers: Vec<JoinHandle<usize>> = (0..2)
            .map(|_| {
                let (store, c) = (store.clone(), c.clone());
                std::thread::spawn(move || {
                    let mut sent = 0;
                    for _ in 0..20 {
                        let r = send_pass(&store, &c).expect("pass");
                        sent += r.sent;
                        if r.claimed == 0 {
                            break;
                        }
                    }
                    sent
                })
            })
            .collect();
        let sent: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(sent, 30);
        for id in ids {
            assert_eq!(view(&store, id).status, "sent");
        }
        let seen = smtp.seen.lock().unwrap();
        let mut mids: Vec<&str> = seen
            .messages
            .iter()
            .filter_map(|m| m.lines().find(|l| l.to_ascii_lowercase().starts_with("message-id:")))
            .collect();
        assert_eq!(mids.len(), 30, "every row reached the relay");
        mids.sort();
        mids.dedup();
        assert_eq!(mids.len(), 30, "no row reached the relay twice");
    }
}
