//! What of a message's files is stored: per-file and per-message size limits (files over them
//! are left out and a note says which and why — never silently), and small inline images kept
//! inside the HTML (as data: URIs) instead of as attachments.

use std::collections::{HashMap, HashSet};

use crate::model::{Inbound, NewAttachment};

/// The limits of a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single file stored.
    pub max_file: u64,
    /// Most bytes of files stored per message.
    pub max_total: u64,
    /// Inline images (referenced by `cid:` from the HTML) up to this size stay in the HTML.
    pub inline_max: u64,
}

/// The files and HTML to store.
#[derive(Debug, Clone, Default)]
pub struct Content {
    pub attachments: Vec<NewAttachment>,
    pub html: Option<String>,
    /// One sentence per file left out (the first `MAX_DROP_NOTES`; one more counts the rest).
    pub dropped: Vec<String>,
    /// How many files were left out.
    pub left_out: usize,
    /// Inline images kept in the HTML.
    pub inlined: usize,
}

fn size_text(n: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if n >= 1024 * 1024 {
        format!("{:.1} MB", n as f64 / MB)
    } else {
        format!("{:.0} KB", (n as f64 / 1024.0).ceil())
    }
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

/// Most files stored from one message; the rest are left out with one sentence for them all.
/// (Mail with more is a flood of parts, not a help-desk message; each file is a row.)
pub const MAX_FILES: usize = 1000;

/// Files left out that the note names one by one; one more sentence counts the rest.
const MAX_DROP_NOTES: usize = 20;

/// Decide which files are stored and how the HTML refers to inline images.
pub fn select(inbound: &Inbound, limits: Limits) -> Content {
    let mut content = Content::default();
    // The Content-IDs the HTML refers to (`cid:ID`), found in one pass over it.
    let referenced: HashSet<&str> = inbound.html.as_deref().map(|h| cid_references(h).map(|(_, id)| id).collect()).unwrap_or_default();
    let mut inline: HashMap<&str, String> = HashMap::new();
    let mut total: u64 = 0;
    // Files left out beyond the ones named one by one.
    let mut unnamed = 0usize;
    for att in &inbound.attachments {
        let size = att.data.len() as u64;
        // A small inline image that the HTML shows: keep it there, not as a file.
        if let Some(cid) = att.content_id.as_deref()
            && att.content_type.starts_with("image/")
            && size <= limits.inline_max
            && referenced.contains(cid)
            && !inline.contains_key(cid)
        {
            inline.insert(cid, format!("data:{};base64,{}", att.content_type, base64(&att.data)));
            content.inlined += 1;
            continue;
        }
        let why = if size > limits.max_file {
            Some(format!("it is larger than this mailbox's limit of {} per file", size_text(limits.max_file)))
        } else if total + size > limits.max_total {
            Some(format!("the message's files together exceed this mailbox's limit of {} per message", size_text(limits.max_total)))
        } else if content.attachments.len() == MAX_FILES {
            Some(format!("a message keeps at most {MAX_FILES} files"))
        } else {
            None
        };
        if let Some(why) = why {
            content.left_out += 1;
            if content.dropped.len() < MAX_DROP_NOTES {
                content.dropped.push(format!(
                    "Attachment {:?} ({}) was left out: {why}. The original message is kept.",
                    att.filename,
                    size_text(size)
                ));
            } else {
                unnamed += 1;
            }
            continue;
        }
        total += size;
        content.attachments.push(NewAttachment {
            filename: att.filename.clone(),
            content_type: att.content_type.clone(),
            data: att.data.clone(),
        });
    }
    if unnamed > 0 {
        content.dropped.push(format!("{unnamed} more attachment(s) were left out for the same reasons. The original message is kept."));
    }
    content.html = inbound.html.as_deref().map(|h| with_inline_images(h, &inline));
    content
}

/// Each `cid:ID` in `html`: where it starts and the ID (up to a quote, white space, `>`, `<` or
/// `)`, as it stands in an attribute or a CSS `url()`).
fn cid_references(html: &str) -> impl Iterator<Item = (usize, &str)> {
    html.match_indices("cid:").map(move |(at, _)| {
        let rest = &html[at + 4..];
        let end = rest.find(|c: char| matches!(c, '"' | '\'' | '>' | '<' | ')') || c.is_whitespace()).unwrap_or(rest.len());
        (at, &rest[..end])
    })
}

/// `html` with every `cid:ID` of an inlined image replaced by its data URI, in one pass.
fn with_inline_images(html: &str, inline: &HashMap<&str, String>) -> String {
    if inline.is_empty() {
        return html.to_string();
    }
    let mut out = String::with_capacity(html.len() + inline.values().map(String::len).sum::<usize>());
    let mut copied = 0;
    for (at, id) in cid_references(html) {
        if let Some(uri) = inline.get(id) {
            out.push_str(&html[copied..at]);
            out.push_str(uri);
            copied = at + 4 + id.len();
        }
    }
    out.push_str(&html[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attachment;

    fn att(name: &str, ct: &str, size: usize, cid: Option<&str>) -> Attachment {
        Attachment {
            filename: name.into(),
            content_type: ct.into(),
            data: vec![7u8; size],
            inline: cid.is_some(),
            content_id: cid.map(String::from),
        }
    }

    const LIMITS: Limits = Limits { max_file: 5 * 1024 * 1024, max_total: 10 * 1024 * 1024, inline_max: 20 * 1024 };

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn files_over_the_limits_are_left_out_with_a_note() {
        let inb = Inbound {
            attachments: vec![
                att("a.pdf", "application/pdf", 1024, None),
                att("huge.iso", "application/octet-stream", 6 * 1024 * 1024, None),
                att("b.zip", "application/zip", 4 * 1024 * 1024, None),
                att("c.zip", "application/zip", 4 * 1024 * 1024, None),
                att("d.zip", "application/zip", 4 * 1024 * 1024, None),
            ],
            ..Inbound::default()
        };
        let c = select(&inb, LIMITS);
        let kept: Vec<&str> = c.attachments.iter().map(|a| a.filename.as_str()).collect();
        assert_eq!(kept, ["a.pdf", "b.zip", "c.zip"]);
        assert_eq!(c.dropped.len(), 2);
        assert!(c.dropped[0].contains("\"huge.iso\" (6.0 MB)") && c.dropped[0].contains("5.0 MB per file"), "{:?}", c.dropped);
        assert!(c.dropped[1].contains("\"d.zip\"") && c.dropped[1].contains("10.0 MB per message"), "{:?}", c.dropped);
    }

    #[test]
    fn small_inline_images_stay_in_the_html_large_ones_become_files() {
        let inb = Inbound {
            html: Some("<p><img src=\"cid:logo@x\"> <img src=\"cid:photo@x\"></p>".into()),
            attachments: vec![
                att("logo.png", "image/png", 3, Some("logo@x")),
                att("photo.jpg", "image/jpeg", 50 * 1024, Some("photo@x")),
                att("unreferenced.png", "image/png", 3, Some("other@x")),
            ],
            ..Inbound::default()
        };
        let c = select(&inb, LIMITS);
        let html = c.html.unwrap();
        assert!(html.contains("src=\"data:image/png;base64,BwcH\""), "{html}");
        assert!(html.contains("cid:photo@x"), "{html}");
        let kept: Vec<&str> = c.attachments.iter().map(|a| a.filename.as_str()).collect();
        assert_eq!(kept, ["photo.jpg", "unreferenced.png"]);
        assert_eq!(c.inlined, 1);
    }

    #[test]
    fn inline_images_are_matched_by_whole_id_and_replaced_in_one_pass() {
        // Twenty thousand inline images (a flood of parts): each reference replaced, in linear
        // time; an ID that only starts like another one is not it; the same ID twice: the
        // first image is shown, the second is a file.
        let n = 20_000;
        let mut html: String = (0..n).map(|i| format!("<img src=\"cid:i{i}@x\">")).collect();
        html.push_str("<img src='cid:i1@xy'> <div style=\"background:url(cid:i2@x)\">");
        let mut attachments: Vec<Attachment> = (0..n).map(|i| att(&format!("i{i}.png"), "image/png", 3, Some(&format!("i{i}@x")))).collect();
        attachments.push(att("again.png", "image/png", 3, Some("i5@x")));
        let inb = Inbound { html: Some(html), attachments, ..Inbound::default() };
        let c = select(&inb, Limits { max_total: u64::MAX, ..LIMITS });
        assert_eq!(c.inlined, n);
        let html = c.html.unwrap();
        assert_eq!(html.matches("data:image/png;base64,BwcH").count(), n + 1, "the url() one too");
        assert!(html.contains("<img src='cid:i1@xy'>"), "not an inlined ID: left as it is");
        assert_eq!(c.attachments.iter().map(|a| a.filename.as_str()).collect::<Vec<_>>(), ["again.png"]);
    }

    #[test]
    fn at_most_max_files_are_stored_and_the_note_stays_short() {
        let inb = Inbound {
            attachments: (0..MAX_FILES + 250).map(|i| att(&format!("f{i}.bin"), "application/octet-stream", 1, None)).collect(),
            ..Inbound::default()
        };
        let c = select(&inb, LIMITS);
        assert_eq!(c.attachments.len(), MAX_FILES);
        assert_eq!(c.attachments.last().map(|a| a.filename.as_str()), Some("f999.bin"));
        // Twenty named, one sentence for the other 230.
        assert_eq!(c.dropped.len(), MAX_DROP_NOTES + 1, "{:?}", c.dropped);
        assert!(c.dropped[0].starts_with("Attachment \"f1000.bin\" (1 KB) was left out: a message keeps at most 1000 files."), "{:?}", c.dropped);
        assert_eq!(c.left_out, 250);
        assert_eq!(c.dropped[MAX_DROP_NOTES], "230 more attachment(s) were left out for the same reasons. The original message is kept.");
    }
}
