//! Autotask-style email indicators (`#T=1.5 #R=Engineer #S="In Progress"`) on the first
//! non-empty line of a message text: recognition, time parsing, and the text without that line.
//!
//! The rules follow Autotask: only the first non-empty line counts, it must hold nothing but
//! indicators, and `#R=` / `#S=` only mean something together with `#T=` (alone they stay
//! ordinary text). A line that is not an indicator line leaves the text untouched (`None`); an
//! indicator line with an unusable value is an error the sender should be told about.

use regex::Regex;
use std::fmt;
use std::sync::LazyLock;

use super::parse::collapse_ws;

/// Longest time an indicator may book, in minutes.
const MAX_MINUTES: u32 = 24 * 60;

/// The forms `#T=` accepts, for error messages.
const ACCEPTED_TIME_FORMS: &str = "accepted are hours such as 1.5 or 1,5, hours and minutes such as \
     1:30, 1h30m, 1h 30m or 2h, minutes such as 90m or 45min (more than zero, at most 24 hours), \
     or a range of clock times such as 09:00-10:30";

/// Clock range: `09:00-10:30` (also `9.00-10.30`, with an en or em dash).
static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([0-9]{1,2})[:.]([0-9]{2})[-–—]([0-9]{1,2})[:.]([0-9]{2})$").expect("range pattern")
});
/// Hours and minutes with a colon: `1:30`.
static CLOCK_DURATION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^([0-9]+):([0-9]{2})$").expect("h:mm pattern"));
/// Whole hours and minutes: `1h30m`, `1h30min`, `1h30` (whitespace is removed before matching).
static HOURS_MINUTES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([0-9]+)h([0-9]+)(?:m|min|mins)?$").expect("h+m pattern"));
/// Minutes: `90m`, `45min`.
static MINUTES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^([0-9]+)(?:m|min|mins)$").expect("minutes pattern"));
/// Decimal hours with point or comma, optionally with `h`: `1.5`, `1,5`, `,5`, `2h`, `1.5h`.
static DECIMAL_HOURS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([0-9]*)(?:[.,]([0-9]+))?h?$").expect("decimal hours pattern"));
/// A token that continues a `#T=…h` value: the `30m` of `#T=1h 30m`.
static MINUTES_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^[0-9]+(?:m|min|mins)$").expect("minutes token pattern"));

/// The indicators of a message. `time` is always set when `find` succeeds (no `#T`, no indicators).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indicators {
    /// `#T=`: the time to book.
    pub time: Option<TimeSpec>,
    /// `#R=`: the role (work type) the time is booked under.
    pub role: Option<String>,
    /// `#S=`: the status the ticket is set to.
    pub status: Option<String>,
}

/// A time as given by `#T=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// A duration, already rounded to whole minutes (1 ..= 1440).
    Duration { minutes: u32 },
    /// Clock times of one day, `(hour, minute)`; the end is after the start (it may be `(24, 0)`).
    Range { start: (u32, u32), end: (u32, u32) },
}

impl TimeSpec {
    /// The length of the time in minutes.
    pub fn minutes(&self) -> u32 {
        match *self {
            TimeSpec::Duration { minutes } => minutes,
            TimeSpec::Range { start, end } => (end.0 * 60 + end.1).saturating_sub(start.0 * 60 + start.1),
        }
    }
}

impl fmt::Display for TimeSpec {
    /// `1h 30m`, `45m`, `2h`, or `09:00-10:30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TimeSpec::Duration { minutes } => match (minutes / 60, minutes % 60) {
                (0, m) => write!(f, "{m}m"),
                (h, 0) => write!(f, "{h}h"),
                (h, m) => write!(f, "{h}h {m}m"),
            },
            TimeSpec::Range { start, end } => write!(f, "{:02}:{:02}-{:02}:{:02}", start.0, start.1, end.0, end.1),
        }
    }
}

