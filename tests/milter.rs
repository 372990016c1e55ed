//! The milter in process: `serve` on a loopback (or unix) socket, driven by indymilter-test as a
//! fake MTA. Every answer the milter can give: created / note added / duplicate (accept with
//! header), ignored (accept, no header), unknown sender (reject, or only that recipient
//! removed), after-conversion remove and discard, the fast path before the body, the size
//! bound, database failures and timeouts, header rebuilding and the queue id macro.

mod common;

use std::ffi::CString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indymilter_test::{
    Actions, EomAction, MacroStage, ProtoOpts, Status, TestConnection, TestConnectionBuilder,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use common::{TestDb, mta};
use ticketmilter::Engine;
use ticketmilter::config::{MilterConfig, Policy};
use ticketmilter::milter::socket::{MilterListener, SocketSpec, UnixPerms, bind};
use ticketmilter::milter::{Shared, serve};
use ticketmilter::store::{self, AnyConnection};

const SUPPORT: &str = "support@msp.example";
const ALERTS: &str = "alerts@msp.example";
const NOFALLBACK: &str = "nofallback@msp.example";
const OUTSIDER: &str = "bob@elsewhere.example";
const ALICE: &str = "alice@example.com";
const UNKNOWN: &str = "noreply@monitor.unknown.example";

const TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Harness: a milter on a socket, a fake MTA, messages, answers.
// ---------------------------------------------------------------------------------------------

enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// `serve` on a socket of its own with a fresh test directory database.
struct Milter {
    db: TestDb,
    engine: Arc<Engine>,
    addr: Addr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Milter {
    async fn start(cfg: MilterConfig) -> Milter {
        Milter::start_on(TestDb::directory(), cfg, false).await
    }

    async fn start_on(db: TestDb, cfg: MilterConfig, unix: bool) -> Milter {
        let engine = Arc::new(db.engine());
        let shared = Shared::new(engine.clone(), cfg);
        let spec = if unix {
            SocketSpec::Unix(db.dir.path().join("milter.sock"))
        } else {
            // Port 0: the kernel picks a free port (the parser refuses 0, the binder does not).
            SocketSpec::Inet { host: "127.0.0.1".into(), port: 0, v6: false }
        };
        let listener = bind(&spec, &UnixPerms { mode: 0o600, group: None }).await.expect("bind");
        let addr = match &listener {
            MilterListener::Tcp(l) => Addr::Tcp(l.local_addr().unwrap()),
            MilterListener::Unix(_, p) => Addr::Unix(p.clone()),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, shared, async move {
            let _ = rx.await;
        }));
        Milter { db, engine, addr, stop: Some(tx), task: Some(task) }
    }

    /// A negotiated connection (all actions and options offered) after the connect step.
    async fn conn(&self) -> TestConnection {
        self.conn_with(TestConnection::configure()).await
    }

    async fn conn_with(&self, b: TestConnectionBuilder) -> TestConnection {
        let b = b.read_timeout(TIMEOUT).write_timeout(TIMEOUT);
        let mut c = match &self.addr {
            Addr::Tcp(a) => b.open_tcp(*a).await.expect("negotiate"),
            Addr::Unix(p) => b.open_unix(p).await.expect("negotiate"),
        };
        let st = mta::connect(&mut c, "client.example", [192, 0, 2, 10]).await.expect("connect");
        assert_eq!(st, Status::Continue);
        c
    }

    /// Change the SQL configuration of a mailbox and make the engine see it.
    fn set_after_conversion(&self, mailbox: &str, value: &str) {
        let spec = store::mailboxes::MailboxSpec { after_conversion: Some(value.into()), ..Default::default() };
        self.db.store.write(|c| store::mailboxes::set(c, mailbox, &spec)).expect("mailbox set");
        self.engine.reload().expect("reload");
    }

    fn sql(&self, sql: &str) {
        self.db.exec(sql);
    }

    fn tickets(&self) -> i64 {
        self.db.count("SELECT count(*) AS n FROM tickets")
    }

    /// Stop accepting and check that `serve` returns cleanly and promptly.
    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        let r = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("serve did not stop within 10 s");
        r.expect("serve panicked").expect("serve failed");
        if let Addr::Unix(p) = &self.addr {
            assert!(!p.exists(), "unix socket {} left behind", p.display());
        }
    }
}

