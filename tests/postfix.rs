//! End to end through a real, private Postfix: swaks → Postfix smtpd → ticketmilter (the built
//! binary, on a SQLite or PostgreSQL database — tests/common/mod.rs chooses — loaded with
//! tests/fixtures/directory.sql) → Postfix queue →
//! smtp-sink. Every test starts its own instance on its own ports and directory (see
//! tests/support/mod.rs), so the tests run in parallel; everything is stopped and removed when a
//! test ends, also when it fails (then the milter log and Postfix's maillog are printed).
//!
//! Needs root and the Debian packages `postfix` and `swaks`; a missing tool fails the test
//! with the package to install (it never skips).

mod support;

use support::{Env, MAX_MESSAGE_SIZE, header_values, log_field, message, unique_id};

const ALICE: &str = "alice@example.com";
const SUPPORT: &str = "support@msp.example";
const ALERTS: &str = "alerts@msp.example";
const BOB: &str = "bob@elsewhere.example";

fn tickets_titled(env: &Env, title: &str) -> i64 {
    env.count("SELECT count(*) AS n FROM tickets WHERE title = ?", &[title])
}

fn processed(env: &Env, mid: &str) -> i64 {
    env.count("SELECT count(*) AS n FROM processed_messages WHERE message_id = ?", &[mid])
}

/// A message to support@ becomes a ticket; the queue id ties the milter's line to Postfix's.
#[test]
fn message_to_support_becomes_a_ticket() {
    let env = Env::start();
    let mid = unique_id("new-ticket");
    let subject = "Printer on floor 3 prints blank pages";
    let msg = message(
        "Alice Example <alice@example.com>",
        SUPPORT,
        subject,
        &mid,
        &[],
        "Hello,\nthe printer on floor 3 only prints blank pages since this morning.\nAlice",
    );
    let sent = env.send(ALICE, &[SUPPORT], &msg);
    assert!(sent.reply().starts_with("250 "), "expected 250 for the message; swaks said:\n{}", sent.output);
    let qid = sent.queued();

    // The milter's line carries Postfix's queue id and names the new ticket.
    let line = env.milter_line(&qid, SUPPORT);
    assert_eq!(log_field(&line, "action").as_deref(), Some("created"), "milter line: {line}");
    assert_eq!(log_field(&line, "from").as_deref(), Some("<alice@example.com>"), "milter line: {line}");
    assert_eq!(log_field(&line, "answer").as_deref(), Some("accept"), "milter line: {line}");
    let number = log_field(&line, "ticket").expect("ticket= in the milter line");
    assert!(
        number.len() == 14 && number.starts_with('T') && number.as_bytes()[9] == b'.',
        "ticket number {number:?} is not TYYYYMMDD.NNNN (line: {line})"
    );
    assert!(
        log_field(&line, "tags").is_some_and(|t| t.split(',').any(|t| t == "Printer")),
        "tag Printer expected: {line}"
    );

    // The same queue id in Postfix's own log: this message, received, relayed to the sink.
    env.wait_maillog(&qid, &format!("message-id=<{mid}>"));
    env.wait_maillog(&qid, &format!("to=<{SUPPORT}>"));
    let sent_line = env.wait_maillog(&qid, "status=");
    assert!(sent_line.contains("status=sent"), "Postfix did not relay {qid}: {sent_line}");

    // The relayed copy carries the header with the ticket number.
    let copy = env.relayed_one(&qid, &mid);
    assert_eq!(
        header_values(&copy, "X-Ticketmilter"),
        vec![format!("{SUPPORT} created {number}")],
        "X-Ticketmilter of the relayed copy:\n{copy}"
    );
    assert_eq!(header_values(&copy, "X-Rcpt-Args").len(), 1, "one recipient relayed:\n{copy}");

    // The database: the ticket, and the processed-message record with Postfix's queue id.
    let list = env.admin(&["ticket", "list"]);
    assert!(
        list.lines().any(|l| l.contains(&number) && l.contains(subject)),
        "`ticket list` does not show {number} {subject:?}:\n{list}"
    );
    let t = env.ticket(&number);
    assert_eq!(t["number"], number.as_str(), "ticket show: {t:#}");
    assert_eq!(t["title"], subject, "ticket show: {t:#}");
    assert_eq!(t["company"], "Example Corp", "ticket show: {t:#}");
    assert_eq!(t["mailbox"], SUPPORT, "ticket show: {t:#}");
    assert!(t["description"].as_str().unwrap_or("").contains("only prints blank pages"), "ticket show: {t:#}");
    assert_eq!(
        env.count("SELECT count(*) AS n FROM processed_messages WHERE message_id = ? AND queue_id = ?", &[&mid, &qid]),
        1,
        "processed_messages should record <{mid}> once, with queue id {qid}"
    );
}

