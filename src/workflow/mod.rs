//! Workflow rules: pure evaluation of events, conditions and actions, with a bounded cascade.
//!
//! A rule (one row of `workflow_rules`) names the events it listens to, conditions on the
//! ticket and the message (every given one must hold), and actions (every given one is done).
//! Rules are compiled once per configuration load ([`RuleSet::compile`]) and evaluated inside
//! the transaction that converted a message ([`RuleSet::run`]); the caller loads the ticket
//! state and writes the [`Effects`]. Nothing here does I/O.
//!
//! Evaluation goes in levels:
//!
//! * Level 1 considers, in order of (position, id), the rules listening to the event. A rule
//!   whose conditions hold fires and its actions are applied to the state at once, so a later
//!   rule of the same level sees the changes of the earlier ones.
//! * When an action of level n changed the state (queue, priority, status, issue type, tags or
//!   due date), level n+1 considers the rules that have not fired yet against the new state.
//!   Its events are the original event, plus `status_changed` when the status at the end of
//!   level n differs from the status at its start.
//! * Each rule fires at most once per run, so rules that undo each other cannot loop: each of
//!   them fires once and the run ends. Evaluation stops at the first level that changes
//!   nothing, or after [`MAX_LEVELS`]; rules that would still fire after that are named in the
//!   trace and [`Effects::cascade_limited`] is set.
//!
//! `run` is a plain function of its inputs: a caller with two events for one message (a note
//! that also changed the status with `#S=`) may call it once per event.

use chrono::NaiveDateTime;
use regex::{Regex, RegexBuilder};

use crate::pipeline::snapshot::{RefData, names};

/// Most levels of a cascade.
pub const MAX_LEVELS: u8 = 5;

/// A rule as stored (one row of workflow_rules; None = not given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleRow {
    pub id: i64,
    pub position: i32,
    pub name: String,
    pub active: bool,
    /// Comma-separated event names.
    pub on_events: String,
    pub if_mailbox: Option<String>,
    pub if_queue: Option<String>,
    pub if_priority: Option<String>,
    pub if_status: Option<String>,
    pub if_company: Option<String>,
    pub if_issue_type: Option<String>,
    pub if_tag: Option<String>,
    pub if_sender_domain: Option<String>,
    pub if_subject: Option<String>,
    pub if_body: Option<String>,
    pub if_source: Option<String>,
    pub if_auto: Option<bool>,
    pub set_queue: Option<String>,
    pub set_priority: Option<String>,
    pub set_status: Option<String>,
    pub set_issue_type: Option<String>,
    pub due_in_hours: Option<i32>,
    pub assign: Option<String>,
    pub add_tag: Option<String>,
    pub notify_template: Option<String>,
    pub notify_roles: Option<String>,
    pub notify_addresses: Option<String>,
}

/// What happened to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    TicketCreated,
    NoteAdded,
    TimeEntryAdded,
    StatusChanged,
}

impl Event {
    pub const ALL: [Event; 4] = [
        Event::TicketCreated,
        Event::NoteAdded,
        Event::TimeEntryAdded,
        Event::StatusChanged,
    ];

    /// The name used in `on_events`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::TicketCreated => "ticket_created",
            Event::NoteAdded => "note_added",
            Event::TimeEntryAdded => "time_entry_added",
            Event::StatusChanged => "status_changed",
        }
    }

    /// An event by name (case-insensitive, surrounding blanks ignored).
    pub fn parse(s: &str) -> Option<Event> {
        let s = s.trim();
        Event::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(s))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Who receives a rule's notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The ticket's contact.
    Contact,
    /// The ticket's additional contacts.
    AdditionalContacts,
    /// The assigned resource.
    Assigned,
    /// The members of the ticket's queue.
    QueueMembers,
    /// The rule's fixed addresses (`notify_addresses`).
    Addresses,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Contact,
        Role::AdditionalContacts,
        Role::Assigned,
        Role::QueueMembers,
        Role::Addresses,
    ];

    /// The name used in `notify_roles`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Contact => "contact",
            Role::AdditionalContacts => "additional_contacts",
            Role::Assigned => "assigned",
            Role::QueueMembers => "queue_members",
            Role::Addresses => "addresses",
        }
    }

    /// A role by name (case-insensitive, surrounding blanks ignored).
    pub fn parse(s: &str) -> Option<Role> {
        let s = s.trim();
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

/// The ticket as the rules see it (ids of reference rows; names for company and tags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketState {
    pub queue_id: i64,
    pub priority_id: i64,
    pub status_id: i64,
    pub issue_type_id: Option<i64>,
    pub source_id: i64,
    pub company: Option<String>,
    pub tags: Vec<String>,
    pub due_at: Option<NaiveDateTime>,
}

/// The message that caused the event.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The mailbox address the message was delivered to.
    pub mailbox: &'a str,
    /// The sender's domain, if known.
    pub sender_domain: Option<&'a str>,
    pub subject: &'a str,
    /// The text of the message.
    pub body: &'a str,
    /// The message was generated automatically.
    pub auto: bool,
    /// The time of the event (due dates count from it).
    pub now: NaiveDateTime,
}

/// Whom a rule assigns the ticket to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assign {
    /// A resource by address (lower case).
    Resource(String),
    /// The member of the ticket's queue least recently assigned (the caller picks).
    RoundRobin,
}

/// A notification a rule asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub rule_id: i64,
    pub rule: String,
    pub template: String,
    pub roles: Vec<Role>,
    /// Fixed recipients for [`Role::Addresses`], lower case.
    pub addresses: Vec<String>,
}

/// What the rules decided: the final state, what the caller must do besides writing the state, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// The state after all actions.
    pub state: TicketState,
    /// The state differs from the initial one.
    pub changed: bool,
    /// The status differs from the initial one.
    pub status_changed: bool,
    /// The last assignment decided.
    pub assign: Option<Assign>,
    /// Tags added by rules (not already on the ticket), in order, no duplicates (case-insensitive).
    pub add_tags: Vec<String>,
    pub notify: Vec<Notify>,
    /// (rule id, name, level 1..=MAX_LEVELS) in firing order.
    pub fired: Vec<(i64, String, u8)>,
    /// One line per rule that fired, and one naming the rules stopped by the cascade limit.
    pub trace: Vec<String>,
    /// Rules would still have fired after level [`MAX_LEVELS`].
    pub cascade_limited: bool,
}

