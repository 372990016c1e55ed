//! Notifications end to end through a real, private Postfix (see tests/support/mod.rs): swaks →
//! Postfix smtpd → ticketmilter → Postfix queue → smtp-sink, with the daemon's notification
//! sender delivering the `outbox` over SMTP back into that same milter'd smtpd (as an
//! installation relaying through its local Postfix), so every notification is seen twice: by
//! the milter on its way out, and in the sink.
//!
//! What is covered:
//! - an acknowledgement reaches the sink RFC 3834-clean: null envelope sender, `Auto-Submitted:
//!   auto-replied`, `X-Auto-Response-Suppress: All`, our loop header, `In-Reply-To`/`References`
//!   to the message answered, a `tm.<ticket>.<token>@<domain>` Message-ID, the ticket number in
//!   the subject; the outbox row ends `sent`; the acknowledgement passing the milter'd Postfix
//!   is not converted;
//! - a reply that lost the number from its subject threads back by References (note, no ticket);
//! - an out-of-office answer (threading to the ticket, or to nothing) creates no ticket and
//!   queues nothing;
//! - a naive partner autoresponder that answers everything without auto-reply headers is
//!   stopped by the rate limit (`reply_limit`), with its messages still converted;
//! - a relay that is down: the row stays queued with the connection error, and is delivered
//!   exactly once when the relay comes up (a TCP forwarder started by the test).
//!
//! Needs root and the Debian packages `postfix` and `swaks` (never skipped). Every wait has a
//! deadline; all traffic is on 127.0.0.1.

mod support;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{EVENT_TIMEOUT, Env, header_values, log_field, message, unique_id, wait_for};

const ALICE: &str = "alice@example.com";
const ALICE_FROM: &str = "Alice Example <alice@example.com>";
const SUPPORT: &str = "support@msp.example";
const DOMAIN: &str = "msp.example";
const BOT: &str = "bot@partner.example";

/// How long to watch for something that must NOT happen (a notification queued or delivered):
/// several sender intervals (1 s) and relays.
const QUIET: Duration = Duration::from_secs(4);

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// An environment with the `acknowledgement` template switched on before the first message.
fn env_with_ack(settings: &[(&str, &str)], notify_port: Option<u16>) -> Env {
    Env::start_prepared(settings, notify_port, |env| {
        env.admin(&["template", "enable", "acknowledgement"]);
    })
}

fn tickets(env: &Env) -> i64 {
    env.count("SELECT count(*) AS n FROM tickets", &[])
}

fn outbox_rows(env: &Env) -> i64 {
    env.count("SELECT count(*) AS n FROM outbox", &[])
}

/// The sink's transactions with `rcpt` among their RCPT TOs (`X-Rcpt-Args: <rcpt> …`), complete
/// at least up to the end of their header.
fn sink_to(env: &Env, rcpt: &str) -> Vec<(PathBuf, String)> {
    let want = format!("<{}>", rcpt.to_ascii_lowercase());
    env.sink_files()
        .into_iter()
        .filter(|(_, t)| t.contains("\n\r\n") || t.contains("\n\n"))
        .filter(|(_, t)| header_values(t, "X-Rcpt-Args").iter().any(|a| a.to_ascii_lowercase().starts_with(&want)))
        .collect()
}

/// Our notifications to `rcpt` at the sink (the ones with `Auto-Submitted`).
fn notifications_to(env: &Env, rcpt: &str) -> Vec<String> {
    sink_to(env, rcpt).into_iter().map(|(_, t)| t).filter(|t| !header_values(t, "Auto-Submitted").is_empty()).collect()
}

/// The one value of header `name`, or a panic showing the message.
fn one(text: &str, name: &str) -> String {
    let v = header_values(text, name);
    assert_eq!(v.len(), 1, "expected exactly one {name} header in:\n{text}");
    v[0].clone()
}

/// `<id>` → `id`.
fn bare(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').to_string()
}

/// The Postfix queue id under which the message with Message-ID `mid` passed (cleanup's
/// `QID: message-id=<mid>` line in the maillog).
fn postfix_qid_of(env: &Env, mid: &str) -> String {
    let needle = format!(": message-id=<{mid}>");
    wait_for(&format!("a maillog line with message-id=<{mid}>"), EVENT_TIMEOUT, || {
        env.maillog().lines().find_map(|l| {
            let (left, _) = l.split_once(&needle)?;
            left.split_whitespace().last().map(str::to_string)
        })
    })
}