/// An indicator line that was found and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub indicators: Indicators,
    /// The text without the indicator line, the blank lines before it and the blank lines right
    /// after it; the remaining text is kept byte for byte (line ends included).
    pub rest: String,
    /// The indicator line as written (without its line end).
    pub line: String,
}

/// An indicator line that cannot be used. `Display` says what is wrong in a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndicatorError {
    /// `#T=` holds something that is not a usable time; `reason` says why and lists the forms.
    BadTime { value: String, reason: String },
    /// An indicator is given more than once (`#T`, `#R` or `#S`).
    Duplicate(String),
    /// `#R=` or `#S=` without a value (`#R=` or `#R=""`).
    Empty(String),
    /// A quoted value whose closing quote is missing (`#R="Senior Engineer`).
    UnclosedQuote(String),
}

impl fmt::Display for IndicatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndicatorError::BadTime { value, reason } => {
                write!(f, "The time indicator #T={value} cannot be used: {reason}.")
            }
            IndicatorError::Duplicate(key) => write!(
                f,
                "The indicator {key} is given more than once in the indicator line; give each of #T, #R and #S at most once."
            ),
            IndicatorError::Empty(key) => {
                let (one, two) = examples(key);
                write!(
                    f,
                    "The indicator {key} has no value; write it as {key}={one}, or in quotes as {key}=\"{two}\" when the value has spaces."
                )
            }
            IndicatorError::UnclosedQuote(key) => {
                let (_, two) = examples(key);
                write!(
                    f,
                    "The value of the indicator {key} opens a quote that is never closed; write it as {key}=\"{two}\"."
                )
            }
        }
    }
}

impl std::error::Error for IndicatorError {}

/// Example values for messages about `key`.
fn examples(key: &str) -> (&'static str, &'static str) {
    match key {
        "#S" => ("Complete", "In Progress"),
        "#T" => ("1.5", "1h 30m"),
        _ => ("Engineer", "Senior Engineer"),
    }
}

/// Which indicator a token sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Time,
    Role,
    Status,
}

impl Key {
    fn label(self) -> &'static str {
        match self {
            Key::Time => "#T",
            Key::Role => "#R",
            Key::Status => "#S",
        }
    }
}

/// One `#X=value` on the line, before its value is checked.
#[derive(Debug)]
struct Token {
    key: Key,
    value: String,
    /// The value was written in quotes (it is not extended by a following `30m`).
    quoted: bool,
    /// The value opened a quote that was not closed before the end of the line.
    unclosed: bool,
}

/// Look for an indicator line.
///
/// `None`: the first non-empty line is not an indicator line (anything besides indicators on
/// it, or no `#T=`); the text stays as it is. `Some(Err(_))`: it is an indicator line, but a
/// value cannot be used. `Some(Ok(_))`: the indicators and the text without the line.
pub fn find(text: &str) -> Option<Result<Found, IndicatorError>> {
    let mut lines = lines_with_offsets(text);
    let (line, after) = lines
        .find(|(_, line, _)| !is_blank(line))
        .map(|(_, line, next)| (line, next))?;
    let tokens = lex(line)?;
    if !tokens.iter().any(|t| t.key == Key::Time) {
        // Autotask: #R and #S without #T are ordinary text.
        return None;
    }
    let indicators = match interpret(tokens) {
        Ok(i) => i,
        Err(e) => return Some(Err(e)),
    };
    // The blank lines right after the indicator line go with it.
    let rest_start = lines
        .find(|(_, line, _)| !is_blank(line))
        .map_or(text.len(), |(start, _, _)| start);
    let rest = text.get(rest_start.max(after)..).unwrap_or_default().to_string();
    Some(Ok(Found {
        indicators,
        rest,
        line: line.to_string(),
    }))
}

