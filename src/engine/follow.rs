//! What follows a written plan, inside its transaction: a bounce marks our notification failed,
//! workflow rules act on the ticket, and notifications (acknowledgements, failure notices, rule
//! mail) are rendered and queued in the outbox — so "ticket created" and "acknowledgement
//! queued" are one fact. Automatic mail is never answered, and replies to one address are
//! rate-limited, counted in the database.

use chrono::{Duration, NaiveDateTime};

use super::{Options, Prepared};
use crate::model::{Action, Failure, NoteTarget, NoticeReport, Plan, TimeTarget};
use crate::notify::template::{self, Vars};
use crate::pipeline::auto::{LOOP_HEADER, Own};
use crate::store::apply::Applied;
use crate::store::workflow::{self as wf, TicketFacts};
use crate::store::{AnyConnection, StoreFail, outbox, tickets};
use crate::workflow::{Assign, Context as RuleContext, Event, Role};

/// What the follow-up did, for the outcome and `explain`.
#[derive(Debug, Default)]
pub struct Followed {
    pub notices: Vec<NoticeReport>,
    pub rules: Vec<String>,
    pub trace: Vec<String>,
}

/// The event a plan amounts to, the template event name, and the ticket concerned.
fn event_of(plan: &Plan, applied: &Applied) -> Option<(Option<Event>, &'static str, Option<i64>, bool)> {
    Some(match &plan.action {
        Action::CreateTicket(_) => (Some(Event::TicketCreated), "ticket_created", applied.object.as_ref().map(|o| o.id), false),
        Action::AddNote(n) => match &n.target {
            NoteTarget::Ticket(t) => (Some(Event::NoteAdded), "note_added", Some(t.id), applied.status_changed),
            NoteTarget::Project(_) => (None, "project_note_added", None, false),
            NoteTarget::Task(_) => (None, "task_note_added", None, false),
        },
        Action::AddTimeEntry(e) => match &e.target {
            TimeTarget::Ticket(t) => (Some(Event::TimeEntryAdded), "time_entry_added", Some(t.id), applied.status_changed),
            TimeTarget::Task(_) => (None, "time_entry_added", None, false),
        },
        Action::Reject(_) => (None, "failure", None, false),
        _ => return None,
    })
}

