//! Forwarded mail: the original sender named in the header block that a mail client puts into
//! the body of a forwarded message (Gmail, Outlook, Apple Mail, Thunderbird; English, German,
//! French, Dutch, Spanish labels).
//!
//! A block is either a forward separator (`---------- Forwarded message ---------`,
//! `-----Original Message-----`, `Begin forwarded message:` …) with a `From:` line in the lines
//! below it, or a `From:` line with a `Sent:` / `Date:` line near it (Outlook without separator).
//! Only the first block counts: later ones belong to older messages of the conversation.

use regex::Regex;
use std::sync::LazyLock;

use super::parse::collapse_ws;
use crate::model::Address;

/// Lines below a separator that may hold the `From:` line (Thunderbird puts Subject and Date
/// first; Apple Mail leaves a blank line).
const HEADER_WINDOW: usize = 10;
/// Lines above or below a `From:` line searched for the `Sent:` line of a separator-less block.
const SENT_WINDOW: usize = 4;
/// Longest line considered a separator or header line.
const MAX_HEADER_LINE: usize = 1000;

/// Dashed separators of forwarded and inline-quoted messages.
static DASHED_SEPARATOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^-{2,}\s*(?:
            forwarded\s+message | original\s+message
          | weitergeleitete\s+nachricht | urspr[üu]ngliche\s+nachricht
          | message\s+transf[ée]r[ée] | message\s+d'origine
          | doorgestuurd\s+bericht | oorspronkelijk\s+bericht
          | mensaje\s+reenviado | mensaje\s+original
        )\s*-{2,}$",
    )
    .expect("separator pattern")
});
/// Apple Mail's introduction line.
static BEGIN_FORWARDED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:begin\s+forwarded\s+message|anfang\s+der\s+weitergeleiteten\s+nachricht|d[ée]but\s+du\s+message\s+r[ée]exp[ée]di[ée]|begin\s+doorgestuurd\s+bericht|inicio\s+del\s+mensaje\s+reenviado)\s*:$",
    )
    .expect("begin forwarded pattern")
});
/// Outlook's rule above a header block in HTML mail.
static UNDERSCORES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^_{10,}$").expect("underscore pattern"));
/// A `From:` line; group 1 is the value (possibly empty: then it is on the next line).
static FROM_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\*{0,2}(?:from|von|de|van)\s*:\s*\*{0,2}\s*(.*)$").expect("from pattern"));
/// The line that makes a `From:` line a header block when there is no separator.
static SENT_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\*{0,2}(?:sent|gesendet|envoy[ée]|verzonden|date|datum|enviado(?:\s+el)?)\s*:\s*\*{0,2}\s*\S")
        .expect("sent pattern")
});
/// Any header-like line (`To:`, `Betreff:` …): not the continuation of a wrapped `From:` value.
static HEADER_LIKE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\*{0,2}\p{L}[\p{L}\- ]{0,24}\*{0,2}\s*:(?:\s|$)").expect("header-like pattern"));
/// An address: no white space, brackets, quotes, commas or colons around the `@` (a `mailto:`
/// prefix and a `[1]` link footnote thus stay outside).
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"[^\s<>\[\]()",;:@]+@[^\s<>\[\]()",;:@]+"#).expect("email pattern"));

/// The sender of the first forwarded message in `text`: `None` without a forwarded header
/// block, or when its `From:` line holds no address.
pub fn forwarded_sender(text: &str) -> Option<Address> {
    let lines: Vec<&str> = text.lines().map(unquote).collect();
    for (i, line) in lines.iter().enumerate() {
        if line.len() > MAX_HEADER_LINE {
            continue;
        }
        if is_separator(line) {
            if let Some(from) = from_below(&lines, i) {
                return sender(&lines, from);
            }
        } else if FROM_LINE.is_match(line) && sent_near(&lines, i) {
            return sender(&lines, i);
        }
    }
    None
}

/// A line without leading white space and `>` quote marks (a forward of a quoted forward).
fn unquote(line: &str) -> &str {
    line.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
        .trim_end()
}

fn is_separator(line: &str) -> bool {
    DASHED_SEPARATOR.is_match(line) || BEGIN_FORWARDED.is_match(line) || UNDERSCORES.is_match(line)
}

/// The `From:` line below the separator at `i`, within the header window. Below an underscore
/// rule (which also separates signatures and footers) it must be the next non-blank line.
fn from_below(lines: &[&str], i: usize) -> Option<usize> {
    let window = if UNDERSCORES.is_match(lines[i]) {
        let next = lines.iter().skip(i + 1).position(|l| !l.is_empty())?;
        next + 1
    } else {
        HEADER_WINDOW
    };
    lines
        .iter()
        .enumerate()
        .skip(i + 1)
        .take(window)
        .take_while(|(_, l)| !is_separator(l))
        .find(|(_, l)| l.len() <= MAX_HEADER_LINE && FROM_LINE.is_match(l))
        .map(|(j, _)| j)
}

/// Whether a `Sent:` (or `Date:`) line stands within a few lines of line `i`.
fn sent_near(lines: &[&str], i: usize) -> bool {
    let from = i.saturating_sub(SENT_WINDOW);
    let to = (i + SENT_WINDOW).min(lines.len().saturating_sub(1));
    (from..=to).any(|j| j != i && SENT_LINE.is_match(lines[j]))
}

/// The address on the `From:` line `i`. A value without `@` continues on the next non-blank
/// line unless that is another header field (`From:` alone on its line, or a wrapped name).
fn sender(lines: &[&str], i: usize) -> Option<Address> {
    let mut value = FROM_LINE.captures(lines[i])?.get(1)?.as_str().to_string();
    if !value.contains('@') {
        let next = lines.iter().skip(i + 1).take(2).find(|l| !l.is_empty());
        if let Some(next) = next.filter(|l| l.len() <= MAX_HEADER_LINE && !HEADER_LIKE.is_match(l)) {
            value.push(' ');
            value.push_str(next);
        }
    }
    parse_address(&value)
}

/// `Name <addr>`, `"Name" <addr>`, `Name [mailto:addr]`, `Name <mailto:addr>`, `addr`,
/// `<addr>`, `addr (Name)`.
fn parse_address(value: &str) -> Option<Address> {
    let found = EMAIL.find(value)?;
    let email = found
        .as_str()
        .trim_matches(|c| matches!(c, '*' | '\'' | '`'))
        .trim_end_matches('.');
    if !crate::model::is_mailbox_address(email) {
        return None;
    }
    // What stands before the address, without the `<`, `[`, `mailto:` that open it (html2text
    // renders a linked address as `<[addr][2]>`).
    let mut before = &value[..found.start()];
    loop {
        let trimmed = before.trim_end().trim_end_matches(['<', '[']);
        let trimmed = strip_suffix_ignore_case(trimmed, "mailto:").unwrap_or(trimmed);
        if trimmed.len() == before.len() {
            break;
        }
        before = trimmed;
    }
    let name = if before.trim().is_empty() {
        // `addr (Name)`
        let after = value[found.end()..].trim_start();
        after
            .strip_prefix('(')
            .and_then(|a| a.split_once(')'))
            .map_or("", |(inner, _)| inner)
    } else {
        before
    };
    Some(Address {
        name: clean_name(name, email),
        email: email.to_string(),
    })
}

/// `s` without `suffix` (ASCII case ignored), if it ends with it.
fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    (s.is_char_boundary(cut) && s[cut..].eq_ignore_ascii_case(suffix)).then(|| &s[..cut])
}

