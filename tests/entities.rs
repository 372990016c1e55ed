//! Projects, tasks and time entries, and the rules around them, against a real database (SQLite
//! or PostgreSQL, see tests/common/mod.rs):
//! project and task notes, `#T=`/`#R=`/`#S=` commands and who may give them, entity permissions
//! of mailboxes, attachment limits, duplicate handling, the loop guard, the cross-company guard,
//! replies to completed tickets, CC contacts, only-when-in-To, the staff forward marker,
//! excluded senders, parsing rules, structured alerts, reprocessing, raw retention and `explain`.
//! Every test checks the database afterwards with SQL counts.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestDb, envelope};
use ticketmilter::Options;
use ticketmilter::model::{Envelope, Failure, ObjectKind, Outcome, SenderKind, Verdict};
use ticketmilter::store::{self, mailboxes::MailboxSpec};

const SUPPORT: &str = "support@msp.example";
const ALERTS: &str = "alerts@msp.example";
const TINA: &str = "Tina Tech <tina@msp.example>";
/// What our own MX (the trusted authserv-id of the fixture) writes for Tina's signed mail.
const AR_TRUSTED: &str = "Authentication-Results: mx.msp.example; dkim=pass header.d=msp.example header.s=sel1; spf=pass smtp.mailfrom=msp.example";
/// The same verdict, written by somebody we do not trust.
const AR_UNTRUSTED: &str = "Authentication-Results: mx.evil.example; dkim=pass header.d=msp.example; spf=pass smtp.mailfrom=msp.example";

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// A test message; every one gets a Message-ID of its own unless told otherwise.
#[derive(Clone)]
struct Mail {
    from: String,
    to: String,
    cc: Option<String>,
    subject: String,
    id: String,
    headers: Vec<String>,
    body: String,
}

impl Mail {
    fn new(from: &str, subject: &str, body: &str) -> Mail {
        Mail {
            from: from.into(),
            to: SUPPORT.into(),
            cc: None,
            subject: subject.into(),
            id: format!("e{}@test.example", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            headers: Vec::new(),
            body: body.into(),
        }
    }
    fn to(mut self, to: &str) -> Mail {
        self.to = to.into();
        self
    }
    fn cc(mut self, cc: &str) -> Mail {
        self.cc = Some(cc.into());
        self
    }
    fn header(mut self, h: &str) -> Mail {
        self.headers.push(h.into());
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let mut s = String::new();
        for h in &self.headers {
            s.push_str(h);
            s.push_str("\r\n");
        }
        s.push_str(&format!("From: {}\r\nTo: {}\r\n", self.from, self.to));
        if let Some(cc) = &self.cc {
            s.push_str(&format!("Cc: {cc}\r\n"));
        }
        s.push_str(&format!(
            "Subject: {}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{}>\r\n",
            self.subject, self.id
        ));
        if !self.headers.iter().any(|h| h.to_ascii_lowercase().starts_with("content-type:")) {
            s.push_str("Content-Type: text/plain; charset=utf-8\r\n");
        }
        s.push_str("\r\n");
        s.push_str(&self.body.replace("\r\n", "\n").replace('\n', "\r\n"));
        s.into_bytes()
    }
}

/// An envelope for the support mailbox, unauthenticated.
fn plain() -> Envelope {
    envelope("", &[SUPPORT])
}

/// An envelope for the support mailbox whose session was authenticated (SMTP AUTH).
fn staff() -> Envelope {
    let mut e = envelope("tina@msp.example", &[SUPPORT]);
    e.auth_user = Some("tina".into());
    e
}

/// Process one message (a fresh engine: the configuration as it is in the database now).
fn process(db: &TestDb, env: &Envelope, mail: &Mail) -> Outcome {
    let out = db.engine().process(env, &mail.bytes(), Options::default()).unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    out.into_iter().next().unwrap()
}

fn sql(db: &TestDb, script: &str) {
    db.exec(script);
}

fn setting(db: &TestDb, key: &str, value: &str) {
    db.store.write(|c| store::conf::set_setting(c, key, value)).unwrap();
}

fn mailbox_set(db: &TestDb, address: &str, spec: MailboxSpec) {
    db.store.write(|c| store::mailboxes::set(c, address, &spec)).unwrap();
}

/// One text value from a query such as `SELECT body AS t FROM ticket_notes`.
fn text(db: &TestDb, query: &str) -> Option<String> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct T {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        t: Option<String>,
    }
    let mut conn = db.store.conn().unwrap();
    let rows: Vec<T> = match &mut *conn {
        store::AnyConnection::Sqlite(c) => diesel::sql_query(query).load(c).unwrap(),
        store::AnyConnection::Postgres(c) => diesel::sql_query(query).load(c).unwrap(),
    };
    rows.into_iter().next().and_then(|r| r.t)
}

fn reason(o: &Outcome) -> &str {
    o.reason.as_deref().unwrap_or("")
}

fn ticket_number(o: &Outcome) -> String {
    o.object.as_ref().and_then(|x| x.ticket_number.clone()).unwrap_or_else(|| panic!("no ticket number in {o:?}"))
}

fn kind(o: &Outcome) -> ObjectKind {
    o.object.as_ref().unwrap_or_else(|| panic!("no object in {o:?}")).kind
}

/// Nothing at all was written for the message: no object and no processed-message record.
fn nothing_written(db: &TestDb) {
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM time_entries"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM project_notes"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM task_notes"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), 2);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 1 AND status_id = 1"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM tasks WHERE id = 1 AND status_id = 2"), 1);
}

// ------------------------------------------------------------------------------------------
// Project and task notes
// ------------------------------------------------------------------------------------------

#[test]
fn a_project_number_in_the_subject_makes_a_project_note() {
    let db = TestDb::directory();
    let m = Mail::new("Alice Example <alice@example.com>", "Re: [P20261120.0001] Network refresh", "The cabling plan is attached.\n");
    let o = process(&db, &plain(), &m);
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    let obj = o.object.clone().unwrap();
    assert_eq!(obj.kind, ObjectKind::ProjectNote);
    assert_eq!(obj.project_number.as_deref(), Some("P20261120.0001"));
    assert_eq!((obj.ticket_number, obj.task_number), (None, None));
    let s = o.sender.unwrap();
    assert_eq!((s.kind, s.company.as_deref()), (SenderKind::Contact, Some("Example Corp")));
    assert_eq!(db.count("SELECT count(*) AS n FROM project_notes WHERE project_id = 1 AND author_contact_id = 1 AND author_resource_id IS NULL AND author_address = 'alice@example.com' AND visibility = 'all' AND unverified = FALSE AND mailbox_id = 1 AND title = 'Re: [P20261120.0001] Network refresh' AND body = 'The cabling plan is attached.'"), 1);
    assert_eq!(db.count(&format!("SELECT count(*) AS n FROM processed_messages WHERE outcome = 'note_added' AND object_kind = 'project_note' AND object_id = {} AND ticket_id IS NULL", obj.id)), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM projects WHERE id = 1 AND updated_at > '2026-11-27'"), 1);
    // No ticket was made or touched.
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), 2);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes"), 0);
}

#[test]
fn a_task_number_in_the_subject_makes_a_task_note() {
    let db = TestDb::directory();
    let m = Mail::new(TINA, "K20261120.0001 switch delivered", "The new switch arrived; installing Monday.\n");
    let o = process(&db, &staff(), &m);
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    let obj = o.object.clone().unwrap();
    assert_eq!(obj.kind, ObjectKind::TaskNote);
    assert_eq!(obj.task_number.as_deref(), Some("K20261120.0001"));
    assert_eq!(obj.project_number.as_deref(), Some("P20261120.0001"));
    assert_eq!(o.sender.unwrap().kind, SenderKind::Resource);
    assert_eq!(db.count("SELECT count(*) AS n FROM task_notes WHERE task_id = 1 AND author_resource_id = 1 AND author_contact_id IS NULL AND unverified = FALSE AND body = 'The new switch arrived; installing Monday.'"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE outcome = 'note_added' AND object_kind = 'task_note'"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM project_notes"), 0);
    // With trusted verifiers configured, an unauthenticated staff address is not believed: the
    // note is kept, unverified and internal.
    let o = process(&db, &plain(), &Mail::new(TINA, "K20261120.0001 switch delivered (2)", "Forged?\n"));
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    assert_eq!(db.count("SELECT count(*) AS n FROM task_notes WHERE task_id = 1 AND unverified = TRUE AND visibility = 'internal' AND body = 'Forged?'"), 1);
}

// ------------------------------------------------------------------------------------------
// Time entries (#T=, #R=, #S=)
// ------------------------------------------------------------------------------------------