/// Lines as `(start offset, content without line end, offset of the next line)`.
fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str, usize)> {
    text.split_inclusive('\n').scan(0usize, |pos, raw| {
        let start = *pos;
        *pos += raw.len();
        let content = raw.strip_suffix('\n').unwrap_or(raw);
        let content = content.strip_suffix('\r').unwrap_or(content);
        Some((start, content, *pos))
    })
}

/// Whitespace only (a byte order mark counts as nothing, too).
fn is_blank(line: &str) -> bool {
    line.chars().all(|c| c.is_whitespace() || c == '\u{feff}')
}

/// Whitespace between indicators: any Unicode white space (HTML-rendered text has NBSPs).
fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// The closing quote for an opening one, for quoted values (ASCII and typographic quotes, as
/// mail clients autocorrect them).
fn closing_quote(open: char) -> Option<char> {
    match open {
        '"' => Some('"'),
        '\'' => Some('\''),
        '“' => Some('”'),
        '„' => Some('“'),
        '”' => Some('”'),
        '‘' => Some('’'),
        '‚' => Some('‘'),
        '«' => Some('»'),
        '»' => Some('«'),
        _ => None,
    }
}

/// Split the line into indicator tokens; `None` when anything else is on it.
fn lex(line: &str) -> Option<Vec<Token>> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut rest = line.trim_start_matches(is_space);
    while !rest.is_empty() {
        let mut chars = rest.chars();
        let key = match (chars.next(), chars.next(), chars.next()) {
            (Some('#'), Some('t' | 'T'), Some('=')) => Some(Key::Time),
            (Some('#'), Some('r' | 'R'), Some('=')) => Some(Key::Role),
            (Some('#'), Some('s' | 'S'), Some('=')) => Some(Key::Status),
            _ => None,
        };
        let Some(key) = key else {
            // Not an indicator: only the minutes of `#T=1h 30m` may stand alone.
            let end = rest.find(is_space).unwrap_or(rest.len());
            let word = &rest[..end];
            let last = tokens.last_mut()?;
            let continues_time = last.key == Key::Time
                && !last.quoted
                && last.value.ends_with(['h', 'H'])
                && MINUTES_TOKEN.is_match(word);
            if !continues_time {
                return None;
            }
            last.value.push(' ');
            last.value.push_str(word);
            rest = rest[end..].trim_start_matches(is_space);
            continue;
        };
        // `#`, the key letter and `=` are ASCII: three bytes.
        rest = &rest[3..];
        let first = rest.chars().next();
        let token = match first.and_then(|open| Some((open, closing_quote(open)?))) {
            Some((open, close)) => {
                let body = &rest[open.len_utf8()..];
                match body.find(close) {
                    Some(end) => {
                        rest = &body[end + close.len_utf8()..];
                        // A quoted value must be followed by whitespace or the end of the line.
                        if rest.chars().next().is_some_and(|c| !is_space(c)) {
                            return None;
                        }
                        Token {
                            key,
                            value: body[..end].to_string(),
                            quoted: true,
                            unclosed: false,
                        }
                    }
                    None => {
                        rest = "";
                        Token {
                            key,
                            value: body.to_string(),
                            quoted: true,
                            unclosed: true,
                        }
                    }
                }
            }
            None => {
                let end = rest.find(is_space).unwrap_or(rest.len());
                let value = rest[..end].to_string();
                rest = &rest[end..];
                Token {
                    key,
                    value,
                    quoted: false,
                    unclosed: false,
                }
            }
        };
        tokens.push(token);
        rest = rest.trim_start_matches(is_space);
    }
    Some(tokens)
}

