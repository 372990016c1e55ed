//! Ticket state for workflow rules and notifications: loading it, writing what the rules
//! decided (fields, tags, assignment with round robin), recipients by role, queue members.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{Fixed, Run, Value};
use super::schema::*;
use super::sqlfn::lower;
use super::{AnyConnection, StoreFail};
use crate::error::{Error, Result};
use crate::workflow::TicketState;

/// A ticket as workflow rules and notification templates see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketFacts {
    pub id: i64,
    pub number: String,
    pub title: String,
    pub state: TicketState,
    pub company: Option<String>,
    /// The ticket contact: (name, first address).
    pub contact: Option<(String, Option<String>)>,
    /// Addresses of the additional contacts.
    pub additional: Vec<String>,
    /// The assigned resource: (name, address).
    pub assigned: Option<(String, String)>,
}

/// Load a ticket with everything rules and templates read: the ticket with its company,
/// contact and assigned resource in one query, then its additional contacts and its tags.
pub fn ticket_facts(conn: &mut AnyConnection, id: i64) -> Result<Option<TicketFacts>, StoreFail> {
    type R = (
        (i64, String, String, i64, i64, i64, Option<i64>, i64, Option<i64>, Option<NaiveDateTime>),
        Option<String>,
        Option<(String, Option<String>)>,
        Option<(String, String)>,
    );
    let row: Option<R> = tickets::table
        .left_join(companies::table.on(companies::id.nullable().eq(tickets::company_id)))
        .left_join(contacts::table.on(contacts::id.nullable().eq(tickets::contact_id)))
        .left_join(resources::table.on(resources::id.nullable().eq(tickets::assigned_resource_id)))
        .filter(tickets::id.eq(id))
        .select((
            (
                tickets::id,
                tickets::number,
                tickets::title,
                tickets::queue_id,
                tickets::priority_id,
                tickets::status_id,
                tickets::issue_type_id,
                tickets::source_id,
                tickets::contact_id,
                tickets::due_at,
            ),
            companies::name.nullable(),
            (contacts::name, contacts::email1).nullable(),
            (resources::name, resources::email).nullable(),
        ))
        .get_result_on(conn)
        .optional()?;
    let Some(((id, number, title, queue_id, priority_id, status_id, issue_type_id, source_id, contact_id, due_at), company, contact, assigned)) = row
    else {
        return Ok(None);
    };
    let additional: Vec<String> = ticket_contacts::table
        .inner_join(contacts::table)
        .filter(ticket_contacts::ticket_id.eq(id))
        .filter(contacts::active.eq(true))
        .filter(ticket_contacts::contact_id.nullable().ne(contact_id))
        .order(contacts::id)
        .select(contacts::email1)
        .load_on::<Option<String>>(conn)?
        .into_iter()
        .flatten()
        .collect();
    let tags: Vec<String> = ticket_tags::table
        .inner_join(tags::table)
        .filter(ticket_tags::ticket_id.eq(id))
        .order(tags::label)
        .select(tags::label)
        .load_on(conn)?;
    Ok(Some(TicketFacts {
        id,
        number,
        title,
        state: TicketState { queue_id, priority_id, status_id, issue_type_id, source_id, company: company.clone(), tags, due_at },
        company,
        contact,
        additional,
        assigned,
    }))
}

/// Write the fields workflow rules may change, and the assigned resource when one is given
/// (one UPDATE: the ticket row, with its description, is rewritten once).
pub fn write_state(conn: &mut AnyConnection, id: i64, s: &TicketState, assigned: Option<i64>, now: NaiveDateTime) -> Result<(), StoreFail> {
    Fixed::<()>::new(
        "UPDATE tickets SET queue_id = ?, priority_id = ?, status_id = ?, issue_type_id = ?, due_at = ?, \
         assigned_resource_id = COALESCE(?, assigned_resource_id), updated_at = ? WHERE id = ?",
        &[
            Value::Int(s.queue_id),
            Value::Int(s.priority_id),
            Value::Int(s.status_id),
            Value::OptInt(s.issue_type_id),
            Value::OptTime(s.due_at),
            Value::OptInt(assigned),
            Value::Time(now),
            Value::Int(id),
        ],
    )
    .execute_on(conn)?;
    Ok(())
}

