//! Stored messages: the processed-message records as an admin sees them (`messages list`,
//! `show`), their raw text for reprocessing, the loop-guard count, and the retention purge.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Run;
use super::AnyConnection;
use super::schema::*;
use crate::error::Result;

/// A processed message as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MessageView {
    pub id: i64,
    pub received_at: String,
    pub mailbox: String,
    pub queue_id: Option<String>,
    pub envelope_from: String,
    pub envelope_rcpt: String,
    pub message_id: Option<String>,
    pub outcome: String,
    pub ticket: Option<String>,
    pub reason: Option<String>,
    pub raw_size: Option<i64>,
    #[serde(skip)]
    pub received_at_utc: NaiveDateTime,
    pub client_addr: Option<String>,
    pub auth_user: Option<String>,
}

type Row = (i64, NaiveDateTime, String, Option<String>, String, String, Option<String>, String, Option<String>, Option<String>, Option<i64>, (Option<String>, Option<String>));

fn view((id, at, mailbox, qid, from, rcpt, mid, outcome, ticket, reason, size, (client_addr, auth_user)): Row) -> MessageView {
    MessageView {
        received_at_utc: at,
        client_addr,
        auth_user,
        id,
        received_at: at.format("%Y-%m-%d %H:%M:%S").to_string(),
        mailbox,
        queue_id: qid,
        envelope_from: from,
        envelope_rcpt: rcpt,
        message_id: mid,
        outcome,
        ticket,
        reason,
        raw_size: size,
    }
}

macro_rules! message_query {
    () => {
        processed_messages::table
            .inner_join(mailboxes::table)
            .left_join(tickets::table)
            .select((
                processed_messages::id,
                processed_messages::received_at,
                mailboxes::address,
                processed_messages::queue_id,
                processed_messages::envelope_from,
                processed_messages::envelope_rcpt,
                processed_messages::message_id,
                processed_messages::outcome,
                tickets::number.nullable(),
                processed_messages::reason,
                diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>>("CAST(length(processed_messages.raw) AS BIGINT)"),
                (processed_messages::client_addr, processed_messages::auth_user),
            ))
    };
}

/// The most recent processed messages, optionally of one outcome.
pub fn list(conn: &mut AnyConnection, outcome: Option<&str>, limit: i64) -> Result<Vec<MessageView>> {
    let rows: Vec<Row> = match outcome {
        Some(o) => message_query!()
            .filter(processed_messages::outcome.eq(o))
            .order(processed_messages::id.desc())
            .limit(limit)
            .load_on(conn)?,
        None => message_query!().order(processed_messages::id.desc()).limit(limit).load_on(conn)?,
    };
    Ok(rows.into_iter().map(view).collect())
}

/// One processed message with its raw text (if still kept).
pub fn get(conn: &mut AnyConnection, id: i64) -> Result<Option<(MessageView, Option<Vec<u8>>)>> {
    let row: Option<Row> = message_query!().filter(processed_messages::id.eq(id)).first_on(conn).optional()?;
    let Some(row) = row else { return Ok(None) };
    let raw: Option<Vec<u8>> = processed_messages::table.find(id).select(processed_messages::raw).first_on(conn)?;
    Ok(Some((view(row), raw)))
}

/// Forget a processed-message record (before it is reprocessed, in the same transaction).
pub fn delete(conn: &mut AnyConnection, id: i64) -> Result<()> {
    diesel::delete(processed_messages::table.filter(processed_messages::id.eq(id))).execute_on(conn)?;
    Ok(())
}

/// Messages from a sender with a normalised subject since a time (the loop guard).
pub fn count_recent(conn: &mut AnyConnection, sender: &str, subject_key: &str, since: NaiveDateTime) -> Result<i64> {
    Ok(processed_messages::table
        .filter(processed_messages::sender_address.eq(super::index_key(&sender.to_ascii_lowercase()).into_owned()))
        .filter(processed_messages::subject_key.eq(super::index_key(subject_key)))
        .filter(processed_messages::received_at.ge(since))
        .count()
        .get_result_on(conn)?)
}

/// Drop the raw text of messages received before `before`; the records stay (they keep
/// processing exactly-once). Returns how many were purged.
pub fn purge_raw(conn: &mut AnyConnection, before: NaiveDateTime) -> Result<usize> {
    Ok(diesel::update(
        processed_messages::table
            .filter(processed_messages::received_at.lt(before))
            .filter(processed_messages::raw.is_not_null()),
    )
    .set(processed_messages::raw.eq(None::<Vec<u8>>))
    .execute_on(conn)?)
}