#[test]
fn an_authenticated_resource_books_time_on_a_ticket_and_completes_it() {
    let db = TestDb::directory();
    let m = Mail::new(TINA, "Re: [T20261120.0001] VPN drops every hour", "#T=1.5 #R=\"Senior Engineer\" #S=Complete\n\nReplaced the VPN appliance.\nTunnel stable for an hour.\n");
    let o = process(&db, &staff(), &m);
    assert_eq!(o.outcome, Verdict::TimeEntryAdded, "{o:?}");
    assert_eq!(kind(&o), ObjectKind::TicketTimeEntry);
    assert_eq!(ticket_number(&o), "T20261120.0001");
    let t = o.time.clone().unwrap();
    assert_eq!((t.minutes, t.hours.as_str(), t.role.as_str(), t.date.as_str()), (90, "1.50", "Senior Engineer", "2026-11-27"));
    assert_eq!((t.start, t.end, t.status.as_deref()), (None, None, Some("Complete")));
    assert_eq!(o.description.as_deref(), Some("Replaced the VPN appliance.\nTunnel stable for an hour."));
    assert_eq!(db.count("SELECT count(*) AS n FROM time_entries WHERE owner_kind = 'ticket' AND owner_id = 1 AND resource_id = 1 AND role_id = 2 AND work_type_id = 1 AND work_date = '2026-11-27' AND start_time IS NULL AND end_time IS NULL AND minutes = 90 AND mailbox_id = 1"), 1);
    let summary = text(&db, "SELECT summary AS t FROM time_entries").unwrap();
    assert_eq!(summary, "Replaced the VPN appliance.\nTunnel stable for an hour.");
    assert!(!summary.contains("#T"), "the indicator line is not part of the summary: {summary:?}");
    // #S=Complete set the ticket's status; a time entry is no note.
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 1 AND status_id = 5"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE outcome = 'time_entry_added' AND object_kind = 'ticket_time_entry' AND ticket_id = 1"), 1);
}

#[test]
fn a_trusted_authentication_results_header_authenticates_a_task_time_entry() {
    let db = TestDb::directory();
    let m = Mail::new(TINA, "K20261120.0001 core switch", "#T=09:00-10:30 #S=Complete\n\nSwapped the core switch, VLANs verified.\n").header(AR_TRUSTED);
    let o = process(&db, &plain(), &m);
    assert_eq!(o.outcome, Verdict::TimeEntryAdded, "{o:?}");
    let obj = o.object.clone().unwrap();
    assert_eq!((obj.kind, obj.task_number.as_deref()), (ObjectKind::TaskTimeEntry, Some("K20261120.0001")));
    let t = o.time.unwrap();
    assert_eq!((t.minutes, t.role.as_str(), t.start.as_deref(), t.end.as_deref()), (90, "Engineer", Some("09:00"), Some("10:30")));
    assert_eq!(db.count("SELECT count(*) AS n FROM time_entries WHERE owner_kind = 'task' AND owner_id = 1 AND resource_id = 1 AND role_id = 1 AND work_type_id = 1 AND work_date = '2026-11-27' AND start_time = '09:00' AND end_time = '10:30' AND minutes = 90 AND summary = 'Swapped the core switch, VLANs verified.'"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM tasks WHERE id = 1 AND status_id = 5"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM task_notes"), 0);
}

#[test]
fn the_mailbox_role_and_work_type_apply_when_the_mail_names_none() {
    let db = TestDb::directory();
    mailbox_set(&db, SUPPORT, MailboxSpec { role: Some("Project Manager".into()), work_type: Some("On-Site Support".into()), ..Default::default() });
    let o = process(&db, &staff(), &Mail::new(TINA, "[T20261120.0001] VPN", "#T=2h\nOn site.\n"));
    assert_eq!(o.outcome, Verdict::TimeEntryAdded, "{o:?}");
    assert_eq!(o.time.unwrap().role, "Project Manager");
    assert_eq!(db.count("SELECT count(*) AS n FROM time_entries WHERE role_id = 3 AND work_type_id = 2 AND minutes = 120 AND summary = 'On site.'"), 1);
    // No #S=: the status stays.
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 1 AND status_id = 1"), 1);
}