/// `--after-conversion remove`: the mailbox copy is dropped, the other recipient still gets it.
#[test]
fn removed_mailbox_copy_is_relayed_only_to_the_others() {
    let env = Env::start();
    let logged = env.milter_log().len();
    env.admin(&["mailbox", "set", SUPPORT, "--after-conversion", "remove"]);
    // reload_interval = 1: the milter picks the SQL change up within about a second.
    support::wait_for("the milter to reload the SQL configuration", support::EVENT_TIMEOUT, || {
        env.milter_log().get(logged..).is_some_and(|new| new.contains("SQL configuration reloaded")).then_some(())
    });

    let mid = unique_id("remove");
    let subject = "VPN disconnects after the update";
    // The mailbox second: MAIL and RCPT go to the milter unanswered, and every recipient must
    // still reach it before the header does.
    let msg = message(ALICE, &format!("{BOB}, {SUPPORT}"), subject, &mid, &[], "The VPN drops after the update.");
    let sent = env.send(ALICE, &[BOB, SUPPORT], &msg);
    let qid = sent.queued();

    let line = env.milter_line(&qid, SUPPORT);
    assert_eq!(log_field(&line, "action").as_deref(), Some("created"), "milter line: {line}");
    assert_eq!(log_field(&line, "answer").as_deref(), Some("accept"), "milter line: {line}");
    assert_eq!(log_field(&line, "removed").as_deref(), Some("<support@msp.example>"), "milter line: {line}");
    let number = log_field(&line, "ticket").expect("ticket= in the milter line");

    // Relayed to bob only: the sink saw one RCPT TO, Postfix logged a delivery to bob alone.
    let copy = env.relayed_one(&qid, &mid);
    let rcpts = header_values(&copy, "X-Rcpt-Args");
    assert_eq!(rcpts.len(), 1, "exactly one RCPT TO at the sink:\n{copy}");
    assert!(rcpts[0].starts_with(&format!("<{BOB}>")), "the sink's RCPT TO should be bob: {rcpts:?}");
    let log = env.maillog_lines(&qid).join("\n");
    assert!(
        log.contains(&format!("to=<{BOB}>")) && log.contains("status=sent"),
        "no delivery to bob in the maillog:\n{log}"
    );
    assert!(!log.contains(&format!("to=<{SUPPORT}>")), "Postfix delivered the support@ copy:\n{log}");

    let t = env.ticket(&number);
    assert_eq!(t["title"], subject, "ticket show: {t:#}");
    assert_eq!(tickets_titled(&env, subject), 1);
}

/// Mail only for other recipients is accepted before its body is read: no line, no ticket,
/// no record, no header. Its body is larger than max_message_size: had the milter read it, the
/// message would have been refused with 552.
#[test]
fn mail_for_other_recipients_passes_untouched() {
    let env = Env::start();
    let tickets_before = env.count("SELECT count(*) AS n FROM tickets", &[]);
    let mid = unique_id("not-ours");
    let subject = "Printer offer for your office";
    let body = format!(
        "Printer paper, cheap.\n{}",
        "0123456789 abcdefghijklmnopqrstuvwxyz 0123456789\n".repeat(MAX_MESSAGE_SIZE / 40)
    );
    assert!(body.len() > MAX_MESSAGE_SIZE);
    // old@msp.example is an inactive mailbox: not ours either.
    let msg = message(ALICE, &format!("{BOB}, old@msp.example"), subject, &mid, &[], &body);
    let sent = env.send(ALICE, &[BOB, "old@msp.example"], &msg);
    assert!(sent.reply().starts_with("250 "), "expected 250; swaks said:\n{}", sent.output);
    let qid = sent.queued();

    let copy = env.relayed_one(&qid, &mid);
    assert!(
        header_values(&copy, "X-Ticketmilter").is_empty(),
        "the relayed copy has an X-Ticketmilter header:\n{}",
        &copy[..copy.len().min(2000)]
    );
    assert_eq!(header_values(&copy, "X-Rcpt-Args").len(), 2, "both recipients relayed");
    assert!(copy.contains("0123456789 abcdefghijklmnopqrstuvwxyz 0123456789"), "the body arrived");

    assert_eq!(env.milter_lines(&qid), Vec::<String>::new(), "the milter logged lines for {qid}");
    assert_eq!(processed(&env, &mid), 0, "a processed_messages row for <{mid}>");
    assert_eq!(tickets_titled(&env, subject), 0);
    assert_eq!(env.count("SELECT count(*) AS n FROM tickets", &[]), tickets_before, "the number of tickets changed");
}

