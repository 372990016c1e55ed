//! The compiled SQL configuration: mailboxes by address, the tag matcher, public domains and
//! typed settings. Built once per load, then shared read-only by every message.

use chrono::{DateTime, FixedOffset, Local, Offset, Utc};
use std::collections::{HashMap, HashSet};

use super::tags::{TagDef, TagMatcher};
use crate::model::Mailbox;

/// Where local dates (ticket numbers, default titles) are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeZone {
    /// The host's zone (TZ / /etc/localtime).
    Local,
    /// A fixed offset from UTC (`UTC`, `+01:00`, `-05:30`).
    Fixed(FixedOffset),
}

impl TimeZone {
    pub fn parse(s: &str) -> Option<TimeZone> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("local") {
            return Some(TimeZone::Local);
        }
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Some(TimeZone::Fixed(Utc.fix()));
        }
        let (sign, rest) = match s.as_bytes().first()? {
            b'+' => (1, &s[1..]),
            b'-' => (-1, &s[1..]),
            _ => return None,
        };
        let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        if !(0..=14).contains(&h) || !(0..60).contains(&m) {
            return None;
        }
        FixedOffset::east_opt(sign * (h * 3600 + m * 60)).map(TimeZone::Fixed)
    }

    /// The wall-clock time of an instant in this zone.
    pub fn local(&self, t: DateTime<Utc>) -> chrono::NaiveDateTime {
        match self {
            TimeZone::Local => t.with_timezone(&Local).naive_local(),
            TimeZone::Fixed(off) => t.with_timezone(off).naive_local(),
        }
    }
}

/// Settings from the `settings` table, typed. Every key has a default.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `keep_raw_messages`: store each processed message as received (default true).
    pub keep_raw_messages: bool,
    /// `max_tags`: most tags a ticket gets from mailbox and text together (default 30).
    pub max_tags: usize,
    /// `time_zone`: `local`, `UTC` or `±HH:MM`; dates of ticket numbers and titles (default local).
    pub time_zone: TimeZone,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            keep_raw_messages: true,
            max_tags: 30,
            time_zone: TimeZone::Local,
        }
    }
}

/// Every setting key with its meaning and default, for `check` and the docs.
pub const SETTING_KEYS: &[(&str, &str, &str)] = &[
    ("keep_raw_messages", "true", "store each processed message as received (true/false)"),
    ("max_tags", "30", "most tags per ticket, required and automatic together (0-1000)"),
    ("time_zone", "local", "zone of ticket-number dates and default titles: local, UTC or +HH:MM"),
];