/// Conditions of a compiled rule (None = any).
#[derive(Debug, Default)]
struct Conditions {
    mailbox: Option<String>,
    queue: Option<i64>,
    priority: Option<i64>,
    status: Option<i64>,
    issue_type: Option<i64>,
    company: Option<String>,
    tag: Option<String>,
    /// Lower case, without a leading `@` or surrounding dots.
    sender_domain: Option<String>,
    subject: Option<Regex>,
    body: Option<Regex>,
    source: Option<i64>,
    auto: Option<bool>,
}

impl Conditions {
    /// Cheap comparisons first, regular expressions last.
    fn hold(&self, s: &TicketState, ctx: &Context<'_>) -> bool {
        self.queue.is_none_or(|q| q == s.queue_id)
            && self.priority.is_none_or(|p| p == s.priority_id)
            && self.status.is_none_or(|x| x == s.status_id)
            && self.issue_type.is_none_or(|t| s.issue_type_id == Some(t))
            && self.source.is_none_or(|x| x == s.source_id)
            && self.auto.is_none_or(|a| a == ctx.auto)
            && self
                .mailbox
                .as_deref()
                .is_none_or(|m| eq_ci(m, ctx.mailbox.trim()))
            && self
                .company
                .as_deref()
                .is_none_or(|c| s.company.as_deref().is_some_and(|sc| eq_ci(c, sc.trim())))
            && self
                .tag
                .as_deref()
                .is_none_or(|t| s.tags.iter().any(|x| eq_ci(t, x.trim())))
            && self
                .sender_domain
                .as_deref()
                .is_none_or(|d| ctx.sender_domain.is_some_and(|sd| within_domain(sd, d)))
            && self
                .subject
                .as_ref()
                .is_none_or(|r| r.is_match(ctx.subject))
            && self.body.as_ref().is_none_or(|r| r.is_match(ctx.body))
    }
}

/// Actions of a compiled rule (None = none).
#[derive(Debug, Default)]
struct Actions {
    queue: Option<i64>,
    priority: Option<i64>,
    status: Option<i64>,
    issue_type: Option<i64>,
    due_in_hours: Option<i32>,
    assign: Option<Assign>,
    add_tag: Option<String>,
    /// (template, roles, addresses)
    notify: Option<(String, Vec<Role>, Vec<String>)>,
}

impl Actions {
    /// Apply the state-changing actions; returns whether the state changed.
    fn apply(&self, s: &mut TicketState, now: NaiveDateTime) -> bool {
        let mut changed = false;
        let mut set = |slot: &mut i64, v: Option<i64>| {
            if let Some(v) = v.filter(|v| *v != *slot) {
                *slot = v;
                changed = true;
            }
        };
        set(&mut s.queue_id, self.queue);
        set(&mut s.priority_id, self.priority);
        set(&mut s.status_id, self.status);
        if let Some(t) = self.issue_type.filter(|t| s.issue_type_id != Some(*t)) {
            s.issue_type_id = Some(t);
            changed = true;
        }
        if let Some(h) = self.due_in_hours {
            let due = now.checked_add_signed(chrono::TimeDelta::hours(i64::from(h)));
            if due.is_some() && due != s.due_at {
                s.due_at = due;
                changed = true;
            }
        }
        if let Some(tag) = &self.add_tag
            && !s.tags.iter().any(|x| eq_ci(tag, x.trim()))
        {
            s.tags.push(tag.clone());
            changed = true;
        }
        changed
    }
}

#[derive(Debug)]
struct Rule {
    id: i64,
    position: i32,
    name: String,
    /// Bits of [`Event::bit`].
    events: u8,
    when: Conditions,
    then: Actions,
    /// The actions in words, for the trace.
    summary: String,
}

/// Rules compiled once per configuration load: names resolved to ids, regular expressions
/// compiled, sorted by (position, id), inactive and broken rules left out.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Compile the rows. Problems are one line each naming the rule; a rule with a problem is
    /// left out (never half-applied). Inactive rules are left out unchecked. `sources` lists
    /// the ticket sources (id, name) for `if_source`; `template_exists` says whether a
    /// notification template of that name exists. Blank texts count as not given.
    pub fn compile(
        rows: &[RuleRow],
        refs: &RefData,
        sources: &[(i64, String)],
        template_exists: &dyn Fn(&str) -> bool,
    ) -> (RuleSet, Vec<String>) {
        let statuses: Vec<(i64, String)> = refs
            .statuses
            .iter()
            .map(|(id, n, _)| (*id, n.clone()))
            .collect();
        let lists = Lists {
            refs,
            statuses: &statuses,
            sources,
        };
        let mut rules = Vec::new();
        let mut problems = Vec::new();
        for row in rows.iter().filter(|r| r.active) {
            let mut own = Vec::new();
            let rule = compile_rule(row, &lists, template_exists, &mut own);
            if own.is_empty() {
                rules.push(rule);
            } else {
                problems.extend(own.into_iter().map(|p| {
                    format!(
                        "workflow rule {} {:?}: {p}; the rule is skipped",
                        row.id, row.name
                    )
                }));
            }
        }
        rules.sort_by_key(|r| (r.position, r.id));
        (RuleSet { rules }, problems)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Evaluate the rules for one event (see the module documentation for levels and order).
    pub fn run(&self, event: Event, initial: &TicketState, ctx: &Context<'_>) -> Effects {
        self.run_events(&[event], initial, ctx)
    }

    /// [`RuleSet::run`] for a message that is several events at once (a note that also set the
    /// status by mail): a rule listening to more than one of them still fires once.
    pub fn run_events(&self, given: &[Event], initial: &TicketState, ctx: &Context<'_>) -> Effects {
        let base = given.iter().fold(0u8, |m, e| m | e.bit());
        let mut fx = Effects {
            state: initial.clone(),
            ..Effects::default()
        };
        if self.rules.is_empty() {
            return fx;
        }
        let mut fired = vec![false; self.rules.len()];
        let mut events = base;
        let mut level = 1u8;
        loop {
            let status_before = fx.state.status_id;
            if !self.level(level, events, &mut fired, ctx, &mut fx) {
                break;
            }
            events = base;
            if fx.state.status_id != status_before {
                events |= Event::StatusChanged.bit();
            }
            if level == MAX_LEVELS {
                self.limit(events, &fired, ctx, &mut fx);
                break;
            }
            level += 1;
        }
        fx.changed = fx.state != *initial;
        fx.status_changed = fx.state.status_id != initial.status_id;
        fx
    }

    /// One level: fire the rules that have not fired yet, listen to `events` and hold on the
    /// state as it is when each is considered. Returns whether an action changed the state.
    fn level(
        &self,
        level: u8,
        events: u8,
        fired: &mut [bool],
        ctx: &Context<'_>,
        fx: &mut Effects,
    ) -> bool {
        let mut changed = false;
        for (rule, done) in self.rules.iter().zip(fired.iter_mut()) {
            if *done || rule.events & events == 0 || !rule.when.hold(&fx.state, ctx) {
                continue;
            }
            *done = true;
            let tag_new = rule
                .then
                .add_tag
                .as_deref()
                .filter(|t| !fx.state.tags.iter().any(|x| eq_ci(t, x.trim())));
            if let Some(t) = tag_new {
                fx.add_tags.push(t.to_string());
            }
            changed |= rule.then.apply(&mut fx.state, ctx.now);
            if let Some(a) = &rule.then.assign {
                fx.assign = Some(a.clone());
            }
            if let Some((template, roles, addresses)) = &rule.then.notify {
                fx.notify.push(Notify {
                    rule_id: rule.id,
                    rule: rule.name.clone(),
                    template: template.clone(),
                    roles: roles.clone(),
                    addresses: addresses.clone(),
                });
            }
            fx.fired.push((rule.id, rule.name.clone(), level));
            fx.trace.push(format!(
                "rule {} {:?} fired at level {level}: {}",
                rule.id, rule.name, rule.summary
            ));
        }
        changed
    }

    /// After the last level changed the state: find the rules that would fire at the next
    /// level (on a scratch copy of the state) and report them.
    fn limit(&self, events: u8, fired: &[bool], ctx: &Context<'_>, fx: &mut Effects) {
        let mut scratch = fx.state.clone();
        let mut would = Vec::new();
        for (rule, done) in self.rules.iter().zip(fired) {
            if *done || rule.events & events == 0 || !rule.when.hold(&scratch, ctx) {
                continue;
            }
            rule.then.apply(&mut scratch, ctx.now);
            would.push(format!("rule {} {:?}", rule.id, rule.name));
        }
        if !would.is_empty() {
            fx.cascade_limited = true;
            fx.trace.push(format!(
                "cascade stopped after level {MAX_LEVELS}; not fired at level {}: {}",
                MAX_LEVELS + 1,
                would.join(", ")
            ));
        }
    }
}