#[test]
fn every_time_form_books_ninety_minutes() {
    let db = TestDb::directory();
    let forms = ["1.5", "1,5", "1:30", "90m", "90min", "1h30m", "1h 30m", "\"1h 30m\"", "1.5h", "09:00-10:30"];
    for (i, form) in forms.iter().enumerate() {
        // A subject of its own each time: the loop guard counts sender and subject.
        let m = Mail::new(TINA, &format!("[T20261120.0001] VPN, visit {i}"), &format!("#T={form} #R=Engineer\n\nVisit {i}.\n"));
        let o = process(&db, &staff(), &m);
        assert_eq!(o.outcome, Verdict::TimeEntryAdded, "#T={form}: {o:?}");
        assert_eq!(o.time.as_ref().unwrap().minutes, 90, "#T={form}");
        assert_eq!(o.description.as_deref(), Some(format!("Visit {i}.").as_str()), "#T={form}");
    }
    assert_eq!(db.count("SELECT count(*) AS n FROM time_entries WHERE minutes = 90 AND owner_kind = 'ticket' AND owner_id = 1 AND role_id = 1"), forms.len() as i64);
    assert_eq!(db.count("SELECT count(*) AS n FROM time_entries WHERE start_time IS NOT NULL"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM time_entries WHERE summary LIKE '%#T%'"), 0);
    // Other amounts.
    for (form, minutes) in [("0,25", 15), ("45min", 45), ("2", 120), ("0:05", 5), ("13:15-17:45", 270)] {
        let m = Mail::new(TINA, &format!("[T20261120.0001] VPN, {form}"), &format!("#T={form}\nx\n"));
        let o = process(&db, &staff(), &m);
        assert_eq!(o.time.as_ref().map(|t| t.minutes), Some(minutes), "#T={form}: {o:?}");
    }
}

#[test]
fn a_forged_time_entry_becomes_a_note_that_keeps_the_indicator_line() {
    let db = TestDb::directory();
    let body = "#T=1.5 #S=Complete\n\nFixed, please bill me.\n";
    // No SMTP AUTH, no trusted network, no Authentication-Results at all.
    let o = process(&db, &plain(), &Mail::new(TINA, "Re: [T20261120.0001] VPN drops every hour", body));
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    assert_eq!(kind(&o), ObjectKind::TicketNote);
    assert!(o.time.is_none());
    let r = reason(&o);
    assert!(r.contains("commands in the first line were kept as text") && r.contains("not authenticated"), "{r}");
    assert!(r.contains("no Authentication-Results header from a trusted authserv-id (trusted: mx.msp.example"), "{r}");
    assert_eq!(db.count("SELECT count(*) AS n FROM time_entries"), 0);
    // Not believed to be staff: the note is Tina's address, not her resource record.
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = 1 AND author_resource_id IS NULL AND author_address = 'tina@msp.example' AND body LIKE '#T=1.5 #S=Complete%' AND body LIKE '%Fixed, please bill me.'"), 1);
    // #S= was not carried out either.
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 1 AND status_id = 1"), 1);

    // The same verdict written by an authserv-id nobody trusts proves nothing, and says so.
    let o = process(&db, &plain(), &Mail::new(TINA, "Re: [T20261120.0001] VPN drops every hour (2)", body).header(AR_UNTRUSTED));
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    let r = reason(&o);
    assert!(r.contains("not authenticated") && r.contains("ignored: mx.evil.example"), "{r}");

    // A trusted verifier that vouches for another domain does not vouch for msp.example.
    let other = "Authentication-Results: mx.msp.example; dkim=pass header.d=evil.example";
    let o = process(&db, &plain(), &Mail::new(TINA, "Re: [T20261120.0001] VPN drops every hour (3)", body).header(other));
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    assert!(reason(&o).contains("dkim=pass for evil.example, not the sender's domain msp.example"), "{}", reason(&o));

    // A contact may not book time, authenticated or not.
    let mut env = plain();
    env.auth_user = Some("alice".into());
    let o = process(&db, &env, &Mail::new("alice@example.com", "Re: [T20261120.0001] VPN drops every hour", body));
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    assert!(reason(&o).contains("the sender is not a resource"), "{}", reason(&o));

    assert_eq!(db.count("SELECT count(*) AS n FROM time_entries"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE body LIKE '#T=1.5%'"), 4);
    // The three forged staff notes are not believed to be staff's: unverified and internal.
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE body LIKE '#T=1.5%' AND author_resource_id IS NULL AND unverified = TRUE AND visibility = 'internal'"), 3);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 1 AND status_id = 1"), 1);
}

#[test]
fn bad_commands_are_refused_with_the_valid_names_and_nothing_is_written() {
    let cases: &[(&str, &[&str])] = &[
        ("#T=abc", &["#T=abc", "1.5", "1:30", "1h 30m", "90m", "09:00-10:30"]),
        ("#T=25", &["at most 24 hours"]),
        ("#T=0", &["more than zero"]),
        ("#T=10:30-09:00", &["#T=10:30-09:00"]),
        ("#T=1 #T=2", &["more than once"]),
        ("#T=1 #R=\"Senior Engineer", &["#R", "never closed"]),
        ("#T=1 #R=Janitor", &["unknown role \"Janitor\"", "Engineer, Senior Engineer, Project Manager"]),
        ("#T=1 #S=Finished", &["unknown status \"Finished\"", "New, In Progress, Waiting Customer, Customer Note Added, Complete"]),
    ];
    for (line, wanted) in cases {
        let db = TestDb::directory();
        let o = process(&db, &staff(), &Mail::new(TINA, "[T20261120.0001] VPN", &format!("{line}\n\nWork done.\n")));
        assert_eq!((o.outcome, o.failure), (Verdict::Rejected, Some(Failure::BadCommand)), "{line}: {o:?}");
        for w in *wanted {
            assert!(reason(&o).contains(w), "{line}: reason lacks {w:?}: {}", reason(&o));
        }
        nothing_written(&db);
    }
    // The same on a task.
    let db = TestDb::directory();
    let o = process(&db, &staff(), &Mail::new(TINA, "K20261120.0001", "#T=1 #R=Plumber\n"));
    assert_eq!((o.outcome, o.failure), (Verdict::Rejected, Some(Failure::BadCommand)));
    assert!(reason(&o).contains("unknown role \"Plumber\" in #R= (valid: Engineer, Senior Engineer, Project Manager)"), "{}", reason(&o));
    nothing_written(&db);
    // Time cannot be booked on a project.
    let o = process(&db, &staff(), &Mail::new(TINA, "P20261120.0001", "#T=1\n"));
    assert_eq!((o.outcome, o.failure), (Verdict::Rejected, Some(Failure::BadCommand)));
    assert!(reason(&o).contains("time cannot be entered on a project (P20261120.0001)"), "{}", reason(&o));
    nothing_written(&db);
}

#[test]
fn bad_commands_from_an_unauthenticated_sender_stay_text() {
    let db = TestDb::directory();
    let o = process(&db, &plain(), &Mail::new(TINA, "[T20261120.0001] VPN", "#T=1 #R=Janitor\n\nhello\n"));
    // Without authentication the line is no command at all: a note, with the role unchecked.
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE body LIKE '#T=1 #R=Janitor%'"), 1);
}

// ------------------------------------------------------------------------------------------
// What a mailbox may create
// ------------------------------------------------------------------------------------------

#[test]
fn a_mailbox_refuses_kinds_it_does_not_allow() {
    let db = TestDb::directory();
    mailbox_set(&db, SUPPORT, MailboxSpec { allow: Some(vec!["tickets,ticket-notes".into()]), ..Default::default() });
    let cases: &[(Envelope, Mail, &str)] = &[
        (staff(), Mail::new(TINA, "[T20261120.0001] VPN", "#T=1\nx\n"), "mailbox support@msp.example does not accept ticket time entries"),
        (staff(), Mail::new(TINA, "K20261120.0001", "#T=1\nx\n"), "mailbox support@msp.example does not accept task time entries"),
        (plain(), Mail::new("alice@example.com", "P20261120.0001 plan", "x\n"), "mailbox support@msp.example does not accept project notes (the subject names P20261120.0001)"),
        (plain(), Mail::new("alice@example.com", "K20261120.0001 plan", "x\n"), "mailbox support@msp.example does not accept task notes (the subject names K20261120.0001)"),
    ];
    for (env, mail, expected) in cases {
        let o = process(&db, env, mail);
        assert_eq!((o.outcome, o.failure), (Verdict::Rejected, Some(Failure::NotAllowed)), "{o:?}");
        assert_eq!(reason(&o), *expected);
    }
    nothing_written(&db);
    // Allowed kinds still work.
    assert_eq!(process(&db, &plain(), &Mail::new("alice@example.com", "Re: [T20261120.0001] VPN", "x\n")).outcome, Verdict::NoteAdded);

    let db = TestDb::directory();
    mailbox_set(&db, SUPPORT, MailboxSpec { allow: Some(vec!["ticket-notes".into()]), ..Default::default() });
    let o = process(&db, &plain(), &Mail::new("alice@example.com", "New printer please", "x\n"));
    assert_eq!((o.outcome, o.failure), (Verdict::Rejected, Some(Failure::NotAllowed)));
    assert_eq!(reason(&o), "mailbox support@msp.example does not create tickets (and the message names no existing ticket)");
    nothing_written(&db);
    assert_eq!(process(&db, &plain(), &Mail::new("alice@example.com", "Re: [T20261120.0001] VPN", "x\n")).outcome, Verdict::NoteAdded);
}

// ------------------------------------------------------------------------------------------
// Attachment limits
// ------------------------------------------------------------------------------------------

fn with_files(from: &str, subject: &str, files: &[(&str, usize)]) -> Mail {
    let mut body = String::from("--b\nContent-Type: text/plain\n\nFiles attached.\n");
    for (name, size) in files {
        body.push_str(&format!(
            "--b\nContent-Type: application/octet-stream; name={name}\nContent-Disposition: attachment; filename={name}\nContent-Transfer-Encoding: base64\n\n{}\n",
            b64(&vec![b'x'; *size])
        ));
    }
    body.push_str("--b--\n");
    Mail::new(from, subject, &body).header("MIME-Version: 1.0").header("Content-Type: multipart/mixed; boundary=b")
}

fn b64(data: &[u8]) -> String {
    let s = ticketmilter::pipeline::content::base64(data);
    s.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\n")
}

#[test]
fn oversize_attachments_are_left_out_with_an_internal_note() {
    let db = TestDb::directory();
    mailbox_set(&db, SUPPORT, MailboxSpec { max_attachment_bytes: Some(2048), max_attachments_bytes: Some(3072), ..Default::default() });
    let m = with_files("alice@example.com", "Scanner logs", &[("small.log", 1000), ("huge.bin", 5000), ("second.log", 1500), ("third.log", 1500)]);
    let o = process(&db, &plain(), &m);
    assert_eq!(o.outcome, Verdict::Created, "{o:?}");
    let kept: Vec<&str> = o.attachments.iter().map(|a| a.filename.as_str()).collect();
    assert_eq!(kept, ["small.log", "second.log"]);
    assert!(reason(&o).contains("2 attachment(s) left out"), "{}", reason(&o));
    let number = ticket_number(&o);
    let tid = db.count(&format!("SELECT id AS n FROM tickets WHERE number = '{number}'"));
    assert_eq!(db.count(&format!("SELECT count(*) AS n FROM attachments WHERE owner_kind = 'ticket' AND owner_id = {tid}")), 2);
    assert_eq!(db.count("SELECT count(*) AS n FROM attachments WHERE filename IN ('huge.bin', 'third.log')"), 0);
    // One internal note by ticketmilter itself names each file and the limit.
    assert_eq!(db.count(&format!("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = {tid} AND visibility = 'internal' AND author_address = 'ticketmilter' AND author_contact_id IS NULL")), 1);
    let note = text(&db, &format!("SELECT body AS t FROM ticket_notes WHERE ticket_id = {tid}")).unwrap();
    assert!(note.contains("\"huge.bin\" (5 KB)") && note.contains("limit of 2 KB per file"), "{note}");
    assert!(note.contains("\"third.log\"") && note.contains("limit of 3 KB per message"), "{note}");
    assert!(!note.contains("small.log") && !note.contains("second.log"), "{note}");
}

#[test]
fn oversize_attachments_of_a_note_are_noted_on_the_ticket() {
    let db = TestDb::directory();
    mailbox_set(&db, SUPPORT, MailboxSpec { max_attachment_bytes: Some(100), ..Default::default() });
    let o = process(&db, &plain(), &with_files("alice@example.com", "Re: [T20261120.0001] VPN", &[("capture.pcap", 4000)]));
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    assert!(o.attachments.is_empty());
    assert!(reason(&o).contains("1 attachment(s) left out"), "{}", reason(&o));
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = 1"), 2);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = 1 AND visibility = 'internal' AND author_address = 'ticketmilter' AND body LIKE '%\"capture.pcap\" (4 KB)%limit of 1 KB per file%'"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM attachments"), 0);
}

// ------------------------------------------------------------------------------------------
// Duplicates
// ------------------------------------------------------------------------------------------

#[test]
fn the_same_sender_and_subject_again_becomes_a_note_on_the_first_ticket() {
    let db = TestDb::directory();
    let first = process(&db, &plain(), &Mail::new("alice@example.com", "Printer offline", "It is offline.\n"));
    assert_eq!(first.outcome, Verdict::Created);
    let second = process(&db, &plain(), &Mail::new("alice@example.com", "Printer offline", "Still offline!\n"));
    assert_eq!((second.outcome, kind(&second)), (Verdict::NoteAdded, ObjectKind::TicketNote), "{second:?}");
    assert_eq!(ticket_number(&second), ticket_number(&first));
    assert!(reason(&second).contains(&format!("duplicate of ticket {} (sender_subject); added as a note", ticket_number(&first))), "{}", reason(&second));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), 3);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = 3 AND body = 'Still offline!'"), 1);
    // Another sender with the same subject is no duplicate.
    let other = process(&db, &plain(), &Mail::new("bernd@acme.example", "Printer offline", "Ours too.\n"));
    assert_eq!(other.outcome, Verdict::Created);
}

