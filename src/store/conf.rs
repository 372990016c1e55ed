//! Loading the SQL configuration (mailboxes with resolved defaults, tags, public domains,
//! settings) and the reference data that admin commands name (queues, statuses …).

use diesel::prelude::*;

use super::Run;
use super::AnyConnection;
use super::schema::*;
use crate::error::{Error, Result};
use crate::model::{AfterConversion, Allowed, CcOnly, CompanyRef, CompletedTicket, Mailbox, TagRef, UnknownSender, Visibility};
use crate::pipeline::rules::RuleDef;
use crate::pipeline::snapshot::{Exclusion, RefData};
use crate::pipeline::ConfRows;
use crate::pipeline::tags::TagDef;
use crate::notify::template::TemplateSource;
use crate::workflow::RuleRow as WorkflowRow;

/// Ids used when a mailbox leaves a default open.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub queue_id: i64,
    pub priority_id: i64,
    pub status_id: i64,
    pub source_id: i64,
    pub role_id: i64,
    pub work_type_id: i64,
}

fn pick_default(rows: Vec<(i64, bool)>, what: &str) -> Result<i64> {
    rows.iter()
        .find(|(_, d)| *d)
        .or(rows.first())
        .map(|(id, _)| *id)
        .ok_or_else(|| Error::Config(format!("there is no active {what}; add one")))
}

/// The default queue, priority, status and source (the row flagged `is_default`, else the first).
pub fn defaults(conn: &mut AnyConnection) -> Result<Defaults> {
    let q = queues::table
        .filter(queues::active.eq(true))
        .order(queues::id)
        .select((queues::id, queues::is_default))
        .load_on(conn)?;
    let p = priorities::table
        .filter(priorities::active.eq(true))
        .order(priorities::id)
        .select((priorities::id, priorities::is_default))
        .load_on(conn)?;
    let s = statuses::table
        .filter(statuses::active.eq(true))
        .filter(statuses::is_complete.eq(false))
        .order(statuses::id)
        .select((statuses::id, statuses::is_default))
        .load_on(conn)?;
    let src = sources::table
        .filter(sources::active.eq(true))
        .order(sources::id)
        .select((sources::id, sources::is_default))
        .load_on(conn)?;
    let roles_rows = roles::table
        .filter(roles::active.eq(true))
        .order(roles::id)
        .select((roles::id, roles::is_default))
        .load_on(conn)?;
    let wt = work_types::table
        .filter(work_types::active.eq(true))
        .order(work_types::id)
        .select((work_types::id, work_types::is_default))
        .load_on(conn)?;
    Ok(Defaults {
        queue_id: pick_default(q, "queue")?,
        priority_id: pick_default(p, "priority")?,
        status_id: pick_default(s, "open (not complete) status")?,
        source_id: pick_default(src, "ticket source")?,
        role_id: pick_default(roles_rows, "role")?,
        work_type_id: pick_default(wt, "work type")?,
    })
}

type MailboxRow = (
    i64,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    String,
    Option<i64>,
    String,
    String,
);

