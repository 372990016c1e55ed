//! Tickets, their notes, tags and Message-ID references; per-day gap-free numbering.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::{Fixed, Run, Value};
use super::schema::*;
use super::{AnyConnection, StoreFail, index_key, savepoint};
use crate::error::Result;
use super::directory;
use crate::model::{CompanyRef, NewTicket, TicketRef};
use crate::pipeline::numbers;

type TicketRow = (i64, String, String, Option<i64>, Option<String>, Option<i64>, bool, Option<i64>);

fn ticket_ref((id, number, title, cid, cname, mailbox_id, complete, contact_id): TicketRow) -> TicketRef {
    TicketRef {
        id,
        number,
        title,
        company: match (cid, cname) {
            (Some(id), Some(name)) => Some(CompanyRef { id, name }),
            _ => None,
        },
        mailbox_id,
        complete,
        contact_id,
    }
}

macro_rules! ticket_ref_query {
    () => {
        tickets::table
            .inner_join(statuses::table)
            .left_join(companies::table)
            .select((
                tickets::id,
                tickets::number,
                tickets::title,
                tickets::company_id,
                companies::name.nullable(),
                tickets::mailbox_id,
                statuses::is_complete,
                tickets::contact_id,
            ))
    };
}

/// Tickets by number, in the order of `numbers` (missing ones are `None`).
pub fn by_numbers(conn: &mut AnyConnection, numbers: &[String]) -> Result<Vec<(String, Option<TicketRef>)>> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<TicketRow> = ticket_ref_query!()
        .filter(tickets::number.eq_any(numbers))
        .load_on(conn)?;
    let found: Vec<TicketRef> = rows.into_iter().map(ticket_ref).collect();
    Ok(numbers
        .iter()
        .map(|n| (n.clone(), found.iter().find(|t| &t.number == n).cloned()))
        .collect())
}

/// A ticket by id.
pub fn by_id(conn: &mut AnyConnection, id: i64) -> Result<Option<TicketRef>> {
    let row: Option<TicketRow> = ticket_ref_query!().filter(tickets::id.eq(id)).load_on(conn)?.into_iter().next();
    Ok(row.map(ticket_ref))
}

/// The first referenced Message-ID (in the order given) that belongs to a ticket. A reference
/// stored for this mailbox wins over one stored for another mailbox.
pub fn by_message_refs(
    conn: &mut AnyConnection,
    ids: &[String],
    mailbox_id: i64,
) -> Result<Option<(String, TicketRef)>> {
    if ids.is_empty() {
        return Ok(None);
    }
    let keys: Vec<String> = ids.iter().map(|i| index_key(i).into_owned()).collect();
    let refs: Vec<(String, i64, Option<i64>)> = message_refs::table
        .filter(message_refs::message_id.eq_any(&keys))
        .order(message_refs::id)
        .select((message_refs::message_id, message_refs::ticket_id, message_refs::mailbox_id))
        .load_on(conn)?;
    for (id, key) in ids.iter().zip(&keys) {
        let mut candidates: Vec<&(String, i64, Option<i64>)> = refs.iter().filter(|r| &r.0 == key).collect();
        candidates.sort_by_key(|r| r.2 != Some(mailbox_id));
        if let Some((_, ticket_id, _)) = candidates.first() {
            if let Some(t) = by_id(conn, *ticket_id)? {
                return Ok(Some((id.clone(), t)));
            }
        }
    }
    Ok(None)
}

