//! The outbox: notifications queued in the same transaction as the object they are about, and
//! claimed by sender workers with a lease so that no row is sent twice and none is lost when a
//! worker dies (its lease runs out and another worker takes the row).

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::Run;
use super::schema::*;
use super::{AnyConnection, StoreFail};
use crate::error::Result;

/// A notification to queue (one recipient per row: rate limits count per recipient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutbox {
    /// `acknowledgement`, `failure` or `notification`.
    pub kind: String,
    pub mailbox_id: Option<i64>,
    pub ticket_id: Option<i64>,
    pub template_id: Option<i64>,
    pub recipient: String,
    /// MAIL FROM; empty for the null sender `<>` of automatic replies.
    pub envelope_from: String,
    pub from_header: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    /// Extra header fields (`Auto-Submitted`, the loop header …).
    pub headers: Vec<(String, String)>,
    /// Our Message-ID, without angle brackets.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

/// A row claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub envelope_from: String,
    pub from_header: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub headers: Vec<(String, String)>,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// Attempts including the one this claim is for.
    pub attempts: i32,
}

fn encode_headers(h: &[(String, String)]) -> String {
    h.iter()
        .map(|(n, v)| format!("{}: {}\n", n.replace(['\r', '\n', ':'], ""), v.replace(['\r', '\n'], " ")))
        .collect()
}

fn decode_headers(s: &str) -> Vec<(String, String)> {
    s.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .filter(|(n, _)| !n.is_empty())
        .collect()
}

/// Queue a notification; returns its row id.
pub fn insert(conn: &mut AnyConnection, n: &NewOutbox, now: NaiveDateTime) -> Result<i64, StoreFail> {
    Ok(diesel::insert_into(outbox::table)
        .values((
            outbox::mailbox_id.eq(n.mailbox_id),
            outbox::ticket_id.eq(n.ticket_id),
            outbox::template_id.eq(n.template_id),
            outbox::kind.eq(&n.kind),
            outbox::recipients.eq(&n.recipient),
            outbox::envelope_from.eq(&n.envelope_from),
            outbox::from_header.eq(&n.from_header),
            outbox::subject.eq(&n.subject),
            outbox::body_text.eq(&n.body_text),
            outbox::body_html.eq(&n.body_html),
            outbox::headers.eq(encode_headers(&n.headers)),
            outbox::message_id.eq(&n.message_id),
            outbox::in_reply_to.eq(&n.in_reply_to),
            outbox::references_ids.eq((!n.references.is_empty()).then(|| n.references.join(" "))),
            outbox::status.eq("queued"),
            outbox::attempts.eq(0),
            outbox::next_try_at.eq(now),
            outbox::created_at.eq(now),
        ))
        .returning(outbox::id)
        .get_result_on(conn)?)
}

/// Notifications queued to a recipient since `since` (the rate limit counts them).
pub fn count_recent_to(conn: &mut AnyConnection, recipient: &str, since: NaiveDateTime) -> Result<i64> {
    Ok(outbox::table
        .filter(outbox::recipients.eq(recipient.to_ascii_lowercase()))
        .filter(outbox::created_at.ge(since))
        .count()
        .get_result_on(conn)?)
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    i32,
);

