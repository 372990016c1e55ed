//! Plain data shared by the pipeline, the store and the edges: envelopes, parsed mail, directory
//! facts, plans and outcomes. No I/O happens here.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What the MTA told us about one message, independent of its content.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// `MAIL FROM` without angle brackets; empty for the null sender `<>` or when unknown.
    pub sender: String,
    /// `MAIL FROM:<>`: the null sender of bounces and automatic replies (not merely unknown).
    pub null_sender: bool,
    /// Every `RCPT TO`, without angle brackets, in the order given.
    pub recipients: Vec<String>,
    /// MTA queue id (`{i}`), when known.
    pub queue_id: Option<String>,
    /// Address of the SMTP client, when known.
    pub client_addr: Option<std::net::IpAddr>,
    /// SASL login of the SMTP session (`{auth_authen}`), when authenticated.
    pub auth_user: Option<String>,
    /// When the message was received; drives ticket numbers and default titles.
    pub received_at: DateTime<Utc>,
}

impl Envelope {
    /// An envelope with the given recipients, an empty sender and the current time.
    pub fn new<I, S>(recipients: I) -> Envelope
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Envelope {
            sender: String::new(),
            null_sender: false,
            recipients: recipients.into_iter().map(Into::into).collect(),
            queue_id: None,
            client_addr: None,
            auth_user: None,
            received_at: Utc::now(),
        }
    }
}

/// One mail address with its display name, as written in a header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub name: Option<String>,
    pub email: String,
}

impl Address {
    /// The domain part in lower case, if the address has one.
    pub fn domain(&self) -> Option<String> {
        domain_of(&self.email)
    }
}

/// The domain part of an address in lower case (`None` without an `@` or with an empty domain).
pub fn domain_of(email: &str) -> Option<String> {
    let (_, d) = email.rsplit_once('@')?;
    let d = d.trim().trim_end_matches('.');
    (!d.is_empty()).then(|| d.to_ascii_lowercase())
}

/// Whether `email` is a mailbox one can write to: a local part and a domain around one `@`,
/// the local part a quoted string or atoms (RFC 5322 `atext`, dots, UTF-8 as RFC 6531 allows;
/// runs of dots are accepted, as MTAs accept them), the domain dot-separated labels of
/// letters, digits, `-` and `_` (or UTF-8), or an address literal in brackets. Spaces, angle
/// brackets, commas and an empty part are not: `Test test@example.com`, `@example.com`,
/// `"Name"@example.com>` are what a broken From header leaves, no one's mailbox.
pub fn is_mailbox_address(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    let atom = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) || !c.is_ascii();
    let local_ok = match local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(quoted) => {
            let mut chars = quoted.chars();
            let mut ok = true;
            while let Some(c) = chars.next() {
                ok &= match c {
                    '\\' => chars.next().is_some_and(|e| !e.is_control()),
                    '"' => false,
                    c => !c.is_control(),
                };
            }
            ok
        }
        None => !local.is_empty() && local.chars().all(atom),
    };
    let label = |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii());
    let domain_ok = match domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        Some(literal) => !literal.is_empty() && literal.chars().all(|c| c.is_ascii_graphic() && !"[]\\".contains(c)),
        None => domain.strip_suffix('.').unwrap_or(domain).split('.').all(label),
    };
    local_ok && domain_ok
}

/// A file carried by a message.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
    /// `Content-Disposition: inline` (e.g. an image shown in the HTML body).
    pub inline: bool,
    /// `Content-ID` without angle brackets, for `cid:` references.
    pub content_id: Option<String>,
}

/// A message as the pipeline understands it: decoded, normalised, owned.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// Decoded subject with folding whitespace collapsed (not yet trimmed of prefixes).
    pub subject: String,
    pub from: Option<Address>,
    pub reply_to: Option<Address>,
    pub sender: Option<Address>,
    pub resent_from: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    /// Normalised Message-ID (no angle brackets), when present and sane.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Text of the message: text/plain when there is one, otherwise the HTML rendered as text.
    pub text: String,
    /// The HTML body, when the message had one.
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Selected header fields (lower-case name, decoded value) for later rules and checks.
    pub headers: Vec<(String, String)>,
    /// Hex SHA-256 over the parts of the message that a resend keeps (see `pipeline::parse`).
    pub content_hash: String,
    /// What could not be parsed cleanly, in words.
    pub problems: Vec<String>,
}

