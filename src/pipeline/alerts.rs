//! Structured alerts from monitoring systems at the end of a message body: Autotask's ATES block
//! (`<Autotask> … </Autotask>`) or a closing paragraph of `key=value` / `key: value` lines.

use regex::{Captures, Regex};
use std::sync::LazyLock;

/// `</Autotask>` as the last non-whitespace content.
static CLOSE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)<\s*/\s*autotask\s*>\s*\z").expect("close pattern"));
/// `<Autotask>`, possibly with attributes.
static OPEN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)<\s*autotask(?:\s[^<>]*)?>").expect("open pattern"));
/// Any start, end or empty-element tag: (1) `/` of an end tag, (2) name, (3) attributes, (4) `/`
/// of an empty element.
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<\s*(/?)\s*([A-Za-z_][A-Za-z0-9_.:-]*)([^<>]*?)(/?)>").expect("tag pattern"));
/// One attribute: (1) name, then the value (2) in double quotes, (3) in single quotes or (4) bare.
static ATTR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"([A-Za-z_][A-Za-z0-9_.:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>/]+))"#)
        .expect("attribute pattern")
});

/// What an alert says about the ticket it should become. Empty values are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alert {
    pub company: Option<String>,
    pub contact: Option<String>,
    pub contact_email: Option<String>,
    pub sub_issue: Option<String>,
    pub issue: Option<String>,
    /// The monitoring system's id of the alert.
    pub alert_id: Option<String>,
    /// An external ticket id (ATES `TicketID`).
    pub external_id: Option<String>,
    pub priority: Option<String>,
    pub queue: Option<String>,
}

/// An alert found in a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub alert: Alert,
    /// The body without the alert block, trailing whitespace and blank lines trimmed.
    pub text: String,
}

/// The alert block at the end of `text`, if there is one: an ATES block `<Autotask> … </Autotask>`
/// that is the last non-whitespace content, else a last paragraph of nothing but known
/// `key=value` / `key: value` lines naming at least an alert id or an external id (a signature of "Company:" and "Email:" lines is no alert).
/// When a key (or element) repeats, the first non-empty value counts.
pub fn find(text: &str) -> Option<Found> {
    xml_block(text).or_else(|| key_value_block(text))
}

/// A field of `Alert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Company,
    Contact,
    ContactEmail,
    SubIssue,
    Issue,
    AlertId,
    ExternalId,
    Priority,
    Queue,
}