/// Claim up to `limit` due rows: queued ones whose time has come, and rows whose previous
/// claim ran out (a worker that died). Runs inside the caller's transaction; on PostgreSQL the
/// candidate rows are locked with `FOR UPDATE SKIP LOCKED`, so concurrent workers on several
/// hosts never take the same row.
pub fn claim(conn: &mut AnyConnection, now: NaiveDateTime, lease: Duration, limit: i64) -> Result<Vec<OutboxRow>> {
    let due = outbox::status
        .eq("queued")
        .and(outbox::next_try_at.le(now))
        .or(outbox::status.eq("sending").and(outbox::claimed_until.le(now)));
    let ids: Vec<i64> = match conn {
        AnyConnection::Postgres(pg) => outbox::table
            .filter(due)
            .order(outbox::id)
            .select(outbox::id)
            .limit(limit)
            .for_update()
            .skip_locked()
            .load(pg)?,
        AnyConnection::Sqlite(sq) => outbox::table.filter(due).order(outbox::id).select(outbox::id).limit(limit).load(sq)?,
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
        .set((
            outbox::status.eq("sending"),
            outbox::claimed_until.eq(Some(now + lease)),
            outbox::attempts.eq(outbox::attempts + 1),
        ))
        .execute_on(conn)?;
    let rows: Vec<Row> = outbox::table
        .filter(outbox::id.eq_any(&ids))
        .order(outbox::id)
        .select((
            outbox::id,
            outbox::kind,
            outbox::recipients,
            outbox::envelope_from,
            outbox::from_header,
            outbox::subject,
            outbox::body_text,
            outbox::body_html,
            outbox::headers,
            outbox::message_id,
            outbox::in_reply_to,
            outbox::references_ids,
            outbox::attempts,
        ))
        .load_on(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, kind, recipient, envelope_from, from_header, subject, body_text, body_html, headers, message_id, in_reply_to, refs, attempts)| OutboxRow {
            id,
            kind,
            recipient,
            envelope_from,
            from_header,
            subject,
            body_text,
            body_html,
            headers: decode_headers(&headers),
            message_id,
            in_reply_to,
            references: refs.map(|r| r.split_whitespace().map(String::from).collect()).unwrap_or_default(),
            attempts,
        })
        .collect())
}

/// The row was delivered.
pub fn mark_sent(conn: &mut AnyConnection, id: i64, now: NaiveDateTime) -> Result<()> {
    diesel::update(outbox::table.filter(outbox::id.eq(id)))
        .set((outbox::status.eq("sent"), outbox::sent_at.eq(Some(now)), outbox::claimed_until.eq(None::<NaiveDateTime>), outbox::last_error.eq(None::<String>)))
        .execute_on(conn)?;
    Ok(())
}

