//! The two halves of a message's database work, both inside the caller's transaction: `facts`
//! (the lookups a decision needs) and `apply` (writing a Plan).

use chrono::{Duration, NaiveDateTime};

use super::{AnyConnection, StoreFail, attachments, directory, messages, notes, processed, projects, tickets};
use crate::error::Result;
use crate::model::{
    Action, AttachmentReport, DuplicateCandidate, Facts, LookupKeys, NoteTarget, ObjectKind, ObjectRef, Plan, Target,
    TicketRef, TimeTarget,
};
use crate::pipeline::Settings;
use crate::pipeline::numbers::NumberKind;

/// Look up everything a decision about this message for this mailbox needs.
pub fn facts(
    conn: &mut AnyConnection,
    keys: &LookupKeys,
    mailbox_id: i64,
    settings: &Settings,
    public_domains: &dyn Fn(&str) -> bool,
    now: NaiveDateTime,
) -> Result<Facts> {
    let mut f = Facts {
        prior: processed::prior(conn, mailbox_id, &keys.dedup_key)?,
        ..Facts::default()
    };
    if f.prior.is_some() {
        return Ok(f);
    }
    if let Some(sender) = &keys.sender {
        f.resource = directory::resource_by_email(conn, sender)?;
        if f.resource.is_none() {
            f.contact = directory::contact_by_email(conn, sender)?;
        }
        if settings.loop_max > 0 {
            let since = now - Duration::minutes(settings.loop_window_minutes as i64);
            f.loop_count = messages::count_recent(conn, sender, &keys.subject_key, since)?;
        }
    }
    if f.resource.is_none() && f.contact.is_none() {
        if let Some(domain) = &keys.company_domain {
            f.domain_companies = directory::companies_by_domain(conn, domain)?;
        }
    }
    f.numbered = targets(conn, &keys.numbers)?;
    // Looked up even when a number matched: a reply that threads to the very ticket its subject
    // names is vouched for by the thread (cross-company guard).
    f.referenced = tickets::by_message_refs(conn, &keys.referenced_ids, mailbox_id)?;
    // Duplicate criteria (only needed when the message would make a new ticket).
    if f.numbered.iter().all(|(_, t)| t.is_none()) && f.referenced.is_none() {
        f.duplicates = duplicates(conn, keys, mailbox_id, settings, now)?;
    }
    f.cc_contacts = directory::contacts_by_emails(conn, &keys.cc)?;
    for addr in &keys.cc {
        if f.cc_contacts.iter().any(|(x, _)| x == addr) {
            continue;
        }
        if directory::resource_by_email(conn, addr)?.is_some() {
            f.cc_staff.push(addr.clone());
        } else if let Some(domain) = crate::model::domain_of(addr).filter(|d| !public_domains(d)) {
            if let [one] = directory::companies_by_domain(conn, &domain)?.as_slice() {
                f.cc_domain_companies.push((addr.clone(), one.clone()));
            }
        }
    }
    if let Some(name) = &keys.named_company {
        f.named_company = directory::active_company_by_name(conn, name)?;
    }
    if let Some(email) = &keys.named_contact_email {
        f.named_contact = directory::contact_by_email(conn, email)?;
    }
    if f.resource.is_some() {
        if let Some(orig) = &keys.forwarded_sender {
            f.forwarded_contact = directory::contact_by_email(conn, &orig.email)?;
            if f.forwarded_contact.is_none() {
                if let Some(d) = orig.domain() {
                    f.forwarded_domain_companies = directory::companies_by_domain(conn, &d)?;
                }
            }
        }
    }
    Ok(f)
}

