//! The fuzz harness: a fixed configuration built once, and one function per fuzz target that
//! feeds bytes through ticketmilter's real code. The fuzz targets (fuzz/fuzz_targets/) call
//! these functions, and so does the regression test (tests/fuzz_regressions.rs includes this
//! file), so that a saved input is replayed exactly as the fuzzer ran it.
//!
//! - [`parse_decide`]: bytes as a message through `pipeline::parse`, `analyse`, the parsing
//!   rules, `keys` and `decide` — the pure half of the engine — for three mailboxes and four
//!   sets of store facts.
//! - [`MilterHarness::session`]: bytes framed into milter commands (see [`frame`]), sent over an
//!   in-memory stream to the real protocol callbacks, whose end of message converts against an
//!   in-memory SQLite database.
//! - [`text_scanners`]: bytes as text through the scanners that read body text and header
//!   values directly (alert blocks, indicators, quotes, forwarded headers, numbers,
//!   Authentication-Results, HTML to text).
//!
//! A violated expectation panics, which the fuzzer reports as a crash.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ticketmilter::config::{MilterConfig, Policy};
use ticketmilter::milter::Shared;
use ticketmilter::model::{
    Action, CompanyRef, ContactRef, DuplicateCandidate, Envelope, Facts, LookupKeys, ObjectKind, ObjectRef, Prior,
    ProjectRef, ResourceRef, Target, TaskRef, TicketRef,
};
use ticketmilter::pipeline::{self, Snapshot};
use ticketmilter::store::{self, Store, StoreOptions};
use ticketmilter::{Engine, pipeline::decide::MAX_TITLE_CHARS};

/// The test directory: mailboxes, companies, contacts, resources, tags, tickets, a project.
pub const DIRECTORY_SQL: &str = include_str!("../../tests/fixtures/directory.sql");
/// Rules, exclusions, workflow rules, templates and settings on top of the directory.
pub const CONFIG_SQL: &str = include_str!("../config.sql");

/// The mailboxes of the directory that the targets address.
pub const SUPPORT: &str = "support@msp.example";
pub const ALERTS: &str = "alerts@msp.example";
pub const NOFALLBACK: &str = "nofallback@msp.example";

/// How long one milter session may take before it counts as a hang.
pub const SESSION_DEADLINE: Duration = Duration::from_secs(10);

/// Milter sessions after which the database is made afresh: converted messages accumulate in
/// it (that is its job), and a long fuzzing run must not grow without bound because of them.
const FRESH_DATABASE_EVERY: u64 = 5_000;

// ------------------------------------------------------------------------------------------
// The configuration
// ------------------------------------------------------------------------------------------

/// A migrated in-memory SQLite database loaded with the fuzz configuration, and a connection
/// held open for its lifetime (an in-memory database lives as long as one connection to it).
pub struct MemoryDb {
    pub store: Store,
    _keeper: Box<dyn Send>,
}

impl MemoryDb {
    pub fn new() -> MemoryDb {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let url = format!("file:ticketmilter-fuzz-{}-{n}?mode=memory&cache=shared", std::process::id());
        let opts = StoreOptions { pool_size: 4, ..StoreOptions::default() };
        let store = Store::open(&url, opts).expect("open the in-memory database");
        let keeper = store.conn().expect("a connection that keeps the database alive");
        store.migrate().expect("migrate");
        store.write(|c| store::execute_script(c, DIRECTORY_SQL)).expect("the directory");
        store.write(|c| store::execute_script(c, CONFIG_SQL)).expect("the fuzz configuration");
        MemoryDb { store, _keeper: Box::new(keeper) }
    }

    /// The compiled configuration, as the engine builds it.
    pub fn snapshot(&self) -> Snapshot {
        let rows = self.store.read(store::conf::load).expect("load the configuration");
        let snapshot = Snapshot::build(rows);
        // The directory's mailbox without a fallback company is reported, on purpose; any other
        // problem (a rule, template or setting that did not compile) would leave paths unfuzzed.
        let problems: Vec<&String> = snapshot.problems.iter().filter(|p| !p.starts_with("mailbox nofallback@")).collect();
        assert!(problems.is_empty(), "the fuzz configuration has problems: {problems:?}");
        snapshot
    }
}

impl Default for MemoryDb {
    fn default() -> Self {
        MemoryDb::new()
    }
}

// ------------------------------------------------------------------------------------------
// parse_decide
// ------------------------------------------------------------------------------------------