impl Drop for Milter {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Where the queue id macro is sent.
#[derive(Clone, Copy)]
enum Qid {
    None,
    AtMail(&'static str),
    AtEom(&'static str),
}

/// A message as an MTA hands it over: envelope, header fields (value as the MTA sends it,
/// without the space after the colon), body.
#[derive(Clone)]
struct Mail {
    from: String,
    rcpts: Vec<String>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    qid: Qid,
    /// Send the DATA step (an old MTA or NO_DATA skips it).
    data: bool,
}

impl Mail {
    fn new(from: &str, rcpts: &[&str], subject: &str, message_id: &str) -> Mail {
        Mail {
            from: format!("<{from}>"),
            rcpts: rcpts.iter().map(|r| format!("<{r}>")).collect(),
            headers: vec![
                ("From".into(), from.as_bytes().to_vec()),
                ("To".into(), rcpts.join(", ").into_bytes()),
                ("Subject".into(), subject.as_bytes().to_vec()),
                ("Date".into(), b"Fri, 27 Nov 2026 10:00:00 +0000".to_vec()),
                ("Message-ID".into(), format!("<{message_id}>").into_bytes()),
            ],
            body: b"Hello,\r\nplease help.\r\n".to_vec(),
            qid: Qid::None,
            data: true,
        }
    }

    fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Mail {
        self.headers.push((name.into(), value.as_ref().to_vec()));
        self
    }

    fn body(mut self, body: impl AsRef<[u8]>) -> Mail {
        self.body = body.as_ref().to_vec();
        self
    }

    fn qid(mut self, q: Qid) -> Mail {
        self.qid = q;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Data,
    Header,
    Eoh,
    Body,
    Eom,
}

/// The milter's answer to a message and the step it came at.
#[derive(Debug)]
struct Answer {
    stage: Stage,
    status: Status,
    actions: Vec<EomAction>,
    /// Status of each body chunk call (only the last is not Continue).
    body_status: Option<Status>,
}

impl Answer {
    fn reply(&self) -> String {
        match &self.status {
            Status::Reject { message: Some(m) } | Status::Tempfail { message: Some(m) } => {
                m.to_string_lossy().into_owned()
            }
            other => format!("{other:?}"),
        }
    }

    /// Values of the X-Ticketmilter header fields added.
    /// X-Ticketmilter values as the MTA writes them (the space after the colon removed).
    fn ticket_headers(&self) -> Vec<String> {
        self.raw_ticket_headers().into_iter().map(|v| v.strip_prefix(' ').map(str::to_string).unwrap_or(v)).collect()
    }

    /// X-Ticketmilter values exactly as sent to the MTA.
    fn raw_ticket_headers(&self) -> Vec<String> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                EomAction::AddHeader { name, value } if name.to_bytes() == b"X-Ticketmilter" => {
                    Some(value.to_string_lossy().into_owned())
                }
                _ => None,
            })
            .collect()
    }

    fn deleted(&self) -> Vec<String> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                EomAction::DeleteRecipient { rcpt } => Some(rcpt.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    }

    fn quarantine(&self) -> Option<String> {
        self.actions.iter().find_map(|a| match a {
            EomAction::Quarantine { reason } => Some(reason.to_string_lossy().into_owned()),
            _ => None,
        })
    }

    /// The ticket number of the one X-Ticketmilter header (`<mailbox> <action> <number>`).
    fn number(&self, mailbox: &str, action: &str) -> String {
        let h = self.ticket_headers();
        assert_eq!(h.len(), 1, "{self:?}");
        let parts: Vec<&str> = h[0].split(' ').collect();
        assert_eq!(parts.len(), 3, "{h:?}");
        assert_eq!((parts[0], parts[1]), (mailbox, action), "{h:?}");
        assert!(parts[2].starts_with('T') && parts[2].len() == "T20261127.0001".len(), "{h:?}");
        parts[2].to_string()
    }
}

fn ok(s: Status) -> bool {
    matches!(s, Status::Continue | Status::Noreply)
}

/// Send one message the way an MTA does, stopping at the first answer that ends it.
async fn send(c: &mut TestConnection, m: &Mail) -> Answer {
    let done = |stage, status| Answer { stage, status, actions: Vec::new(), body_status: None };
    if let Qid::AtMail(q) = m.qid {
        c.macros(MacroStage::Mail, [("i", q)]).await.unwrap();
    }
    let st = mta::mail(c, &m.from).await.unwrap();
    assert_eq!(st, Status::Continue, "MAIL");
    for r in &m.rcpts {
        let st = mta::rcpt(c, r).await.unwrap();
        assert_eq!(st, Status::Continue, "RCPT {r}");
    }
    if m.data {
        let st = mta::data(c).await.unwrap();
        if !ok(st.clone()) {
            return done(Stage::Data, st);
        }
    }
    for (name, value) in &m.headers {
        let v = CString::new(value.clone()).expect("no NUL in header values");
        let st = c.header(name.as_str(), v).await.unwrap();
        if !ok(st.clone()) {
            return done(Stage::Header, st);
        }
    }
    let st = mta::eoh(c).await.unwrap();
    if !ok(st.clone()) {
        return done(Stage::Eoh, st);
    }
    let mut body_status = None;
    if !m.body.is_empty() {
        let st = c.body(m.body.clone()).await.unwrap();
        body_status = Some(st.clone());
        if !ok(st.clone()) && st != Status::Skip {
            return Answer { stage: Stage::Body, status: st, actions: Vec::new(), body_status };
        }
    }
    if let Qid::AtEom(q) = m.qid {
        c.macros(MacroStage::Eom, [("{i}", q)]).await.unwrap();
    }
    let (actions, status) = c.eom().await.unwrap();
    Answer { stage: Stage::Eom, status, actions: actions.actions, body_status }
}

/// One message on a fresh connection.
async fn send_one(m: &Milter, mail: &Mail) -> Answer {
    let mut c = m.conn().await;
    let a = send(&mut c, mail).await;
    c.close().await.unwrap();
    a
}

fn cfg() -> MilterConfig {
    MilterConfig::default()
}

fn today() -> String {
    chrono::Utc::now().format("%Y%m%d").to_string()
}

fn alerts_mail(rcpts: &[&str], id: &str) -> Mail {
    Mail::new(UNKNOWN, rcpts, "[ALERT] Disk C: on SRV-DC01 below 5%", id)
}

const ALERTS_REASON: &str = "sender noreply@monitor.unknown.example is not a known contact or resource, \
                             and mailbox alerts@msp.example does not take mail from unknown senders";

/// The stored raw message of a processed message.
fn stored_raw(db: &TestDb, dedup_key: &str) -> Vec<u8> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Raw {
        #[diesel(sql_type = diesel::sql_types::Binary)]
        raw: Vec<u8>,
    }
    let q = format!("SELECT raw FROM processed_messages WHERE dedup_key = '{dedup_key}'");
    let mut conn = db.store.conn().unwrap();
    match &mut *conn {
        AnyConnection::Sqlite(c) => diesel::sql_query(q).get_result::<Raw>(c).unwrap().raw,
        AnyConnection::Postgres(c) => diesel::sql_query(q).get_result::<Raw>(c).unwrap().raw,
    }
}

