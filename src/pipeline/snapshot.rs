//! The compiled SQL configuration: mailboxes by address, the tag matcher, public domains and
//! typed settings. Built once per load, then shared read-only by every message.

use chrono::{DateTime, FixedOffset, Local, Offset, Utc};
use std::collections::{HashMap, HashSet};

use super::rules::{CompiledRules, RuleDef};
use super::tags::{TagDef, TagMatcher};
use super::trust::{Network, TrustPolicy};
use crate::model::Mailbox;
use crate::notify::template::{TemplateSource, Templates};
use crate::workflow::{RuleRow as WorkflowRow, RuleSet};

/// Where local dates (ticket numbers, default titles) are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeZone {
    /// The host's zone (TZ / /etc/localtime).
    Local,
    /// A fixed offset from UTC (`UTC`, `+01:00`, `-05:30`).
    Fixed(FixedOffset),
}

impl TimeZone {
    pub fn parse(s: &str) -> Option<TimeZone> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("local") {
            return Some(TimeZone::Local);
        }
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Some(TimeZone::Fixed(Utc.fix()));
        }
        let (sign, rest) = match s.as_bytes().first()? {
            b'+' => (1, &s[1..]),
            b'-' => (-1, &s[1..]),
            _ => return None,
        };
        let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        if !(0..=14).contains(&h) || !(0..60).contains(&m) {
            return None;
        }
        FixedOffset::east_opt(sign * (h * 3600 + m * 60)).map(TimeZone::Fixed)
    }

    /// The wall-clock time of an instant in this zone.
    pub fn local(&self, t: DateTime<Utc>) -> chrono::NaiveDateTime {
        match self {
            TimeZone::Local => t.with_timezone(&Local).naive_local(),
            TimeZone::Fixed(off) => t.with_timezone(off).naive_local(),
        }
    }
}

/// What happens to a new message that duplicates a recent ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateAction {
    /// Append it as a note to the existing ticket.
    Note,
    /// Accept it and drop it.
    Discard,
    /// Create the ticket anyway and link it to the existing one.
    Link,
}

/// What happens to messages over the loop limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopAction {
    /// Accept and keep them unconverted (`messages reprocess` can convert them later).
    Ignore,
    /// Refuse them (5xx).
    Reject,
    /// Accept and drop them.
    Discard,
}

/// What happens when a sender of another company writes to a ticket by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossCompany {
    /// Add the note, marked "unverified sender", visible to staff only.
    UnverifiedNote,
    /// Make a new ticket instead.
    NewTicket,
    /// Refuse the message.
    Reject,
}

/// Settings from the `settings` table, typed. Every key has a default.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `keep_raw_messages`: store each processed message as received (default true).
    pub keep_raw_messages: bool,
    /// `raw_retention_days`: days raw messages are kept (0: forever).
    pub raw_retention_days: u32,
    /// `max_tags`: most tags a ticket gets from mailbox and text together (default 30).
    pub max_tags: usize,
    /// `time_zone`: `local`, `UTC` or `±HH:MM`; dates of ticket numbers and titles (default local).
    pub time_zone: TimeZone,
    /// `duplicate_criteria`: which recent tickets a new message duplicates.
    pub duplicate_sender_subject: bool,
    pub duplicate_alert_id: bool,
    pub duplicate_external_id: bool,
    /// `duplicate_window_minutes`: how far back "same sender and subject" looks.
    pub duplicate_window_minutes: u32,
    pub duplicate_action: DuplicateAction,
    /// `loop_max` messages per sender and subject in `loop_window_minutes` (0: no limit).
    pub loop_max: u32,
    pub loop_window_minutes: u32,
    pub loop_action: LoopAction,
    /// Whom commands in the first line are trusted from.
    pub trust: TrustPolicy,
    pub cross_company: CrossCompany,
    /// `forward_marker`: first-line marker with which staff forward a customer's mail ("" off).
    pub forward_marker: String,
    /// `notify_from`: From of notifications ("" : the mailbox's name and address).
    pub notify_from: String,
    /// `message_id_domain`: domain of our Message-IDs and loop header ("" : the mailbox's domain).
    pub message_id_domain: String,
    /// `ticket_url`: link to a ticket in notifications, `{number}` replaced ("" none).
    pub ticket_url: String,
    /// `reply_limit` automatic replies per recipient in `reply_window_hours` (0: none at all).
    pub reply_limit: u32,
    pub reply_window_hours: u32,
    /// `auto_mail`: what auto-generated mail that names no ticket by number becomes.
    pub auto_mail: AutoMailAction,
    /// `auto_mail_queue`: queue of tickets made from auto-generated mail ("" : the mailbox's).
    pub auto_mail_queue: String,
    /// `failure_notify`: administrator address told about every failure ("" nobody).
    pub failure_notify: String,
}