#[test]
fn duplicate_action_discard_drops_the_second_message() {
    let db = TestDb::directory();
    setting(&db, "duplicate_action", "discard");
    let first = process(&db, &plain(), &Mail::new("alice@example.com", "Printer offline", "x\n"));
    let second = process(&db, &plain(), &Mail::new("alice@example.com", "RE: Printer offline", "y\n"));
    assert_eq!(second.outcome, Verdict::Discarded, "{second:?}");
    assert_eq!(reason(&second), format!("duplicate of ticket {} (sender_subject); discarded", ticket_number(&first)));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), 3);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE outcome = 'discarded' AND object_id IS NULL"), 1);
}

#[test]
fn duplicate_action_link_makes_a_linked_ticket() {
    let db = TestDb::directory();
    setting(&db, "duplicate_action", "link");
    let first = process(&db, &plain(), &Mail::new("alice@example.com", "Printer offline", "x\n"));
    let second = process(&db, &plain(), &Mail::new("alice@example.com", "Printer offline", "y\n"));
    assert_eq!(second.outcome, Verdict::Created, "{second:?}");
    assert_ne!(ticket_number(&second), ticket_number(&first));
    assert!(reason(&second).contains(&format!("duplicate of ticket {} (sender_subject); linked", ticket_number(&first))), "{}", reason(&second));
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_links WHERE ticket_id = 4 AND linked_ticket_id = 3 AND kind = 'duplicate'"), 1);
}

#[test]
fn the_duplicate_window_and_completed_tickets_end_duplicate_detection() {
    let db = TestDb::directory();
    let first = process(&db, &plain(), &Mail::new("alice@example.com", "Printer offline", "x\n"));
    sql(&db, "UPDATE tickets SET status_id = 5 WHERE id = 3;");
    let again = process(&db, &plain(), &Mail::new("alice@example.com", "Printer offline", "y\n"));
    assert_eq!(again.outcome, Verdict::Created, "a completed ticket is no duplicate target: {again:?}");
    assert_ne!(ticket_number(&again), ticket_number(&first));
    // Older than the window (60 minutes): no duplicate either.
    let db = TestDb::directory();
    process(&db, &plain(), &Mail::new("alice@example.com", "Scanner offline", "x\n"));
    sql(&db, "UPDATE tickets SET created_at = '2026-11-27 08:59:00' WHERE id = 3;");
    assert_eq!(process(&db, &plain(), &Mail::new("alice@example.com", "Scanner offline", "y\n")).outcome, Verdict::Created);
}

fn alert(subject: &str, alert_id: &str) -> Mail {
    // The closing paragraph holds only known keys: a structured alert block.
    Mail::new("monitor@acme.example", subject, &format!("Disk C: on SRV01 is almost full.\n\ncompany=Acme GmbH\nalertid={alert_id}\n"))
}

#[test]
fn an_alert_id_again_becomes_a_note_until_the_ticket_is_completed() {
    let db = TestDb::directory();
    let first = process(&db, &plain(), &alert("Disk C: 91% full", "srv01-disk-c"));
    assert_eq!(first.outcome, Verdict::Created, "{first:?}");
    assert_eq!(first.sender.as_ref().unwrap().company.as_deref(), Some("Acme GmbH"));
    assert_eq!(first.description.as_deref(), Some("Disk C: on SRV01 is almost full."), "the alert block is not part of the description");
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 3 AND alert_id = 'srv01-disk-c' AND company_id = 2"), 1);
    // Another subject, the same alert: a note on the open ticket of the same company.
    let second = process(&db, &plain(), &alert("Disk C: 95% full", "srv01-disk-c"));
    assert_eq!((second.outcome, ticket_number(&second)), (Verdict::NoteAdded, ticket_number(&first)), "{second:?}");
    assert!(reason(&second).contains("(alert_id); added as a note"), "{}", reason(&second));
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = 3"), 1);
    // A different alert id is another ticket.
    assert_eq!(process(&db, &plain(), &alert("Disk D: 91% full", "srv01-disk-d")).outcome, Verdict::Created);
    // Once the ticket is completed, a repeat makes a new ticket.
    sql(&db, "UPDATE tickets SET status_id = 5 WHERE id = 3;");
    let third = process(&db, &plain(), &alert("Disk C: 99% full", "srv01-disk-c"));
    assert_eq!(third.outcome, Verdict::Created, "{third:?}");
    assert_ne!(ticket_number(&third), ticket_number(&first));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE alert_id = 'srv01-disk-c'"), 2);
    // A paragraph with an unknown key is no alert block: it stays text, and nothing is deduplicated.
    let m = Mail::new("monitor@acme.example", "Disk E: 91% full", "Disk E: full.\n\nhost=SRV01\nalertid=srv01-disk-e\n");
    let o = process(&db, &plain(), &m);
    assert!(o.description.as_deref().unwrap().ends_with("alertid=srv01-disk-e"), "{o:?}");
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE alert_id = 'srv01-disk-e'"), 0);
}

#[test]
fn an_alert_id_of_another_company_is_no_duplicate() {
    let db = TestDb::directory();
    let acme = process(&db, &plain(), &alert("Disk C: 91% full", "disk-c"));
    let other = process(&db, &plain(), &Mail::new("monitor@example.com", "Disk C: 91% full", "Disk C: full.\n\nalertid=disk-c\n"));
    assert_eq!(other.outcome, Verdict::Created, "{other:?}");
    assert_ne!(ticket_number(&other), ticket_number(&acme));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE alert_id = 'disk-c' AND company_id IN (1, 2)"), 2);
}

/// Ticket 3 (Acme) and ticket 4 (Example Corp, newer) share an alert id; a repeat from Acme
/// belongs to ticket 3.
#[test]

fn an_alert_id_finds_the_ticket_of_the_same_company_among_several() {
    let db = TestDb::directory();
    let acme = process(&db, &plain(), &alert("Disk C: 91% full", "disk-c"));
    process(&db, &plain(), &Mail::new("monitor@example.com", "Disk C: 91% full", "Disk C: full.\n\nalertid=disk-c\n"));
    let repeat = process(&db, &plain(), &alert("Disk C: 97% full", "disk-c"));
    assert_eq!((repeat.outcome, ticket_number(&repeat)), (Verdict::NoteAdded, ticket_number(&acme)), "{repeat:?}");
}

// ------------------------------------------------------------------------------------------
// Loop guard
// ------------------------------------------------------------------------------------------

#[test]
fn the_third_message_with_the_same_subject_in_five_minutes_is_ignored() {
    let db = TestDb::directory();
    setting(&db, "duplicate_criteria", "none");
    let mk = || Mail::new("alice@example.com", "Automatic reply: Printer", "I am out of office.\n");
    assert_eq!(process(&db, &plain(), &mk()).outcome, Verdict::Created);
    assert_eq!(process(&db, &plain(), &mk()).outcome, Verdict::Created);
    let third = process(&db, &plain(), &mk());
    assert_eq!(third.outcome, Verdict::Ignored, "{third:?}");
    assert_eq!(reason(&third), "loop guard: 2 messages from alice@example.com with this subject in the last 5 minutes (limit 2)");
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), 4);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE outcome = 'ignored' AND reason LIKE 'loop guard:%'"), 1);
    // A reply prefix does not make it another subject.
    let fourth = process(&db, &plain(), &Mail::new("alice@example.com", "RE: Automatic reply: Printer", "again\n"));
    assert_eq!(fourth.outcome, Verdict::Ignored);
    assert!(reason(&fourth).starts_with("loop guard: 3 messages"), "{}", reason(&fourth));
    // Another subject, or another sender, is not held back.
    assert_eq!(process(&db, &plain(), &Mail::new("alice@example.com", "Something else", "x\n")).outcome, Verdict::Created);
    assert_eq!(process(&db, &plain(), &Mail::new("bernd@acme.example", "Automatic reply: Printer", "x\n")).outcome, Verdict::Created);
}