impl Inbound {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The address the message is attributed to: From, else Sender, else Reply-To — the first
    /// of them that is a mailbox address (a broken From is passed over like a missing one).
    pub fn author(&self) -> Option<&Address> {
        [&self.from, &self.sender, &self.reply_to]
            .into_iter()
            .flatten()
            .find(|a| is_mailbox_address(&a.email))
    }

    /// The key that makes processing idempotent: the Message-ID, or a content hash without one.
    pub fn dedup_key(&self) -> String {
        match &self.message_id {
            Some(id) => format!("mid:{id}"),
            None => format!("sha256:{}", self.content_hash),
        }
    }
}

/// Who may see a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Internal,
    All,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Internal => "internal",
            Visibility::All => "all",
        }
    }
    pub fn parse(s: &str) -> Option<Visibility> {
        match s.trim().to_ascii_lowercase().as_str() {
            "internal" => Some(Visibility::Internal),
            "all" => Some(Visibility::All),
            _ => None,
        }
    }
}

/// What a mailbox does with mail from senders nobody knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownSender {
    /// Make the ticket for the mailbox's fallback company.
    Fallback,
    /// Refuse the message with a reason.
    Reject,
}

impl UnknownSender {
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownSender::Fallback => "fallback",
            UnknownSender::Reject => "reject",
        }
    }
    pub fn parse(s: &str) -> Option<UnknownSender> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fallback" => Some(UnknownSender::Fallback),
            "reject" => Some(UnknownSender::Reject),
            _ => None,
        }
    }
}

/// What the milter does with a mailbox's copy of a converted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterConversion {
    /// Keep delivering the message to the mailbox address.
    Deliver,
    /// Delete this recipient; other recipients still get the message.
    Remove,
    /// Drop the message when every recipient is a converted mailbox.
    Discard,
}

impl AfterConversion {
    pub fn as_str(self) -> &'static str {
        match self {
            AfterConversion::Deliver => "deliver",
            AfterConversion::Remove => "remove",
            AfterConversion::Discard => "discard",
        }
    }
    pub fn parse(s: &str) -> Option<AfterConversion> {
        match s.trim().to_ascii_lowercase().as_str() {
            "deliver" => Some(AfterConversion::Deliver),
            "remove" => Some(AfterConversion::Remove),
            "discard" => Some(AfterConversion::Discard),
            _ => None,
        }
    }
}

/// A company by id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyRef {
    pub id: i64,
    pub name: String,
}

/// An active contact of an active company.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRef {
    pub id: i64,
    pub name: String,
    pub company: CompanyRef,
}

/// An active resource (staff member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    pub id: i64,
    pub name: String,
}

/// A tag by id and label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRef {
    pub id: i64,
    pub label: String,
}

/// An existing ticket, as far as a decision needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRef {
    pub id: i64,
    pub number: String,
    pub title: String,
    pub company: Option<CompanyRef>,
    pub mailbox_id: Option<i64>,
    /// The ticket's status is a "complete" one.
    pub complete: bool,
    /// The ticket's contact, if any.
    pub contact_id: Option<i64>,
}

/// An existing project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    pub id: i64,
    pub number: String,
    pub name: String,
    pub company: Option<CompanyRef>,
}

/// An existing task with its project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRef {
    pub id: i64,
    pub number: String,
    pub title: String,
    pub project: ProjectRef,
}

/// The existing object a message refers to (by number in the subject, or by References).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Ticket(TicketRef),
    Project(ProjectRef),
    Task(TaskRef),
}

impl Target {
    pub fn number(&self) -> &str {
        match self {
            Target::Ticket(t) => &t.number,
            Target::Project(p) => &p.number,
            Target::Task(t) => &t.number,
        }
    }
    pub fn company(&self) -> Option<&CompanyRef> {
        match self {
            Target::Ticket(t) => t.company.as_ref(),
            Target::Project(p) => p.company.as_ref(),
            Target::Task(t) => t.project.company.as_ref(),
        }
    }
    pub fn noun(&self) -> &'static str {
        match self {
            Target::Ticket(_) => "ticket",
            Target::Project(_) => "project",
            Target::Task(_) => "task",
        }
    }
}