/// What auto-generated mail (auto-replies, bounces, lists) that names no ticket by number becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoMailAction {
    /// An internal note on the ticket it threads to (In-Reply-To/References); otherwise ignored.
    Note,
    /// Nothing (accepted unconverted).
    Ignore,
    /// A note on the ticket it threads to; otherwise a new ticket in `auto_mail_queue`.
    Ticket,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            keep_raw_messages: true,
            raw_retention_days: 90,
            max_tags: 30,
            time_zone: TimeZone::Local,
            duplicate_sender_subject: true,
            duplicate_alert_id: true,
            duplicate_external_id: true,
            duplicate_window_minutes: 60,
            duplicate_action: DuplicateAction::Note,
            loop_max: 2,
            loop_window_minutes: 5,
            loop_action: LoopAction::Ignore,
            trust: TrustPolicy { authserv_ids: Vec::new(), networks: Vec::new() },
            cross_company: CrossCompany::UnverifiedNote,
            forward_marker: "#fwd".to_string(),
            notify_from: String::new(),
            message_id_domain: String::new(),
            ticket_url: String::new(),
            reply_limit: 40,
            reply_window_hours: 24,
            auto_mail: AutoMailAction::Ticket,
            auto_mail_queue: String::new(),
            failure_notify: String::new(),
        }
    }
}

/// Every setting key with its default and meaning, for `check`, `setting list` and the docs.
pub const SETTING_KEYS: &[(&str, &str, &str)] = &[
    ("keep_raw_messages", "true", "store each processed message as received (true/false)"),
    ("raw_retention_days", "90", "days a stored raw message is kept; 0 keeps them forever"),
    ("max_tags", "30", "most tags per ticket, required and automatic together (0-1000)"),
    ("time_zone", "local", "zone of number dates, default titles and time entries: local, UTC or +HH:MM"),
    ("duplicate_criteria", "sender_subject,alert_id,external_id", "what makes a new message a duplicate of a recent open ticket (same Message-ID always does)"),
    ("duplicate_window_minutes", "60", "how far back 'same sender and normalised subject' looks"),
    ("duplicate_action", "note", "for a duplicate: note (append to the ticket), discard, or link (new ticket linked to it)"),
    ("loop_max", "2", "most messages per sender and normalised subject within loop_window_minutes; 0 is no limit"),
    ("loop_window_minutes", "5", "the loop guard's window"),
    ("loop_action", "ignore", "over the loop limit: ignore (accept, keep unconverted), reject, or discard"),
    ("trusted_authserv_ids", "", "comma-separated authserv-ids whose Authentication-Results are believed (your MX)"),
    ("trusted_networks", "", "comma-separated networks (CIDR) whose clients are trusted for commands by mail"),
    ("cross_company", "unverified_note", "a ticket number from an outsider: unverified_note, new_ticket, or reject"),
    ("forward_marker", "#fwd", "first-line marker with which staff forward a customer's mail; empty turns it off"),
    ("notify_from", "", "From of notifications, e.g. 'Help desk <support@example.com>'; empty: the mailbox's name and address"),
    ("message_id_domain", "", "domain of our Message-IDs and of the X-Ticketmilter-Loop header; empty: the mailbox's domain"),
    ("ticket_url", "", "link to a ticket for templates ({{ ticket_url }}), {number} is replaced, e.g. https://desk.example.com/t/{number}"),
    ("reply_limit", "40", "most automatic replies to one address within reply_window_hours; over it replies are dropped (0: never reply)"),
    ("reply_window_hours", "24", "the window of reply_limit, in hours"),
    ("auto_mail", "ticket", "auto-generated mail naming no ticket number: ticket (internal note on the ticket it threads to, else a new ticket in auto_mail_queue; never answered), note (the note, else not converted), or ignore"),
    ("auto_mail_queue", "", "queue for tickets made from auto-generated mail (auto_mail = ticket); empty: the mailbox's queue"),
    ("failure_notify", "", "administrator address told about every message that could not be converted, with the technical reason"),
];