#[test]
fn loop_action_reject_and_discard() {
    let db = TestDb::directory();
    setting(&db, "duplicate_criteria", "none");
    setting(&db, "loop_action", "reject");
    let mk = || Mail::new("alice@example.com", "Ping", "x\n");
    process(&db, &plain(), &mk());
    process(&db, &plain(), &mk());
    let third = process(&db, &plain(), &mk());
    assert_eq!((third.outcome, third.failure), (Verdict::Rejected, Some(Failure::Loop)), "{third:?}");
    assert!(reason(&third).starts_with("loop guard: 2 messages from alice@example.com"), "{}", reason(&third));
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages"), 2, "rejections are not recorded");

    let db = TestDb::directory();
    sql(&db, "INSERT INTO settings (key, value) VALUES ('duplicate_criteria', 'none'), ('loop_action', 'discard'), ('loop_max', '1');");
    assert_eq!(process(&db, &plain(), &mk()).outcome, Verdict::Created);
    let second = process(&db, &plain(), &mk());
    assert_eq!(second.outcome, Verdict::Discarded, "{second:?}");
    assert!(reason(&second).contains("(limit 1)"), "{}", reason(&second));
    // loop_max = 0 turns the guard off.
    setting(&db, "loop_max", "0");
    for _ in 0..3 {
        assert_eq!(process(&db, &plain(), &mk()).outcome, Verdict::Created);
    }
}

// ------------------------------------------------------------------------------------------
// Cross-company guard
// ------------------------------------------------------------------------------------------

const OUTSIDER_REPLY: &str = "Re: [T20261120.0001] VPN drops every hour";

#[test]
fn an_outsider_writing_to_a_ticket_by_number_gets_an_unverified_internal_note() {
    let db = TestDb::directory();
    let o = process(&db, &plain(), &Mail::new("Bernd Acme <bernd@acme.example>", OUTSIDER_REPLY, "Any news?\n"));
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    assert_eq!(ticket_number(&o), "T20261120.0001");
    assert_eq!(reason(&o), "sender is not a contact of the object's company: note marked unverified (internal)");
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = 1 AND unverified = TRUE AND visibility = 'internal' AND author_contact_id = 2"), 1);
    // A contact of the ticket's company and staff are verified.
    process(&db, &plain(), &Mail::new("alice@example.com", OUTSIDER_REPLY, "Thanks\n"));
    process(&db, &staff(), &Mail::new(TINA, OUTSIDER_REPLY, "Working on it\n"));
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = 1 AND unverified = FALSE AND visibility = 'all'"), 2);
    // Project notes are guarded the same way.
    let o = process(&db, &plain(), &Mail::new("bernd@acme.example", "P20261120.0001", "hi\n"));
    assert_eq!(o.outcome, Verdict::NoteAdded);
    assert_eq!(db.count("SELECT count(*) AS n FROM project_notes WHERE unverified = TRUE AND visibility = 'internal'"), 1);
}

#[test]
fn an_outsider_reply_threaded_by_references_is_trusted() {
    let db = TestDb::directory();
    let m = Mail::new("bernd@acme.example", "Re: VPN drops every hour", "We see it too.\n").header("In-Reply-To: <vpn-original@example.com>");
    let o = process(&db, &plain(), &m);
    assert_eq!((o.outcome, ticket_number(&o)), (Verdict::NoteAdded, "T20261120.0001".to_string()), "{o:?}");
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = 1 AND unverified = FALSE"), 1);
}

#[test]
fn cross_company_new_ticket_and_reject() {
    let db = TestDb::directory();
    setting(&db, "cross_company", "new_ticket");
    let o = process(&db, &plain(), &Mail::new("bernd@acme.example", OUTSIDER_REPLY, "Any news?\n"));
    assert_eq!(o.outcome, Verdict::Created, "{o:?}");
    assert_ne!(ticket_number(&o), "T20261120.0001");
    assert!(reason(&o).contains("bernd@acme.example names T20261120.0001 but is not one of its company's contacts; a new ticket was made"), "{}", reason(&o));
    let s = o.sender.unwrap();
    assert_eq!((s.kind, s.company.as_deref()), (SenderKind::Contact, Some("Acme GmbH")));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 3 AND company_id = 2 AND contact_id = 2"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes"), 0);

    let db = TestDb::directory();
    setting(&db, "cross_company", "reject");
    let o = process(&db, &plain(), &Mail::new("bernd@acme.example", OUTSIDER_REPLY, "Any news?\n"));
    assert_eq!((o.outcome, o.failure), (Verdict::Rejected, Some(Failure::CrossCompany)), "{o:?}");
    assert_eq!(reason(&o), "bernd@acme.example is not a contact of the company of T20261120.0001; only its contacts and staff may write to it");
    nothing_written(&db);
    // Its own contacts are not affected.
    assert_eq!(process(&db, &plain(), &Mail::new("alice@example.com", OUTSIDER_REPLY, "ok\n")).outcome, Verdict::NoteAdded);
}

// ------------------------------------------------------------------------------------------
// Replies to completed tickets (T20261120.0002 of Acme is complete)
// ------------------------------------------------------------------------------------------

fn completed_reply() -> Mail {
    Mail::new("Bernd Acme <bernd@acme.example>", "Re: [T20261120.0002] Printer jam", "It jams again.\n")
}

#[test]
fn a_reply_to_a_completed_ticket_reopens_it() {
    let db = TestDb::directory();
    let o = process(&db, &plain(), &completed_reply());
    assert_eq!((o.outcome, ticket_number(&o)), (Verdict::NoteAdded, "T20261120.0002".to_string()), "{o:?}");
    assert_eq!(reason(&o), "ticket T20261120.0002 was complete and is reopened (New)");
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 2 AND status_id = 1 AND updated_at > '2026-11-27'"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = 2 AND body = 'It jams again.'"), 1);

    // The mailbox's reopen status; threading by References counts the same.
    let db = TestDb::directory();
    mailbox_set(&db, SUPPORT, MailboxSpec { reopen_status: Some("In Progress".into()), ..Default::default() });
    let m = Mail::new("bernd@acme.example", "Re: Printer jam", "again\n").header("References: <printer-original@acme.example>");
    let o = process(&db, &plain(), &m);
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    assert!(reason(&o).contains("reopened (In Progress)"), "{}", reason(&o));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 2 AND status_id = 2"), 1);
}

#[test]
fn completed_ticket_note_and_new() {
    let db = TestDb::directory();
    mailbox_set(&db, SUPPORT, MailboxSpec { completed_ticket: Some("note".into()), ..Default::default() });
    let o = process(&db, &plain(), &completed_reply());
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 2 AND status_id = 5"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = 2"), 1);

    let db = TestDb::directory();
    mailbox_set(&db, SUPPORT, MailboxSpec { completed_ticket: Some("new".into()), ..Default::default() });
    let o = process(&db, &plain(), &completed_reply());
    assert_eq!(o.outcome, Verdict::Created, "{o:?}");
    assert_ne!(ticket_number(&o), "T20261120.0002");
    assert_eq!(reason(&o), "ticket T20261120.0002 is complete; a new ticket linked to it was made");
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_links WHERE ticket_id = 3 AND linked_ticket_id = 2 AND kind = 'follow_up'"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 3 AND company_id = 2 AND contact_id = 2 AND status_id = 1"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 2 AND status_id = 5"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes"), 0);
}

// ------------------------------------------------------------------------------------------
// Contacts: CC, and creating unknown ones
// ------------------------------------------------------------------------------------------