/// The objects the numbers in a subject name, in order (missing ones are `None`).
fn targets(conn: &mut AnyConnection, numbers: &[String]) -> Result<Vec<(String, Option<Target>)>> {
    let by_kind = |k: NumberKind| numbers.iter().filter(|n| NumberKind::of(n) == Some(k)).cloned().collect::<Vec<_>>();
    let tickets = tickets::by_numbers(conn, &by_kind(NumberKind::Ticket))?;
    let projects = projects::projects_by_numbers(conn, &by_kind(NumberKind::Project))?;
    let tasks = projects::tasks_by_numbers(conn, &by_kind(NumberKind::Task))?;
    Ok(numbers
        .iter()
        .map(|n| {
            let t = match NumberKind::of(n) {
                Some(NumberKind::Ticket) => tickets.iter().find(|(x, _)| x == n).and_then(|(_, t)| t.clone()).map(Target::Ticket),
                Some(NumberKind::Project) => projects.iter().find(|p| &p.number == n).cloned().map(Target::Project),
                Some(NumberKind::Task) => tasks.iter().find(|t| &t.number == n).cloned().map(Target::Task),
                None => None,
            };
            (n.clone(), t)
        })
        .collect())
}

/// Duplicates are looked for among the same mailbox's tickets: the same message sent to two
/// mailboxes makes one ticket in each.
fn duplicates(conn: &mut AnyConnection, keys: &LookupKeys, mailbox_id: i64, s: &Settings, now: NaiveDateTime) -> Result<Vec<DuplicateCandidate>> {
    let mut out: Vec<DuplicateCandidate> = Vec::new();
    let alert = if s.duplicate_alert_id { keys.alert_id.as_deref() } else { None };
    let external = if s.duplicate_external_id { keys.external_id.as_deref() } else { None };
    if alert.is_some() || external.is_some() {
        for (ticket, criterion) in tickets::open_by_alert(conn, mailbox_id, alert, external)? {
            out.push(DuplicateCandidate { ticket, criterion });
        }
    }
    if s.duplicate_sender_subject && s.duplicate_window_minutes > 0 && !keys.subject_key.is_empty() {
        if let Some(sender) = &keys.sender {
            let since = now - Duration::minutes(s.duplicate_window_minutes as i64);
            if let Some(t) = tickets::recent_by_sender_subject(conn, mailbox_id, sender, &keys.subject_key, since)? {
                out.push(DuplicateCandidate { ticket: t, criterion: "sender_subject" });
            }
        }
    }
    Ok(out)
}

/// What `apply` wrote.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub object: Option<ObjectRef>,
    pub attachments: Vec<AttachmentReport>,
    /// A ticket's status was changed by the message (`#S=`, a reopened ticket) to another one.
    pub status_changed: bool,
}

/// Context of a write: the envelope's facts that end up in the record.
pub struct Context<'a> {
    pub queue_id: Option<&'a str>,
    pub envelope_from: &'a str,
    /// `YYYYMMDD` of the day the numbers belong to.
    pub day: &'a str,
    pub now: NaiveDateTime,
    /// The raw message, when it is to be kept.
    pub raw: Option<&'a [u8]>,
    pub client_addr: Option<std::net::IpAddr>,
    pub auth_user: Option<&'a str>,
}

fn note_ref(kind: ObjectKind, id: i64, target: &NoteTarget) -> ObjectRef {
    let (ticket, project, task) = match target {
        NoteTarget::Ticket(t) => (Some(t.number.clone()), None, None),
        NoteTarget::Project(p) => (None, Some(p.number.clone()), None),
        NoteTarget::Task(t) => (None, Some(t.project.number.clone()), Some(t.number.clone())),
    };
    ObjectRef { kind, id, number: None, ticket_number: ticket, project_number: project, task_number: task }
}