fn text(db: &TestDb, sql: &str) -> String {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct T {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }
    let mut conn = db.store.conn().unwrap();
    match &mut *conn {
        AnyConnection::Sqlite(c) => diesel::sql_query(sql).get_result::<T>(c).unwrap().t,
        AnyConnection::Postgres(c) => diesel::sql_query(sql).get_result::<T>(c).unwrap().t,
    }
}

// ---------------------------------------------------------------------------------------------
// Converted: accept with a header.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_accepts_with_header_naming_the_ticket_and_records_the_queue_id() {
    let m = Milter::start(cfg()).await;
    let mut c = m.conn().await;
    // What the milter asked for: the actions it uses, the queue id macro.
    assert!(c.negotiated_actions().contains(Actions::ADD_HEADER | Actions::DELETE_RCPT), "{:?}", c.negotiated_actions());
    // Quarantine is not needed with these policies, but asked for when offered, so that a
    // reload switching a policy to quarantine works on connections already open.
    assert!(c.negotiated_actions().contains(Actions::QUARANTINE), "{:?}", c.negotiated_actions());
    let macros = c.requested_macros();
    for stage in [MacroStage::Mail, MacroStage::Eom] {
        let names = macros.get(&stage).map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
        assert!(names.split(' ').any(|n| n == "i" || n == "{i}"), "{stage:?}: {names:?}");
    }

    let mail = Mail::new(ALICE, &[SUPPORT], "Drucker im 2. OG druckt leer", "created-1@example.com")
        .qid(Qid::AtMail("4Xq1Kc0abcz"));
    let a = send(&mut c, &mail).await;
    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Accept), "{a:?}");
    let number = a.number(SUPPORT, "created");
    assert_eq!(number, format!("T{}.0001", today()));
    assert!(a.deleted().is_empty() && a.quarantine().is_none(), "{a:?}");
    assert_eq!(
        m.db.count(&format!(
            "SELECT count(*) AS n FROM tickets WHERE number = '{number}' AND title = 'Drucker im 2. OG druckt leer' AND contact_id = 1"
        )),
        1
    );
    assert_eq!(
        m.db.count("SELECT count(*) AS n FROM processed_messages WHERE queue_id = '4Xq1Kc0abcz' AND outcome = 'created' AND envelope_from = 'alice@example.com' AND envelope_rcpt = 'support@msp.example'"),
        1
    );
    c.close().await.unwrap();
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_id_from_the_end_of_message_macro_and_none_without_it() {
    let m = Milter::start(cfg()).await;
    let mut c = m.conn().await;
    let a = send(&mut c, &Mail::new(ALICE, &[SUPPORT], "first", "qid-eom@example.com").qid(Qid::AtEom("EOMQID42"))).await;
    assert_eq!(a.status, Status::Accept, "{a:?}");
    assert_eq!(m.db.count("SELECT count(*) AS n FROM processed_messages WHERE dedup_key = 'mid:qid-eom@example.com' AND queue_id = 'EOMQID42'"), 1);
    // The next message on the same connection has no queue id: none is recorded (macros of
    // the previous message must not leak into it).
    let a = send(&mut c, &Mail::new(ALICE, &[SUPPORT], "second", "qid-none@example.com")).await;
    assert_eq!(a.status, Status::Accept, "{a:?}");
    assert_eq!(m.db.count("SELECT count(*) AS n FROM processed_messages WHERE dedup_key = 'mid:qid-none@example.com' AND queue_id IS NULL"), 1);
    c.close().await.unwrap();
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_number_in_the_subject_adds_a_note() {
    let m = Milter::start(cfg()).await;
    let before = m.tickets();
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT], "Re: [T20261120.0001] VPN drops every hour", "note-1@example.com")
        .body("Still happening.\r\n")).await;
    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Accept), "{a:?}");
    assert_eq!(a.ticket_headers(), vec![format!("{SUPPORT} note_added T20261120.0001")]);
    assert_eq!(m.tickets(), before, "no new ticket");
    assert_eq!(m.db.count("SELECT count(*) AS n FROM ticket_notes WHERE ticket_id = 1 AND body = 'Still happening.'"), 1);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_twice_is_accepted_as_duplicate_with_one_ticket() {
    let m = Milter::start(cfg()).await;
    let before = m.tickets();
    let mail = Mail::new(ALICE, &[SUPPORT], "VPN down", "dup-1@example.com");
    let mut c = m.conn().await;
    let first = send(&mut c, &mail).await;
    let number = first.number(SUPPORT, "created");
    // Again on the same connection, and once more on a new one (an MTA retry).
    let second = send(&mut c, &mail).await;
    c.close().await.unwrap();
    let third = send_one(&m, &mail).await;
    for a in [&second, &third] {
        assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Accept), "{a:?}");
        assert_eq!(a.ticket_headers(), vec![format!("{SUPPORT} duplicate {number}")]);
    }
    assert_eq!(m.tickets(), before + 1);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_mail_is_accepted_without_header_or_ticket() {
    let m = Milter::start(cfg()).await;
    let before = m.tickets();
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT], "Private: my salary statement", "private-1@example.com")
        .header("Sensitivity", "Private")).await;
    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Accept), "{a:?}");
    assert!(a.actions.is_empty(), "no header, no recipient change: {a:?}");
    assert_eq!(m.tickets(), before);
    assert_eq!(m.db.count("SELECT count(*) AS n FROM processed_messages WHERE outcome = 'ignored' AND dedup_key = 'mid:private-1@example.com'"), 1);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_add_header_nothing_is_added() {
    let m = Milter::start(MilterConfig { add_header: false, ..cfg() }).await;
    let mut c = m.conn().await;
    let a = send(&mut c, &Mail::new(ALICE, &[SUPPORT], "no header please", "nohdr@example.com")).await;
    assert_eq!(a.status, Status::Accept, "{a:?}");
    assert!(a.actions.is_empty(), "{a:?}");
    assert_eq!(m.db.count("SELECT count(*) AS n FROM tickets WHERE title = 'no header please'"), 1);
    c.close().await.unwrap();
    m.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Unknown sender at a mailbox that takes no mail from unknown senders.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sender_alone_at_alerts_is_rejected_with_the_reason() {
    let m = Milter::start(cfg()).await;
    let before = m.tickets();
    let a = send_one(&m, &alerts_mail(&[ALERTS], "alert-1@monitor.unknown.example")).await;
    assert_eq!(a.stage, Stage::Eom, "{a:?}");
    assert!(matches!(a.status, Status::Reject { .. }), "{a:?}");
    assert_eq!(a.reply(), format!("550 5.7.1 {ALERTS_REASON}"));
    assert!(a.actions.is_empty(), "{a:?}");
    assert_eq!(m.tickets(), before);
    // A rejected message is not recorded: the sender may be added and the mail sent again.
    assert_eq!(m.db.count("SELECT count(*) AS n FROM processed_messages"), 0);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sender_at_alerts_with_another_recipient_only_loses_the_alerts_copy() {
    let m = Milter::start(cfg()).await;
    let a = send_one(&m, &alerts_mail(&[ALERTS, OUTSIDER], "alert-2@monitor.unknown.example")).await;
    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Accept), "{a:?}");
    assert_eq!(a.deleted(), vec![format!("<{ALERTS}>")]);
    assert!(a.ticket_headers().is_empty(), "{a:?}");
    // With support@ (fallback company) beside it: support@ converts, alerts@ is removed.
    let a = send_one(&m, &alerts_mail(&[SUPPORT, ALERTS], "alert-3@monitor.unknown.example")).await;
    assert_eq!(a.status, Status::Accept, "{a:?}");
    a.number(SUPPORT, "created");
    assert_eq!(a.deleted(), vec![format!("<{ALERTS}>")]);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sender_follows_on_unknown_sender() {
    let cases: [(Policy, &str); 4] = [
        (Policy::Tempfail, "tempfail"),
        (Policy::Quarantine, "quarantine"),
        (Policy::Discard, "discard"),
        (Policy::Accept, "accept"),
    ];
    for (policy, name) in cases {
        let m = Milter::start(MilterConfig { on_unknown_sender: policy, ..cfg() }).await;
        let a = send_one(&m, &alerts_mail(&[ALERTS], &format!("alert-{name}@monitor.unknown.example"))).await;
        assert_eq!(a.stage, Stage::Eom, "{name}: {a:?}");
        match policy {
            Policy::Tempfail => assert_eq!(a.reply(), format!("450 4.7.1 {ALERTS_REASON}"), "{name}"),
            Policy::Quarantine => {
                assert_eq!(a.status, Status::Accept, "{name}: {a:?}");
                assert_eq!(a.quarantine().as_deref(), Some(ALERTS_REASON), "{name}");
            }
            Policy::Discard => assert_eq!(a.status, Status::Discard, "{name}: {a:?}"),
            _ => {
                assert_eq!(a.status, Status::Accept, "{name}: {a:?}");
                assert!(a.actions.is_empty(), "{name}: {a:?}");
            }
        }
        assert_eq!(m.db.count("SELECT count(*) AS n FROM tickets WHERE mailbox_id = 2"), 0, "{name}");
        m.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// After conversion: remove / discard the mailbox's copy.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_conversion_remove_deletes_only_the_mailbox_recipient() {
    let m = Milter::start(cfg()).await;
    m.set_after_conversion(SUPPORT, "remove");
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT, OUTSIDER], "remove me", "remove-1@example.com")).await;
    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Accept), "{a:?}");
    a.number(SUPPORT, "created");
    assert_eq!(a.deleted(), vec![format!("<{SUPPORT}>")]);
    // Alone, removing it leaves nobody to deliver to: discard.
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT], "remove me alone", "remove-2@example.com")).await;
    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Discard), "{a:?}");
    assert_eq!(m.db.count("SELECT count(*) AS n FROM tickets WHERE title LIKE 'remove me%'"), 2, "converted before discarding");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_conversion_discard_only_when_every_recipient_is_a_converted_mailbox() {
    let m = Milter::start(cfg()).await;
    m.set_after_conversion(SUPPORT, "discard");
    m.set_after_conversion(NOFALLBACK, "discard");
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT], "discard alone", "discard-1@example.com")).await;
    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Discard), "{a:?}");
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT, NOFALLBACK], "discard both", "discard-2@example.com")).await;
    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Discard), "{a:?}");
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT, OUTSIDER], "discard with bob", "discard-3@example.com")).await;
    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Accept), "{a:?}");
    a.number(SUPPORT, "created");
    assert!(a.deleted().is_empty(), "discard never deletes single recipients: {a:?}");
    // Private mail is not converted, so it is delivered.
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT], "private", "discard-4@example.com").header("Sensitivity", "private")).await;
    assert_eq!(a.status, Status::Accept, "{a:?}");
    assert_eq!(m.db.count("SELECT count(*) AS n FROM tickets WHERE title LIKE 'discard%'"), 4);
    m.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The fast path: no mailbox among the recipients.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_for_nobody_of_ours_is_accepted_at_the_first_header_before_the_body() {
    let m = Milter::start(cfg()).await;
    let mut c = m.conn().await;
    // The MTA may skip connect, DATA and end of header, and take MAIL and RCPT unanswered: the
    // milter asks it to.
    let skipped = ProtoOpts::NO_CONNECT | ProtoOpts::NO_DATA | ProtoOpts::NO_EOH | ProtoOpts::NOREPLY_MAIL | ProtoOpts::NOREPLY_RCPT;
    assert!(c.negotiated_opts().contains(skipped), "{:?}", c.negotiated_opts());
    // old@ is an inactive mailbox: not ours either. Upper case and +detail do not matter here.
    let mail = Mail::new(ALICE, &[OUTSIDER, "old@msp.example", "carol@example.com"], "not for us", "fast-1@example.com");
    let a = send(&mut c, &mail).await;
    assert_eq!((a.stage, &a.status), (Stage::Header, &Status::Accept), "accepted at the first header: {a:?}");
    // The connection goes on: the next message (for support@, in upper case with +detail) converts.
    let mail = Mail::new(ALICE, &["Support+urgent@MSP.example"], "after the fast path", "fast-2@example.com");
    let a = send(&mut c, &mail).await;
    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Accept), "{a:?}");
    a.number(SUPPORT, "created");
    c.close().await.unwrap();
    assert_eq!(m.db.count("SELECT count(*) AS n FROM processed_messages"), 1, "the first message left no trace");
    // The client address came with the `{client_addr}` macro, there being no connect step.
    assert_eq!(m.db.count("SELECT count(*) AS n FROM processed_messages WHERE client_addr = '192.0.2.10'"), 1);
    m.shutdown().await;
}

