//! Raw message bytes -> `Inbound`: decoding with mail-parser, HTML rendered as text, attachments,
//! threading ids and the content hash. Never fails: what cannot be read is noted in `problems`.

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{
    Address as MpAddress, Encoding, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};
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
    // A panic inside the parsers (mail-parser, html2text) must not cost the message: it is then
    // kept as plain text. mail-parser 0.11.9 has such a panic in builds with debug assertions:
    // a multipart part holding a message/rfc822 whose body is another, empty one.
    std::panic::catch_unwind(|| parse_message(raw)).unwrap_or_else(|_| {
        plain_text(raw, "the message could not be parsed as MIME (the parser failed); kept as plain text")
    })
}

/// The message as one plain text, with a note why.
fn plain_text(raw: &[u8], problem: &str) -> Inbound {
    Inbound {
        content_hash: content_hash(raw),
        text: normalise_text(&String::from_utf8_lossy(raw)),
        problems: vec![problem.to_string()],
        ..Inbound::default()
    }
}

/// mail-parser's reading of `raw`, with the MIME structure mended first where mail clients read
/// it otherwise than mail-parser does (see `needed_mend`): the message, and what was mended.
/// `mended` keeps the mended bytes that the message then borrows.
pub(crate) fn parse_mime<'a>(raw: &'a [u8], mended: &'a mut Option<Vec<u8>>) -> (Option<Parsed<'a>>, Vec<&'static str>) {
    let (raw, mut why) = match part_lines_cut(raw) {
        Some(cut) => (&raw[..cut], vec!["the message has more than 10,000 MIME part delimiters and Content-Type fields; only the parts before them were read, the original message is kept"]),
        None => (raw, Vec::new()),
    };
    let parsed = Parsed::of(raw);
    match parsed.as_deref().and_then(needed_mend) {
        Some(first) => {
            let (bytes, mends) = mend(raw, first);
            why.extend(mends);
            (Parsed::of(mended.insert(bytes)), why)
        }
        None => (parsed, why),
    }
}

/// Lines that may open a MIME part — starting with `--` (a delimiter) or a `Content-Type:`
/// field (an attached message nests one more level with each) — read at most from one
/// message. mail-parser keeps a few hundred bytes per part: a message of tiny parts took 23
/// times its size in memory, one of messages attached to messages 35 times. Help-desk mail
/// comes nowhere near; a flood of parts is cut here.
const MAX_PART_LINES: usize = 10_000;

/// Where `raw` is cut when it has more than `MAX_PART_LINES` lines that may open a part: at the
/// start of the first line over the limit.
fn part_lines_cut(raw: &[u8]) -> Option<usize> {
    // Each such line takes three bytes at least ("\n--"): a shorter message has too few.
    if raw.len() <= 3 * MAX_PART_LINES {
        return None;
    }
    let mut seen = 0;
    for nl in memchr::memchr_iter(b'\n', raw) {
        let line = &raw[nl + 1..];
        let opens = match line.first() {
            Some(b'-') => line.get(1) == Some(&b'-'),
            Some(b'c' | b'C') => line.get(..13).is_some_and(|l| l.eq_ignore_ascii_case(b"content-type:")),
            _ => false,
        };
        if opens {
            seen += 1;
            if seen > MAX_PART_LINES {
                return Some(nl + 1);
            }
        }
    }
    None
}

/// A message as mail-parser reads it, dropped level by level. mail-parser keeps an attached
/// message (message/rfc822) inside the part carrying it, and dropping a message attached to a
/// message attached to … takes a stack frame per level: a few megabytes of such nesting
/// overflowed the stack of the thread parsing it, and took the daemon down.
pub(crate) struct Parsed<'x>(Message<'x>);

impl<'x> Parsed<'x> {
    fn of(raw: &'x [u8]) -> Option<Parsed<'x>> {
        MessageParser::default().parse(raw).map(Parsed)
    }
}

impl<'x> std::ops::Deref for Parsed<'x> {
    type Target = Message<'x>;
    fn deref(&self) -> &Message<'x> {
        &self.0
    }
}

impl Drop for Parsed<'_> {
    fn drop(&mut self) {
        // Each attached message is taken out of its part before its carrier is dropped, so that
        // no drop goes deeper than one level.
        fn take<'x>(m: &mut Message<'x>, into: &mut Vec<Message<'x>>) {
            for part in &mut m.parts {
                if matches!(part.body, PartType::Message(_))
                    && let PartType::Message(inner) = std::mem::replace(&mut part.body, PartType::Binary(Default::default()))
                {
                    into.push(inner);
                }
            }
        }
        let mut attached = Vec::new();
        take(&mut self.0, &mut attached);
        while let Some(mut m) = attached.pop() {
            take(&mut m, &mut attached);
        }
    }
}

