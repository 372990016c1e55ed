//! Processed messages: the unique (mailbox, dedup key) record that makes processing exactly-once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Run;
use super::AnyConnection;
use super::schema::*;
use crate::error::Result;
use crate::model::{ObjectKind, ObjectRef, Prior};

/// The earlier processing of the same message for the same mailbox, if any.
pub fn prior(conn: &mut AnyConnection, mailbox_id: i64, dedup_key: &str) -> Result<Option<Prior>> {
    let row: Option<(String, Option<String>, Option<i64>, Option<String>, Option<String>, NaiveDateTime)> =
        processed_messages::table
            .left_join(tickets::table)
            .filter(processed_messages::mailbox_id.eq(mailbox_id))
            .filter(processed_messages::dedup_key.eq(super::index_key(dedup_key)))
            .select((
                processed_messages::outcome,
                processed_messages::object_kind,
                processed_messages::object_id,
                tickets::number.nullable(),
                processed_messages::reason,
                processed_messages::received_at,
            ))
            .load_on(conn)?
            .into_iter()
            .next();
    Ok(row.map(|(outcome, kind, id, ticket_number, reason, received_at)| {
        let object = match (kind.as_deref().and_then(ObjectKind::parse), id) {
            (Some(kind), Some(id)) => Some(ObjectRef {
                kind,
                id,
                number: (kind == ObjectKind::Ticket).then(|| ticket_number.clone()).flatten(),
                ticket_number,
                project_number: None,
                task_number: None,
            }),
            _ => None,
        };
        Prior {
            outcome,
            object,
            reason,
            received_at,
        }
    }))
}

/// One processed-message record.
pub struct Record<'a> {
    pub mailbox_id: i64,
    pub dedup_key: &'a str,
    pub message_id: Option<&'a str>,
    pub queue_id: Option<&'a str>,
    pub envelope_from: &'a str,
    pub envelope_rcpt: &'a str,
    pub outcome: &'a str,
    pub object: Option<(ObjectKind, i64)>,
    pub ticket_id: Option<i64>,
    pub reason: Option<&'a str>,
    pub received_at: NaiveDateTime,
    pub raw: Option<&'a [u8]>,
    pub sender_address: Option<&'a str>,
    pub subject_key: Option<&'a str>,
    pub client_addr: Option<String>,
    pub auth_user: Option<&'a str>,
}

/// Insert the record; a unique violation means the message was processed concurrently.
pub fn insert(conn: &mut AnyConnection, r: &Record<'_>) -> diesel::QueryResult<()> {
    diesel::insert_into(processed_messages::table)
        .values((
            processed_messages::mailbox_id.eq(r.mailbox_id),
            processed_messages::dedup_key.eq(super::index_key(r.dedup_key)),
            processed_messages::message_id.eq(r.message_id.map(super::index_key)),
            processed_messages::queue_id.eq(r.queue_id),
            processed_messages::envelope_from.eq(r.envelope_from),
            processed_messages::envelope_rcpt.eq(r.envelope_rcpt),
            processed_messages::outcome.eq(r.outcome),
            processed_messages::object_kind.eq(r.object.map(|(k, _)| k.as_str())),
            processed_messages::object_id.eq(r.object.map(|(_, id)| id)),
            processed_messages::ticket_id.eq(r.ticket_id),
            processed_messages::reason.eq(r.reason),
            processed_messages::received_at.eq(r.received_at),
            processed_messages::raw.eq(r.raw),
            processed_messages::sender_address.eq(r.sender_address.map(super::index_key)),
            processed_messages::subject_key.eq(r.subject_key.map(super::index_key)),
            processed_messages::client_addr.eq(&r.client_addr),
            processed_messages::auth_user.eq(r.auth_user),
        ))
        .execute_on(conn)
        .map(|_| ())
}
