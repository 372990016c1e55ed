//! Mailbox rows (the SQL configuration): add, change, disable and list them by address.

use chrono::Utc;
use diesel::prelude::*;

use super::Run;
use super::conf::{RefTable, ref_by_name};
use super::schema::*;
use super::sqlfn::lower;
use super::{AnyConnection, directory, tags as tag_store};
use crate::error::{Error, Result};
use crate::model::{AfterConversion, CcOnly, CompletedTicket, UnknownSender, Visibility};

/// Changes to a mailbox; `None` leaves a field as it is (or at its default when adding).
#[derive(Debug, Clone, Default)]
pub struct MailboxSpec {
    pub name: Option<String>,
    pub active: Option<bool>,
    pub queue: Option<String>,
    pub priority: Option<String>,
    pub status: Option<String>,
    pub source: Option<String>,
    pub issue_type: Option<String>,
    pub note_visibility: Option<String>,
    pub fallback_company: Option<String>,
    pub unknown_sender: Option<String>,
    /// `deliver`, `remove` or `discard`.
    pub after_conversion: Option<String>,
    /// Role and work type of time entries without `#R=`.
    pub role: Option<String>,
    pub work_type: Option<String>,
    /// Entity kinds the mailbox may create (replaces the set): tickets, ticket-notes,
    /// ticket-time, project-notes, task-notes, task-time.
    pub allow: Option<Vec<String>>,
    pub create_contacts: Option<bool>,
    pub cc_contacts: Option<bool>,
    pub only_when_to: Option<bool>,
    /// `note` or `ignore`.
    pub cc_only: Option<String>,
    /// `reopen`, `note` or `new`.
    pub completed_ticket: Option<String>,
    pub reopen_status: Option<String>,
    pub max_attachment_bytes: Option<u64>,
    pub max_attachments_bytes: Option<u64>,
    pub inline_image_bytes: Option<u64>,
    pub strip_quotes: Option<bool>,
    /// Required tags (replace the list when given).
    pub tags: Option<Vec<String>>,
}

fn mailbox_id(conn: &mut AnyConnection, address: &str) -> Result<Option<i64>> {
    Ok(mailboxes::table
        .filter(lower(mailboxes::address).eq(lower(address.trim())))
        .select(mailboxes::id)
        .first_on(conn)
        .optional()?)
}

fn check_address(address: &str) -> Result<String> {
    let a = address.trim().trim_start_matches('<').trim_end_matches('>');
    match a.split_once('@') {
        Some((l, d)) if !l.is_empty() && !d.is_empty() && !a.contains(char::is_whitespace) => {
            if l.contains('+') {
                return Err(Error::Usage(format!(
                    "{a}: a mailbox address has no +detail (mail to {l}+anything@{d} reaches the mailbox anyway)"
                )));
            }
            Ok(a.to_string())
        }
        _ => Err(Error::Usage(format!("{address:?} is not a mail address"))),
    }
}

/// Add a mailbox; fails when the address exists.
pub fn add(conn: &mut AnyConnection, address: &str, spec: &MailboxSpec) -> Result<i64> {
    let address = check_address(address)?;
    if mailbox_id(conn, &address)?.is_some() {
        return Err(Error::Usage(format!(
            "mailbox {address} already exists (change it with `ticketmilter mailbox set`)"
        )));
    }
    let id: i64 = diesel::insert_into(mailboxes::table)
        .values((
            mailboxes::address.eq(&address),
            mailboxes::name.eq(spec.name.as_deref().unwrap_or("")),
            mailboxes::active.eq(spec.active.unwrap_or(true)),
            mailboxes::note_visibility.eq("all"),
            mailboxes::unknown_sender.eq("fallback"),
            mailboxes::created_at.eq(Utc::now().naive_utc()),
        ))
        .returning(mailboxes::id)
        .get_result_on(conn)?;
    update(conn, id, spec)?;
    Ok(id)
}

/// Change a mailbox; fails when there is none with that address.
pub fn set(conn: &mut AnyConnection, address: &str, spec: &MailboxSpec) -> Result<()> {
    let id = mailbox_id(conn, address)?
        .ok_or_else(|| Error::Usage(format!("no mailbox {address} (add it with `ticketmilter mailbox add`)")))?;
    update(conn, id, spec)
}