/// An MTA that cannot skip steps (nor take MAIL and RCPT unanswered) gets each one answered: the
/// fast path at DATA (or, without a DATA step, at end of header), the client address from the
/// connect step, the message rebuilt with the end-of-header step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mta_that_cannot_skip_steps_gets_the_fast_path_at_data_and_converts_alike() {
    let m = Milter::start(cfg()).await;
    let mut c = m.conn_with(TestConnection::configure().available_opts(mta::without_skips())).await;
    assert!(!c.negotiated_opts().intersects(ProtoOpts::NO_CONNECT | ProtoOpts::NO_DATA | ProtoOpts::NO_EOH | ProtoOpts::NOREPLY_MAIL | ProtoOpts::NOREPLY_RCPT));
    // MAIL and RCPT are answered.
    c.macros(MacroStage::Mail, [("i", "ANSWERED")]).await.unwrap();
    assert_eq!(c.mail(["<alice@example.com>"]).await.unwrap(), Status::Continue);
    assert_eq!(c.rcpt([format!("<{OUTSIDER}>")]).await.unwrap(), Status::Continue);
    c.abort().await.unwrap();
    let a = send(&mut c, &Mail::new(ALICE, &[OUTSIDER], "not for us", "fast-4@example.com")).await;
    assert_eq!((a.stage, &a.status), (Stage::Data, &Status::Accept), "accepted at DATA: {a:?}");
    let mut mail = Mail::new(ALICE, &[OUTSIDER], "no DATA step", "fast-3@example.com");
    mail.data = false;
    let a = send(&mut c, &mail).await;
    assert_eq!((a.stage, &a.status), (Stage::Header, &Status::Accept), "accepted at the first header: {a:?}");
    let a = send(&mut c, &Mail::new(ALICE, &[SUPPORT], "every step", "steps-1@example.com").body("line one\r\nline two\r\n")).await;
    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Accept), "{a:?}");
    a.number(SUPPORT, "created");
    c.close().await.unwrap();
    assert_eq!(m.db.count("SELECT count(*) AS n FROM processed_messages WHERE client_addr = '192.0.2.10'"), 1);
    let body = text(&m.db, "SELECT description AS t FROM tickets WHERE title = 'every step'");
    assert!(body.contains("line one") && body.contains("line two"), "{body:?}");
    m.shutdown().await;
}