#[test]
fn cc_contacts_become_ticket_contacts() {
    let db = TestDb::directory();
    let m = Mail::new("alice@example.com", "Shared drive gone", "x\n")
        .cc("Erik <erik@example.com>, Bernd <bernd@acme.example>, carol@example.com, alerts@msp.example, nobody@nowhere.example, ALICE@example.com");
    let o = process(&db, &plain(), &m);
    assert_eq!(o.outcome, Verdict::Created, "{o:?}");
    // Erik is an active contact of the ticket's company. Bernd belongs to another company (the
    // ticket would be shown to him), Carol is inactive, alerts@ is our mailbox, alice the sender.
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_contacts WHERE ticket_id = 3"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_contacts WHERE ticket_id = 3 AND contact_id = 5"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM contacts"), 5, "no contact is created without create_contacts");
    // cc_contacts = no turns it off.
    mailbox_set(&db, SUPPORT, MailboxSpec { cc_contacts: Some(false), ..Default::default() });
    let m = Mail::new("alice@example.com", "Shared drive gone again", "x\n").cc("erik@example.com");
    process(&db, &plain(), &m);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_contacts"), 1);
}

#[test]
fn create_contacts_adds_unknown_senders_and_ccs() {
    let db = TestDb::directory();
    mailbox_set(&db, SUPPORT, MailboxSpec { create_contacts: Some(true), ..Default::default() });
    let m = Mail::new("Nina New <nina.new@example.com>", "My laptop", "x\n").cc("Bernd <bernd@acme.example>, ole@example.com, Tina <tina@msp.example>, erik@example.com");
    let o = process(&db, &plain(), &m);
    assert_eq!(o.outcome, Verdict::Created, "{o:?}");
    assert!(reason(&o).contains("nina.new@example.com was added as a contact of Example Corp"), "{}", reason(&o));
    assert_eq!(db.count("SELECT count(*) AS n FROM contacts WHERE company_id = 1 AND email1 = 'nina.new@example.com' AND name = 'Nina New' AND active = TRUE"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM contacts WHERE company_id = 1 AND email1 = 'ole@example.com'"), 1);
    let nina = db.count("SELECT id AS n FROM contacts WHERE email1 = 'nina.new@example.com'");
    let ole = db.count("SELECT id AS n FROM contacts WHERE email1 = 'ole@example.com'");
    assert_eq!(db.count(&format!("SELECT count(*) AS n FROM tickets WHERE id = 3 AND company_id = 1 AND contact_id = {nina}")), 1);
    // Ole (new) and Erik (known) of her company are ticket contacts; Bernd of another company
    // is not, and Tina (staff) never becomes a contact.
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_contacts WHERE ticket_id = 3"), 2);
    assert_eq!(db.count(&format!("SELECT count(*) AS n FROM ticket_contacts WHERE ticket_id = 3 AND contact_id IN (5, {ole})")), 2);
    assert_eq!(db.count("SELECT count(*) AS n FROM contacts WHERE email1 = 'tina@msp.example'"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM contacts"), 7);
    // The next mail from her is from a known contact.
    let o = process(&db, &plain(), &Mail::new("nina.new@example.com", "My laptop again", "x\n"));
    assert_eq!(o.sender.unwrap().kind, SenderKind::Contact);
    assert_eq!(db.count("SELECT count(*) AS n FROM contacts WHERE lower(email1) = 'nina.new@example.com'"), 1);

    // A sender of a public domain becomes a contact of the fallback company.
    let o = process(&db, &plain(), &Mail::new("Gus <gus@gmail.com>", "Hello", "x\n"));
    assert_eq!(o.sender.as_ref().unwrap().company.as_deref(), Some("Fallback Inc"));
    assert_eq!(db.count("SELECT count(*) AS n FROM contacts WHERE company_id = 3 AND email1 = 'gus@gmail.com' AND name = 'Gus'"), 1);
    // Resources never become contacts.
    process(&db, &plain(), &Mail::new(TINA, "Note to self", "x\n"));
    assert_eq!(db.count("SELECT count(*) AS n FROM contacts WHERE email1 LIKE '%msp.example'"), 0);
}

#[test]

fn an_unknown_cc_becomes_a_contact_only_of_the_tickets_company() {
    let db = TestDb::directory();
    mailbox_set(&db, SUPPORT, MailboxSpec { create_contacts: Some(true), ..Default::default() });
    // rep@acme.example belongs to Acme by its domain, not to Example Corp's ticket: neither made
    // a contact there nor added (a contact of another company would see the ticket).
    process(&db, &plain(), &Mail::new("alice@example.com", "Supplier issue", "x\n").cc("rep@acme.example"));
    assert_eq!(db.count("SELECT count(*) AS n FROM contacts WHERE email1 = 'rep@acme.example'"), 0);
    // A colleague at the ticket company's own domain becomes its contact and is added.
    process(&db, &plain(), &Mail::new("alice@example.com", "Another issue", "x\n").cc("new.colleague@example.com"));
    assert_eq!(db.count("SELECT count(*) AS n FROM contacts WHERE email1 = 'new.colleague@example.com' AND company_id = 1"), 1);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM ticket_contacts tc JOIN contacts c ON c.id = tc.contact_id WHERE c.email1 = 'new.colleague@example.com'"),
        1
    );
}

// ------------------------------------------------------------------------------------------
// Only when in To
// ------------------------------------------------------------------------------------------

#[test]
fn a_mailbox_only_in_cc_makes_no_ticket_when_it_wants_to_be_in_to() {
    let db = TestDb::directory();
    mailbox_set(&db, SUPPORT, MailboxSpec { only_when_to: Some(true), ..Default::default() });
    let o = process(&db, &plain(), &Mail::new("alice@example.com", "FYI: new colleague", "x\n").to("bob@example.com").cc(SUPPORT));
    assert_eq!(o.outcome, Verdict::Ignored, "{o:?}");
    assert_eq!(reason(&o), "mailbox support@msp.example was only in Cc; it makes tickets only when it is in To");
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), 2);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE outcome = 'ignored'"), 1);
    // In To it converts; only in Cc with a ticket number it adds the note (cc_only = note).
    assert_eq!(process(&db, &plain(), &Mail::new("alice@example.com", "FYI: another", "x\n")).outcome, Verdict::Created);
    let o = process(&db, &plain(), &Mail::new("alice@example.com", "Re: [T20261120.0001] VPN", "x\n").to("bob@example.com").cc(SUPPORT));
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    mailbox_set(&db, SUPPORT, MailboxSpec { cc_only: Some("ignore".into()), ..Default::default() });
    let o = process(&db, &plain(), &Mail::new("alice@example.com", "Re: [T20261120.0001] VPN (2)", "x\n").to("bob@example.com").cc(SUPPORT));
    assert_eq!(o.outcome, Verdict::Ignored, "{o:?}");
}

// ------------------------------------------------------------------------------------------
// The staff forward marker
// ------------------------------------------------------------------------------------------

const FORWARD_BODY: &str = "#fwd\n\nPlease look into this.\n\n---------- Forwarded message ---------\nFrom: Bernd Acme <bernd@acme.example>\nDate: Fri, 27 Nov 2026 at 09:12\nSubject: Printer broken\nTo: Tina Tech <tina@msp.example>\n\nOur printer on floor 2 is broken.\n";

#[test]
fn a_staff_forward_with_the_marker_belongs_to_the_original_sender() {
    let db = TestDb::directory();
    let o = process(&db, &staff(), &Mail::new(TINA, "Fwd: Printer broken", FORWARD_BODY));
    assert_eq!(o.outcome, Verdict::Created, "{o:?}");
    let s = o.sender.clone().unwrap();
    assert_eq!((s.address.as_deref(), s.kind, s.company.as_deref()), (Some("bernd@acme.example"), SenderKind::Contact, Some("Acme GmbH")));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 3 AND company_id = 2 AND contact_id = 2"), 1);
    let d = o.description.unwrap();
    assert!(!d.contains("#fwd") && d.starts_with("Please look into this.") && d.contains("Our printer on floor 2 is broken."), "{d:?}");
    // Without the marker it is Tina's own ticket.
    let o = process(&db, &staff(), &Mail::new(TINA, "Fwd: Printer broken (2)", &FORWARD_BODY.replace("#fwd\n", "")));
    assert_eq!(o.sender.unwrap().kind, SenderKind::Resource);
    // From someone who is not staff the marker means nothing.
    let o = process(&db, &plain(), &Mail::new("alice@example.com", "Fwd: Printer broken", FORWARD_BODY));
    let s = o.sender.unwrap();
    assert_eq!((s.address.as_deref(), s.company.as_deref()), (Some("alice@example.com"), Some("Example Corp")));
    // An unknown original sender of a known domain goes to that company.
    let o = process(&db, &staff(), &Mail::new(TINA, "Fwd: Scanner", &FORWARD_BODY.replace("bernd@acme.example", "new.person@acme.example")));
    let s = o.sender.unwrap();
    assert_eq!((s.kind, s.company.as_deref()), (SenderKind::CompanyDomain, Some("Acme GmbH")));
}

// ------------------------------------------------------------------------------------------
// Excluded senders
// ------------------------------------------------------------------------------------------

#[test]
fn excluded_senders_are_rejected_discarded_or_ignored() {
    let db = TestDb::new(&(common::DIRECTORY_SQL.to_string()
        + "INSERT INTO excluded_senders (pattern, mailbox_id, action, note) VALUES
            ('spammer@example.com', NULL, 'reject', 'known spammer'),
            ('@Noise.Example', NULL, 'discard', ''),
            ('newsletter@example.com', 1, 'ignore', 'newsletters'),
            ('alice@example.com', 2, 'reject', 'alice writes to support');"));
    let o = process(&db, &plain(), &Mail::new("Spam <SPAMMER@example.com>", "Buy now", "x\n"));
    assert_eq!((o.outcome, o.failure), (Verdict::Rejected, Some(Failure::ExcludedSender)), "{o:?}");
    assert_eq!(reason(&o), "sender SPAMMER@example.com is excluded (spammer@example.com) for mailbox support@msp.example");
    let o = process(&db, &plain(), &Mail::new("bot@noise.example", "Weekly digest", "x\n"));
    assert_eq!(o.outcome, Verdict::Discarded, "{o:?}");
    assert!(reason(&o).contains("is excluded (@noise.example)"), "{}", reason(&o));
    let o = process(&db, &plain(), &Mail::new("newsletter@example.com", "Our news", "x\n"));
    assert_eq!(o.outcome, Verdict::Ignored, "{o:?}");
    // Per mailbox: alice is excluded only at alerts@, the newsletter only at support@.
    let o = process(&db, &envelope("", &[ALERTS]), &Mail::new("alice@example.com", "Disk full", "x\n").to(ALERTS));
    assert_eq!((o.outcome, o.failure), (Verdict::Rejected, Some(Failure::ExcludedSender)), "{o:?}");
    assert_eq!(process(&db, &plain(), &Mail::new("alice@example.com", "Disk full", "x\n")).outcome, Verdict::Created);
    let o = process(&db, &envelope("", &[ALERTS]), &Mail::new("newsletter@example.com", "Our news", "x\n").to(ALERTS));
    assert_eq!(o.outcome, Verdict::Created, "{o:?}");
    // Even a reply to an existing ticket from an excluded sender is not converted.
    let o = process(&db, &plain(), &Mail::new("spammer@example.com", "Re: [T20261120.0001] VPN", "x\n"));
    assert_eq!(o.outcome, Verdict::Rejected);

    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), 4);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE outcome = 'discarded'"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE outcome = 'ignored'"), 1);
}