/// A transient failure: try again at `next_try`.
pub fn mark_retry(conn: &mut AnyConnection, id: i64, next_try: NaiveDateTime, error: &str) -> Result<()> {
    diesel::update(outbox::table.filter(outbox::id.eq(id)))
        .set((
            outbox::status.eq("queued"),
            outbox::next_try_at.eq(next_try),
            outbox::claimed_until.eq(None::<NaiveDateTime>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute_on(conn)?;
    Ok(())
}

/// A permanent failure (or too many attempts): the row is not tried again.
pub fn mark_failed(conn: &mut AnyConnection, id: i64, error: &str) -> Result<()> {
    diesel::update(outbox::table.filter(outbox::id.eq(id)))
        .set((outbox::status.eq("failed"), outbox::claimed_until.eq(None::<NaiveDateTime>), outbox::last_error.eq(Some(error))))
        .execute_on(conn)?;
    Ok(())
}

/// `message_id <> ''`, the condition of the partial unique index `outbox_message_id`, written out
/// literally beside `message_id = ?`: a planner uses a partial index only when the query states
/// its condition (a bound value proves nothing to a plan made before binding), and without the
/// index each lookup by Message-ID reads the whole outbox.
fn has_message_id() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>("message_id <> ''")
}

/// A bounce came back for one of our notifications: mark it failed with the bounce's reason.
/// Returns whether a row carried that Message-ID.
pub fn fail_by_message_id(conn: &mut AnyConnection, message_id: &str, reason: &str) -> Result<bool, StoreFail> {
    let n = diesel::update(outbox::table.filter(outbox::message_id.eq(message_id)).filter(has_message_id()))
        .set((outbox::status.eq("failed"), outbox::claimed_until.eq(None::<NaiveDateTime>), outbox::last_error.eq(Some(reason))))
        .execute_on(conn)?;
    Ok(n > 0)
}

/// An outbox row as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxView {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub recipient: String,
    pub subject: String,
    pub attempts: i32,
    pub created_at: String,
    pub next_try_at: String,
    pub last_error: Option<String>,
}

/// Rows for listing, newest first, optionally of one status.
pub fn list(conn: &mut AnyConnection, status: Option<&str>, limit: i64) -> Result<Vec<OutboxView>> {
    type V = (i64, String, String, String, String, i32, NaiveDateTime, NaiveDateTime, Option<String>);
    let q = outbox::table
        .order(outbox::id.desc())
        .limit(limit)
        .select((
            outbox::id,
            outbox::kind,
            outbox::status,
            outbox::recipients,
            outbox::subject,
            outbox::attempts,
            outbox::created_at,
            outbox::next_try_at,
            outbox::last_error,
        ));
    let rows: Vec<V> = match status {
        Some(s) => q.filter(outbox::status.eq(s)).load_on(conn)?,
        None => q.load_on(conn)?,
    };
    Ok(rows
        .into_iter()
        .map(|(id, kind, status, recipient, subject, attempts, created, next, last_error)| OutboxView {
            id,
            kind,
            status,
            recipient,
            subject,
            attempts,
            created_at: created.format("%Y-%m-%d %H:%M:%S").to_string(),
            next_try_at: next.format("%Y-%m-%d %H:%M:%S").to_string(),
            last_error,
        })
        .collect())
}

/// Queue failed rows again (one, or all failed ones); returns how many.
pub fn retry(conn: &mut AnyConnection, id: Option<i64>, now: NaiveDateTime) -> Result<usize> {
    let target = outbox::table.filter(outbox::status.eq("failed"));
    let set = (outbox::status.eq("queued"), outbox::next_try_at.eq(now), outbox::attempts.eq(0));
    Ok(match id {
        Some(id) => diesel::update(target.filter(outbox::id.eq(id))).set(set).execute_on(conn)?,
        None => diesel::update(target).set(set).execute_on(conn)?,
    })
}

/// Delete sent and failed rows created before `before`; returns how many.
pub fn purge(conn: &mut AnyConnection, before: NaiveDateTime) -> Result<usize> {
    Ok(diesel::delete(
        outbox::table
            .filter(outbox::status.eq("sent").or(outbox::status.eq("failed")))
            .filter(outbox::created_at.lt(before)),
    )
    .execute_on(conn)?)
}

/// How many rows are queued (backlog) and failed.
pub fn counts(conn: &mut AnyConnection) -> Result<(i64, i64)> {
    let queued: i64 = outbox::table.filter(outbox::status.eq("queued").or(outbox::status.eq("sending"))).count().get_result_on(conn)?;
    let failed: i64 = outbox::table.filter(outbox::status.eq("failed")).count().get_result_on(conn)?;
    Ok((queued, failed))
}

/// Whether a notification with this Message-ID is queued already (failure notices of a message
/// retried by the MTA are queued once).
pub fn exists_message_id(conn: &mut AnyConnection, message_id: &str) -> Result<bool, StoreFail> {
    let n: i64 = outbox::table.filter(outbox::message_id.eq(message_id)).filter(has_message_id()).count().get_result_on(conn)?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::plans;

    /// Bounces and repeated failure notices find their outbox row by Message-ID through the
    /// index, not by reading the whole outbox.
    #[test]
    fn rows_are_found_by_message_id_through_the_index() {
        let (_dir, store) = plans::store();
        let exists = outbox::table.filter(outbox::message_id.eq("m@x")).filter(has_message_id()).count();
        plans::assert_uses(&store, &exists, "outbox", "outbox_message_id");
        let fail = diesel::update(outbox::table.filter(outbox::message_id.eq("m@x")).filter(has_message_id()))
            .set(outbox::status.eq("failed"));
        plans::assert_uses(&store, &fail, "outbox", "outbox_message_id");
        // Without the literal condition, SQLite reads every row.
        let plain = outbox::table.filter(outbox::message_id.eq("m@x")).count();
        assert!(plans::of(&store, &plain).iter().any(|d| d.starts_with("SCAN outbox")));
    }
}