/// With the end of header negotiated away, a message without a body still has its header
/// ended: it converts with an empty description.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_a_body_converts_without_an_end_of_header_step() {
    let m = Milter::start(cfg()).await;
    let mut c = m.conn().await;
    assert!(c.negotiated_opts().contains(ProtoOpts::NO_EOH));
    let a = send(&mut c, &Mail::new(ALICE, &[SUPPORT], "header only", "no-body@example.com").body("")).await;
    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Accept), "{a:?}");
    a.number(SUPPORT, "created");
    c.close().await.unwrap();
    assert_eq!(m.db.count("SELECT count(*) AS n FROM tickets WHERE title = 'header only'"), 1);
    m.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The size bound.
// ---------------------------------------------------------------------------------------------

const LIMIT: u64 = 4096;

fn big(n: usize) -> Vec<u8> {
    let line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n";
    line.iter().copied().cycle().take(n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_552_and_the_connection_goes_on() {
    let m = Milter::start(MilterConfig { max_message_size: LIMIT, ..cfg() }).await;
    let before = m.tickets();
    let mut c = m.conn().await;
    let a = send(&mut c, &Mail::new(ALICE, &[SUPPORT], "too big", "big-1@example.com").body(big(3 * LIMIT as usize))).await;
    assert_eq!(a.stage, Stage::Body, "{a:?}");
    assert!(a.reply().starts_with("552 5.3.4 ticketmilter: message too large for ticket conversion"), "{a:?}");
    // A body chunk larger than 64 KiB arrives in several pieces: the answer comes at the first
    // piece over the limit, the rest is not read.
    let a = send(&mut c, &Mail::new(ALICE, &[SUPPORT], "much too big", "big-2@example.com").body(big(300_000))).await;
    assert_eq!(a.stage, Stage::Body, "{a:?}");
    assert!(a.reply().starts_with("552 5.3.4 "), "{a:?}");
    // Just under the limit still converts, on the same connection.
    let a = send(&mut c, &Mail::new(ALICE, &[SUPPORT], "small", "small-1@example.com").body(big(1000))).await;
    assert_eq!(a.status, Status::Accept, "{a:?}");
    a.number(SUPPORT, "created");
    c.close().await.unwrap();
    assert_eq!(m.tickets(), before + 1);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_answers_follow_on_too_large() {
    for policy in [Policy::Accept, Policy::Tempfail, Policy::Discard, Policy::Quarantine] {
        let m = Milter::start(MilterConfig { max_message_size: LIMIT, on_too_large: policy, ..cfg() }).await;
        for skip_offered in [true, false] {
            let mut b = TestConnection::configure();
            if !skip_offered {
                b = b.available_opts(ProtoOpts::all() - ProtoOpts::SKIP);
            }
            let mut c = m.conn_with(b).await;
            let id = format!("big-{}-{skip_offered}@example.com", policy.as_str());
            let a = send(&mut c, &Mail::new(ALICE, &[SUPPORT], "too big", &id).body(big(4 * LIMIT as usize))).await;
            let what = format!("{} (skip offered: {skip_offered}): {a:?}", policy.as_str());
            match policy {
                Policy::Accept => assert_eq!((a.stage, &a.status), (Stage::Body, &Status::Accept), "{what}"),
                Policy::Discard => assert_eq!((a.stage, &a.status), (Stage::Body, &Status::Discard), "{what}"),
                Policy::Tempfail => {
                    assert_eq!(a.stage, Stage::Body, "{what}");
                    assert!(a.reply().starts_with("452 4.3.4 ticketmilter: message too large"), "{what}");
                }
                _ => {
                    // Quarantine needs end of message; the body is skipped when the MTA allows it.
                    assert_eq!(a.body_status, Some(if skip_offered { Status::Skip } else { Status::Continue }), "{what}");
                    assert_eq!((a.stage, &a.status), (Stage::Eom, &Status::Accept), "{what}");
                    assert!(a.quarantine().is_some_and(|r| r.contains("too large")), "{what}");
                    assert!(a.ticket_headers().is_empty(), "{what}");
                }
            }
            // The next message on the connection is judged afresh.
            let a = send(&mut c, &Mail::new(ALICE, &[SUPPORT], &format!("small after big {skip_offered}"), &format!("s-{id}")).body(big(500))).await;
            assert_eq!(a.status, Status::Accept, "{what} / next: {a:?}");
            a.number(SUPPORT, "created");
            c.close().await.unwrap();
        }
        assert_eq!(m.db.count("SELECT count(*) AS n FROM tickets WHERE title = 'too big'"), 0);
        m.shutdown().await;
    }
}

fn many_headers(mail: Mail, n: usize) -> Mail {
    (0..n).fold(mail, |m, i| m.header(&format!("X-Filler-{i}"), format!("value number {i} of a long header block")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_alone_over_the_limit_are_answered_at_the_header_that_passes_it() {
    let m = Milter::start(MilterConfig { max_message_size: LIMIT, ..cfg() }).await;
    let a = send_one(&m, &many_headers(Mail::new(ALICE, &[SUPPORT], "header flood", "hdr-big@example.com"), 200)).await;
    assert_eq!(a.stage, Stage::Header, "{a:?}");
    assert!(a.reply().starts_with("552 5.3.4 "), "{a:?}");
    m.shutdown().await;
}

/// With on_too_large = quarantine and headers over the limit, the headers are answered Continue
/// (libmilter allows Skip only from the body callback); the body callback then skips and end of
/// message quarantines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_over_the_limit_with_quarantine_continue_to_end_of_message() {
    let m = Milter::start(MilterConfig { max_message_size: LIMIT, on_too_large: Policy::Quarantine, ..cfg() }).await;
    let mut c = m.conn().await;
    let mail = many_headers(Mail::new(ALICE, &[SUPPORT], "header flood", "hdr-q@example.com"), 200);
    mta::mail(&mut c, &mail.from).await.unwrap();
    mta::rcpt(&mut c, &mail.rcpts[0]).await.unwrap();
    mta::data(&mut c).await.unwrap();
    for (n, v) in &mail.headers {
        assert_eq!(c.header(n.as_str(), CString::new(v.clone()).unwrap()).await.unwrap(), Status::Continue);
    }
    assert_eq!(mta::eoh(&mut c).await.unwrap(), Status::Continue);
    let (actions, status) = c.eom().await.unwrap();
    assert_eq!(status, Status::Accept);
    assert!(actions.has_quarantine(indymilter_test::any()));
    c.close().await.unwrap();
    m.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Failures: database, timeout.
// ---------------------------------------------------------------------------------------------


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_failure_tempfails_451_or_follows_on_database_error() {
    for policy in [Policy::Tempfail, Policy::Accept, Policy::Reject] {
        let m = Milter::start(MilterConfig { on_database_error: policy, ..cfg() }).await;
        m.sql(&common::refuse_inserts_sql("tickets_fail", "tickets", None, "disk on fire"));
        let before = m.tickets();
        let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT], "write fails", "dbfail@example.com")).await;
        let what = format!("{}: {a:?}", policy.as_str());
        assert_eq!(a.stage, Stage::Eom, "{what}");
        match policy {
            Policy::Tempfail => assert_eq!(
                a.reply(),
                "451 4.3.0 ticketmilter: the help-desk database is unavailable; try again later",
                "{what}"
            ),
            Policy::Accept => {
                assert_eq!(a.status, Status::Accept, "{what}");
                assert!(a.actions.is_empty(), "no header for an unconverted message: {what}");
            }
            _ => assert!(a.reply().starts_with("550 5.3.0 "), "{what}"),
        }
        assert_eq!(m.tickets(), before, "{what}");
        assert_eq!(m.db.count("SELECT count(*) AS n FROM processed_messages"), 0, "rolled back: {what}");
        // The database recovers; the retry converts.
        m.sql(&common::drop_trigger_sql("tickets_fail", "tickets"));
        let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT], "write fails", "dbfail@example.com")).await;
        assert_eq!(a.status, Status::Accept, "{what} / retry: {a:?}");
        a.number(SUPPORT, "created");
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_tempfails() {
    let m = Milter::start(cfg()).await;
    m.sql(&common::drop_table_sql("ticket_tags"));
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT], "Drucker kaputt", "notable@example.com")).await;
    assert!(a.reply().starts_with("451 4.3.0 "), "{a:?}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_over_eom_timeout_tempfails_and_the_retry_is_a_duplicate() {
    use diesel::connection::SimpleConnection;
    let m = Milter::start(MilterConfig { eom_timeout: 1, ..cfg() }).await;
    // Another writer holds the database for 4 s (within the milter's lock wait of 5 s: SQLite's
    // busy timeout, PostgreSQL's lock_timeout).
    let mut locker = m.db.store.conn().unwrap();
    locker.batch_execute(common::hold_write_lock_sql()).unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(4));
        locker.batch_execute("ROLLBACK;").unwrap();
    });
    let started = Instant::now();
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT], "slow database", "slow-1@example.com")).await;
    let took = started.elapsed();
    assert_eq!(
        a.reply(),
        "451 4.3.0 ticketmilter: conversion timed out; try again later",
        "{a:?}"
    );
    assert!(took < Duration::from_millis(3500), "answered at the 1 s deadline, not after the lock: {took:?}");
    release.join().unwrap();
    // The conversion still finishes in the background and commits; the MTA's retry then finds
    // it and answers duplicate: exactly one ticket.
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.db.count("SELECT count(*) AS n FROM processed_messages WHERE dedup_key = 'mid:slow-1@example.com'") == 0 {
        assert!(Instant::now() < deadline, "the background conversion never committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT], "slow database", "slow-1@example.com")).await;
    assert_eq!(a.status, Status::Accept, "{a:?}");
    a.number(SUPPORT, "duplicate");
    assert_eq!(m.db.count("SELECT count(*) AS n FROM tickets WHERE title = 'slow database'"), 1);
    m.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Header rebuilding: folded values with bare LF, 8-bit bytes, leading space or not.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folded_8bit_headers_arrive_intact_with_and_without_leading_space() {
    let m = Milter::start(cfg()).await;
    for leading_space in [true, false] {
        let mut b = TestConnection::configure();
        if !leading_space {
            b = b.available_opts(ProtoOpts::all() - ProtoOpts::LEADING_SPACE);
        }
        let mut c = m.conn_with(b).await;
        assert_eq!(c.negotiated_opts().contains(ProtoOpts::LEADING_SPACE), leading_space);
        let id = format!("fold-{leading_space}@example.com");
        // As Postfix sends them: folding with a bare LF, raw UTF-8 and Latin-1 bytes.
        // A second sender for the second round: the same sender and subject again would be a duplicate.
        let from = if leading_space { ALICE } else { "bernd@acme.example" };
        let mut mail = Mail::new(from, &[SUPPORT], "", &id);
        mail.headers.retain(|(n, _)| n != "Subject");
        let mail = mail
            .header("Subject", b"Drucker im B\xc3\xbcro\n\tdruckt nur leere Seiten (\xc3\xa4\xc3\xb6\xc3\xbc\xc3\x9f)")
            .header("X-Latin1", b"Gr\xfc\xdfe aus K\xf6ln")
            .header("Content-Type", b"text/plain;\n charset=utf-8")
            .header("Content-Transfer-Encoding", "8bit")
            .body(b"Gr\xc3\xbc\xc3\x9fe,\r\nder Drucker im B\xc3\xbcro druckt nicht.\r\n");
        let a = send(&mut c, &mail).await;
        assert_eq!(a.status, Status::Accept, "{a:?}");
        let number = a.number(SUPPORT, "created");
        // With the leading-space option the MTA inserts the value verbatim: the space is ours.
        assert_eq!(a.raw_ticket_headers()[0].starts_with(' '), leading_space, "{a:?}");
        c.close().await.unwrap();

        let title = text(&m.db, &format!("SELECT title AS t FROM tickets WHERE number = '{number}'"));
        assert_eq!(title, "Drucker im Büro druckt nur leere Seiten (äöüß)", "leading space {leading_space}");
        let description = text(&m.db, &format!("SELECT description AS t FROM tickets WHERE number = '{number}'"));
        assert_eq!(description, "Grüße,\nder Drucker im Büro druckt nicht.");
        // The stored message is the header rebuilt exactly: `Name: value` with CRLF folding,
        // the 8-bit bytes untouched, one blank line, the body as sent.
        let mut expected = Vec::new();
        for (n, v) in &mail.headers {
            expected.extend_from_slice(n.as_bytes());
            expected.extend_from_slice(b": ");
            for &byte in v {
                if byte == b'\n' {
                    expected.push(b'\r');
                }
                expected.push(byte);
            }
            expected.extend_from_slice(b"\r\n");
        }
        expected.extend_from_slice(b"\r\n");
        expected.extend_from_slice(&mail.body);
        let raw = stored_raw(&m.db, &format!("mid:{id}"));
        assert_eq!(String::from_utf8_lossy(&raw), String::from_utf8_lossy(&expected));
        assert_eq!(raw, expected, "leading space {leading_space}");
    }
    m.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Protocol: negotiation, abort, several connections, unix socket.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mta_that_cannot_delete_recipients_is_refused_at_negotiation() {
    let m = Milter::start(cfg()).await;
    let addr = match &m.addr {
        Addr::Tcp(a) => *a,
        Addr::Unix(_) => unreachable!(),
    };
    let r = TestConnection::configure()
        .read_timeout(TIMEOUT)
        .write_timeout(TIMEOUT)
        .available_actions(Actions::ADD_HEADER)
        .open_tcp(addr)
        .await;
    assert!(r.is_err(), "negotiation must fail without DELETE_RCPT");
    // The milter still serves a capable MTA.
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT], "after refusal", "neg@example.com")).await;
    assert_eq!(a.status, Status::Accept, "{a:?}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_message_leaves_nothing_behind_and_the_next_one_converts() {
    let m = Milter::start(cfg()).await;
    let mut c = m.conn().await;
    // Abort in the middle of the body of a message to alerts@ from an unknown sender …
    c.macros(MacroStage::Mail, [("i", "ABORTED1")]).await.unwrap();
    mta::mail(&mut c, &format!("<{UNKNOWN}>")).await.unwrap();
    mta::rcpt(&mut c, &format!("<{ALERTS}>")).await.unwrap();
    mta::rcpt(&mut c, &format!("<{OUTSIDER}>")).await.unwrap();
    mta::data(&mut c).await.unwrap();
    c.header("Subject", "aborted").await.unwrap();
    mta::eoh(&mut c).await.unwrap();
    assert_eq!(c.body("half a bo").await.unwrap(), Status::Continue);
    c.abort().await.unwrap();
    // … then a message whose envelope must not inherit anything from it.
    let a = send(&mut c, &Mail::new(ALICE, &[SUPPORT], "after abort", "after-abort@example.com").qid(Qid::AtMail("AFTER1"))).await;
    assert_eq!(a.status, Status::Accept, "{a:?}");
    a.number(SUPPORT, "created");
    assert!(a.deleted().is_empty(), "recipients of the aborted message leaked: {a:?}");
    c.close().await.unwrap();
    assert_eq!(m.db.count("SELECT count(*) AS n FROM processed_messages"), 1);
    assert_eq!(
        m.db.count("SELECT count(*) AS n FROM processed_messages WHERE envelope_rcpt = 'support@msp.example' AND envelope_from = 'alice@example.com' AND queue_id = 'AFTER1'"),
        1
    );
    let body = text(&m.db, "SELECT description AS t FROM tickets WHERE title = 'after abort'");
    assert_eq!(body, "Hello,\nplease help.");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connections_each_get_their_own_ticket() {
    let m = Arc::new(Milter::start(cfg()).await);
    let mut tasks = Vec::new();
    for conn in 0..6 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = m.conn().await;
            let mut numbers = Vec::new();
            for i in 0..4 {
                let a = send(&mut c, &Mail::new(ALICE, &[SUPPORT], &format!("parallel {conn}/{i}"), &format!("par-{conn}-{i}@example.com"))).await;
                assert_eq!(a.status, Status::Accept, "{a:?}");
                numbers.push(a.number(SUPPORT, "created"));
            }
            c.close().await.unwrap();
            numbers
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(tokio::time::timeout(Duration::from_secs(60), t).await.expect("deadline").unwrap());
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 24, "distinct ticket numbers");
    assert_eq!(m.db.count("SELECT count(*) AS n FROM tickets WHERE title LIKE 'parallel %'"), 24);
    Arc::into_inner(m).expect("all connections done").shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_unix_socket_and_removes_it_on_shutdown() {
    let m = Milter::start_on(TestDb::directory(), cfg(), true).await;
    let a = send_one(&m, &Mail::new(ALICE, &[SUPPORT], "over a unix socket", "unix-1@example.com")).await;
    assert_eq!(a.status, Status::Accept, "{a:?}");
    a.number(SUPPORT, "created");
    let a = send_one(&m, &alerts_mail(&[ALERTS], "alert-unix@monitor.unknown.example")).await;
    assert!(a.reply().starts_with("550 5.7.1 "), "{a:?}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_an_idle_connection_open_is_prompt() {
    let m = Milter::start(cfg()).await;
    let c = m.conn().await;
    let started = Instant::now();
    m.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    drop(c);
}