/// Which entity kinds a mailbox may create (Autotask's per-entity tabs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub tickets: bool,
    pub ticket_notes: bool,
    pub ticket_time: bool,
    pub project_notes: bool,
    pub task_notes: bool,
    pub task_time: bool,
}

impl Default for Allowed {
    fn default() -> Self {
        Allowed {
            tickets: true,
            ticket_notes: true,
            ticket_time: true,
            project_notes: true,
            task_notes: true,
            task_time: true,
        }
    }
}

/// What a mailbox does when it is only in Cc and creates tickets only when in To.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CcOnly {
    /// Add a note to a referenced ticket; ignore the message otherwise.
    Note,
    /// Ignore the message.
    Ignore,
}

impl CcOnly {
    pub fn as_str(self) -> &'static str {
        match self {
            CcOnly::Note => "note",
            CcOnly::Ignore => "ignore",
        }
    }
    pub fn parse(s: &str) -> Option<CcOnly> {
        match s.trim().to_ascii_lowercase().as_str() {
            "note" => Some(CcOnly::Note),
            "ignore" => Some(CcOnly::Ignore),
            _ => None,
        }
    }
}

/// What a reply to a completed ticket does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletedTicket {
    /// Add the note and set the ticket back to the reopen status.
    Reopen,
    /// Add the note only.
    Note,
    /// Make a new ticket linked to the completed one.
    New,
}

impl CompletedTicket {
    pub fn as_str(self) -> &'static str {
        match self {
            CompletedTicket::Reopen => "reopen",
            CompletedTicket::Note => "note",
            CompletedTicket::New => "new",
        }
    }
    pub fn parse(s: &str) -> Option<CompletedTicket> {
        match s.trim().to_ascii_lowercase().as_str() {
            "reopen" => Some(CompletedTicket::Reopen),
            "note" => Some(CompletedTicket::Note),
            "new" => Some(CompletedTicket::New),
            _ => None,
        }
    }
}

/// A mailbox with its defaults resolved (NULL columns replaced by the default rows).
#[derive(Debug, Clone, PartialEq)]
pub struct Mailbox {
    pub id: i64,
    pub address: String,
    pub name: String,
    pub queue_id: i64,
    pub priority_id: i64,
    pub status_id: i64,
    pub source_id: i64,
    pub issue_type_id: Option<i64>,
    pub sub_issue_type_id: Option<i64>,
    pub note_visibility: Visibility,
    pub fallback_company: Option<CompanyRef>,
    pub unknown_sender: UnknownSender,
    pub required_tags: Vec<TagRef>,
    /// What the milter does with the mailbox's copy after conversion.
    pub after_conversion: AfterConversion,
    /// Entity kinds the mailbox may create.
    pub allowed: Allowed,
    /// Role and work type of time entries that name none.
    pub role_id: i64,
    pub work_type_id: i64,
    /// Unknown senders and CC addresses become contacts.
    pub create_contacts: bool,
    /// CC'd contacts become additional ticket contacts.
    pub cc_contacts: bool,
    /// Create tickets only when the mailbox is in To.
    pub only_when_to: bool,
    pub cc_only: CcOnly,
    pub completed_ticket: CompletedTicket,
    /// Status of a reopened ticket.
    pub reopen_status_id: i64,
    /// Largest single file stored, and most bytes of files per message.
    pub max_attachment_bytes: u64,
    pub max_attachments_bytes: u64,
    /// Inline images up to this size stay in the HTML.
    pub inline_image_bytes: u64,
    /// Notes keep only the new text of a reply.
    pub strip_quotes: bool,
}

/// A message already processed for a mailbox (found by its dedup key).
#[derive(Debug, Clone, PartialEq)]
pub struct Prior {
    pub outcome: String,
    pub object: Option<ObjectRef>,
    pub reason: Option<String>,
    pub received_at: chrono::NaiveDateTime,
}

/// A recent ticket that a new message may duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateCandidate {
    pub ticket: TicketRef,
    /// Which criterion found it: `sender_subject`, `alert_id` or `external_id`.
    pub criterion: &'static str,
}

