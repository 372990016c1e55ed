//! Detection of auto-generated mail (auto-replies, bounces, lists) and parsing of DSNs.
//!
//! [`detect`] tells mail a person wrote from mail a machine sent, and which machine: an
//! out-of-office reply, a bounce, a read receipt, a mailing list, a newsletter, or other
//! machine mail. Automatic mail is still converted, but it never triggers notifications, so
//! help desks, autoresponders and mail servers cannot answer each other in a loop.
//!
//! The checks are the union of what RT, Znuny, Zammad and osTicket look at, in this order:
//!
//! 1. our own mail passing back: our loop header with one of our names, or our Message-ID;
//! 2. reports: RFC 3464 delivery status notifications (bounces, delays, successes) with the
//!    recipient, status and Message-ID of the returned message; RFC 8098 read receipts; other
//!    `multipart/report`s; bounces in free text from MAILER-DAEMON, postmaster or the null
//!    sender (qmail, old Exim, Sendmail, Lotus, old Gmail);
//! 3. header fields: loop headers of other systems, `Auto-Submitted`, vendor auto-reply
//!    headers, `X-Auto-Response-Suppress: All`, `Precedence`, list headers;
//! 4. out-of-office subjects in many languages ([`OUT_OF_OFFICE_SUBJECTS`]);
//! 5. the sender: null envelope sender, `Return-Path: <>`, MAILER-DAEMON / postmaster.
//!
//! The first signal found gives the reason. A later, more specific signal refines the kind and
//! is added to the reason: an Exchange out-of-office reply says `Auto-Submitted:
//! auto-generated` and is still an auto-reply; a Mailman post says `Precedence: bulk` and is
//! still list mail.
//!
//! Ordinary mail costs a few header look-ups and one subject comparison, without allocating;
//! the raw message is parsed again only for reports and for bounce candidates.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use mail_parser::{MimeHeaders, PartType};
use regex::Regex;
use serde::Serialize;
use std::sync::LazyLock;

use super::parse::normalise_message_id;
use crate::model::Inbound;

/// The name of our loop header.
pub const LOOP_HEADER: &str = "X-Ticketmilter-Loop";

/// Longest header value or subject quoted in a reason.
const MAX_QUOTED: usize = 100;
/// Longest `Bounce::reason` (bytes, hence also characters).
const MAX_BOUNCE_REASON: usize = 500;
/// Longest diagnostic kept.
const MAX_DIAGNOSTIC: usize = 1000;
/// How much of a delivery-status part is read.
const MAX_DELIVERY_STATUS: usize = 64 * 1024;
/// Most field groups read from a delivery-status part (one per recipient, plus one).
const MAX_GROUPS: usize = 200;
/// How much of the text of a bounce candidate is searched for the typical phrases.
const BOUNCE_TEXT_HEAD: usize = 4096;

/// What kind of automatic mail a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoKind {
    /// Written by a person.
    #[default]
    Human,
    /// An automatic answer: out-of-office, vacation, "we received your message".
    AutoReply,
    /// A delivery status notification (bounce, delay warning, delivery report).
    Bounce,
    /// A message disposition notification (read receipt).
    Receipt,
    /// Mail distributed by a mailing list.
    List,
    /// Bulk mail: newsletters, marketing, `Precedence: bulk`.
    Bulk,
    /// Other machine mail: `Auto-Submitted: auto-generated`, null sender, loop headers.
    Machine,
}

impl AutoKind {
    /// The name used in logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoKind::Human => "human",
            AutoKind::AutoReply => "auto_reply",
            AutoKind::Bounce => "bounce",
            AutoKind::Receipt => "receipt",
            AutoKind::List => "list",
            AutoKind::Bulk => "bulk",
            AutoKind::Machine => "machine",
        }
    }

    /// How much a kind says, when several signals agree that a message is automatic.
    fn specificity(self) -> u8 {
        match self {
            AutoKind::Human => 0,
            AutoKind::Machine => 1,
            AutoKind::Bulk => 2,
            AutoKind::List => 3,
            AutoKind::AutoReply => 4,
            AutoKind::Receipt | AutoKind::Bounce => 5,
        }
    }
}

/// The verdict on one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoMail {
    pub kind: AutoKind,
    /// Why, in words naming the header or pattern (`Auto-Submitted: auto-replied`,
    /// `out-of-office subject "Automatische Antwort: …"`, `null envelope sender`, …). None for
    /// human mail.
    pub reason: Option<String>,
    /// One of our own notifications passing back (our loop header with one of our names, or a
    /// Message-ID of ours).
    pub ours: bool,
    /// For delivery status notifications: what they report.
    pub bounce: Option<Bounce>,
}

impl AutoMail {
    pub fn is_auto(&self) -> bool {
        self.kind != AutoKind::Human
    }
}

/// What a delivery status notification reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounce {
    /// Message-ID (normalised, no angle brackets) of the message that could not be delivered,
    /// from the returned message or its headers (message/rfc822, text/rfc822-headers,
    /// message/global-headers), else from a "Message-ID:" line in the body of non-standard
    /// bounces, else from the report's In-Reply-To.
    pub original_message_id: Option<String>,
    /// The recipient the report is about (without "rfc822;"): the address as the sender wrote
    /// it (Original-Recipient) when the report gives it, else Final-Recipient, else the address
    /// a non-standard bounce names.
    pub recipient: Option<String>,
    /// Status code like "5.1.1": the Status field, or the code in the diagnostic when the
    /// field is the generic "5.0.0" / "4.0.0"; in non-standard bounces the first code found.
    pub status: Option<String>,
    /// Diagnostic-Code text (without "smtp;"), or the best human explanation found.
    pub diagnostic: Option<String>,
    /// Action: failed (or a 5.x.x status, or a non-standard bounce that says delivery failed
    /// permanently) → true; delayed/delivered/relayed/expanded → false.
    pub permanent: bool,
}

impl Bounce {
    /// One line for the outbox's error column, e.g. "5.1.1 user unknown (bob@example.org)".
    /// Never contains CR/LF, at most 500 chars.
    pub fn reason(&self) -> String {
        let mut line = String::new();
        let mut diagnostic = self.diagnostic.as_deref().map(str::trim).unwrap_or("");
        if let Some(status) = self.status.as_deref() {
            line.push_str(status);
            diagnostic = strip_reply_code(diagnostic, status);
        }
        if !diagnostic.is_empty() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(diagnostic);
        }
        if line.is_empty() {
            line.push_str(if self.permanent {
                "delivery failed"
            } else {
                "delivery delayed"
            });
        }
        if let Some(rcpt) = self
            .recipient
            .as_deref()
            .filter(|r| !r.is_empty() && !contains_ci(diagnostic, r))
        {
            line.push_str(" (");
            line.push_str(rcpt);
            line.push(')');
        }
        truncate(&one_line(&line), MAX_BOUNCE_REASON)
    }
}

/// Names by which this installation recognises its own mail.
#[derive(Debug, Clone, Copy)]
pub struct Own<'a> {
    /// The value our loop header carries (compare case-insensitively, trimmed).
    pub loop_names: &'a [String],
    /// Domains of our Message-IDs (our Message-IDs look like `tm.<anything>@<domain>`).
    pub message_id_domains: &'a [String],
}

impl Own<'_> {
    /// Whether a value of our loop header is one of our names.
    pub fn owns_loop_name(&self, value: &str) -> bool {
        let value = value.trim();
        !value.is_empty() && self.loop_names.iter().any(|n| n.trim().eq_ignore_ascii_case(value))
    }

    /// Whether a Message-ID (with or without angle brackets) is one we gave out:
    /// `tm.<anything>@<one of our domains>`.
    pub fn owns_message_id(&self, id: &str) -> bool {
        let id = id.trim().trim_start_matches('<').trim_end_matches('>');
        let Some((local, domain)) = id.rsplit_once('@') else {
            return false;
        };
        let domain = domain.trim_end_matches('.');
        let ours_local = local.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("tm."));
        ours_local
            && !domain.is_empty()
            && self.message_id_domains.iter().any(|d| {
                let d = d.trim().trim_end_matches('.');
                !d.is_empty() && d.eq_ignore_ascii_case(domain)
            })
    }
}

/// Decide whether a message is automatic. `raw` is the full message as received (read again
/// only for reports and bounce candidates); `envelope_sender` is MAIL FROM without angle
/// brackets ("" for the null sender <>), or None when it is not known (a message fed to the
/// `process` command without `--from`).
pub fn detect(inbound: &Inbound, raw: &[u8], envelope_sender: Option<&str>, own: &Own<'_>) -> AutoMail {
    if let Some(reason) = own_mail(inbound, own) {
        return AutoMail {
            kind: AutoKind::Machine,
            reason: Some(reason),
            ours: true,
            bounce: None,
        };
    }
    if let Some(found) = report(inbound, raw) {
        return found;
    }
    let ctx = Ctx {
        inbound,
        envelope_sender: envelope_sender.map(|s| s.trim().trim_start_matches('<').trim_end_matches('>').trim()),
    };
    if (ctx.null_sender().is_some() || ctx.daemon_sender().is_some())
        && let Some(found) = free_text_bounce(&ctx, raw)
    {
        return found;
    }

    let mut signals = CHECKS.iter().filter_map(|check| check(&ctx));
    let Some(first) = signals.next() else {
        return AutoMail::default();
    };
    let mut kind = first.kind;
    let mut reason = first.reason;
    if first.fixed {
        return AutoMail {
            kind,
            reason: Some(reason),
            ours: false,
            bounce: None,
        };
    }
    // The first of the most specific later signals refines the kind.
    let better = signals.fold(None::<Signal>, |best, s| {
        let bar = best.as_ref().map_or(kind, |b| b.kind);
        if s.kind.specificity() > bar.specificity() {
            Some(s)
        } else {
            best
        }
    });
    if let Some(better) = better {
        kind = better.kind;
        reason.push_str("; ");
        reason.push_str(&better.reason);
    }
    AutoMail {
        kind,
        reason: Some(reason),
        ours: false,
        bounce: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Our own mail

fn own_mail(inbound: &Inbound, own: &Own<'_>) -> Option<String> {
    for value in header_values(inbound, LOOP_HEADER) {
        if own.owns_loop_name(value) {
            return Some(format!("{LOOP_HEADER}: {} (ours)", quoted(value.trim())));
        }
    }
    let id = inbound.message_id.as_deref()?;
    own.owns_message_id(id)
        .then(|| format!("Message-ID <{}> is one of ours", quoted(id)))
}

// ---------------------------------------------------------------------------------------------
// Header, subject and sender checks

/// One reason to think a message is automatic.
struct Signal {
    kind: AutoKind,
    reason: String,
    /// Later signals do not refine the kind (loop headers: another system's mail is that,
    /// whatever else it says about itself).
    fixed: bool,
}

impl Signal {
    fn new(kind: AutoKind, reason: String) -> Option<Signal> {
        Some(Signal {
            kind,
            reason,
            fixed: false,
        })
    }

    fn fixed(kind: AutoKind, reason: String) -> Option<Signal> {
        Some(Signal {
            kind,
            reason,
            fixed: true,
        })
    }
}

struct Ctx<'a> {
    inbound: &'a Inbound,
    /// MAIL FROM without angle brackets (None: not known).
    envelope_sender: Option<&'a str>,
}

impl Ctx<'_> {
    /// Why the message counts as sent by the null sender, if it does.
    fn null_sender(&self) -> Option<&'static str> {
        if self.envelope_sender == Some("") {
            return Some("null envelope sender");
        }
        let rp = self.inbound.header("return-path")?;
        rp.chars()
            .filter(|c| !c.is_whitespace())
            .eq("<>".chars())
            .then_some("Return-Path: <>")
    }

    /// The From or envelope address when its local part is MAILER-DAEMON or postmaster.
    fn daemon_sender(&self) -> Option<&str> {
        match self.inbound.from.as_ref() {
            Some(from) if is_daemon(&from.email) => return Some(&from.email),
            // A bare word is a display name to the parser: "From: mailer-daemon".
            None => {
                if let Some(value) = self.inbound.header("from").map(str::trim).filter(|v| is_daemon(v)) {
                    return Some(value);
                }
            }
            Some(_) => {}
        }
        self.envelope_sender.filter(|s| is_daemon(s))
    }
}