// ------------------------------------------------------------------------------------------
// Parsing rules
// ------------------------------------------------------------------------------------------

#[test]
fn parsing_rules_set_ticket_fields_and_can_leave_mail_unconverted() {
    let db = TestDb::new(&(common::DIRECTORY_SQL.to_string()
        + "INSERT INTO parsing_rules (id, position, mailbox_id, field, pattern, set_queue, set_priority, set_status, set_issue_type, set_company, add_tag, ignore_message, stop) VALUES
            (1, 10, NULL, 'subject', '^\\[(triage|monitoring alert)\\]', '$1', 'Critical', NULL, NULL, NULL, 'Urgent', FALSE, FALSE),
            (2, 20, NULL, 'header:X-Autoreply', '^yes$', NULL, NULL, NULL, NULL, NULL, NULL, TRUE, FALSE),
            (3, 30, 1, 'from', '@partner\\.example$', NULL, NULL, 'Waiting Customer', 'Hardware', 'Acme GmbH', NULL, FALSE, TRUE),
            (4, 40, NULL, 'from', '@partner\\.example$', 'Triage', NULL, NULL, NULL, NULL, NULL, FALSE, FALSE),
            (5, 50, 2, 'subject', '.', NULL, 'Low', NULL, NULL, NULL, NULL, FALSE, FALSE);"));
    // The capture group names the queue; the tag comes from the rule.
    let o = process(&db, &plain(), &Mail::new("alice@example.com", "[Monitoring Alert] SRV01 down", "x\n"));
    assert_eq!(o.outcome, Verdict::Created, "{o:?}");
    assert_eq!(o.tags.first().map(String::as_str), Some("Urgent"));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 3 AND queue_id = 2 AND priority_id = 1 AND status_id = 1"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_tags WHERE ticket_id = 3 AND tag_id = 9 AND origin = 'rule'"), 1);
    let o = process(&db, &plain(), &Mail::new("alice@example.com", "[Triage] printer", "x\n"));
    assert_eq!(o.outcome, Verdict::Created);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 4 AND queue_id = 3 AND priority_id = 1"), 1);
    // A header rule leaves the message unconverted.
    let o = process(&db, &plain(), &Mail::new("alice@example.com", "Out of office", "x\n").header("X-Autoreply: yes"));
    assert_eq!(o.outcome, Verdict::Ignored, "{o:?}");
    assert_eq!(reason(&o), "parsing rule 2 says to leave such mail unconverted");
    // A sender rule names company, status and issue type, and stops the rules after it.
    let o = process(&db, &plain(), &Mail::new("someone@partner.example", "Delivery", "x\n"));
    assert_eq!(o.sender.unwrap().company.as_deref(), Some("Acme GmbH"));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 5 AND company_id = 2 AND status_id = 3 AND issue_type_id = 1 AND queue_id = 1"), 1);
    // Rule 5 is for alerts@ only.
    process(&db, &envelope("", &[ALERTS]), &Mail::new("alice@example.com", "Disk", "x\n").to(ALERTS));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 6 AND priority_id = 4"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE priority_id = 4"), 1);
}

// ------------------------------------------------------------------------------------------
// Structured alerts
// ------------------------------------------------------------------------------------------

#[test]
fn an_autotask_alert_block_names_company_contact_and_sub_issue() {
    let db = TestDb::directory();
    let body = "[PRTG] FW-ACME VPN tunnel down\n\nSensor: IPsec tunnel\nStatus: Down since 09:58\n\n<Autotask>\n<ID name=\"ates@msp.example\"/>\n<Customer name=\"Acme GmbH\"/>\n<Email name=\"bernd@acme.example\"/>\n<SubIssue name=\"VPN\"/>\n<AlertID source=\"PRTG\">fw-acme-ipsec</AlertID>\n</Autotask>\n";
    // The alerts mailbox refuses unknown senders: the block vouches for the company.
    let o = process(&db, &envelope("", &[ALERTS]), &Mail::new("prtg@monitoring.invalid", "FW-ACME VPN down", body).to(ALERTS));
    assert_eq!(o.outcome, Verdict::Created, "{o:?}");
    let s = o.sender.clone().unwrap();
    assert_eq!((s.kind, s.company.as_deref()), (SenderKind::CompanyDomain, Some("Acme GmbH")));
    let d = o.description.unwrap();
    assert_eq!(d, "[PRTG] FW-ACME VPN tunnel down\n\nSensor: IPsec tunnel\nStatus: Down since 09:58");
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 3 AND company_id = 2 AND contact_id = 2 AND issue_type_id = 3 AND sub_issue_type_id = 9 AND alert_id = 'fw-acme-ipsec' AND queue_id = 2 AND mailbox_id = 2"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE description LIKE '%Autotask%'"), 0);

    // An unknown sub-issue is reported, the rest still applies.
    let body2 = "Backup failed\n\n<Autotask><Customer name=\"Example Corp\"/><SubIssue name=\"Tape\"/></Autotask>";
    let o = process(&db, &plain(), &Mail::new("backup@monitoring.invalid", "Backup failed", body2));
    assert_eq!(o.outcome, Verdict::Created);
    assert!(reason(&o).contains("sub-issue \"Tape\" named by the alert does not exist"), "{}", reason(&o));
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 4 AND company_id = 1 AND sub_issue_type_id IS NULL AND description = 'Backup failed'"), 1);

    // A company that does not exist: the mailbox's own rules decide (alerts@ refuses).
    let body3 = "x\n\n<Autotask><Customer name=\"Nobody Ltd\"/></Autotask>";
    let o = process(&db, &plain(), &Mail::new("backup@monitoring.invalid", "Backup failed too", body3));
    assert!(reason(&o).contains("company \"Nobody Ltd\" named by the message is not an active company"), "{}", reason(&o));
    assert_eq!(o.sender.unwrap().company.as_deref(), Some("Fallback Inc"));
    let o = process(&db, &envelope("", &[ALERTS]), &Mail::new("backup@monitoring.invalid", "Backup failed too", body3).to(ALERTS));
    assert_eq!((o.outcome, o.failure), (Verdict::Rejected, Some(Failure::UnknownSender)));
}