/// Run the follow-up for one mailbox's plan, after `apply` wrote it.
pub fn follow(c: &mut AnyConnection, p: &Prepared, plan: &Plan, applied: &Applied, opts: &Options, now: NaiveDateTime) -> Result<Followed, StoreFail> {
    let mut f = Followed::default();
    let auto = &p.analysis.auto;
    let snapshot = &p.snapshot;

    // A bounce of one of our notifications.
    if let Some(b) = auto.bounce.as_ref().filter(|b| b.permanent) {
        let own = Own { loop_names: &snapshot.own_domains, message_id_domains: &snapshot.own_domains };
        if let Some(id) = b.original_message_id.as_deref().filter(|id| own.owns_message_id(id)) {
            if outbox::fail_by_message_id(c, id, &format!("bounced: {}", b.reason()))? {
                f.trace.push(format!("bounce of our notification <{id}>: marked failed ({})", b.reason()));
            }
        }
    }

    let Some((event, event_name, ticket_id, status_by_mail)) = event_of(plan, applied) else {
        return Ok(f);
    };
    // Nothing to evaluate and nothing to send (the usual case without rules or an active
    // template for this event): the ticket is not even loaded.
    let refusal = matches!(plan.action, Action::Reject(_));
    if !refusal && snapshot.workflow.is_empty() && snapshot.templates.for_event(plan.mailbox_id, event_name).is_none() {
        return Ok(f);
    }
    let mut ticket = match ticket_id {
        Some(id) => wf::ticket_facts(c, id)?,
        None => None,
    };

    // Workflow rules.
    let mut rule_mail = Vec::new();
    if let (Some(event), Some(t)) = (event, ticket.as_mut()) {
        if !snapshot.workflow.is_empty() {
            let sender_domain = plan.sender_address.as_deref().and_then(crate::model::domain_of);
            let ctx = RuleContext {
                mailbox: &plan.mailbox,
                sender_domain: sender_domain.as_deref(),
                subject: &p.inbound.subject,
                body: &p.analysis.text,
                auto: auto.is_auto(),
                now,
            };
            // A status set by mail (`#S=`, a reopened ticket) is an event of its own.
            let events: &[Event] = if status_by_mail { &[event, Event::StatusChanged] } else { &[event] };
            let effects = snapshot.workflow.run_events(events, &t.state, &ctx);
            f.trace.extend(effects.trace.iter().cloned());
            f.rules = effects.fired.iter().map(|(_, name, _)| name.clone()).collect();
            // The assignee is chosen first (round robin in the queue the rules left the ticket
            // in), so that the new state and the assignment are written in one UPDATE.
            let assignee = match &effects.assign {
                Some(Assign::Resource(email)) => wf::active_resource(c, email)?,
                Some(Assign::RoundRobin) => wf::next_in_round_robin(c, effects.state.queue_id, now)?,
                None => None,
            };
            if effects.changed || assignee.is_some() {
                wf::write_state(c, t.id, &effects.state, assignee.as_ref().map(|a| a.0), now)?;
                t.state = effects.state.clone();
            }
            for tag in &effects.add_tags {
                wf::add_ticket_tag(c, t.id, tag, "workflow")?;
                if !t.state.tags.iter().any(|x| x.eq_ignore_ascii_case(tag)) {
                    t.state.tags.push(tag.clone());
                }
            }
            match (&effects.assign, assignee) {
                (Some(Assign::RoundRobin), Some((_, name, email))) => {
                    f.trace.push(format!("workflow: round robin assigned {name} <{email}>"));
                    t.assigned = Some((name, email));
                }
                (Some(Assign::RoundRobin), None) => f.trace.push("workflow: round robin found no active member of the queue".to_string()),
                (Some(Assign::Resource(_)), Some((_, name, email))) => t.assigned = Some((name, email)),
                (Some(Assign::Resource(email)), None) => f.trace.push(format!("workflow: no active resource {email} to assign")),
                (None, _) => {}
            }
            rule_mail = effects.notify;
        }
    }

    // Notifications.
    let vars = vars_for(p, plan, ticket.as_ref(), event_name);
    let mut q = Queue { c, p, plan, ticket: ticket.as_ref(), now, f: &mut f };
    let reply_to = reply_address(p);
    match &plan.action {
        Action::Reject(failure) => {
            let sender_notice = !opts.smtp_refuses && !matches!(failure, Failure::Loop | Failure::ExcludedSender);
            if sender_notice {
                if let Some(to) = &reply_to {
                    q.send("failure", "failure", to, &vars, true, true)?;
                }
            }
            let admin = snapshot.settings.failure_notify.clone();
            if !admin.is_empty() {
                q.send("failure", "failure_admin", &admin, &vars, false, true)?;
            }
        }
        _ => {
            if let Some(to) = &reply_to {
                q.send("acknowledgement", event_name, to, &vars, true, false)?;
            }
        }
    }
    for n in rule_mail {
        let mut to: Vec<String> = Vec::new();
        if let Some(t) = ticket.as_ref() {
            for role in &n.roles {
                match role {
                    Role::Contact => to.extend(t.contact.as_ref().and_then(|(_, e)| e.clone())),
                    Role::AdditionalContacts => to.extend(t.additional.iter().cloned()),
                    Role::Assigned => to.extend(t.assigned.as_ref().map(|(_, e)| e.clone())),
                    Role::QueueMembers => to.extend(wf::queue_member_emails(q.c, t.state.queue_id)?),
                    Role::Addresses => to.extend(n.addresses.iter().cloned()),
                }
            }
        }
        let mut seen: Vec<String> = Vec::new();
        for addr in to {
            let lower = addr.trim().to_ascii_lowercase();
            if lower.is_empty() || seen.contains(&lower) {
                continue;
            }
            seen.push(lower.clone());
            // The sender of automatic mail is never written to, even by a rule.
            let to_sender = reply_to.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(&lower))
                || plan.sender_address.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(&lower));
            q.send_named("notification", &n.template, &lower, &vars, to_sender)?;
        }
    }
    Ok(f)
}