/// MAILER-DAEMON / postmaster, in any case, with or without a domain.
fn is_daemon(address: &str) -> bool {
    let local = address.trim().rsplit_once('@').map_or(address.trim(), |(l, _)| l);
    let local = local.trim_matches('"');
    ["mailer-daemon", "mailerdaemon", "mailer_daemon", "postmaster"]
        .iter()
        .any(|d| local.eq_ignore_ascii_case(d))
}

type Check = fn(&Ctx<'_>) -> Option<Signal>;

/// The header, subject and sender checks, in the order their reasons are preferred.
const CHECKS: &[Check] = &[
    foreign_loop,
    other_systems_loop,
    auto_submitted,
    vendor_auto_reply,
    auto_response_suppress,
    precedence,
    list_headers,
    out_of_office_subject,
    null_sender,
    daemon_sender,
];

/// Our loop header with a name that is not ours: another ticketmilter installation.
fn foreign_loop(ctx: &Ctx<'_>) -> Option<Signal> {
    let value = ctx.inbound.header(LOOP_HEADER)?;
    Signal::fixed(
        AutoKind::Machine,
        format!("{LOOP_HEADER}: {} (another installation)", quoted(value.trim())),
    )
}

/// How a header value is judged.
#[derive(Clone, Copy)]
enum Value {
    /// Any value except empty, "no", "false", "0".
    Set,
    /// This value (ASCII case-insensitive, first token).
    Is(&'static str),
    /// A value containing this (ASCII case-insensitive).
    Contains(&'static str),
    /// A value starting with this (ASCII case-insensitive).
    StartsWith(&'static str),
}

impl Value {
    fn matches(self, value: &str) -> bool {
        let value = value.trim();
        match self {
            Value::Set => !["", "no", "false", "0"].iter().any(|n| value.eq_ignore_ascii_case(n)),
            Value::Is(want) => first_token(value).eq_ignore_ascii_case(want),
            Value::Contains(want) => contains_ci(value, want),
            Value::StartsWith(want) => value.get(..want.len()).is_some_and(|p| p.eq_ignore_ascii_case(want)),
        }
    }
}

/// Loop headers other help desks put on everything they send (staff answers included: a help
/// desk answering a help desk is the classic loop). `X-Loop` alone is also added by procmail
/// forwarding with an address, so only the yes/true form counts (as Zammad does).
const OTHER_SYSTEM_LOOPS: &[(&str, Value, &str)] = &[
    ("X-RT-Loop-Prevention", Value::Set, "Request Tracker"),
    ("X-OTRS-Loop", Value::Set, "OTRS/Znuny"),
    ("X-Loop", Value::Is("yes"), "loop marker"),
    ("X-Loop", Value::Is("true"), "loop marker"),
    ("X-FC-MachineGenerated", Value::Is("true"), "FirstClass"),
];

fn other_systems_loop(ctx: &Ctx<'_>) -> Option<Signal> {
    header_table(ctx, OTHER_SYSTEM_LOOPS, AutoKind::Machine).map(|s| Signal { fixed: true, ..s })
}

/// `Auto-Submitted` (RFC 3834) with any value but `no`; parameters and comments are ignored
/// (`auto-replied; owner-email=…`, `auto-replied (zimbra; vacation)`).
fn auto_submitted(ctx: &Ctx<'_>) -> Option<Signal> {
    let value = ctx.inbound.header("Auto-Submitted")?;
    let token = first_token(value);
    if token.is_empty() || token.eq_ignore_ascii_case("no") {
        return None;
    }
    let kind = if token.eq_ignore_ascii_case("auto-replied") {
        AutoKind::AutoReply
    } else {
        AutoKind::Machine
    };
    Signal::new(kind, format!("Auto-Submitted: {}", quoted(value.trim())))
}

/// Headers that autoresponders of various vendors add (osTicket, jitbit, cPanel, GroupWise,
/// Lotus, the Unix vacation program).
const VENDOR_AUTO_REPLY: &[(&str, Value, &str)] = &[
    ("X-Autoreply", Value::Set, "autoresponder"),
    ("X-Autorespond", Value::Set, "autoresponder"),
    ("X-Autoresponse", Value::Set, "autoresponder"),
    ("X-Auto-Reply", Value::Set, "autoresponder"),
    ("X-Auto-Reply-From", Value::Set, "autoresponder"),
    ("X-Mail-Autoreply", Value::Set, "autoresponder"),
    ("X-Autogenerated", Value::Is("reply"), "GroupWise"),
    ("X-POST-MessageClass", Value::Contains("autoresponder"), "autoresponder"),
    ("X-Mailer", Value::StartsWith("vacation"), "vacation program"),
];

fn vendor_auto_reply(ctx: &Ctx<'_>) -> Option<Signal> {
    header_table(ctx, VENDOR_AUTO_REPLY, AutoKind::AutoReply)
}

/// `X-Auto-Response-Suppress` asks the *recipient's* server not to answer; it says nothing
/// certain about the message itself. Exchange writes `All` on its out-of-office replies and
/// other mail it generates, and help desks (Zammad, FreeScout) write it on their
/// notifications, so `All` counts, as in Zammad. Partial lists do not: Exchange adds
/// `DR, OOF, AutoReply` to ordinary mail expanded from distribution groups, list servers add
/// `OOF, DR, RN, NRN`, and many senders add `OOF` to everything (osTicket's `OOF` rule and
/// GLPI's any-value rule lost real mail that way). With `X-MS-Exchange-Inbox-Rules-Loop` (set
/// by the mailbox rules agent that sends Exchange out-of-office replies) it is an auto-reply,
/// otherwise other machine mail.
fn auto_response_suppress(ctx: &Ctx<'_>) -> Option<Signal> {
    let value = ctx.inbound.header("X-Auto-Response-Suppress")?;
    if !value.split(',').any(|v| v.trim().eq_ignore_ascii_case("all")) {
        return None;
    }
    if ctx.inbound.header("X-MS-Exchange-Inbox-Rules-Loop").is_some() {
        Signal::new(
            AutoKind::AutoReply,
            "X-Auto-Response-Suppress: All with X-MS-Exchange-Inbox-Rules-Loop (Exchange automatic reply)".into(),
        )
    } else {
        Signal::new(AutoKind::Machine, "X-Auto-Response-Suppress: All".into())
    }
}

/// `Precedence` (or `X-Precedence`): bulk/junk → bulk, list → list, auto_reply → auto-reply.
fn precedence(ctx: &Ctx<'_>) -> Option<Signal> {
    for name in ["Precedence", "X-Precedence"] {
        let Some(value) = ctx.inbound.header(name) else {
            continue;
        };
        let token = first_token(value);
        let kind = if token.eq_ignore_ascii_case("bulk") || token.eq_ignore_ascii_case("junk") {
            AutoKind::Bulk
        } else if token.eq_ignore_ascii_case("list") {
            AutoKind::List
        } else if token.eq_ignore_ascii_case("auto_reply") || token.eq_ignore_ascii_case("auto-reply") {
            AutoKind::AutoReply
        } else {
            continue;
        };
        return Signal::new(kind, format!("{name}: {}", quoted(value.trim())));
    }
    None
}

/// RFC 2369/2919 list headers. `List-Unsubscribe` without the others is a newsletter.
fn list_headers(ctx: &Ctx<'_>) -> Option<Signal> {
    for name in ["List-Id", "List-Post", "Mailing-List", "X-Mailing-List"] {
        if let Some(value) = ctx.inbound.header(name) {
            return Signal::new(AutoKind::List, format!("{name}: {}", quoted(value.trim())));
        }
    }
    ctx.inbound
        .header("List-Unsubscribe")
        .and_then(|_| Signal::new(AutoKind::Bulk, "List-Unsubscribe without List-Id (newsletter)".into()))
}

fn out_of_office_subject(ctx: &Ctx<'_>) -> Option<Signal> {
    let (_, language) = out_of_office(&ctx.inbound.subject)?;
    Signal::new(
        AutoKind::AutoReply,
        format!(
            "out-of-office subject \"{}\" ({language})",
            quoted(ctx.inbound.subject.trim())
        ),
    )
}

fn null_sender(ctx: &Ctx<'_>) -> Option<Signal> {
    ctx.null_sender()
        .and_then(|why| Signal::new(AutoKind::Machine, why.to_string()))
}

fn daemon_sender(ctx: &Ctx<'_>) -> Option<Signal> {
    ctx.daemon_sender()
        .and_then(|who| Signal::new(AutoKind::Machine, format!("sent by {}", quoted(who))))
}

/// The first header of a table whose value matches.
fn header_table(ctx: &Ctx<'_>, table: &[(&str, Value, &str)], kind: AutoKind) -> Option<Signal> {
    table.iter().find_map(|(name, rule, what)| {
        let value = ctx.inbound.header(name)?;
        rule.matches(value).then(|| Signal {
            kind,
            reason: format!("{name}: {} ({what})", quoted(value.trim())),
            fixed: false,
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Out-of-office subjects

/// How sure a subject phrase is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phrase {
    /// Names an automatic answer ("Automatic reply"): counts before `:`, ` - `, a closing
    /// bracket or the end of the subject.
    Automatic,
    /// Names an absence ("Out of office"), which people also write: counts only before `:` or
    /// as the whole subject, never before other words ("Out of office laptop needs repair").
    Absence,
}

/// Subject phrases of out-of-office and other automatic replies, with their language. They are
/// compared at the start of the subject, after reply prefixes ("Re:", "AW:", "RE :", "SV:" …)
/// and an opening bracket, ignoring case and accents ("Reponse automatique" matches too).
pub const OUT_OF_OFFICE_SUBJECTS: &[(&str, &str, Phrase)] = &[
    ("Automatic reply", "English", Phrase::Automatic),
    ("Automatic response", "English", Phrase::Automatic),
    ("Auto reply", "English", Phrase::Automatic),
    ("Auto-reply", "English", Phrase::Automatic),
    ("Autoreply", "English", Phrase::Automatic),
    ("Auto response", "English", Phrase::Automatic),
    ("Auto-response", "English", Phrase::Automatic),
    ("Autoresponse", "English", Phrase::Automatic),
    ("Autoresponder", "English", Phrase::Automatic),
    ("Out of Office AutoReply", "English", Phrase::Automatic),
    ("Out of Office Auto Reply", "English", Phrase::Automatic),
    ("Out of office reply", "English", Phrase::Automatic),
    ("Vacation reply", "English", Phrase::Automatic),
    ("Out of Office", "English", Phrase::Absence),
    ("Out of the Office", "English", Phrase::Absence),
    ("Automatische Antwort", "German", Phrase::Automatic),
    ("Automatische Abwesenheitsnotiz", "German", Phrase::Automatic),
    ("Abwesenheitsnotiz", "German", Phrase::Automatic),
    ("Abwesenheitsmeldung", "German", Phrase::Automatic),
    ("Abwesend", "German", Phrase::Absence),
    ("Nicht im Büro", "German", Phrase::Absence),
    ("Außer Haus", "German", Phrase::Absence),
    ("Réponse automatique", "French", Phrase::Automatic),
    ("Message d'absence", "French", Phrase::Automatic),
    ("Absence du bureau", "French", Phrase::Absence),
    ("Absent du bureau", "French", Phrase::Absence),
    ("Automatisch antwoord", "Dutch", Phrase::Automatic),
    ("Afwezigheidsbericht", "Dutch", Phrase::Automatic),
    ("Afwezig", "Dutch", Phrase::Absence),
    ("Respuesta automática", "Spanish", Phrase::Automatic),
    ("Fuera de la oficina", "Spanish", Phrase::Absence),
    ("Fuera de oficina", "Spanish", Phrase::Absence),
    ("Ausente", "Spanish/Portuguese", Phrase::Absence),
    ("Risposta automatica", "Italian", Phrase::Automatic),
    ("Risposta non al computer", "Italian", Phrase::Automatic),
    ("Fuori sede", "Italian", Phrase::Absence),
    ("Fuori ufficio", "Italian", Phrase::Absence),
    ("Resposta automática", "Portuguese", Phrase::Automatic),
    ("Fora do escritório", "Portuguese", Phrase::Absence),
    ("Automatiskt svar", "Swedish", Phrase::Automatic),
    ("Frånvaro", "Swedish", Phrase::Absence),
    ("Frånvarande", "Swedish", Phrase::Absence),
    ("Autosvar", "Danish/Norwegian/Swedish", Phrase::Automatic),
    ("Automatisk svar", "Danish/Norwegian", Phrase::Automatic),
    ("Fravær", "Danish/Norwegian", Phrase::Absence),
    ("Fraværende", "Norwegian", Phrase::Absence),
    ("Ikke på kontoret", "Danish/Norwegian", Phrase::Absence),
    ("Automaattinen vastaus", "Finnish", Phrase::Automatic),
    ("Poissa toimistolta", "Finnish", Phrase::Absence),
    ("Poissa", "Finnish", Phrase::Absence),
    ("Automatyczna odpowiedź", "Polish", Phrase::Automatic),
    ("Poza biurem", "Polish", Phrase::Absence),
    ("Nieobecność", "Polish", Phrase::Absence),
    ("Automatická odpověď", "Czech", Phrase::Automatic),
    ("Automatikus válasz", "Hungarian", Phrase::Automatic),
    ("Otomatik yanıt", "Turkish", Phrase::Automatic),
    ("Автоматический ответ", "Russian", Phrase::Automatic),
];

/// Reply and forward prefixes of mail clients in various languages.
const REPLY_PREFIXES: &[&str] = &[
    "re", "aw", "antw", "antwort", "sv", "vs", "vb", "fw", "fwd", "wg", "tr", "rv", "r", "rif", "res", "enc", "odp",
    "pd", "doorst", "ynt", "ref",
];

/// Lotus Notes and Domino name the person at the end: "Jane Doe is out of the office.",
/// "Jane Doe ist außer Haus.", optionally with "(returning 02.05.2024)".
static ABSENCE_SUFFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\S\s+(?:is out of (?:the )?office|ist au(?:ß|ss)er haus|est absente? du bureau)(?:\s*\((?:returning|zurück)[^)]*\))?\s*\.?\s*$",
    )
    .expect("absence suffix pattern")
});

/// The matched table entry (phrase, language) when a subject is that of an automatic reply.
pub fn out_of_office(subject: &str) -> Option<(&'static str, &'static str)> {
    let mut s = strip_reply_prefixes(subject);
    let close = match s.chars().next() {
        Some('[') => Some(']'),
        Some('(') => Some(')'),
        _ => None,
    };
    if close.is_some() {
        s = s.get(1..).unwrap_or("").trim_start();
    }
    for (phrase, language, how) in OUT_OF_OFFICE_SUBJECTS {
        let Some(end) = starts_with_folded(s, phrase) else {
            continue;
        };
        let rest = s.get(end..).unwrap_or("");
        let after = rest.trim_start();
        let ends = rest
            .trim_end_matches(|c: char| c.is_whitespace() || c == '.' || c == '!')
            .is_empty();
        let ok = ends
            || after.starts_with(':')
            || close.is_some_and(|c| after.starts_with(c))
            || (*how == Phrase::Automatic && (rest.starts_with(" - ") || rest.starts_with(" – ")));
        if ok {
            return Some((phrase, language));
        }
    }
    // The suffix form needs a name before it; short subjects only.
    if subject.len() <= 200 && ABSENCE_SUFFIX.is_match(subject) {
        return Some(("is out of the office", "English/German/French (Lotus Notes)"));
    }
    None
}

/// The subject without leading reply/forward prefixes ("Re: AW: ", "RE : ", "Re[2]: ").
fn strip_reply_prefixes(subject: &str) -> &str {
    let mut s = subject.trim_start();
    loop {
        let word_end = s.find(|c: char| !c.is_alphabetic()).unwrap_or(s.len());
        let Some(word) = s.get(..word_end) else { break };
        if word.is_empty() || !REPLY_PREFIXES.iter().any(|p| p.eq_ignore_ascii_case(word)) {
            break;
        }
        let mut rest = s.get(word_end..).unwrap_or("");
        // A counter: "Re[2]:", "Re(2):".
        if let Some(inner) = rest.strip_prefix('[').or_else(|| rest.strip_prefix('(')) {
            let digits = inner.find(|c: char| !c.is_ascii_digit()).unwrap_or(inner.len());
            match inner.get(digits..) {
                Some(after) if digits > 0 && (after.starts_with(']') || after.starts_with(')')) => {
                    rest = after.get(1..).unwrap_or("");
                }
                _ => break,
            }
        }
        match rest.trim_start_matches(' ').strip_prefix(':') {
            Some(after) => s = after.trim_start(),
            None => break,
        }
    }
    s
}

/// A character compared without case and accents, as one or two lower-case letters.
fn fold(c: char) -> (char, Option<char>) {
    let lower = if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        let mut l = c.to_lowercase();
        match (l.next(), l.next()) {
            (Some(one), None) => one,
            _ => c,
        }
    };
    let base = match lower {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ą' | 'ā' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'ď' => 'd',
        'è' | 'é' | 'ê' | 'ë' | 'ę' | 'ě' | 'ē' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'ı' => 'i',
        'ł' => 'l',
        'ñ' | 'ń' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ő' => 'o',
        'ř' => 'r',
        'ś' | 'š' | 'ş' => 's',
        'ť' => 't',
        'ù' | 'ú' | 'û' | 'ü' | 'ů' | 'ű' => 'u',
        'ý' | 'ÿ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        'ğ' => 'g',
        'ß' => return ('s', Some('s')),
        'æ' => return ('a', Some('e')),
        'œ' => return ('o', Some('e')),
        '\u{a0}' | '\u{2007}' | '\u{202f}' => ' ',
        '\u{2010}' | '\u{2011}' => '-',
        '’' => '\'',
        other => other,
    };
    (base, None)
}

/// When `s` starts with `phrase` (compared with `fold`), the byte length of that start of `s`.
fn starts_with_folded(s: &str, phrase: &str) -> Option<usize> {
    let mut want = phrase
        .chars()
        .flat_map(|c| {
            let (a, b) = fold(c);
            std::iter::once(a).chain(b)
        })
        .peekable();
    want.peek()?;
    for (i, c) in s.char_indices() {
        let (a, b) = fold(c);
        for got in std::iter::once(a).chain(b) {
            if want.next() != Some(got) {
                return None;
            }
        }
        if want.peek().is_none() {
            return Some(i + c.len_utf8());
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Reports (RFC 6522 multipart/report)

/// What was found in the parts of a report or bounce.
#[derive(Default)]
struct ReportParts {
    /// The text of the message/delivery-status part.
    delivery_status: Option<String>,
    /// A message/disposition-notification part is present.
    disposition: bool,
    /// The Message-ID of the returned message or headers.
    returned_id: Option<String>,
}

/// DSNs, MDNs and other reports, recognised by the top-level Content-Type.
fn report(inbound: &Inbound, raw: &[u8]) -> Option<AutoMail> {
    let ctype = inbound.header("content-type")?;
    let media = media_type(ctype);
    let eq = |m: &str| media.eq_ignore_ascii_case(m);
    if eq("multipart/report") {
        let report_type = content_type_param(ctype, "report-type").unwrap_or("");
        let rt = |t: &str| report_type.eq_ignore_ascii_case(t);
        if rt("disposition-notification") || rt("global-disposition-notification") {
            return Some(receipt(format!(
                "read receipt (multipart/report; report-type={report_type})"
            )));
        }
        let parts = report_parts(raw);
        if rt("delivery-status") || rt("global-delivery-status") || parts.delivery_status.is_some() {
            return Some(dsn(inbound, parts));
        }
        if parts.disposition {
            return Some(receipt("read receipt (message/disposition-notification part)".into()));
        }
        let shown = if report_type.is_empty() { "none" } else { report_type };
        return Some(AutoMail {
            kind: AutoKind::Machine,
            reason: Some(format!("multipart/report; report-type={}", quoted(shown))),
            ours: false,
            bounce: None,
        });
    }
    if eq("message/delivery-status") || eq("message/global-delivery-status") {
        return Some(dsn(inbound, report_parts(raw)));
    }
    if eq("message/disposition-notification") || eq("message/global-disposition-notification") {
        return Some(receipt(format!("read receipt (Content-Type: {})", quoted(media))));
    }
    None
}

fn receipt(reason: String) -> AutoMail {
    AutoMail {
        kind: AutoKind::Receipt,
        reason: Some(reason),
        ours: false,
        bounce: None,
    }
}

/// A standard delivery status notification.
fn dsn(inbound: &Inbound, parts: ReportParts) -> AutoMail {
    let bounce = build_bounce(inbound, parts, false);
    let what = match (bounce.permanent, bounce.status.as_deref()) {
        (true, Some(s)) => format!("failed, {s}"),
        (true, None) => "failed".to_string(),
        (false, Some(s)) => format!("not final, {s}"),
        (false, None) => "not final".to_string(),
    };
    AutoMail {
        kind: AutoKind::Bounce,
        reason: Some(format!("delivery status notification ({what})")),
        ours: false,
        bounce: Some(bounce),
    }
}

/// Read the message again and collect the report parts at its top level.
fn report_parts(raw: &[u8]) -> ReportParts {
    let mut out = ReportParts::default();
    let mut mended = None;
    let (Some(msg), _) = super::parse::parse_mime(skip_mbox_separator(raw), &mut mended) else {
        return out;
    };
    for part in &msg.parts {
        let Some(ct) = part.content_type() else { continue };
        let top = ct.ctype();
        let sub = ct.subtype().unwrap_or("");
        let is = |t: &str, s: &str| top.eq_ignore_ascii_case(t) && sub.eq_ignore_ascii_case(s);
        if is("message", "delivery-status") || is("message", "global-delivery-status") {
            if out.delivery_status.is_none() {
                let bytes = part.contents();
                let bytes = bytes.get(..MAX_DELIVERY_STATUS).unwrap_or(bytes);
                out.delivery_status = Some(String::from_utf8_lossy(bytes).into_owned());
            }
        } else if is("message", "disposition-notification") || is("message", "global-disposition-notification") {
            out.disposition = true;
        } else if is("message", "rfc822") || is("message", "global") {
            if out.returned_id.is_none() {
                out.returned_id = match &part.body {
                    PartType::Message(inner) => inner.message_id().and_then(normalise_message_id),
                    _ => None,
                }
                .or_else(|| header_block_message_id(part.contents()));
            }
        } else if (is("text", "rfc822-headers")
            || is("message", "global-headers")
            || is("message", "rfc822-headers")
            || is("text", "rfc822-header"))
            && out.returned_id.is_none()
        {
            out.returned_id = header_block_message_id(part.contents());
        }
    }
    out
}

/// A bounce from what the report parts and the text of the message say.
fn build_bounce(inbound: &Inbound, parts: ReportParts, subject_says_delay: bool) -> Bounce {
    let mut bounce = Bounce::default();
    let mut action: Option<String> = None;
    // Gmail names the returned message in the per-message fields.
    let mut reported_id: Option<String> = None;
    // A report whose MIME structure is broken (unclosed inner multiparts) has its fields in
    // the text.
    let delivery_status = parts.delivery_status.as_deref().or_else(|| {
        DSN_FIELDS
            .find(&inbound.text)
            .and_then(|m| inbound.text.get(m.start()..))
    });
    if let Some(ds) = delivery_status {
        let groups = field_groups(ds);
        reported_id = groups
            .iter()
            .find_map(|g| field(g, "x-original-message-id"))
            .and_then(header_value_id);
        let recipients: Vec<&Vec<(String, String)>> = groups
            .iter()
            .filter(|g| {
                ["final-recipient", "original-recipient", "action", "status"]
                    .iter()
                    .any(|n| field(g, n).is_some())
            })
            .collect();
        let failed = |g: &&&Vec<(String, String)>| {
            field(g, "action").is_some_and(|a| first_token(a).eq_ignore_ascii_case("failed"))
                || field(g, "status").is_some_and(|s| s.trim_start().starts_with('5'))
        };
        if let Some(group) = recipients.iter().find(failed).or(recipients.first()) {
            let address = |name: &str| {
                field(group, name)
                    .map(strip_type)
                    .map(|a| {
                        a.trim_matches(|c: char| c == '<' || c == '>' || c.is_whitespace())
                            .to_string()
                    })
                    .filter(|a| !a.is_empty() && !a.eq_ignore_ascii_case("unknown"))
            };
            bounce.recipient = address("original-recipient").or_else(|| address("final-recipient"));
            bounce.status = field(group, "status").and_then(|s| find_status(s, true));
            bounce.diagnostic = field(group, "diagnostic-code")
                .map(|d| clean_diagnostic(strip_type(d)))
                .filter(|d| !d.is_empty());
            action = field(group, "action").map(|a| first_token(a).to_ascii_lowercase());
        }
    }

    let text = inbound.text.as_str();
    let report_text = report_portion(text);
    if bounce.recipient.is_none() {
        bounce.recipient = find_recipient(report_text);
    }
    if bounce.diagnostic.is_none() {
        bounce.diagnostic = find_diagnostic(report_text);
    }
    // "5.0.0" (other, undefined) says less than the code the remote server gave.
    if let Some(generic) = bounce.status.as_deref().filter(|s| s.ends_with(".0.0")) {
        let specific = bounce.diagnostic.as_deref().and_then(|d| find_status(d, false));
        if let Some(specific) = specific.filter(|s| s.get(..1) == generic.get(..1) && !s.ends_with(".0.0")) {
            bounce.status = Some(specific);
        }
    }
    if bounce.status.is_none() {
        bounce.status = bounce
            .diagnostic
            .as_deref()
            .and_then(|d| find_status(d, false))
            .or_else(|| find_status(report_text, false));
    }
    bounce.original_message_id = parts
        .returned_id
        .or(reported_id)
        .or_else(|| message_id_line(text))
        .or_else(|| inbound.in_reply_to.first().cloned());
    bounce.permanent = permanent(
        action.as_deref(),
        bounce.status.as_deref(),
        report_text,
        subject_says_delay,
    );
    bounce
}

/// The start of delivery-status fields in a text.
static DSN_FIELDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?mi)^(?:Reporting-MTA|Final-Recipient|Original-Recipient)[ \t]*:").expect("dsn fields pattern")
});

/// Whether a report is final: the Action field when there is one, else the wording and the
/// status code.
fn permanent(action: Option<&str>, status: Option<&str>, text: &str, subject_says_delay: bool) -> bool {
    match action {
        Some("failed") => return true,
        Some("delayed" | "delivered" | "relayed" | "expanded") => return false,
        _ => {}
    }
    if subject_says_delay {
        return false;
    }
    let head = head_bytes(text, BOUNCE_TEXT_HEAD);
    if DELAY_PHRASES.is_match(head) {
        return false;
    }
    if PERMANENT_PHRASES.is_match(head) {
        return true;
    }
    status.is_none_or(|s| s.starts_with('5'))
}

// ---------------------------------------------------------------------------------------------
// Bounces in free text

/// Subjects of bounces and delay warnings (compared at the start, ignoring case and accents);
/// `true` marks a delay warning.
const BOUNCE_SUBJECTS: &[(&str, bool)] = &[
    ("Undelivered Mail Returned to Sender", false),
    ("Undeliverable", false),
    ("Undeliverable mail", false),
    ("Undelivered mail", false),
    ("Mail delivery failed", false),
    ("Mail delivery failure", false),
    ("Mail System Error - Returned Mail", false),
    ("Delivery Status Notification (Failure)", false),
    ("Delivery Status Notification (Delay)", true),
    ("Delivery Status Notification", false),
    ("Delivery Notification: Delivery has failed", false),
    ("Delivery failure", false),
    ("Delivery failed", false),
    ("Delivery has failed", false),
    ("Returned mail", false),
    ("Failure notice", false),
    ("Failed mail", false),
    ("Nondeliverable mail", false),
    ("Non-deliverable", false),
    ("Message not delivered", false),
    ("Mail could not be delivered", false),
    ("Unzustellbar", false),
    ("Nicht zustellbar", false),
    ("Non remis", false),
    ("Non distribuable", false),
    ("Onbestelbaar", false),
    ("No se puede entregar", false),
    ("Non recapitabile", false),
    ("Kan inte levereras", false),
    ("Ej levererbart", false),
    ("Warning: could not send message", true),
    ("Delayed Mail", true),
    ("Delivery delayed", true),
    ("Mail delivery delayed", true),
    ("Message delivery delayed", true),
    ("Zustellung verzögert", true),
    ("Warning: message", true),
];

/// Opening sentences of bounce texts (ASCII case-insensitive, anywhere in the first 4 KB).
const BOUNCE_BODY_PHRASES: &[&str] = &[
    "This is the qmail-send program",
    "This message was created automatically by mail delivery software",
    "This is the mail system at host",
    "I'm sorry to have to inform you that your message could not",
    "The original message was received at",
    "Delivery to the following recipient failed permanently",
    "Delivery to the following recipients failed",
    "Delivery has failed to these recipients or groups",
    "Your message did not reach some or all of the intended recipients",
    "Your message couldn't be delivered",
    "Your message could not be delivered",
    "This is an automatically generated Delivery Status Notification",
    "Unable to deliver message to the following recipients",
    "The following addresses had permanent fatal errors",
    "could not be delivered to one or more recipients",
    "I'm afraid I wasn't able to deliver your message",
    "Message delivery to the host",
    "Delivery is delayed to these recipients or groups",
];

static BOUNCE_BODY: LazyLock<AhoCorasick> = LazyLock::new(|| ascii_ci(BOUNCE_BODY_PHRASES));

/// Wording of delay warnings.
static DELAY_PHRASES: LazyLock<AhoCorasick> = LazyLock::new(|| {
    ascii_ci(&[
        "warning only",
        "warning message only",
        "will be retried",
        "will retry",
        "will continue trying",
        "will keep trying",
        "still being retried",
        "delivery is delayed",
        "has been delayed",
        "no action is required",
        "not yet been delivered",
    ])
});

/// Wording of permanent failures.
static PERMANENT_PHRASES: LazyLock<AhoCorasick> = LazyLock::new(|| {
    ascii_ci(&[
        "permanent error",
        "permanent failure",
        "permanent fatal error",
        "failed permanently",
        "permanently failed",
        "given up",
        "giving up",
        "delivery has failed",
        "could not be delivered",
        "couldn't be delivered",
        "was not delivered",
        "wasn't able to deliver",
        "undeliverable",
        "user unknown",
        "does not exist",
    ])
});

/// Where the returned message starts in the text of a bounce.
static RETURNED_MESSAGE: LazyLock<AhoCorasick> = LazyLock::new(|| {
    ascii_ci(&[
        "below this line is a copy of the message",
        "this is a copy of the message",
        "original message follows",
        "----- original message -----",
        "original message headers",
        "message headers follow",
        "returned message follows",
        "\nreturn-path:",
        "\nreceived:",
    ])
});

fn ascii_ci(patterns: &[&str]) -> AhoCorasick {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(patterns)
        .expect("fixed phrase list")
}

/// A bounce without a delivery-status report: from MAILER-DAEMON / postmaster or the null
/// sender, with a bounce subject or a bounce sentence in the text.
fn free_text_bounce(ctx: &Ctx<'_>, raw: &[u8]) -> Option<AutoMail> {
    let inbound = ctx.inbound;
    let subject = strip_reply_prefixes(&inbound.subject);
    let by_subject = BOUNCE_SUBJECTS.iter().find_map(|(phrase, delay)| {
        let end = starts_with_folded(subject, phrase)?;
        // The phrase must end at a word boundary: "Undeliverable:", not "Undeliverables".
        let next = subject.get(end..).and_then(|r| r.chars().next());
        (!next.is_some_and(char::is_alphanumeric)).then_some((*phrase, *delay))
    });
    let head = head_bytes(&inbound.text, BOUNCE_TEXT_HEAD);
    let by_text = BOUNCE_BODY
        .find(head)
        .and_then(|m| BOUNCE_BODY_PHRASES.get(m.pattern().as_usize()));
    let found = match (by_subject, by_text) {
        (Some((phrase, _)), _) => format!("subject \"{phrase}\""),
        (None, Some(sentence)) => format!("text \"{sentence}\""),
        (None, None) => return None,
    };
    let who = ctx
        .daemon_sender()
        .map(quoted)
        .or_else(|| ctx.null_sender().map(str::to_string))
        .unwrap_or_default();
    let bounce = build_bounce(inbound, report_parts(raw), by_subject.is_some_and(|(_, delay)| delay));
    Some(AutoMail {
        kind: AutoKind::Bounce,
        reason: Some(format!("bounce ({who}, {found})")),
        ours: false,
        bounce: Some(bounce),
    })
}

/// The text of a bounce before the returned message.
fn report_portion(text: &str) -> &str {
    match RETURNED_MESSAGE.find(text) {
        Some(m) => text.get(..m.start()).unwrap_or(text),
        None => text,
    }
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+",
    )
    .expect("address pattern")
});

/// A line that is nothing but an address: "  bob@example.org", "<bob@example.org>:".
static ADDRESS_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^[ \t]*<?([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+)>?:?[ \t]*(?:\([^)\n]*\))?[ \t]*$",
    )
    .expect("address line pattern")
});