/// The reference lists names are resolved against.
struct Lists<'a> {
    refs: &'a RefData,
    statuses: &'a [(i64, String)],
    sources: &'a [(i64, String)],
}

const QUEUE: (&str, &str) = ("queue", "queues");
const PRIORITY: (&str, &str) = ("priority", "priorities");
const STATUS: (&str, &str) = ("status", "statuses");
const ISSUE_TYPE: (&str, &str) = ("issue type", "issue types");
const SOURCE: (&str, &str) = ("source", "sources");

/// A text that is given and not blank, trimmed.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Resolve a name to (id, name as defined), or report it with the valid names.
fn lookup<'r>(
    v: Option<&str>,
    rows: &'r [(i64, String)],
    (what, plural): (&str, &str),
    field: &str,
    problems: &mut Vec<String>,
) -> Option<(i64, &'r str)> {
    let v = v?;
    match rows.iter().find(|(_, n)| n.trim().eq_ignore_ascii_case(v)) {
        Some((id, n)) => Some((*id, n.as_str())),
        None => {
            let valid = if rows.is_empty() {
                "none defined".to_string()
            } else {
                names(rows)
            };
            problems.push(format!(
                "unknown {what} {v:?} in {field} ({plural}: {valid})"
            ));
            None
        }
    }
}

fn regex(v: Option<&str>, field: &str, problems: &mut Vec<String>) -> Option<Regex> {
    let v = v?;
    match RegexBuilder::new(v)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            let first = e
                .to_string()
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string();
            problems.push(format!("{field}: pattern {v:?} does not compile ({first})"));
            None
        }
    }
}

/// A mail address in lower case, if it looks like one (`local@domain`, optionally in `<>`).
fn address(v: &str) -> Option<String> {
    let a = v
        .trim()
        .strip_prefix('<')
        .map_or(v.trim(), |x| x.strip_suffix('>').unwrap_or(x))
        .trim();
    let (local, domain) = a.split_once('@')?;
    let bad = |c: char| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"@".contains(c);
    let local_ok = !local.is_empty() && !local.chars().any(bad);
    let domain_ok = !domain.is_empty()
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'));
    (local_ok && domain_ok).then(|| a.to_lowercase())
}

/// `@Example.COM.` -> `example.com`, if it looks like a domain.
fn domain(v: &str) -> Option<String> {
    let d = v.trim().trim_start_matches('@').trim_matches('.');
    let ok = !d.is_empty()
        && d.split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'));
    ok.then(|| d.to_lowercase())
}

/// `domain` is `parent` or a subdomain of it (`mail.example.com` is within `example.com`).
fn within_domain(domain: &str, parent: &str) -> bool {
    let d = domain.trim().trim_end_matches('.').as_bytes();
    let p = parent.as_bytes();
    match d.len().checked_sub(p.len()) {
        Some(0) => d.eq_ignore_ascii_case(p),
        Some(n) => d[n - 1] == b'.' && d[n..].eq_ignore_ascii_case(p),
        None => false,
    }
}

/// Case-insensitive equality, Unicode-aware for non-ASCII text.
fn eq_ci(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || ((!a.is_ascii() || !b.is_ascii())
            && a.chars()
                .flat_map(char::to_lowercase)
                .eq(b.chars().flat_map(char::to_lowercase)))
}

