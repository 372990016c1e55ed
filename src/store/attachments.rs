//! Attachments over content-addressed blobs: the same file is stored once, however often sent.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Run;
use super::schema::*;
use super::{AnyConnection, StoreFail, savepoint};
use crate::model::{AttachmentReport, NewAttachment, ObjectKind};
use crate::pipeline::parse::sha256_hex;

/// Store a blob unless a blob with the same hash exists. Safe when two transactions race.
pub fn put_blob(conn: &mut AnyConnection, data: &[u8]) -> Result<String, StoreFail> {
    let hash = sha256_hex(data);
    let exists: i64 = blobs::table
        .filter(blobs::sha256.eq(&hash))
        .count()
        .get_result_on(conn)?;
    if exists == 0 {
        let inserted = savepoint(conn, |c| {
            diesel::insert_into(blobs::table)
                .values((
                    blobs::sha256.eq(&hash),
                    blobs::size.eq(data.len() as i64),
                    blobs::data.eq(data),
                ))
                .execute_on(c)
                .map_err(StoreFail::from)
        });
        match inserted {
            Ok(_) => {}
            Err(e) if e.is_unique_violation() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hash)
}

/// Store the attachments of an object; returns what was stored.
pub fn store_all(
    conn: &mut AnyConnection,
    owner: ObjectKind,
    owner_id: i64,
    files: &[NewAttachment],
    now: NaiveDateTime,
) -> Result<Vec<AttachmentReport>, StoreFail> {
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let hash = put_blob(conn, &f.data)?;
        diesel::insert_into(attachments::table)
            .values((
                attachments::owner_kind.eq(owner.as_str()),
                attachments::owner_id.eq(owner_id),
                attachments::filename.eq(&f.filename),
                attachments::content_type.eq(&f.content_type),
                attachments::size.eq(f.data.len() as i64),
                attachments::sha256.eq(&hash),
                attachments::created_at.eq(now),
            ))
            .execute_on(conn)?;
        out.push(AttachmentReport {
            filename: f.filename.clone(),
            content_type: f.content_type.clone(),
            size: f.data.len() as u64,
        });
    }
    Ok(out)
}