/// A mailbox that refuses unknown senders: 550 5.7.1 with the reason at the SMTP client; with
/// another recipient present the message goes to that recipient only.
#[test]
fn unknown_sender_is_rejected_with_the_reason() {
    let env = Env::start();
    let stranger = "stranger@unknown.example";
    let mid = unique_id("stranger");
    let subject = "Disk full on backup server";
    let msg = message(stranger, ALERTS, subject, &mid, &[], "The backup disk is full.");
    let sent = env.send(stranger, &[ALERTS], &msg);
    let reply = sent.reply();
    assert!(reply.starts_with("550 5.7.1 "), "expected 550 5.7.1; swaks said:\n{}", sent.output);
    assert!(sent.output.contains("<** 550 5.7.1 "), "swaks output lacks the 550:\n{}", sent.output);
    assert!(reply.contains(stranger), "the reply should name the sender: {reply}");
    assert!(sent.queue_id().is_none(), "the message must not be queued");

    // The reply text is the milter's reason, word for word.
    let line = support::wait_for("the milter's rejection line", support::EVENT_TIMEOUT, || {
        env.milter_log()
            .lines()
            .find(|l| l.contains(&format!("mailbox={ALERTS} from=<{stranger}>")))
            .map(str::to_string)
    });
    assert_eq!(log_field(&line, "action").as_deref(), Some("rejected"), "milter line: {line}");
    let reason = line.split("reason=\"").nth(1).and_then(|r| r.split('"').next()).expect("reason= in the milter line");
    assert_eq!(reply, format!("550 5.7.1 {reason}"), "the client should get the milter's reason");
    assert!(env.maillog().contains("milter-reject: END-OF-MESSAGE"), "no milter-reject in the maillog");
    assert_eq!(tickets_titled(&env, subject), 0);
    assert_eq!(processed(&env, &mid), 0);

    // With bob as well: accepted, relayed to bob only.
    let mid2 = unique_id("stranger-and-bob");
    let msg = message(stranger, &format!("{ALERTS}, {BOB}"), subject, &mid2, &[], "The backup disk is full.");
    let sent = env.send(stranger, &[ALERTS, BOB], &msg);
    let qid = sent.queued();
    let copy = env.relayed_one(&qid, &mid2);
    let rcpts = header_values(&copy, "X-Rcpt-Args");
    assert!(rcpts.len() == 1 && rcpts[0].starts_with(&format!("<{BOB}>")), "only bob should get it: {rcpts:?}");
    assert_eq!(tickets_titled(&env, subject), 0);
}