/// A display name without quotes, emphasis and extra white space; `None` when empty or just
/// the address again.
fn clean_name(name: &str, email: &str) -> Option<String> {
    let name = collapse_ws(name);
    let name = name.trim_matches(|c: char| matches!(c, '"' | '\'' | '*' | ',' | ';') || c.is_whitespace());
    let name = collapse_ws(&name.replace("\\\"", "\""));
    let is_address = name.eq_ignore_ascii_case(email)
        || name
            .to_ascii_lowercase()
            .strip_prefix("mailto:")
            .is_some_and(|n| n.eq_ignore_ascii_case(email));
    (!name.is_empty() && !is_address).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(name: Option<&str>, email: &str) -> Option<Address> {
        Some(Address {
            name: name.map(str::to_string),
            email: email.to_string(),
        })
    }

    #[test]
    fn gmail() {
        let text = "FYI, see below.\n\n---------- Forwarded message ---------\n\
            From: Alice Example <alice@customer.example>\n\
            Date: Mon, 23 Nov 2026 at 10:00\n\
            Subject: Printer broken\n\
            To: <bob@example.com>\n\n\
            The printer on floor 2 is broken.\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
        // Gmail in German.
        let text = "---------- Weitergeleitete Nachricht ---------\nVon: Alice Beispiel <alice@kunde.example>\nDate: Mo., 23. Nov. 2026 um 10:00 Uhr\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Beispiel"), "alice@kunde.example")
        );
    }

    #[test]
    fn thunderbird_puts_from_after_subject_and_date() {
        let text = "Please handle.\n\n-------- Forwarded Message --------\n\
            Subject: \tPrinter broken\n\
            Date: \tMon, 23 Nov 2026 10:00:00 +0100\n\
            From: \t\"Example, Alice\" <alice@customer.example>\n\
            To: \tbob@example.com\n\nText";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Example, Alice"), "alice@customer.example")
        );
        let text = "-------- Weitergeleitete Nachricht --------\nBetreff: \tDrucker\nDatum: \tMon, 23 Nov 2026\nVon: \tAlice <alice@kunde.example>\n";
        assert_eq!(forwarded_sender(text), addr(Some("Alice"), "alice@kunde.example"));
        let text = "-------- Original Message --------\nSubject: x\nFrom: alice@customer.example\n";
        assert_eq!(forwarded_sender(text), addr(None, "alice@customer.example"));
    }

    #[test]
    fn apple_mail() {
        let text = "Sent from my iPhone\n\nBegin forwarded message:\n\n\
            From: Alice Example <alice@customer.example>\n\
            Subject: Printer broken\n\
            Date: 23 November 2026 at 10:00:00 CET\n\
            To: bob@example.com\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
        let text = "Anfang der weitergeleiteten Nachricht:\n\nVon: Alice <alice@kunde.example>\nBetreff: Drucker\n";
        assert_eq!(forwarded_sender(text), addr(Some("Alice"), "alice@kunde.example"));
        let text = "Début du message réexpédié :\n\nDe : Alice <alice@client.example>\nObjet : Imprimante\n";
        assert_eq!(forwarded_sender(text), addr(Some("Alice"), "alice@client.example"));
    }

    #[test]
    fn outlook_with_mailto() {
        let text = "Bob here, please take a look.\n\n-----Original Message-----\n\
            From: Alice Example [mailto:alice@customer.example]\n\
            Sent: Monday, November 23, 2026 10:00 AM\n\
            To: Bob <bob@example.com>\n\
            Subject: Printer broken\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
        let text = "-----Ursprüngliche Nachricht-----\nVon: Beispiel, Alice [mailto:Alice.Beispiel@Kunde.example] \nGesendet: Montag, 23. November 2026 10:00\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Beispiel, Alice"), "Alice.Beispiel@Kunde.example")
        );
    }

    #[test]
    fn outlook_without_separator() {
        let text = "FYI\n\nFrom: Alice Example <alice@customer.example>\nSent: Monday, November 23, 2026 10:00 AM\nTo: Support\nSubject: Printer\n\nBroken.";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
        let text = "FYI\n\nVon: Alice Beispiel <alice@kunde.example>\nGesendet: Montag, 23. November 2026 10:00\nAn: Support\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Beispiel"), "alice@kunde.example")
        );
        let text = "FYI\n\nDe : Alice <alice@client.example>\nEnvoyé : lundi 23 novembre 2026 10:00\n";
        assert_eq!(forwarded_sender(text), addr(Some("Alice"), "alice@client.example"));
        let text = "FYI\n\nVan: Alice <alice@klant.example>\nVerzonden: maandag 23 november 2026 10:00\n";
        assert_eq!(forwarded_sender(text), addr(Some("Alice"), "alice@klant.example"));
        // HTML rendered: the underscore rule and bold labels.
        let text = "FYI\n\n________________________________\n**From:** Alice Example <alice@customer.example>\n**Sent:** Monday\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
    }

    #[test]
    fn bare_from_lines() {
        let text = "FYI\n\nFrom: alice@customer.example\nSent: Monday\n";
        assert_eq!(forwarded_sender(text), addr(None, "alice@customer.example"));
        let text = "FYI\n\nFrom: <alice@customer.example>\nSent: Monday\n";
        assert_eq!(forwarded_sender(text), addr(None, "alice@customer.example"));
        let text = "FYI\n\nFrom: alice@customer.example <alice@customer.example>\nSent: Monday\n";
        assert_eq!(forwarded_sender(text), addr(None, "alice@customer.example"));
        let text = "FYI\n\nFrom: alice@customer.example (Alice Example)\nSent: Monday\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
        let text = "FYI\n\nFrom: Alice Example <mailto:alice@customer.example>\nSent: Monday\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
        let text = "FYI\n\nFrom: 'Alice Example' <alice@customer.example>\nSent: Monday\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
        let text = "FYI\n\nFrom: Alice Example mailto:alice@customer.example\nSent: Monday\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
    }

    #[test]
    fn from_value_on_the_next_line() {
        let text = "---------- Forwarded message ---------\nFrom:\nAlice Example <alice@customer.example>\nDate: Mon\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
        let text = "---------- Forwarded message ---------\nFrom: Alice Example\n<alice@customer.example>\nDate: Mon\n";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
    }

    #[test]
    fn html_rendered_link_footnotes_and_quotes() {
        // How `pipeline::html` renders Gmail's forwarded header.
        let text = "---------- Forwarded message ---------\nFrom: Alice Example <[alice@customer.example][1]>\nDate: Mon\n\n[1]: mailto:alice@customer.example";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
        let text = "---------- Forwarded message ---------\nFrom: Alice Example <alice@customer.example[1]>\nDate: Mon\n\n[1]: mailto:alice@customer.example";
        assert_eq!(
            forwarded_sender(text),
            addr(Some("Alice Example"), "alice@customer.example")
        );
        let text =
            "> ---------- Forwarded message ---------\n> From: Alice <alice@customer.example>\r\n> Date: Mon\r\n";
        assert_eq!(forwarded_sender(text), addr(Some("Alice"), "alice@customer.example"));
    }

    #[test]
    fn the_first_block_counts() {
        let text = "FYI\n\n---------- Forwarded message ---------\nFrom: Carol <carol@partner.example>\nDate: Tue\n\n\
            See below.\n\nOn Mon, Alice wrote:\n> x\n\n-----Original Message-----\nFrom: Alice <alice@customer.example>\nSent: Mon\n";
        assert_eq!(forwarded_sender(text), addr(Some("Carol"), "carol@partner.example"));
        // The first block has no address: not a reason to take an older message's sender.
        let text = "-----Original Message-----\nFrom: Alice Example\nSent: Mon\nTo: Bob\n\n\
            -----Original Message-----\nFrom: Carol <carol@partner.example>\nSent: Sun\n";
        assert_eq!(forwarded_sender(text), None);
    }

    #[test]
    fn no_block_no_sender() {
        assert_eq!(
            forwarded_sender("Hello,\nplease write to alice@customer.example.\n"),
            None
        );
        assert_eq!(
            forwarded_sender("From: the second floor <alice@customer.example> came a call.\nThanks"),
            None
        );
        // A separator with no From line below it is no block.
        assert_eq!(
            forwarded_sender("---------- Forwarded message ---------\nSubject: x\n\nText"),
            None
        );
        assert_eq!(
            forwarded_sender("________________________________\nSome footer\n\nFrom: x <x@y.example>\nTo: z\n"),
            None
        );
        // A From line without any address.
        assert_eq!(
            forwarded_sender("---------- Forwarded message ---------\nFrom: Alice Example\nDate: Mon\n"),
            None
        );
        assert_eq!(
            forwarded_sender("---------- Forwarded message ---------\nFrom: @\nDate: Mon\n"),
            None
        );
        assert_eq!(
            forwarded_sender("---------- Forwarded message ---------\nFrom: a@.\nDate: Mon\n"),
            None
        );
    }

    #[test]
    fn odd_input_never_panics() {
        let long = "x".repeat(1_000_000);
        let inputs = [
            String::new(),
            " ".into(),
            "\n\r\n".into(),
            "From:".into(),
            "From:\nSent: x".into(),
            "From: <>\nSent: x".into(),
            "From: mailto:\nSent: x".into(),
            "From: é mailto:ü@ö\nSent: x".into(),
            "From: ü@\nSent: x".into(),
            "From: (\u{fffd}@x (".into(),
            "Begin forwarded message:".into(),
            "Begin forwarded message:\nFrom: 日本 <日本@例え.jp>".into(),
            format!("Begin forwarded message:\nFrom: {long} <a@b.example>"),
            format!("Begin forwarded message:\nFrom: {long}@b.example"),
            format!("-----Original Message-----\n{long}\nFrom: A <a@b.example>"),
            "-----Original Message-----\n".repeat(50_000),
            "From: a@b\n".repeat(50_000),
        ];
        for input in &inputs {
            let _ = forwarded_sender(input);
        }
        assert_eq!(
            forwarded_sender("Begin forwarded message:\nFrom: 日本 <日本@例え.jp>"),
            addr(Some("日本"), "日本@例え.jp")
        );
        assert_eq!(forwarded_sender("From: é mailto:ü@ö\nSent: x"), addr(Some("é"), "ü@ö"));
        assert_eq!(
            forwarded_sender(&format!("-----Original Message-----\n{long}\nFrom: A <a@b.example>")),
            addr(Some("A"), "a@b.example")
        );
    }

    /// Random concatenations of tricky fragments (a fixed xorshift sequence, so reproducible).
    #[test]
    fn random_fragments_never_panic() {
        let extra = [
            "From:",
            "Von:",
            "De :",
            "Sent:",
            "Date:",
            "mailto:",
            "a@b.c",
            "---------- Forwarded message ---------",
            "-----Original Message-----",
            "________________",
            "Begin forwarded message:",
            "[1]",
        ];
        crate::pipeline::tricky_texts(&extra, |text: &str| {
            let _ = forwarded_sender(text);
        });
    }
}