/// The field a key or element name stands for (case-insensitive, `-` and `_` ignored).
fn field(key: &str) -> Option<Field> {
    let k: String = key
        .chars()
        .filter(|&c| c != '-' && c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Some(match k.as_str() {
        "company" | "customer" => Field::Company,
        "contact" => Field::Contact,
        "email" | "contactemail" => Field::ContactEmail,
        "subissue" => Field::SubIssue,
        "issue" | "issuetype" => Field::Issue,
        "alertid" => Field::AlertId,
        "externalid" | "ticketid" => Field::ExternalId,
        "priority" => Field::Priority,
        "queue" => Field::Queue,
        _ => return None,
    })
}

impl Alert {
    /// Set a field unless it already has a value; empty values are ignored.
    fn set(&mut self, field: Field, value: String) {
        if value.is_empty() {
            return;
        }
        let slot = match field {
            Field::Company => &mut self.company,
            Field::Contact => &mut self.contact,
            Field::ContactEmail => &mut self.contact_email,
            Field::SubIssue => &mut self.sub_issue,
            Field::Issue => &mut self.issue,
            Field::AlertId => &mut self.alert_id,
            Field::ExternalId => &mut self.external_id,
            Field::Priority => &mut self.priority,
            Field::Queue => &mut self.queue,
        };
        if slot.is_none() {
            *slot = Some(value);
        }
    }
}

/// The ATES form. An element's value is its text content, else its `name` (or `value`)
/// attribute; unknown elements (`ID`, `PW`, `Phone`, …) are ignored.
fn xml_block(text: &str) -> Option<Found> {
    let trimmed = text.trim_end();
    let close = CLOSE.find(trimmed)?;
    let open = OPEN
        .find_iter(&trimmed[..close.start()])
        .filter(|m| !m.as_str().ends_with("/>"))
        .last()?;
    let inner = &trimmed[open.end()..close.start()];
    let tags: Vec<Captures<'_>> = TAG.captures_iter(inner).collect();
    let mut alert = Alert::default();
    for (i, caps) in tags.iter().enumerate() {
        let (Some(whole), Some(name)) = (caps.get(0), caps.get(2)) else {
            continue;
        };
        if caps.get(1).is_some_and(|m| !m.is_empty()) {
            continue; // an end tag
        }
        let Some(field) = field(name.as_str()) else {
            continue;
        };
        let empty_element = caps.get(4).is_some_and(|m| !m.is_empty());
        let content = if empty_element {
            String::new()
        } else {
            let end = tags
                .get(i + 1)
                .and_then(|next| next.get(0))
                .map_or(inner.len(), |m| m.start());
            clean(inner.get(whole.end()..end).unwrap_or_default())
        };
        let attrs = caps.get(3).map_or("", |m| m.as_str());
        let value = if content.is_empty() {
            attribute(attrs, "name")
                .or_else(|| attribute(attrs, "value"))
                .unwrap_or_default()
        } else {
            content
        };
        alert.set(field, value);
    }
    Some(Found {
        alert,
        text: trimmed[..open.start()].trim_end().to_string(),
    })
}

/// The cleaned value of an attribute (name compared case-insensitively).
fn attribute(attrs: &str, name: &str) -> Option<String> {
    ATTR.captures_iter(attrs)
        .find(|c| c.get(1).is_some_and(|n| n.as_str().eq_ignore_ascii_case(name)))
        .and_then(|c| c.get(2).or(c.get(3)).or(c.get(4)))
        .map(|v| clean(v.as_str()))
        .filter(|v| !v.is_empty())
}

/// XML-unescaped, whitespace runs collapsed to one space, trimmed.
fn clean(s: &str) -> String {
    unescape(s).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Replace the five predefined XML entities and numeric character references; anything else
/// (unknown names, invalid numbers, a lone `&`) stays as written.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // The longest entity worth reading is `&#x10FFFF;`; the `;` is ASCII, so slicing at it is safe.
        let decoded = rest.as_bytes()[1..]
            .iter()
            .take(10)
            .position(|&b| b == b';')
            .and_then(|semi| entity_char(&rest[1..1 + semi]).map(|c| (c, semi + 2)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character an entity (without `&` and `;`) stands for.
fn entity_char(entity: &str) -> Option<char> {
    let code = match entity {
        "amp" => return Some('&'),
        "lt" => return Some('<'),
        "gt" => return Some('>'),
        "quot" => return Some('"'),
        "apos" => return Some('\''),
        _ => {
            let num = entity.strip_prefix('#')?;
            match num.strip_prefix(['x', 'X']) {
                Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u32::from_str_radix(hex, 16).ok()?
                }
                None if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => num.parse().ok()?,
                _ => return None,
            }
        }
    };
    char::from_u32(code).filter(|&c| c != '\0')
}

/// The key=value form: the last paragraph, every line of it a known key.
fn key_value_block(text: &str) -> Option<Found> {
    let trimmed = text.trim_end();
    let mut para_start = 0;
    let mut offset = 0;
    for line in trimmed.split_inclusive('\n') {
        offset += line.len();
        if line.trim().is_empty() {
            para_start = offset;
        }
    }
    let para = &trimmed[para_start..];
    if para.trim().is_empty() {
        return None;
    }
    let mut alert = Alert::default();
    for line in para.lines() {
        let line = line.trim();
        let sep = line.find([':', '='])?;
        let key = line[..sep].trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return None;
        }
        let field = field(key)?;
        alert.set(field, unquote(line[sep + 1..].trim()).to_string());
    }
    if alert.alert_id.is_none() && alert.external_id.is_none() {
        return None;
    }
    Some(Found {
        alert,
        text: trimmed[..para_start].trim_end().to_string(),
    })
}

/// A value without one pair of matching surrounding quotes.
fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner.trim();
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    // --- the ATES block ---

    const PRTG: &str = "\
[PRTG Network Monitor (SRV-MON01)] FW-ACME Ping Down (100 % packet loss)

Sensor:       Ping (Ping)
Device:       FW-ACME (192.0.2.1)
Group:        Acme GmbH > Network
Status:       Down ESCALATION (100 % packet loss) since 27.11.2026 10:02:11
Last Message: Destination host unreachable (ping error: 80004005)

<Autotask>
<ID name=\"ates@helpdesk.example\"/>
<PW name=\"s3cret&amp;more\"/>
<Customer name=\"Acme GmbH\"/>
<Contact name=\"Bernd Acme\"/>
<Email name=\"bernd@acme.example\"/>
<SubIssue name=\"Network\"/>
<AlertID source=\"PRTG\">2034</AlertID>
</Autotask>
";

    #[test]
    fn prtg_ates_block() {
        let f = find(PRTG).unwrap();
        assert_eq!(
            f.alert,
            Alert {
                company: s("Acme GmbH"),
                contact: s("Bernd Acme"),
                contact_email: s("bernd@acme.example"),
                sub_issue: s("Network"),
                alert_id: s("2034"),
                ..Alert::default()
            }
        );
        assert!(f.text.starts_with("[PRTG Network Monitor (SRV-MON01)]"));
        assert!(f.text.ends_with("(ping error: 80004005)"), "{:?}", f.text);
        assert!(!f.text.contains("Autotask"));
    }

    #[test]
    fn ates_alert_id_as_attribute_and_ticket_id() {
        let text = "Backup failed.\n\n<Autotask><Customer name=\"Acme\"/><AlertID name=\"12345\"/>\
            <TicketID source=\"X\">ext-7</TicketID><Issue name=\"Backup\"/><Priority name=\"High\"/>\
            <Queue name=\"Monitoring\"/></Autotask>";
        let f = find(text).unwrap();
        assert_eq!(
            f.alert,
            Alert {
                company: s("Acme"),
                alert_id: s("12345"),
                external_id: s("ext-7"),
                issue: s("Backup"),
                priority: s("High"),
                queue: s("Monitoring"),
                ..Alert::default()
            }
        );
        assert_eq!(f.text, "Backup failed.");
    }

    #[test]
    fn ates_tags_are_case_insensitive_and_may_be_wrapped() {
        let text = "Disk almost full\r\n\r\n<AUTOTASK>\r\n<customer\r\n  name=\"Acme\r\n  GmbH &amp; Co. KG\"/><sub-issue NAME='Storage'\r\n/>\r\n<alertid\r\nsource=\"Icinga\">\r\n  web01!disk\r\n</ALERTID></autotask>\r\n\r\n  \r\n";
        let f = find(text).unwrap();
        assert_eq!(f.alert.company, s("Acme GmbH & Co. KG"));
        assert_eq!(f.alert.sub_issue, s("Storage"));
        assert_eq!(f.alert.alert_id, s("web01!disk"));
        assert_eq!(f.text, "Disk almost full");
        let f = find("x\n< Autotask >< /autotask >").unwrap();
        assert_eq!((f.alert, f.text.as_str()), (Alert::default(), "x"));
        let f = find("x <Autotask xmlns=\"urn:x\"><Customer name=\"A\"/></Autotask >").unwrap();
        assert_eq!((f.alert.company, f.text.as_str()), (s("A"), "x"));
    }

    #[test]
    fn ates_values_are_unescaped() {
        let text = "<Autotask><Customer name=\"M&amp;M &lt;Süd&gt; &quot;x&quot; &apos;y&apos; &#65;&#x42;&#X43; &#x1F600;\"/>\
            <Contact name=\"a &unknown; b &amp c &#; &#xZZ; &#0; &#xD800; &\"/></Autotask>";
        let f = find(text).unwrap();
        assert_eq!(f.alert.company, s("M&M <Süd> \"x\" 'y' ABC 😀"));
        assert_eq!(f.alert.contact, s("a &unknown; b &amp c &#; &#xZZ; &#0; &#xD800; &"));
        assert_eq!(f.text, "");
    }

    #[test]
    fn ates_content_wins_over_attribute_and_first_value_wins() {
        let text = "<Autotask><Customer name=\"Attr\">Content</Customer><Customer name=\"Second\"/>\
            <AlertID name=\"\"></AlertID><AlertID value=\"v1\"/><Email name=\"  \"/></Autotask>";
        let f = find(text).unwrap();
        assert_eq!(f.alert.company, s("Content"));
        assert_eq!(f.alert.alert_id, s("v1"));
        assert_eq!(f.alert.contact_email, None);
    }

    #[test]
    fn ates_ignores_unknown_elements_and_comments() {
        let text = "<Autotask>\n<!-- from PRTG -->\n<ID name=\"u\"/><PW name=\"p\"/><Phone name=\"+49 1\"/>\
            <Foo>bar</Foo><Customer name=\"Acme\"/></Autotask>";
        let f = find(text).unwrap();
        assert_eq!(
            f.alert,
            Alert {
                company: s("Acme"),
                ..Alert::default()
            }
        );
    }

    #[test]
    fn ates_block_must_end_the_text() {
        for text in [
            "<Autotask><Customer name=\"Acme\"/></Autotask>\n-- \nMonitoring",
            "<Autotask><Customer name=\"Acme\"/></Autotask> thanks",
            "<Autotask><Customer name=\"Acme\"/>",
            "<Customer name=\"Acme\"/></Autotask>",
            "<Autotask/><Customer name=\"Acme\"/></Autotask>",
            "<Autotasks><Customer name=\"Acme\"/></Autotask>",
        ] {
            assert_eq!(find(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_last_ates_block_counts() {
        let text = "Earlier alert:\n<Autotask><Customer name=\"Old\"/></Autotask>\n\nNow:\n<Autotask><Customer name=\"New\"/></Autotask>\n";
        let f = find(text).unwrap();
        assert_eq!(f.alert.company, s("New"));
        assert_eq!(
            f.text,
            "Earlier alert:\n<Autotask><Customer name=\"Old\"/></Autotask>\n\nNow:"
        );
    }

    // --- the key=value paragraph ---

    const ICINGA: &str = "\
***** Service Monitoring on icinga.acme.example *****

HTTP on web01 is CRITICAL!

Info:    HTTP CRITICAL - Socket timeout after 10 seconds

When:    2026-11-27 10:15:02 +0100
Service: HTTP
Host:    web01
IPv4:    192.0.2.15

company=Acme GmbH
alert-id=web01!HTTP
sub_issue=Web server
priority=High
";

    #[test]
    fn icinga_key_value_paragraph() {
        let f = find(ICINGA).unwrap();
        assert_eq!(
            f.alert,
            Alert {
                company: s("Acme GmbH"),
                alert_id: s("web01!HTTP"),
                sub_issue: s("Web server"),
                priority: s("High"),
                ..Alert::default()
            }
        );
        assert!(f.text.ends_with("IPv4:    192.0.2.15"), "{:?}", f.text);
        assert!(f.text.starts_with("***** Service Monitoring"));
    }

    #[test]
    fn nagios_without_block_is_plain_text() {
        let text = "\
***** Nagios *****

Notification Type: PROBLEM
Host: srv-file01
State: DOWN
Address: 192.0.2.20
Info: PING CRITICAL - Packet loss = 100%

Date/Time: Fri Nov 27 10:20:00 CET 2026
";
        assert_eq!(find(text), None);
    }

    const DATTO: &str = "\
Alert: Disk usage above 90% on SRV-FILE01
Site: Acme GmbH - Head Office
Device: SRV-FILE01
Monitor: Disk Usage Monitor (C:)
Triggered: 27/11/2026 09:58 UTC

View device: https://example.rmm.invalid/device/4711

Customer: Acme GmbH
Contact: Bernd Acme
Contact-Email: bernd@acme.example
Issue-Type: Server
SubIssue: Storage
Alert-ID: 7f3c2a9e-5b1d-4c8e-9a0f-1e2d3c4b5a69
Priority: Critical
Queue: Monitoring Alerts
";

    #[test]
    fn datto_like_colon_paragraph() {
        let f = find(DATTO).unwrap();
        assert_eq!(
            f.alert,
            Alert {
                company: s("Acme GmbH"),
                contact: s("Bernd Acme"),
                contact_email: s("bernd@acme.example"),
                issue: s("Server"),
                sub_issue: s("Storage"),
                alert_id: s("7f3c2a9e-5b1d-4c8e-9a0f-1e2d3c4b5a69"),
                priority: s("Critical"),
                queue: s("Monitoring Alerts"),
                external_id: None,
            }
        );
        assert!(f.text.ends_with("View device: https://example.rmm.invalid/device/4711"));
    }

    #[test]
    fn every_key_spelling() {
        for (key, expect) in [
            ("company", Field::Company),
            ("Customer", Field::Company),
            ("CONTACT", Field::Contact),
            ("email", Field::ContactEmail),
            ("E-Mail", Field::ContactEmail),
            ("contact_email", Field::ContactEmail),
            ("ContactEmail", Field::ContactEmail),
            ("sub-issue", Field::SubIssue),
            ("Sub_Issue", Field::SubIssue),
            ("issue", Field::Issue),
            ("issue-type", Field::Issue),
            ("IssueType", Field::Issue),
            ("alertid", Field::AlertId),
            ("Alert-ID", Field::AlertId),
            ("alert_id", Field::AlertId),
            ("externalid", Field::ExternalId),
            ("external-id", Field::ExternalId),
            ("TicketID", Field::ExternalId),
            ("ticket_id", Field::ExternalId),
            ("priority", Field::Priority),
            ("Queue", Field::Queue),
        ] {
            assert_eq!(field(key), Some(expect), "{key}");
        }
        for key in [
            "id", "pw", "phone", "alert", "ticket", "name", "mail", "", "-", "issues",
        ] {
            assert_eq!(field(key), None, "{key}");
        }
    }

    #[test]
    fn an_alert_id_or_external_id_is_required() {
        assert_eq!(find("Hello\n\npriority=High\nqueue=Monitoring\ncontact=Bernd"), None);
        assert_eq!(
            find("Hello\n\nalertid=\npriority=High"),
            None,
            "empty values do not count"
        );
        let f = find("Hello\n\nticketid=ext-9\npriority=High").unwrap();
        assert_eq!(f.alert.external_id, s("ext-9"));
        let f = find("Hello\n\nalertid=42").unwrap();
        assert_eq!(f.alert.alert_id, s("42"));
        // A signature of company and address lines is no alert.
        assert_eq!(find("Hello\n\nCompany: Acme GmbH\nEmail: bernd@acme.example"), None);
        let f = find("Hello\n\ncustomer: Acme\nalertid=7").unwrap();
        assert_eq!(f.alert.company, s("Acme"));
    }

    #[test]
    fn every_line_of_the_paragraph_must_be_a_known_key() {
        for text in [
            "Hello\n\nalertid=42\nthanks",
            "Hello\n\nalertid=42\nstatus=down",
            "Hello\n\nalertid=42\nhttps://example.com/x=1",
            "Hello\n\nalert id=42",
            "Hello\n\nalertid 42",
            "Hello\n\n=42\nalertid=1",
            "Hello\n\nalertid=42\n-- ",
        ] {
            assert_eq!(find(text), None, "{text:?}");
        }
    }

    #[test]
    fn only_the_last_paragraph_counts() {
        assert_eq!(find("alertid=42\ncompany=Acme\n\nRegards, Bernd"), None);
        let f = find("alertid=1\n\nText\n\nalertid=2").unwrap();
        assert_eq!(f.alert.alert_id, s("2"));
        assert_eq!(f.text, "alertid=1\n\nText");
    }

    #[test]
    fn values_are_trimmed_unquoted_and_first_wins() {
        let text =
            "Text\n\n  company =  \"Acme GmbH\"  \nalertid:'a=b:c'\nalertid=second\npriority=\nqueue: x=y\nemail=\"\"";
        let f = find(text).unwrap();
        assert_eq!(f.alert.company, s("Acme GmbH"));
        assert_eq!(f.alert.alert_id, s("a=b:c"));
        assert_eq!(f.alert.priority, None);
        assert_eq!(f.alert.queue, s("x=y"));
        assert_eq!(f.alert.contact_email, None);
        assert_eq!(f.text, "Text");
    }

    #[test]
    fn separators_and_line_ends() {
        let f = find("Down\r\n\r\nAlertID=5\r\nCompany: Acme\r\n\r\n").unwrap();
        assert_eq!((f.alert.alert_id, f.alert.company), (s("5"), s("Acme")));
        assert_eq!(f.text, "Down");
        // A line of spaces separates paragraphs as well.
        let f = find("Down\n   \t\nalertid=5").unwrap();
        assert_eq!(f.text, "Down");
        // The whole text may be the block.
        let f = find("alertid=5\ncompany=Acme\n").unwrap();
        assert_eq!(f.text, "");
    }

    #[test]
    fn ates_wins_over_key_values() {
        let text = "alertid=1\n\n<Autotask><AlertID>2</AlertID></Autotask>";
        let f = find(text).unwrap();
        assert_eq!(f.alert.alert_id, s("2"));
        assert_eq!(f.text, "alertid=1");
    }

    #[test]
    fn plain_text_has_no_alert() {
        for text in [
            "",
            "   \n\n ",
            "Hello,\n\nthe printer is broken again.\n\nRegards\nBernd",
            "Hello\n\nCompany: Acme GmbH and friends\nPhone: +49 1234",
            "a=b",
            ":",
            "=",
            "\n=\n:\n",
        ] {
            assert_eq!(find(text), None, "{text:?}");
        }
    }

    #[test]
    fn never_panics() {
        let pieces = [
            "<",
            ">",
            "/",
            "<Autotask>",
            "</Autotask>",
            "<autotask",
            "</",
            "=",
            ":",
            "\"",
            "'",
            "&",
            "&#",
            "&#x",
            ";",
            "\n",
            "\r\n",
            " ",
            "alertid",
            "company",
            "name",
            "é",
            "💥",
            "&amp;",
            "&#1114112;",
            "<Customer ",
            "/>",
            "\n\n",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 30) as usize;
            let mut text = String::new();
            for k in 0..n {
                let x = seed.rotate_left(k as u32 * 7).wrapping_mul(0xD6E8_FEB8_6659_FD93);
                text.push_str(pieces[(x >> 33) as usize % pieces.len()]);
            }
            if let Some(f) = find(&text) {
                assert!(f.text.len() <= text.len());
            }
        }
    }
}
