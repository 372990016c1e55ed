//! Object numbers: the `TYYYYMMDD.NNNN` scheme, formatting and recognition in subjects.

use regex::Regex;
use std::sync::LazyLock;

/// Number prefix of tickets.
pub const TICKET_PREFIX: char = 'T';

/// `T` + date + `.` + sequence (four digits or more), not glued to letters or digits.
static TICKET_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|[^\p{L}\p{N}])(T)(\d{4})(\d{2})(\d{2})\.(\d{4,9})(?:$|[^\p{L}\p{N}])")
        .expect("ticket number pattern")
});

/// Format a ticket number from its day (`YYYYMMDD`) and sequence.
pub fn format_ticket_number(day: &str, seq: i64) -> String {
    format!("{TICKET_PREFIX}{day}.{seq:04}")
}

/// Every plausible ticket number in a text, upper-cased, in order, without repeats.
/// Prefixes (`Re:`, `AW:`, `[…]`, `(…)`) need no special handling: the number may stand anywhere.
pub fn ticket_numbers(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut start = 0;
    // Matches may share the separator character, so search again from the end of each number.
    while let Some(caps) = TICKET_NUMBER.captures_at(text, start) {
        let seq = caps.get(5).expect("group");
        let (y, m, d) = (&caps[2], &caps[3], &caps[4]);
        let month: u32 = m.parse().unwrap_or(0);
        let day: u32 = d.parse().unwrap_or(0);
        let year: u32 = y.parse().unwrap_or(0);
        if (1..=12).contains(&month) && (1..=31).contains(&day) && year >= 1990 {
            let number = format!("{TICKET_PREFIX}{y}{m}{d}.{}", seq.as_str());
            if !out.contains(&number) {
                out.push(number);
            }
        }
        start = seq.end();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_pads_to_four_digits() {
        assert_eq!(format_ticket_number("20261127", 1), "T20261127.0001");
        assert_eq!(format_ticket_number("20261127", 12345), "T20261127.12345");
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
            assert!(ticket_numbers(subject).is_empty(), "{subject}");
        }
    }

    #[test]
    fn several_numbers_in_order_without_repeats() {
        assert_eq!(
            ticket_numbers("T20261127.0002 T20261126.0001,T20261127.0002"),
            vec!["T20261127.0002", "T20261126.0001"]
        );
    }
}