fn compile_rule(
    row: &RuleRow,
    lists: &Lists<'_>,
    template_exists: &dyn Fn(&str) -> bool,
    problems: &mut Vec<String>,
) -> Rule {
    let refs = lists.refs;

    let mut events = 0u8;
    let mut listed = false;
    for item in row
        .on_events
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        listed = true;
        match Event::parse(item) {
            Some(e) => events |= e.bit(),
            None => problems.push(format!(
                "on_events: unknown event {item:?} (events: {})",
                Event::ALL.map(Event::as_str).join(", ")
            )),
        }
    }
    if !listed {
        problems.push("on_events: no event".to_string());
    }

    let mailbox = given(&row.if_mailbox).and_then(|m| {
        let a = address(m);
        if a.is_none() {
            problems.push(format!("if_mailbox: invalid address {m:?}"));
        }
        a
    });
    let sender_domain = given(&row.if_sender_domain).and_then(|d| {
        let n = domain(d);
        if n.is_none() {
            problems.push(format!("if_sender_domain: invalid domain {d:?}"));
        }
        n
    });
    let when = Conditions {
        mailbox,
        queue: lookup(
            given(&row.if_queue),
            &refs.queues,
            QUEUE,
            "if_queue",
            problems,
        )
        .map(|x| x.0),
        priority: lookup(
            given(&row.if_priority),
            &refs.priorities,
            PRIORITY,
            "if_priority",
            problems,
        )
        .map(|x| x.0),
        status: lookup(
            given(&row.if_status),
            lists.statuses,
            STATUS,
            "if_status",
            problems,
        )
        .map(|x| x.0),
        issue_type: lookup(
            given(&row.if_issue_type),
            &refs.issue_types,
            ISSUE_TYPE,
            "if_issue_type",
            problems,
        )
        .map(|x| x.0),
        company: given(&row.if_company).map(str::to_string),
        tag: given(&row.if_tag).map(str::to_string),
        sender_domain,
        subject: regex(given(&row.if_subject), "if_subject", problems),
        body: regex(given(&row.if_body), "if_body", problems),
        source: lookup(
            given(&row.if_source),
            lists.sources,
            SOURCE,
            "if_source",
            problems,
        )
        .map(|x| x.0),
        auto: row.if_auto,
    };

    let mut summary: Vec<String> = Vec::new();
    let mut set = |v: &Option<String>,
                   rows: &[(i64, String)],
                   what: (&str, &str),
                   field: &str,
                   problems: &mut Vec<String>| {
        lookup(given(v), rows, what, field, problems).map(|(id, name)| {
            summary.push(format!("{} {name}", what.0));
            id
        })
    };
    let queue = set(&row.set_queue, &refs.queues, QUEUE, "set_queue", problems);
    let priority = set(
        &row.set_priority,
        &refs.priorities,
        PRIORITY,
        "set_priority",
        problems,
    );
    let status = set(
        &row.set_status,
        lists.statuses,
        STATUS,
        "set_status",
        problems,
    );
    let issue_type = set(
        &row.set_issue_type,
        &refs.issue_types,
        ISSUE_TYPE,
        "set_issue_type",
        problems,
    );

    let due_in_hours = row.due_in_hours.filter(|h| {
        if *h < 0 {
            problems.push(format!("due_in_hours: {h} is negative"));
            return false;
        }
        summary.push(format!("due in {h} h"));
        true
    });

    let assign = given(&row.assign).and_then(|a| {
        if a.eq_ignore_ascii_case("round_robin") {
            summary.push("assign round robin".to_string());
            return Some(Assign::RoundRobin);
        }
        match address(a) {
            Some(addr) => {
                summary.push(format!("assign {addr}"));
                Some(Assign::Resource(addr))
            }
            None => {
                problems.push(format!(
                    "assign: {a:?} is neither round_robin nor a valid address"
                ));
                None
            }
        }
    });

    let add_tag = given(&row.add_tag).map(|t| {
        summary.push(format!("tag {t}"));
        t.to_string()
    });

    let notify =
        compile_notify(row, template_exists, problems).map(|(template, roles, addresses)| {
            let to: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            summary.push(format!("notify {template:?} to {}", to.join(", ")));
            (template, roles, addresses)
        });

    let then = Actions {
        queue,
        priority,
        status,
        issue_type,
        due_in_hours,
        assign,
        add_tag,
        notify,
    };
    let has_action = [
        &row.set_queue,
        &row.set_priority,
        &row.set_status,
        &row.set_issue_type,
        &row.assign,
        &row.add_tag,
        &row.notify_template,
    ]
    .iter()
    .any(|v| given(v).is_some())
        || row.due_in_hours.is_some();
    if !has_action {
        problems.push("no action".to_string());
    }

    Rule {
        id: row.id,
        position: row.position,
        name: row.name.clone(),
        events,
        when,
        then,
        summary: summary.join(", "),
    }
}

