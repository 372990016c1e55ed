//! Notes on tickets, projects and tasks; time entries; the internal notes ticketmilter itself
//! writes (e.g. which attachments were left out).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{Fixed, Run, Value};
use super::schema::*;
use super::{AnyConnection, StoreFail, tickets};
use super::projects as project_store;
use crate::model::{NewNote, NewTimeEntry, NoteTarget, ObjectKind, TimeTarget, Visibility};

/// Add a note; returns its kind and id. Touches the object (and reopens a ticket when asked).
pub fn add(conn: &mut AnyConnection, n: &NewNote, now: NaiveDateTime) -> Result<(ObjectKind, i64), StoreFail> {
    match &n.target {
        NoteTarget::Ticket(t) => {
            let id: i64 = diesel::insert_into(ticket_notes::table)
                .values((
                    ticket_notes::ticket_id.eq(t.id),
                    ticket_notes::title.eq(&n.title),
                    ticket_notes::body.eq(&n.body),
                    ticket_notes::body_html.eq(&n.body_html),
                    ticket_notes::author_contact_id.eq(n.author_contact_id),
                    ticket_notes::author_resource_id.eq(n.author_resource_id),
                    ticket_notes::author_address.eq(&n.author_address),
                    ticket_notes::visibility.eq(n.visibility.as_str()),
                    ticket_notes::mailbox_id.eq(Some(n.mailbox_id)),
                    ticket_notes::created_at.eq(now),
                    ticket_notes::unverified.eq(n.unverified),
                ))
                .returning(ticket_notes::id)
                .get_result_on(conn)?;
            match n.set_status {
                Some(s) => tickets::set_status(conn, t.id, s, now)?,
                None => tickets::touch(conn, t.id, now)?,
            }
            Ok((ObjectKind::TicketNote, id))
        }
        NoteTarget::Project(p) => {
            let id: i64 = diesel::insert_into(project_notes::table)
                .values((
                    project_notes::project_id.eq(p.id),
                    project_notes::title.eq(&n.title),
                    project_notes::body.eq(&n.body),
                    project_notes::body_html.eq(&n.body_html),
                    project_notes::author_contact_id.eq(n.author_contact_id),
                    project_notes::author_resource_id.eq(n.author_resource_id),
                    project_notes::author_address.eq(&n.author_address),
                    project_notes::visibility.eq(n.visibility.as_str()),
                    project_notes::unverified.eq(n.unverified),
                    project_notes::mailbox_id.eq(Some(n.mailbox_id)),
                    project_notes::created_at.eq(now),
                ))
                .returning(project_notes::id)
                .get_result_on(conn)?;
            Fixed::<()>::new("UPDATE projects SET updated_at = ? WHERE id = ?", &[Value::Time(now), Value::Int(p.id)])
                .execute_on(conn)?;
            Ok((ObjectKind::ProjectNote, id))
        }
        NoteTarget::Task(t) => {
            let id: i64 = diesel::insert_into(task_notes::table)
                .values((
                    task_notes::task_id.eq(t.id),
                    task_notes::title.eq(&n.title),
                    task_notes::body.eq(&n.body),
                    task_notes::body_html.eq(&n.body_html),
                    task_notes::author_contact_id.eq(n.author_contact_id),
                    task_notes::author_resource_id.eq(n.author_resource_id),
                    task_notes::author_address.eq(&n.author_address),
                    task_notes::visibility.eq(n.visibility.as_str()),
                    task_notes::unverified.eq(n.unverified),
                    task_notes::mailbox_id.eq(Some(n.mailbox_id)),
                    task_notes::created_at.eq(now),
                ))
                .returning(task_notes::id)
                .get_result_on(conn)?;
            Fixed::<()>::new("UPDATE tasks SET updated_at = ? WHERE id = ?", &[Value::Time(now), Value::Int(t.id)])
                .execute_on(conn)?;
            Ok((ObjectKind::TaskNote, id))
        }
    }
}

/// An internal note written by ticketmilter itself on a ticket, project or task.
pub fn system_note(conn: &mut AnyConnection, target: &NoteTarget, title: &str, body: &str, mailbox_id: i64, now: NaiveDateTime) -> Result<(), StoreFail> {
    let note = NewNote {
        target: target.clone(),
        title: title.to_string(),
        body: body.to_string(),
        body_html: None,
        author_contact_id: None,
        author_resource_id: None,
        author_address: "ticketmilter".to_string(),
        visibility: Visibility::Internal,
        unverified: false,
        mailbox_id,
        attachments: Vec::new(),
        set_status: None,
    };
    add(conn, &note, now).map(|_| ())
}

/// Add a time entry (and set the status it names); returns its kind and id.
pub fn add_time(conn: &mut AnyConnection, e: &NewTimeEntry, now: NaiveDateTime) -> Result<(ObjectKind, i64), StoreFail> {
    let (owner_kind, owner_id, kind) = match &e.target {
        TimeTarget::Ticket(t) => ("ticket", t.id, ObjectKind::TicketTimeEntry),
        TimeTarget::Task(t) => ("task", t.id, ObjectKind::TaskTimeEntry),
    };
    let id: i64 = diesel::insert_into(time_entries::table)
        .values((
            time_entries::owner_kind.eq(owner_kind),
            time_entries::owner_id.eq(owner_id),
            time_entries::resource_id.eq(e.resource_id),
            time_entries::role_id.eq(e.role_id),
            time_entries::work_type_id.eq(e.work_type_id),
            time_entries::work_date.eq(&e.work_date),
            time_entries::start_time.eq(&e.start),
            time_entries::end_time.eq(&e.end),
            time_entries::minutes.eq(e.minutes as i32),
            time_entries::summary.eq(&e.summary),
            time_entries::mailbox_id.eq(Some(e.mailbox_id)),
            time_entries::created_at.eq(now),
        ))
        .returning(time_entries::id)
        .get_result_on(conn)?;
    match (&e.target, &e.set_status) {
        (TimeTarget::Ticket(t), Some((s, _))) => tickets::set_status(conn, t.id, *s, now)?,
        (TimeTarget::Ticket(t), None) => tickets::touch(conn, t.id, now)?,
        (TimeTarget::Task(t), Some((s, _))) => project_store::set_task_status(conn, t.id, *s, now)?,
        (TimeTarget::Task(_), None) => {}
    }
    Ok((kind, id))
}