/// Whom an automatic reply goes to: Reply-To, else the author (mailbox addresses only: a reply
/// to what a broken header left would only bounce).
fn reply_address(p: &Prepared) -> Option<String> {
    p.inbound
        .reply_to
        .as_ref()
        .filter(|a| crate::model::is_mailbox_address(a.email.trim()))
        .or(p.inbound.author())
        .map(|a| a.email.trim().to_ascii_lowercase())
}

/// Local parts that never get automatic mail.
fn machine_address(addr: &str) -> bool {
    let local = addr.split('@').next().unwrap_or("").to_ascii_lowercase();
    let local = local.split('+').next().unwrap_or("");
    matches!(
        local,
        "mailer-daemon" | "postmaster" | "noreply" | "no-reply" | "no_reply" | "donotreply" | "do-not-reply" | "do_not_reply" | "bounce" | "bounces"
    ) || local.starts_with("owner-")
        || local.ends_with("-request")
        || local.ends_with("-bounces")
}

fn vars_for(p: &Prepared, plan: &Plan, t: Option<&TicketFacts>, event: &str) -> Vars {
    let s = &p.snapshot;
    let refs = &s.refs;
    let name = |rows: &[(i64, String)], id: i64| rows.iter().find(|(i, _)| *i == id).map(|(_, n)| n.clone()).unwrap_or_default();
    let mut v = Vars {
        event: event.to_string(),
        mailbox: plan.mailbox.clone(),
        original_subject: template::header_safe(&p.inbound.subject),
        sender: plan.attribution.address.clone().unwrap_or_default(),
        ..Vars::default()
    };
    if let Some(mb) = s.mailbox_for(&plan.mailbox) {
        v.mailbox_name = mb.name.clone();
    }
    if let Some(t) = t {
        v.ticket_number = t.number.clone();
        v.object_number = t.number.clone();
        v.ticket_title = t.title.clone();
        v.status = refs.status_name(t.state.status_id).unwrap_or_default().to_string();
        v.queue = name(&refs.queues, t.state.queue_id);
        v.priority = name(&refs.priorities, t.state.priority_id);
        v.company = t.company.clone().unwrap_or_default();
        if let Some((n, e)) = &t.contact {
            v.contact = n.clone();
            v.contact_email = e.clone().unwrap_or_default();
        }
        v.assigned_resource = t.assigned.as_ref().map(|(n, _)| n.clone()).unwrap_or_default();
        v.ticket_url = template::ticket_url(&s.settings.ticket_url, &t.number);
    }
    match &plan.action {
        Action::AddNote(n) => {
            v.note_text = n.body.clone();
            match &n.target {
                NoteTarget::Project(pr) => {
                    v.project_number = pr.number.clone();
                    v.object_number = pr.number.clone();
                }
                NoteTarget::Task(tk) => {
                    v.task_number = tk.number.clone();
                    v.project_number = tk.project.number.clone();
                    v.object_number = tk.number.clone();
                }
                NoteTarget::Ticket(_) => {}
            }
        }
        Action::AddTimeEntry(e) => {
            v.note_text = e.summary.clone();
            v.hours = format!("{:.2}", e.minutes as f64 / 60.0);
            if let TimeTarget::Task(tk) = &e.target {
                v.task_number = tk.number.clone();
                v.project_number = tk.project.number.clone();
                v.object_number = tk.number.clone();
            }
        }
        Action::Reject(failure) => {
            let reason = plan.reason.clone().unwrap_or_else(|| "the message could not be converted".into());
            v.reason = public_reason(*failure, &reason);
            v.technical_reason = format!("{failure:?}: {reason}; queue id {}; Message-ID {}", p.envelope.queue_id.as_deref().unwrap_or("-"), p.inbound.message_id.as_deref().unwrap_or("-"));
        }
        _ => {}
    }
    v
}

