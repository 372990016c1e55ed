//! The two halves of a message's database work, both inside the caller's transaction: `facts`
//! (the lookups a decision needs) and `apply` (writing a Plan).

use chrono::NaiveDateTime;

use super::{AnyConnection, StoreFail, attachments, directory, processed, tickets};
use crate::error::Result;
use crate::model::{Action, AttachmentReport, Facts, LookupKeys, ObjectKind, ObjectRef, Plan};

/// Look up everything a decision about this message for this mailbox needs.
pub fn facts(conn: &mut AnyConnection, keys: &LookupKeys, mailbox_id: i64) -> Result<Facts> {
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
    }
    if f.resource.is_none() && f.contact.is_none() {
        if let Some(domain) = &keys.company_domain {
            f.domain_companies = directory::companies_by_domain(conn, domain)?;
        }
    }
    f.numbered = tickets::by_numbers(conn, &keys.ticket_numbers)?;
    if !f.numbered.iter().any(|(_, t)| t.is_some()) {
        f.referenced = tickets::by_message_refs(conn, &keys.referenced_ids, mailbox_id)?;
    }
    Ok(f)
}

/// What `apply` wrote.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub object: Option<ObjectRef>,
    pub attachments: Vec<AttachmentReport>,
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
}

/// Write a plan. Rejections and duplicates write nothing; everything else writes its object and
/// the processed-message record (whose unique key turns a concurrent twin into a conflict).
pub fn apply(conn: &mut AnyConnection, plan: &Plan, ctx: &Context<'_>) -> Result<Applied, StoreFail> {
    let mut applied = Applied::default();
    let (outcome, object, ticket_id) = match &plan.action {
        Action::Reject | Action::Duplicate(_) => return Ok(applied),
        Action::Ignore => ("ignored", None, None),
        Action::CreateTicket(t) => {
            let (id, number) = tickets::create(conn, t, ctx.day, ctx.now)?;
            applied.attachments = attachments::store_all(conn, ObjectKind::Ticket, id, &t.attachments, ctx.now)?;
            if let Some(mid) = &plan.message_id {
                tickets::add_message_ref(conn, mid, id, Some(plan.mailbox_id))?;
            }
            applied.object = Some(ObjectRef {
                kind: ObjectKind::Ticket,
                id,
                number: Some(number.clone()),
                ticket_number: Some(number),
            });
            ("created", Some((ObjectKind::Ticket, id)), Some(id))
        }
        Action::AddTicketNote(n) => {
            let id = tickets::add_note(conn, n, ctx.now)?;
            applied.attachments =
                attachments::store_all(conn, ObjectKind::TicketNote, id, &n.attachments, ctx.now)?;
            if let Some(mid) = &plan.message_id {
                tickets::add_message_ref(conn, mid, n.ticket.id, Some(plan.mailbox_id))?;
            }
            applied.object = Some(ObjectRef {
                kind: ObjectKind::TicketNote,
                id,
                number: None,
                ticket_number: Some(n.ticket.number.clone()),
            });
            ("note_added", Some((ObjectKind::TicketNote, id)), Some(n.ticket.id))
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
        },
    )?;
    Ok(applied)
}
