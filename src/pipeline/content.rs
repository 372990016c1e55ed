//! What of a message's files is stored: per-file and per-message size limits (files over them
//! are left out and a note says which and why — never silently), and small inline images kept
//! inside the HTML (as data: URIs) instead of as attachments.

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
    /// One sentence per file left out.
    pub dropped: Vec<String>,
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

/// Decide which files are stored and how the HTML refers to inline images.
pub fn select(inbound: &Inbound, limits: Limits) -> Content {
    let mut html = inbound.html.clone();
    let mut content = Content::default();
    let mut total: u64 = 0;
    for att in &inbound.attachments {
        let size = att.data.len() as u64;
        // A small inline image that the HTML shows: keep it there, not as a file.
        if let (Some(cid), Some(h)) = (&att.content_id, html.as_mut()) {
            let reference = format!("cid:{cid}");
            if att.content_type.starts_with("image/") && size <= limits.inline_max && h.contains(&reference) {
                let uri = format!("data:{};base64,{}", att.content_type, base64(&att.data));
                *h = h.replace(&reference, &uri);
                content.inlined += 1;
                continue;
            }
        }
        if size > limits.max_file {
            content.dropped.push(format!(
                "Attachment {:?} ({}) was left out: it is larger than this mailbox's limit of {} per file. The original message is kept.",
                att.filename,
                size_text(size),
                size_text(limits.max_file)
            ));
            continue;
        }
        if total + size > limits.max_total {
            content.dropped.push(format!(
                "Attachment {:?} ({}) was left out: the message's files together exceed this mailbox's limit of {} per message. The original message is kept.",
                att.filename,
                size_text(size),
                size_text(limits.max_total)
            ));
            continue;
        }
        total += size;
        content.attachments.push(NewAttachment {
            filename: att.filename.clone(),
            content_type: att.content_type.clone(),
            data: att.data.clone(),
        });
    }
    content.html = html;
    content
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
}