// ------------------------------------------------------------------------------------------
// Reprocessing, raw retention, explain
// ------------------------------------------------------------------------------------------

fn message_id_of(db: &TestDb, outcome: &str) -> i64 {
    db.count(&format!("SELECT max(id) AS n FROM processed_messages WHERE outcome = '{outcome}'"))
}

#[test]
fn reprocess_converts_an_ignored_message_once_the_cause_is_gone() {
    let db = TestDb::directory();
    setting(&db, "duplicate_criteria", "none");
    let mk = || Mail::new("alice@example.com", "Ping", "x\n");
    process(&db, &plain(), &mk());
    process(&db, &plain(), &mk());
    let third = mk();
    assert_eq!(process(&db, &plain(), &third).outcome, Verdict::Ignored);
    let id = message_id_of(&db, "ignored");
    // The loop guard still holds it back.
    let again = db.engine().reprocess(id, false).unwrap();
    assert_eq!(again[0].outcome, Verdict::Ignored, "{again:?}");
    let id = message_id_of(&db, "ignored");
    // After the limit is raised it converts, and the record says so.
    setting(&db, "loop_max", "10");
    let out = db.engine().reprocess(id, false).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].outcome, Verdict::Created, "{out:?}");
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE outcome = 'ignored'"), 0);
    assert_eq!(db.count(&format!("SELECT count(*) AS n FROM processed_messages WHERE outcome = 'created' AND dedup_key = 'mid:{}'", third.id)), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), 5);
    let converted = message_id_of(&db, "created");
    // A converted message is refused without force, and says why.
    let err = db.engine().reprocess(converted, false).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ticketmilter::Error::Usage(_)), "{err:?}");
    assert!(msg.contains("was converted already (created, T2026") && msg.contains("--force"), "{msg}");
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), 5);
    // With force it makes a second object.
    let forced = db.engine().reprocess(converted, true).unwrap();
    assert_eq!(forced[0].outcome, Verdict::Created, "{forced:?}");
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), 6);
    // Unknown ids are usage errors.
    assert!(db.engine().reprocess(9999, false).unwrap_err().to_string().contains("no stored message 9999"));
}

#[test]

fn reprocess_keeps_what_the_envelope_said() {
    let db = TestDb::directory();
    // A parsing rule keeps the authenticated time entry back; once it is gone, reprocessing
    // judges the message as it arrived (authenticated, dated the day it came).
    sql(&db, "INSERT INTO parsing_rules (position, field, pattern, ignore_message, stop, active) VALUES (1, 'subject', 'VPN', TRUE, TRUE, TRUE);");
    assert_eq!(process(&db, &staff(), &Mail::new(TINA, "[T20261120.0001] VPN", "#T=1\nsecond\n")).outcome, Verdict::Ignored);
    sql(&db, "DELETE FROM parsing_rules;");
    let out = db.engine().reprocess(message_id_of(&db, "ignored"), false).unwrap();
    assert_eq!(out[0].outcome, Verdict::TimeEntryAdded, "{out:?}");
    assert_eq!(out[0].time.as_ref().unwrap().date, "2026-11-27");
}

#[test]
fn raw_text_is_purged_after_the_retention_but_the_record_stays() {
    let db = TestDb::directory();
    setting(&db, "raw_retention_days", "1");
    process(&db, &plain(), &Mail::new("alice@example.com", "Old one", "x\n"));
    process(&db, &plain(), &Mail::new("alice@example.com", "New one", "y\n"));
    let an_hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).format("%Y-%m-%d %H:%M:%S");
    sql(&db, &format!("UPDATE processed_messages SET received_at = '2020-01-01 00:00:00' WHERE id = 1;
              UPDATE processed_messages SET received_at = '{an_hour_ago}' WHERE id = 2;"));
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE raw IS NOT NULL"), 2);
    assert_eq!(db.engine().purge_raw().unwrap(), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages"), 2);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE id = 1 AND raw IS NULL AND outcome = 'created'"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE id = 2 AND raw IS NOT NULL"), 1);
    assert_eq!(db.engine().purge_raw().unwrap(), 0);
    // A purged message cannot be reprocessed, and the error says why.
    let err = db.engine().reprocess(1, true).unwrap_err().to_string();
    assert!(err.contains("no longer kept"), "{err}");
    // The same message again is still a duplicate: the record keeps processing exactly-once.
    // raw_retention_days = 0 keeps everything.
    setting(&db, "raw_retention_days", "0");
    sql(&db, "UPDATE processed_messages SET received_at = '2020-01-01 00:00:00';");
    assert_eq!(db.engine().purge_raw().unwrap(), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE raw IS NOT NULL"), 1);
}

#[test]
fn explain_traces_the_decision_and_writes_nothing() {
    let db = TestDb::directory();
    let m = Mail::new("alice@example.com", "Re: [T20261120.0001] VPN drops every hour", "Still dropping.\n");
    let out = db.engine().explain(plain(), m.bytes()).unwrap();
    assert_eq!(out.len(), 1);
    let (o, trace) = &out[0];
    assert_eq!(o.outcome, Verdict::NoteAdded);
    let all = trace.join("\n");
    assert!(trace.iter().any(|l| l == "subject names ticket T20261120.0001: it exists"), "{all}");
    assert!(trace.iter().any(|l| l == "sender alice@example.com: contact of Example Corp"), "{all}");
    assert!(trace.iter().any(|l| l.starts_with("mailbox support@msp.example")), "{all}");
    assert!(trace.iter().any(|l| l == "→ note on T20261120.0001"), "{all}");
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes"), 0);

    // A time entry: the authentication and the indicator line are named.
    let m = Mail::new(TINA, "K20261120.0001", "#T=45m #R=Engineer\nCabling.\n").header(AR_TRUSTED);
    let out = db.engine().explain(plain(), m.bytes()).unwrap();
    let (o, trace) = &out[0];
    assert_eq!(o.outcome, Verdict::TimeEntryAdded);
    let all = trace.join("\n");
    assert!(all.contains("sender authenticated: dkim=pass for msp.example from mx.msp.example"), "{all}");
    assert!(all.contains("first line holds indicators: \"#T=45m #R=Engineer\""), "{all}");
    assert!(all.contains("subject names task K20261120.0001: it exists"), "{all}");
    assert!(all.contains("→ time entry of 45 min (Engineer) on K20261120.0001"), "{all}");
    assert_eq!(db.count("SELECT count(*) AS n FROM time_entries"), 0);

    // Not ours.
    let out = db.engine().explain(envelope("", &["nobody@elsewhere.example"]), m.bytes()).unwrap();
    assert_eq!(out[0].0.outcome, Verdict::NotOurs);
}

#[test]

fn reprocess_that_ends_in_a_rejection_keeps_the_stored_message() {
    let db = TestDb::directory();
    let m = Mail::new("alice@example.com", "Salary", "secret\n").header("Sensitivity: Private");
    assert_eq!(process(&db, &plain(), &m).outcome, Verdict::Ignored);
    sql(&db, "INSERT INTO excluded_senders (pattern, action) VALUES ('alice@example.com', 'reject');");
    let err = db.engine().reprocess(1, false).unwrap_err().to_string();
    assert!(err.contains("would now be refused") && err.contains("stays stored"), "{err}");
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE raw IS NOT NULL"), 1, "the stored message must survive");
}

#[test]

fn a_forged_staff_forward_is_not_believed() {
    let db = TestDb::directory();
    // alerts@ refuses unknown senders; a forged From: tina with the marker gets past that.
    let o = process(&db, &envelope("", &[ALERTS]), &Mail::new(TINA, "Fwd: Printer broken", &FORWARD_BODY.replace("bernd@acme.example", "anyone@unknown.example")).to(ALERTS));
    assert_eq!((o.outcome, o.failure), (Verdict::Rejected, Some(Failure::UnknownSender)), "{o:?}");
}

#[test]
fn an_unverified_note_does_not_reopen_a_completed_ticket() {
    let db = TestDb::directory();
    // T20261120.0002 belongs to Acme and is complete; Alice is of Example Corp.
    let o = process(&db, &plain(), &Mail::new("alice@example.com", "Re: [T20261120.0002] Printer jam", "Ours jams too.\n"));
    assert_eq!(o.outcome, Verdict::NoteAdded, "{o:?}");
    assert_eq!(db.count("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = 2 AND unverified = TRUE AND visibility = 'internal'"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE id = 2 AND status_id = 5"), 1);
}