/// The recipient a bounce text names: an address alone on a line, else the first address
/// that is not a mail system's.
fn find_recipient(text: &str) -> Option<String> {
    ADDRESS_LINE
        .captures_iter(text)
        .filter_map(|c| c.get(1))
        .map(|m| m.as_str())
        .chain(EMAIL.find_iter(text).map(|m| m.as_str()))
        .find(|a| !is_daemon(a))
        .map(|a| a.trim_end_matches('.').to_string())
}

/// An SMTP reply at the start of a line: "550 5.1.1 …", "Remote host said: 554 …".
static SMTP_REPLY_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?mi)^[ \t]*(?:remote host said:[ \t]*)?([45][0-9][0-9][ -].+)$").expect("smtp reply pattern")
});

/// The line of a bounce text that explains the failure: the first with a status code, else
/// the first SMTP reply.
fn find_diagnostic(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|l| find_status(l, false).is_some())
        .map(|l| l.trim())
        .map(|l| strip_prefix_ci(l, "remote host said:").trim())
        .or_else(|| {
            SMTP_REPLY_LINE
                .captures(text)
                .and_then(|c| c.get(1))
                .map(|m| m.as_str().trim())
        })?;
    let line = clean_diagnostic(line);
    (!line.is_empty()).then_some(line)
}