/// The database unavailable (SQLite: its write lock held elsewhere; PostgreSQL: the server
/// stopped): the SMTP client gets 451 4.3.0; with Postfix as the client (the front smtpd
/// forwards through its queue) the message stays deferred; after repair (the lock released, the
/// server started again — the milter keeps running and must recover by itself) a flush
/// delivers it, and it makes exactly one ticket.
#[test]
fn database_unavailable_tempfails_and_a_retry_makes_one_ticket() {
    let env = Env::start_with_own_database_server();
    let mid = unique_id("db-down");
    let subject = "Outlook keeps asking for the password";
    let msg = message(ALICE, SUPPORT, subject, &mid, &[], "Outlook asks for my password every five minutes.");

    let outage = env.take_database_down();

    // 1. A direct SMTP client gets the 4xx.
    let sent = env.send(ALICE, &[SUPPORT], &msg);
    let reply = sent.reply();
    assert!(
        reply.starts_with("451 4.3.0 ") && reply.contains("database is unavailable"),
        "expected 451 4.3.0 (database unavailable); swaks said:\n{}",
        sent.output
    );
    // The milter really failed to write (not some other tempfail).
    let failure = support::wait_for("the milter's database error line", support::EVENT_TIMEOUT, || {
        env.milter_log()
            .lines()
            .find(|l| l.contains("database error") && l.contains("answer=tempfail"))
            .map(str::to_string)
    });
    assert!(
        outage.symptoms().iter().any(|s| failure.to_lowercase().contains(s)),
        "unexpected database failure (expected one of {:?}): {failure}",
        outage.symptoms()
    );

    // 2. Through Postfix's queue: the front smtpd accepts, forwards to the milter'd smtpd,
    // gets 451 and keeps the message deferred.
    let sent = env.swaks(env.front_port, ALICE, &[SUPPORT], &msg);
    let front_qid = sent.queued();
    let deferred = env.wait_maillog(&front_qid, "status=deferred");
    assert!(deferred.contains("451 4.3.0"), "deferred for another reason: {deferred}");
    let queue = env.postqueue_list();
    assert!(
        queue.contains(&front_qid) && queue.contains("451 4.3.0"),
        "postqueue -p should list {front_qid} deferred with 451 4.3.0:\n{queue}"
    );

    // 3. Repair, flush: delivered, converted once. (Counted once the database is back: a
    // stopped PostgreSQL cannot be asked; nothing retries the message before the flush.)
    outage.end();
    assert_eq!(processed(&env, &mid), 0, "nothing may be recorded while the database is down");
    env.postqueue_flush();
    let sent_line = env.wait_maillog(&front_qid, "status=sent");
    let inner_qid = sent_line
        .split("queued as ")
        .nth(1)
        .map(|s| s.trim_end_matches(')').trim().to_string())
        .unwrap_or_else(|| panic!("no inner queue id in {sent_line}"));
    env.wait_removed(&front_qid);
    let line = env.milter_line(&inner_qid, SUPPORT);
    assert_eq!(log_field(&line, "action").as_deref(), Some("created"), "milter line: {line}");
    let number = log_field(&line, "ticket").expect("ticket= in the milter line");
    let copy = env.relayed_one(&inner_qid, &mid);
    assert_eq!(header_values(&copy, "X-Ticketmilter"), vec![format!("{SUPPORT} created {number}")]);
    let queue = env.postqueue_list();
    assert!(!queue.contains(&front_qid), "{front_qid} is still queued:\n{queue}");

    // 4. The client that got 451 retries too: a duplicate, still one ticket.
    let sent = env.send(ALICE, &[SUPPORT], &msg);
    let qid = sent.queued();
    let line = env.milter_line(&qid, SUPPORT);
    assert_eq!(log_field(&line, "action").as_deref(), Some("duplicate"), "milter line: {line}");
    assert_eq!(log_field(&line, "ticket").as_deref(), Some(number.as_str()), "milter line: {line}");

    assert_eq!(tickets_titled(&env, subject), 1, "exactly one ticket for <{mid}>");
    assert_eq!(processed(&env, &mid), 1, "exactly one processed record for <{mid}>");
    assert_eq!(
        env.count("SELECT count(DISTINCT ticket_id) AS n FROM message_refs WHERE message_id = ?", &[&mid]),
        1,
        "the Message-ID should belong to one ticket"
    );
}

/// Replies with the ticket number in the subject become notes: on a ticket made through
/// Postfix a moment before, and on a fixture ticket.
#[test]
fn reply_with_the_number_becomes_a_note() {
    let env = Env::start();
    let mid = unique_id("original");
    let subject = "Scanner does not send to e-mail";
    let sent = env.send(ALICE, &[SUPPORT], &message(ALICE, SUPPORT, subject, &mid, &[], "Scanning to e-mail fails."));
    let qid = sent.queued();
    let number = log_field(&env.milter_line(&qid, SUPPORT), "ticket").expect("ticket number");

    // A technician (resource) answers through Postfix.
    let reply_mid = unique_id("reply");
    let reply_subject = format!("Re: [{number}] {subject}");
    let msg = message(
        "Tina Tech <tina@msp.example>",
        SUPPORT,
        &reply_subject,
        &reply_mid,
        &[&format!("In-Reply-To: <{mid}>")],
        "I reset the SMTP settings of the scanner; please try again.",
    );
    let sent = env.send("tina@msp.example", &[SUPPORT], &msg);
    let qid = sent.queued();
    let line = env.milter_line(&qid, SUPPORT);
    assert_eq!(log_field(&line, "action").as_deref(), Some("note_added"), "milter line: {line}");
    assert_eq!(log_field(&line, "ticket").as_deref(), Some(number.as_str()), "milter line: {line}");
    let copy = env.relayed_one(&qid, &reply_mid);
    assert_eq!(header_values(&copy, "X-Ticketmilter"), vec![format!("{SUPPORT} note_added {number}")]);

    let t = env.ticket(&number);
    let notes = t["notes"].as_array().cloned().unwrap_or_default();
    assert_eq!(notes.len(), 1, "one note on {number}: {t:#}");
    assert_eq!(notes[0]["title"], reply_subject.as_str(), "note: {:#}", notes[0]);
    assert!(notes[0]["body"].as_str().unwrap_or("").contains("reset the SMTP settings"), "note: {:#}", notes[0]);
    assert_eq!(tickets_titled(&env, subject), 1, "the reply must not make a second ticket");

    // A customer answers on the fixture ticket, with a German prefix.
    let fixture = "T20261120.0001";
    let mid = unique_id("fixture-reply");
    let subject = format!("AW: [{fixture}] VPN drops every hour");
    let sent = env.send(ALICE, &[SUPPORT], &message(ALICE, SUPPORT, &subject, &mid, &[], "It dropped again at 10:00."));
    let qid = sent.queued();
    let line = env.milter_line(&qid, SUPPORT);
    assert_eq!(log_field(&line, "action").as_deref(), Some("note_added"), "milter line: {line}");
    assert_eq!(log_field(&line, "ticket").as_deref(), Some(fixture), "milter line: {line}");
    let t = env.ticket(fixture);
    let notes = t["notes"].as_array().cloned().unwrap_or_default();
    assert!(
        notes
            .iter()
            .any(|n| n["title"] == subject.as_str() && n["body"].as_str().unwrap_or("").contains("dropped again")),
        "no note {subject:?} on {fixture}: {t:#}"
    );
}