/// Everything the snapshot is compiled from. Only active mailboxes and tags are loaded.
pub fn load(conn: &mut AnyConnection) -> Result<ConfRows> {
    let mut rows = ConfRows::default();
    let defaults = defaults(conn)?;

    let tag_rows: Vec<(i64, String, bool)> = tags::table
        .order(tags::id)
        .select((tags::id, tags::label, tags::active))
        .load_on(conn)?;
    let alias_rows: Vec<(i64, String)> = tag_aliases::table
        .order(tag_aliases::id)
        .select((tag_aliases::tag_id, tag_aliases::alias))
        .load_on(conn)?;
    rows.tags = tag_rows
        .into_iter()
        .map(|(id, label, active)| TagDef {
            aliases: alias_rows
                .iter()
                .filter(|(t, _)| *t == id)
                .map(|(_, a)| a.clone())
                .collect(),
            tag: TagRef { id, label },
            active,
        })
        .collect();

    let mb_rows: Vec<MailboxRow> = mailboxes::table
        .filter(mailboxes::active.eq(true))
        .order(mailboxes::id)
        .select((
            mailboxes::id,
            mailboxes::address,
            mailboxes::name,
            mailboxes::queue_id,
            mailboxes::priority_id,
            mailboxes::status_id,
            mailboxes::source_id,
            mailboxes::issue_type_id,
            mailboxes::sub_issue_type_id,
            mailboxes::note_visibility,
            mailboxes::fallback_company_id,
            mailboxes::unknown_sender,
            mailboxes::after_conversion,
        ))
        .load_on(conn)?;
    let required: Vec<(i64, i64, String, bool)> = mailbox_tags::table
        .inner_join(tags::table)
        .select((mailbox_tags::mailbox_id, tags::id, tags::label, tags::active))
        .order((mailbox_tags::mailbox_id, tags::id))
        .load_on(conn)?;
    let companies: Vec<(i64, String, bool)> = companies::table
        .select((companies::id, companies::name, companies::active))
        .load_on(conn)?;
    type Handling = (
        i64,
        (bool, bool, bool, bool, bool, bool),
        Option<i64>,
        Option<i64>,
        bool,
        bool,
        bool,
        String,
        String,
        Option<i64>,
        (i64, i64, i64),
        bool,
    );
    let handling: Vec<Handling> = mailboxes::table
        .filter(mailboxes::active.eq(true))
        .select((
            mailboxes::id,
            (
                mailboxes::allow_tickets,
                mailboxes::allow_ticket_notes,
                mailboxes::allow_ticket_time,
                mailboxes::allow_project_notes,
                mailboxes::allow_task_notes,
                mailboxes::allow_task_time,
            ),
            mailboxes::role_id,
            mailboxes::work_type_id,
            mailboxes::create_contacts,
            mailboxes::cc_contacts,
            mailboxes::only_when_to,
            mailboxes::cc_only,
            mailboxes::completed_ticket,
            mailboxes::reopen_status_id,
            (mailboxes::max_attachment_bytes, mailboxes::max_attachments_bytes, mailboxes::inline_image_bytes),
            mailboxes::strip_quotes,
        ))
        .load_on(conn)?;

    for (id, address, name, q, p, s, src, it, sit, vis, fallback, unknown, after) in mb_rows {
        let after_conversion = AfterConversion::parse(&after).unwrap_or_else(|| {
            rows.problems.push(format!(
                "mailbox {address}: after_conversion {after:?} is not deliver, remove or discard; using deliver"
            ));
            AfterConversion::Deliver
        });
        let note_visibility = Visibility::parse(&vis).unwrap_or_else(|| {
            rows.problems.push(format!(
                "mailbox {address}: note_visibility {vis:?} is not internal or all; using internal"
            ));
            Visibility::Internal
        });
        let unknown_sender = UnknownSender::parse(&unknown).unwrap_or_else(|| {
            rows.problems.push(format!(
                "mailbox {address}: unknown_sender {unknown:?} is not fallback or reject; using reject"
            ));
            UnknownSender::Reject
        });
        let fallback_company = fallback.and_then(|cid| {
            match companies.iter().find(|(i, _, _)| *i == cid) {
                Some((i, n, true)) => Some(CompanyRef { id: *i, name: n.clone() }),
                Some((_, n, false)) => {
                    rows.problems.push(format!(
                        "mailbox {address}: fallback company {n:?} is inactive and is not used"
                    ));
                    None
                }
                None => None,
            }
        });
        if fallback_company.is_none() && unknown_sender == UnknownSender::Fallback {
            rows.problems.push(format!(
                "mailbox {address}: unknown senders get tickets without a company (no fallback company is set)"
            ));
        }
        let required_tags = required
            .iter()
            .filter(|(m, _, _, active)| *m == id && *active)
            .map(|(_, tid, label, _)| TagRef {
                id: *tid,
                label: label.clone(),
            })
            .collect();
        let Some((_, allow, role, work_type, create_contacts, cc_contacts, only_when_to, cc_only, completed, reopen, sizes, strip_quotes)) =
            handling.iter().find(|h| h.0 == id).cloned()
        else {
            continue;
        };
        let cc_only = CcOnly::parse(&cc_only).unwrap_or_else(|| {
            rows.problems.push(format!("mailbox {address}: cc_only {cc_only:?} is not note or ignore; using note"));
            CcOnly::Note
        });
        let completed_ticket = CompletedTicket::parse(&completed).unwrap_or_else(|| {
            rows.problems.push(format!("mailbox {address}: completed_ticket {completed:?} is not reopen, note or new; using reopen"));
            CompletedTicket::Reopen
        });
        let size = |v: i64, what: &str, problems: &mut Vec<String>| -> u64 {
            if v < 0 {
                problems.push(format!("mailbox {address}: {what} is negative; using 0"));
            }
            v.max(0) as u64
        };
        let max_attachment_bytes = size(sizes.0, "max_attachment_bytes", &mut rows.problems);
        let max_attachments_bytes = size(sizes.1, "max_attachments_bytes", &mut rows.problems);
        let inline_image_bytes = size(sizes.2, "inline_image_bytes", &mut rows.problems);
        rows.mailboxes.push(Mailbox {
            allowed: Allowed {
                tickets: allow.0,
                ticket_notes: allow.1,
                ticket_time: allow.2,
                project_notes: allow.3,
                task_notes: allow.4,
                task_time: allow.5,
            },
            role_id: role.unwrap_or(defaults.role_id),
            work_type_id: work_type.unwrap_or(defaults.work_type_id),
            create_contacts,
            cc_contacts,
            only_when_to,
            cc_only,
            completed_ticket,
            reopen_status_id: reopen.unwrap_or(defaults.status_id),
            max_attachment_bytes,
            max_attachments_bytes,
            inline_image_bytes,
            strip_quotes,
            id,
            address,
            name,
            queue_id: q.unwrap_or(defaults.queue_id),
            priority_id: p.unwrap_or(defaults.priority_id),
            status_id: s.unwrap_or(defaults.status_id),
            source_id: src.unwrap_or(defaults.source_id),
            issue_type_id: it,
            sub_issue_type_id: sit,
            note_visibility,
            fallback_company,
            unknown_sender,
            required_tags,
            after_conversion,
        });
    }

    rows.public_domains = public_domains::table
        .select(public_domains::domain)
        .load_on(conn)?;
    rows.settings = settings::table
        .order(settings::key)
        .select((settings::key, settings::value))
        .load_on(conn)?;
    rows.refs = ref_data(conn)?;
    rows.exclusions = excluded_senders::table
        .order(excluded_senders::id)
        .select((excluded_senders::pattern, excluded_senders::mailbox_id, excluded_senders::action))
        .load_on::<(String, Option<i64>, String)>(conn)?
        .into_iter()
        .map(|(pattern, mailbox_id, action)| Exclusion {
            pattern: pattern.trim().to_ascii_lowercase(),
            mailbox_id,
            action: action.trim().to_ascii_lowercase(),
        })
        .collect();
    type RuleRow = (i64, Option<i64>, String, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, bool, bool);
    rows.rules = parsing_rules::table
        .filter(parsing_rules::active.eq(true))
        .order((parsing_rules::position, parsing_rules::id))
        .select((
            parsing_rules::id,
            parsing_rules::mailbox_id,
            parsing_rules::field,
            parsing_rules::pattern,
            parsing_rules::set_queue,
            parsing_rules::set_priority,
            parsing_rules::set_status,
            parsing_rules::set_issue_type,
            parsing_rules::set_company,
            parsing_rules::add_tag,
            parsing_rules::ignore_message,
            parsing_rules::stop,
        ))
        .load_on::<RuleRow>(conn)?
        .into_iter()
        .map(|(id, mailbox_id, field, pattern, q, p, s, it, c, t, ignore, stop)| RuleDef {
            id,
            mailbox_id,
            field,
            pattern,
            set_queue: q,
            set_priority: p,
            set_status: s,
            set_issue_type: it,
            set_company: c,
            add_tag: t,
            ignore,
            stop,
        })
        .collect();
    rows.sources = ref_names(conn, RefTable::Source)?;
    rows.templates = notification_templates::table
        .order(notification_templates::id)
        .select((
            notification_templates::id,
            notification_templates::name,
            notification_templates::mailbox_id,
            notification_templates::event,
            notification_templates::subject,
            notification_templates::body_text,
            notification_templates::body_html,
            notification_templates::active,
        ))
        .load_on::<(i64, String, Option<i64>, Option<String>, String, String, Option<String>, bool)>(conn)?
        .into_iter()
        .map(|(id, name, mailbox_id, event, subject, body_text, body_html, active)| TemplateSource {
            id,
            name,
            mailbox_id,
            event,
            subject,
            body_text,
            body_html,
            active,
        })
        .collect();
    rows.workflow = workflow_rows(conn, false)?;
    Ok(rows)
}