static DOTTED_NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9]+(?:\.[0-9]+)*").expect("dotted number pattern"));

/// The first enhanced status code (RFC 3463: class.subject.detail) in a text. Class 4 or 5
/// (also 2 with `success`), a one-digit subject, a detail of up to three digits; IP addresses
/// and version numbers are not codes.
fn find_status(text: &str, success: bool) -> Option<String> {
    DOTTED_NUMBER.find_iter(text).find_map(|m| {
        let before = text.get(..m.start()).and_then(|b| b.chars().next_back());
        if before.is_some_and(|c| c.is_alphanumeric()) {
            return None;
        }
        let mut it = m.as_str().split('.');
        let (class, subject, detail) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        let class_ok = class == "4" || class == "5" || (success && class == "2");
        (class_ok && subject.len() == 1 && (1..=3).contains(&detail.len())).then(|| m.as_str().to_string())
    })
}

/// A "Message-ID:" header line in a text (the returned message of a bounce).
static MESSAGE_ID_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?mi)^[ \t>]*message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]+>|[^<>\s]+@[^<>\s]+)")
        .expect("message-id pattern")
});

fn message_id_line(text: &str) -> Option<String> {
    MESSAGE_ID_LINE
        .captures(text)
        .and_then(|c| c.get(1))
        .and_then(|m| normalise_message_id(m.as_str()))
}

