//! Tags and their aliases: admin commands (the matcher itself is compiled in the pipeline).

use diesel::prelude::*;

use super::Run;
use super::AnyConnection;
use super::schema::*;
use super::sqlfn::lower;
use crate::error::{Error, Result};
use crate::model::TagRef;

/// An active or inactive tag by label (case-insensitive).
pub fn tag_by_label(conn: &mut AnyConnection, label: &str) -> Result<Option<TagRef>> {
    let row: Option<(i64, String)> = tags::table
        .filter(lower(tags::label).eq(lower(label.trim())))
        .select((tags::id, tags::label))
        .first_on(conn)
        .optional()?;
    Ok(row.map(|(id, label)| TagRef { id, label }))
}

/// Add a tag with aliases, or add aliases to an existing tag. Returns the tag id.
pub fn add_tag(conn: &mut AnyConnection, label: &str, aliases: &[String]) -> Result<i64> {
    let label = label.trim();
    if label.is_empty() {
        return Err(Error::Usage("a tag needs a label".into()));
    }
    let id = match tag_by_label(conn, label)? {
        Some(t) => t.id,
        None => diesel::insert_into(tags::table)
            .values((tags::label.eq(label), tags::active.eq(true)))
            .returning(tags::id)
            .get_result_on(conn)?,
    };
    for alias in aliases.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
        let exists: i64 = tag_aliases::table
            .filter(tag_aliases::tag_id.eq(id))
            .filter(lower(tag_aliases::alias).eq(lower(alias)))
            .count()
            .get_result_on(conn)?;
        if exists == 0 {
            diesel::insert_into(tag_aliases::table)
                .values((tag_aliases::tag_id.eq(id), tag_aliases::alias.eq(alias)))
                .execute_on(conn)?;
        }
    }
    Ok(id)
}

/// Tags for listing: id, label, active, aliases.
pub fn list_tags(conn: &mut AnyConnection) -> Result<Vec<(i64, String, bool, Vec<String>)>> {
    let rows: Vec<(i64, String, bool)> = tags::table
        .order(lower(tags::label))
        .select((tags::id, tags::label, tags::active))
        .load_on(conn)?;
    let aliases: Vec<(i64, String)> = tag_aliases::table
        .order(tag_aliases::id)
        .select((tag_aliases::tag_id, tag_aliases::alias))
        .load_on(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, label, active)| {
            let a = aliases.iter().filter(|(t, _)| *t == id).map(|(_, a)| a.clone()).collect();
            (id, label, active, a)
        })
        .collect())
}