/// What `parse_decide` needs, built once: the snapshot and the envelopes.
pub struct Decider {
    snapshot: Snapshot,
    /// A known contact from a client on the Internet.
    customer: Envelope,
    /// A resource, SMTP-authenticated from a trusted network (commands by mail are believed).
    staff: Envelope,
    /// The null sender (bounces, automatic replies).
    null: Envelope,
}

impl Decider {
    pub fn new() -> Decider {
        let db = MemoryDb::new();
        let snapshot = db.snapshot();
        let received = chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z").expect("time").to_utc();
        let envelope = |sender: &str, client: IpAddr, auth: Option<&str>| {
            let mut e = Envelope::new([SUPPORT, ALERTS, NOFALLBACK]);
            e.sender = sender.to_string();
            e.null_sender = sender.is_empty();
            e.queue_id = Some("4Y7Kq2Xz9Qz1".to_string());
            e.client_addr = Some(client);
            e.auth_user = auth.map(String::from);
            e.received_at = received;
            e
        };
        Decider {
            snapshot,
            customer: envelope("alice@example.com", IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), None),
            staff: envelope("tina@msp.example", IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), Some("tina")),
            null: envelope("", IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), None),
        }
    }
}

impl Default for Decider {
    fn default() -> Self {
        Decider::new()
    }
}

/// Which store facts a decision gets.
#[derive(Clone, Copy)]
enum FactsKind {
    /// Nothing known about the sender or the message.
    Nothing,
    /// The sender is a contact of Example Corp; its domain names the company; CC'd contacts.
    Contact,
    /// The sender is a resource; every number and reference names an existing object; an open
    /// ticket the message may duplicate.
    Staff,
    /// The message was processed before; the loop guard is over its limit; an alert named a
    /// company and a contact; a forwarded sender is a contact.
    Repeat,
}

fn example_corp() -> CompanyRef {
    CompanyRef { id: 1, name: "Example Corp".into() }
}

fn alice() -> ContactRef {
    ContactRef { id: 1, name: "Alice Example".into(), company: example_corp() }
}

fn ticket(id: i64, number: &str, complete: bool) -> TicketRef {
    TicketRef {
        id,
        number: number.to_string(),
        title: "VPN drops every hour".into(),
        company: Some(example_corp()),
        mailbox_id: Some(1),
        complete,
        contact_id: Some(1),
    }
}

/// Facts as the store would find them for these lookup keys.
fn facts(kind: FactsKind, keys: &LookupKeys) -> Facts {
    match kind {
        FactsKind::Nothing => Facts::default(),
        FactsKind::Contact => Facts {
            contact: Some(alice()),
            domain_companies: keys.company_domain.iter().map(|_| example_corp()).collect(),
            cc_contacts: keys
                .cc
                .iter()
                .take(2)
                .enumerate()
                .map(|(n, a)| (a.clone(), ContactRef { id: 5 + n as i64, name: "Erik Example".into(), company: example_corp() }))
                .collect(),
            cc_domain_companies: keys.cc.iter().skip(2).take(1).map(|a| (a.clone(), example_corp())).collect(),
            ..Facts::default()
        },
        FactsKind::Staff => {
            let project = ProjectRef { id: 1, number: "P20261120.0001".into(), name: "Network refresh".into(), company: Some(example_corp()) };
            let numbered = keys
                .numbers
                .iter()
                .enumerate()
                .map(|(n, number)| {
                    let target = match number.chars().next() {
                        Some('T') => Some(Target::Ticket(ticket(1 + n as i64, number, n % 2 == 1))),
                        Some('P') => Some(Target::Project(ProjectRef { number: number.clone(), ..project.clone() })),
                        Some('K') => Some(Target::Task(TaskRef {
                            id: 1,
                            number: number.clone(),
                            title: "Replace core switch".into(),
                            project: project.clone(),
                        })),
                        _ => None,
                    };
                    (number.clone(), target)
                })
                .collect();
            Facts {
                resource: Some(ResourceRef { id: 1, name: "Tina Tech".into() }),
                numbered,
                referenced: keys.referenced_ids.first().map(|id| (id.clone(), ticket(2, "T20261120.0002", true))),
                duplicates: vec![DuplicateCandidate { ticket: ticket(1, "T20261120.0001", false), criterion: "sender_subject" }],
                cc_staff: keys.cc.iter().take(1).cloned().collect(),
                forwarded_contact: keys.forwarded_sender.as_ref().map(|_| alice()),
                forwarded_domain_companies: keys.forwarded_sender.iter().map(|_| example_corp()).collect(),
                ..Facts::default()
            }
        }
        FactsKind::Repeat => Facts {
            prior: Some(Prior {
                outcome: "created".into(),
                object: Some(ObjectRef {
                    kind: ObjectKind::Ticket,
                    id: 1,
                    number: Some("T20261120.0001".into()),
                    ticket_number: Some("T20261120.0001".into()),
                    project_number: None,
                    task_number: None,
                }),
                reason: None,
                received_at: chrono::NaiveDate::from_ymd_opt(2026, 11, 27)
                    .and_then(|d| d.and_hms_opt(9, 0, 0))
                    .expect("time"),
            }),
            loop_count: 7,
            named_company: keys.named_company.as_ref().map(|_| example_corp()),
            named_contact: keys.named_contact_email.as_ref().map(|_| alice()),
            ..Facts::default()
        },
    }
}