/// The Message-ID field of a header block (the returned headers of a DSN).
fn header_block_message_id(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes.get(..MAX_DELIVERY_STATUS).unwrap_or(bytes));
    let fields = field_groups(&text);
    fields
        .first()
        .and_then(|g| field(g, "message-id"))
        .and_then(header_value_id)
}

/// The id in a Message-ID field value: the `<…>` part, else the first word.
fn header_value_id(value: &str) -> Option<String> {
    let id = match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => value.get(open..=close),
        _ => value.split_whitespace().next(),
    }?;
    normalise_message_id(id)
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Header-like field groups separated by blank lines: `name: value` with folded continuation
/// lines joined; names in lower case. At most `MAX_GROUPS` groups.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups: Vec<Vec<(String, String)>> = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
                if groups.len() >= MAX_GROUPS {
                    return groups;
                }
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(char::is_whitespace) {
                current.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// All values of a header (name compared case-insensitively).
fn header_values<'a>(inbound: &'a Inbound, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    inbound
        .headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A value without its type prefix: "rfc822; bob@x" → "bob@x", "smtp; 550 …" → "550 …".
fn strip_type(value: &str) -> &str {
    match value.split_once(';') {
        Some((kind, rest))
            if !kind.trim().is_empty()
                && kind.trim().len() <= 20
                && kind
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') =>
        {
            rest.trim()
        }
        _ => value.trim(),
    }
}

/// A multi-line SMTP reply ("550-5.1.1 The account … 550-5.1.1 double-checking …") turned
/// into one line without the repeated code prefixes.
fn clean_diagnostic(text: &str) -> String {
    static MULTI_LINE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[245][0-9][0-9]-").expect("multi-line reply"));
    static CONTINUATION: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\s[245][0-9][0-9][ -][245]\.[0-9]{1,3}\.[0-9]{1,3}\s").expect("continuation"));
    let line = one_line(text);
    if !MULTI_LINE.is_match(&line) {
        return truncate(&line, MAX_DIAGNOSTIC);
    }
    // The first line keeps its code; the codes of the continuation lines go.
    let mut out = String::with_capacity(line.len());
    let mut last = 0;
    for m in CONTINUATION.find_iter(&line) {
        out.push_str(line.get(last..m.start()).unwrap_or(""));
        out.push(' ');
        last = m.end();
    }
    out.push_str(line.get(last..).unwrap_or(""));
    truncate(&one_line(&out), MAX_DIAGNOSTIC)
}

/// A diagnostic without the SMTP reply code and the status it is shown with:
/// "550 5.1.1 <bob@x>: User unknown" → "<bob@x>: User unknown".
fn strip_reply_code<'a>(diagnostic: &'a str, status: &str) -> &'a str {
    let d = diagnostic.trim_start();
    let without_status = |s: &'a str| {
        s.strip_prefix(status)
            .filter(|rest| rest.is_empty() || rest.starts_with([' ', ';', ':', ',']))
            .map(|rest| rest.trim_start_matches([';', ':', ',']).trim_start())
    };
    let code_len = d.bytes().take_while(u8::is_ascii_digit).count();
    let after_code = (code_len == 3 && d.get(3..4).is_some_and(|s| s == " " || s == "-"))
        .then(|| d.get(4..).unwrap_or("").trim_start());
    after_code
        .and_then(without_status)
        .or_else(|| without_status(d))
        .unwrap_or(d)
}

/// The first token of a header value: up to `;`, `,`, `(` or whitespace.
fn first_token(value: &str) -> &str {
    let value = value.trim();
    let end = value
        .find(|c: char| c == ';' || c == ',' || c == '(' || c.is_whitespace())
        .unwrap_or(value.len());
    value.get(..end).unwrap_or("")
}

/// The media type of a Content-Type value ("multipart/report").
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

/// A parameter of a Content-Type value, without quotes.
fn content_type_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|p| {
        let (key, val) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| val.trim().trim_matches('"').trim())
    })
}

/// ASCII case-insensitive substring test (no allocation).
fn contains_ci(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> &'a str {
    match s.get(..prefix.len()) {
        Some(p) if p.eq_ignore_ascii_case(prefix) => s.get(prefix.len()..).unwrap_or(s),
        _ => s,
    }
}

/// The first `n` bytes of a text (bytes, for the phrase searches).
fn head_bytes(text: &str, n: usize) -> &[u8] {
    let bytes = text.as_bytes();
    bytes.get(..n).unwrap_or(bytes)
}

/// Control characters (CR, LF, tabs …) as spaces, runs of whitespace as one space.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// At most `max` bytes, cut at a character boundary, with "…" when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = s.get(..end).unwrap_or("").trim_end().to_string();
    out.push('…');
    out
}

/// A value shown in a reason: one line, at most `MAX_QUOTED` bytes.
fn quoted(value: &str) -> String {
    truncate(&one_line(value), MAX_QUOTED)
}