/// A mailbox message over max_message_size is refused with 552 5.3.4 at the client.
#[test]
fn too_large_message_gets_552() {
    let env = Env::start();
    let mid = unique_id("too-large");
    let subject = "Log files attached inline";
    let body = "2026-11-27 10:00:00 backup job 4711 failed: device not ready\n".repeat(MAX_MESSAGE_SIZE / 50);
    assert!(body.len() > MAX_MESSAGE_SIZE);
    let sent = env.send(ALICE, &[SUPPORT], &message(ALICE, SUPPORT, subject, &mid, &[], &body));
    let reply = sent.reply();
    assert!(
        reply.starts_with("552 5.3.4 ") && reply.contains("too large"),
        "expected 552 5.3.4; swaks said:\n{}",
        sent.output
    );
    assert!(sent.queue_id().is_none(), "the message must not be queued");
    assert!(
        env.milter_log().contains("message larger than max_message_size"),
        "the milter did not log the size refusal"
    );
    assert_eq!(tickets_titled(&env, subject), 0);
    assert_eq!(processed(&env, &mid), 0);
}

/// Postfix inserts an added header's value verbatim once the milter negotiated
/// SMFIP_HDR_LEADSPC (ticketmilter does), so the value must bring its own leading space.
#[test]
fn added_header_has_a_space_after_the_colon() {
    let env = Env::start();
    let mid = unique_id("header-space");
    let sent =
        env.send(ALICE, &[SUPPORT], &message(ALICE, SUPPORT, "Keyboard missing keys", &mid, &[], "Two keys are gone."));
    let qid = sent.queued();
    let copy = env.relayed_one(&qid, &mid);
    let raw =
        copy.lines().find(|l| l.to_ascii_lowercase().starts_with("x-ticketmilter:")).expect("X-Ticketmilter header");
    assert!(raw.starts_with("X-Ticketmilter: support@msp.example created T"), "raw header line: {raw:?}");
}

// ------------------------------------------------------------------------------------------
// Time entries by mail (`#T=` on the first line): only from an active resource whose message is
// authenticated (a trusted Authentication-Results header, a trusted client network, SMTP AUTH).
// The private Postfix has no SASL, so SMTP AUTH is not tested here.
// ------------------------------------------------------------------------------------------

/// An active resource of the fixture.
const TINA: &str = "tina@msp.example";
/// A fixture ticket (status New, Example Corp).
const VPN_TICKET: &str = "T20261120.0001";
/// The verifier the tests trust.
const TRUSTED_AUTHSERV_ID: &str = "mx.msp.example";
/// What the help desk's MX would write for Tina's genuine mail.
const TRUSTED_AR: &str = "Authentication-Results: mx.msp.example; dkim=pass header.d=msp.example \
     header.i=@msp.example; dmarc=pass header.from=msp.example";
/// The indicator line of the tests: 90 minutes, status In Progress.
const INDICATORS: &str = "#T=1:30 #S=\"In Progress\"";

