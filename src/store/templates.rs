//! Notification templates and workflow rules as the admin commands add, list and switch them.

use diesel::prelude::*;

use super::Run;
use super::AnyConnection;
use super::schema::*;
use super::sqlfn::lower;
use crate::error::{Error, Result};
use crate::workflow::RuleRow;

/// A template to add (or replace, by name).
pub struct NewTemplate<'a> {
    pub name: &'a str,
    pub mailbox_id: Option<i64>,
    pub event: Option<&'a str>,
    pub subject: &'a str,
    pub body_text: &'a str,
    pub body_html: Option<&'a str>,
    pub active: bool,
}

/// Add a template, or replace the one of that name. Returns its id.
pub fn upsert_template(conn: &mut AnyConnection, t: &NewTemplate<'_>) -> Result<i64> {
    let existing: Option<i64> = notification_templates::table
        .filter(lower(notification_templates::name).eq(lower(t.name.trim())))
        .select(notification_templates::id)
        .first_on(conn)
        .optional()?;
    let values = (
        notification_templates::mailbox_id.eq(t.mailbox_id),
        notification_templates::event.eq(t.event),
        notification_templates::subject.eq(t.subject),
        notification_templates::body_text.eq(t.body_text),
        notification_templates::body_html.eq(t.body_html),
        notification_templates::active.eq(t.active),
    );
    Ok(match existing {
        Some(id) => {
            diesel::update(notification_templates::table.filter(notification_templates::id.eq(id))).set(values).execute_on(conn)?;
            id
        }
        None => diesel::insert_into(notification_templates::table)
            .values((notification_templates::name.eq(t.name.trim()), values))
            .returning(notification_templates::id)
            .get_result_on(conn)?,
    })
}

/// Switch a template on or off by name.
pub fn set_template_active(conn: &mut AnyConnection, name: &str, active: bool) -> Result<()> {
    let n = diesel::update(notification_templates::table.filter(lower(notification_templates::name).eq(lower(name.trim()))))
        .set(notification_templates::active.eq(active))
        .execute_on(conn)?;
    if n == 0 {
        return Err(Error::Usage(format!("no template named {name:?} (see `ticketmilter template list`)")));
    }
    Ok(())
}

/// Add a workflow rule; returns its id.
pub fn add_rule(conn: &mut AnyConnection, r: &RuleRow) -> Result<i64> {
    use workflow_rules as w;
    Ok(diesel::insert_into(w::table)
        .values((
            (
                w::position.eq(r.position),
                w::name.eq(&r.name),
                w::active.eq(r.active),
                w::on_events.eq(&r.on_events),
                w::if_mailbox.eq(&r.if_mailbox),
                w::if_queue.eq(&r.if_queue),
                w::if_priority.eq(&r.if_priority),
                w::if_status.eq(&r.if_status),
                w::if_company.eq(&r.if_company),
                w::if_issue_type.eq(&r.if_issue_type),
                w::if_tag.eq(&r.if_tag),
                w::if_sender_domain.eq(&r.if_sender_domain),
            ),
            (
                w::if_subject.eq(&r.if_subject),
                w::if_body.eq(&r.if_body),
                w::if_source.eq(&r.if_source),
                w::if_auto.eq(r.if_auto),
                w::set_queue.eq(&r.set_queue),
                w::set_priority.eq(&r.set_priority),
                w::set_status.eq(&r.set_status),
                w::set_issue_type.eq(&r.set_issue_type),
                w::due_in_hours.eq(r.due_in_hours),
                w::assign.eq(&r.assign),
                w::add_tag.eq(&r.add_tag),
                w::notify_template.eq(&r.notify_template),
                w::notify_roles.eq(&r.notify_roles),
                w::notify_addresses.eq(&r.notify_addresses),
            ),
        ))
        .returning(w::id)
        .get_result_on(conn)?)
}

/// Switch a rule on or off; remove it.
pub fn set_rule_active(conn: &mut AnyConnection, id: i64, active: bool) -> Result<()> {
    let n = diesel::update(workflow_rules::table.filter(workflow_rules::id.eq(id)))
        .set(workflow_rules::active.eq(active))
        .execute_on(conn)?;
    if n == 0 {
        return Err(Error::Usage(format!("no workflow rule {id} (see `ticketmilter rule list`)")));
    }
    Ok(())
}

pub fn remove_rule(conn: &mut AnyConnection, id: i64) -> Result<()> {
    let n = diesel::delete(workflow_rules::table.filter(workflow_rules::id.eq(id))).execute_on(conn)?;
    if n == 0 {
        return Err(Error::Usage(format!("no workflow rule {id} (see `ticketmilter rule list`)")));
    }
    Ok(())
}