/// A leading mbox `From ` line is not part of the message.
fn skip_mbox_separator(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"From ") {
        match raw.iter().position(|&b| b == b'\n') {
            Some(nl) => raw.get(nl + 1..).unwrap_or(raw),
            None => raw,
        }
    } else {
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse;

    fn names() -> (Vec<String>, Vec<String>) {
        (
            vec!["helpdesk.example".to_string()],
            vec!["helpdesk.example".to_string()],
        )
    }

    /// Detect on raw bytes with an envelope sender.
    fn check_from(raw: &[u8], envelope_sender: &str) -> AutoMail {
        let (loops, domains) = names();
        let own = Own {
            loop_names: &loops,
            message_id_domains: &domains,
        };
        detect(&parse(raw), raw, Some(envelope_sender), &own)
    }

    #[test]
    fn an_unknown_envelope_sender_is_not_the_null_sender() {
        let (loops, domains) = names();
        let own = Own { loop_names: &loops, message_id_domains: &domains };
        let m = detect(&parse(HUMAN.as_bytes()), HUMAN.as_bytes(), None, &own);
        assert_eq!(m.kind, AutoKind::Human, "{m:?}");
    }

    /// Detect with an ordinary (non-null) envelope sender.
    fn check(raw: &[u8]) -> AutoMail {
        check_from(raw, "someone@sender.example")
    }

    fn fixture(name: &str) -> &'static [u8] {
        match name {
            "outlook-human" => include_bytes!("../../tests/fixtures/auto/outlook-human.eml"),
            "exchange-oof-en" => include_bytes!("../../tests/fixtures/auto/exchange-oof-en.eml"),
            "exchange-oof-de" => include_bytes!("../../tests/fixtures/auto/exchange-oof-de.eml"),
            "gmail-vacation" => include_bytes!("../../tests/fixtures/auto/gmail-vacation.eml"),
            "sieve-vacation" => include_bytes!("../../tests/fixtures/auto/sieve-vacation.eml"),
            "postfix-dsn" => include_bytes!("../../tests/fixtures/auto/postfix-dsn.eml"),
            "postfix-delay" => include_bytes!("../../tests/fixtures/auto/postfix-delay.eml"),
            "exim-dsn" => include_bytes!("../../tests/fixtures/auto/exim-dsn.eml"),
            "exim-plain" => include_bytes!("../../tests/fixtures/auto/exim-plain.eml"),
            "gmail-dsn" => include_bytes!("../../tests/fixtures/auto/gmail-dsn.eml"),
            "exchange-ndr" => include_bytes!("../../tests/fixtures/auto/exchange-ndr.eml"),
            "qmail-bounce" => include_bytes!("../../tests/fixtures/auto/qmail-bounce.eml"),
            "mdn" => include_bytes!("../../tests/fixtures/auto/mdn.eml"),
            "mailing-list" => include_bytes!("../../tests/fixtures/auto/mailing-list.eml"),
            "newsletter" => include_bytes!("../../tests/fixtures/auto/newsletter.eml"),
            _ => panic!("no fixture {name}"),
        }
    }

    fn reason(m: &AutoMail) -> &str {
        m.reason.as_deref().unwrap_or("")
    }

    fn bounce(m: &AutoMail) -> &Bounce {
        m.bounce.as_ref().expect("bounce data")
    }

    const HUMAN: &str = "From: Anna <anna@customer.example>\nTo: support@helpdesk.example\n\
        Subject: Printer broken\nMessage-ID: <abc@customer.example>\n\nThe printer is broken.\n";

    /// A human message with extra header lines and a subject.
    fn with(headers: &str, subject: &str) -> Vec<u8> {
        format!(
            "From: Anna <anna@customer.example>\nTo: support@helpdesk.example\nSubject: {subject}\n\
             Message-ID: <abc@customer.example>\n{headers}\nHello.\n"
        )
        .into_bytes()
    }

    // --- human mail -------------------------------------------------------------------------

    #[test]
    fn ordinary_mail_is_human() {
        let m = check(HUMAN.as_bytes());
        assert_eq!(m, AutoMail::default());
        assert!(!m.is_auto());
    }

    #[test]
    fn ordinary_outlook_mail_is_human() {
        // Exchange headers, a distribution-group X-Auto-Response-Suppress, and a subject that
        // starts with "Out of office" followed by other words.
        let m = check(fixture("outlook-human"));
        assert_eq!(m.kind, AutoKind::Human, "{:?}", m.reason);
        assert_eq!(m.reason, None);
    }

    #[test]
    fn out_of_office_mid_sentence_is_human() {
        for subject in [
            "Cannot set my Out of Office in Outlook",
            "Re: How do I turn on automatic replies?",
            "Out of office laptop needs repair",
            "Abwesenheitsnotiz einrichten funktioniert nicht",
            "Autoreplying rule broken",
            "Fuori sede: non funziona la VPN",
        ] {
            let got = out_of_office(subject);
            // "Fuori sede:" counts: the phrase before a colon is how Outlook writes it.
            if subject.starts_with("Fuori") {
                assert!(got.is_some(), "{subject}");
            } else {
                assert_eq!(got, None, "{subject}");
                assert_eq!(check(&with("", subject)).kind, AutoKind::Human, "{subject}");
            }
        }
    }

    #[test]
    fn auto_submitted_no_and_partial_suppress_are_human() {
        for headers in [
            "Auto-Submitted: no\n",
            "Auto-Submitted: No (manual)\n",
            "X-Auto-Response-Suppress: OOF\n",
            "X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply\n",
            "Precedence: first-class\n",
            "X-Loop: support@customer.example\n",
            "X-Autoreply: no\n",
            "X-Autogenerated: Forward\n",
            "X-Mailer: Microsoft Outlook 16.0\n",
        ] {
            let m = check(&with(headers, "Printer broken"));
            assert_eq!(m.kind, AutoKind::Human, "{headers}: {:?}", m.reason);
        }
    }

    // --- our own mail ----------------------------------------------------------------------

    #[test]
    fn our_loop_header_is_ours() {
        let m = check(&with(
            "X-Ticketmilter-Loop:   HelpDesk.Example \n",
            "Re: Printer broken",
        ));
        assert!(m.ours);
        assert_eq!(m.kind, AutoKind::Machine);
        assert!(reason(&m).contains("X-Ticketmilter-Loop"), "{}", reason(&m));
    }

    #[test]
    fn another_installations_loop_header_is_machine_not_ours() {
        let m = check(&with(
            "X-Ticketmilter-Loop: desk.other.example\nAuto-Submitted: auto-replied\n",
            "Your request was received",
        ));
        assert!(!m.ours);
        assert_eq!(m.kind, AutoKind::Machine);
        assert!(
            reason(&m).starts_with("X-Ticketmilter-Loop: desk.other.example (another installation)"),
            "{}",
            reason(&m)
        );
    }

    #[test]
    fn our_message_id_is_ours() {
        let raw = b"From: Helpdesk <support@helpdesk.example>\nTo: support@helpdesk.example\n\
            Subject: [Ticket#1] Your request\nMessage-ID: <tm.20240514.ab12@HelpDesk.Example>\n\nText\n";
        let m = check(raw);
        assert!(m.ours);
        assert_eq!(m.kind, AutoKind::Machine);
        assert!(reason(&m).contains("tm.20240514.ab12@HelpDesk.Example"));

        // A person answering our notification refers to our Message-ID; that is not ours.
        let raw = b"From: Anna <anna@customer.example>\nSubject: Re: [Ticket#1] Your request\n\
            Message-ID: <xyz@customer.example>\nIn-Reply-To: <tm.20240514.ab12@helpdesk.example>\n\nThanks\n";
        assert_eq!(check(raw), AutoMail::default());

        // The same local part at another domain, or our domain without the prefix, is not ours.
        for id in ["<tm.1@elsewhere.example>", "<abc@helpdesk.example>"] {
            let raw = format!("From: a@b.example\nSubject: x\nMessage-ID: {id}\n\nText\n");
            assert!(!check(raw.as_bytes()).ours, "{id}");
        }
    }

    #[test]
    fn own_names_compare_loosely() {
        let loops = vec![" Desk-1 ".to_string()];
        let domains = vec!["helpdesk.example.".to_string()];
        let own = Own {
            loop_names: &loops,
            message_id_domains: &domains,
        };
        assert!(own.owns_loop_name("desk-1"));
        assert!(!own.owns_loop_name(""));
        assert!(own.owns_message_id("<TM.x@helpdesk.example>"));
        assert!(own.owns_message_id("tm.x@HELPDESK.EXAMPLE."));
        assert!(!own.owns_message_id("tm.x"));
        assert!(!own.owns_message_id("xtm.x@helpdesk.example"));
        let empty = Own {
            loop_names: &[],
            message_id_domains: &[],
        };
        assert!(!empty.owns_message_id("tm.x@helpdesk.example"));
    }

    // --- auto-replies ----------------------------------------------------------------------

    #[test]
    fn exchange_out_of_office_english() {
        let m = check(fixture("exchange-oof-en"));
        assert_eq!(m.kind, AutoKind::AutoReply, "{}", reason(&m));
        // The first signal gives the reason; the more specific one is added.
        assert!(
            reason(&m).starts_with("Auto-Submitted: auto-generated; "),
            "{}",
            reason(&m)
        );
        assert!(reason(&m).contains("X-MS-Exchange-Inbox-Rules-Loop"), "{}", reason(&m));
        assert!(!m.ours);
        assert_eq!(m.bounce, None);
    }

    #[test]
    fn exchange_out_of_office_german() {
        let m = check(fixture("exchange-oof-de"));
        assert_eq!(m.kind, AutoKind::AutoReply, "{}", reason(&m));
        assert!(
            reason(&m).starts_with("X-Auto-Response-Suppress: All"),
            "{}",
            reason(&m)
        );
        // Without the headers, the decoded subject alone is enough.
        assert_eq!(
            out_of_office("Automatische Antwort: Drucker im 3. Stock stört"),
            Some(("Automatische Antwort", "German"))
        );
    }

    #[test]
    fn gmail_vacation_responder() {
        let m = check(fixture("gmail-vacation"));
        assert_eq!(m.kind, AutoKind::AutoReply);
        assert_eq!(reason(&m), "Auto-Submitted: auto-replied");
    }

    #[test]
    fn sieve_vacation_reply() {
        // Pigeonhole: null sender, Auto-Submitted with a comment, Precedence: bulk.
        let m = check_from(fixture("sieve-vacation"), "");
        assert_eq!(m.kind, AutoKind::AutoReply);
        assert!(
            reason(&m).starts_with("Auto-Submitted: auto-replied (vacation)"),
            "{}",
            reason(&m)
        );
        assert_eq!(m.bounce, None);
        // Zimbra's form with parameters in a comment, and the RFC 3834 owner-email parameter.
        for value in [
            "auto-replied (zimbra; vacation)",
            "Auto-Replied; owner-email=\"p@uni.example\"",
        ] {
            let m = check(&with(&format!("Auto-Submitted: {value}\n"), "Re: VPN"));
            assert_eq!(m.kind, AutoKind::AutoReply, "{value}");
        }
    }

    #[test]
    fn auto_submitted_other_values_are_machine() {
        for value in ["auto-generated", "auto-notified", "auto-something-else"] {
            let m = check(&with(&format!("Auto-Submitted: {value}\n"), "Backup report"));
            assert_eq!(m.kind, AutoKind::Machine, "{value}");
            assert_eq!(reason(&m), format!("Auto-Submitted: {value}"));
        }
    }

    #[test]
    fn vendor_auto_reply_headers() {
        for header in [
            "X-Autoreply: yes",
            "X-Autorespond: Thanks for your mail",
            "X-Autoresponse: yes",
            "X-Auto-Reply-From: sales@vendor.example",
            "X-Autogenerated: Reply",
            "X-POST-MessageClass: 9; Autoresponder",
            "X-Mailer: vacation 1.2.7",
        ] {
            let m = check(&with(&format!("{header}\n"), "Thanks"));
            assert_eq!(m.kind, AutoKind::AutoReply, "{header}");
            let name = header.split(':').next().unwrap_or_default();
            assert!(reason(&m).starts_with(name), "{header}: {}", reason(&m));
        }
    }

    #[test]
    fn auto_response_suppress_all_alone_is_machine() {
        let m = check(&with("X-Auto-Response-Suppress: All\n", "Your order has shipped"));
        assert_eq!(m.kind, AutoKind::Machine);
        assert_eq!(reason(&m), "X-Auto-Response-Suppress: All");
    }

    #[test]
    fn other_help_desks_loop_headers_are_machine() {
        for header in [
            "X-RT-Loop-Prevention: rt.vendor.example",
            "X-OTRS-Loop: yes",
            "X-Loop: yes",
            "X-Loop: True",
            "X-FC-MachineGenerated: true",
        ] {
            let m = check(&with(&format!("{header}\n"), "[vendor #42] Your request"));
            assert_eq!(m.kind, AutoKind::Machine, "{header}");
        }
    }

    #[test]
    fn precedence_values() {
        for (value, kind) in [
            ("bulk", AutoKind::Bulk),
            ("JUNK", AutoKind::Bulk),
            ("list", AutoKind::List),
            ("auto_reply", AutoKind::AutoReply),
        ] {
            let m = check(&with(&format!("Precedence: {value}\n"), "Hello"));
            assert_eq!(m.kind, kind, "{value}");
            assert_eq!(reason(&m), format!("Precedence: {value}"));
        }
        assert_eq!(check(&with("X-Precedence: bulk\n", "Hello")).kind, AutoKind::Bulk);
    }

    #[test]
    fn out_of_office_subject_without_headers() {
        let m = check(&with(
            "In-Reply-To: <tm.1@helpdesk.example>\n",
            "Automatic reply: Printer broken",
        ));
        assert_eq!(m.kind, AutoKind::AutoReply);
        assert_eq!(
            reason(&m),
            "out-of-office subject \"Automatic reply: Printer broken\" (English)"
        );
    }

    #[test]
    fn out_of_office_subjects_in_many_languages() {
        for subject in [
            "Automatic reply: Your ticket",
            "Out of Office AutoReply: Your ticket",
            "Out of Office: Your ticket",
            "Out of the office",
            "AutoReply: Your ticket",
            "Auto-Reply: Your ticket",
            "Auto reply - John Smith",
            "[Auto-Reply] Your ticket",
            "Re: AW: Automatische Antwort: Ihr Ticket",
            "Abwesenheitsnotiz: Ihr Ticket",
            "Abwesend",
            "AW: Abwesend: Ihr Ticket",
            "Réponse automatique : Votre ticket",
            "Reponse automatique: Votre ticket",
            "RÉPONSE AUTOMATIQUE: VOTRE TICKET",
            "Absence du bureau: Votre ticket",
            "Automatisch antwoord: Uw ticket",
            "Afwezig: Uw ticket",
            "Respuesta automática: Su ticket",
            "RE: Respuesta automatica: Su ticket",
            "Fuera de la oficina: Su ticket",
            "Risposta automatica: Il suo ticket",
            "Fuori sede: Il suo ticket",
            "Resposta automática: O seu ticket",
            "Ausente: O seu ticket",
            "Automatiskt svar: Ditt ärende",
            "SV: Frånvaro: Ditt ärende",
            "Autosvar: Din sag",
            "Fravær: Din sag",
            "Automatisk svar: Din sak",
            "Automaattinen vastaus: Tikettisi",
            "Poissa: Tikettisi",
            "Automatyczna odpowiedź: Twoje zgłoszenie",
            "Automatyczna odpowiedz: Twoje zgloszenie",
            "Odp: Poza biurem: Twoje zgłoszenie",
            "Re[2]: Automatic reply: Your ticket",
            "RE : Automatic reply: Your ticket",
            "Jane Doe is out of the office.",
            "Jane Doe ist außer Haus.",
            "Jane Doe is out of the office (returning 20.05.2024).",
        ] {
            assert!(out_of_office(subject).is_some(), "{subject}");
        }
        for subject in [
            "",
            "Re:",
            "Automatic",
            "Out of office laptop needs repair",
            "Out of office - calendar shows wrong times",
            "Printer out of office",
            "Automatic replies are not sent",
            "Abwesenheit planen",
            "Poissaolot",
            "The printer is out of the office network",
            "Autosvarsregel fungerar inte",
        ] {
            assert_eq!(out_of_office(subject), None, "{subject}");
        }
    }

    #[test]
    fn phrase_table_covers_the_languages() {
        let langs: Vec<&str> = OUT_OF_OFFICE_SUBJECTS.iter().map(|(_, l, _)| *l).collect();
        for lang in [
            "English",
            "German",
            "French",
            "Dutch",
            "Spanish",
            "Italian",
            "Portuguese",
            "Swedish",
            "Danish",
            "Norwegian",
            "Finnish",
            "Polish",
        ] {
            assert!(langs.iter().any(|l| l.contains(lang)), "{lang}");
        }
        // Every phrase matches itself, followed by a colon and as the whole subject.
        for (phrase, _, _) in OUT_OF_OFFICE_SUBJECTS {
            assert!(out_of_office(&format!("{phrase}: x")).is_some(), "{phrase}");
            assert!(out_of_office(phrase).is_some(), "{phrase}");
            assert!(out_of_office(&phrase.to_uppercase()).is_some(), "{phrase}");
        }
    }

    // --- lists and bulk --------------------------------------------------------------------

    #[test]
    fn mailing_list() {
        let m = check(fixture("mailing-list"));
        assert_eq!(m.kind, AutoKind::List);
        assert!(reason(&m).starts_with("Precedence: list"), "{}", reason(&m));
    }

    #[test]
    fn bulk_newsletter() {
        let m = check(fixture("newsletter"));
        assert_eq!(m.kind, AutoKind::Bulk);
        assert!(reason(&m).starts_with("Precedence: bulk"), "{}", reason(&m));
        // Without Precedence, List-Unsubscribe alone still says newsletter.
        let m = check(&with("List-Unsubscribe: <https://news.example/u?x=1>\n", "May news"));
        assert_eq!(m.kind, AutoKind::Bulk);
    }

    #[test]
    fn list_headers_refine_bulk() {
        // Mailman 2 writes Precedence: bulk; List-Id makes it list mail.
        let m = check(&with(
            "Precedence: bulk\nList-Id: <users.lists.example>\n",
            "[users] Hello",
        ));
        assert_eq!(m.kind, AutoKind::List);
        assert_eq!(reason(&m), "Precedence: bulk; List-Id: <users.lists.example>");
        for header in [
            "List-Post: <mailto:u@lists.example>",
            "Mailing-List: contact u-help@lists.example",
        ] {
            assert_eq!(
                check(&with(&format!("{header}\n"), "Hello")).kind,
                AutoKind::List,
                "{header}"
            );
        }
    }

    // --- sender heuristics -----------------------------------------------------------------

    #[test]
    fn null_sender_is_machine() {
        let m = check_from(HUMAN.as_bytes(), "");
        assert_eq!(m.kind, AutoKind::Machine);
        assert_eq!(reason(&m), "null envelope sender");
        assert_eq!(check_from(HUMAN.as_bytes(), "<>").kind, AutoKind::Machine);
        let m = check(&with("Return-Path: < >\n", "Hello"));
        assert_eq!(m.kind, AutoKind::Machine);
        assert_eq!(reason(&m), "Return-Path: <>");
    }

    #[test]
    fn null_sender_with_out_of_office_subject_is_auto_reply() {
        let m = check_from(&with("", "Out of Office: Printer broken"), "");
        assert_eq!(m.kind, AutoKind::AutoReply);
        assert!(reason(&m).starts_with("out-of-office subject"), "{}", reason(&m));
    }

    #[test]
    fn mailer_daemon_without_bounce_text_is_machine() {
        for from in [
            "MAILER-DAEMON@mx.example.org",
            "\"Mail System\" <Postmaster@example.org>",
            "mailer-daemon",
        ] {
            let raw = format!("From: {from}\nTo: support@helpdesk.example\nSubject: Hello\n\nHi.\n");
            let m = check(raw.as_bytes());
            assert_eq!(m.kind, AutoKind::Machine, "{from}");
            assert!(reason(&m).starts_with("sent by "), "{}", reason(&m));
        }
    }

    // --- delivery status notifications -----------------------------------------------------

    #[test]
    fn postfix_dsn() {
        let m = check_from(fixture("postfix-dsn"), "");
        assert_eq!(m.kind, AutoKind::Bounce);
        assert!(!m.ours, "a bounce of our mail is not our mail");
        assert_eq!(reason(&m), "delivery status notification (failed, 5.1.1)");
        let b = bounce(&m);
        assert_eq!(b.original_message_id.as_deref(), Some("tm.5e2d1f0a9b@helpdesk.example"));
        assert_eq!(b.recipient.as_deref(), Some("bob@example.org"));
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            b.diagnostic.as_deref(),
            Some("550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in local recipient table")
        );
        assert!(b.permanent);
        assert_eq!(
            b.reason(),
            "5.1.1 <bob@example.org>: Recipient address rejected: User unknown in local recipient table"
        );
    }

    #[test]
    fn exim_dsn() {
        let m = check_from(fixture("exim-dsn"), "");
        assert_eq!(m.kind, AutoKind::Bounce);
        let b = bounce(&m);
        assert_eq!(b.original_message_id.as_deref(), Some("tm.exim1@helpdesk.example"));
        assert_eq!(b.recipient.as_deref(), Some("carol@example.net"));
        // Status: 5.0.0 says less than the 5.1.1 of the remote server.
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            b.diagnostic.as_deref(),
            Some("550 5.1.1 <carol@example.net>: Recipient address rejected: User unknown")
        );
        assert!(b.permanent);
        assert_eq!(
            b.reason(),
            "5.1.1 <carol@example.net>: Recipient address rejected: User unknown"
        );
    }

    #[test]
    fn exim_plain_text_bounce() {
        let m = check_from(fixture("exim-plain"), "");
        assert_eq!(m.kind, AutoKind::Bounce);
        assert!(reason(&m).contains("Mail delivery failed"), "{}", reason(&m));
        let b = bounce(&m);
        assert_eq!(b.original_message_id.as_deref(), Some("tm.eximold7@helpdesk.example"));
        assert_eq!(b.recipient.as_deref(), Some("gary@legacy.example"));
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            b.diagnostic.as_deref(),
            Some("host mx.legacy.example [192.0.2.77]: 550 5.1.1 <gary@legacy.example>... User unknown")
        );
        assert!(b.permanent);
    }

    #[test]
    fn gmail_dsn() {
        let m = check_from(fixture("gmail-dsn"), "");
        assert_eq!(m.kind, AutoKind::Bounce);
        let b = bounce(&m);
        // No returned message: the per-message X-Original-Message-ID names it.
        assert_eq!(b.original_message_id.as_deref(), Some("tm.gm1@helpdesk.example"));
        assert_eq!(b.recipient.as_deref(), Some("dave@example.com"));
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        let diag = b.diagnostic.as_deref().unwrap_or_default();
        assert!(
            diag.starts_with(
                "550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking"
            ),
            "{diag}"
        );
        assert!(!diag.contains(" 550"), "continuation codes removed: {diag}");
        assert!(b.permanent);
        let line = b.reason();
        assert!(
            line.starts_with("5.1.1 The email account that you tried to reach does not exist."),
            "{line}"
        );
        assert!(line.ends_with("(dave@example.com)"), "{line}");
    }

    #[test]
    fn exchange_ndr() {
        let m = check_from(fixture("exchange-ndr"), "");
        assert_eq!(m.kind, AutoKind::Bounce);
        let b = bounce(&m);
        assert_eq!(b.original_message_id.as_deref(), Some("tm.ndr42@helpdesk.example"));
        assert_eq!(b.recipient.as_deref(), Some("frank@contoso.example"));
        assert_eq!(b.status.as_deref(), Some("5.1.10"));
        assert_eq!(
            b.diagnostic.as_deref(),
            Some(
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient frank@contoso.example not found by SMTP address lookup"
            )
        );
        assert!(b.permanent);
        assert_eq!(
            b.reason(),
            "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient frank@contoso.example not found by SMTP address lookup"
        );
    }

    #[test]
    fn qmail_bounce() {
        let m = check_from(fixture("qmail-bounce"), "");
        assert_eq!(m.kind, AutoKind::Bounce);
        assert!(
            reason(&m).contains("MAILER-DAEMON@mail.oldhost.example"),
            "{}",
            reason(&m)
        );
        let b = bounce(&m);
        assert_eq!(b.original_message_id.as_deref(), Some("tm.q1@helpdesk.example"));
        assert_eq!(b.recipient.as_deref(), Some("erin@oldhost.example"));
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            b.diagnostic.as_deref(),
            Some("Sorry, no mailbox here by that name. (#5.1.1)")
        );
        assert!(b.permanent);
        assert_eq!(
            b.reason(),
            "5.1.1 Sorry, no mailbox here by that name. (#5.1.1) (erin@oldhost.example)"
        );
    }

    #[test]
    fn delayed_dsn_is_not_permanent() {
        let m = check_from(fixture("postfix-delay"), "");
        assert_eq!(m.kind, AutoKind::Bounce);
        assert_eq!(reason(&m), "delivery status notification (not final, 4.4.1)");
        let b = bounce(&m);
        assert!(!b.permanent);
        assert_eq!(b.status.as_deref(), Some("4.4.1"));
        assert_eq!(b.recipient.as_deref(), Some("henry@slow.example"));
        assert_eq!(b.original_message_id.as_deref(), Some("tm.delay5@helpdesk.example"));
        assert_eq!(
            b.diagnostic.as_deref(),
            Some("connect to mx.slow.example[192.0.2.55]:25: Connection timed out")
        );
    }

    #[test]
    fn first_failed_recipient_is_reported() {
        let raw = b"From: MAILER-DAEMON@mx.example\nTo: support@helpdesk.example\nSubject: Delivery report\n\
            MIME-Version: 1.0\nContent-Type: multipart/report; report-type=\"Delivery-Status\"; boundary=b\n\n\
            --b\nContent-Type: text/plain\n\nReport.\n\
            --b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n\
            Final-Recipient: rfc822; ok@example.org\nAction: delivered\nStatus: 2.0.0\n\n\
            Final-Recipient: rfc822; gone@example.org\nAction: failed\nStatus: 5.2.1 (mailbox disabled)\n\n\
            --b--\n";
        let m = check_from(raw, "");
        let b = bounce(&m);
        assert_eq!(b.recipient.as_deref(), Some("gone@example.org"));
        assert_eq!(b.status.as_deref(), Some("5.2.1"));
        assert!(b.permanent);
        assert_eq!(b.reason(), "5.2.1 (gone@example.org)");
    }

    #[test]
    fn dsn_with_broken_mime_structure_still_reports() {
        // The inner multipart is never closed and the report fields end up in its text part.
        let raw = b"From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n\
            Subject: Delivery Status Notification (Delay)\n\
            Content-Type: multipart/report; boundary=\"outer\"; report-type=delivery-status\n\n\
            --outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n\
            --inner\nContent-Type: text/plain\n\nDelivery incomplete.\n\n\
            Reporting-MTA: dns; googlemail.com\nX-Original-Message-ID: <tm.br1@helpdesk.example>\n\n\
            Final-Recipient: rfc822; kim@example.de\nAction: delayed\nStatus: 4.4.1\n\
            Diagnostic-Code: smtp; The recipient server did not accept our requests to connect.\n\n\
            --outer--\n";
        let m = check_from(raw, "");
        assert_eq!(m.kind, AutoKind::Bounce);
        let b = bounce(&m);
        assert_eq!(b.recipient.as_deref(), Some("kim@example.de"));
        assert_eq!(b.status.as_deref(), Some("4.4.1"));
        assert_eq!(b.original_message_id.as_deref(), Some("tm.br1@helpdesk.example"));
        assert_eq!(
            b.diagnostic.as_deref(),
            Some("The recipient server did not accept our requests to connect.")
        );
        assert!(!b.permanent);
    }

    #[test]
    fn success_dsn_is_a_bounce_report_but_not_permanent() {
        let raw = b"From: MAILER-DAEMON@mx.example\nSubject: Successful Mail Delivery Report\n\
            Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
            --b\nContent-Type: message/delivery-status\n\n\
            Final-Recipient: rfc822; ok@example.org\nAction: delivered\nStatus: 2.0.0\n\n--b--\n";
        let m = check_from(raw, "");
        assert_eq!(m.kind, AutoKind::Bounce);
        let b = bounce(&m);
        assert!(!b.permanent);
        assert_eq!(b.status.as_deref(), Some("2.0.0"));
    }

    #[test]
    fn dsn_wins_over_auto_submitted_and_null_sender() {
        // The Postfix DSN carries Auto-Submitted: auto-replied and comes from <>.
        let m = check_from(fixture("postfix-dsn"), "");
        assert_eq!(m.kind, AutoKind::Bounce);
        assert!(m.bounce.is_some());
    }

    #[test]
    fn sendmail_style_free_text_bounce() {
        let raw = b"From: Mail Delivery Subsystem <MAILER-DAEMON@mail.example.com>\n\
            To: support@helpdesk.example\nSubject: Returned mail: see transcript for details\n\
            In-Reply-To: <tm.sm1@helpdesk.example>\n\n\
            The original message was received at Tue, 14 May 2024 10:00:00 +0200\nfrom mx.helpdesk.example [198.51.100.1]\n\n\
               ----- The following addresses had permanent fatal errors -----\n<ivy@example.com>\n\
                (reason: 550 5.1.1 <ivy@example.com>... User unknown)\n\n\
               ----- Transcript of session follows -----\n... while talking to mx.example.com.:\n\
            >>> RCPT To:<ivy@example.com>\n<<< 550 5.1.1 <ivy@example.com>... User unknown\n";
        let m = check_from(raw, "");
        assert_eq!(m.kind, AutoKind::Bounce);
        let b = bounce(&m);
        assert_eq!(b.recipient.as_deref(), Some("ivy@example.com"));
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        // No returned message: the In-Reply-To of the report names it.
        assert_eq!(b.original_message_id.as_deref(), Some("tm.sm1@helpdesk.example"));
        assert!(b.permanent);
    }

    #[test]
    fn free_text_delay_warning_is_not_permanent() {
        let raw = b"From: Mail Delivery Subsystem <MAILER-DAEMON@mail.example.com>\n\
            Subject: Warning: could not send message for past 4 hours\n\n\
            **********************************************\n\
            **      THIS IS A WARNING MESSAGE ONLY      **\n\
            **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n\
            **********************************************\n\n\
            The original message was received at Tue, 14 May 2024 06:00:00 +0200\n\n\
               ----- Transcript of session follows -----\n<jo@example.com>... Deferred: Connection timed out\n";
        let m = check_from(raw, "");
        assert_eq!(m.kind, AutoKind::Bounce);
        assert!(!bounce(&m).permanent);
        assert_eq!(bounce(&m).recipient.as_deref(), Some("jo@example.com"));
    }

    #[test]
    fn bounce_subject_from_a_person_is_not_a_bounce() {
        // A person forwarding an NDR: not from a mail system, not from the null sender.
        let m = check(&with("", "FW: Undeliverable: Password reset"));
        assert_eq!(m.kind, AutoKind::Human);
        let m = check(&with("", "Undeliverable: Password reset"));
        assert_eq!(m.kind, AutoKind::Human);
    }

    #[test]
    fn other_reports_are_machine() {
        let raw = b"From: abuse@isp.example\nSubject: Abuse report\n\
            Content-Type: multipart/report; report-type=feedback-report; boundary=b\n\n\
            --b\nContent-Type: text/plain\n\nA complaint.\n--b\nContent-Type: message/feedback-report\n\n\
            Feedback-Type: abuse\n\n--b--\n";
        let m = check(raw);
        assert_eq!(m.kind, AutoKind::Machine);
        assert_eq!(reason(&m), "multipart/report; report-type=feedback-report");
    }

    // --- read receipts ---------------------------------------------------------------------

    #[test]
    fn read_receipt() {
        let m = check(fixture("mdn"));
        assert_eq!(m.kind, AutoKind::Receipt);
        assert_eq!(
            reason(&m),
            "read receipt (multipart/report; report-type=disposition-notification)"
        );
        assert_eq!(m.bounce, None);
        let raw = b"From: a@b.example\nSubject: Read: x\nContent-Type: message/disposition-notification\n\n\
            Final-Recipient: rfc822;a@b.example\nDisposition: manual-action/MDN-sent-manually; displayed\n";
        assert_eq!(check(raw).kind, AutoKind::Receipt);
    }

    // --- the bounce line -------------------------------------------------------------------

    #[test]
    fn bounce_reason_is_one_bounded_line() {
        let b = Bounce {
            recipient: Some("bob@example.org".into()),
            status: Some("5.1.1".into()),
            diagnostic: Some("user\r\nunknown".into()),
            ..Bounce::default()
        };
        assert_eq!(b.reason(), "5.1.1 user unknown (bob@example.org)");
        let long = Bounce {
            diagnostic: Some("é".repeat(2000)),
            permanent: true,
            ..Bounce::default()
        };
        let line = long.reason();
        assert!(line.len() <= 500 && line.chars().count() <= 500);
        assert!(!line.contains(['\r', '\n']));
        assert_eq!(
            Bounce {
                permanent: true,
                ..Bounce::default()
            }
            .reason(),
            "delivery failed"
        );
        assert_eq!(Bounce::default().reason(), "delivery delayed");
    }

    // --- helpers ---------------------------------------------------------------------------

    #[test]
    fn status_codes_are_not_addresses_or_versions() {
        assert_eq!(
            find_status("said: 550 5.1.1 user unknown", false).as_deref(),
            Some("5.1.1")
        );
        assert_eq!(find_status("(#5.1.1)", false).as_deref(), Some("5.1.1"));
        assert_eq!(find_status("status 4.4.7.", false).as_deref(), Some("4.4.7"));
        assert_eq!(find_status("host 192.4.5.6 said", false), None);
        assert_eq!(find_status("Exim 4.94.2 here", false), None);
        assert_eq!(find_status("v5.1.1", false), None);
        assert_eq!(find_status("2.0.0", false), None);
        assert_eq!(find_status("2.0.0", true).as_deref(), Some("2.0.0"));
    }

    #[test]
    fn reply_prefixes_are_stripped() {
        assert_eq!(strip_reply_prefixes("Re: AW: RE : Fwd: x"), "x");
        assert_eq!(strip_reply_prefixes("Re[3]: x"), "x");
        assert_eq!(strip_reply_prefixes("Research: x"), "Research: x");
        assert_eq!(strip_reply_prefixes("Re"), "Re");
        assert_eq!(strip_reply_prefixes("Re[: x"), "Re[: x");
    }

    #[test]
    fn garbage_never_panics() {
        let inputs: [&[u8]; 9] = [
            b"",
            b"\xff\xfe\x00garbage",
            b"From x\n",
            b"Content-Type: multipart/report\n\n",
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"\"\n\n--\n--\n",
            b"Content-Type: message/delivery-status\n\nAction:\nStatus:\nFinal-Recipient: ;\n\n\n",
            b"From: MAILER-DAEMON\nSubject: failure notice\n\n<@>:\n\xc3(#5.\n",
            b"Subject: \xc3\xa9\xcc\x81\xe2\x80\x8b: Re[99999999999999999999]: [\n\n",
            b"From: <>\nReturn-Path: <\nContent-Type: ;;;=;report-type\n\n",
        ];
        for raw in inputs {
            for sender in ["", "a@b"] {
                let _ = check_from(raw, sender);
            }
        }
        let mut big = b"From: MAILER-DAEMON@x.example\nSubject: Undeliverable\n\n".to_vec();
        big.extend(std::iter::repeat_n(b'5', 100_000));
        big.extend(b".1.1\n".iter());
        let m = check_from(&big, "");
        assert_eq!(m.kind, AutoKind::Bounce);
        assert!(m.bounce.as_ref().is_some_and(|b| b.reason().len() <= 500));
    }

    #[test]
    fn patterns_compile() {
        LazyLock::force(&ABSENCE_SUFFIX);
        LazyLock::force(&DSN_FIELDS);
        LazyLock::force(&BOUNCE_BODY);
        LazyLock::force(&DELAY_PHRASES);
        LazyLock::force(&PERMANENT_PHRASES);
        LazyLock::force(&RETURNED_MESSAGE);
        LazyLock::force(&EMAIL);
        LazyLock::force(&ADDRESS_LINE);
        LazyLock::force(&SMTP_REPLY_LINE);
        LazyLock::force(&DOTTED_NUMBER);
        LazyLock::force(&MESSAGE_ID_LINE);
        assert_eq!(clean_diagnostic("550-5.1.1 a\n 550 5.1.1 b"), "550-5.1.1 a b");
        assert_eq!(clean_diagnostic("550 5.1.1 a"), "550 5.1.1 a");
        assert_eq!(
            find_diagnostic("Remote host said: 554 mail rejected\n").as_deref(),
            Some("554 mail rejected")
        );
    }

    #[test]
    fn kinds_serialise_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&AutoKind::AutoReply).ok().as_deref(),
            Some("\"auto_reply\"")
        );
        for kind in [
            AutoKind::Human,
            AutoKind::AutoReply,
            AutoKind::Bounce,
            AutoKind::Receipt,
            AutoKind::List,
            AutoKind::Bulk,
            AutoKind::Machine,
        ] {
            assert_eq!(
                serde_json::to_string(&kind).ok(),
                Some(format!("\"{}\"", kind.as_str()))
            );
        }
    }
}