fn parse_message(raw: &[u8]) -> Inbound {
    let mut mended = None;
    let (parsed, mends) = parse_mime(raw, &mut mended);
    let problems = mends.into_iter().map(String::from).collect();
    let Some(msg) = parsed.filter(|m| !m.headers().is_empty()) else {
        return plain_text(raw, "the message has no header section; kept as plain text");
    };
    let mut inbound = Inbound {
        content_hash: content_hash(raw),
        problems,
        ..Inbound::default()
    };

    let fallback_charset = declared_charset(&msg);
    inbound.subject = match raw_header_bytes(&msg, HeaderName::Subject) {
        // Raw 8-bit bytes that are not UTF-8: decode them in the message's charset instead of
        // letting them turn into replacement characters.
        Some(bytes) if std::str::from_utf8(bytes).is_err() => collapse_ws(&decode_8bit(bytes, fallback_charset.as_deref())),
        _ => msg.subject().map(collapse_ws).unwrap_or_default(),
    };
    inbound.from = first_address(msg.from());
    inbound.reply_to = first_address(msg.reply_to());
    inbound.sender = first_address(msg.sender());
    inbound.resent_from = first_address(msg.resent_from());
    inbound.to = all_addresses(msg.to());
    inbound.cc = all_addresses(msg.cc());
    inbound.message_id = msg.message_id().and_then(normalise_message_id);
    inbound.in_reply_to = id_list(msg.in_reply_to());
    inbound.references = id_list(msg.references());
    let raw_msg = msg.raw_message();
    inbound.headers = msg.parts[0]
        .headers
        .iter()
        .take(MAX_HEADERS)
        .map(|h| {
            let bytes = raw_msg.get(h.offset_start as usize..h.offset_end as usize).unwrap_or_default();
            (h.name.as_str().to_ascii_lowercase(), unfold(&decode_8bit(bytes, fallback_charset.as_deref())))
        })
        .collect();
    if msg.headers().len() > MAX_HEADERS {
        inbound
            .problems
            .push(format!("only the first {MAX_HEADERS} header fields were kept"));
    }
    if let Some(from) = inbound.from.as_ref().filter(|a| !crate::model::is_mailbox_address(&a.email)) {
        inbound.problems.push(format!("the From address {:?} is not a mailbox address", truncate_chars(&from.email, 200)));
    }
    if inbound.author().is_none() {
        inbound.problems.push("no usable From address".into());
    }

    let (text, html, attachments) = content(&msg);
    inbound.text = text;
    inbound.html = html;
    inbound.attachments = attachments;
    inbound
}

/// Most mends of one message (each costs a parse).
const MAX_MENDS: usize = 8;

/// A mend of the raw message: bytes to insert at a position, and why.
struct Mend {
    at: usize,
    insert: Vec<u8>,
    why: &'static str,
}

/// The first mend the parsed message needs, if any.
fn needed_mend(msg: &Message<'_>) -> Option<Mend> {
    unclosed_multipart(msg).or_else(|| text_in_part_header(msg))
}

/// A multipart never closed, followed by the next delimiter of a multipart enclosing it (a
/// mailer or a gateway dropped the closing line — seen in delivery reports). MIME readers end
/// the inner parts at that delimiter (RFC 2046 § 5.1.2: an enclosing boundary ends the inner
/// body); mail-parser reads the inner part on to the end of the message, so its text would carry
/// the rest of the message undecoded and the parts after it would be lost.
///
/// Such a part ends where the multipart holding it ends (a closed one ends before its parent's
/// closing delimiter); only those are searched — in the message and in the messages attached
/// to it (message/rfc822), whose open multipart would otherwise swallow the rest of the
/// message around them.
fn unclosed_multipart(msg: &Message<'_>) -> Option<Mend> {
    let raw = msg.raw_message();
    let (parts, parent) = part_tree(msg);
    // A part inside a multipart inside a multipart, at least.
    if parts.len() < 3 {
        return None;
    }
    // Each multipart's boundary, found once (the walks below pass the same ancestors).
    let boundaries: Vec<Option<&str>> = parts
        .iter()
        .map(|p| match p.body {
            PartType::Multipart(_) => p.content_type().and_then(|c| c.attribute("boundary")),
            _ => None,
        })
        .collect();
    let boundary = |id: usize| boundaries[id];
    let mut found: Option<Mend> = None;
    for (id, part) in parts.iter().enumerate() {
        let Some(own) = parent[id] else { continue };
        // Leaves only: an attached message's parts are in the tree themselves.
        if matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) || parent[own].is_none() || part.offset_end < parts[own].offset_end {
            continue;
        }
        let body = raw.get(part.offset_body as usize..part.offset_end as usize).unwrap_or_default();
        // The earliest delimiter line of a multipart enclosing the part's own, and that one.
        let mut hit: Option<(usize, usize)> = None;
        let mut up = parent[own];
        while let Some(outer) = up {
            let pos = boundary(outer).and_then(|b| delimiter_line(body, b));
            if let Some(pos) = pos.filter(|&pos| hit.is_none_or(|(p, _)| pos < p)) {
                hit = Some((pos, outer));
            }
            up = parent[outer];
        }
        let Some((pos, outer)) = hit else { continue };
        let at = part.offset_body as usize + pos;
        if found.as_ref().is_some_and(|f| f.at <= at) {
            continue;
        }
        let eol = line_end_before(raw, at);
        // Close the part's own multipart and every one up to the one whose delimiter it met.
        let mut closers = Vec::new();
        let mut open = Some(own);
        while let Some(m) = open.filter(|&m| m != outer) {
            if let Some(b) = boundary(m) {
                closers.extend_from_slice(b"--");
                closers.extend_from_slice(b.as_bytes());
                closers.extend_from_slice(b"--");
                closers.extend_from_slice(eol);
            }
            open = parent[m];
        }
        found = Some(Mend {
            at,
            insert: closers,
            why: "a multipart part was not closed before the next part of the one enclosing it; it was read as ending there",
        });
    }
    found
}