/// What the store knows that a decision about one message for one mailbox needs.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The same message was already processed for this mailbox.
    pub prior: Option<Prior>,
    /// Active resource with the sender's address.
    pub resource: Option<ResourceRef>,
    /// Active contact (of an active company) with the sender's address.
    pub contact: Option<ContactRef>,
    /// Active companies whose web domain is the sender's domain (not looked up for public domains).
    pub domain_companies: Vec<CompanyRef>,
    /// Each number found in the subject, with its object when it exists.
    pub numbered: Vec<(String, Option<Target>)>,
    /// The first In-Reply-To / References Message-ID that belongs to a ticket, with that ticket.
    pub referenced: Option<(String, TicketRef)>,
    /// Messages from the same sender with the same normalised subject in the loop window.
    pub loop_count: i64,
    /// Recent open tickets of the mailbox this message may duplicate, by the configured criteria
    /// (alert and external ids first; the decision keeps those of the attributed company).
    pub duplicates: Vec<DuplicateCandidate>,
    /// Unknown CC addresses whose domain is the web domain of exactly one active company.
    pub cc_domain_companies: Vec<(String, CompanyRef)>,
    /// CC addresses that are active contacts (address, contact).
    pub cc_contacts: Vec<(String, ContactRef)>,
    /// CC addresses of active resources (staff never become customer contacts).
    pub cc_staff: Vec<String>,
    /// A company named by a structured alert or a parsing rule, when it exists and is active.
    pub named_company: Option<CompanyRef>,
    /// A contact named (by address) by a structured alert, when it exists.
    pub named_contact: Option<ContactRef>,
    /// The contact of the original sender of a message forwarded by a resource.
    pub forwarded_contact: Option<ContactRef>,
    /// Companies matching the forwarded sender's domain.
    pub forwarded_domain_companies: Vec<CompanyRef>,
}

/// What a lookup needs from a message (derived by `pipeline::keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupKeys {
    pub dedup_key: String,
    /// Sender address as written.
    pub sender: Option<String>,
    /// Sender domain in lower case.
    pub sender_domain: Option<String>,
    /// The sender domain when it may name a company (not a public freemail domain).
    pub company_domain: Option<String>,
    /// Object numbers found in the subject, in order, upper-cased (T…, P…, K…).
    pub numbers: Vec<String>,
    /// In-Reply-To first, then References from the newest to the oldest.
    pub referenced_ids: Vec<String>,
    /// The normalised subject (duplicate detection and the loop guard).
    pub subject_key: String,
    /// Alert and external ids from a structured alert block.
    pub alert_id: Option<String>,
    pub external_id: Option<String>,
    /// Company and contact address named by a structured alert or a parsing rule.
    pub named_company: Option<String>,
    pub named_contact_email: Option<String>,
    /// CC addresses (lower case) other than our mailboxes.
    pub cc: Vec<String>,
    /// The original sender of a message forwarded by staff (looked up only for resources).
    pub forwarded_sender: Option<Address>,
}

/// How the sender was attributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    Resource,
    Contact,
    CompanyDomain,
    Fallback,
    Unknown,
}

/// The attribution of a message's sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub address: Option<String>,
    pub kind: SenderKind,
    pub company: Option<CompanyRef>,
    pub contact: Option<ContactRef>,
    pub resource: Option<ResourceRef>,
    /// A contact to create for the sender (mailbox `create_contacts`), under `company`.
    pub new_contact: Option<NewContact>,
}

/// A contact to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    pub company_id: i64,
    pub email: String,
    pub name: String,
}

/// A contact, existing or to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactChoice {
    Existing(i64),
    Create(NewContact),
}

/// A file to store with an object.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// A ticket to create. Its number is assigned by the store inside the transaction.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub title: String,
    pub description: String,
    pub description_html: Option<String>,
    pub status_id: i64,
    pub priority_id: i64,
    pub queue_id: i64,
    pub source_id: i64,
    pub issue_type_id: Option<i64>,
    pub sub_issue_type_id: Option<i64>,
    pub company_id: Option<i64>,
    /// The ticket contact (existing, or the sender made a contact).
    pub contact: Option<ContactChoice>,
    pub mailbox_id: i64,
    /// Tags with their origin (`mailbox`, `auto` or `rule`), in ranking order.
    pub tags: Vec<(TagRef, &'static str)>,
    pub attachments: Vec<NewAttachment>,
    /// Additional contacts (CC).
    pub additional_contacts: Vec<ContactChoice>,
    /// A ticket this one is linked to, with the kind of link (`duplicate`, `follow_up`).
    pub link: Option<(i64, &'static str)>,
    pub sender_address: Option<String>,
    pub subject_key: String,
    pub alert_id: Option<String>,
    pub external_id: Option<String>,
}

/// Where a note goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteTarget {
    Ticket(TicketRef),
    Project(ProjectRef),
    Task(TaskRef),
}