/// The next number of a per-day sequence. Runs inside the caller's transaction, so a rollback
/// gives the number back (gap-free) and concurrent writers serialise on the sequence row.
pub fn next_in_sequence(conn: &mut AnyConnection, kind: &str, day: &str) -> Result<i64, StoreFail> {
    for _ in 0..3 {
        let next: Option<i64> = Fixed::<BigInt>::new(TAKE_NEXT, &[Value::Text(kind), Value::Text(day)])
            .get_result_on(conn)
            .optional()?;
        if let Some(n) = next {
            return Ok(n);
        }
        let created = savepoint(conn, |c| {
            diesel::insert_into(number_sequences::table)
                .values((
                    number_sequences::kind.eq(kind),
                    number_sequences::day.eq(day),
                    number_sequences::last_value.eq(1_i64),
                ))
                .execute_on(c)
                .map_err(StoreFail::from)
        });
        match created {
            Ok(_) => return Ok(1),
            // Another transaction created today's row first: take the next value from it.
            Err(e) if e.is_unique_violation() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreFail::Other(crate::error::Error::Database(format!(
        "could not take a number from sequence {kind}/{day}"
    ))))
}

/// Takes the next value of a sequence row (a [`Fixed`] statement: it runs for every ticket,
/// and compiling it anew each time was a tenth of the writer's time).
const TAKE_NEXT: &str = "UPDATE number_sequences SET last_value = last_value + 1 WHERE kind = ? AND day = ? RETURNING last_value";

/// Insert a ticket with the next free number of `day`; returns (id, number).
pub fn create(
    conn: &mut AnyConnection,
    t: &NewTicket,
    day: &str,
    now: NaiveDateTime,
) -> Result<(i64, String), StoreFail> {
    let contact_id = match &t.contact {
        Some(c) => Some(directory::ensure_contact(conn, c, now)?),
        None => None,
    };
    // A number taken by hand (a row inserted outside the sequence) is skipped, not fatal.
    for _ in 0..100 {
        let seq = next_in_sequence(conn, "T", day)?;
        let number = numbers::format_ticket_number(day, seq);
        // ON CONFLICT DO NOTHING instead of a savepoint around the insert: no row comes back
        // when the number is taken, and nothing needs undoing.
        let inserted: Option<i64> = diesel::insert_into(tickets::table)
            .values((
                tickets::number.eq(&number),
                tickets::title.eq(&t.title),
                tickets::description.eq(&t.description),
                tickets::description_html.eq(&t.description_html),
                tickets::status_id.eq(t.status_id),
                tickets::priority_id.eq(t.priority_id),
                tickets::queue_id.eq(t.queue_id),
                tickets::source_id.eq(t.source_id),
                tickets::issue_type_id.eq(t.issue_type_id),
                tickets::sub_issue_type_id.eq(t.sub_issue_type_id),
                tickets::company_id.eq(t.company_id),
                tickets::contact_id.eq(contact_id),
                tickets::mailbox_id.eq(Some(t.mailbox_id)),
                tickets::created_at.eq(now),
                tickets::updated_at.eq(now),
                tickets::sender_address.eq(t.sender_address.as_deref().map(index_key)),
                tickets::subject_key.eq(index_key(&t.subject_key)),
                tickets::alert_id.eq(t.alert_id.as_deref().map(index_key)),
                tickets::external_id.eq(t.external_id.as_deref().map(index_key)),
            ))
            .on_conflict(tickets::number)
            .do_nothing()
            .returning(tickets::id)
            .get_result_on::<i64>(conn)
            .optional()?;
        match inserted {
            Some(id) => {
                for (tag, origin) in &t.tags {
                    diesel::insert_into(ticket_tags::table)
                        .values((
                            ticket_tags::ticket_id.eq(id),
                            ticket_tags::tag_id.eq(tag.id),
                            ticket_tags::origin.eq(*origin),
                        ))
                        .execute_on(conn)?;
                }
                let mut added: Vec<i64> = contact_id.into_iter().collect();
                for c in &t.additional_contacts {
                    let cid = directory::ensure_contact(conn, c, now)?;
                    if !added.contains(&cid) {
                        added.push(cid);
                        diesel::insert_into(ticket_contacts::table)
                            .values((ticket_contacts::ticket_id.eq(id), ticket_contacts::contact_id.eq(cid)))
                            .execute_on(conn)?;
                    }
                }
                if let Some((other, kind)) = t.link {
                    diesel::insert_into(ticket_links::table)
                        .values((
                            ticket_links::ticket_id.eq(id),
                            ticket_links::linked_ticket_id.eq(other),
                            ticket_links::kind.eq(kind),
                        ))
                        .execute_on(conn)?;
                }
                return Ok((id, number));
            }
            // A number taken by hand: the next one.
            None => continue,
        }
    }
    Err(StoreFail::Other(crate::error::Error::Database(format!(
        "no free ticket number for {day} after 100 tries"
    ))))
}

/// Set a ticket's status (and touch its update time).
pub fn set_status(conn: &mut AnyConnection, ticket_id: i64, status_id: i64, now: NaiveDateTime) -> Result<(), StoreFail> {
    Fixed::<()>::new(
        "UPDATE tickets SET status_id = ?, updated_at = ? WHERE id = ?",
        &[Value::Int(status_id), Value::Time(now), Value::Int(ticket_id)],
    )
    .execute_on(conn)?;
    Ok(())
}

/// A ticket's status id.
pub fn status_of(conn: &mut AnyConnection, ticket_id: i64) -> Result<Option<i64>, StoreFail> {
    Ok(tickets::table.filter(tickets::id.eq(ticket_id)).select(tickets::status_id).first_on(conn).optional()?)
}

/// Touch a ticket's update time.
pub fn touch(conn: &mut AnyConnection, ticket_id: i64, now: NaiveDateTime) -> Result<(), StoreFail> {
    Fixed::<()>::new("UPDATE tickets SET updated_at = ? WHERE id = ?", &[Value::Time(now), Value::Int(ticket_id)])
        .execute_on(conn)?;
    Ok(())
}

/// The newest open ticket of a mailbox with the same sender and normalised subject created
/// since `since`.
pub fn recent_by_sender_subject(
    conn: &mut AnyConnection,
    mailbox_id: i64,
    sender: &str,
    subject_key: &str,
    since: NaiveDateTime,
) -> Result<Option<TicketRef>> {
    let row: Option<TicketRow> = ticket_ref_query!()
        .filter(tickets::mailbox_id.eq(mailbox_id))
        .filter(tickets::sender_address.eq(index_key(&sender.to_ascii_lowercase()).into_owned()))
        .filter(tickets::subject_key.eq(index_key(subject_key)))
        .filter(tickets::created_at.ge(since))
        .filter(statuses::is_complete.eq(false))
        .order(tickets::id.desc())
        .load_on(conn)?
        .into_iter()
        .next();
    Ok(row.map(ticket_ref))
}

/// Open tickets of a mailbox whose `column` (alert or external id) is `key`, newest first (the
/// indexes `tickets_alert` and `tickets_external` serve it).
macro_rules! open_by_id_query {
    ($column:expr, $mailbox_id:expr, $key:expr) => {
        ticket_ref_query!()
            .filter(tickets::mailbox_id.eq($mailbox_id))
            .filter($column.eq($key))
            .filter(statuses::is_complete.eq(false))
            .order(tickets::id.desc())
            .limit(20)
    };
}

/// Open tickets of a mailbox carrying this alert id (or external id), newest first.
pub fn open_by_alert(conn: &mut AnyConnection, mailbox_id: i64, alert_id: Option<&str>, external_id: Option<&str>) -> Result<Vec<(TicketRef, &'static str)>> {
    let mut out = Vec::new();
    if let Some(a) = alert_id {
        let rows: Vec<TicketRow> = open_by_id_query!(tickets::alert_id, mailbox_id, index_key(a)).load_on(conn)?;
        out.extend(rows.into_iter().map(|r| (ticket_ref(r), "alert_id")));
    }
    if let Some(x) = external_id {
        let rows: Vec<TicketRow> = open_by_id_query!(tickets::external_id, mailbox_id, index_key(x)).load_on(conn)?;
        out.extend(rows.into_iter().map(|r| (ticket_ref(r), "external_id")));
    }
    Ok(out)
}

/// Remember that a Message-ID belongs to a ticket (for replies that thread by References).
pub fn add_message_ref(
    conn: &mut AnyConnection,
    message_id: &str,
    ticket_id: i64,
    mailbox_id: Option<i64>,
) -> Result<(), StoreFail> {
    diesel::insert_into(message_refs::table)
        .values((
            message_refs::message_id.eq(index_key(message_id)),
            message_refs::ticket_id.eq(ticket_id),
            message_refs::mailbox_id.eq(mailbox_id),
        ))
        .execute_on(conn)?;
    Ok(())
}

/// A ticket as shown by `ticketmilter ticket show`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TicketView {
    pub id: i64,
    pub number: String,
    pub title: String,
    pub description: String,
    pub status: String,
    pub priority: String,
    pub queue: String,
    pub source: String,
    pub company: Option<String>,
    pub contact: Option<String>,
    pub mailbox: Option<String>,
    pub created_at: String,
    pub tags: Vec<String>,
    pub attachments: Vec<crate::model::AttachmentReport>,
    pub notes: Vec<NoteView>,
    /// Additional contacts (addresses).
    pub additional_contacts: Vec<String>,
    /// Linked tickets: (number, kind).
    pub links: Vec<(String, String)>,
    pub time_entries: Vec<TimeView>,
    pub alert_id: Option<String>,
    pub external_id: Option<String>,
    /// The assigned resource ("Name <address>").
    pub assigned: Option<String>,
    /// Due date and time (UTC).
    pub due_at: Option<String>,
}