/// Every part of `msg` and of the messages attached to it unencoded (their offsets are into
/// the same bytes; an attached message that had to be decoded first is left out), each with the
/// index of the part holding it: a multipart's children, an attached message's root part under
/// the message/rfc822 part carrying it. A child id that does not lead deeper (a malformed tree)
/// is left without parent.
fn part_tree<'m, 'x>(msg: &'m Message<'x>) -> (Vec<&'m MessagePart<'x>>, Vec<Option<usize>>) {
    let raw: &[u8] = &msg.raw_message;
    let mut parts: Vec<&'m MessagePart<'x>> = Vec::new();
    let mut parent: Vec<Option<usize>> = Vec::new();
    // Messages still to add, with the part carrying them (a stack: no recursion however deep).
    let mut pending: Vec<(&'m Message<'x>, Option<usize>)> = vec![(msg, None)];
    while let Some((m, carrier)) = pending.pop() {
        let base = parts.len();
        parts.extend(m.parts.iter());
        parent.extend((0..m.parts.len()).map(|id| if id == 0 { carrier } else { None }));
        for (id, part) in m.parts.iter().enumerate() {
            match &part.body {
                PartType::Multipart(children) => {
                    for child in children.iter().map(|&c| c as usize).filter(|&c| c > id && c < m.parts.len()) {
                        parent[base + child] = Some(base + id);
                    }
                }
                PartType::Message(inner) if std::ptr::eq(&*inner.raw_message, raw) => pending.push((inner, Some(base + id))),
                _ => {}
            }
        }
    }
    (parts, parent)
}

/// Where a line `--BOUNDARY` (a delimiter, or the closing one) starts in `body`.
fn delimiter_line(body: &[u8], boundary: &str) -> Option<usize> {
    let mut needle = Vec::with_capacity(boundary.len() + 2);
    needle.extend_from_slice(b"--");
    needle.extend_from_slice(boundary.as_bytes());
    memchr::memmem::find_iter(body, &needle).find(|&pos| {
        let line_start = pos == 0 || body[pos - 1] == b'\n';
        let rest = &body[pos + needle.len()..];
        let line_end = match rest.first() {
            None | Some(b'\r' | b'\n' | b' ' | b'\t') => true,
            Some(b'-') => rest.get(1) == Some(&b'-'),
            Some(_) => false,
        };
        line_start && line_end
    })
}

/// A part of a multipart whose header runs straight into its text, without the blank line
/// between them: mail clients (and Python's `email`) take the first line that is no header
/// field for the start of the text; mail-parser takes it for a broken field, and the part
/// comes out empty. Only parts that came out empty are looked at; the message's own header
/// keeps mail-parser's reading (a stray line there is skipped, the fields after it kept).
fn text_in_part_header(msg: &Message<'_>) -> Option<Mend> {
    let raw = msg.raw_message();
    msg.parts.iter().skip(1).find_map(|part| {
        if matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) || part.offset_body < part.offset_end {
            return None;
        }
        let (start, end) = (part.offset_header as usize, part.offset_body as usize);
        let pos = first_non_field_line(raw.get(start..end)?)?;
        let at = start + pos;
        let eol = line_end_before(raw, at);
        Some(Mend {
            at,
            insert: eol.to_vec(),
            why: "a part's header ran into its text without a blank line; the text was read from the first line that is no header field",
        })
    })
}

/// Where the first line of a header block that is neither a field (`Name: value`), nor the
/// continuation of one, nor the blank line ending the block starts.
fn first_non_field_line(block: &[u8]) -> Option<usize> {
    let mut pos = 0;
    for line in block.split_inclusive(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            return None;
        }
        let continuation = matches!(content[0], b' ' | b'\t');
        let field = content.iter().position(|&b| b == b':').is_some_and(|colon| {
            let name = content[..colon].trim_ascii_end();
            !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic())
        });
        if !continuation && !field {
            return Some(pos);
        }
        pos += line.len();
    }
    None
}

/// The line end of the line before `at` (CRLF or LF), for a line put in there.
fn line_end_before(raw: &[u8], at: usize) -> &'static [u8] {
    if raw[..at].ends_with(b"\r\n") { b"\r\n" } else { b"\n" }
}

/// `raw` mended, starting with `first` and parsed again after each mend, up to `MAX_MENDS` of
/// them; and what was mended, each kind once.
fn mend(raw: &[u8], first: Mend) -> (Vec<u8>, Vec<&'static str>) {
    let mut mended = raw.to_vec();
    let mut why = Vec::new();
    let mut next = Some(first);
    for n in 1..=MAX_MENDS {
        let Some(m) = next.take() else { break };
        if !why.contains(&m.why) {
            why.push(m.why);
        }
        mended.splice(m.at..m.at, m.insert);
        if n < MAX_MENDS {
            next = Parsed::of(&mended).as_deref().and_then(needed_mend);
        }
    }
    (mended, why)
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
    const FIELDS: [&str; 7] = ["from", "to", "cc", "subject", "date", "sender", "reply-to"];
    let (head, body) = split_header_body(raw);
    // One pass over the header block, values collected per field in header order.
    let mut values: [Vec<Vec<u8>>; 7] = Default::default();
    let mut current: Option<(usize, Vec<u8>)> = None;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if let Some((_, v)) = current.as_mut() {
                v.push(b' ');
                v.extend_from_slice(line);
            }
            continue;
        }
        if let Some((i, v)) = current.take() {
            values[i].push(v);
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = line[..colon].trim_ascii();
            if let Some(i) = FIELDS.iter().position(|f| name.eq_ignore_ascii_case(f.as_bytes())) {
                current = Some((i, line[colon + 1..].to_vec()));
            }
        }
    }
    if let Some((i, v)) = current {
        values[i].push(v);
    }
    let mut h = Sha256::new();
    for (name, vals) in FIELDS.iter().zip(values.iter()) {
        for value in vals {
            h.update(name.as_bytes());
            h.update(b":");
            // Whitespace differences (re-folding, CRLF vs LF) must not change the key.
            let mut first = true;
            for word in value.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
                if !first {
                    h.update(b" ");
                }
                h.update(word);
                first = false;
            }
            h.update(b"\n");
        }
    }
    h.update(b"\n");
    // The body with CRLF read as LF (and a CR right before the end dropped), then a final LF.
    let mut rest = body;
    while let Some(cr) = rest.iter().position(|&b| b == b'\r') {
        let at_line_end = rest.get(cr + 1).is_none_or(|&b| b == b'\n');
        h.update(&rest[..if at_line_end { cr } else { cr + 1 }]);
        rest = &rest[cr + 1..];
    }
    h.update(rest);
    h.update(b"\n");
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