/// What a sender is told about a refusal (the administrator gets the technical reason).
fn public_reason(f: Failure, reason: &str) -> String {
    match f {
        Failure::UnknownSender => "your address is not known to this help desk, so no ticket could be made from your message".into(),
        Failure::NotAllowed => "this mailbox does not accept this kind of message".into(),
        Failure::BadCommand | Failure::CrossCompany => reason.to_string(),
        Failure::Loop | Failure::ExcludedSender => "the message could not be converted".into(),
    }
}

/// Sixteen hex digits for a Message-ID, different per call and per host.
fn unique_token() -> String {
    format!("{:016x}", crate::notify::random_u64())
}

struct Queue<'a, 'b> {
    c: &'a mut AnyConnection,
    p: &'a Prepared,
    plan: &'a Plan,
    ticket: Option<&'a TicketFacts>,
    now: NaiveDateTime,
    f: &'b mut Followed,
}

impl Queue<'_, '_> {
    /// Queue the template of an event (if the mailbox has one). `to_sender`: this answers the
    /// message's sender (never for automatic mail; rate-limited). `once`: the Message-ID is
    /// derived from the message, so a retried message queues it only once.
    fn send(&mut self, kind: &str, event: &str, to: &str, vars: &Vars, to_sender: bool, once: bool) -> Result<(), StoreFail> {
        let Some(t) = self.p.snapshot.templates.for_event(self.plan.mailbox_id, event) else {
            return Ok(());
        };
        let (id, name) = (t.id, t.name.clone());
        self.queue(kind, id, &name, to, vars, to_sender, once)
    }

