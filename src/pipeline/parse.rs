//! Raw message bytes -> `Inbound`: decoding with mail-parser, HTML rendered as text, attachments,
//! threading ids and the content hash. Never fails: what cannot be read is noted in `problems`.

use mail_parser::{Address as MpAddress, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use super::html;
use crate::model::{Address, Attachment, Inbound};

/// Header fields kept at most (a message with more keeps the first ones).
const MAX_HEADERS: usize = 500;
/// Longest Message-ID kept verbatim; longer ones are replaced by their hash.
const MAX_MESSAGE_ID: usize = 250;
/// Most In-Reply-To / References ids considered.
const MAX_REFERENCES: usize = 50;

/// Parse a message. `raw` is the message as received (CRLF or LF line ends).
pub fn parse(raw: &[u8]) -> Inbound {
    let raw = skip_mbox_separator(raw);
    let mut inbound = Inbound {
        content_hash: content_hash(raw),
        ..Inbound::default()
    };
    let parsed = MessageParser::default().parse(raw);
    let Some(msg) = parsed.filter(|m| !m.headers().is_empty()) else {
        inbound.problems.push("the message has no header section; kept as plain text".into());
        inbound.text = normalise_text(&String::from_utf8_lossy(raw));
        return inbound;
    };

    inbound.subject = msg.subject().map(collapse_ws).unwrap_or_default();
    inbound.from = first_address(msg.from());
    inbound.reply_to = first_address(msg.reply_to());
    inbound.sender = first_address(msg.sender());
    inbound.resent_from = first_address(msg.resent_from());
    inbound.to = all_addresses(msg.to());
    inbound.cc = all_addresses(msg.cc());
    inbound.message_id = msg.message_id().and_then(normalise_message_id);
    inbound.in_reply_to = id_list(msg.in_reply_to());
    inbound.references = id_list(msg.references());
    inbound.headers = msg
        .headers_raw()
        .take(MAX_HEADERS)
        .map(|(name, value)| (name.to_ascii_lowercase(), unfold(value)))
        .collect();
    if msg.headers().len() > MAX_HEADERS {
        inbound
            .problems
            .push(format!("only the first {MAX_HEADERS} header fields were kept"));
    }
    if inbound.author().is_none() {
        inbound.problems.push("no usable From address".into());
    }

    let (text, html) = bodies(&msg);
    inbound.text = text;
    inbound.html = html;
    inbound.attachments = attachments(&msg);
    inbound
}

/// A leading mbox `From ` line is not part of the message.
fn skip_mbox_separator(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"From ") {
        match raw.iter().position(|&b| b == b'\n') {
            Some(nl) => &raw[nl + 1..],
            None => raw,
        }
    } else {
        raw
    }
}

/// SHA-256 over what a resend of the same message keeps: the originator fields and the body.
/// Trace fields that each hop adds (Received, Return-Path …) are left out, so an MTA retry of
/// a message without Message-ID still maps to the same key.
fn content_hash(raw: &[u8]) -> String {
    let (head, body) = split_header_body(raw);
    let mut h = Sha256::new();
    for name in ["from", "to", "cc", "subject", "date", "sender", "reply-to"] {
        for value in raw_header_values(head, name) {
            h.update(name.as_bytes());
            h.update(b":");
            // Whitespace differences (re-folding, CRLF vs LF) must not change the key.
            h.update(value.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(&b' '));
            h.update(b"\n");
        }
    }
    h.update(b"\n");
    for line in body.split(|&b| b == b'\n') {
        h.update(line.strip_suffix(b"\r").unwrap_or(line));
        h.update(b"\n");
    }
    hex(&h.finalize())
}