/// The notification of a rule: (template, roles, addresses), checked together.
fn compile_notify(
    row: &RuleRow,
    template_exists: &dyn Fn(&str) -> bool,
    problems: &mut Vec<String>,
) -> Option<(String, Vec<Role>, Vec<String>)> {
    let before = problems.len();
    let template = given(&row.notify_template);
    let roles_text = given(&row.notify_roles);
    let addresses_text = given(&row.notify_addresses);

    let mut roles: Vec<Role> = Vec::new();
    for item in roles_text
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match Role::parse(item) {
            Some(r) if !roles.contains(&r) => roles.push(r),
            Some(_) => {}
            None => problems.push(format!(
                "notify_roles: unknown role {item:?} (roles: {})",
                Role::ALL.map(Role::as_str).join(", ")
            )),
        }
    }
    let mut addresses: Vec<String> = Vec::new();
    for item in addresses_text
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match address(item) {
            Some(a) if !addresses.contains(&a) => addresses.push(a),
            Some(_) => {}
            None => problems.push(format!("notify_addresses: invalid address {item:?}")),
        }
    }

    let Some(template) = template else {
        if roles_text.is_some() || addresses_text.is_some() {
            problems.push("notify_roles or notify_addresses without notify_template".to_string());
        }
        return None;
    };
    if !template_exists(template) {
        problems.push(format!("notify_template: unknown template {template:?}"));
    }
    if roles.is_empty()
        && !problems[before..]
            .iter()
            .any(|p| p.starts_with("notify_roles"))
    {
        problems.push(format!("notify_template {template:?} without notify_roles"));
    }
    let to_addresses = roles.contains(&Role::Addresses);
    if to_addresses && addresses_text.is_none() {
        problems.push("notify_roles: role 'addresses' without notify_addresses".to_string());
    }
    if !to_addresses && addresses_text.is_some() {
        problems
            .push("notify_addresses given but notify_roles lacks the role 'addresses'".to_string());
    }
    (problems.len() == before).then(|| (template.to_string(), roles, addresses))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs() -> RefData {
        RefData {
            queues: vec![
                (1, "Triage".into()),
                (2, "Gold".into()),
                (3, "Network Ops".into()),
            ],
            priorities: vec![(1, "Low".into()), (2, "Medium".into()), (3, "High".into())],
            statuses: vec![
                (1, "New".into(), false),
                (2, "In Progress".into(), false),
                (3, "Waiting Customer".into(), false),
                (5, "Complete".into(), true),
            ],
            issue_types: vec![(1, "Hardware".into()), (2, "Network".into())],
            ..RefData::default()
        }
    }

    fn sources() -> Vec<(i64, String)> {
        vec![(1, "Email".into()), (2, "Monitoring".into())]
    }

    fn templates(name: &str) -> bool {
        ["ack", "escalated"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name))
    }

    fn row(id: i64, name: &str, events: &str) -> RuleRow {
        RuleRow {
            id,
            position: 100,
            name: name.into(),
            active: true,
            on_events: events.into(),
            ..RuleRow::default()
        }
    }

    fn compile(rows: &[RuleRow]) -> (RuleSet, Vec<String>) {
        RuleSet::compile(rows, &refs(), &sources(), &templates)
    }

    fn compile_ok(rows: &[RuleRow]) -> RuleSet {
        let (set, problems) = compile(rows);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(set.len(), rows.iter().filter(|r| r.active).count());
        set
    }

    fn state() -> TicketState {
        TicketState {
            queue_id: 1,
            priority_id: 2,
            status_id: 1,
            issue_type_id: None,
            source_id: 1,
            company: Some("Acme GmbH".into()),
            tags: vec!["printer".into()],
            due_at: None,
        }
    }

    fn now() -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 27)
            .and_then(|d| d.and_hms_opt(10, 0, 0))
            .unwrap_or_default()
    }

    fn ctx() -> Context<'static> {
        Context {
            mailbox: "support@example.com",
            sender_domain: Some("mail.customer.example"),
            subject: "Printer on fire",
            body: "Hello,\nthe printer is on fire.\n",
            auto: false,
            now: now(),
        }
    }

    fn ids(fx: &Effects) -> Vec<(i64, u8)> {
        fx.fired
            .iter()
            .map(|(id, _, level)| (*id, *level))
            .collect()
    }

    /// Whether a rule with one condition set by `with` (and the action "tag hit") fires.
    fn fires_on(state: &TicketState, ctx: &Context<'_>, with: impl Fn(&mut RuleRow)) -> bool {
        let mut r = row(1, "cond", "ticket_created");
        r.add_tag = Some("hit".into());
        with(&mut r);
        let set = compile_ok(&[r]);
        let fx = set.run(Event::TicketCreated, state, ctx);
        assert_eq!(fx.fired.is_empty(), fx.add_tags.is_empty());
        !fx.fired.is_empty()
    }

    fn fires(with: impl Fn(&mut RuleRow)) -> bool {
        fires_on(&state(), &ctx(), with)
    }

    #[test]
    fn events_and_roles_by_name() {
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(e));
        }
        assert_eq!(Event::parse(" Ticket_Created "), Some(Event::TicketCreated));
        assert_eq!(Event::parse("ticket_closed"), None);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(
            serde_json::to_string(&Event::TimeEntryAdded)
                .ok()
                .as_deref(),
            Some("\"time_entry_added\"")
        );
        assert_eq!(
            serde_json::to_string(&Role::QueueMembers).ok().as_deref(),
            Some("\"queue_members\"")
        );
    }

    #[test]
    fn no_rules_change_nothing() {
        let set = RuleSet::default();
        assert!(set.is_empty());
        let fx = set.run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(
            fx,
            Effects {
                state: state(),
                ..Effects::default()
            }
        );
    }

    #[test]
    fn events_select_rules() {
        assert!(fires(|_| {}));
        assert!(!fires(
            |r| r.on_events = "note_added, time_entry_added".into()
        ));
        assert!(fires(|r| r.on_events = "note_added, Ticket_Created".into()));
    }

    #[test]
    fn mailbox_condition() {
        assert!(fires(|r| r.if_mailbox = Some("Support@Example.COM".into())));
        assert!(!fires(|r| r.if_mailbox = Some("sales@example.com".into())));
    }

    #[test]
    fn reference_conditions() {
        assert!(fires(|r| r.if_queue = Some("triage".into())));
        assert!(!fires(|r| r.if_queue = Some("Gold".into())));
        assert!(fires(|r| r.if_priority = Some("Medium".into())));
        assert!(!fires(|r| r.if_priority = Some("High".into())));
        assert!(fires(|r| r.if_status = Some("new".into())));
        assert!(!fires(|r| r.if_status = Some("Complete".into())));
        assert!(fires(|r| r.if_source = Some("EMAIL".into())));
        assert!(!fires(|r| r.if_source = Some("Monitoring".into())));
        // The ticket has no issue type yet.
        assert!(!fires(|r| r.if_issue_type = Some("Hardware".into())));
        let typed = TicketState {
            issue_type_id: Some(1),
            ..state()
        };
        assert!(fires_on(&typed, &ctx(), |r| r.if_issue_type =
            Some("hardware".into())));
        assert!(!fires_on(&typed, &ctx(), |r| r.if_issue_type = Some("Network".into())));
    }

    #[test]
    fn company_and_tag_conditions() {
        assert!(fires(|r| r.if_company = Some("ACME GMBH".into())));
        assert!(!fires(|r| r.if_company = Some("Acme".into())));
        let nobody = TicketState {
            company: None,
            ..state()
        };
        assert!(!fires_on(&nobody, &ctx(), |r| r.if_company = Some("Acme GmbH".into())));
        let umlaut = TicketState {
            company: Some("Müller AG".into()),
            ..state()
        };
        assert!(fires_on(&umlaut, &ctx(), |r| r.if_company = Some("MÜLLER AG".into())));
        assert!(fires(|r| r.if_tag = Some("PRINTER".into())));
        assert!(!fires(|r| r.if_tag = Some("scanner".into())));
    }

    #[test]
    fn sender_domain_condition() {
        assert!(fires(
            |r| r.if_sender_domain = Some("mail.customer.example".into())
        ));
        assert!(fires(
            |r| r.if_sender_domain = Some("Customer.Example".into())
        ));
        assert!(fires(
            |r| r.if_sender_domain = Some("@customer.example".into())
        ));
        assert!(!fires(|r| r.if_sender_domain = Some("other.example".into())));
        assert!(!fires(|r| r.if_sender_domain = Some("tomer.example".into())));
        assert!(!fires(
            |r| r.if_sender_domain = Some("x.mail.customer.example".into())
        ));
        let unknown = Context {
            sender_domain: None,
            ..ctx()
        };
        assert!(!fires_on(&state(), &unknown, |r| r.if_sender_domain =
            Some("customer.example".into())));
    }

    #[test]
    fn text_conditions() {
        assert!(fires(|r| r.if_subject = Some(r"on\s+FIRE".into())));
        assert!(!fires(|r| r.if_subject = Some("^fire".into())));
        assert!(fires(|r| r.if_body = Some("(?m)^the printer".into())));
        assert!(!fires(|r| r.if_body = Some("toner".into())));
    }

    #[test]
    fn auto_condition() {
        assert!(fires(|r| r.if_auto = Some(false)));
        assert!(!fires(|r| r.if_auto = Some(true)));
        let auto = Context {
            auto: true,
            ..ctx()
        };
        assert!(fires_on(&state(), &auto, |r| r.if_auto = Some(true)));
    }

    #[test]
    fn all_conditions_must_hold() {
        assert!(fires(|r| {
            r.if_queue = Some("Triage".into());
            r.if_subject = Some("printer".into());
        }));
        assert!(!fires(|r| {
            r.if_queue = Some("Triage".into());
            r.if_subject = Some("scanner".into());
        }));
    }

    #[test]
    fn every_action_is_applied() {
        let mut r = row(7, "Everything", "ticket_created");
        r.set_queue = Some("gold".into());
        r.set_priority = Some("HIGH".into());
        r.set_status = Some("in progress".into());
        r.set_issue_type = Some("Network".into());
        r.due_in_hours = Some(4);
        r.assign = Some("Tech@Example.com".into());
        r.add_tag = Some("vip".into());
        r.notify_template = Some("ack".into());
        r.notify_roles = Some("contact, Assigned".into());
        let fx = compile_ok(&[r]).run(Event::TicketCreated, &state(), &ctx());
        let expected = TicketState {
            queue_id: 2,
            priority_id: 3,
            status_id: 2,
            issue_type_id: Some(2),
            tags: vec!["printer".into(), "vip".into()],
            due_at: Some(now() + chrono::TimeDelta::hours(4)),
            ..state()
        };
        assert_eq!(fx.state, expected);
        assert!(fx.changed && fx.status_changed && !fx.cascade_limited);
        assert_eq!(fx.assign, Some(Assign::Resource("tech@example.com".into())));
        assert_eq!(fx.add_tags, vec!["vip"]);
        assert_eq!(
            fx.notify,
            vec![Notify {
                rule_id: 7,
                rule: "Everything".into(),
                template: "ack".into(),
                roles: vec![Role::Contact, Role::Assigned],
                addresses: vec![],
            }]
        );
        assert_eq!(fx.fired, vec![(7, "Everything".to_string(), 1)]);
        assert_eq!(
            fx.trace,
            vec![
                "rule 7 \"Everything\" fired at level 1: queue Gold, priority High, status In Progress, issue type Network, \
                 due in 4 h, assign tech@example.com, tag vip, notify \"ack\" to contact, assigned"
            ]
        );
    }

    #[test]
    fn actions_that_change_nothing() {
        let mut r = row(1, "Same", "ticket_created");
        r.set_priority = Some("Medium".into());
        r.add_tag = Some("PRINTER".into());
        let fx = compile_ok(&[r]).run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(fx.fired.len(), 1);
        assert!(!fx.changed && !fx.status_changed);
        assert!(fx.add_tags.is_empty());
        assert_eq!(fx.state, state());
    }

    #[test]
    fn added_tags_have_no_duplicates() {
        let mut a = row(1, "A", "ticket_created");
        a.add_tag = Some("VIP".into());
        a.position = 1;
        let mut b = row(2, "B", "ticket_created");
        b.add_tag = Some("vip".into());
        b.position = 2;
        let fx = compile_ok(&[a, b]).run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(fx.add_tags, vec!["VIP"]);
        assert_eq!(fx.state.tags, vec!["printer", "VIP"]);
        assert_eq!(fx.fired.len(), 2);
    }

    #[test]
    fn rules_run_by_position_then_id() {
        let mut high = row(1, "High", "ticket_created");
        high.position = 20;
        high.set_priority = Some("High".into());
        let mut low = row(2, "Low", "ticket_created");
        low.position = 10;
        low.set_priority = Some("Low".into());
        let mut tie = row(3, "Tie", "ticket_created");
        tie.position = 20;
        tie.add_tag = Some("tie".into());
        let fx = compile_ok(&[tie, high, low]).run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(ids(&fx), vec![(2, 1), (1, 1), (3, 1)]);
        assert_eq!(fx.state.priority_id, 3, "the later rule wins");
    }

    #[test]
    fn a_later_rule_of_the_same_level_sees_earlier_changes() {
        let mut a = row(1, "To Gold", "ticket_created");
        a.position = 10;
        a.set_queue = Some("Gold".into());
        let mut b = row(2, "Gold tag", "ticket_created");
        b.position = 20;
        b.if_queue = Some("Gold".into());
        b.add_tag = Some("gold".into());
        let fx = compile_ok(&[a, b]).run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(ids(&fx), vec![(1, 1), (2, 1)]);
        assert_eq!(fx.add_tags, vec!["gold"]);
    }

    #[test]
    fn cascade_over_three_levels() {
        // Listed in the opposite order of their effect, so each needs the next level.
        let mut c = row(3, "C", "ticket_created");
        c.position = 10;
        c.if_tag = Some("vip".into());
        c.set_queue = Some("Gold".into());
        let mut b = row(2, "B", "ticket_created");
        b.position = 20;
        b.if_priority = Some("High".into());
        b.add_tag = Some("vip".into());
        let mut a = row(1, "A", "ticket_created");
        a.position = 30;
        a.set_priority = Some("High".into());
        let fx = compile_ok(&[a, b, c]).run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(ids(&fx), vec![(1, 1), (2, 2), (3, 3)]);
        assert_eq!((fx.state.priority_id, fx.state.queue_id), (3, 2));
        assert_eq!(fx.add_tags, vec!["vip"]);
        assert!(fx.changed && !fx.status_changed && !fx.cascade_limited);
        assert_eq!(fx.trace[1], "rule 2 \"B\" fired at level 2: tag vip");
    }

    #[test]
    fn status_changed_rules_fire_in_the_cascade() {
        let mut a = row(1, "Start", "ticket_created");
        a.set_status = Some("In Progress".into());
        let mut b = row(2, "Tell", "status_changed");
        b.position = 50;
        b.if_status = Some("In Progress".into());
        b.notify_template = Some("ack".into());
        b.notify_roles = Some("contact".into());
        let set = compile_ok(&[a.clone(), b]);
        let fx = set.run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(ids(&fx), vec![(1, 1), (2, 2)]);
        assert_eq!(fx.notify.len(), 1);
        assert!(fx.status_changed);

        // Without a status change the status_changed rule stays quiet.
        let mut quiet = a;
        quiet.set_status = None;
        quiet.set_priority = Some("High".into());
        let mut b2 = row(2, "Tell", "status_changed");
        b2.add_tag = Some("told".into());
        let fx = compile_ok(&[quiet, b2.clone()]).run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(ids(&fx), vec![(1, 1)]);

        // The caller reports a status change (`#S=`) directly.
        let fx = compile_ok(&[b2]).run(Event::StatusChanged, &state(), &ctx());
        assert_eq!(ids(&fx), vec![(2, 1)]);
    }

    #[test]
    fn status_changed_is_an_event_of_the_next_level_only() {
        // Level 1 changes the status, level 2 only the priority: level 3 hears no status change.
        let mut a = row(1, "Status", "note_added");
        a.position = 30;
        a.set_status = Some("Waiting Customer".into());
        let mut b = row(2, "Priority", "status_changed");
        b.position = 20;
        b.set_priority = Some("High".into());
        let mut c = row(3, "Late", "status_changed");
        c.position = 10;
        c.if_priority = Some("High".into());
        c.add_tag = Some("late".into());
        let fx = compile_ok(&[a, b, c]).run(Event::NoteAdded, &state(), &ctx());
        assert_eq!(ids(&fx), vec![(1, 1), (2, 2)]);
    }

    #[test]
    fn the_cascade_is_limited() {
        // Rule k adds tag tk when tag t(k-1) is there; listed backwards, one fires per level.
        let rows: Vec<RuleRow> = (1..=7)
            .map(|k| {
                let mut r = row(k, &format!("R{k}"), "ticket_created");
                r.position = (10 - k) as i32;
                r.if_tag = (k > 1).then(|| format!("t{}", k - 1));
                r.add_tag = Some(format!("t{k}"));
                r
            })
            .collect();
        let fx = compile_ok(&rows).run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(ids(&fx), vec![(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]);
        assert!(fx.cascade_limited);
        assert_eq!(fx.add_tags, vec!["t1", "t2", "t3", "t4", "t5"]);
        assert_eq!(fx.trace.len(), 6);
        assert_eq!(
            fx.trace[5],
            "cascade stopped after level 5; not fired at level 6: rule 6 \"R6\""
        );

        // Six rules fit: the last level changes the state but nothing would follow.
        let fx = compile_ok(&rows[1..]).run(
            Event::TicketCreated,
            &TicketState {
                tags: vec!["t1".into()],
                ..state()
            },
            &ctx(),
        );
        assert_eq!(fx.fired.len(), 5);
        assert!(fx.cascade_limited, "R7 would still fire");
        let fx = compile_ok(&rows[..5]).run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(fx.fired.len(), 5);
        assert!(!fx.cascade_limited);
    }

    #[test]
    fn rules_that_undo_each_other_fire_once() {
        let mut a = row(1, "Up", "ticket_created");
        a.position = 10;
        a.if_priority = Some("Low".into());
        a.set_priority = Some("High".into());
        let mut b = row(2, "Down", "ticket_created");
        b.position = 20;
        b.if_priority = Some("High".into());
        b.set_priority = Some("Low".into());
        let low = TicketState {
            priority_id: 1,
            ..state()
        };

        let fx = compile_ok(&[a.clone(), b.clone()]).run(Event::TicketCreated, &low, &ctx());
        assert_eq!(ids(&fx), vec![(1, 1), (2, 1)]);
        assert_eq!(fx.state.priority_id, 1);
        assert!(!fx.changed && !fx.cascade_limited);

        (a.position, b.position) = (20, 10);
        let fx = compile_ok(&[a, b]).run(Event::TicketCreated, &low, &ctx());
        assert_eq!(ids(&fx), vec![(1, 1), (2, 2)]);
        assert_eq!(fx.state.priority_id, 1);
        assert!(!fx.cascade_limited);
    }

    #[test]
    fn run_is_a_function_of_its_inputs() {
        let mut a = row(1, "Note", "note_added");
        a.add_tag = Some("noted".into());
        let mut b = row(2, "Status", "status_changed");
        b.add_tag = Some("moved".into());
        let set = compile_ok(&[a, b]);
        let first = set.run(Event::NoteAdded, &state(), &ctx());
        assert_eq!(ids(&first), vec![(1, 1)]);
        let second = set.run(Event::StatusChanged, &first.state, &ctx());
        assert_eq!(ids(&second), vec![(2, 1)]);
        assert_eq!(second.state.tags, vec!["printer", "noted", "moved"]);
        assert_eq!(set.run(Event::NoteAdded, &state(), &ctx()), first);
    }

    #[test]
    fn assignment_fixed_and_round_robin() {
        let mut fixed = row(1, "Fixed", "ticket_created");
        fixed.position = 1;
        fixed.assign = Some(" <Ann@Example.COM> ".into());
        let fx = compile_ok(&[fixed.clone()]).run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(fx.assign, Some(Assign::Resource("ann@example.com".into())));
        assert!(!fx.changed, "assignment is not part of the state");

        let mut rr = row(2, "RR", "ticket_created");
        rr.position = 2;
        rr.assign = Some("Round_Robin".into());
        let fx = compile_ok(&[fixed, rr]).run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(
            fx.assign,
            Some(Assign::RoundRobin),
            "the last assignment wins"
        );
        assert_eq!(
            fx.trace[1],
            "rule 2 \"RR\" fired at level 1: assign round robin"
        );
    }

    #[test]
    fn notify_roles_and_addresses_are_parsed() {
        let mut r = row(4, "Everyone", "ticket_created");
        r.notify_template = Some("Escalated".into());
        r.notify_roles = Some(
            " contact,ADDITIONAL_CONTACTS, assigned ,queue_members, addresses, contact,".into(),
        );
        r.notify_addresses = Some("Boss@Example.com, night@ops.example, boss@example.com".into());
        let fx = compile_ok(&[r]).run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(
            fx.notify,
            vec![Notify {
                rule_id: 4,
                rule: "Everyone".into(),
                template: "Escalated".into(),
                roles: Role::ALL.to_vec(),
                addresses: vec!["boss@example.com".into(), "night@ops.example".into()],
            }]
        );
    }

    #[test]
    fn inactive_rules_are_left_out_unchecked() {
        let mut off = row(1, "Off", "ticket_created");
        off.active = false;
        off.set_queue = Some("Nowhere".into());
        let mut on = row(2, "On", "ticket_created");
        on.add_tag = Some("on".into());
        let (set, problems) = compile(&[off, on]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(set.len(), 1);
        assert_eq!(
            ids(&set.run(Event::TicketCreated, &state(), &ctx())),
            vec![(2, 1)]
        );
    }

    #[test]
    fn broken_rules_are_reported_and_left_out() {
        let tag = |mut r: RuleRow| {
            r.add_tag = Some("x".into());
            r
        };
        let mut cases: Vec<(RuleRow, &str)> = Vec::new();
        let mut r = row(1, "VIP", "ticket_created");
        r.set_queue = Some("Platinum".into());
        cases.push((
            r,
            "unknown queue \"Platinum\" in set_queue (queues: Triage, Gold, Network Ops)",
        ));
        let mut r = tag(row(2, "P", "ticket_created"));
        r.if_priority = Some("Urgent".into());
        cases.push((
            r,
            "unknown priority \"Urgent\" in if_priority (priorities: Low, Medium, High)",
        ));
        let mut r = row(3, "S", "ticket_created");
        r.set_status = Some("Closed".into());
        cases.push((r, "unknown status \"Closed\" in set_status (statuses: New, In Progress, Waiting Customer, Complete)"));
        let mut r = tag(row(4, "I", "ticket_created"));
        r.if_issue_type = Some("Software".into());
        cases.push((r, "unknown issue type \"Software\" in if_issue_type"));
        let mut r = tag(row(5, "Src", "ticket_created"));
        r.if_source = Some("Phone".into());
        cases.push((
            r,
            "unknown source \"Phone\" in if_source (sources: Email, Monitoring)",
        ));
        let mut r = tag(row(6, "Re", "ticket_created"));
        r.if_subject = Some("(unclosed".into());
        cases.push((r, "if_subject: pattern \"(unclosed\" does not compile"));
        let mut r = tag(row(7, "Re2", "ticket_created"));
        r.if_body = Some("[z-a]".into());
        cases.push((r, "if_body: pattern \"[z-a]\" does not compile"));
        cases.push((row(8, "Idle", "ticket_created"), "no action"));
        let mut r = tag(row(9, "Roles", "ticket_created"));
        r.notify_roles = Some("contact".into());
        cases.push((
            r,
            "notify_roles or notify_addresses without notify_template",
        ));
        let mut r = row(10, "NoRoles", "ticket_created");
        r.notify_template = Some("ack".into());
        cases.push((r, "notify_template \"ack\" without notify_roles"));
        let mut r = row(11, "NoTemplate", "ticket_created");
        r.notify_template = Some("missing".into());
        r.notify_roles = Some("contact".into());
        cases.push((r, "notify_template: unknown template \"missing\""));
        let mut r = row(12, "NoAddresses", "ticket_created");
        r.notify_template = Some("ack".into());
        r.notify_roles = Some("addresses".into());
        cases.push((r, "role 'addresses' without notify_addresses"));
        let mut r = row(13, "BadAddress", "ticket_created");
        r.notify_template = Some("ack".into());
        r.notify_roles = Some("addresses".into());
        r.notify_addresses = Some("ok@example.com, not an address".into());
        cases.push((r, "notify_addresses: invalid address \"not an address\""));
        let mut r = row(14, "BadRole", "ticket_created");
        r.notify_template = Some("ack".into());
        r.notify_roles = Some("contact, manager".into());
        cases.push((r, "notify_roles: unknown role \"manager\""));
        let mut r = row(15, "Unused", "ticket_created");
        r.notify_template = Some("ack".into());
        r.notify_roles = Some("contact".into());
        r.notify_addresses = Some("a@example.com".into());
        cases.push((
            r,
            "notify_addresses given but notify_roles lacks the role 'addresses'",
        ));
        let mut r = row(16, "Past", "ticket_created");
        r.due_in_hours = Some(-1);
        cases.push((r, "due_in_hours: -1 is negative"));
        let mut r = row(17, "Who", "ticket_created");
        r.assign = Some("the night shift".into());
        cases.push((
            r,
            "assign: \"the night shift\" is neither round_robin nor a valid address",
        ));
        cases.push((
            tag(row(18, "Event", "ticket_closed")),
            "on_events: unknown event \"ticket_closed\"",
        ));
        cases.push((tag(row(19, "NoEvent", " , ")), "on_events: no event"));
        let mut r = tag(row(20, "Mailbox", "ticket_created"));
        r.if_mailbox = Some("support".into());
        cases.push((r, "if_mailbox: invalid address \"support\""));
        let mut r = tag(row(21, "Domain", "ticket_created"));
        r.if_sender_domain = Some("exa mple.com".into());
        cases.push((r, "if_sender_domain: invalid domain \"exa mple.com\""));

        for (r, expected) in &cases {
            let (set, problems) = compile(std::slice::from_ref(r));
            assert!(set.is_empty(), "rule {} kept", r.id);
            assert_eq!(problems.len(), 1, "{problems:?}");
            let prefix = format!("workflow rule {} {:?}: ", r.id, r.name);
            assert!(problems[0].starts_with(&prefix), "{problems:?}");
            assert!(
                problems[0].contains(expected),
                "expected {expected:?} in {problems:?}"
            );
        }

        // Several problems of one rule: one line each; good rules are kept.
        let mut two = row(30, "Two", "ticket_created");
        two.set_queue = Some("Nowhere".into());
        two.set_priority = Some("Never".into());
        let good = tag(row(31, "Good", "ticket_created"));
        let (set, problems) = compile(&[two, good]);
        assert_eq!(set.len(), 1);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .all(|p| p.starts_with("workflow rule 30 \"Two\": ")
                    && p.ends_with("; the rule is skipped"))
        );
    }

    #[test]
    fn blank_texts_count_as_not_given() {
        let mut r = row(1, "Blank", "ticket_created");
        r.if_queue = Some("  ".into());
        r.if_subject = Some(String::new());
        r.add_tag = Some("x".into());
        r.notify_roles = Some(" ".into());
        let fx = compile_ok(&[r]).run(Event::TicketCreated, &state(), &ctx());
        assert_eq!(fx.fired.len(), 1);
    }

    #[test]
    fn domains_and_addresses() {
        assert!(within_domain("Mail.Example.COM.", "example.com"));
        assert!(within_domain("example.com", "example.com"));
        assert!(!within_domain("badexample.com", "example.com"));
        assert!(!within_domain("com", "example.com"));
        assert_eq!(
            address("<A.B+x@Sub.Example.org>").as_deref(),
            Some("a.b+x@sub.example.org")
        );
        assert_eq!(address("a@b@c"), None);
        assert_eq!(address("a@example..com"), None);
        assert_eq!(address("@example.com"), None);
        assert_eq!(domain("@Example.COM.").as_deref(), Some("example.com"));
    }
}