fn update(conn: &mut AnyConnection, id: i64, spec: &MailboxSpec) -> Result<()> {
    let target = mailboxes::table.filter(mailboxes::id.eq(id));
    if let Some(name) = &spec.name {
        diesel::update(target).set(mailboxes::name.eq(name.trim())).execute_on(conn)?;
    }
    if let Some(active) = spec.active {
        diesel::update(target).set(mailboxes::active.eq(active)).execute_on(conn)?;
    }
    for (value, table) in [
        (&spec.queue, RefTable::Queue),
        (&spec.priority, RefTable::Priority),
        (&spec.status, RefTable::Status),
        (&spec.source, RefTable::Source),
        (&spec.issue_type, RefTable::IssueType),
        (&spec.role, RefTable::Role),
        (&spec.work_type, RefTable::WorkType),
    ] {
        let Some(value) = value else { continue };
        let rid = if value.trim().is_empty() || value.eq_ignore_ascii_case("default") {
            None
        } else {
            Some(ref_by_name(conn, table, value)?)
        };
        let q = diesel::update(target);
        match table {
            RefTable::Queue => q.set(mailboxes::queue_id.eq(rid)).execute_on(conn)?,
            RefTable::Priority => q.set(mailboxes::priority_id.eq(rid)).execute_on(conn)?,
            RefTable::Status => q.set(mailboxes::status_id.eq(rid)).execute_on(conn)?,
            RefTable::Source => q.set(mailboxes::source_id.eq(rid)).execute_on(conn)?,
            RefTable::IssueType => q.set(mailboxes::issue_type_id.eq(rid)).execute_on(conn)?,
            RefTable::Role => q.set(mailboxes::role_id.eq(rid)).execute_on(conn)?,
            RefTable::WorkType => q.set(mailboxes::work_type_id.eq(rid)).execute_on(conn)?,
        };
    }
    if let Some(v) = &spec.note_visibility {
        let v = Visibility::parse(v)
            .ok_or_else(|| Error::Usage(format!("note visibility {v:?}: expected internal or all")))?;
        diesel::update(target).set(mailboxes::note_visibility.eq(v.as_str())).execute_on(conn)?;
    }
    if let Some(v) = &spec.unknown_sender {
        let v = UnknownSender::parse(v)
            .ok_or_else(|| Error::Usage(format!("unknown-sender policy {v:?}: expected fallback or reject")))?;
        diesel::update(target).set(mailboxes::unknown_sender.eq(v.as_str())).execute_on(conn)?;
    }
    if let Some(v) = &spec.after_conversion {
        let v = AfterConversion::parse(v).ok_or_else(|| {
            Error::Usage(format!("after-conversion {v:?}: expected deliver, remove or discard"))
        })?;
        diesel::update(target).set(mailboxes::after_conversion.eq(v.as_str())).execute_on(conn)?;
    }
    if let Some(kinds) = &spec.allow {
        let mut a = [false; 6];
        for k in kinds.iter().flat_map(|k| k.split(',')).map(|k| k.trim().to_ascii_lowercase()).filter(|k| !k.is_empty()) {
            let i = match k.replace('_', "-").as_str() {
                "tickets" => 0,
                "ticket-notes" => 1,
                "ticket-time" => 2,
                "project-notes" => 3,
                "task-notes" => 4,
                "task-time" => 5,
                "all" => {
                    a = [true; 6];
                    continue;
                }
                "none" => continue,
                other => {
                    return Err(Error::Usage(format!(
                        "unknown entity kind {other:?} (use tickets, ticket-notes, ticket-time, project-notes, task-notes, task-time, all or none)"
                    )));
                }
            };
            a[i] = true;
        }
        diesel::update(target)
            .set((
                mailboxes::allow_tickets.eq(a[0]),
                mailboxes::allow_ticket_notes.eq(a[1]),
                mailboxes::allow_ticket_time.eq(a[2]),
                mailboxes::allow_project_notes.eq(a[3]),
                mailboxes::allow_task_notes.eq(a[4]),
                mailboxes::allow_task_time.eq(a[5]),
            ))
            .execute_on(conn)?;
    }
    if let Some(v) = spec.create_contacts {
        diesel::update(target).set(mailboxes::create_contacts.eq(v)).execute_on(conn)?;
    }
    if let Some(v) = spec.cc_contacts {
        diesel::update(target).set(mailboxes::cc_contacts.eq(v)).execute_on(conn)?;
    }
    if let Some(v) = spec.only_when_to {
        diesel::update(target).set(mailboxes::only_when_to.eq(v)).execute_on(conn)?;
    }
    if let Some(v) = spec.strip_quotes {
        diesel::update(target).set(mailboxes::strip_quotes.eq(v)).execute_on(conn)?;
    }
    if let Some(v) = &spec.cc_only {
        let v = CcOnly::parse(v).ok_or_else(|| Error::Usage(format!("cc-only {v:?}: expected note or ignore")))?;
        diesel::update(target).set(mailboxes::cc_only.eq(v.as_str())).execute_on(conn)?;
    }
    if let Some(v) = &spec.completed_ticket {
        let v = CompletedTicket::parse(v).ok_or_else(|| Error::Usage(format!("completed-ticket {v:?}: expected reopen, note or new")))?;
        diesel::update(target).set(mailboxes::completed_ticket.eq(v.as_str())).execute_on(conn)?;
    }
    if let Some(v) = &spec.reopen_status {
        let sid = if v.trim().is_empty() || v.eq_ignore_ascii_case("default") { None } else { Some(ref_by_name(conn, RefTable::Status, v)?) };
        diesel::update(target).set(mailboxes::reopen_status_id.eq(sid)).execute_on(conn)?;
    }
    for (value, column) in [
        (spec.max_attachment_bytes, 0),
        (spec.max_attachments_bytes, 1),
        (spec.inline_image_bytes, 2),
    ] {
        let Some(v) = value else { continue };
        let v = i64::try_from(v).map_err(|_| Error::Usage(format!("{v} bytes is too large")))?;
        let q = diesel::update(target);
        match column {
            0 => q.set(mailboxes::max_attachment_bytes.eq(v)).execute_on(conn)?,
            1 => q.set(mailboxes::max_attachments_bytes.eq(v)).execute_on(conn)?,
            _ => q.set(mailboxes::inline_image_bytes.eq(v)).execute_on(conn)?,
        };
    }
    if let Some(company) = &spec.fallback_company {
        let cid = if company.trim().is_empty() {
            None
        } else {
            Some(directory::require_company(conn, company)?.id)
        };
        diesel::update(target).set(mailboxes::fallback_company_id.eq(cid)).execute_on(conn)?;
    }
    if let Some(labels) = &spec.tags {
        diesel::delete(mailbox_tags::table.filter(mailbox_tags::mailbox_id.eq(id))).execute_on(conn)?;
        let mut ids: Vec<i64> = Vec::new();
        for label in labels {
            let tag = tag_store::tag_by_label(conn, label)?.ok_or_else(|| {
                Error::Usage(format!("no tag {label:?} (add it with `ticketmilter tag add`)"))
            })?;
            if !ids.contains(&tag.id) {
                ids.push(tag.id);
                diesel::insert_into(mailbox_tags::table)
                    .values((mailbox_tags::mailbox_id.eq(id), mailbox_tags::tag_id.eq(tag.id)))
                    .execute_on(conn)?;
            }
        }
    }
    Ok(())
}