/// Split at the first empty line (CRLF or LF).
fn split_header_body(raw: &[u8]) -> (&[u8], &[u8]) {
    let mut i = 0;
    while i < raw.len() {
        let line_end = raw[i..].iter().position(|&b| b == b'\n').map(|p| i + p);
        let Some(end) = line_end else { break };
        let line = &raw[i..end];
        if line.is_empty() || line == b"\r" {
            return (&raw[..i], &raw[end + 1..]);
        }
        i = end + 1;
    }
    (raw, &[])
}

/// The raw (unfolded) values of a header field in a raw header block.
fn raw_header_values<'a>(head: &'a [u8], name: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if let Some(v) = current.as_mut() {
                v.push(b' ');
                v.extend_from_slice(line);
            }
            continue;
        }
        if let Some(v) = current.take() {
            out.push(v);
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            if line[..colon].trim_ascii().eq_ignore_ascii_case(name.as_bytes()) {
                current = Some(line[colon + 1..].to_vec());
            }
        }
    }
    out.extend(current);
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Hex SHA-256 of some bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Collapse runs of whitespace (folding, tabs, CR/LF) to one space and trim.
pub fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

fn unfold(value: &str) -> String {
    collapse_ws(value)
}

fn convert_addr(name: Option<&str>, email: Option<&str>) -> Option<Address> {
    let email = email?.trim().trim_matches(|c| c == '<' || c == '>').trim();
    if email.is_empty() {
        return None;
    }
    let name = name.map(collapse_ws).filter(|n| !n.is_empty());
    Some(Address {
        name,
        email: email.to_string(),
    })
}

fn all_addresses(addr: Option<&MpAddress<'_>>) -> Vec<Address> {
    addr.map(|a| {
        a.iter()
            .filter_map(|x| convert_addr(x.name(), x.address()))
            .collect()
    })
    .unwrap_or_default()
}

fn first_address(addr: Option<&MpAddress<'_>>) -> Option<Address> {
    all_addresses(addr).into_iter().next()
}

/// Strip angle brackets and whitespace; reject empty ids; hash overlong ones.
pub fn normalise_message_id(id: &str) -> Option<String> {
    let id: String = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    if id.is_empty() {
        None
    } else if id.len() > MAX_MESSAGE_ID {
        Some(format!("sha256-{}", sha256_hex(id.as_bytes())))
    } else {
        Some(id)
    }
}

fn id_list(value: &HeaderValue<'_>) -> Vec<String> {
    let ids: Vec<&str> = match value {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.as_ref()).collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for id in ids.into_iter().flat_map(|t| t.split_whitespace()) {
        if let Some(id) = normalise_message_id(id) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        if out.len() >= MAX_REFERENCES * 2 {
            break;
        }
    }
    out
}

/// The message text (text/plain preferred, HTML rendered as text otherwise) and the HTML body.
fn bodies(msg: &Message<'_>) -> (String, Option<String>) {
    let mut text = String::new();
    let mut from_plain = false;
    for part in msg.text_bodies() {
        let piece = match &part.body {
            PartType::Text(t) => {
                from_plain = true;
                t.to_string()
            }
            PartType::Html(h) => html::to_text(h),
            _ => continue,
        };
        push_block(&mut text, &piece);
    }
    let mut html = String::new();
    for part in msg.html_bodies() {
        if let PartType::Html(h) = &part.body {
            if !html.is_empty() {
                html.push('\n');
            }
            html.push_str(h);
        }
    }
    // A text/plain part that is empty while HTML has content (some mailers do this): use the HTML.
    if from_plain && text.trim().is_empty() && !html.trim().is_empty() {
        text = html::to_text(&html);
    }
    let html = (!html.trim().is_empty()).then_some(html);
    (normalise_text(&text), html)
}

fn push_block(out: &mut String, piece: &str) {
    if piece.trim().is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(piece);
}

/// LF line ends, no trailing whitespace on lines, no NULs, no leading/trailing blank lines.
pub fn normalise_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.split('\n') {
        let line = line.trim_end_matches(|c: char| c == '\r' || c.is_whitespace());
        out.extend(line.chars().filter(|c| *c != '\0'));
        out.push('\n');
    }
    let trimmed = out.trim_matches('\n');
    trimmed.to_string()
}

