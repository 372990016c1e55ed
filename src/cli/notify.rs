//! `ticketmilter outbox|template|rule|queue`: the notification queue, templates, workflow rules
//! and queue members (round-robin assignment).

use clap::{Args, Subcommand};
use std::path::PathBuf;

use super::Context;
use super::admin::table;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::Envelope;
use crate::notify::template;
use crate::store::conf::{self, RefTable};
use crate::store::{outbox, templates, workflow as wf};
use crate::workflow::RuleRow;

#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    /// Send what is due now, once (the daemon does this every notify.interval seconds)
    Send,
    /// List queued, sent and failed notifications, newest first
    List {
        /// Only rows with this status: queued, sending, sent or failed
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue failed notifications again (one by id, or every failed one with --all)
    Retry {
        id: Option<i64>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Delete sent and failed notifications older than this many days
    Purge {
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
}

pub fn outbox_cmd(ctx: &Context, cmd: OutboxCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        OutboxCmd::Send => {
            let report = crate::notify::worker::send_pass(&store, &ctx.config.notify)?;
            println!(
                "claimed {}, sent {}, to retry {}, failed {} (relay {}:{})",
                report.claimed, report.sent, report.retried, report.failed, ctx.config.notify.relay, ctx.config.notify.port
            );
            Ok(if report.failed > 0 || report.retried > 0 { 75 } else { 0 })
        }
        OutboxCmd::List { status, limit } => {
            if let Some(s) = status.as_deref() {
                if !matches!(s, "queued" | "sending" | "sent" | "failed") {
                    return Err(Error::Usage(format!("--status {s:?}: expected queued, sending, sent or failed")));
                }
            }
            let rows = store.read(|c| outbox::list(c, status.as_deref(), limit))?;
            table(
                &["ID", "KIND", "STATUS", "TO", "ATTEMPTS", "CREATED", "NEXT TRY", "SUBJECT / ERROR"],
                rows.into_iter()
                    .map(|r| {
                        let last = match &r.last_error {
                            Some(e) => format!("{} — {e}", r.subject),
                            None => r.subject.clone(),
                        };
                        vec![r.id.to_string(), r.kind, r.status, r.recipient, r.attempts.to_string(), r.created_at, r.next_try_at, last]
                    })
                    .collect(),
            );
            Ok(0)
        }
        OutboxCmd::Retry { id, all } => {
            if id.is_none() && !all {
                return Err(Error::Usage("name a notification id, or --all for every failed one".into()));
            }
            let now = chrono::Utc::now().naive_utc();
            let n = store.write(|c| outbox::retry(c, id, now))?;
            println!("{n} notification(s) queued again");
            Ok(if n == 0 && id.is_some() { 1 } else { 0 })
        }
        OutboxCmd::Purge { days } => {
            if days < 0 {
                return Err(Error::Usage("--days must not be negative".into()));
            }
            let before = (chrono::Utc::now() - chrono::Duration::days(days)).naive_utc();
            let n = store.write(|c| outbox::purge(c, before))?;
            println!("{n} sent or failed notification(s) older than {days} days deleted");
            Ok(0)
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TemplateCmd {
    /// List templates
    List,
    /// Print a template's subject and bodies
    Show { name: String },
    /// Add a template, or replace the one of that name
    Add {
        name: String,
        /// Sent automatically on: ticket_created, note_added, time_entry_added,
        /// project_note_added, task_note_added, failure, failure_admin (none: only by rules)
        #[arg(long)]
        event: Option<String>,
        /// Only for this mailbox (default: every mailbox without its own)
        #[arg(long, value_name = "ADDRESS")]
        mailbox: Option<String>,
        /// Subject template, e.g. '[{{ ticket_number }}] {{ original_subject }}'
        #[arg(long)]
        subject: String,
        /// File with the text body template
        #[arg(long, value_name = "FILE")]
        text: PathBuf,
        /// File with the HTML body template (values are HTML-escaped)
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Add it switched off
        #[arg(long)]
        inactive: bool,
    },
    /// Switch a template on
    Enable { name: String },
    /// Switch a template off
    Disable { name: String },
    /// Render every template against sample data and report problems
    Check,
}

const EVENTS: &[&str] = &["ticket_created", "note_added", "time_entry_added", "project_note_added", "task_note_added", "failure", "failure_admin"];

fn read_file(p: &PathBuf) -> Result<String> {
    std::fs::read_to_string(p).map_err(|e| Error::Io(format!("cannot read {}: {e}", p.display())))
}

pub fn template_cmd(ctx: &Context, cmd: TemplateCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        TemplateCmd::List => {
            let rows = store.read(conf::load)?;
            table(
                &["ID", "NAME", "EVENT", "MAILBOX", "ACTIVE", "SUBJECT"],
                rows.templates
                    .iter()
                    .map(|t| {
                        let mailbox = t
                            .mailbox_id
                            .and_then(|id| rows.mailboxes.iter().find(|m| m.id == id).map(|m| m.address.clone()))
                            .unwrap_or_else(|| "(all)".into());
                        vec![
                            t.id.to_string(),
                            t.name.clone(),
                            t.event.clone().unwrap_or_else(|| "(rules only)".into()),
                            mailbox,
                            if t.active { "yes" } else { "no" }.into(),
                            t.subject.clone(),
                        ]
                    })
                    .collect(),
            );
            Ok(0)
        }
        TemplateCmd::Show { name } => {
            let rows = store.read(conf::load)?;
            let t = rows
                .templates
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(name.trim()))
                .ok_or_else(|| Error::Usage(format!("no template named {name:?}")))?;
            println!("name:    {}\nevent:   {}\nactive:  {}\nsubject: {}\n\n{}", t.name, t.event.as_deref().unwrap_or("-"), t.active, t.subject, t.body_text);
            if let Some(h) = &t.body_html {
                println!("\n--- html ---\n{h}");
            }
            Ok(0)
        }
        TemplateCmd::Add { name, event, mailbox, subject, text, html, inactive } => {
            if let Some(e) = event.as_deref() {
                if !EVENTS.contains(&e) {
                    return Err(Error::Usage(format!("--event {e:?}: expected one of {}", EVENTS.join(", "))));
                }
            }
            let body_text = read_file(&text)?;
            let body_html = html.as_ref().map(read_file).transpose()?;
            let source = template::TemplateSource {
                id: 0,
                name: name.clone(),
                mailbox_id: None,
                event: event.clone(),
                subject: subject.clone(),
                body_text: body_text.clone(),
                body_html: body_html.clone(),
                active: true,
            };
            // Refused before it is stored: a template that cannot render never reaches the outbox.
            let problems = template::check(std::slice::from_ref(&source));
            if !problems.is_empty() {
                return Err(Error::Usage(problems.join("\n")));
            }
            let id = store.write(|c| {
                let mailbox_id = match mailbox.as_deref() {
                    Some(m) => Some(crate::store::mailboxes::id_by_address(c, m)?),
                    None => None,
                };
                templates::upsert_template(
                    c,
                    &templates::NewTemplate {
                        name: &name,
                        mailbox_id,
                        event: event.as_deref(),
                        subject: &subject,
                        body_text: &body_text,
                        body_html: body_html.as_deref(),
                        active: !inactive,
                    },
                )
            })?;
            println!("template {id} {name:?} saved{}", if inactive { " (inactive)" } else { "" });
            Ok(0)
        }
        TemplateCmd::Enable { name } => {
            store.write(|c| templates::set_template_active(c, &name, true))?;
            println!("template {name:?} is active");
            Ok(0)
        }
        TemplateCmd::Disable { name } => {
            store.write(|c| templates::set_template_active(c, &name, false))?;
            println!("template {name:?} is inactive");
            Ok(0)
        }
        TemplateCmd::Check => {
            let rows = store.read(conf::load)?;
            let problems = template::check(&rows.templates);
            for p in &problems {
                println!("{p}");
            }
            if problems.is_empty() {
                println!("{} template(s) render", rows.templates.len());
                Ok(0)
            } else {
                Ok(1)
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RuleCmd {
    /// List workflow rules in evaluation order
    List,
    /// Add a workflow rule
    Add(RuleArgs),
    /// Switch a rule off / on
    Disable { id: i64 },
    Enable { id: i64 },
    /// Delete a rule
    Remove { id: i64 },
    /// Show which rules would fire for a message, and what would be queued (nothing is written)
    Test(super::inspect::ExplainArgs),
}

#[derive(Debug, Args)]
pub struct RuleArgs {
    /// Name for logs and lists
    pub name: String,
    /// Events, comma-separated: ticket_created, note_added, time_entry_added, status_changed
    #[arg(long, value_name = "EVENTS")]
    pub on: String,
    /// Order (lower first)
    #[arg(long, default_value_t = 100)]
    pub position: i32,
    #[arg(long = "if-mailbox", value_name = "ADDRESS")]
    pub if_mailbox: Option<String>,
    #[arg(long = "if-queue")]
    pub if_queue: Option<String>,
    #[arg(long = "if-priority")]
    pub if_priority: Option<String>,
    #[arg(long = "if-status")]
    pub if_status: Option<String>,
    #[arg(long = "if-company")]
    pub if_company: Option<String>,
    #[arg(long = "if-issue-type")]
    pub if_issue_type: Option<String>,
    #[arg(long = "if-tag")]
    pub if_tag: Option<String>,
    /// Sender's domain (subdomains match too)
    #[arg(long = "if-sender-domain")]
    pub if_sender_domain: Option<String>,
    /// Regular expression on the subject (case-insensitive)
    #[arg(long = "if-subject", value_name = "REGEX")]
    pub if_subject: Option<String>,
    /// Regular expression on the text (case-insensitive)
    #[arg(long = "if-body", value_name = "REGEX")]
    pub if_body: Option<String>,
    #[arg(long = "if-source")]
    pub if_source: Option<String>,
    /// Only auto-generated mail (true) or only mail from people (false)
    #[arg(long = "if-auto")]
    pub if_auto: Option<bool>,
    #[arg(long = "set-queue")]
    pub set_queue: Option<String>,
    #[arg(long = "set-priority")]
    pub set_priority: Option<String>,
    #[arg(long = "set-status")]
    pub set_status: Option<String>,
    #[arg(long = "set-issue-type")]
    pub set_issue_type: Option<String>,
    /// Due date this many hours after the event
    #[arg(long = "due-in-hours")]
    pub due_in_hours: Option<i32>,
    /// A resource's address, or round_robin among the queue's members
    #[arg(long)]
    pub assign: Option<String>,
    #[arg(long = "add-tag")]
    pub add_tag: Option<String>,
    /// Template to send …
    #[arg(long = "notify")]
    pub notify_template: Option<String>,
    /// … to: contact, additional_contacts, assigned, queue_members, addresses (comma-separated)
    #[arg(long = "to-roles")]
    pub notify_roles: Option<String>,
    /// Fixed addresses for the role `addresses` (comma-separated)
    #[arg(long = "to-addresses")]
    pub notify_addresses: Option<String>,
    /// Add it switched off
    #[arg(long)]
    pub inactive: bool,
}

pub fn rule_cmd(ctx: &Context, cmd: RuleCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        RuleCmd::List => {
            let rows = store.read(|c| conf::workflow_rows(c, true))?;
            table(
                &["ID", "POS", "NAME", "ACTIVE", "ON", "IF", "THEN"],
                rows.iter().map(|r| vec![r.id.to_string(), r.position.to_string(), r.name.clone(), if r.active { "yes" } else { "no" }.into(), r.on_events.clone(), conditions(r), actions(r)]).collect(),
            );
            Ok(0)
        }
        RuleCmd::Add(a) => {
            let row = RuleRow {
                id: 0,
                position: a.position,
                name: a.name.clone(),
                active: !a.inactive,
                on_events: a.on.clone(),
                if_mailbox: a.if_mailbox,
                if_queue: a.if_queue,
                if_priority: a.if_priority,
                if_status: a.if_status,
                if_company: a.if_company,
                if_issue_type: a.if_issue_type,
                if_tag: a.if_tag,
                if_sender_domain: a.if_sender_domain,
                if_subject: a.if_subject,
                if_body: a.if_body,
                if_source: a.if_source,
                if_auto: a.if_auto,
                set_queue: a.set_queue,
                set_priority: a.set_priority,
                set_status: a.set_status,
                set_issue_type: a.set_issue_type,
                due_in_hours: a.due_in_hours,
                assign: a.assign,
                add_tag: a.add_tag,
                notify_template: a.notify_template,
                notify_roles: a.notify_roles,
                notify_addresses: a.notify_addresses,
            };
            // Compiled against the live reference data first: a rule with a problem is refused.
            let rows = store.read(conf::load)?;
            let (templates, _) = template::Templates::compile(&rows.templates);
            let mut check = row.clone();
            check.active = true;
            let (_, problems) = crate::workflow::RuleSet::compile(&[check], &rows.refs, &rows.sources, &|n| templates.by_name(n).is_some());
            if !problems.is_empty() {
                return Err(Error::Usage(problems.join("\n")));
            }
            let id = store.write(|c| templates::add_rule(c, &row))?;
            println!("workflow rule {id} {:?} added{}", a.name, if a.inactive { " (inactive)" } else { "" });
            Ok(0)
        }
        RuleCmd::Disable { id } => {
            store.write(|c| templates::set_rule_active(c, id, false))?;
            println!("workflow rule {id} is inactive");
            Ok(0)
        }
        RuleCmd::Enable { id } => {
            store.write(|c| templates::set_rule_active(c, id, true))?;
            println!("workflow rule {id} is active");
            Ok(0)
        }
        RuleCmd::Remove { id } => {
            store.write(|c| templates::remove_rule(c, id))?;
            println!("workflow rule {id} removed");
            Ok(0)
        }
        RuleCmd::Test(a) => {
            let raw = super::process::read_input(a.file.as_ref())?;
            let engine = Engine::new(store)?;
            let mut envelope = Envelope::new(a.rcpt.iter().map(|r| r.trim().trim_matches(['<', '>']).to_string()));
            envelope.null_sender = a.from.as_deref().is_some_and(|f| f.trim() == "<>");
            envelope.sender = a.from.as_deref().map(|f| f.trim().trim_matches(['<', '>']).to_string()).unwrap_or_default();
            envelope.auth_user = a.auth;
            envelope.client_addr = a.client;
            for (outcome, trace) in engine.explain(envelope, raw)? {
                println!("== {} ({}): {}", outcome.mailbox, outcome.rcpt, outcome.outcome.as_str());
                if outcome.rules.is_empty() {
                    println!("  no workflow rule fires");
                }
                for r in &outcome.rules {
                    println!("  fires: {r}");
                }
                for line in trace.iter().filter(|l| l.starts_with("rule ") || l.starts_with("workflow") || l.contains("queued") || l.contains("not sent")) {
                    println!("  {line}");
                }
            }
            Ok(0)
        }
    }
}

fn conditions(r: &RuleRow) -> String {
    let mut v = Vec::new();
    let mut add = |k: &str, x: &Option<String>| {
        if let Some(x) = x {
            v.push(format!("{k}={x}"));
        }
    };
    add("mailbox", &r.if_mailbox);
    add("queue", &r.if_queue);
    add("priority", &r.if_priority);
    add("status", &r.if_status);
    add("company", &r.if_company);
    add("issue_type", &r.if_issue_type);
    add("tag", &r.if_tag);
    add("sender_domain", &r.if_sender_domain);
    add("subject~", &r.if_subject);
    add("body~", &r.if_body);
    add("source", &r.if_source);
    if let Some(a) = r.if_auto {
        v.push(format!("auto={a}"));
    }
    if v.is_empty() { "(always)".into() } else { v.join(" ") }
}

fn actions(r: &RuleRow) -> String {
    let mut v = Vec::new();
    let mut add = |k: &str, x: &Option<String>| {
        if let Some(x) = x {
            v.push(format!("{k}={x}"));
        }
    };
    add("queue", &r.set_queue);
    add("priority", &r.set_priority);
    add("status", &r.set_status);
    add("issue_type", &r.set_issue_type);
    add("assign", &r.assign);
    add("tag", &r.add_tag);
    add("notify", &r.notify_template);
    add("to", &r.notify_roles);
    add("addresses", &r.notify_addresses);
    if let Some(h) = r.due_in_hours {
        v.push(format!("due=+{h}h"));
    }
    v.join(" ")
}

#[derive(Debug, Subcommand)]
pub enum QueueCmd {
    /// List queues and their members
    Members,
    /// Make a resource a member of a queue (round-robin assignment, queue_members notifications)
    AddMember { queue: String, resource: String },
    /// Take a resource out of a queue
    RemoveMember { queue: String, resource: String },
}

pub fn queue_cmd(ctx: &Context, cmd: QueueCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        QueueCmd::Members => {
            let rows = store.read(wf::list_queue_members)?;
            table(
                &["QUEUE", "RESOURCE", "ADDRESS", "LAST ASSIGNED"],
                rows.into_iter()
                    .map(|(q, n, e, at)| vec![q, n, e, at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into())])
                    .collect(),
            );
            Ok(0)
        }
        QueueCmd::AddMember { queue, resource } => {
            store.write(|c| {
                let q = conf::ref_by_name(c, RefTable::Queue, &queue)?;
                wf::add_queue_member(c, q, &resource)
            })?;
            println!("{resource} is a member of queue {queue}");
            Ok(0)
        }
        QueueCmd::RemoveMember { queue, resource } => {
            let removed = store.write(|c| {
                let q = conf::ref_by_name(c, RefTable::Queue, &queue)?;
                wf::remove_queue_member(c, q, &resource)
            })?;
            if !removed {
                return Err(Error::Usage(format!("{resource} is no member of queue {queue}")));
            }
            println!("{resource} is no longer a member of queue {queue}");
            Ok(0)
        }
    }
}