impl Settings {
    /// Type the raw key/value rows. Bad values keep their default and are reported.
    pub fn from_rows(rows: &[(String, String)]) -> (Settings, Vec<String>) {
        let mut s = Settings::default();
        let mut problems = Vec::new();
        for (key, value) in rows {
            let v = value.trim();
            let bad = |what: &str| format!("setting {key} = {value:?}: {what}");
            match key.as_str() {
                "keep_raw_messages" => match parse_bool(v) {
                    Some(b) => s.keep_raw_messages = b,
                    None => problems.push(bad("expected true or false")),
                },
                "max_tags" => match v.parse::<usize>() {
                    Ok(n) if n <= 1000 => s.max_tags = n,
                    _ => problems.push(bad("expected a whole number from 0 to 1000")),
                },
                "time_zone" => match TimeZone::parse(v) {
                    Some(tz) => s.time_zone = tz,
                    None => problems.push(bad("expected local, UTC or an offset such as +01:00")),
                },
                _ => problems.push(format!(
                    "unknown setting {key:?} (known: {})",
                    SETTING_KEYS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
                )),
            }
        }
        (s, problems)
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Everything the SQL configuration says, as loaded by the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfRows {
    pub mailboxes: Vec<Mailbox>,
    pub tags: Vec<TagDef>,
    pub public_domains: Vec<String>,
    pub settings: Vec<(String, String)>,
    /// Problems the store found while resolving rows (e.g. a bad enum value in a mailbox).
    pub problems: Vec<String>,
}

/// The compiled configuration.
#[derive(Debug)]
pub struct Snapshot {
    mailboxes: HashMap<String, Mailbox>,
    pub tags: TagMatcher,
    public_domains: HashSet<String>,
    pub settings: Settings,
    /// What was wrong in the rows (the snapshot works around it; `check` reports it).
    pub problems: Vec<String>,
    /// The rows it was built from (to tell whether a reload changes anything).
    rows: ConfRows,
}

impl Snapshot {
    pub fn build(rows: ConfRows) -> Snapshot {
        let source = rows.clone();
        let (settings, mut problems) = Settings::from_rows(&rows.settings);
        problems.extend(rows.problems);
        let mut mailboxes = HashMap::new();
        for mb in rows.mailboxes {
            let key = mb.address.trim().to_ascii_lowercase();
            if key.split_once('@').is_none_or(|(l, d)| l.is_empty() || d.is_empty()) {
                problems.push(format!("mailbox {:?}: not a mail address", mb.address));
            }
            mailboxes.insert(key, mb);
        }
        Snapshot {
            mailboxes,
            tags: TagMatcher::new(&rows.tags),
            public_domains: rows.public_domains.into_iter().map(|d| d.to_ascii_lowercase()).collect(),
            settings,
            problems,
            rows: source,
        }
    }

    /// The rows the snapshot was built from.
    pub fn rows(&self) -> &ConfRows {
        &self.rows
    }

    /// The active mailbox a recipient names: case-insensitive, `+detail` ignored.
    pub fn mailbox_for(&self, rcpt: &str) -> Option<&Mailbox> {
        let key = normalise_recipient(rcpt);
        self.mailboxes.get(&key)
    }

    /// All active mailboxes, in address order.
    pub fn mailboxes(&self) -> Vec<&Mailbox> {
        let mut v: Vec<&Mailbox> = self.mailboxes.values().collect();
        v.sort_by(|a, b| a.address.cmp(&b.address));
        v
    }

    pub fn is_public_domain(&self, domain: &str) -> bool {
        self.public_domains.contains(&domain.to_ascii_lowercase())
    }
}

/// `<Support+urgent@Example.COM>` -> `support@example.com`.
pub fn normalise_recipient(rcpt: &str) -> String {
    let r = rcpt.trim().trim_start_matches('<').trim_end_matches('>').trim();
    let (local, domain) = match r.rsplit_once('@') {
        Some(parts) => parts,
        None => (r, ""),
    };
    let local = local.trim_matches('"');
    let local = local.split_once('+').map_or(local, |(base, _)| base);
    if domain.is_empty() {
        local.to_ascii_lowercase()
    } else {
        format!("{}@{}", local.to_ascii_lowercase(), domain.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_normalised() {
        assert_eq!(normalise_recipient("<Support+Urgent@Example.COM>"), "support@example.com");
        assert_eq!(normalise_recipient("support@example.com"), "support@example.com");
        assert_eq!(normalise_recipient("\"support\"@example.com"), "support@example.com");
    }

    #[test]
    fn settings_are_typed_and_checked() {
        let rows = vec![
            ("max_tags".to_string(), "5".to_string()),
            ("keep_raw_messages".to_string(), "maybe".to_string()),
            ("time_zone".to_string(), "+01:30".to_string()),
            ("colour".to_string(), "blue".to_string()),
        ];
        let (s, problems) = Settings::from_rows(&rows);
        assert_eq!(s.max_tags, 5);
        assert!(s.keep_raw_messages);
        assert_eq!(s.time_zone, TimeZone::Fixed(FixedOffset::east_opt(5400).unwrap()));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("keep_raw_messages"));
        assert!(problems[1].contains("unknown setting \"colour\""));
    }

    #[test]
    fn time_zones() {
        assert_eq!(TimeZone::parse("UTC"), Some(TimeZone::Fixed(Utc.fix())));
        assert_eq!(TimeZone::parse("-05:00"), Some(TimeZone::Fixed(FixedOffset::west_opt(18000).unwrap())));
        assert_eq!(TimeZone::parse("Europe/Berlin"), None);
        assert_eq!(TimeZone::parse("+25:00"), None);
    }
}