/// Text, HTML and attachments of a message. Text parts that mail-parser could not place in the
/// body (broken transfer encoding, a multipart without boundary) become the text when the body
/// is otherwise empty; a message that is only an enclosed message takes the enclosed text.
fn content(msg: &Message<'_>) -> (String, Option<String>, Vec<Attachment>) {
    let (mut text, html) = bodies(msg);
    let mut text_changed = false;
    let mut attachments = Vec::new();
    let mut stray_text: Vec<String> = Vec::new();
    for (n, part) in msg.attachments().enumerate() {
        if text.trim().is_empty() && is_stray_text(part) {
            stray_text.push(part_text(msg, part, true));
            continue;
        }
        attachments.push(attachment(msg, part, n + 1));
    }
    for piece in stray_text {
        push_block(&mut text, &piece);
        text_changed = true;
    }
    if text.trim().is_empty() {
        if let Some(inner) = msg.attachments().find_map(|p| p.message()) {
            text = bodies(inner).0;
        }
    }
    // `bodies` normalised the text already; only what was added here needs it.
    (if text_changed { normalise_text(&text) } else { text }, html, attachments)
}

/// The message text (text/plain preferred, HTML rendered as text otherwise) and the HTML body.
fn bodies(msg: &Message<'_>) -> (String, Option<String>) {
    let mut text = String::new();
    let mut from_plain = false;
    for part in msg.text_bodies() {
        let piece = match &part.body {
            PartType::Text(_) => {
                from_plain = true;
                part_text(msg, part, false)
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

/// A part that is text by nature but landed among the attachments: no file name, not marked as
/// an attachment, and text (or a multipart that could not be split).
fn is_stray_text(part: &MessagePart<'_>) -> bool {
    if part.attachment_name().is_some() || part.content_disposition().is_some_and(|d| d.is_attachment()) {
        return false;
    }
    let ctype = part.content_type().map(|c| c.ctype().to_ascii_lowercase());
    match &part.body {
        PartType::Text(_) => true,
        PartType::Binary(_) | PartType::InlineBinary(_) => matches!(ctype.as_deref(), Some("multipart") | Some("text")),
        _ => false,
    }
}

/// The text of a text part. Where mail-parser had to give up (a transfer encoding it could not
/// decode, bytes that are not in the declared charset), decode leniently from the raw bytes;
/// `from_raw` always does so (for parts mail-parser did not take as body text).
fn part_text(msg: &Message<'_>, part: &MessagePart<'_>, from_raw: bool) -> String {
    let decoded = match &part.body {
        PartType::Text(t) | PartType::Html(t) => t.to_string(),
        other => String::from_utf8_lossy(match other {
            PartType::Binary(b) | PartType::InlineBinary(b) => b.as_ref(),
            _ => &[],
        })
        .into_owned(),
    };
    let trouble = from_raw || part.is_encoding_problem;
    if !trouble && !decoded.contains('\u{FFFD}') {
        return decoded;
    }
    let raw = msg
        .raw_message()
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or_default();
    // mail-parser resets `encoding` when decoding failed, so ask the header too.
    let cte = part.content_transfer_encoding().map(|c| c.trim().to_ascii_lowercase());
    let bytes = match (part.encoding, cte.as_deref()) {
        (Encoding::Base64, _) | (_, Some("base64")) => lenient_base64(raw),
        (Encoding::QuotedPrintable, _) | (_, Some("quoted-printable")) => {
            quoted_printable_decode(raw).unwrap_or_else(|| raw.to_vec())
        }
        _ => raw.to_vec(),
    };
    let charset = part.content_type().and_then(|c| c.attribute("charset"));
    let text = decode_8bit(&bytes, charset);
    if text.contains('\u{FFFD}') && !decoded.is_empty() && !trouble {
        decoded
    } else {
        text
    }
}

/// Base64 that ignores everything outside the alphabet and stops at the padding.
fn lenient_base64(raw: &[u8]) -> Vec<u8> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a' + 26) as u32),
            b'0'..=b'9' => Some((c - b'0' + 52) as u32),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(raw.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in raw {
        if c == b'=' {
            break;
        }
        let Some(v) = val(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Bytes in a charset: the declared one when known, else UTF-8 when they are UTF-8 (or mostly
/// so), else windows-1252 (which maps every byte, and is what mislabelled mail usually is).
pub fn decode_8bit(bytes: &[u8], charset: Option<&str>) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    // A 7-bit charset cannot explain 8-bit bytes: Japanese mail that declares ISO-2022-JP and
    // still carries raw bytes (typically in headers) has them in Shift_JIS.
    let charset = match charset.map(str::trim) {
        Some(c) if c.eq_ignore_ascii_case("iso-2022-jp") => Some("shift_jis"),
        other => other,
    };
    if let Some(decoder) = charset
        .filter(|c| !c.eq_ignore_ascii_case("utf-8") && !c.eq_ignore_ascii_case("us-ascii"))
        .and_then(|c| charset_decoder(c.as_bytes()))
    {
        return decoder(bytes);
    }
    let lossy = String::from_utf8_lossy(bytes);
    let valid_multibyte = lossy.chars().filter(|c| !c.is_ascii() && *c != '\u{FFFD}').count();
    let invalid = lossy.chars().filter(|c| *c == '\u{FFFD}').count();
    if valid_multibyte > invalid {
        return lossy.into_owned();
    }
    match charset_decoder(b"windows-1252") {
        Some(decoder) => decoder(bytes),
        None => lossy.into_owned(),
    }
}

/// The charset a message declares (root Content-Type, else its first text part).
fn declared_charset(msg: &Message<'_>) -> Option<String> {
    msg.parts
        .iter()
        .filter_map(|p| p.content_type())
        .find_map(|c| c.attribute("charset"))
        .map(str::to_string)
}

/// The raw bytes of a root header's value.
fn raw_header_bytes<'m>(msg: &'m Message<'_>, name: HeaderName<'_>) -> Option<&'m [u8]> {
    let h = msg.parts[0].headers.iter().find(|h| h.name == name)?;
    msg.raw_message().get(h.offset_start as usize..h.offset_end as usize)
}

fn push_block(out: &mut String, piece: &str) {
    if piece.trim().is_empty() {
        return;
    }
    if !out.is_empty() {
        // One blank line between blocks, whatever line ends the pieces bring.
        out.truncate(out.trim_end_matches(['\r', '\n']).len());
        out.push_str("\n\n");
    }
    out.push_str(piece.trim_start_matches(['\r', '\n']));
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

fn attachment(msg: &Message<'_>, part: &MessagePart<'_>, n: usize) -> Attachment {
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
    let filename = rfc2231_name(msg, part)
        .or_else(|| part.attachment_name().map(str::to_string))
        .map(|n| sanitize_filename(&n))
        .filter(|n| !n.is_empty())
        .or_else(|| (!part.is_message()).then(|| described_name(part, &content_type)).flatten())
        .unwrap_or_else(|| default_name(part, &content_type, n));
    Attachment {
        filename,
        content_type,
        data: part.contents().to_vec(),
        inline: part.content_disposition().is_some_and(|d| d.is_inline()),
        content_id: part.content_id().and_then(normalise_message_id),
    }
}

/// A file name given in RFC 2231 form (`filename*=charset'lang'…`, continuations `filename*0*=`
/// …), decoded as a whole: the segments' bytes are joined first, then decoded in the charset of
/// the first segment (a character may be split across segments).
fn rfc2231_name(msg: &Message<'_>, part: &MessagePart<'_>) -> Option<String> {
    let raw = msg.raw_message();
    for (header, param) in [(HeaderName::ContentDisposition, "filename"), (HeaderName::ContentType, "name")] {
        let Some(h) = part.headers.iter().find(|h| h.name == header) else { continue };
        let Some(value) = raw.get(h.offset_start as usize..h.offset_end as usize) else { continue };
        if let Some(name) = rfc2231_param(value, param) {
            return Some(name);
        }
    }
    None
}

/// The RFC 2231 value of `param` in a raw header value, or `None` when it is not in that form.
pub fn rfc2231_param(value: &[u8], param: &str) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    let mut segments: Vec<(u32, bool, Vec<u8>)> = Vec::new();
    for piece in split_params(&text) {
        let Some((key, val)) = piece.split_once('=') else { continue };
        let key = key.trim().to_ascii_lowercase();
        let Some(rest) = key.strip_prefix(param).and_then(|r| r.strip_prefix('*')) else { continue };
        let (index, extended) = match rest {
            "" => (0, true),
            r => match r.strip_suffix('*') {
                Some(i) => (i.parse().ok()?, true),
                None => (r.parse().ok()?, false),
            },
        };
        let val = val.trim();
        let val = match val.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(q) => q.replace("\\\"", "\"").replace("\\\\", "\\"),
            None => val.to_string(),
        };
        segments.push((index, extended, val.into_bytes()));
    }
    if segments.is_empty() {
        return None;
    }
    segments.sort_by_key(|s| s.0);
    let mut charset: Option<String> = None;
    let mut bytes = Vec::new();
    for (i, (index, extended, val)) in segments.iter().enumerate() {
        if *index as usize != i {
            break; // a gap: keep what is contiguous
        }
        let mut v: &[u8] = val;
        if i == 0 && *extended {
            // charset'language'value
            let mut parts = v.splitn(3, |b| *b == b'\'');
            if let (Some(cs), Some(_lang), Some(rest)) = (parts.next(), parts.next(), parts.next()) {
                charset = Some(String::from_utf8_lossy(cs).trim().to_string()).filter(|c| !c.is_empty());
                v = rest;
            }
        }
        if *extended {
            bytes.extend(percent_decode(v));
        } else {
            bytes.extend_from_slice(v);
        }
    }
    Some(match charset.as_deref().and_then(|c| charset_decoder(c.as_bytes())) {
        Some(decoder) => decoder(&bytes),
        None => decode_8bit(&bytes, None),
    })
}

/// Split header parameters at `;` outside double quotes; folding is undone first.
fn split_params(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        match c {
            '\r' | '\n' => continue,
            '\\' if quoted && !escaped => {
                escaped = true;
                cur.push(c);
                continue;
            }
            '"' if !escaped => quoted = !quoted,
            ';' if !quoted => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        escaped = false;
        cur.push(c);
    }
    out.push(cur);
    out
}

fn percent_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' && i + 2 < v.len() {
            let hex = std::str::from_utf8(&v[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

/// A nameless part's Content-Description as its name ("Delivery report" -> "Delivery report.txt").
fn described_name(part: &MessagePart<'_>, content_type: &str) -> Option<String> {
    let desc = sanitize_filename(part.content_description()?);
    if desc.is_empty() {
        return None;
    }
    let ext = extension_for(content_type);
    if desc.to_ascii_lowercase().ends_with(&format!(".{ext}")) {
        Some(desc)
    } else {
        Some(format!("{}.{ext}", truncate_chars(&desc, 120)))
    }
}

fn extension_for(content_type: &str) -> &'static str {
    match content_type {
        "text/plain" => "txt",
        "text/html" => "html",
        "text/calendar" => "ics",
        "text/csv" => "csv",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "message/rfc822" => "eml",
        "message/delivery-status" | "message/disposition-notification" => "txt",
        "text/rfc822-headers" | "message/rfc822-headers" => "txt",
        _ => "bin",
    }
}

/// A name for an attachment that has none: a nested message is named after its subject.
fn default_name(part: &mail_parser::MessagePart<'_>, content_type: &str, n: usize) -> String {
    if let PartType::Message(m) = &part.body {
        let subject = m.subject().map(sanitize_filename).unwrap_or_default();
        let stem = if !subject.is_empty() {
            subject
        } else if let Some(desc) = part.content_description().map(sanitize_filename).filter(|d| !d.is_empty()) {
            desc
        } else {
            format!("message-{n}")
        };
        return format!("{}.eml", truncate_chars(&stem, 120));
    }
    match content_type {
        "message/delivery-status" => "delivery-status.txt".to_string(),
        "message/disposition-notification" => "disposition-notification.txt".to_string(),
        _ => format!("attachment-{n}.{}", extension_for(content_type)),
    }
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

    // The first implementation of the content hash, kept as the reference the faster one must
    // equal (stored dedup keys must not change between versions).
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

    fn reference_hash(raw: &[u8]) -> String {
        let (head, body) = split_header_body(raw);
        let mut h = Sha256::new();
        for name in ["from", "to", "cc", "subject", "date", "sender", "reply-to"] {
            for value in raw_header_values(head, name) {
                h.update(name.as_bytes());
                h.update(b":");
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

    #[test]
    fn content_hash_equals_the_reference() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "eml") {
                let raw = std::fs::read(&p).unwrap();
                assert_eq!(content_hash(&raw), reference_hash(&raw), "{}", p.display());
                n += 1;
            }
        }
        assert!(n > 40);
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let len = (seed % 300) as usize;
            let raw: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    { let alphabet = b"ab:\r\n \tFromSubjectTo:x"; alphabet[(seed % alphabet.len() as u64) as usize] }
                })
                .collect();
            assert_eq!(content_hash(&raw), reference_hash(&raw), "{:?}", String::from_utf8_lossy(&raw));
        }
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

#[cfg(test)]
mod rfc2231_tests {
    use super::*;

    #[test]
    fn continuations_are_joined_before_decoding() {
        let v = b" attachment;\r\n filename*0*=utf-8''Angebot%20%E2%80;\r\n filename*1*=%93%20B%C3;\r\n filename*2*=%BCro.pdf";
        assert_eq!(rfc2231_param(v, "filename").as_deref(), Some("Angebot \u{2013} B\u{fc}ro.pdf"));
    }

    #[test]
    fn charset_and_language() {
        let v = b" application/pdf; name*=iso-8859-1'de'Pr%FCfbericht%20M%E4rz.pdf";
        assert_eq!(rfc2231_param(v, "name").as_deref(), Some("Pr\u{fc}fbericht M\u{e4}rz.pdf"));
    }

    #[test]
    fn mixed_plain_and_quoted_segments() {
        let v = b" attachment; filename*0=\"Serien \\\"Nr\\\" \"; filename*1=\"2026.xlsx\"";
        assert_eq!(rfc2231_param(v, "filename").as_deref(), Some("Serien \"Nr\" 2026.xlsx"));
        let v = b" attachment; filename*0*=utf-8''Liefer%20; filename*1=schein.txt";
        assert_eq!(rfc2231_param(v, "filename").as_deref(), Some("Liefer schein.txt"));
    }

    #[test]
    fn plain_parameters_are_not_rfc2231() {
        assert_eq!(rfc2231_param(b" attachment; filename=\"a.pdf\"", "filename"), None);
        assert_eq!(rfc2231_param(b" attachment; filenamex*=utf-8''a", "filename"), None);
    }

    #[test]
    fn eight_bit_fallback() {
        assert_eq!(decode_8bit(b"Caf\xe9", None), "Caf\u{e9}");
        assert_eq!(decode_8bit("Grüße".as_bytes(), None), "Grüße");
        assert_eq!(decode_8bit(b"\xd0\xd2\xc9\xd7\xc5\xd4", Some("koi8-r")), "привет");
    }

    #[test]
    fn lenient_base64_skips_garbage() {
        assert_eq!(lenient_base64(b"SGVs bG8=!!*** junk"), b"Hello");
    }
}

#[cfg(test)]
mod naming_tests {
    use super::*;

    #[test]
    fn nameless_parts_are_named_by_description_or_subject() {
        let m = parse(b"From: a@b.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n--b\r\nContent-Type: message/delivery-status\r\nContent-Description: Delivery report\r\n\r\nAction: failed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Description: Undelivered Message\r\n\r\nSubject: Quote 42\r\n\r\nhi\r\n--b--\r\n");
        let names: Vec<&str> = m.attachments.iter().map(|a| a.filename.as_str()).collect();
        assert_eq!(names, ["Delivery report.txt", "delivery-status.txt", "Quote 42.eml"]);
    }

    #[test]
    fn raw_shift_jis_subject_under_iso_2022_jp() {
        // "ツール" in Shift_JIS, in a message whose body declares ISO-2022-JP.
        let mut raw = b"From: a@b.example\r\nSubject: ".to_vec();
        raw.extend_from_slice(b"\x83\x63\x81\x5b\x83\x8b");
        raw.extend_from_slice(b"\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n\r\nx\r\n");
        assert_eq!(parse(&raw).subject, "ツール");
    }
}

#[cfg(test)]
mod mend_tests {
    use super::*;

    /// A delivery report whose first part (related > alternative > text) is never closed: the
    /// report's next delimiter follows the text directly.
    const REPORT: &str = "From: Mail Delivery System <mailer-daemon@mx.example>\r\nSubject: Delayed\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"out\"\r\n\r\n--out\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n--rel\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nein vor=C3=BCbergehendes Problem, noch wei=\r\ntere 46 Stunden\r\n\r\n--out\r\nContent-Type: message/delivery-status\r\n\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n--out\r\nContent-Type: message/rfc822\r\n\r\nSubject: Printer on floor 2\r\n\r\nABC\r\n\r\n--out--\r\n";

    #[test]
    fn an_enclosing_delimiter_ends_unclosed_inner_multiparts() {
        let m = parse(REPORT.as_bytes());
        assert_eq!(m.text, "ein vorübergehendes Problem, noch weitere 46 Stunden");
        let names: Vec<&str> = m.attachments.iter().map(|a| a.filename.as_str()).collect();
        assert_eq!(names, ["delivery-status.txt", "Printer on floor 2.eml"]);
        assert!(m.problems.iter().any(|p| p.contains("not closed")), "{:?}", m.problems);
        // The same with LF line ends.
        let lf = parse(REPORT.replace("\r\n", "\n").as_bytes());
        assert_eq!((lf.text.as_str(), lf.attachments.len()), (m.text.as_str(), 2));
    }

    #[test]
    fn an_html_part_left_open_stays_the_html_body() {
        let raw = "From: a@b.example\r\nContent-Type: multipart/related; boundary=\"r\"\r\n\r\n--r\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\nplain\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>rich</p>\r\n\r\n--r--\r\n";
        let m = parse(raw.as_bytes());
        assert_eq!(m.text, "plain");
        assert_eq!(m.html.as_deref().map(str::trim), Some("<p>rich</p>"));
        assert!(m.attachments.is_empty(), "{:?}", m.attachments.iter().map(|a| &a.filename).collect::<Vec<_>>());
    }

    #[test]
    fn closed_multiparts_and_look_alike_lines_are_left_alone() {
        // Closed everywhere; a body line that only starts like the outer boundary.
        let raw = "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\nsee --mx and\r\n--mail\r\n--a--\r\n--m\r\nContent-Type: text/csv; name=\"x.csv\"\r\n\r\n1,2\r\n--m--\r\n";
        let m = parse(raw.as_bytes());
        assert!(m.problems.is_empty(), "{:?}", m.problems);
        assert_eq!(m.text, "see --mx and\n--mail");
        assert_eq!(m.attachments.len(), 1);
        let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
        assert!(unclosed_multipart(&msg).is_none());
        assert_eq!(delimiter_line(b"x\n--mx\n--m--\n", "m"), Some(7));
        assert_eq!(delimiter_line(b"--m\t\n", "m"), Some(0));
        assert_eq!(delimiter_line(b"a --m\n--m-x\n", "m"), None);
    }

    #[test]
    fn deep_nesting_left_open_is_mended_within_bounds() {
        // Sixty multiparts, each opened and none closed, then the outermost one's delimiter and
        // closing line: all sixty are closed before that delimiter, without a panic.
        let mut raw = String::from("From: a@b.example\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n");
        for i in 0..60 {
            raw.push_str(&format!("--b{i}\r\nContent-Type: multipart/mixed; boundary=\"b{}\"\r\n\r\n", i + 1));
        }
        raw.push_str("--b60\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--b0\r\nContent-Type: text/plain; name=\"after.txt\"\r\n\r\nafter\r\n--b0--\r\n");
        let m = parse(raw.as_bytes());
        assert_eq!(m.text, "deep");
        let names: Vec<&str> = m.attachments.iter().map(|a| a.filename.as_str()).collect();
        assert_eq!(names, ["after.txt"]);
        assert!(m.problems.iter().any(|p| p.contains("not closed")), "{:?}", m.problems);
    }

    /// A forward as attachment: the attached message's alternative is never closed, and the
    /// next part of the forward follows it.
    const FORWARD: &str = "From: alice@example.com\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=\"OUTER\"\r\n\r\n--OUTER\r\nContent-Type: text/plain\r\n\r\nSee the attached mail.\r\n--OUTER\r\nContent-Type: message/rfc822\r\n\r\nFrom: bob@example.com\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=\"INNER\"\r\n\r\n--INNER\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--INNER\r\nContent-Type: text/html\r\n\r\n<p>inner html</p>\r\n--OUTER\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--OUTER--\r\n";

    #[test]
    fn an_attached_message_left_open_ends_at_the_next_part_around_it() {
        let m = parse(FORWARD.as_bytes());
        assert_eq!(m.text, "See the attached mail.");
        let files: Vec<(&str, &[u8])> = m.attachments.iter().map(|a| (a.filename.as_str(), a.data.as_slice())).collect();
        assert_eq!(files.len(), 2, "{:?}", m.attachments.iter().map(|a| &a.filename).collect::<Vec<_>>());
        assert_eq!(files[0].0, "inner.eml");
        assert_eq!(files[1], ("report.pdf", b"%PDF-1.4\n".as_slice()));
        // The attached message is whole, its alternative closed where the forward's part ends.
        let inner = MessageParser::default().parse(files[0].1).unwrap();
        assert_eq!(inner.body_text(0).as_deref().map(str::trim), Some("inner text"));
        assert_eq!(inner.body_html(0).as_deref().map(str::trim), Some("<p>inner html</p>"));
        assert!(!String::from_utf8_lossy(files[0].1).contains("OUTER"));
        assert!(m.problems.iter().any(|p| p.contains("not closed")), "{:?}", m.problems);
        // The same with LF line ends.
        let lf = parse(FORWARD.replace("\r\n", "\n").as_bytes());
        assert_eq!(lf.attachments.iter().map(|a| a.filename.as_str()).collect::<Vec<_>>(), ["inner.eml", "report.pdf"]);
    }

    #[test]
    fn attached_messages_nested_deep_are_walked_without_recursion() {
        // Five hundred messages, each attached to the one before; the innermost holds a
        // multipart left open, then every level closes.
        let mut raw = String::new();
        for i in 0..500 {
            raw.push_str(&format!("From: a@b.example\r\nSubject: level {i}\r\nContent-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\nContent-Type: message/rfc822\r\n\r\n"));
        }
        raw.push_str("From: a@b.example\r\nContent-Type: multipart/alternative; boundary=\"open\"\r\n\r\n--open\r\nContent-Type: text/plain\r\n\r\ninnermost\r\n");
        for i in (0..500).rev() {
            raw.push_str(&format!("--b{i}--\r\n"));
        }
        let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let (parts, parent) = part_tree(&msg);
        assert_eq!(parts.len(), parent.len());
        assert!(parts.len() > 500, "{}", parts.len());
        let m = parse(raw.as_bytes());
        assert_eq!(m.attachments.len(), 1);
    }
}

#[cfg(test)]
mod flood_tests {
    use super::*;

    #[test]
    fn a_parsed_message_is_dropped_level_by_level() {
        // 100,000 attached messages nested, read without the cut, dropped on a 512 KiB stack.
        let mut raw = "From: a@b.example\r\nContent-Type: message/rfc822\r\n\r\n".repeat(100_000);
        raw.push_str("From: a@b.example\r\n\r\nhi\r\n");
        let levels = std::thread::Builder::new()
            .stack_size(512 << 10)
            .spawn(move || {
                let parsed = Parsed::of(raw.as_bytes()).unwrap();
                let (parts, _) = part_tree(&parsed);
                parts.len()
            })
            .unwrap()
            .join()
            .expect("dropped without overflowing the stack");
        assert!(levels > 100_000, "{levels}");
    }

    #[test]
    fn a_flood_of_parts_is_read_up_to_the_limit() {
        let mut raw = String::from("From: a@b.example\r\nSubject: flood\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nthe text\r\n");
        for i in 0..12_000 {
            raw.push_str(&format!("--b\r\nContent-Type: application/octet-stream; name=\"f{i}.bin\"\r\n\r\nx\r\n"));
        }
        raw.push_str("--b--\r\n");
        assert!(part_lines_cut(raw.as_bytes()).is_some());
        let m = parse(raw.as_bytes());
        assert_eq!((m.subject.as_str(), m.text.as_str()), ("flood", "the text"));
        // 10,000 lines that may open a part read: the message's Content-Type, the text part's
        // two, then a delimiter and a Content-Type per file — 4,998 files and a half.
        assert_eq!(m.attachments.len(), 4_998);
        assert!(m.problems.iter().any(|p| p.contains("more than 10,000 MIME part")), "{:?}", m.problems);
        // The content hash is the whole message's.
        assert_eq!(m.content_hash, content_hash(raw.as_bytes()));
        // Below the limit nothing is cut.
        assert_eq!(part_lines_cut(b"a\n--b\nCONTENT-TYPE: text/plain\n\nx\n--b--\n"), None);
        // Messages attached to messages, nested deeper than that: cut too.
        let nested = "From: a@b.example\r\nContent-Type: message/rfc822\r\n\r\n".repeat(20_000);
        let m = parse(nested.as_bytes());
        assert!(m.problems.iter().any(|p| p.contains("more than 10,000 MIME part")), "{:?}", m.problems);
    }
}

#[cfg(test)]
mod part_header_tests {
    use super::*;

    #[test]
    fn text_right_after_a_part_header_is_the_part_text() {
        let raw = "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nDrucker im 2. Stock: Papierstau\r\nBitte kommen.\r\n\r\n--m\r\nContent-Type: text/csv; name=\"log.csv\"\r\n\r\n1,2\r\n--m--\r\n";
        let m = parse(raw.as_bytes());
        // The first line has a colon but no field name before it: text, from there on.
        assert_eq!(m.text, "Drucker im 2. Stock: Papierstau\nBitte kommen.");
        assert_eq!(m.attachments.len(), 1);
        assert!(m.problems.iter().any(|p| p.contains("without a blank line")), "{:?}", m.problems);
    }

    #[test]
    fn header_blocks_are_read_field_by_field() {
        assert_eq!(first_non_field_line(b"Content-Type: text/plain\nbar\n\n"), Some(25));
        assert_eq!(first_non_field_line(b"Content-Type: text/plain;\r\n\tcharset=utf-8\r\nX-Obsolete : yes\r\n\r\n"), None);
        assert_eq!(first_non_field_line(b"Content-Type: text/plain\r\nno field here: x\r\n"), Some(26));
        assert_eq!(first_non_field_line(b": no name\n"), Some(0));
    }

    #[test]
    fn a_stray_line_in_the_message_header_is_still_skipped() {
        // The message's own header keeps mail-parser's reading: the Subject after the line stays.
        let m = parse(b"From: a@b.example\r\nThis line has no colon\r\nSubject: kept\r\n\r\nbody\r\n");
        assert_eq!((m.subject.as_str(), m.text.as_str()), ("kept", "body"));
        assert!(m.problems.is_empty(), "{:?}", m.problems);
    }
}