/// One message through the engine's pure path, for every mailbox and facts variant; checks
/// what the documentation promises about every plan.
pub fn parse_decide(d: &Decider, raw: &[u8]) {
    let snapshot = &d.snapshot;
    let inbound = pipeline::parse(raw);
    for (envelope, kind) in [
        (&d.customer, FactsKind::Contact),
        (&d.staff, FactsKind::Staff),
        (&d.null, FactsKind::Nothing),
        (&d.customer, FactsKind::Repeat),
    ] {
        let analysis = pipeline::analyse(&inbound, raw, envelope, snapshot);
        for rcpt in [SUPPORT, ALERTS, NOFALLBACK] {
            let mailbox = snapshot.mailbox_for(rcpt).expect("a mailbox of the fuzz configuration");
            let rules = snapshot.rules.evaluate(mailbox.id, &inbound, &snapshot.refs);
            let keys = pipeline::keys(&inbound, snapshot, &analysis, &rules);
            let facts = facts(kind, &keys);
            let plan = pipeline::decide(&pipeline::Input {
                inbound: &inbound,
                envelope,
                rcpt,
                mailbox,
                keys: &keys,
                facts: &facts,
                snapshot,
                analysis: &analysis,
                rules: &rules,
            });
            assert_eq!(plan.mailbox_id, mailbox.id);
            if let Action::CreateTicket(t) = &plan.action {
                let chars = t.title.chars().count();
                assert!(chars <= MAX_TITLE_CHARS, "a title of {chars} characters");
                assert!(!t.title.trim().is_empty(), "an empty title");
                assert!(t.tags.len() <= snapshot.settings.max_tags, "{} tags, max_tags {}", t.tags.len(), snapshot.settings.max_tags);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// milter_session
// ------------------------------------------------------------------------------------------

/// Record tag: the payload goes to the stream as it is (bad lengths, truncated packets).
pub const RAW: u8 = 0xFF;
/// Record tag: the payload is a message, sent as an MTA sends one (see [`frame`]).
pub const MESSAGE: u8 = 0xFE;
/// The milter protocol option `SMFIP_HDR_LEADSPC`: header values keep their leading space.
const LEADING_SPACE: u32 = 0x0010_0000;

/// The milter settings a session runs under, chosen by the first input byte.
pub fn settings_variant(n: u8) -> MilterConfig {
    let d = MilterConfig::default();
    match n % 4 {
        0 => d,
        // Tiny size limit: bodies over it; quarantine needs end of message.
        1 => MilterConfig { max_message_size: 2048, on_too_large: Policy::Quarantine, on_unknown_sender: Policy::Quarantine, ..d },
        // No header added; refusals as tempfail or silent discard.
        2 => MilterConfig {
            add_header: false,
            max_message_size: 64 * 1024,
            on_unknown_sender: Policy::Tempfail,
            on_too_large: Policy::Discard,
            on_internal_error: Policy::Accept,
            ..d
        },
        // No time at all for the conversion: every message takes the timeout path.
        _ => MilterConfig { eom_timeout: 0, on_timeout: Policy::Reject, on_unknown_sender: Policy::Accept, ..d },
    }
}

fn packet(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32 + 1).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(data);
}

/// A message as an MTA sends it: one `L` per header field (name, value without the space
/// after the colon unless the leading-space option was offered, folded lines joined with LF, as
/// Postfix does), `N`, the body with CRLF line ends in `B` chunks of at most 65,535 bytes, and
/// `E`.
fn message_packets(out: &mut Vec<u8>, msg: &[u8], leading_space: bool) {
    let (head, body) = split_message(msg);
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        match fields.last_mut() {
            Some(f) if line[0] == b' ' || line[0] == b'\t' => {
                f.push(b'\n');
                f.extend_from_slice(line);
            }
            _ => fields.push(line.to_vec()),
        }
    }
    for f in &fields {
        let (name, value) = match f.iter().position(|&b| b == b':') {
            Some(i) => (&f[..i], &f[i + 1..]),
            None => (&f[..], &[][..]),
        };
        let value = if leading_space { value } else { value.strip_prefix(b" ").unwrap_or(value) };
        let mut data = Vec::with_capacity(f.len() + 2);
        data.extend_from_slice(name);
        data.push(0);
        data.extend_from_slice(value);
        data.push(0);
        packet(out, b'L', &data);
    }
    packet(out, b'N', b"");
    let mut crlf = Vec::with_capacity(body.len() + body.len() / 16);
    let mut prev = 0u8;
    for &b in body {
        if b == b'\n' && prev != b'\r' {
            crlf.push(b'\r');
        }
        crlf.push(b);
        prev = b;
    }
    for chunk in crlf.chunks(65_535) {
        packet(out, b'B', chunk);
    }
    packet(out, b'E', b"");
}

/// Header and body of a message: split at the first empty line.
fn split_message(msg: &[u8]) -> (&[u8], &[u8]) {
    let mut i = 0;
    while i < msg.len() {
        if msg[i] == b'\n' {
            let rest = &msg[i + 1..];
            if rest.starts_with(b"\r\n") {
                return (&msg[..i + 1], &rest[2..]);
            }
            if rest.starts_with(b"\n") {
                return (&msg[..i + 1], &rest[1..]);
            }
        }
        i += 1;
    }
    (msg, &[])
}

/// The fuzz input of `milter_session` as protocol bytes: the first byte chooses the settings
/// ([`settings_variant`]); then records of a tag byte, a 16-bit big-endian length and that
/// many payload bytes (fewer when the input ends first):
///
/// - tag [`RAW`]: the payload is written to the stream unchanged;
/// - tag [`MESSAGE`]: the payload is a message, sent as header, end-of-header, body and
///   end-of-message commands;
/// - any other tag: one packet of that command (`O` negotiate, `C` connect, `H` helo, `M`
///   mail, `R` rcpt, `T` data, `L` header, `N` end of header, `B` body, `E` end of message,
///   `A` abort, `Q` quit, `K` quit keeping the connection, `D` macros, `U` unknown SMTP
///   command, anything else an unknown milter command) with the payload as its data and a
///   correct length.
pub fn frame(data: &[u8]) -> (u8, Vec<u8>) {
    let Some((&variant, mut rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut out = Vec::with_capacity(data.len() + 64);
    // The milter asks for every protocol option the MTA offers that it knows; the MTA then
    // keeps the space after a header's colon when it offered that option.
    let mut leading_space = false;
    while let Some((&tag, after)) = rest.split_first() {
        let len = match after {
            [a, b, ..] => u16::from_be_bytes([*a, *b]) as usize,
            _ => after.len(),
        };
        let after = &after[after.len().min(2)..];
        let (payload, next) = after.split_at(len.min(after.len()));
        match tag {
            RAW => out.extend_from_slice(payload),
            MESSAGE => message_packets(&mut out, payload, leading_space),
            kind => {
                if kind == b'O'
                    && let Some(opts) = payload.get(8..12)
                {
                    leading_space = u32::from_be_bytes([opts[0], opts[1], opts[2], opts[3]]) & LEADING_SPACE != 0;
                }
                packet(&mut out, kind, payload)
            }
        }
        rest = next;
    }
    (variant, out)
}

/// One record of the `milter_session` input format (see [`frame`]).
pub fn record(tag: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("a record holds at most 65,535 bytes");
    let mut r = Vec::with_capacity(payload.len() + 3);
    r.push(tag);
    r.extend_from_slice(&len.to_be_bytes());
    r.extend_from_slice(payload);
    r
}

/// The start of an ordinary session in the `milter_session` input format: settings variant 0;
/// negotiation (protocol version 6) offering every action and protocol option; the `j` macro
/// and a connect from 192.0.2.10; HELO; the queue id macro `i`; `MAIL FROM:<alice@example.com>`;
/// `RCPT TO:<support@msp.example>` and `<alerts@msp.example>`; DATA. A message record after it
/// completes the session (fuzz/seeds/milter-session-prefix is this, followed by the start of a
/// message record that takes the rest of the input).
pub fn session_prefix() -> Vec<u8> {
    let mut negotiate = Vec::with_capacity(12);
    for word in [6u32, 0x1FF, 0x003F_FFFF] {
        negotiate.extend_from_slice(&word.to_be_bytes());
    }
    let mut connect = b"client.example\0".to_vec();
    connect.push(b'4');
    connect.extend_from_slice(&25u16.to_be_bytes());
    connect.extend_from_slice(b"192.0.2.10\0");
    [
        vec![0u8],
        record(b'O', &negotiate),
        record(b'D', b"Cj\0mx.msp.example\0"),
        record(b'C', &connect),
        record(b'H', b"client.example\0"),
        record(b'D', b"Mi\x004Y7Kq2Xz9Qz1\0"),
        record(b'M', b"<alice@example.com>\0"),
        record(b'R', b"<support@msp.example>\0"),
        record(b'R', b"<alerts@msp.example>\0"),
        record(b'T', b""),
    ]
    .concat()
}

/// The milter side of the sessions: the engine over an in-memory database, and one set of
/// shared state per settings variant.
pub struct MilterHarness {
    state: Option<(Vec<Arc<Shared>>, MemoryDb)>,
    sessions: u64,
}

impl MilterHarness {
    pub fn new() -> MilterHarness {
        MilterHarness { state: None, sessions: 0 }
    }

    fn state(&mut self) -> &[Arc<Shared>] {
        if self.sessions.is_multiple_of(FRESH_DATABASE_EVERY) {
            // The old engine's writer and the old database go before the new ones come.
            self.state = None;
        }
        self.sessions += 1;
        let (shared, _) = self.state.get_or_insert_with(|| {
            let db = MemoryDb::new();
            let engine = Arc::new(Engine::new(db.store.clone()).expect("the engine"));
            let shared = (0..4).map(|n| Shared::new(engine.clone(), settings_variant(n))).collect();
            (shared, db)
        });
        shared
    }

    /// One milter connection fed with the framed input; returns the milter's answers. Panics
    /// when the connection does not end within [`SESSION_DEADLINE`] or the answers are not
    /// well-formed milter packets.
    ///
    /// Each session gets a runtime of its own, dropped before this returns: dropping it waits
    /// for the blocking pool, so a conversion that outlived its deadline (settings variant 3)
    /// finishes here, and anything it does is charged to this input, not to the next one.
    pub fn session(&mut self, data: &[u8]) -> Vec<u8> {
        let (variant, bytes) = frame(data);
        let shared = self.state()[variant as usize % 4].clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let answers = runtime
            .block_on(ticketmilter::milter::replay::replay(shared, &bytes, SESSION_DEADLINE))
            .unwrap_or_else(|| panic!("the milter session did not end within {} s", SESSION_DEADLINE.as_secs()));
        drop(runtime);
        check_answers(&answers);
        answers
    }
}

impl Default for MilterHarness {
    fn default() -> Self {
        MilterHarness::new()
    }
}

/// The milter's answers are whole packets: a length of at least 1 (the kind byte) that the
/// bytes that follow fill exactly.
fn check_answers(mut answers: &[u8]) {
    while !answers.is_empty() {
        assert!(answers.len() >= 5, "a truncated answer packet: {answers:?}");
        let len = u32::from_be_bytes([answers[0], answers[1], answers[2], answers[3]]) as usize;
        assert!(len >= 1 && answers.len() >= 4 + len, "answer packet length {len} with {} bytes left", answers.len() - 4);
        answers = &answers[4 + len..];
    }
}

// ------------------------------------------------------------------------------------------
// text_scanners
// ------------------------------------------------------------------------------------------

/// Bytes as text through the scanners that read body text and header values directly.
pub fn text_scanners(data: &[u8]) {
    use pipeline::{alerts, auto, forward, html, indicators, numbers, quotes, trust};
    let text = String::from_utf8_lossy(data);
    if let Some(found) = alerts::find(&text) {
        assert!(found.text.len() <= text.len(), "the text without the alert block grew");
    }
    let _ = indicators::find(&text);
    let _ = quotes::strip_quoted(&text);
    let _ = forward::forwarded_sender(&text);
    for n in numbers::numbers(&text) {
        assert!(numbers::NumberKind::of(&n).is_some(), "{n:?} is no object number");
    }
    let _ = numbers::ticket_numbers(&text);
    let _ = numbers::subject_key(&text);
    let _ = auto::out_of_office(&text);
    let _ = trust::parse_authentication_results(&text);
    let _ = html::to_text(&text);
    let _ = html::strip_tags(&text);
}