/// Workflow rules in evaluation order (`all`: inactive ones too).
pub fn workflow_rows(conn: &mut AnyConnection, all: bool) -> Result<Vec<WorkflowRow>> {
    use workflow_rules as w;
    let mut q = w::table.into_boxed();
    if !all {
        q = q.filter(w::active.eq(true));
    }
    type Conds = (Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<bool>);
    type Acts = (Option<String>, Option<String>, Option<String>, Option<String>, Option<i32>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
    let rows = q
        .order((w::position, w::id))
        .select((
            (w::id, w::position, w::name, w::active, w::on_events),
            (
                w::if_mailbox,
                w::if_queue,
                w::if_priority,
                w::if_status,
                w::if_company,
                w::if_issue_type,
                w::if_tag,
                w::if_sender_domain,
                w::if_subject,
                w::if_body,
                w::if_source,
                w::if_auto,
            ),
            (
                w::set_queue,
                w::set_priority,
                w::set_status,
                w::set_issue_type,
                w::due_in_hours,
                w::assign,
                w::add_tag,
                w::notify_template,
                w::notify_roles,
                w::notify_addresses,
            ),
        ))
        .load::<((i64, i32, String, bool, String), Conds, Acts)>(conn)?;
    Ok(rows
        .into_iter()
        .map(|((id, position, name, active, on_events), c, a)| WorkflowRow {
            id,
            position,
            name,
            active,
            on_events,
            if_mailbox: c.0,
            if_queue: c.1,
            if_priority: c.2,
            if_status: c.3,
            if_company: c.4,
            if_issue_type: c.5,
            if_tag: c.6,
            if_sender_domain: c.7,
            if_subject: c.8,
            if_body: c.9,
            if_source: c.10,
            if_auto: c.11,
            set_queue: a.0,
            set_priority: a.1,
            set_status: a.2,
            set_issue_type: a.3,
            due_in_hours: a.4,
            assign: a.5,
            add_tag: a.6,
            notify_template: a.7,
            notify_roles: a.8,
            notify_addresses: a.9,
        })
        .collect())
}

/// The names of active reference rows.
pub fn ref_data(conn: &mut AnyConnection) -> Result<RefData> {
    Ok(RefData {
        queues: ref_names(conn, RefTable::Queue)?,
        priorities: ref_names(conn, RefTable::Priority)?,
        statuses: statuses::table
            .filter(statuses::active.eq(true))
            .order(statuses::id)
            .select((statuses::id, statuses::name, statuses::is_complete))
            .load_on(conn)?,
        issue_types: ref_names(conn, RefTable::IssueType)?,
        sub_issue_types: sub_issue_types::table
            .filter(sub_issue_types::active.eq(true))
            .order(sub_issue_types::id)
            .select((sub_issue_types::id, sub_issue_types::issue_type_id, sub_issue_types::name))
            .load_on(conn)?,
        roles: ref_names(conn, RefTable::Role)?,
        work_types: ref_names(conn, RefTable::WorkType)?,
    })
}

/// Set a setting (insert or replace).
pub fn set_setting(conn: &mut AnyConnection, key: &str, value: &str) -> Result<()> {
    let updated = diesel::update(settings::table.filter(settings::key.eq(key)))
        .set(settings::value.eq(value))
        .execute_on(conn)?;
    if updated == 0 {
        // In a savepoint: a concurrent writer (another host) inserting the same key first must
        // not abort the caller's transaction; then the value is written over it.
        let inserted = super::savepoint(conn, |c| {
            diesel::insert_into(settings::table)
                .values((settings::key.eq(key), settings::value.eq(value)))
                .execute_on(c)
                .map_err(super::StoreFail::from)
        });
        match inserted {
            Ok(_) => {}
            Err(e) if e.is_unique_violation() => {
                diesel::update(settings::table.filter(settings::key.eq(key))).set(settings::value.eq(value)).execute_on(conn)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reference tables an admin can name: queues, priorities, statuses, sources, issue types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefTable {
    Queue,
    Priority,
    Status,
    Source,
    IssueType,
    Role,
    WorkType,
}

impl RefTable {
    pub fn noun(self) -> &'static str {
        match self {
            RefTable::Queue => "queue",
            RefTable::Priority => "priority",
            RefTable::Status => "status",
            RefTable::Source => "source",
            RefTable::IssueType => "issue type",
            RefTable::Role => "role",
            RefTable::WorkType => "work type",
        }
    }
}

/// Active rows of a reference table as (id, name).
pub fn ref_names(conn: &mut AnyConnection, table: RefTable) -> Result<Vec<(i64, String)>> {
    Ok(match table {
        RefTable::Queue => queues::table
            .filter(queues::active.eq(true))
            .order(queues::id)
            .select((queues::id, queues::name))
            .load_on(conn)?,
        RefTable::Priority => priorities::table
            .filter(priorities::active.eq(true))
            .order(priorities::id)
            .select((priorities::id, priorities::name))
            .load_on(conn)?,
        RefTable::Status => statuses::table
            .filter(statuses::active.eq(true))
            .order(statuses::id)
            .select((statuses::id, statuses::name))
            .load_on(conn)?,
        RefTable::Source => sources::table
            .filter(sources::active.eq(true))
            .order(sources::id)
            .select((sources::id, sources::name))
            .load_on(conn)?,
        RefTable::IssueType => issue_types::table
            .filter(issue_types::active.eq(true))
            .order(issue_types::id)
            .select((issue_types::id, issue_types::name))
            .load_on(conn)?,
        RefTable::Role => roles::table
            .filter(roles::active.eq(true))
            .order(roles::id)
            .select((roles::id, roles::name))
            .load_on(conn)?,
        RefTable::WorkType => work_types::table
            .filter(work_types::active.eq(true))
            .order(work_types::id)
            .select((work_types::id, work_types::name))
            .load_on(conn)?,
    })
}

/// Find an active reference row by name (case-insensitive); the error lists the valid names.
pub fn ref_by_name(conn: &mut AnyConnection, table: RefTable, name: &str) -> Result<i64> {
    let rows = ref_names(conn, table)?;
    rows.iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(id, _)| *id)
        .ok_or_else(|| {
            Error::Usage(format!(
                "no active {} named {name:?} (valid: {})",
                table.noun(),
                rows.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })
}

/// Name of a reference row by id.
pub fn ref_name(conn: &mut AnyConnection, table: RefTable, id: i64) -> Result<Option<String>> {
    Ok(ref_names(conn, table)?
        .into_iter()
        .find(|(i, _)| *i == id)
        .map(|(_, n)| n))
}
