//! Ticket state for workflow rules and notifications: loading it, writing what the rules
//! decided (fields, tags, assignment with round robin), recipients by role, queue members.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Run;
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

/// Load a ticket with everything rules and templates read.
pub fn ticket_facts(conn: &mut AnyConnection, id: i64) -> Result<Option<TicketFacts>, StoreFail> {
    type R = (i64, String, String, i64, i64, i64, Option<i64>, i64, Option<i64>, Option<i64>, Option<i64>, Option<NaiveDateTime>);
    let row: Option<R> = tickets::table
        .filter(tickets::id.eq(id))
        .select((
            tickets::id,
            tickets::number,
            tickets::title,
            tickets::queue_id,
            tickets::priority_id,
            tickets::status_id,
            tickets::issue_type_id,
            tickets::source_id,
            tickets::company_id,
            tickets::contact_id,
            tickets::assigned_resource_id,
            tickets::due_at,
        ))
        .first_on(conn)
        .optional()?;
    let Some((id, number, title, queue_id, priority_id, status_id, issue_type_id, source_id, company_id, contact_id, assigned_id, due_at)) = row
    else {
        return Ok(None);
    };
    let company = match company_id {
        Some(c) => companies::table.filter(companies::id.eq(c)).select(companies::name).first_on::<String>(conn).optional()?,
        None => None,
    };
    let contact = match contact_id {
        Some(c) => contacts::table
            .filter(contacts::id.eq(c))
            .select((contacts::name, contacts::email1))
            .first_on::<(String, Option<String>)>(conn)
            .optional()?,
        None => None,
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
    let assigned = match assigned_id {
        Some(r) => resources::table
            .filter(resources::id.eq(r))
            .select((resources::name, resources::email))
            .first_on::<(String, String)>(conn)
            .optional()?,
        None => None,
    };
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

/// Write the fields workflow rules may change.
pub fn write_state(conn: &mut AnyConnection, id: i64, s: &TicketState, now: NaiveDateTime) -> Result<(), StoreFail> {
    diesel::update(tickets::table.filter(tickets::id.eq(id)))
        .set((
            tickets::queue_id.eq(s.queue_id),
            tickets::priority_id.eq(s.priority_id),
            tickets::status_id.eq(s.status_id),
            tickets::issue_type_id.eq(s.issue_type_id),
            tickets::due_at.eq(s.due_at),
            tickets::updated_at.eq(now),
        ))
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

/// Assign a ticket to the active resource with this address; returns (name, address), or None
/// when there is no such active resource.
pub fn assign_to(conn: &mut AnyConnection, ticket_id: i64, email: &str, now: NaiveDateTime) -> Result<Option<(String, String)>, StoreFail> {
    let r: Option<(i64, String, String)> = resources::table
        .filter(lower(resources::email).eq(lower(email.trim())))
        .filter(resources::active.eq(true))
        .select((resources::id, resources::name, resources::email))
        .first_on(conn)
        .optional()?;
    let Some((id, name, email)) = r else { return Ok(None) };
    set_assigned(conn, ticket_id, id, now)?;
    Ok(Some((name, email)))
}

/// Round robin: the queue's active member assigned least recently (never assigned first, then
/// by id) gets the ticket; returns (name, address), or None when the queue has no active member.
pub fn assign_round_robin(conn: &mut AnyConnection, ticket_id: i64, queue_id: i64, now: NaiveDateTime) -> Result<Option<(String, String)>, StoreFail> {
    let members: Vec<(i64, Option<NaiveDateTime>, String, String)> = queue_members::table
        .inner_join(resources::table)
        .filter(queue_members::queue_id.eq(queue_id))
        .filter(resources::active.eq(true))
        .select((resources::id, queue_members::last_assigned_at, resources::name, resources::email))
        .load_on(conn)?;
    let Some((id, _, name, email)) = members.into_iter().min_by_key(|(id, at, _, _)| (at.is_some(), *at, *id)) else {
        return Ok(None);
    };
    diesel::update(queue_members::table.filter(queue_members::queue_id.eq(queue_id)).filter(queue_members::resource_id.eq(id)))
        .set(queue_members::last_assigned_at.eq(Some(now)))
        .execute_on(conn)?;
    set_assigned(conn, ticket_id, id, now)?;
    Ok(Some((name, email)))
}

fn set_assigned(conn: &mut AnyConnection, ticket_id: i64, resource_id: i64, now: NaiveDateTime) -> Result<(), StoreFail> {
    diesel::update(tickets::table.filter(tickets::id.eq(ticket_id)))
        .set((tickets::assigned_resource_id.eq(Some(resource_id)), tickets::updated_at.eq(now)))
        .execute_on(conn)?;
    Ok(())
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