impl Settings {
    /// Type the raw key/value rows. Bad values keep their default and are reported.
    pub fn from_rows(rows: &[(String, String)]) -> (Settings, Vec<String>) {
        let mut s = Settings::default();
        let mut problems = Vec::new();
        for (key, value) in rows {
            let v = value.trim();
            let bad = |what: &str| format!("setting {key} = {value:?}: {what}");
            match key.as_str() {
                "keep_raw_messages" => match parse_bool(v) {
                    Some(b) => s.keep_raw_messages = b,
                    None => problems.push(bad("expected true or false")),
                },
                "max_tags" => match v.parse::<usize>() {
                    Ok(n) if n <= 1000 => s.max_tags = n,
                    _ => problems.push(bad("expected a whole number from 0 to 1000")),
                },
                "time_zone" => match TimeZone::parse(v) {
                    Some(tz) => s.time_zone = tz,
                    None => problems.push(bad("expected local, UTC or an offset such as +01:00")),
                },
                "raw_retention_days" => match v.parse::<u32>() {
                    Ok(n) => s.raw_retention_days = n,
                    Err(_) => problems.push(bad("expected a whole number of days")),
                },
                "duplicate_criteria" => {
                    let (mut a, mut b, mut c) = (false, false, false);
                    for item in v.split(',').map(|x| x.trim().to_ascii_lowercase()).filter(|x| !x.is_empty()) {
                        match item.as_str() {
                            "sender_subject" => a = true,
                            "alert_id" => b = true,
                            "external_id" => c = true,
                            "message_id" | "none" => {}
                            other => problems.push(bad(&format!("unknown criterion {other:?} (known: sender_subject, alert_id, external_id, none)"))),
                        }
                    }
                    (s.duplicate_sender_subject, s.duplicate_alert_id, s.duplicate_external_id) = (a, b, c);
                }
                "duplicate_window_minutes" => match v.parse::<u32>() {
                    Ok(n) => s.duplicate_window_minutes = n,
                    Err(_) => problems.push(bad("expected a whole number of minutes")),
                },
                "duplicate_action" => match v.to_ascii_lowercase().as_str() {
                    "note" => s.duplicate_action = DuplicateAction::Note,
                    "discard" => s.duplicate_action = DuplicateAction::Discard,
                    "link" => s.duplicate_action = DuplicateAction::Link,
                    _ => problems.push(bad("expected note, discard or link")),
                },
                "loop_max" => match v.parse::<u32>() {
                    Ok(n) => s.loop_max = n,
                    Err(_) => problems.push(bad("expected a whole number (0: no limit)")),
                },
                "loop_window_minutes" => match v.parse::<u32>() {
                    Ok(n) if n > 0 => s.loop_window_minutes = n,
                    _ => problems.push(bad("expected a whole number of minutes, at least 1")),
                },
                "loop_action" => match v.to_ascii_lowercase().as_str() {
                    "ignore" => s.loop_action = LoopAction::Ignore,
                    "reject" => s.loop_action = LoopAction::Reject,
                    "discard" => s.loop_action = LoopAction::Discard,
                    _ => problems.push(bad("expected ignore, reject or discard")),
                },
                "trusted_authserv_ids" => {
                    s.trust.authserv_ids = v.split(',').map(|x| x.trim().to_ascii_lowercase()).filter(|x| !x.is_empty()).collect();
                }
                "trusted_networks" => {
                    s.trust.networks.clear();
                    for item in v.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                        match Network::parse(item) {
                            Ok(n) => s.trust.networks.push(n),
                            Err(e) => problems.push(bad(&e)),
                        }
                    }
                }
                "cross_company" => match v.to_ascii_lowercase().as_str() {
                    "unverified_note" => s.cross_company = CrossCompany::UnverifiedNote,
                    "new_ticket" => s.cross_company = CrossCompany::NewTicket,
                    "reject" => s.cross_company = CrossCompany::Reject,
                    _ => problems.push(bad("expected unverified_note, new_ticket or reject")),
                },
                "forward_marker" => s.forward_marker = v.to_string(),
                "notify_from" => match v {
                    "" => s.notify_from.clear(),
                    _ if v.contains('@') && !v.contains(['\r', '\n']) => s.notify_from = v.to_string(),
                    _ => problems.push(bad("expected an address such as 'Help desk <support@example.com>'")),
                },
                "message_id_domain" => match v {
                    "" => s.message_id_domain.clear(),
                    _ if v.contains('.') && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') => {
                        s.message_id_domain = v.to_ascii_lowercase()
                    }
                    _ => problems.push(bad("expected a domain name such as desk.example.com")),
                },
                "ticket_url" => s.ticket_url = v.to_string(),
                "reply_limit" => match v.parse::<u32>() {
                    Ok(n) => s.reply_limit = n,
                    Err(_) => problems.push(bad("expected a whole number (0: no automatic replies)")),
                },
                "reply_window_hours" => match v.parse::<u32>() {
                    Ok(n) if n > 0 => s.reply_window_hours = n,
                    _ => problems.push(bad("expected a whole number of hours, at least 1")),
                },
                "auto_mail" => match v.to_ascii_lowercase().as_str() {
                    "note" => s.auto_mail = AutoMailAction::Note,
                    "ignore" => s.auto_mail = AutoMailAction::Ignore,
                    "ticket" => s.auto_mail = AutoMailAction::Ticket,
                    _ => problems.push(bad("expected note, ignore or ticket")),
                },
                "auto_mail_queue" => s.auto_mail_queue = v.to_string(),
                "failure_notify" => match v {
                    "" => s.failure_notify.clear(),
                    _ if crate::model::domain_of(v).is_some() && !v.contains(char::is_whitespace) && !v.contains(['<', '>', ',']) => {
                        s.failure_notify = v.to_string()
                    }
                    _ => problems.push(bad("expected one plain address such as helpdesk-admin@example.com")),
                },
                _ => problems.push(format!(
                    "unknown setting {key:?} (known: {})",
                    SETTING_KEYS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
                )),
            }
        }
        (s, problems)
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Names of reference rows that rules, alerts and commands refer to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefData {
    pub queues: Vec<(i64, String)>,
    pub priorities: Vec<(i64, String)>,
    /// (id, name, is_complete)
    pub statuses: Vec<(i64, String, bool)>,
    pub issue_types: Vec<(i64, String)>,
    /// (id, issue type id, name)
    pub sub_issue_types: Vec<(i64, i64, String)>,
    pub roles: Vec<(i64, String)>,
    pub work_types: Vec<(i64, String)>,
}