    /// Queue a template by name (workflow rules).
    fn send_named(&mut self, kind: &str, template: &str, to: &str, vars: &Vars, to_sender: bool) -> Result<(), StoreFail> {
        let Some(t) = self.p.snapshot.templates.by_name(template) else {
            self.f.trace.push(format!("workflow: template {template:?} is not active; nothing sent to {to}"));
            return Ok(());
        };
        let (id, name) = (t.id, t.name.clone());
        self.queue(kind, id, &name, to, vars, to_sender, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn queue(&mut self, kind: &str, template_id: i64, name: &str, to: &str, vars: &Vars, to_sender: bool, once: bool) -> Result<(), StoreFail> {
        let p = self.p;
        let s = &p.snapshot.settings;
        let to = to.trim().to_ascii_lowercase();
        let mut report = NoticeReport { kind: kind.to_string(), to: to.clone(), template: name.to_string(), message_id: String::new(), dropped: None };
        let drop = |report: &mut NoticeReport, f: &mut Followed, why: String| {
            f.trace.push(format!("{kind} {name:?} to {to} not sent: {why}"));
            tracing::info!(mailbox = %self.plan.mailbox, to = %to, template = %name, "notification not sent: {why}");
            report.dropped = Some(why);
        };
        if to_sender && p.analysis.auto.is_auto() {
            // Never answer a machine; not even reported as a notice.
            self.f.trace.push(format!("{kind} {name:?} to {to}: not sent, the message is auto-generated"));
            return Ok(());
        }
        if p.snapshot.mailbox_for(&to).is_some() {
            drop(&mut report, self.f, "the address is one of our mailboxes".into());
            self.f.notices.push(report);
            return Ok(());
        }
        if machine_address(&to) {
            drop(&mut report, self.f, "the address does not take replies".into());
            self.f.notices.push(report);
            return Ok(());
        }
        let mailbox_domain = crate::model::domain_of(&self.plan.mailbox).unwrap_or_else(|| "localhost".into());
        let domain = if s.message_id_domain.is_empty() { mailbox_domain } else { s.message_id_domain.clone() };
        let number = self.ticket.map(|t| t.number.clone()).filter(|n| !n.is_empty()).or_else(|| (!vars.object_number.is_empty()).then(|| vars.object_number.clone()));
        let message_id = if once {
            let key = format!("{}|{}|{}|{}", self.plan.dedup_key, self.plan.mailbox_id, name, to);
            let h = crate::pipeline::parse::sha256_hex(key.as_bytes());
            format!("tm.{}.{}@{domain}", number.as_deref().unwrap_or("fail"), &h[..24])
        } else {
            format!("tm.{}.{}@{domain}", number.as_deref().unwrap_or("x"), unique_token())
        };
        if once && outbox::exists_message_id(self.c, &message_id)? {
            self.f.trace.push(format!("{kind} {name:?} to {to}: queued already for this message"));
            return Ok(());
        }
        // Replies to the sender, and failure notices (a storm of refusals must not become a
        // storm of mail to the administrator), count against the limit.
        if to_sender || kind == "failure" {
            let since = self.now - Duration::hours(s.reply_window_hours as i64);
            let sent = outbox::count_recent_to(self.c, &to, since)?;
            if sent >= s.reply_limit as i64 {
                let why = format!("rate limit: {sent} automatic mails to this address in the last {} hours (reply_limit {})", s.reply_window_hours, s.reply_limit);
                tracing::warn!(mailbox = %self.plan.mailbox, to = %to, "reply dropped: {why}");
                drop(&mut report, self.f, why);
                self.f.notices.push(report);
                return Ok(());
            }
        }
        let rendered = match p.snapshot.templates.render(template_id, vars) {
            Ok(r) => r,
            Err(e) => {
                // `check` reports such templates before mail is affected; a message is never
                // refused for a notification.
                tracing::warn!(template = %name, "notification not rendered: {e}");
                drop(&mut report, self.f, format!("template error: {e}"));
                self.f.notices.push(report);
                return Ok(());
            }
        };
        let subject = match &number {
            Some(n) => template::with_number(&rendered.subject, n),
            None => rendered.subject.clone(),
        };
        let from_header = if s.notify_from.is_empty() {
            let mb_name = p.snapshot.mailbox_for(&self.plan.mailbox).map(|m| m.name.clone()).unwrap_or_default();
            let mb_name = template::header_safe(&mb_name).replace(['"', '\\'], "");
            if mb_name.is_empty() { self.plan.mailbox.clone() } else { format!("\"{mb_name}\" <{}>", self.plan.mailbox) }
        } else {
            s.notify_from.clone()
        };
        let mut references: Vec<String> = p.inbound.references.iter().rev().take(9).rev().cloned().collect();
        if let Some(mid) = &p.inbound.message_id {
            if !references.contains(mid) {
                references.push(mid.clone());
            }
        }
        let row = outbox::NewOutbox {
            kind: kind.to_string(),
            mailbox_id: Some(self.plan.mailbox_id),
            ticket_id: self.ticket.map(|t| t.id),
            template_id: Some(template_id),
            recipient: to.clone(),
            envelope_from: String::new(),
            from_header,
            subject,
            body_text: rendered.text,
            body_html: rendered.html,
            headers: vec![(LOOP_HEADER.to_string(), domain.clone())],
            message_id: message_id.clone(),
            in_reply_to: p.inbound.message_id.clone(),
            references,
        };
        outbox::insert(self.c, &row, self.now)?;
        if let Some(t) = self.ticket {
            // A reply that loses the number in its subject still threads back by References.
            tickets::add_message_ref(self.c, &message_id, t.id, Some(self.plan.mailbox_id))?;
        }
        self.f.trace.push(format!("{kind} {name:?} queued to {to} as <{message_id}>"));
        report.message_id = message_id;
        self.f.notices.push(report);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_addresses_get_no_mail() {
        for a in ["MAILER-DAEMON@x.example", "postmaster@x.example", "noreply@x.example", "no-reply+abc@x.example", "owner-list@x.example", "list-request@x.example", "list-bounces@x.example"] {
            assert!(machine_address(a), "{a}");
        }
        for a in ["carla@acme.example", "replyall@x.example", "postmasters-friend@x.example"] {
            assert!(!machine_address(a), "{a}");
        }
    }

    #[test]
    fn tokens_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let t = unique_token();
            assert_eq!(t.len(), 16);
            assert!(seen.insert(t));
        }
    }

    #[test]
    fn refusals_are_explained_without_internals() {
        assert!(public_reason(Failure::UnknownSender, "sender x is unknown and mailbox y rejects").contains("not known"));
        assert_eq!(public_reason(Failure::CrossCompany, "only contacts"), "only contacts");
        assert!(!public_reason(Failure::Loop, "loop guard: 5 messages").contains("loop"));
    }
}