/// A note to add to an existing ticket, project or task.
#[derive(Debug, Clone)]
pub struct NewNote {
    pub target: NoteTarget,
    pub title: String,
    pub body: String,
    pub body_html: Option<String>,
    pub author_contact_id: Option<i64>,
    pub author_resource_id: Option<i64>,
    pub author_address: String,
    pub visibility: Visibility,
    /// The sender is neither staff nor of the object's company (cross-company guard).
    pub unverified: bool,
    pub mailbox_id: i64,
    pub attachments: Vec<NewAttachment>,
    /// A new status for the ticket (reopening a completed ticket).
    pub set_status: Option<i64>,
}

/// Where a time entry goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeTarget {
    Ticket(TicketRef),
    Task(TaskRef),
}

/// A time entry to add (from `#T=`).
#[derive(Debug, Clone)]
pub struct NewTimeEntry {
    pub target: TimeTarget,
    pub resource_id: i64,
    pub role_id: i64,
    pub role: String,
    pub work_type_id: i64,
    /// Local date of the work (YYYY-MM-DD).
    pub work_date: String,
    /// HH:MM start and end, when given as a range.
    pub start: Option<String>,
    pub end: Option<String>,
    pub minutes: u32,
    pub summary: String,
    pub mailbox_id: i64,
    /// `#S=`: the new status of the ticket or task, with its name.
    pub set_status: Option<(i64, String)>,
    pub attachments: Vec<NewAttachment>,
}

/// Why a message was refused or not converted (decides the milter's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Nobody knows the sender and the mailbox takes no unknown senders.
    UnknownSender,
    /// The sender is on the excluded list.
    ExcludedSender,
    /// The mailbox may not create this kind of object.
    NotAllowed,
    /// A command in the first line cannot be carried out (bad value, unknown name).
    BadCommand,
    /// Too many messages from the same sender with the same subject (loop guard).
    Loop,
    /// A sender of another company wrote to a ticket by number (cross-company guard).
    CrossCompany,
}

/// What to do with one message for one mailbox: the pure decision, before any write.
#[derive(Debug, Clone)]
pub enum Action {
    CreateTicket(NewTicket),
    AddNote(NewNote),
    AddTimeEntry(NewTimeEntry),
    /// Accept without converting (e.g. `Sensitivity: Private`).
    Ignore,
    /// Accept and drop the mailbox's copy without converting (excluded sender, duplicate).
    Discard,
    /// Refuse the message (the reason goes to the SMTP client).
    Reject(Failure),
    /// Already processed: nothing to write.
    Duplicate(Prior),
}

/// The decision for one message and one mailbox.
#[derive(Debug, Clone)]
pub struct Plan {
    pub action: Action,
    pub mailbox_id: i64,
    pub mailbox: String,
    /// The recipient address that named the mailbox.
    pub rcpt: String,
    pub attribution: Attribution,
    /// Why, in words (for ignore / reject, and for noteworthy choices such as an unknown number).
    pub reason: Option<String>,
    /// Internal notes to add beside the object (e.g. attachments left out, and why).
    pub system_notes: Vec<String>,
    /// Message-ID and threading data the store keeps for later replies.
    pub message_id: Option<String>,
    pub dedup_key: String,
    pub sender_address: Option<String>,
    pub subject_key: String,
    /// Why each step decided as it did (`ticketmilter explain`).
    pub trace: Vec<String>,
}

