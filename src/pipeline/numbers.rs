//! Object numbers — tickets `TYYYYMMDD.NNNN`, projects `PYYYYMMDD.NNNN`, tasks `KYYYYMMDD.NNNN`
//! — formatting, recognition in subjects, and the normalised subject used to compare messages.

use regex::Regex;
use std::sync::LazyLock;

/// The kinds of numbered objects; the letter leads the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberKind {
    Ticket,
    Project,
    Task,
}

impl NumberKind {
    pub fn prefix(self) -> char {
        match self {
            NumberKind::Ticket => 'T',
            NumberKind::Project => 'P',
            NumberKind::Task => 'K',
        }
    }

    pub fn of(number: &str) -> Option<NumberKind> {
        match number.chars().next()?.to_ascii_uppercase() {
            'T' => Some(NumberKind::Ticket),
            'P' => Some(NumberKind::Project),
            'K' => Some(NumberKind::Task),
            _ => None,
        }
    }
}

/// Letter + date + `.` + sequence (four digits or more), not glued to letters or digits.
static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|[^\p{L}\p{N}])([TPK])(\d{4})(\d{2})(\d{2})\.(\d{4,9})(?:$|[^\p{L}\p{N}])")
        .expect("number pattern")
});

/// Format a number from its kind, day (`YYYYMMDD`) and sequence.
pub fn format_number(kind: NumberKind, day: &str, seq: i64) -> String {
    format!("{}{day}.{seq:04}", kind.prefix())
}

/// Format a ticket number.
pub fn format_ticket_number(day: &str, seq: i64) -> String {
    format_number(NumberKind::Ticket, day, seq)
}

/// Most numbers taken from one text: each is looked up, and a subject naming more is no reply
/// to one object (a subject of 40,000 numbers once exceeded SQLite's bound parameters, and the
/// message was deferred on every retry).
pub const MAX_NUMBERS: usize = 20;

/// Every plausible object number in a text, upper-cased, in order, without repeats — the first
/// `MAX_NUMBERS` of them.
/// Prefixes (`Re:`, `AW:`, `[…]`, `(…)`) need no special handling: the number may stand anywhere.
pub fn numbers(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut start = 0;
    // Matches may share the separator character, so search again from the end of each number.
    while let Some(caps) = NUMBER.captures_at(text, start).filter(|_| out.len() < MAX_NUMBERS) {
        let seq = caps.get(5).expect("group");
        let (y, m, d) = (&caps[2], &caps[3], &caps[4]);
        let month: u32 = m.parse().unwrap_or(0);
        let day: u32 = d.parse().unwrap_or(0);
        let year: u32 = y.parse().unwrap_or(0);
        if (1..=12).contains(&month) && (1..=31).contains(&day) && year >= 1990 {
            let letter = caps[1].to_ascii_uppercase();
            let number = format!("{letter}{y}{m}{d}.{}", seq.as_str());
            if !out.contains(&number) {
                out.push(number);
            }
        }
        start = seq.end();
    }
    out
}

/// Ticket numbers only.
pub fn ticket_numbers(text: &str) -> Vec<String> {
    numbers(text).into_iter().filter(|n| n.starts_with('T')).collect()
}

/// Reply and forward prefixes in the languages mail clients use.
static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:\[[^\]]*\]\s*)?(?:re|aw|wg|fw|fwd|vs|sv|rv|tr|antw|antwort|doorst|r|i|enc|res|odp|pd|ynt|vl|ha|sv|sva)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*")
        .expect("prefix pattern")
});

/// The subject as two messages of one conversation share it: reply/forward prefixes removed,
/// whitespace collapsed, case folded. Used for duplicate detection and the loop guard.
pub fn subject_key(subject: &str) -> String {
    let mut s = subject.trim().to_string();
    loop {
        let stripped = PREFIX.replace(&s, "").to_string();
        if stripped == s {
            break;
        }
        s = stripped;
    }
    let words: Vec<&str> = s.split_whitespace().collect();
    super::tags::fold(&words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_pads_to_four_digits() {
        assert_eq!(format_ticket_number("20261127", 1), "T20261127.0001");
        assert_eq!(format_ticket_number("20261127", 12345), "T20261127.12345");
        assert_eq!(format_number(NumberKind::Task, "20261127", 7), "K20261127.0007");
    }

    #[test]
    fn found_behind_every_reply_and_forward_prefix() {
        for subject in [
            "T20261127.0001",
            "Re: T20261127.0001",
            "RE: RE: printer broken T20261127.0001",
            "AW: WG: Drucker [T20261127.0001]",
            "Fwd: (T20261127.0001) printer",
            "FW:T20261127.0001",
            "VS: SV: RV: Ticket#T20261127.0001 done",
            "re: t20261127.0001 lower case",
            "[Ticket T20261127.0001] Re: x",
            "Tr: {T20261127.0001}",
        ] {
            assert_eq!(ticket_numbers(subject), vec!["T20261127.0001"], "{subject}");
        }
    }

    #[test]
    fn not_found_inside_words_or_digits() {
        for subject in [
            "XT20261127.0001",
            "T20261127.0001X",
            "T20261127.00012a",
            "T2026112.0001",
            "T20261127.001",
            "T20261327.0001",
            "1T20261127.0001",
        ] {
            assert!(numbers(subject).is_empty(), "{subject}");
        }
    }

    #[test]
    fn several_numbers_in_order_without_repeats() {
        assert_eq!(
            numbers("T20261127.0002 T20261126.0001,T20261127.0002"),
            vec!["T20261127.0002", "T20261126.0001"]
        );
    }

    #[test]
    fn projects_and_tasks_cannot_be_confused_with_tickets() {
        assert_eq!(numbers("Re: [P20261127.0003] kickoff"), vec!["P20261127.0003"]);
        assert_eq!(numbers("AW: k20261127.0012 done"), vec!["K20261127.0012"]);
        assert_eq!(NumberKind::of("K20261127.0012"), Some(NumberKind::Task));
        assert!(ticket_numbers("P20261127.0003").is_empty());
    }

    #[test]
    fn subject_keys_ignore_prefixes_case_and_spacing() {
        assert_eq!(subject_key("Re: AW:  Server  DOWN"), "server down");
        assert_eq!(subject_key("FW: [EXT] Re[2]: Server down"), "server down");
        assert_eq!(subject_key("Server down"), subject_key("server down "));
        assert_ne!(subject_key("Server down"), subject_key("Server up"));
        assert_eq!(subject_key(""), "");
    }

    #[test]
    fn a_subject_full_of_numbers_yields_the_first_few() {
        let subject: String = (1..=5000).map(|i| format!("T20261120.{i:04} ")).collect();
        let found = numbers(&subject);
        assert_eq!(found.len(), MAX_NUMBERS);
        assert_eq!((found[0].as_str(), found[MAX_NUMBERS - 1].as_str()), ("T20261120.0001", "T20261120.0020"));
    }
}