/// Put a tag on a ticket (the tag is made when no tag of that label exists).
pub fn add_ticket_tag(conn: &mut AnyConnection, ticket_id: i64, label: &str, origin: &str) -> Result<(), StoreFail> {
    let existing: Option<i64> = tags::table
        .filter(lower(tags::label).eq(lower(label.trim())))
        .select(tags::id)
        .first_on(conn)
        .optional()?;
    let tag_id = match existing {
        Some(id) => id,
        None => diesel::insert_into(tags::table)
            .values((tags::label.eq(label.trim()), tags::active.eq(true)))
            .returning(tags::id)
            .get_result_on(conn)?,
    };
    let already: i64 = ticket_tags::table
        .filter(ticket_tags::ticket_id.eq(ticket_id))
        .filter(ticket_tags::tag_id.eq(tag_id))
        .count()
        .get_result_on(conn)?;
    if already == 0 {
        diesel::insert_into(ticket_tags::table)
            .values((ticket_tags::ticket_id.eq(ticket_id), ticket_tags::tag_id.eq(tag_id), ticket_tags::origin.eq(origin)))
            .execute_on(conn)?;
    }
    Ok(())
}

/// A resource for a ticket: (id, name, address).
pub type Assignee = (i64, String, String);

/// The active resource with this address, to assign a ticket to; None when there is none.
pub fn active_resource(conn: &mut AnyConnection, email: &str) -> Result<Option<Assignee>, StoreFail> {
    Ok(resources::table
        .filter(lower(resources::email).eq(lower(email.trim())))
        .filter(resources::active.eq(true))
        .select((resources::id, resources::name, resources::email))
        .first_on(conn)
        .optional()?)
}

/// Round robin: the queue's active member assigned least recently (never assigned first, then
/// by id) is the one to get the ticket, and is marked as assigned now; None when the queue has
/// no active member.
pub fn next_in_round_robin(conn: &mut AnyConnection, queue_id: i64, now: NaiveDateTime) -> Result<Option<Assignee>, StoreFail> {
    let members: Vec<(i64, Option<NaiveDateTime>, String, String)> = queue_members::table
        .inner_join(resources::table)
        .filter(queue_members::queue_id.eq(queue_id))
        .filter(resources::active.eq(true))
        .select((resources::id, queue_members::last_assigned_at, resources::name, resources::email))
        .load_on(conn)?;
    let Some((id, _, name, email)) = members.into_iter().min_by_key(|(id, at, _, _)| (at.is_some(), *at, *id)) else {
        return Ok(None);
    };
    Fixed::<()>::new(
        "UPDATE queue_members SET last_assigned_at = ? WHERE queue_id = ? AND resource_id = ?",
        &[Value::Time(now), Value::Int(queue_id), Value::Int(id)],
    )
    .execute_on(conn)?;
    Ok(Some((id, name, email)))
}

/// Addresses of a queue's active members.
pub fn queue_member_emails(conn: &mut AnyConnection, queue_id: i64) -> Result<Vec<String>, StoreFail> {
    Ok(queue_members::table
        .inner_join(resources::table)
        .filter(queue_members::queue_id.eq(queue_id))
        .filter(resources::active.eq(true))
        .order(resources::id)
        .select(resources::email)
        .load_on(conn)?)
}

/// Make a resource a member of a queue (admin).
pub fn add_queue_member(conn: &mut AnyConnection, queue_id: i64, resource_email: &str) -> Result<()> {
    let rid: Option<i64> = resources::table
        .filter(lower(resources::email).eq(lower(resource_email.trim())))
        .select(resources::id)
        .first_on(conn)
        .optional()?;
    let rid = rid.ok_or_else(|| Error::Usage(format!("no resource with the address {resource_email}")))?;
    let exists: i64 = queue_members::table
        .filter(queue_members::queue_id.eq(queue_id))
        .filter(queue_members::resource_id.eq(rid))
        .count()
        .get_result_on(conn)?;
    if exists == 0 {
        diesel::insert_into(queue_members::table)
            .values((queue_members::queue_id.eq(queue_id), queue_members::resource_id.eq(rid)))
            .execute_on(conn)?;
    }
    Ok(())
}

/// Take a resource out of a queue (admin); returns whether it was a member.
pub fn remove_queue_member(conn: &mut AnyConnection, queue_id: i64, resource_email: &str) -> Result<bool> {
    let rid: Option<i64> = resources::table
        .filter(lower(resources::email).eq(lower(resource_email.trim())))
        .select(resources::id)
        .first_on(conn)
        .optional()?;
    let Some(rid) = rid else { return Ok(false) };
    let n = diesel::delete(queue_members::table.filter(queue_members::queue_id.eq(queue_id)).filter(queue_members::resource_id.eq(rid)))
        .execute_on(conn)?;
    Ok(n > 0)
}

/// Every queue membership: (queue name, resource name, address, last assigned).
pub fn list_queue_members(conn: &mut AnyConnection) -> Result<Vec<(String, String, String, Option<NaiveDateTime>)>> {
    Ok(queue_members::table
        .inner_join(queues::table)
        .inner_join(resources::table)
        .order((queues::name, resources::email))
        .select((queues::name, resources::name, resources::email, queue_members::last_assigned_at))
        .load_on(conn)?)
}