/// Find an id by name (case-insensitive).
pub fn find_id(rows: &[(i64, String)], name: &str) -> Option<i64> {
    rows.iter().find(|(_, n)| n.eq_ignore_ascii_case(name.trim())).map(|(id, _)| *id)
}

/// The names, for messages that list the valid ones.
pub fn names(rows: &[(i64, String)]) -> String {
    rows.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", ")
}

impl RefData {
    pub fn status_id(&self, name: &str) -> Option<i64> {
        self.statuses.iter().find(|(_, n, _)| n.eq_ignore_ascii_case(name.trim())).map(|(id, _, _)| *id)
    }
    pub fn status_names(&self) -> String {
        self.statuses.iter().map(|(_, n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
    }
    pub fn status_name(&self, id: i64) -> Option<&str> {
        self.statuses.iter().find(|(i, _, _)| *i == id).map(|(_, n, _)| n.as_str())
    }
    pub fn role_name(&self, id: i64) -> Option<&str> {
        self.roles.iter().find(|(i, _)| *i == id).map(|(_, n)| n.as_str())
    }
}

/// A sender whose mail is not converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// `user@example.com` or `@example.com`, lower case.
    pub pattern: String,
    /// Only for this mailbox (None: all).
    pub mailbox_id: Option<i64>,
    /// `reject`, `discard` or `ignore`.
    pub action: String,
}

/// Everything the SQL configuration says, as loaded by the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfRows {
    pub mailboxes: Vec<Mailbox>,
    pub tags: Vec<TagDef>,
    pub public_domains: Vec<String>,
    pub settings: Vec<(String, String)>,
    pub refs: RefData,
    pub exclusions: Vec<Exclusion>,
    pub rules: Vec<RuleDef>,
    /// Active sources (id, name), for workflow conditions.
    pub sources: Vec<(i64, String)>,
    /// Notification templates (active or not).
    pub templates: Vec<TemplateSource>,
    /// Active workflow rules in order.
    pub workflow: Vec<WorkflowRow>,
    /// Problems the store found while resolving rows (e.g. a bad enum value in a mailbox).
    pub problems: Vec<String>,
}