/// Check the tokens of an indicator line and read their values.
fn interpret(tokens: Vec<Token>) -> Result<Indicators, IndicatorError> {
    // A repeated key is reported first: which of the values was meant is anyone's guess.
    for (n, token) in tokens.iter().enumerate() {
        if tokens[..n].iter().any(|t| t.key == token.key) {
            return Err(IndicatorError::Duplicate(token.key.label().to_string()));
        }
    }
    let mut out = Indicators::default();
    for token in tokens {
        let label = token.key.label();
        if token.unclosed {
            return Err(IndicatorError::UnclosedQuote(label.to_string()));
        }
        match token.key {
            Key::Time => {
                let time = parse_time(&token.value).map_err(|problem| IndicatorError::BadTime {
                    value: token.value.clone(),
                    reason: format!("{problem}; {ACCEPTED_TIME_FORMS}"),
                })?;
                out.time = Some(time);
            }
            Key::Role | Key::Status => {
                let value = collapse_ws(&token.value);
                if value.is_empty() {
                    return Err(IndicatorError::Empty(label.to_string()));
                }
                if token.key == Key::Role {
                    out.role = Some(value);
                } else {
                    out.status = Some(value);
                }
            }
        }
    }
    Ok(out)
}

const NOT_A_TIME: &str = "it is not a time in any of the accepted forms";
const TOO_LONG: &str = "a time can be at most 24 hours";
const ZERO: &str = "a time must be more than zero";
const MINUTES_OVER_59: &str = "the minutes must be below 60";

/// A number of digits; `None` when it does not fit (which only a far too long time does).
fn number(digits: &str) -> Option<u64> {
    digits.parse().ok()
}

/// Read a `#T=` value. The error is the problem in words (without the accepted forms).
fn parse_time(value: &str) -> Result<TimeSpec, String> {
    let v: String = value
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    if v.is_empty() {
        return Err("no time is given".into());
    }
    if let Some(c) = RANGE.captures(&v) {
        let part = |i: usize| number(&c[i]).unwrap_or(u64::MAX);
        let (sh, sm, eh, em) = (part(1), part(2), part(3), part(4));
        if sh > 23 || sm > 59 {
            return Err(format!("{}:{} is not a time of day", &c[1], &c[2]));
        }
        if !(eh <= 23 && em <= 59 || eh == 24 && em == 0) {
            return Err(format!("{}:{} is not a time of day", &c[3], &c[4]));
        }
        let (start, end) = (sh * 60 + sm, eh * 60 + em);
        if end == start {
            return Err("the range ends when it starts".into());
        }
        if end < start {
            return Err(
                "the range ends before it starts (a range over midnight is not accepted; give the duration instead)"
                    .into(),
            );
        }
        // All four are below 60 here, so the casts are lossless.
        return Ok(TimeSpec::Range {
            start: (sh as u32, sm as u32),
            end: (eh as u32, em as u32),
        });
    }
    let minutes: u64 = if let Some(c) = CLOCK_DURATION.captures(&v) {
        let m = number(&c[2]).unwrap_or(u64::MAX);
        if m > 59 {
            return Err(MINUTES_OVER_59.into());
        }
        let h = number(&c[1]).ok_or(TOO_LONG)?;
        h.saturating_mul(60).saturating_add(m)
    } else if let Some(c) = HOURS_MINUTES.captures(&v) {
        let m = number(&c[2]).unwrap_or(u64::MAX);
        if m > 59 {
            return Err(MINUTES_OVER_59.into());
        }
        let h = number(&c[1]).ok_or(TOO_LONG)?;
        h.saturating_mul(60).saturating_add(m)
    } else if let Some(c) = MINUTES.captures(&v) {
        number(&c[1]).ok_or(TOO_LONG)?
    } else if let Some(c) = DECIMAL_HOURS.captures(&v) {
        let whole = c.get(1).map_or("", |m| m.as_str());
        let fraction = c.get(2).map_or("", |m| m.as_str());
        if whole.is_empty() && fraction.is_empty() {
            return Err(NOT_A_TIME.into());
        }
        let hours = if whole.is_empty() {
            0
        } else {
            number(whole).ok_or(TOO_LONG)?
        };
        if hours > 24 {
            return Err(TOO_LONG.into());
        }
        hours * 60 + fraction_minutes(fraction)
    } else {
        return Err(NOT_A_TIME.into());
    };
    if minutes == 0 {
        return Err(ZERO.into());
    }
    if minutes > u64::from(MAX_MINUTES) {
        return Err(TOO_LONG.into());
    }
    // At most 1440 here.
    Ok(TimeSpec::Duration {
        minutes: minutes as u32,
    })
}