fn attachments(msg: &Message<'_>) -> Vec<Attachment> {
    let mut out = Vec::new();
    for (n, part) in msg.attachments().enumerate() {
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| match &part.body {
                PartType::Message(_) => "message/rfc822".to_string(),
                PartType::Text(_) => "text/plain".to_string(),
                PartType::Html(_) => "text/html".to_string(),
                _ => "application/octet-stream".to_string(),
            })
            .to_ascii_lowercase();
        let filename = part
            .attachment_name()
            .map(sanitize_filename)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_name(part, &content_type, n + 1));
        let inline = part
            .content_disposition()
            .is_some_and(|d| d.is_inline());
        out.push(Attachment {
            filename,
            content_type,
            data: part.contents().to_vec(),
            inline,
            content_id: part.content_id().and_then(normalise_message_id),
        });
    }
    out
}

/// A name for an attachment that has none: a nested message is named after its subject.
fn default_name(part: &mail_parser::MessagePart<'_>, content_type: &str, n: usize) -> String {
    if let PartType::Message(m) = &part.body {
        let subject = m.subject().map(sanitize_filename).unwrap_or_default();
        let stem = if subject.is_empty() { format!("message-{n}") } else { subject };
        return format!("{}.eml", truncate_chars(&stem, 120));
    }
    let ext = match content_type {
        "text/plain" => "txt",
        "text/html" => "html",
        "text/calendar" => "ics",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "application/pdf" => "pdf",
        "message/rfc822" => "eml",
        "message/delivery-status" => "txt",
        _ => "bin",
    };
    format!("attachment-{n}.{ext}")
}

/// Keep the last path component, drop control characters, trim.
pub fn sanitize_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let cleaned = collapse_ws(&cleaned);
    truncate_chars(cleaned.trim_matches('.'), 255)
}

fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_trace_headers_and_line_ends() {
        let a = b"Received: from a\r\nFrom: x@y\r\nSubject: hi\r\n\r\nbody\r\n";
        let b = b"Received: from b\nReceived: from c\nFrom: x@y\nSubject:  hi\n\nbody\n";
        assert_eq!(content_hash(a), content_hash(b));
        let c = b"From: x@y\nSubject: hi\n\nbody2\n";
        assert_ne!(content_hash(a), content_hash(c));
    }

    #[test]
    fn message_ids_are_normalised() {
        assert_eq!(normalise_message_id(" <abc@x> ").as_deref(), Some("abc@x"));
        assert_eq!(normalise_message_id("<>"), None);
        let long = format!("<{}@x>", "a".repeat(400));
        assert!(normalise_message_id(&long).unwrap().starts_with("sha256-"));
    }

    #[test]
    fn references_keep_order_and_drop_duplicates() {
        let m = parse(b"From: a@b\nReferences: <1@x> <2@x>\n <1@x>\nIn-Reply-To: <2@x>\n\nhi\n");
        assert_eq!(m.references, vec!["1@x", "2@x"]);
        assert_eq!(m.in_reply_to, vec!["2@x"]);
    }

    #[test]
    fn headerless_input_becomes_text() {
        let m = parse(b"just some words\nand more");
        assert!(m.subject.is_empty());
        assert!(!m.problems.is_empty());
    }

    #[test]
    fn mbox_separator_is_skipped() {
        let m = parse(b"From someone@x Mon Jan  1 00:00:00 2024\nFrom: a@b.example\nSubject: s\n\nbody\n");
        assert_eq!(m.from.unwrap().email, "a@b.example");
        assert_eq!(m.subject, "s");
    }

    #[test]
    fn filenames_lose_paths_and_controls() {
        assert_eq!(sanitize_filename("C:\\tmp\\a\tb.pdf"), "a b.pdf");
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
    }
}