/// The kind of object a message became.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Ticket,
    TicketNote,
    ProjectNote,
    TaskNote,
    TicketTimeEntry,
    TaskTimeEntry,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Ticket => "ticket",
            ObjectKind::TicketNote => "ticket_note",
            ObjectKind::ProjectNote => "project_note",
            ObjectKind::TaskNote => "task_note",
            ObjectKind::TicketTimeEntry => "ticket_time_entry",
            ObjectKind::TaskTimeEntry => "task_time_entry",
        }
    }
    pub fn parse(s: &str) -> Option<ObjectKind> {
        Some(match s {
            "ticket" => ObjectKind::Ticket,
            "ticket_note" => ObjectKind::TicketNote,
            "project_note" => ObjectKind::ProjectNote,
            "task_note" => ObjectKind::TaskNote,
            "ticket_time_entry" => ObjectKind::TicketTimeEntry,
            "task_time_entry" => ObjectKind::TaskTimeEntry,
            _ => return None,
        })
    }
}

/// A reference to a stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub id: i64,
    /// The object's own number (tickets), if it has one.
    pub number: Option<String>,
    /// The number of the ticket the object belongs to.
    pub ticket_number: Option<String>,
    /// The project or task number the object belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_number: Option<String>,
}

/// The result for one mailbox recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Created,
    NoteAdded,
    TimeEntryAdded,
    Duplicate,
    Ignored,
    Discarded,
    Rejected,
    NotOurs,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Created => "created",
            Verdict::NoteAdded => "note_added",
            Verdict::TimeEntryAdded => "time_entry_added",
            Verdict::Duplicate => "duplicate",
            Verdict::Ignored => "ignored",
            Verdict::Discarded => "discarded",
            Verdict::Rejected => "rejected",
            Verdict::NotOurs => "not_ours",
        }
    }

    /// The message became (or already was) an object.
    pub fn converted(self) -> bool {
        matches!(self, Verdict::Created | Verdict::NoteAdded | Verdict::TimeEntryAdded | Verdict::Duplicate)
    }
}

/// The sender as reported in an outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SenderReport {
    pub address: Option<String>,
    pub kind: SenderKind,
    pub company: Option<String>,
}

/// An attachment as reported in an outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachmentReport {
    pub filename: String,
    pub content_type: String,
    pub size: u64,
}

/// A time entry as reported in an outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeReport {
    pub minutes: u32,
    pub hours: String,
    pub role: String,
    pub date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// What happened to one message for one mailbox (or for the recipients that are no mailbox).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub outcome: Verdict,
    /// The mailbox address (or, for `not_ours`, the recipients).
    pub mailbox: String,
    /// The recipient address that named the mailbox.
    pub rcpt: String,
    pub object: Option<ObjectRef>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub sender: Option<SenderReport>,
    pub attachments: Vec<AttachmentReport>,
    pub tags: Vec<String>,
    pub reason: Option<String>,
    /// For rejected, discarded and some ignored messages: the rule that decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeReport>,
    /// Notifications queued in the outbox with the object.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<NoticeReport>,
    /// Workflow rules that fired, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Auto-generated mail: what gave it away.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto: Option<String>,
}

/// A notification queued (or left out, with the reason) for an outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeReport {
    /// `acknowledgement`, `failure` or `notification`.
    pub kind: String,
    pub to: String,
    pub template: String,
    /// Our Message-ID of the notification (empty when it was not queued).
    pub message_id: String,
    /// Why it was not queued (rate limit), when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::is_mailbox_address;

    #[test]
    fn mailbox_addresses_are_told_from_what_broken_headers_leave() {
        for ok in [
            "alice@example.com",
            "Alice.Smith+tickets@Mail.Example.COM",
            "o'brien@example.ie",
            "first..last.@docomo.ne.jp",
            "\"john doe\"@example.com",
            "\"a\\\"b\"@example.com",
            "user@[192.0.2.1]",
            "user@example.com.",
            "jörg@bücher.example",
            "x_y@mail_host.example",
        ] {
            assert!(is_mailbox_address(ok), "{ok} is a mailbox");
        }
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "Test test@example.com",
            "power quadrant system@example.com",
            "\"Millions Lottery\"@example.com>",
            "<alice@example.com>",
            "alice@example..com",
            "alice@exa mple.com",
            "a,b@example.com",
            "\"open@example.com",
            "\"a\"b\"@example.com",
            "alice@[]",
            "tab\there@example.com",
        ] {
            assert!(!is_mailbox_address(bad), "{bad:?} is no mailbox");
        }
    }
}