/// A mailbox for listing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MailboxView {
    pub id: i64,
    pub address: String,
    pub name: String,
    pub active: bool,
    pub queue: Option<String>,
    pub priority: Option<String>,
    pub status: Option<String>,
    pub source: Option<String>,
    pub note_visibility: String,
    pub fallback_company: Option<String>,
    pub unknown_sender: String,
    pub after_conversion: String,
    pub tags: Vec<String>,
}

/// All mailboxes, active or not, by address.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<MailboxView>> {
    type Row = (i64, String, String, bool, Option<String>, Option<String>, Option<String>, Option<String>, String, Option<String>, String, String);
    let rows: Vec<Row> = mailboxes::table
        .left_join(queues::table)
        .left_join(priorities::table)
        .left_join(statuses::table)
        .left_join(sources::table)
        .left_join(companies::table)
        .order(mailboxes::address)
        .select((
            mailboxes::id,
            mailboxes::address,
            mailboxes::name,
            mailboxes::active,
            queues::name.nullable(),
            priorities::name.nullable(),
            statuses::name.nullable(),
            sources::name.nullable(),
            mailboxes::note_visibility,
            companies::name.nullable(),
            mailboxes::unknown_sender,
            mailboxes::after_conversion,
        ))
        .load_on(conn)?;
    let tag_rows: Vec<(i64, String)> = mailbox_tags::table
        .inner_join(tags::table)
        .order(tags::label)
        .select((mailbox_tags::mailbox_id, tags::label))
        .load_on(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, address, name, active, queue, priority, status, source, note_visibility, fallback_company, unknown_sender, after_conversion)| MailboxView {
            tags: tag_rows.iter().filter(|(m, _)| *m == id).map(|(_, l)| l.clone()).collect(),
            id,
            address,
            name,
            active,
            queue,
            priority,
            status,
            source,
            note_visibility,
            fallback_company,
            unknown_sender,
            after_conversion,
        })
        .collect())
}

/// The id of a mailbox by address (case-insensitive).
pub fn id_by_address(conn: &mut AnyConnection, address: &str) -> Result<i64> {
    mailbox_id(conn, address)?.ok_or_else(|| Error::Usage(format!("no mailbox {address} (see `ticketmilter mailbox list`)")))
}