/// The compiled configuration.
#[derive(Debug)]
pub struct Snapshot {
    mailboxes: HashMap<String, Mailbox>,
    pub tags: TagMatcher,
    pub refs: RefData,
    pub exclusions: Vec<Exclusion>,
    pub rules: CompiledRules,
    /// Notification templates, compiled.
    pub templates: Templates,
    /// Workflow rules, compiled.
    pub workflow: RuleSet,
    /// Domains of our own Message-IDs and loop header (message_id_domain and every mailbox's).
    pub own_domains: Vec<String>,
    /// The queue of tickets made from auto-generated mail (`auto_mail_queue`), when set.
    pub auto_mail_queue_id: Option<i64>,
    public_domains: HashSet<String>,
    pub settings: Settings,
    /// What was wrong in the rows (the snapshot works around it; `check` reports it).
    pub problems: Vec<String>,
    /// The rows it was built from (to tell whether a reload changes anything).
    rows: ConfRows,
}

impl Snapshot {
    pub fn build(rows: ConfRows) -> Snapshot {
        let source = rows.clone();
        let (settings, mut problems) = Settings::from_rows(&rows.settings);
        problems.extend(rows.problems);
        let (rules, rule_problems) = CompiledRules::compile(&rows.rules, &rows.refs);
        problems.extend(rule_problems);
        for x in &rows.exclusions {
            if !matches!(x.action.as_str(), "reject" | "discard" | "ignore") {
                problems.push(format!("excluded sender {:?}: action {:?} is not reject, discard or ignore; ignoring the mail", x.pattern, x.action));
            }
            if !x.pattern.contains('@') {
                problems.push(format!("excluded sender {:?}: write an address (user@example.com) or a domain (@example.com)", x.pattern));
            }
        }
        let (templates, template_problems) = Templates::compile(&rows.templates);
        problems.extend(template_problems);
        let (workflow, workflow_problems) =
            RuleSet::compile(&rows.workflow, &rows.refs, &rows.sources, &|name| templates.by_name(name).is_some());
        problems.extend(workflow_problems);
        let auto_mail_queue_id = match settings.auto_mail_queue.trim() {
            "" => None,
            name => {
                let id = find_id(&rows.refs.queues, name);
                if id.is_none() {
                    problems.push(format!(
                        "setting auto_mail_queue = {name:?}: no such queue (queues: {}); the mailbox's queue is used",
                        names(&rows.refs.queues)
                    ));
                }
                id
            }
        };
        let mut own_domains: Vec<String> = Vec::new();
        if !settings.message_id_domain.is_empty() {
            own_domains.push(settings.message_id_domain.clone());
        }
        for mb in &rows.mailboxes {
            if let Some(d) = crate::model::domain_of(&mb.address) {
                if !own_domains.contains(&d) {
                    own_domains.push(d);
                }
            }
        }
        let mut mailboxes = HashMap::new();
        for mb in rows.mailboxes {
            let key = mb.address.trim().to_ascii_lowercase();
            if key.split_once('@').is_none_or(|(l, d)| l.is_empty() || d.is_empty()) {
                problems.push(format!("mailbox {:?}: not a mail address", mb.address));
            }
            mailboxes.insert(key, mb);
        }
        Snapshot {
            mailboxes,
            tags: TagMatcher::new(&rows.tags),
            refs: rows.refs,
            exclusions: rows.exclusions,
            rules,
            templates,
            workflow,
            own_domains,
            auto_mail_queue_id,
            public_domains: rows.public_domains.into_iter().map(|d| d.to_ascii_lowercase()).collect(),
            settings,
            problems,
            rows: source,
        }
    }

