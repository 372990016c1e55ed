//! Building RFC 3834-clean messages from outbox rows.
//!
//! Every notification says it was sent automatically (`Auto-Submitted`, and
//! `X-Auto-Response-Suppress: All` so that Exchange sends no out-of-office reply), threads
//! under the mail it answers (`In-Reply-To`, `References`) and, for automatic replies, goes out
//! with the null envelope sender `<>` so that no bounce or auto-reply can loop back.

use lettre::address::{Address, Envelope};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use super::template::header_safe;
use crate::store::outbox::OutboxRow;

/// Header fields the message builder owns; extra headers of a row never replace them.
const RESERVED: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "return-path",
    "received",
];

/// The `Auto-Submitted` value for a kind of notification (RFC 3834): replies to a message
/// are `auto-replied`, everything else `auto-generated`.
pub fn auto_submitted(kind: &str) -> &'static str {
    match kind {
        "acknowledgement" | "failure" => "auto-replied",
        _ => "auto-generated",
    }
}

/// A header name as RFC 5322 allows it: printable ASCII without ':' or space.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 76 && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

fn raw_header(name: &str, value: &str) -> Option<HeaderValue> {
    let name = HeaderName::new_from_ascii(name.to_string()).ok()?;
    Some(HeaderValue::new(name, header_safe(value)))
}

/// A message id as it goes between angle brackets: without brackets, spaces or controls.
fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && *c != '<' && *c != '>')
        .collect()
}