/// A time entry as shown by `ticketmilter ticket show`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimeView {
    pub resource: String,
    pub role: String,
    pub date: String,
    pub minutes: i32,
    pub start: Option<String>,
    pub end: Option<String>,
    pub summary: String,
}

/// A note as shown by `ticketmilter ticket show`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NoteView {
    pub id: i64,
    pub title: String,
    pub body: String,
    pub author: String,
    pub visibility: String,
    pub unverified: bool,
    pub created_at: String,
    pub attachments: Vec<crate::model::AttachmentReport>,
}

fn attachment_reports(conn: &mut AnyConnection, kind: &str, id: i64) -> Result<Vec<crate::model::AttachmentReport>> {
    let rows: Vec<(String, String, i64)> = attachments::table
        .filter(attachments::owner_kind.eq(kind))
        .filter(attachments::owner_id.eq(id))
        .order(attachments::id)
        .select((attachments::filename, attachments::content_type, attachments::size))
        .load_on(conn)?;
    Ok(rows
        .into_iter()
        .map(|(filename, content_type, size)| crate::model::AttachmentReport {
            filename,
            content_type,
            size: size as u64,
        })
        .collect())
}

/// Everything about one ticket, by number.
pub fn view(conn: &mut AnyConnection, number: &str) -> Result<Option<TicketView>> {
    type Row = (i64, String, String, String, String, String, String, String, Option<i64>, Option<i64>, Option<String>, NaiveDateTime);
    let row: Option<Row> = tickets::table
        .inner_join(statuses::table)
        .inner_join(priorities::table)
        .inner_join(queues::table)
        .inner_join(sources::table)
        .left_join(mailboxes::table)
        .filter(tickets::number.eq(number.trim().to_ascii_uppercase()))
        .select((
            tickets::id,
            tickets::number,
            tickets::title,
            tickets::description,
            statuses::name,
            priorities::name,
            queues::name,
            sources::name,
            tickets::company_id,
            tickets::contact_id,
            mailboxes::address.nullable(),
            tickets::created_at,
        ))
        .first_on(conn)
        .optional()?;
    let Some((id, number, title, description, status, priority, queue, source, company_id, contact_id, mailbox, created)) = row else {
        return Ok(None);
    };
    let company = match company_id {
        Some(cid) => companies::table.find(cid).select(companies::name).first_on(conn).optional()?,
        None => None,
    };
    let contact: Option<(String, Option<String>)> = match contact_id {
        Some(cid) => contacts::table.find(cid).select((contacts::name, contacts::email1)).first_on(conn).optional()?,
        None => None,
    };
    let tags: Vec<String> = ticket_tags::table
        .inner_join(tags::table)
        .filter(ticket_tags::ticket_id.eq(id))
        .order(tags::label)
        .select(tags::label)
        .load_on(conn)?;
    let attachments = attachment_reports(conn, "ticket", id)?;
    let note_rows: Vec<(i64, String, String, String, String, NaiveDateTime, bool)> = ticket_notes::table
        .filter(ticket_notes::ticket_id.eq(id))
        .order(ticket_notes::id)
        .select((
            ticket_notes::id,
            ticket_notes::title,
            ticket_notes::body,
            ticket_notes::author_address,
            ticket_notes::visibility,
            ticket_notes::created_at,
            ticket_notes::unverified,
        ))
        .load_on(conn)?;
    let mut notes = Vec::new();
    for (nid, title, body, author, visibility, created, unverified) in note_rows {
        notes.push(NoteView {
            id: nid,
            title,
            body,
            author,
            visibility,
            unverified,
            created_at: created.format("%Y-%m-%d %H:%M:%S").to_string(),
            attachments: attachment_reports(conn, "ticket_note", nid)?,
        });
    }
    let additional_contacts: Vec<Option<String>> = ticket_contacts::table
        .inner_join(contacts::table)
        .filter(ticket_contacts::ticket_id.eq(id))
        .order(contacts::id)
        .select(contacts::email1)
        .load_on(conn)?;
    let link_rows: Vec<(i64, String)> = ticket_links::table
        .filter(ticket_links::ticket_id.eq(id))
        .select((ticket_links::linked_ticket_id, ticket_links::kind))
        .load_on(conn)?;
    let mut links = Vec::new();
    for (other, kind) in link_rows {
        let n: String = tickets::table.find(other).select(tickets::number).first_on(conn)?;
        links.push((n, kind));
    }
    type TimeRow = (String, String, String, i32, Option<String>, Option<String>, String);
    let time_rows: Vec<TimeRow> = time_entries::table
        .inner_join(resources::table.on(resources::id.eq(time_entries::resource_id)))
        .inner_join(roles::table.on(roles::id.eq(time_entries::role_id)))
        .filter(time_entries::owner_kind.eq("ticket"))
        .filter(time_entries::owner_id.eq(id))
        .order(time_entries::id)
        .select((
            resources::email,
            roles::name,
            time_entries::work_date,
            time_entries::minutes,
            time_entries::start_time,
            time_entries::end_time,
            time_entries::summary,
        ))
        .load_on(conn)?;
    let (alert_id, external_id): (Option<String>, Option<String>) =
        tickets::table.find(id).select((tickets::alert_id, tickets::external_id)).first_on(conn)?;
    let (assigned_id, due_at): (Option<i64>, Option<NaiveDateTime>) =
        tickets::table.filter(tickets::id.eq(id)).select((tickets::assigned_resource_id, tickets::due_at)).first_on(conn)?;
    let assigned = match assigned_id {
        Some(r) => resources::table
            .filter(resources::id.eq(r))
            .select((resources::name, resources::email))
            .first_on::<(String, String)>(conn)
            .optional()?
            .map(|(n, e)| format!("{n} <{e}>")),
        None => None,
    };
    Ok(Some(TicketView {
        assigned,
        due_at: due_at.map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string()),
        additional_contacts: additional_contacts.into_iter().flatten().collect(),
        links,
        time_entries: time_rows
            .into_iter()
            .map(|(resource, role, date, minutes, start, end, summary)| TimeView { resource, role, date, minutes, start, end, summary })
            .collect(),
        alert_id,
        external_id,
        id,
        number,
        title,
        description,
        status,
        priority,
        queue,
        source,
        company,
        contact: contact.map(|(n, e)| match e {
            Some(e) if n.is_empty() => e,
            Some(e) => format!("{n} <{e}>"),
            None => n,
        }),
        mailbox,
        created_at: created.format("%Y-%m-%d %H:%M:%S").to_string(),
        tags,
        attachments,
        notes,
    }))
}

/// Recent tickets for listing: number, title, status, company, created.
pub fn list(conn: &mut AnyConnection, limit: i64) -> Result<Vec<(String, String, String, Option<String>, NaiveDateTime)>> {
    Ok(tickets::table
        .inner_join(statuses::table)
        .left_join(companies::table)
        .order(tickets::id.desc())
        .limit(limit)
        .select((
            tickets::number,
            tickets::title,
            statuses::name,
            companies::name.nullable(),
            tickets::created_at,
        ))
        .load_on(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::plans;

    /// An alert looks up open tickets by mailbox and alert id (or external id): through the
    /// index, not by reading every ticket.
    #[test]
    fn open_tickets_by_alert_or_external_id_are_found_through_an_index() {
        let (_dir, store) = plans::store();
        let key = "disk-c".to_string();
        plans::assert_uses(&store, &open_by_id_query!(tickets::alert_id, 1i64, &key), "tickets", "tickets_alert");
        plans::assert_uses(&store, &open_by_id_query!(tickets::external_id, 1i64, &key), "tickets", "tickets_external");
    }
}