/// The `reason="…"` of a milter log line.
fn log_reason(line: &str) -> Option<String> {
    line.split(" reason=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_string)
}

/// The `notes` / `time_entries` array of a `ticket show`.
fn list_of(t: &serde_json::Value, key: &str) -> Vec<serde_json::Value> {
    t[key].as_array().cloned().unwrap_or_else(|| panic!("ticket show has no array {key:?}: {t:#}"))
}

/// A reply by Tina on the VPN ticket with `body`, sent through Postfix with swaks adding
/// `add_headers`; the subject ends in `topic`, which must differ per message of a test (loop
/// guard: sender + normalised subject). Asserts 250 and one outcome line for support@;
/// returns (queue id, Message-ID, subject, milter line, relayed copy).
fn tina_writes(env: &Env, topic: &str, body: &str, add_headers: &[&str]) -> (String, String, String, String, String) {
    let mid = unique_id("tina");
    let subject = format!("Re: [{VPN_TICKET}] VPN {topic}");
    let msg = message("Tina Tech <tina@msp.example>", SUPPORT, &subject, &mid, &[], body);
    let sent = env.send_adding(TINA, &[SUPPORT], &msg, add_headers);
    assert!(sent.reply().starts_with("250 "), "expected 250 for {subject:?}; swaks said:\n{}", sent.output);
    let qid = sent.queued();
    let line = env.milter_line(&qid, SUPPORT);
    assert_eq!(env.milter_lines(&qid).len(), 1, "one milter line for {qid}: {:#?}", env.milter_lines(&qid));
    assert_eq!(log_field(&line, "ticket").as_deref(), Some(VPN_TICKET), "milter line: {line}");
    assert_eq!(log_field(&line, "answer").as_deref(), Some("accept"), "milter line: {line}");
    let copy = env.relayed_one(&qid, &mid);
    // What swaks added reached the milter and went on unchanged.
    for h in add_headers {
        let (name, value) = h.split_once(':').unwrap();
        assert!(
            header_values(&copy, name).iter().any(|v| v == value.trim()),
            "the relayed copy lacks the added header {h:?}:\n{copy}"
        );
    }
    (qid, mid, subject, line, copy)
}

/// `#T=1:30 #S="In Progress"` from Tina, whose mail the trusted MX vouches for (DKIM and DMARC
/// pass for msp.example): a time entry of 90 minutes with the text below the indicator line as
/// its summary, the ticket set to In Progress, no note.
#[test]
fn time_entry_from_an_authenticated_resource() {
    let env = Env::start_with_settings(&[("trusted_authserv_ids", TRUSTED_AUTHSERV_ID)]);
    let before = chrono::Utc::now().date_naive();
    let body = format!(
        "{INDICATORS}\n\nReplaced the VPN client profile and renewed the certificate.\nThe tunnel stayed up for an hour.\nTina"
    );
    let (qid, _mid, _subject, line, copy) = tina_writes(&env, "drops every hour", &body, &[TRUSTED_AR]);
    let after = chrono::Utc::now().date_naive();

    assert_eq!(log_field(&line, "action").as_deref(), Some("time_entry_added"), "milter line: {line}");
    assert_eq!(log_field(&line, "from").as_deref(), Some("<tina@msp.example>"), "milter line: {line}");
    assert_eq!(log_reason(&line), None, "a time entry needs no reason: {line}");
    assert_eq!(
        header_values(&copy, "X-Ticketmilter"),
        vec![format!("{SUPPORT} time_entry_added {VPN_TICKET}")],
        "X-Ticketmilter of the relayed copy:\n{copy}"
    );
    let relayed = env.wait_maillog(&qid, "status=");
    assert!(relayed.contains("status=sent"), "Postfix did not relay {qid}: {relayed}");

    let t = env.ticket(VPN_TICKET);
    let entries = list_of(&t, "time_entries");
    assert_eq!(entries.len(), 1, "one time entry on {VPN_TICKET}: {t:#}");
    let e = &entries[0];
    assert_eq!(e["minutes"], 90, "time entry: {e:#}");
    assert_eq!(e["resource"], TINA, "time entry: {e:#}");
    assert!(e["start"].is_null() && e["end"].is_null(), "a duration has no clock times: {e:#}");
    let date = e["date"].as_str().unwrap_or_default();
    assert!(
        [before, after].iter().any(|d| d.format("%Y-%m-%d").to_string() == date),
        "work date {date:?} is not today (UTC, the fixture's time zone): {e:#}"
    );
    let summary = e["summary"].as_str().unwrap_or_default().replace("\r\n", "\n");
    assert_eq!(
        summary.trim(),
        "Replaced the VPN client profile and renewed the certificate.\nThe tunnel stayed up for an hour.\nTina",
        "the summary should be the text below the indicator line (and the blank line after it)"
    );
    assert_eq!(t["status"], "In Progress", "#S= should set the status: {t:#}");
    assert_eq!(list_of(&t, "notes").len(), 0, "a time entry, not a note: {t:#}");
    assert_eq!(
        env.count(
            "SELECT count(*) AS n FROM processed_messages WHERE queue_id = ? AND outcome = 'time_entry_added'",
            &[&qid]
        ),
        1,
        "processed_messages should record {qid} as time_entry_added"
    );
}

/// The same mail without proof that Tina sent it: no Authentication-Results, one from a verifier
/// that is not trusted, and a trusted one whose DKIM pass is for another domain. Each is accepted
/// and becomes a note with the indicator line kept as text; no time entry, no status change; the
/// reason says why the sender is not authenticated.
#[test]
fn forged_time_entry_becomes_a_note() {
    let env = Env::start_with_settings(&[("trusted_authserv_ids", TRUSTED_AUTHSERV_ID)]);
    let cases: [(&str, Vec<&str>, &str); 3] = [
        (
            "forged without results",
            vec![],
            "no Authentication-Results header from a trusted authserv-id (trusted: mx.msp.example)",
        ),
        (
            "forged by an untrusted verifier",
            vec![
                "Authentication-Results: evil.example; dkim=pass header.d=msp.example; dmarc=pass header.from=msp.example",
            ],
            "no Authentication-Results header from a trusted authserv-id (trusted: mx.msp.example; ignored: evil.example)",
        ),
        (
            "forged with a foreign signature",
            vec!["Authentication-Results: mx.msp.example; dkim=pass header.d=evil.example; dmarc=none"],
            "dkim=pass for evil.example, not the sender's domain msp.example",
        ),
    ];
    for (topic, headers, why) in &cases {
        let body = format!("{INDICATORS}\nRebooted the firewall ({topic}).\nTina");
        let (qid, _mid, subject, line, copy) = tina_writes(&env, topic, &body, headers);
        assert_eq!(log_field(&line, "action").as_deref(), Some("note_added"), "{topic}: milter line: {line}");
        let reason = log_reason(&line).unwrap_or_else(|| panic!("{topic}: no reason= in the milter line: {line}"));
        assert!(
            reason.contains("the commands in the first line were kept as text")
                && reason.contains(&format!("the sender is not authenticated: {why}")),
            "{topic}: the reason should say that the sender is not authenticated ({why}): {reason:?}"
        );
        assert_eq!(
            header_values(&copy, "X-Ticketmilter"),
            vec![format!("{SUPPORT} note_added {VPN_TICKET}")],
            "{topic}: X-Ticketmilter of the relayed copy:\n{copy}"
        );
        assert_eq!(
            env.count(
                "SELECT count(*) AS n FROM processed_messages WHERE queue_id = ? AND outcome = 'note_added'",
                &[&qid]
            ),
            1,
            "{topic}: processed_messages should record {qid} as note_added"
        );

        let t = env.ticket(VPN_TICKET);
        assert_eq!(list_of(&t, "time_entries").len(), 0, "{topic}: a forged #T= made a time entry: {t:#}");
        assert_eq!(t["status"], "New", "{topic}: a forged #S= changed the status: {t:#}");
        let notes = list_of(&t, "notes");
        let note = notes
            .iter()
            .find(|n| n["title"] == subject.as_str())
            .unwrap_or_else(|| panic!("{topic}: no note {subject:?} on {VPN_TICKET}: {t:#}"));
        let text = note["body"].as_str().unwrap_or_default();
        assert!(
            text.contains(INDICATORS) && text.contains(&format!("Rebooted the firewall ({topic})")),
            "{topic}: the note should keep the indicator line as text: {text:?}"
        );
        assert_eq!(note["author"], TINA, "{topic}: note: {note:#}");
    }
    assert_eq!(list_of(&env.ticket(VPN_TICKET), "notes").len(), cases.len(), "one note per forged message");
}

/// A client in `trusted_networks` is trusted without any Authentication-Results: Postfix tells the
/// milter the client address 127.0.0.1. Before the network is trusted the same kind of mail is a
/// note; the setting takes effect at the next SQL reload of the running milter. No authserv-id
/// is trusted here (the fixture's is cleared), so only the network can vouch.
#[test]
fn trusted_network_authenticates_time_entries() {
    let env = Env::start_with_settings(&[("trusted_authserv_ids", ""), ("trusted_networks", "")]);

    // Nothing trusted yet: a note, and the reason says so.
    let body = format!("{INDICATORS}\nChecked the VPN logs before the network was trusted.");
    let (qid, _, _, line, _) = tina_writes(&env, "logs checked", &body, &[]);
    assert_eq!(log_field(&line, "action").as_deref(), Some("note_added"), "milter line: {line}");
    let reason = log_reason(&line).unwrap_or_else(|| panic!("no reason= in the milter line: {line}"));
    assert!(
        reason.contains(
            "the sender is not authenticated: no SMTP AUTH login, the client is not in a trusted network, \
             and no authserv-id is trusted"
        ),
        "the reason should say that the sender is not authenticated: {reason:?}"
    );
    // Postfix's client for this session: 127.0.0.1 (what the milter is told).
    let client = env.wait_maillog(&qid, "client=");
    assert!(client.contains("[127.0.0.1]"), "Postfix's client is not 127.0.0.1: {client}");
    assert_eq!(list_of(&env.ticket(VPN_TICKET), "time_entries").len(), 0);

    env.set_setting("trusted_networks", "127.0.0.0/8");

    // A clock range and a role this time.
    let body = "#T=09:00-09:45 #R=\"Senior Engineer\"\nMoved the VPN gateway to the new uplink.";
    let (qid, _, _, line, copy) = tina_writes(&env, "gateway moved", body, &[]);
    assert_eq!(log_field(&line, "action").as_deref(), Some("time_entry_added"), "milter line: {line}");
    assert_eq!(log_reason(&line), None, "milter line: {line}");
    let client = env.wait_maillog(&qid, "client=");
    assert!(client.contains("[127.0.0.1]"), "Postfix's client is not 127.0.0.1: {client}");
    assert_eq!(header_values(&copy, "X-Ticketmilter"), vec![format!("{SUPPORT} time_entry_added {VPN_TICKET}")]);

    let t = env.ticket(VPN_TICKET);
    let entries = list_of(&t, "time_entries");
    assert_eq!(entries.len(), 1, "one time entry on {VPN_TICKET}: {t:#}");
    let e = &entries[0];
    assert_eq!(e["minutes"], 45, "time entry: {e:#}");
    assert_eq!(e["start"], "09:00", "time entry: {e:#}");
    assert_eq!(e["end"], "09:45", "time entry: {e:#}");
    assert_eq!(e["role"], "Senior Engineer", "time entry: {e:#}");
    assert_eq!(e["resource"], TINA, "time entry: {e:#}");
    assert_eq!(
        e["summary"].as_str().map(str::trim),
        Some("Moved the VPN gateway to the new uplink."),
        "time entry: {e:#}"
    );
    assert_eq!(t["status"], "New", "no #S=, no status change: {t:#}");
    assert_eq!(list_of(&t, "notes").len(), 1, "only the note from before the network was trusted: {t:#}");
}

/// The database goes away in the middle of a stream of messages through Postfix's queue and
/// comes back: what arrived during the outage is deferred with 451, and after the repair and a
/// queue flush every message of the stream is converted exactly once — before, during and
/// after the outage alike. (On PostgreSQL the server is really stopped and started again; the
/// daemon reconnects on its own.)
#[test]
fn database_outage_during_a_stream_loses_and_doubles_nothing() {
    let env = Env::start_with_own_database_server();
    let mut sent: Vec<(String, String)> = Vec::new();
    let send = |env: &Env, sent: &mut Vec<(String, String)>, n: usize| {
        let mid = unique_id(&format!("stream-{n}"));
        let msg = message(ALICE, SUPPORT, &format!("Stream message {n}"), &mid, &[], "One of many.");
        let s = env.swaks(env.front_port, ALICE, &[SUPPORT], &msg);
        sent.push((s.queued(), mid));
    };
    for n in 0..8 {
        send(&env, &mut sent, n);
    }
    // Let the first part go through, then take the database away while more arrive.
    for (qid, _) in &sent {
        env.wait_maillog(qid, "status=sent");
    }
    let outage = env.take_database_down();
    for n in 8..16 {
        send(&env, &mut sent, n);
    }
    for (qid, _) in &sent[8..] {
        let line = env.wait_maillog(qid, "status=deferred");
        assert!(line.contains("451 4.3.0"), "deferred for another reason: {line}");
    }
    outage.end();
    for n in 16..24 {
        send(&env, &mut sent, n);
    }
    env.postqueue_flush();
    for (qid, _) in &sent {
        env.wait_removed(qid);
    }
    for (n, (qid, mid)) in sent.iter().enumerate() {
        assert_eq!(processed(&env, mid), 1, "message {n} ({qid}, <{mid}>) should be recorded exactly once");
        assert_eq!(tickets_titled(&env, &format!("Stream message {n}")), 1, "message {n} should make exactly one ticket");
    }
    assert_eq!(env.count("SELECT count(*) AS n FROM tickets WHERE title LIKE ?", &["Stream message %"]), 24);
}