/// Build the message and envelope for an outbox row.
pub fn build(row: &OutboxRow) -> Result<(Envelope, Vec<u8>), String> {
    let from_text = header_safe(&row.from_header);
    let from: Mailbox = from_text
        .parse()
        .map_err(|e| format!("the From address {from_text:?} is not valid: {e}"))?;

    let mut to: Vec<Mailbox> = Vec::new();
    for part in row.recipient.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mbox: Mailbox = header_safe(part)
            .parse()
            .map_err(|e| format!("the recipient {part:?} is not a valid address: {e}"))?;
        to.push(mbox);
    }
    if to.is_empty() {
        return Err("the row has no recipient".into());
    }

    let reverse_path = match row.envelope_from.trim() {
        "" => None,
        addr => Some(
            addr.trim_start_matches('<')
                .trim_end_matches('>')
                .parse::<Address>()
                .map_err(|e| format!("the envelope sender {addr:?} is not a valid address: {e}"))?,
        ),
    };
    let envelope = Envelope::new(reverse_path, to.iter().map(|m| m.email.clone()).collect())
        .map_err(|e| format!("cannot build the envelope: {e}"))?;

    let message_id = bare_id(&row.message_id);
    if message_id.is_empty() {
        return Err("the row has no Message-ID".into());
    }

    let mut builder = lettre::Message::builder().from(from);
    for mbox in to {
        builder = builder.to(mbox);
    }
    builder = builder
        .subject(header_safe(&row.subject))
        .date_now()
        .message_id(Some(format!("<{message_id}>")))
        .envelope(envelope.clone());
    if let Some(parent) = row.in_reply_to.as_deref().map(bare_id).filter(|p| !p.is_empty()) {
        builder = builder.in_reply_to(format!("<{parent}>"));
    }
    let references: Vec<String> =
        row.references.iter().map(|r| bare_id(r)).filter(|r| !r.is_empty()).map(|r| format!("<{r}>")).collect();
    if !references.is_empty() {
        builder = builder.references(references.join(" "));
    }

    let mut extra = vec![
        ("Auto-Submitted", auto_submitted(&row.kind).to_string()),
        ("X-Auto-Response-Suppress", "All".to_string()),
    ];
    for (name, value) in &row.headers {
        let name = name.trim();
        if valid_header_name(name) && !RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            extra.push((name, value.clone()));
        }
    }
    for (name, value) in extra {
        // A later field of the same name replaces an earlier one (a row may set its own
        // Auto-Submitted value).
        if let Some(h) = raw_header(name, &value) {
            builder = builder.raw_header(h);
        }
    }

    let message = match &row.body_html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(row.body_text.clone(), html.clone())),
        None => builder.singlepart(SinglePart::plain(row.body_text.clone())),
    }
    .map_err(|e| format!("cannot build the message: {e}"))?;
    Ok((envelope, message.formatted()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders};

    fn row() -> OutboxRow {
        OutboxRow {
            id: 1,
            kind: "acknowledgement".into(),
            recipient: "alex@example.com".into(),
            envelope_from: String::new(),
            from_header: "MSP Support <support@msp.example>".into(),
            subject: "[T1] Printer ärger".into(),
            body_text: "Hello,\nwe received your request.\n".into(),
            body_html: None,
            headers: vec![("X-Ticketmilter-Loop".into(), "msp.example".into())],
            message_id: "t1.abc@msp.example".into(),
            in_reply_to: Some("orig-1@example.com".into()),
            references: vec!["orig-0@example.com".into(), "orig-1@example.com".into()],
            attempts: 1,
        }
    }

    #[test]
    fn builds_an_rfc3834_reply() {
        let (envelope, bytes) = build(&row()).unwrap();
        assert!(envelope.from().is_none(), "null sender");
        assert_eq!(envelope.to().iter().map(|a| a.to_string()).collect::<Vec<_>>(), ["alex@example.com"]);
        assert!(bytes.is_ascii());
        let msg = MessageParser::default().parse(&bytes).unwrap();
        let from = msg.from().unwrap().first().unwrap();
        assert_eq!(from.address(), Some("support@msp.example"));
        assert_eq!(from.name(), Some("MSP Support"));
        assert_eq!(msg.to().unwrap().first().unwrap().address(), Some("alex@example.com"));
        assert_eq!(msg.subject(), Some("[T1] Printer ärger"));
        assert!(msg.date().is_some());
        assert_eq!(msg.message_id(), Some("t1.abc@msp.example"));
        assert_eq!(msg.in_reply_to().as_text(), Some("orig-1@example.com"));
        let refs: Vec<&str> = msg.references().as_text_list().unwrap().iter().map(|r| r.as_ref()).collect();
        assert_eq!(refs, ["orig-0@example.com", "orig-1@example.com"]);
        assert_eq!(msg.header("Auto-Submitted").and_then(|h| h.as_text()), Some("auto-replied"));
        assert_eq!(msg.header("X-Auto-Response-Suppress").and_then(|h| h.as_text()), Some("All"));
        assert_eq!(msg.header("X-Ticketmilter-Loop").and_then(|h| h.as_text()), Some("msp.example"));
        assert_eq!(msg.parts.len(), 1, "a single text/plain part");
        assert_eq!(msg.body_text(0).unwrap().replace("\r\n", "\n").trim_end(), "Hello,\nwe received your request.");
        let ct = msg.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")));
        assert!(ct.attribute("charset").is_some_and(|c| c.eq_ignore_ascii_case("utf-8")));
    }

    #[test]
    fn html_alternative_and_sender() {
        let mut r = row();
        r.kind = "notification".into();
        r.envelope_from = "notify@msp.example".into();
        r.from_header = "notify@msp.example".into();
        r.body_html = Some("<p>Hello &amp; welcome</p>".into());
        r.in_reply_to = None;
        r.references = Vec::new();
        let (envelope, bytes) = build(&r).unwrap();
        assert_eq!(envelope.from().map(|a| a.to_string()).as_deref(), Some("notify@msp.example"));
        let msg = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(msg.from().unwrap().first().unwrap().address(), Some("notify@msp.example"));
        assert_eq!(msg.header("Auto-Submitted").and_then(|h| h.as_text()), Some("auto-generated"));
        let ct = msg.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("alternative")));
        assert!(msg.body_html(0).unwrap().contains("<p>Hello &amp; welcome</p>"));
        assert!(msg.body_text(0).unwrap().contains("we received your request."));
        assert!(msg.header("In-Reply-To").is_none());
        assert!(msg.header("References").is_none());
    }

    #[test]
    fn no_header_injection() {
        let mut r = row();
        r.subject = "Hi\r\nBcc: victim@example.org\r\n\r\nbody".into();
        r.headers = vec![
            ("X-Note".into(), "a\r\nX-Injected: yes".into()),
            ("Bad Name".into(), "x".into()),
            ("Bad:Name".into(), "x".into()),
            ("X-Ctl\u{1}".into(), "x".into()),
            ("From".into(), "evil@example.org".into()),
            ("Auto-Submitted".into(), "auto-notified".into()),
        ];
        let (envelope, bytes) = build(&r).unwrap();
        assert_eq!(envelope.to().len(), 1);
        let msg = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(msg.subject(), Some("Hi Bcc: victim@example.org body"));
        assert!(msg.header("Bcc").is_none());
        assert!(msg.header("X-Injected").is_none());
        assert_eq!(msg.header("X-Note").and_then(|h| h.as_text()), Some("a X-Injected: yes"));
        assert_eq!(msg.from().unwrap().first().unwrap().address(), Some("support@msp.example"));
        assert_eq!(msg.header("Auto-Submitted").and_then(|h| h.as_text()), Some("auto-notified"));
        let names: Vec<String> = msg.headers().iter().map(|h| h.name().to_string()).collect();
        assert!(!names.iter().any(|n| n.contains(' ') || n.contains('\u{1}')), "{names:?}");
        assert_eq!(names.iter().filter(|n| n.eq_ignore_ascii_case("subject")).count(), 1);
        assert_eq!(names.iter().filter(|n| n.eq_ignore_ascii_case("auto-submitted")).count(), 1);
    }

    #[test]
    fn bad_rows_are_errors() {
        let mut r = row();
        r.from_header = "not an address".into();
        assert!(build(&r).unwrap_err().contains("From address"));
        let mut r = row();
        r.recipient = "nobody".into();
        assert!(build(&r).unwrap_err().contains("recipient \"nobody\""));
        let mut r = row();
        r.recipient = " ".into();
        assert!(build(&r).unwrap_err().contains("no recipient"));
        let mut r = row();
        r.envelope_from = "x@@y".into();
        assert!(build(&r).unwrap_err().contains("envelope sender"));
    }
}