/// Wait until `sql` (a count over the outbox) gives 1; on a timeout, panic with `outbox list`.
fn wait_outbox(env: &Env, what: &str, sql: &str, args: &[&str]) {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while env.count(sql, args) != 1 {
        if Instant::now() >= deadline {
            panic!("timed out after {EVENT_TIMEOUT:?} waiting for {what}; outbox list:\n{}", env.admin(&["outbox", "list"]));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A ticket alice opened, and its acknowledgement as the sink stored it.
struct Acked {
    number: String,
    /// Message-ID of alice's message (without brackets).
    original_mid: String,
    /// The acknowledgement's Message-ID (without brackets) and Subject.
    ack_mid: String,
    ack_subject: String,
    /// The sink's complete copy of the acknowledgement (X-Mail-Args/X-Rcpt-Args first).
    ack: String,
    /// Postfix's queue id of the acknowledgement (it passed the milter'd smtpd).
    ack_qid: String,
}

/// Alice writes a new message to support@; wait for the ticket and for its acknowledgement in
/// the sink.
fn alice_opens_a_ticket(env: &Env, subject: &str) -> Acked {
    let before = tickets(env);
    let mid = unique_id("alice-new");
    let msg = message(
        ALICE_FROM,
        SUPPORT,
        subject,
        &mid,
        &[],
        "Hello,\nthe printer on floor 3 only prints blank pages since this morning.\nAlice",
    );
    let qid = env.send(ALICE, &[SUPPORT], &msg).queued();
    let line = env.milter_line(&qid, SUPPORT);
    assert_eq!(log_field(&line, "action").as_deref(), Some("created"), "milter line: {line}");
    let number = log_field(&line, "ticket").expect("ticket= in the milter line");
    assert!(number.starts_with('T') && number.len() > 1, "ticket number {number:?} (line: {line})");
    assert_eq!(tickets(env), before + 1, "one ticket made");
    assert_eq!(log_field(&line, "notify").as_deref(), Some(ALICE), "the acknowledgement is queued: {line}");

    let first = wait_for("the acknowledgement to alice at the sink", EVENT_TIMEOUT, || {
        notifications_to(env, ALICE).into_iter().find(|t| header_values(t, "Message-ID").len() == 1)
    });
    let ack_mid = bare(&one(&first, "Message-ID"));
    let ack_qid = postfix_qid_of(env, &ack_mid);
    // Wait for Postfix to be done with it, and take the complete copy.
    let ack = env.relayed_one(&ack_qid, &ack_mid);
    let ack_subject = one(&ack, "Subject");
    Acked { number, original_mid: mid, ack_mid, ack_subject, ack, ack_qid }
}

/// Wait until nothing more can come of what was sent: no outbox row waits to be sent, Postfix's
/// queue is empty, for `QUIET` in a row.
fn settle(env: &Env) {
    let mut quiet_since: Option<Instant> = None;
    wait_for("the outbox and Postfix's queue to stay empty", Duration::from_secs(30), || {
        let busy = env.count("SELECT count(*) AS n FROM outbox WHERE status IN ('queued', 'sending')", &[]) > 0
            || !env.postqueue_list().contains("Mail queue is empty");
        match (busy, quiet_since) {
            (true, _) => quiet_since = None,
            (false, None) => quiet_since = Some(Instant::now()),
            (false, Some(t)) if t.elapsed() >= QUIET => return Some(()),
            (false, Some(_)) => {}
        }
        std::thread::sleep(Duration::from_millis(200));
        None
    })
}

// ------------------------------------------------------------------------------------------
// A TCP forwarder (the relay that comes up late)
// ------------------------------------------------------------------------------------------

/// Listens on 127.0.0.1:`listen` and forwards every connection to 127.0.0.1:`target`
/// (one thread per direction, each ending on EOF or an error and passing the EOF on).
struct Forwarder {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    fn start(listen: u16, target: u16) -> Forwarder {
        let listener = TcpListener::bind(("127.0.0.1", listen))
            .unwrap_or_else(|e| panic!("the forwarder cannot listen on 127.0.0.1:{listen}: {e}"));
        listener.set_nonblocking(true).expect("non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            // Bounded even if the test never drops it.
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((client, _)) => {
                        accepted2.fetch_add(1, Ordering::SeqCst);
                        std::thread::spawn(move || Forwarder::connection(client, target));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Forwarder { stop, accepted, thread: Some(thread) }
    }

    fn connection(client: TcpStream, target: u16) {
        let _ = client.set_nonblocking(false);
        let Ok(server) = TcpStream::connect_timeout(&([127, 0, 0, 1], target).into(), Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let pipe = |from: &TcpStream, to: &TcpStream| -> Option<JoinHandle<()>> {
            let (mut from, mut to) = (from.try_clone().ok()?, to.try_clone().ok()?);
            let _ = from.set_read_timeout(Some(Duration::from_secs(60)));
            let _ = to.set_write_timeout(Some(Duration::from_secs(60)));
            Some(std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match from.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = to.shutdown(Shutdown::Write);
            }))
        };
        let up = pipe(&client, &server);
        let down = pipe(&server, &client);
        for t in [up, down].into_iter().flatten() {
            let _ = t.join();
        }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

/// A new ticket is acknowledged with an RFC 3834-clean mail that threads under alice's message,
/// carries the ticket number, is marked sent, and is not itself converted on its way out.
#[test]
fn acknowledgement_reaches_the_sink_with_rfc3834_headers() {
    let env = env_with_ack(&[], None);
    let tickets_before = tickets(&env);
    let subject = "Printer on floor 3 prints blank pages";
    let a = alice_opens_a_ticket(&env, subject);
    let ack = &a.ack;

    // The envelope: from the null sender, to alice alone.
    let mail_args = one(ack, "X-Mail-Args");
    assert!(
        mail_args == "<>" || mail_args.starts_with("<> "),
        "the acknowledgement's envelope sender should be <>, the sink saw MAIL FROM {mail_args:?}:\n{ack}"
    );
    let rcpts = header_values(ack, "X-Rcpt-Args");
    assert_eq!(rcpts.len(), 1, "one RCPT TO:\n{ack}");
    assert!(rcpts[0].starts_with(&format!("<{ALICE}>")), "RCPT TO should be alice: {rcpts:?}");

    // RFC 3834 and loop headers.
    assert_eq!(header_values(ack, "Auto-Submitted"), vec!["auto-replied"], "Auto-Submitted:\n{ack}");
    assert_eq!(header_values(ack, "X-Auto-Response-Suppress"), vec!["All"], "X-Auto-Response-Suppress:\n{ack}");
    assert_eq!(header_values(ack, "X-Ticketmilter-Loop"), vec![DOMAIN], "X-Ticketmilter-Loop:\n{ack}");

    // Threading under alice's message.
    let original = format!("<{}>", a.original_mid);
    assert_eq!(header_values(ack, "In-Reply-To"), vec![original.clone()], "In-Reply-To:\n{ack}");
    let references = one(ack, "References");
    assert!(
        references.split_whitespace().any(|r| r == original),
        "References {references:?} should contain {original}"
    );

    // Our Message-ID, with the ticket number; the number in the subject.
    assert!(
        a.ack_mid.starts_with(&format!("tm.{}.", a.number)) && a.ack_mid.ends_with(&format!("@{DOMAIN}")),
        "Message-ID <{}> is not <tm.{}.…@{DOMAIN}>",
        a.ack_mid,
        a.number
    );
    assert!(a.ack_subject.contains(&a.number), "Subject {:?} lacks the ticket number {}", a.ack_subject, a.number);
    assert!(a.ack_subject.contains(subject), "Subject {:?} lacks the original subject", a.ack_subject);
    assert!(one(ack, "From").contains(SUPPORT), "From should be the mailbox:\n{ack}");
    assert!(one(ack, "To").contains(ALICE), "To should be alice:\n{ack}");

    // The outbox row is sent.
    assert_eq!(
        env.count("SELECT count(*) AS n FROM outbox WHERE message_id = ? AND status = 'sent'", &[&a.ack_mid]),
        1,
        "the outbox row of <{}> should be sent; outbox list:\n{}",
        a.ack_mid,
        env.admin(&["outbox", "list"])
    );
    let list = env.admin(&["outbox", "list"]);
    assert!(
        list.lines().any(|l| l.contains(ALICE) && l.split_whitespace().any(|w| w == "sent") && l.contains(&a.number)),
        "`outbox list` should show the acknowledgement to {ALICE} as sent:\n{list}"
    );
    assert_eq!(outbox_rows(&env), 1, "exactly one notification queued:\n{list}");

    // The acknowledgement passed the milter'd smtpd (queue id in the maillog) and was relayed,
    // not converted: no line of the milter, no record, no second ticket.
    settle(&env);
    assert_eq!(env.milter_lines(&a.ack_qid), Vec::<String>::new(), "the milter logged lines for the acknowledgement");
    assert_eq!(
        env.count("SELECT count(*) AS n FROM processed_messages WHERE message_id = ?", &[&a.ack_mid]),
        0,
        "the acknowledgement was recorded as processed"
    );
    assert_eq!(tickets(&env), tickets_before + 1, "exactly one new ticket");
    assert_eq!(notifications_to(&env, ALICE).len(), 1, "exactly one acknowledgement at the sink");
}

/// A reply whose subject lost the ticket number, but that names the acknowledgement in
/// In-Reply-To/References, becomes a note on the same ticket.
#[test]
fn reply_by_references_only_adds_a_note() {
    let env = env_with_ack(&[], None);
    let a = alice_opens_a_ticket(&env, "VPN disconnects after the update");
    let tickets_before = tickets(&env);
    let notes = |env: &Env| {
        env.count(
            "SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = (SELECT id FROM tickets WHERE number = ?)",
            &[&a.number],
        )
    };
    let notes_before = notes(&env);

    let mid = unique_id("alice-reply");
    let subject = "Re: something else";
    assert!(!subject.contains(&a.number));
    let in_reply_to = format!("In-Reply-To: <{}>", a.ack_mid);
    let references = format!("References: <{}>", a.ack_mid);
    let msg = message(
        ALICE_FROM,
        SUPPORT,
        subject,
        &mid,
        &[&in_reply_to, &references],
        "It happened again at 10:40, right after lunch.\nAlice",
    );
    let qid = env.send(ALICE, &[SUPPORT], &msg).queued();
    let line = env.milter_line(&qid, SUPPORT);
    assert_eq!(log_field(&line, "action").as_deref(), Some("note_added"), "milter line: {line}");
    assert_eq!(log_field(&line, "ticket").as_deref(), Some(a.number.as_str()), "milter line: {line}");
    assert_eq!(tickets(&env), tickets_before, "the reply made a ticket");
    assert_eq!(notes(&env), notes_before + 1, "one note on {}", a.number);
    assert_eq!(
        env.count(
            "SELECT count(*) AS n FROM processed_messages WHERE message_id = ? AND outcome = 'note_added'",
            &[&mid]
        ),
        1,
        "processed_messages should record <{mid}> as note_added"
    );
}

/// An out-of-office answer to the acknowledgement is not answered and makes no ticket: threading
/// to the ticket it is at most an internal note; threading to nothing it is ignored with
/// `auto_mail = note`. With the default `auto_mail = ticket` an unthreaded one becomes a ticket —
/// which is still never answered.
#[test]
fn out_of_office_answer_creates_nothing_and_sends_nothing() {
    // `note`: automatic mail that threads to no ticket is not converted (the default, `ticket`,
    // is checked at the end).
    let env = env_with_ack(&[("auto_mail", "note")], None);
    let a = alice_opens_a_ticket(&env, "Outlook keeps asking for my password");
    settle(&env);
    let tickets_before = tickets(&env);
    let outbox_before = outbox_rows(&env);
    assert_eq!(outbox_before, 1, "the acknowledgement is the only notification");

    // 1. Outlook-style automatic reply to the acknowledgement.
    let mid = unique_id("alice-ooo");
    let in_reply_to = format!("In-Reply-To: <{}>", a.ack_mid);
    let msg = message(
        ALICE_FROM,
        SUPPORT,
        &format!("Automatic reply: {}", a.ack_subject),
        &mid,
        &["Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All", &in_reply_to],
        "I am out of the office until Monday with limited access to e-mail.\nAlice",
    );
    let qid = env.send(ALICE, &[SUPPORT], &msg).queued();
    let line = env.milter_line(&qid, SUPPORT);
    let action = log_field(&line, "action");
    assert!(
        matches!(action.as_deref(), Some("note_added" | "ignored")),
        "an automatic reply should become an internal note or be ignored; milter line: {line}"
    );
    if action.as_deref() == Some("note_added") {
        assert_eq!(log_field(&line, "ticket").as_deref(), Some(a.number.as_str()), "milter line: {line}");
    }
    assert!(line.contains("auto-generated"), "the milter line should say it is auto-generated: {line}");
    assert_eq!(log_field(&line, "auto").as_deref(), Some("yes"), "milter line: {line}");
    assert_eq!(log_field(&line, "notify"), None, "nothing may be queued for an automatic reply: {line}");

    // 2. An out-of-office answer that threads to nothing (no References, no number).
    let mid2 = unique_id("alice-ooo-plain");
    let msg2 = message(
        ALICE_FROM,
        SUPPORT,
        "Out of Office: hello",
        &mid2,
        &[],
        "I am out of the office until Monday.\nAlice",
    );
    let qid2 = env.send(ALICE, &[SUPPORT], &msg2).queued();
    let line2 = env.milter_line(&qid2, SUPPORT);
    assert_eq!(log_field(&line2, "action").as_deref(), Some("ignored"), "milter line: {line2}");
    assert_eq!(log_field(&line2, "ticket").as_deref(), Some("-"), "milter line: {line2}");
    assert!(line2.contains("auto-generated"), "the milter line should say it is auto-generated: {line2}");
    assert_eq!(log_field(&line2, "auto").as_deref(), Some("yes"), "milter line: {line2}");
    assert_eq!(log_field(&line2, "notify"), None, "nothing may be queued for an automatic reply: {line2}");

    // Give the sender several intervals: nothing was queued, nothing more reached alice.
    settle(&env);
    assert_eq!(tickets(&env), tickets_before, "an out-of-office answer made a ticket");
    assert_eq!(
        outbox_rows(&env),
        outbox_before,
        "an out-of-office answer queued a notification:\n{}",
        env.admin(&["outbox", "list"])
    );
    assert_eq!(notifications_to(&env, ALICE).len(), 1, "alice got more than the acknowledgement");

    // 3. The default, auto_mail = ticket: an unthreaded out-of-office answer becomes a ticket,
    //    and that ticket is not acknowledged either.
    env.set_setting("auto_mail", "ticket");
    let mid3 = unique_id("alice-ooo-ticket");
    let msg3 = message(
        ALICE_FROM,
        SUPPORT,
        "Out of Office: back on Monday",
        &mid3,
        &[],
        "I am out of the office until Monday.\nAlice",
    );
    let qid3 = env.send(ALICE, &[SUPPORT], &msg3).queued();
    let line3 = env.milter_line(&qid3, SUPPORT);
    assert_eq!(log_field(&line3, "action").as_deref(), Some("created"), "milter line: {line3}");
    assert_eq!(log_field(&line3, "auto").as_deref(), Some("yes"), "milter line: {line3}");
    assert_eq!(log_field(&line3, "notify"), None, "nothing may be queued for an automatic reply: {line3}");
    settle(&env);
    assert_eq!(tickets(&env), tickets_before + 1, "auto_mail = ticket: one ticket");
    assert_eq!(
        outbox_rows(&env),
        outbox_before,
        "a ticket made from an out-of-office answer was acknowledged:\n{}",
        env.admin(&["outbox", "list"])
    );
    assert_eq!(notifications_to(&env, ALICE).len(), 1, "alice got more than the first acknowledgement");
}

/// A partner's naive autoresponder answers every mail it gets, without any auto-reply header;
/// each of its mails is converted and acknowledged until `reply_limit` acknowledgements went to
/// it: then the reply is dropped (logged) and the ping-pong stops.
#[test]
fn ping_pong_stops_within_the_rate_limit() {
    const LIMIT: usize = 3;
    let env = Env::start_prepared(&[("reply_limit", "3"), ("loop_max", "0")], None, |env| {
        env.admin(&["template", "enable", "acknowledgement"]);
        let text = env.root.join("note-added.txt");
        std::fs::write(&text, "We added your message to ticket {{ ticket_number }}: {{ ticket_title }}\n")
            .expect("write the note_added template");
        env.admin(&[
            "template",
            "add",
            "note-ack",
            "--event",
            "note_added",
            "--subject",
            "{{ original_subject }}",
            "--text",
            text.to_str().unwrap(),
        ]);
    });

    let bot_mail = |subject: &str, extra: &[&str]| -> String {
        let mid = unique_id("bot");
        let msg = message(
            "Partner Bot <bot@partner.example>",
            SUPPORT,
            subject,
            &mid,
            extra,
            "Thank you for your message. This is an automated answer.\nPartner Ltd",
        );
        env.send(BOT, &[SUPPORT], &msg).queued()
    };

    // The bot's first message opens the ticket.
    let mut bot_qids = vec![bot_mail("Delivery schedule for order 4711", &[])];
    let mut handled: HashSet<PathBuf> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut quiet_since: Option<Instant> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "the ping-pong did not stop within 90 s ({} messages from the bot)",
            bot_qids.len()
        );
        let incoming = sink_to(&env, BOT).into_iter().find(|(p, t)| {
            !handled.contains(p) && header_values(t, "Message-ID").len() == 1 && header_values(t, "Subject").len() == 1
        });
        if let Some((path, text)) = incoming {
            handled.insert(path);
            assert!(bot_qids.len() < 15, "more than 15 rounds of ping-pong");
            let in_reply_to = format!("In-Reply-To: {}", one(&text, "Message-ID"));
            bot_qids.push(bot_mail(&format!("Re: {}", one(&text, "Subject")), &[&in_reply_to]));
            quiet_since = None;
            continue;
        }
        // Idle: every bot message was handled by the milter, nothing waits in the outbox or in
        // Postfix's queue — for QUIET in a row.
        let busy = bot_qids.iter().any(|q| env.milter_lines(q).is_empty())
            || env.count("SELECT count(*) AS n FROM outbox WHERE status IN ('queued', 'sending')", &[]) > 0
            || !env.postqueue_list().contains("Mail queue is empty");
        match (busy, quiet_since) {
            (true, _) => quiet_since = None,
            (false, None) => quiet_since = Some(Instant::now()),
            (false, Some(t)) if t.elapsed() >= QUIET => break,
            (false, Some(_)) => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let outbox = env.admin(&["outbox", "list"]);
    let to_bot = notifications_to(&env, BOT);
    assert_eq!(
        to_bot.len(),
        LIMIT,
        "the bot should get exactly reply_limit = {LIMIT} notifications; outbox:\n{outbox}"
    );
    assert_eq!(bot_qids.len(), LIMIT + 1, "the bot should have written {} times; outbox:\n{outbox}", LIMIT + 1);
    assert_eq!(
        env.count("SELECT count(*) AS n FROM outbox WHERE recipients = ?", &[BOT]),
        LIMIT as i64,
        "outbox rows to the bot:\n{outbox}"
    );
    let log = env.milter_log();
    assert!(
        log.lines().any(|l| l.contains("reply dropped") && l.contains("rate limit") && l.contains(BOT)),
        "the milter should log the dropped reply to {BOT}"
    );
    let last = env.milter_line(bot_qids.last().unwrap(), SUPPORT);
    assert!(
        last.contains(" dropped=") && last.contains("rate limit") && log_field(&last, "notify").is_none(),
        "the outcome line of the bot's last message should name the dropped acknowledgement: {last}"
    );

    // Every message of the bot was converted: the first made the ticket, the others are notes.
    let mut tickets_seen = HashSet::new();
    for qid in &bot_qids {
        let line = env.milter_line(qid, SUPPORT);
        assert!(
            matches!(log_field(&line, "action").as_deref(), Some("created" | "note_added")),
            "a message of the bot was not converted: {line}"
        );
        tickets_seen.insert(log_field(&line, "ticket").unwrap_or_default());
    }
    assert_eq!(tickets_seen.len(), 1, "all of the bot's messages should be on one ticket: {tickets_seen:?}");
    let converted = |outcome: &str| {
        env.count(
            "SELECT count(*) AS n FROM processed_messages WHERE envelope_from = ? AND outcome = ?",
            &[BOT, outcome],
        )
    };
    assert_eq!(converted("created"), 1, "the bot's first message makes the ticket");
    assert_eq!(
        converted("created") + converted("note_added"),
        bot_qids.len() as i64,
        "every message of the bot is converted (ticket or note)"
    );
}

/// The relay is down: the acknowledgement stays queued with the connection error and is retried;
/// once the relay is up it is delivered, exactly once.
#[test]
fn relay_down_then_delivered() {
    let relay_port = support::free_port();
    let env = env_with_ack(&[], Some(relay_port));
    assert_eq!(env.notify_port, relay_port);

    let mid = unique_id("alice-relay-down");
    let subject = "Scanner does not send to e-mail";
    let msg = message(ALICE_FROM, SUPPORT, subject, &mid, &[], "The scanner says: SMTP error.\nAlice");
    let qid = env.send(ALICE, &[SUPPORT], &msg).queued();
    let line = env.milter_line(&qid, SUPPORT);
    assert_eq!(log_field(&line, "action").as_deref(), Some("created"), "milter line: {line}");
    let number = log_field(&line, "ticket").expect("ticket= in the milter line");
    assert_eq!(outbox_rows(&env), 1, "the acknowledgement is queued with the ticket");

    // Nothing listens on relay_port: the row stays queued, with attempts and the error.
    let relay = format!("%relay 127.0.0.1:{relay_port}%");
    wait_outbox(
        &env,
        "the outbox row to be retried with the connection error",
        "SELECT count(*) AS n FROM outbox WHERE status = 'queued' AND attempts >= 2 \
         AND last_error LIKE ? AND last_error LIKE '%refused%'",
        &[&relay],
    );
    let list = env.admin(&["outbox", "list"]);
    assert!(
        list.lines().any(|l| l.contains(ALICE) && l.split_whitespace().any(|w| w == "queued") && l.contains("refused")),
        "`outbox list` should show the row queued with the connection error:\n{list}"
    );
    assert!(notifications_to(&env, ALICE).is_empty(), "nothing can have reached the sink yet");

    // The relay comes up: a forwarder on relay_port to the milter'd smtpd.
    let forwarder = Forwarder::start(relay_port, env.smtp_port);
    wait_outbox(
        &env,
        "the acknowledgement to be sent through the relay",
        "SELECT count(*) AS n FROM outbox WHERE status = 'sent'",
        &[],
    );
    assert!(forwarder.connections() >= 1, "the sender did not connect to the relay");
    let first = wait_for("the acknowledgement at the sink", EVENT_TIMEOUT, || {
        notifications_to(&env, ALICE).into_iter().find(|t| header_values(t, "Message-ID").len() == 1)
    });
    let ack_mid = bare(&one(&first, "Message-ID"));
    assert!(ack_mid.starts_with(&format!("tm.{number}.")), "Message-ID <{ack_mid}>");
    let ack_qid = postfix_qid_of(&env, &ack_mid);
    let ack = env.relayed_one(&ack_qid, &ack_mid);
    assert_eq!(header_values(&ack, "In-Reply-To"), vec![format!("<{mid}>")], "In-Reply-To:\n{ack}");

    // Never sent twice: after several more sender intervals still one copy, one sent row.
    settle(&env);
    assert_eq!(notifications_to(&env, ALICE).len(), 1, "the acknowledgement reached the sink more than once");
    assert_eq!(
        env.count("SELECT count(*) AS n FROM outbox WHERE status = 'sent' AND message_id = ?", &[&ack_mid]),
        1,
        "outbox:\n{}",
        env.admin(&["outbox", "list"])
    );
    assert_eq!(
        env.maillog().matches(&format!("message-id=<{ack_mid}>")).count(),
        1,
        "Postfix received the acknowledgement more than once"
    );
    drop(forwarder);
}