    /// The rows the snapshot was built from.
    pub fn rows(&self) -> &ConfRows {
        &self.rows
    }

    /// The active mailbox a recipient names: case-insensitive, `+detail` ignored.
    pub fn mailbox_for(&self, rcpt: &str) -> Option<&Mailbox> {
        let key = normalise_recipient(rcpt);
        self.mailboxes.get(&key)
    }

    /// All active mailboxes, in address order.
    pub fn mailboxes(&self) -> Vec<&Mailbox> {
        let mut v: Vec<&Mailbox> = self.mailboxes.values().collect();
        v.sort_by(|a, b| a.address.cmp(&b.address));
        v
    }

    pub fn is_public_domain(&self, domain: &str) -> bool {
        self.public_domains.contains(&domain.to_ascii_lowercase())
    }

    /// The exclusion that applies to a sender for a mailbox (mailbox-specific ones first).
    pub fn exclusion_for(&self, sender: &str, mailbox_id: i64) -> Option<&Exclusion> {
        let sender = sender.trim().to_ascii_lowercase();
        let domain = sender.rsplit_once('@').map(|(_, d)| format!("@{d}"));
        let hit = |x: &&Exclusion| x.pattern == sender || domain.as_deref() == Some(x.pattern.as_str());
        self.exclusions
            .iter()
            .filter(|x| x.mailbox_id == Some(mailbox_id))
            .find(hit)
            .or_else(|| self.exclusions.iter().filter(|x| x.mailbox_id.is_none()).find(hit))
    }
}

/// `<Support+urgent@Example.COM>` -> `support@example.com`.
pub fn normalise_recipient(rcpt: &str) -> String {
    let r = rcpt.trim().trim_start_matches('<').trim_end_matches('>').trim();
    let (local, domain) = match r.rsplit_once('@') {
        Some(parts) => parts,
        None => (r, ""),
    };
    let local = local.trim_matches('"');
    let local = local.split_once('+').map_or(local, |(base, _)| base);
    if domain.is_empty() {
        local.to_ascii_lowercase()
    } else {
        format!("{}@{}", local.to_ascii_lowercase(), domain.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_normalised() {
        assert_eq!(normalise_recipient("<Support+Urgent@Example.COM>"), "support@example.com");
        assert_eq!(normalise_recipient("support@example.com"), "support@example.com");
        assert_eq!(normalise_recipient("\"support\"@example.com"), "support@example.com");
    }

    #[test]
    fn settings_are_typed_and_checked() {
        let rows = vec![
            ("max_tags".to_string(), "5".to_string()),
            ("keep_raw_messages".to_string(), "maybe".to_string()),
            ("time_zone".to_string(), "+01:30".to_string()),
            ("colour".to_string(), "blue".to_string()),
        ];
        let (s, problems) = Settings::from_rows(&rows);
        assert_eq!(s.max_tags, 5);
        assert!(s.keep_raw_messages);
        assert_eq!(s.time_zone, TimeZone::Fixed(FixedOffset::east_opt(5400).unwrap()));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("keep_raw_messages"));
        assert!(problems[1].contains("unknown setting \"colour\""));
    }

    #[test]
    fn time_zones() {
        assert_eq!(TimeZone::parse("UTC"), Some(TimeZone::Fixed(Utc.fix())));
        assert_eq!(TimeZone::parse("-05:00"), Some(TimeZone::Fixed(FixedOffset::west_opt(18000).unwrap())));
        assert_eq!(TimeZone::parse("Europe/Berlin"), None);
        assert_eq!(TimeZone::parse("+25:00"), None);
    }
}