/// The decimal fraction of an hour (the digits after the point) in minutes, rounded half up.
/// Digits beyond the ninth cannot change a whole minute except at an exact half; they are ignored.
fn fraction_minutes(digits: &str) -> u64 {
    let digits = &digits[..digits.len().min(9)];
    if digits.is_empty() {
        return 0;
    }
    let numerator = number(digits).unwrap_or(0);
    let scale = 10u64.pow(digits.len() as u32);
    (numerator * 120 + scale) / (2 * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Found {
        match find(text) {
            Some(Ok(f)) => f,
            other => panic!("expected indicators in {text:?}, got {other:?}"),
        }
    }

    fn minutes(text: &str) -> u32 {
        found(text).indicators.time.expect("time").minutes()
    }

    fn error(text: &str) -> IndicatorError {
        match find(text) {
            Some(Err(e)) => e,
            other => panic!("expected an error for {text:?}, got {other:?}"),
        }
    }

    fn duration(minutes: u32) -> Option<TimeSpec> {
        Some(TimeSpec::Duration { minutes })
    }

    #[test]
    fn all_three_indicators_and_the_rest() {
        let f = found("#T=1.5 #R=Engineer #S=Complete\n\nPrinter fixed.\nToner replaced.\n");
        assert_eq!(
            f.indicators,
            Indicators {
                time: duration(90),
                role: Some("Engineer".into()),
                status: Some("Complete".into())
            }
        );
        assert_eq!(f.rest, "Printer fixed.\nToner replaced.\n");
        assert_eq!(f.line, "#T=1.5 #R=Engineer #S=Complete");
    }

    #[test]
    fn time_alone_is_enough() {
        let f = found("#T=2h\nDone.");
        assert_eq!(
            f.indicators,
            Indicators {
                time: duration(120),
                role: None,
                status: None
            }
        );
        assert_eq!(f.rest, "Done.");
    }

    #[test]
    fn keys_are_case_insensitive_and_order_is_free() {
        let f = found("#s=Waiting #r=Tech #t=45min");
        assert_eq!(f.indicators.time, duration(45));
        assert_eq!(f.indicators.role.as_deref(), Some("Tech"));
        assert_eq!(f.indicators.status.as_deref(), Some("Waiting"));
        assert_eq!(f.rest, "");
    }

    #[test]
    fn every_duration_form() {
        for (text, expected) in [
            ("#T=1.5", 90),
            ("#T=1,5", 90),
            ("#T=,5", 30),
            ("#T=.25", 15),
            ("#T=1:30", 90),
            ("#T=0:05", 5),
            ("#T=90m", 90),
            ("#T=90M", 90),
            ("#T=45min", 45),
            ("#T=1h30m", 90),
            ("#T=1h30min", 90),
            ("#T=1h30", 90),
            ("#T=1h 30m", 90),
            ("#T=1H 30M", 90),
            ("#T=1h 30min", 90),
            ("#T=2h", 120),
            ("#T=1.5h", 90),
            ("#T=2", 120),
            ("#T=24", 1440),
            ("#T=24:00", 1440),
            ("#T=1440m", 1440),
            ("#T=\"1h 30m\"", 90),
            ("#T='1 h 30 m'", 90),
        ] {
            assert_eq!(minutes(text), expected, "{text}");
        }
    }

    #[test]
    fn fractions_are_rounded_to_the_nearest_minute() {
        assert_eq!(minutes("#T=0.01"), 1); // 0.6 min
        assert_eq!(minutes("#T=0.0125"), 1); // 0.75 min
        assert_eq!(minutes("#T=0.1"), 6);
        assert_eq!(minutes("#T=0.333"), 20); // 19.98 min
        assert_eq!(minutes("#T=1.00833"), 60); // 60.4998 min
        assert_eq!(minutes("#T=1.00834"), 61); // 60.5004 min
        assert_eq!(minutes("#T=1.0083333333333333333"), 60); // just below 60.5 min
        assert_eq!(minutes("#T=0.025"), 2); // exactly 1.5 min rounds up
        assert_eq!(minutes("#T=23.999"), 1440); // 1439.94 min
        // Rounds to nothing: not a time to book.
        assert!(matches!(error("#T=0.005"), IndicatorError::BadTime { .. }));
    }

    #[test]
    fn a_range_of_clock_times() {
        let f = found("#T=09:00-10:30 #R=Engineer\nOn site.");
        assert_eq!(
            f.indicators.time,
            Some(TimeSpec::Range {
                start: (9, 0),
                end: (10, 30)
            })
        );
        assert_eq!(f.indicators.time.unwrap().minutes(), 90);
        assert_eq!(f.rest, "On site.");
        assert_eq!(minutes("#T=9:15-9:45"), 30);
        assert_eq!(minutes("#T=9.15-11.00"), 105);
        assert_eq!(minutes("#T=08:00–12:00"), 240);
        assert_eq!(minutes("#T=00:00-24:00"), 1440);
        assert_eq!(minutes("#T='09:00 - 10:00'"), 60);
    }

    #[test]
    fn bad_ranges() {
        for text in [
            "#T=10:30-09:00",
            "#T=23:00-01:00",
            "#T=10:00-10:00",
            "#T=25:00-26:00",
            "#T=09:60-10:00",
            "#T=09:00-24:30",
            "#T=24:00-24:00",
        ] {
            assert!(matches!(error(text), IndicatorError::BadTime { .. }), "{text}");
        }
        let IndicatorError::BadTime { reason, .. } = error("#T=22:00-02:00") else {
            unreachable!()
        };
        assert!(reason.contains("midnight"), "{reason}");
    }

    #[test]
    fn bad_times_name_the_value_and_the_accepted_forms() {
        for (text, value) in [
            ("#T=abc", "abc"),
            ("#T=0", "0"),
            ("#T=0:00", "0:00"),
            ("#T=0m", "0m"),
            ("#T=25", "25"),
            ("#T=24.5", "24.5"),
            ("#T=1441m", "1441m"),
            ("#T=25:00", "25:00"),
            ("#T=1:75", "1:75"),
            ("#T=1h75m", "1h75m"),
            ("#T=1.5.", "1.5."),
            ("#T=1.5, #R=Engineer", "1.5,"), // unquoted values end at whitespace only
            ("#T=-1", "-1"),
            ("#T=1.", "1."),
            ("#T=h", "h"),
            ("#T=", ""),
            ("#T=\"\"", ""),
            ("#T=99999999999999999999999", "99999999999999999999999"),
            ("#T=99999999999999999999999m", "99999999999999999999999m"),
            ("#T=99999999999999999999999:00", "99999999999999999999999:00"),
            ("#T=١٢", "١٢"),
        ] {
            let e = error(text);
            let IndicatorError::BadTime { value: v, reason } = &e else {
                panic!("{text}: {e:?}")
            };
            assert_eq!(v, value, "{text}");
            assert!(reason.contains("1h 30m") && reason.contains("09:00-10:30"), "{reason}");
            let shown = e.to_string();
            assert!(shown.contains(&format!("#T={value}")), "{shown}");
            assert!(shown.contains("1,5") && shown.contains("45min"), "{shown}");
            assert!(shown.starts_with("The ") && shown.ends_with('.'), "{shown}");
        }
        let IndicatorError::BadTime { reason, .. } = error("#T=25") else {
            unreachable!()
        };
        assert!(reason.starts_with("a time can be at most 24 hours"), "{reason}");
        let IndicatorError::BadTime { reason, .. } = error("#T=0") else {
            unreachable!()
        };
        assert!(reason.starts_with("a time must be more than zero"), "{reason}");
    }

    #[test]
    fn quoted_values_hold_spaces() {
        let f = found("#T=1 #R=\"Senior Engineer\" #S='In Progress'\nText");
        assert_eq!(f.indicators.role.as_deref(), Some("Senior Engineer"));
        assert_eq!(f.indicators.status.as_deref(), Some("In Progress"));
        // Typographic quotes, as autocorrected by mail clients; inner whitespace is collapsed.
        let f = found("#T=1 #R=“Senior   Engineer” #S=„In Arbeit“");
        assert_eq!(f.indicators.role.as_deref(), Some("Senior Engineer"));
        assert_eq!(f.indicators.status.as_deref(), Some("In Arbeit"));
        // A quote of the other kind inside is part of the value.
        let f = found("#T=1 #R=\"O'Brien's role\"");
        assert_eq!(f.indicators.role.as_deref(), Some("O'Brien's role"));
    }

    #[test]
    fn unquoted_values_end_at_whitespace() {
        // "Engineer" is not an indicator: the line is not an indicator line.
        assert_eq!(find("#T=1 #R=Senior Engineer\nText"), None);
        let f = found("#T=1\t#R=Senior-Engineer\u{a0}#S=Done");
        assert_eq!(f.indicators.role.as_deref(), Some("Senior-Engineer"));
        assert_eq!(f.indicators.status.as_deref(), Some("Done"));
    }

    #[test]
    fn role_and_status_without_time_are_ordinary_text() {
        assert_eq!(find("#R=Engineer #S=Complete\nText"), None);
        assert_eq!(find("#S=Complete"), None);
        assert_eq!(find("#R=\"Senior Engineer"), None);
        assert_eq!(find("#R=a #R=b"), None);
    }

    #[test]
    fn anything_else_on_the_line_means_no_indicators() {
        for text in [
            "Hello #T=1.5",
            "#T=1.5 thanks",
            "#T = 1.5",
            "#T=1 #X=2",
            "#Time=1",
            "# T=1",
            "T=1",
            "#T=1 #R=\"Senior Engineer\"x",
            "#T=1.5 30m",
            "#T=90m 30m",
            "#T=\"1h\" 30m",
            "#T=1h 30m 10m",
            "#T=1h 30",
            "#T=09:00 - 10:30",
            "#T=1 #",
            "#T=1 #R",
        ] {
            assert_eq!(find(text), None, "{text}");
        }
    }

    #[test]
    fn only_the_first_non_empty_line_counts() {
        let f = found("\n  \n\t\n#T=1\n\nText\n");
        assert_eq!(f.indicators.time, duration(60));
        assert_eq!(f.rest, "Text\n");
        assert_eq!(f.line, "#T=1");
        assert_eq!(find("Hello,\n#T=1\nText"), None);
        assert_eq!(find("Hello,\n\n#T=1"), None);
    }

    #[test]
    fn leading_whitespace_and_line_ends_are_kept_in_line_and_rest() {
        let f = found("  #T=1  \r\n\r\n \r\nFirst\r\n\r\nSecond\r\n");
        assert_eq!(f.line, "  #T=1  ");
        assert_eq!(f.rest, "First\r\n\r\nSecond\r\n");
        let f = found("\u{feff}#T=15m\nText");
        assert_eq!(f.indicators.time, duration(15));
        assert_eq!(f.rest, "Text");
    }

    #[test]
    fn only_the_indicator_line() {
        assert_eq!(found("#T=1").rest, "");
        assert_eq!(found("#T=1\n").rest, "");
        assert_eq!(found("#T=1\n\n  \n").rest, "");
    }

    #[test]
    fn a_repeated_key_is_an_error() {
        assert_eq!(error("#T=1 #T=2"), IndicatorError::Duplicate("#T".into()));
        assert_eq!(error("#t=1 #R=a #r=b"), IndicatorError::Duplicate("#R".into()));
        assert_eq!(error("#S=a #T=1 #s=a"), IndicatorError::Duplicate("#S".into()));
        // Reported before a bad value.
        assert_eq!(error("#T=abc #T=abc"), IndicatorError::Duplicate("#T".into()));
        let shown = IndicatorError::Duplicate("#T".into()).to_string();
        assert!(shown.contains("#T") && shown.contains("more than once"), "{shown}");
    }

    #[test]
    fn empty_and_unclosed_values() {
        assert_eq!(error("#T=1 #R="), IndicatorError::Empty("#R".into()));
        assert_eq!(error("#T=1 #S=\"  \""), IndicatorError::Empty("#S".into()));
        assert_eq!(
            error("#T=1 #R=\"Senior Engineer"),
            IndicatorError::UnclosedQuote("#R".into())
        );
        assert_eq!(error("#T=\"1h"), IndicatorError::UnclosedQuote("#T".into()));
        let shown = IndicatorError::Empty("#S".into()).to_string();
        assert!(shown.contains("#S=\"In Progress\""), "{shown}");
        let shown = IndicatorError::UnclosedQuote("#R".into()).to_string();
        assert!(shown.contains("#R=\"Senior Engineer\""), "{shown}");
    }

    #[test]
    fn time_spec_display() {
        assert_eq!(TimeSpec::Duration { minutes: 90 }.to_string(), "1h 30m");
        assert_eq!(TimeSpec::Duration { minutes: 45 }.to_string(), "45m");
        assert_eq!(TimeSpec::Duration { minutes: 120 }.to_string(), "2h");
        assert_eq!(
            TimeSpec::Range {
                start: (9, 0),
                end: (10, 30)
            }
            .to_string(),
            "09:00-10:30"
        );
        assert_eq!(
            TimeSpec::Range {
                start: (10, 0),
                end: (9, 0)
            }
            .minutes(),
            0
        );
    }

    #[test]
    fn odd_input_never_panics() {
        let long = "#T=1 ".repeat(50_000);
        let long_word = "x".repeat(1_000_000);
        let inputs: Vec<String> = vec![
            String::new(),
            " ".into(),
            "\n\n\r\n\t".into(),
            "#".into(),
            "#T".into(),
            "#T=".into(),
            "#T=\"".into(),
            "#T='".into(),
            "#T=“".into(),
            "#T=1 #R=“".into(),
            "#T=1h ".into(),
            "#T=1h 30".into(),
            "#T=é".into(),
            "#T=1 #R=日本語 #S=✓".into(),
            "#T=１".into(),
            "#T=1h\u{2003}30m".into(),
            "\u{feff}".into(),
            "\r".into(),
            "#T=1\r".into(),
            long.clone(),
            long_word.clone(),
            format!("#T=1 #R={long_word}"),
            format!("#T={long_word}"),
        ];
        for input in &inputs {
            let _ = find(input);
        }
        assert_eq!(error(&long), IndicatorError::Duplicate("#T".into()));
        assert_eq!(found("#T=1 #R=日本語 #S=✓").indicators.role.as_deref(), Some("日本語"));
        assert_eq!(minutes("#T=1h\u{2003}30m"), 90);
        assert_eq!(found("#T=1\r").line, "#T=1");
    }

    /// Random concatenations of tricky fragments (a fixed xorshift sequence, so reproducible).
    #[test]
    fn random_fragments_never_panic() {
        let extra = [
            "#T=",
            "#R=",
            "#S=",
            "#t=",
            "#",
            "h",
            "m",
            "min",
            "24",
            "–",
            "9:00-10:00",
        ];
        crate::pipeline::tricky_texts(&extra, |text: &str| {
            let _ = find(text);
        });
    }
}