/// Write a plan. Rejections and duplicates write nothing; everything else writes its object and
/// the processed-message record (whose unique key turns a concurrent twin into a conflict).
pub fn apply(conn: &mut AnyConnection, plan: &Plan, ctx: &Context<'_>) -> Result<Applied, StoreFail> {
    let mut applied = Applied::default();
    let system_title = "ticketmilter: attachments left out";
    let (outcome, object, ticket_id) = match &plan.action {
        Action::Reject(_) | Action::Duplicate(_) => return Ok(applied),
        Action::Ignore => ("ignored", None, None),
        Action::Discard => ("discarded", None, None),
        Action::CreateTicket(t) => {
            let (id, number) = tickets::create(conn, t, ctx.day, ctx.now)?;
            applied.attachments = attachments::store_all(conn, ObjectKind::Ticket, id, &t.attachments, ctx.now)?;
            if let Some(mid) = &plan.message_id {
                tickets::add_message_ref(conn, mid, id, Some(plan.mailbox_id))?;
            }
            if !plan.system_notes.is_empty() {
                let target = NoteTarget::Ticket(TicketRef {
                    id,
                    number: number.clone(),
                    title: t.title.clone(),
                    company: None,
                    mailbox_id: Some(t.mailbox_id),
                    complete: false,
                    contact_id: None,
                });
                notes::system_note(conn, &target, system_title, &plan.system_notes.join("\n"), plan.mailbox_id, ctx.now)?;
            }
            applied.object = Some(ObjectRef {
                kind: ObjectKind::Ticket,
                id,
                number: Some(number.clone()),
                ticket_number: Some(number),
                project_number: None,
                task_number: None,
            });
            ("created", Some((ObjectKind::Ticket, id)), Some(id))
        }
        Action::AddNote(n) => {
            if let (NoteTarget::Ticket(t), Some(s)) = (&n.target, n.set_status) {
                applied.status_changed = tickets::status_of(conn, t.id)? != Some(s);
            }
            let (kind, id) = notes::add(conn, n, ctx.now)?;
            applied.attachments = attachments::store_all(conn, kind, id, &n.attachments, ctx.now)?;
            let ticket_id = match &n.target {
                NoteTarget::Ticket(t) => {
                    if let Some(mid) = &plan.message_id {
                        tickets::add_message_ref(conn, mid, t.id, Some(plan.mailbox_id))?;
                    }
                    Some(t.id)
                }
                _ => None,
            };
            if !plan.system_notes.is_empty() {
                notes::system_note(conn, &n.target, system_title, &plan.system_notes.join("\n"), plan.mailbox_id, ctx.now)?;
            }
            applied.object = Some(note_ref(kind, id, &n.target));
            ("note_added", Some((kind, id)), ticket_id)
        }
        Action::AddTimeEntry(e) => {
            if let (TimeTarget::Ticket(t), Some((s, _))) = (&e.target, &e.set_status) {
                applied.status_changed = tickets::status_of(conn, t.id)? != Some(*s);
            }
            let (kind, id) = notes::add_time(conn, e, ctx.now)?;
            applied.attachments = attachments::store_all(conn, kind, id, &e.attachments, ctx.now)?;
            let target = match &e.target {
                TimeTarget::Ticket(t) => NoteTarget::Ticket(t.clone()),
                TimeTarget::Task(t) => NoteTarget::Task(t.clone()),
            };
            let ticket_id = match &e.target {
                TimeTarget::Ticket(t) => {
                    if let Some(mid) = &plan.message_id {
                        tickets::add_message_ref(conn, mid, t.id, Some(plan.mailbox_id))?;
                    }
                    Some(t.id)
                }
                TimeTarget::Task(_) => None,
            };
            if !plan.system_notes.is_empty() {
                notes::system_note(conn, &target, system_title, &plan.system_notes.join("\n"), plan.mailbox_id, ctx.now)?;
            }
            applied.object = Some(note_ref(kind, id, &target));
            ("time_entry_added", Some((kind, id)), ticket_id)
        }
    };
    processed::insert(
        conn,
        &processed::Record {
            mailbox_id: plan.mailbox_id,
            dedup_key: &plan.dedup_key,
            message_id: plan.message_id.as_deref(),
            queue_id: ctx.queue_id,
            envelope_from: ctx.envelope_from,
            envelope_rcpt: &plan.rcpt,
            outcome,
            object,
            ticket_id,
            reason: plan.reason.as_deref(),
            received_at: ctx.now,
            raw: ctx.raw,
            sender_address: plan.sender_address.as_deref(),
            subject_key: Some(plan.subject_key.as_str()),
            client_addr: ctx.client_addr.map(|ip| ip.to_string()),
            auth_user: ctx.auth_user,
        },
    )?;
    Ok(applied)
}
