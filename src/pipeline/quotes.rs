//! Quoted history in replies: where the new text of a reply ends and the quoted conversation
//! begins, so that a note carries only what the sender wrote.
//!
//! The text is cut at the first line that starts the history: a "reply above this line"
//! separator, an attribution line ("On … wrote:" and its German, French, Dutch and Spanish
//! forms), an Outlook header block (`From:` followed by `Sent:`), an "Original Message"
//! separator, or a final run of `>`-quoted lines. The cut is careful: it never leaves nothing
//! (a message that is only quoted text, or whose first line is a marker, stays whole), and an
//! attribution followed by quotes *and then more answer* (bottom-posting, inline replies) is not
//! a cut, so an answer is never lost. Link footnotes that `pipeline::html` appends to rendered
//! HTML (`[1]: https://…`) count as neither answer nor quote; those the kept text refers to are
//! kept.

use regex::Regex;
use std::sync::LazyLock;

/// Longest line considered as a separator or attribution (longer ones are prose).
const MAX_MARKER_LINE: usize = 300;
/// Lines after a `From:` line in which an Outlook header block has its `Sent:` line.
const HEADER_BLOCK_LINES: usize = 4;

/// The phrase of a "reply above this line" separator (in a few languages).
static REPLY_ABOVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\babove\s+(?:this|the)\s+line\b|\boberhalb\s+dieser\s+zeile\b|\bau-dessus\s+de\s+cette\s+ligne\b|\bboven\s+deze\s+(?:regel|lijn)\b|\bpor\s+encima\s+de\s+esta\s+l[ií]nea\b",
    )
    .expect("reply-above pattern")
});
/// A word that makes such a line an instruction to the replier.
static REPLY_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:reply|replying|respond\w*|answer\w*|write|type|antwort\w*|schreib\w*|r[ée]pond\w*|[ée]cri\w*|antwoord\w*|escrib\w*)\b")
        .expect("reply word pattern")
});
/// How an attribution line may start (cheap pre-check before joining a wrapped line).
static ATTRIBUTION_START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^(?:on|am|le|op|el)\s").expect("attribution start pattern"));
/// A whole attribution line (wrapped lines joined with a space). Each form must hold a digit (the
/// date), which keeps sentences like "On the other hand, Bob wrote:" out.
static ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^(?:
            on\s.*\d.*\swrote
          | am\s.*\d.*\sschrieb(?:\s.*)?
          | le\s.*\d.*\sa\s+[ée]crit
          | op\s.*\d.*\s(?:schreef(?:\s.*)?|geschreven)
          | el\s.*\d.*\sescribi[óo]
        )\s*:\s*$",
    )
    .expect("attribution pattern")
});
/// A clock time, as every client puts into its attribution line.
static CLOCK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b[0-9]{1,2}[:.][0-9]{2}\b").expect("clock pattern"));
/// A year or a numeric date.
static DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:[0-9]{4}|[0-9]{1,2}[./-][0-9]{1,2}[./-][0-9]{2,4})\b").expect("date pattern"));
/// Any line ending like an attribution ("Alice wrote:"): taken with the `>` block right below it.
static WROTE_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:wrote|schrieb|a\s+[ée]crit|schreef|geschreven|escribi[óo])\s*:\s*$").expect("wrote pattern")
});
/// The first line of an Outlook header block.
static FROM_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\*{0,2}(?:from|von|de|van)\s*:\s*\*{0,2}\s*\S").expect("from pattern"));
/// The line that makes a `From:` line a header block.
static SENT_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\*{0,2}(?:sent|gesendet|envoy[ée]|verzonden|date|datum|enviado(?:\s+el)?)\s*:\s*\*{0,2}\s*\S")
        .expect("sent pattern")
});
/// `-----Original Message-----` and its siblings.
static ORIGINAL_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^-{2,}\s*(?:original\s+message|urspr[üu]ngliche\s+nachricht|message\s+d'origine|oorspronkelijk\s+bericht|mensaje\s+original)\s*-{2,}$",
    )
    .expect("original message pattern")
});
/// A link footnote as `pipeline::html` renders them at the end of the text.
static FOOTNOTE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\[[0-9]{1,6}\]:\s*\S+$").expect("footnote pattern"));
/// Outlook's rule above a header block in HTML mail.
static UNDERSCORES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^_{10,}$").expect("underscore pattern"));

/// A text with its quoted history removed, or the text as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripped {
    pub text: String,
    /// Whether anything was cut.
    pub removed: bool,
}

/// Cut the quoted history off a reply. Keeps everything above the first history marker, with
/// trailing blank lines removed; returns the text unchanged when there is no marker or when the
/// cut would leave nothing.
pub fn strip_quoted(text: &str) -> Stripped {
    let lines = lines_with_offsets(text);
    let contents: Vec<&str> = lines.iter().map(|(_, l)| *l).collect();
    let Some((cut, kept)) = cut_line(&contents)
        .map(|cut| (cut, text[..lines[cut].0].trim_end()))
        .filter(|(_, kept)| !kept.trim().is_empty())
    else {
        return Stripped {
            text: text.to_string(),
            removed: false,
        };
    };
    let mut out = kept.to_string();
    // HTML rendered as text lists its links as footnotes at the very end; keep those that the
    // kept text refers to.
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut first = true;
    for note in contents[cut..].iter().map(|l| l.trim()).filter(|l| is_footnote(l)) {
        let label = &note[..note.find(']').map_or(0, |p| p + 1)];
        if !label.is_empty() && kept.contains(label) {
            out.push_str(newline);
            if std::mem::take(&mut first) {
                out.push_str(newline);
            }
            out.push_str(note);
        }
    }
    Stripped {
        text: out,
        removed: true,
    }
}

/// Lines as `(start offset, content without line end)`.
fn lines_with_offsets(text: &str) -> Vec<(usize, &str)> {
    let mut pos = 0;
    text.split_inclusive('\n')
        .map(|raw| {
            let start = pos;
            pos += raw.len();
            let content = raw.strip_suffix('\n').unwrap_or(raw);
            (start, content.strip_suffix('\r').unwrap_or(content))
        })
        .collect()
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// A link footnote of HTML rendered as text: `[3]: https://example.com/`.
fn is_footnote(line: &str) -> bool {
    FOOTNOTE.is_match(line.trim())
}

/// Lines that say nothing about where the answer ends: blank lines and link footnotes.
fn is_filler(line: &str) -> bool {
    is_blank(line) || is_footnote(line)
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// The index of the first line of the quoted history, if there is a marker.
fn cut_line(lines: &[&str]) -> Option<usize> {
    let trailing = trailing_quote_start(lines);
    for (i, raw) in lines.iter().enumerate() {
        if trailing == Some(i) {
            return Some(i);
        }
        let line = raw.trim();
        if line.is_empty() || line.len() > MAX_MARKER_LINE {
            continue;
        }
        if is_reply_marker(line) || ORIGINAL_MESSAGE.is_match(line) {
            return Some(i);
        }
        if let Some((end, attribution)) = attribution(lines, i)
            && attribution_cuts(lines, end, &attribution)
        {
            return Some(i);
        }
        if is_header_block(lines, i) {
            return Some(rule_above(lines, i).unwrap_or(i));
        }
    }
    None
}

/// `-- reply above this line --`, `## Please reply above this line ##` and the like (also when
/// quoted, as in a reply to a notification that carried it).
fn is_reply_marker(line: &str) -> bool {
    let line = line.trim_start_matches(|c: char| c == '>' || c.is_whitespace());
    REPLY_ABOVE.is_match(line) && REPLY_WORD.is_match(line)
}

/// An attribution line starting at `i`, perhaps wrapped onto the next line: the index of its
/// last line and its text.
fn attribution(lines: &[&str], i: usize) -> Option<(usize, String)> {
    let first = lines[i].trim();
    if !ATTRIBUTION_START.is_match(first) {
        return None;
    }
    if ATTRIBUTION.is_match(first) {
        return Some((i, first.to_string()));
    }
    let next = lines.get(i + 1)?.trim();
    if next.is_empty() || next.len() > MAX_MARKER_LINE {
        return None;
    }
    let joined = format!("{first} {next}");
    ATTRIBUTION.is_match(&joined).then_some((i + 1, joined))
}

/// Whether an attribution ending at line `end` starts the history. With `>` quotes below it,
/// only if nothing but quotes follows (otherwise the answer is below or between the quotes).
/// Without quotes below (history rendered from HTML), only if it carries a date and a time,
/// as client attributions do, and a sentence ending in "wrote:" rarely does.
fn attribution_cuts(lines: &[&str], end: usize, attribution: &str) -> bool {
    let mut below = lines[end + 1..].iter().filter(|l| !is_filler(l));
    match below.next() {
        None => true,
        Some(first) if is_quoted(first) => below.all(|l| is_quoted(l)),
        Some(_) => CLOCK.is_match(attribution) && DATE.is_match(attribution),
    }
}

/// An Outlook header block starting at `i`: `From:` with a `Sent:` (or `Date:`) line within the
/// next few lines.
fn is_header_block(lines: &[&str], i: usize) -> bool {
    FROM_LINE.is_match(lines[i].trim())
        && lines[i + 1..]
            .iter()
            .take(HEADER_BLOCK_LINES)
            .any(|l| SENT_LINE.is_match(l.trim()))
}

/// A separator right above the header block at `i` (an underscore rule or "Original Message"
/// line, at most one blank line in between).
fn rule_above(lines: &[&str], i: usize) -> Option<usize> {
    (i.saturating_sub(2)..i)
        .rev()
        .find(|&j| !is_blank(lines[j]))
        .filter(|&j| {
            let line = lines[j].trim();
            UNDERSCORES.is_match(line) || ORIGINAL_MESSAGE.is_match(line)
        })
}

/// The first line of the run of `>`-quoted lines (blank lines and link footnotes allowed) that
/// ends the text, together with an "… wrote:" line right above it.
fn trailing_quote_start(lines: &[&str]) -> Option<usize> {
    let mut start = None;
    for (i, line) in lines.iter().enumerate().rev() {
        if is_filler(line) {
            continue;
        }
        if !is_quoted(line) {
            break;
        }
        start = Some(i);
    }
    let start = start?;
    let above = (0..start).rev().find(|&j| !is_blank(lines[j]));
    match above {
        Some(j) if lines[j].trim().len() <= MAX_MARKER_LINE && WROTE_END.is_match(lines[j].trim()) => Some(j),
        _ => Some(start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text kept by a cut (panics when nothing is cut).
    fn cut(text: &str) -> String {
        let s = strip_quoted(text);
        assert!(s.removed, "expected a cut in {text:?}");
        s.text
    }

    fn kept_whole(text: &str) {
        let s = strip_quoted(text);
        assert!(!s.removed, "expected no cut in {text:?}, got {:?}", s.text);
        assert_eq!(s.text, text);
    }

    #[test]
    fn outlook_english() {
        let text = "Hi team,\n\nthe printer works again, thanks!\n\nBest regards\nBob\n\n\
            From: Service Desk <support@example.com>\n\
            Sent: Monday, November 23, 2026 10:00 AM\n\
            To: Bob Builder <bob@customer.example>\n\
            Subject: [T20261123.0001] Printer broken\n\n\
            Dear Bob,\nwe are looking into it.\n";
        assert_eq!(
            cut(text),
            "Hi team,\n\nthe printer works again, thanks!\n\nBest regards\nBob"
        );
    }

    #[test]
    fn outlook_with_underscore_rule_and_bold_labels() {
        let text = "Works now.\n\n________________________________\n\
            **From:** Service Desk <support@example.com>\n\
            **Sent:** Monday, 23 November 2026 10:00\n\
            **To:** Bob\n\nOld text";
        assert_eq!(cut(text), "Works now.");
        let text =
            "Works now.\r\n\r\n________________________________\r\n\r\nFrom: Service Desk\r\nSent: Monday\r\n\r\nOld";
        assert_eq!(cut(text), "Works now.");
    }

    #[test]
    fn outlook_original_message() {
        let text = "Please close the ticket.\n\n-----Original Message-----\n\
            From: Service Desk [mailto:support@example.com]\n\
            Sent: Monday, November 23, 2026 10:00 AM\n\
            To: Bob\nSubject: Printer\n\nWe fixed it.";
        assert_eq!(cut(text), "Please close the ticket.");
        // The separator alone is enough.
        assert_eq!(cut("Yes.\n-----Original Message-----\nOld text"), "Yes.");
    }

    #[test]
    fn outlook_german() {
        let text = "Hallo,\n\nder Drucker geht wieder.\n\nGruß\nBernd\n\n\
            -----Ursprüngliche Nachricht-----\n\
            Von: Service Desk <support@example.com>\n\
            Gesendet: Montag, 23. November 2026 10:00\n\
            An: Bernd <bernd@kunde.example>\n\
            Betreff: Drucker defekt\n\nAlter Text";
        assert_eq!(cut(text), "Hallo,\n\nder Drucker geht wieder.\n\nGruß\nBernd");
        let text =
            "Danke!\n\nVon: Service Desk <support@example.com>\nGesendet: Montag, 23. November 2026 10:00\nAn: Bernd";
        assert_eq!(cut(text), "Danke!");
    }

    #[test]
    fn outlook_french_and_dutch_and_mac() {
        let text = "Merci.\n\nDe : Service <support@example.com>\nEnvoyé : lundi 23 novembre 2026 10:00\nÀ : Marie\nObjet : Imprimante";
        assert_eq!(cut(text), "Merci.");
        let text =
            "Bedankt.\n\nVan: Service <support@example.com>\nVerzonden: maandag 23 november 2026 10:00\nAan: Jan";
        assert_eq!(cut(text), "Bedankt.");
        // Outlook for Mac: Date instead of Sent, a few lines further down.
        let text = "Thanks.\n\nFrom: Service <support@example.com>\nReply-To: x\nOrganization: y\nDate: Monday, 23 November 2026 at 10:00\nTo: Bob";
        assert_eq!(cut(text), "Thanks.");
    }

    #[test]
    fn a_from_line_without_sent_is_not_a_header_block() {
        kept_whole("Hello,\nFrom: the second floor we hear noises.\nPlease check.\n\nBob");
        kept_whole("Hello,\nFrom: x\na\nb\nc\nd\nSent: too far down");
    }

    #[test]
    fn gmail() {
        let text = "Thanks, that fixed it.\n\nOn Mon, 23 Nov 2026 at 10:00, Service Desk <support@example.com> wrote:\n\n\
            > Dear Bob,\n>\n> please restart the printer.\n>\n> Regards\n> Service Desk\n";
        assert_eq!(cut(text), "Thanks, that fixed it.");
    }

    #[test]
    fn gmail_html_rendered_with_link_footnotes() {
        // What `pipeline::html` makes of a Gmail reply: links become footnotes at the very end.
        let text = "Thanks, that [fixed][1] it.\n\n\
            On Mon, 23 Nov 2026 at 10:00, Alice <[alice@example.com][2]> wrote:\n\n\
            > Old text with [link][3]\n> line 2\n\n\
            [1]: https://x.example/\n[2]: mailto:alice@example.com\n[3]: https://y.example/";
        assert_eq!(cut(text), "Thanks, that [fixed][1] it.\n\n[1]: https://x.example/");
        let text = "No links.\r\n\r\n> Old [link][1]\r\n\r\n[1]: https://y.example/\r\n";
        assert_eq!(cut(text), "No links.");
        let text =
            "See [this][1].\r\n\r\n> Old [link][2]\r\n\r\n[1]: https://x.example/\r\n[2]: https://y.example/\r\n";
        assert_eq!(cut(text), "See [this][1].\r\n\r\n[1]: https://x.example/");
        // Footnotes do not make a bottom-posted answer look like history, nor the other way round.
        kept_whole(
            "Hi,\n\nOn Mon, 23 Nov 2026 at 10:00, Alice wrote:\n> q [a][1]\n\nMy answer.\n\n[1]: https://x.example/",
        );
    }

    #[test]
    fn gmail_attribution_wrapped_over_two_lines() {
        let text = "Thanks!\n\nOn Mon, 23 Nov 2026 at 10:00, Service Desk Team of Example Corporation <\n\
            support@example.com> wrote:\n\n> Dear Bob,\n> please restart.\n";
        assert_eq!(cut(text), "Thanks!");
        let text =
            "Thanks!\r\nOn Mon, Nov 23, 2026 at 10:00 AM Service Desk\r\n<support@example.com> wrote:\r\n> old\r\n";
        assert_eq!(cut(text), "Thanks!");
    }

    #[test]
    fn apple_mail() {
        let text = "Will do.\n\nSent from my iPhone\n\n> On 23 Nov 2026, at 10:00, Service Desk <support@example.com> wrote:\n>\n> Please restart.\n";
        assert_eq!(cut(text), "Will do.\n\nSent from my iPhone");
        let text =
            "Will do.\n\nOn 23 Nov 2026, at 10:00, Service Desk <support@example.com> wrote:\n\n> Please restart.\n";
        assert_eq!(cut(text), "Will do.");
    }

    #[test]
    fn thunderbird() {
        let text = "Erledigt.\n\nAm 23.11.2026 um 10:00 schrieb Service Desk:\n> Bitte starten Sie neu.\n>\n> Gruß\n";
        assert_eq!(cut(text), "Erledigt.");
        let text = "Done.\n\nOn 23.11.26 10:00, Service Desk wrote:\n> Please restart.\n";
        assert_eq!(cut(text), "Done.");
        // Gmail in German.
        let text =
            "Danke.\n\nAm Mo., 23. Nov. 2026 um 10:00 Uhr schrieb Service Desk <support@example.com>:\n\n> Alt\n";
        assert_eq!(cut(text), "Danke.");
    }

    #[test]
    fn french_dutch_spanish_attributions() {
        let text = "Merci.\n\nLe lun. 23 nov. 2026 à 10:00, Service <support@example.com> a écrit :\n> Ancien\n";
        assert_eq!(cut(text), "Merci.");
        let text = "Merci.\n\nLe 23/11/2026 à 10:00, Service a\u{a0}écrit\u{a0}:\n> Ancien\n";
        assert_eq!(cut(text), "Merci.");
        let text = "Bedankt.\n\nOp ma 23 nov. 2026 om 10:00 schreef Service <support@example.com>:\n> Oud\n";
        assert_eq!(cut(text), "Bedankt.");
        let text = "Bedankt.\n\nOp 23 nov. 2026 om 10:00 heeft Service <support@example.com> het volgende geschreven:\n\n> Oud\n";
        assert_eq!(cut(text), "Bedankt.");
        let text =
            "Gracias.\n\nEl lun, 23 nov 2026 a las 10:00, Service (<support@example.com>) escribió:\n> Antiguo\n";
        assert_eq!(cut(text), "Gracias.");
    }

    #[test]
    fn attribution_with_unquoted_history_needs_date_and_time() {
        // HTML mail rendered as text: the history is not `>`-quoted.
        let text = "Thanks.\n\nOn Mon, 23 Nov 2026 at 10:00, Service Desk <support@example.com> wrote:\n\nDear Bob,\nplease restart.";
        assert_eq!(cut(text), "Thanks.");
        // A sentence that merely looks like one.
        kept_whole("Hello,\n\nAm Montag schrieb ich 3 Mails an Sie:\neine, zwei, drei.\n");
        kept_whole("Hello,\n\nOn the 3rd floor, Bob wrote:\nthe printer is broken.\n");
        kept_whole("Hallo,\n\nAm 3. Tag schrieb ich Ihnen:\nDer Drucker ist defekt.\n");
    }

    #[test]
    fn reply_above_this_line_separators() {
        for marker in [
            "-- reply above this line --",
            "## Please reply above this line ##",
            "##- Please type your reply above this line -##",
            "--- Reply ABOVE THIS LINE to add a comment ---",
            "> ## Please reply above this line ##",
            "=== Bitte oberhalb dieser Zeile antworten ===",
        ] {
            let text = format!("My answer.\n\n{marker}\n\nTicket T20261123.0001 was updated.\n");
            assert_eq!(cut(&text), "My answer.", "{marker}");
        }
        // Not an instruction to the replier.
        kept_whole("See the diagram above this line.\nAnd more text.");
    }

    #[test]
    fn top_posting_with_quotes() {
        let text = "Yes, please go ahead.\n\n> Shall we replace the toner?\n> \n> Service Desk\n";
        assert_eq!(cut(text), "Yes, please go ahead.");
        let text = "Yes.\n\nService Desk wrote:\n> Shall we replace the toner?\n";
        assert_eq!(cut(text), "Yes.");
        let text = "Yes.\n\n> On Mon, Bob wrote:\n>> nested\n> answer\n";
        assert_eq!(cut(text), "Yes.");
    }

    #[test]
    fn bottom_posting_keeps_the_answer() {
        let text = "On Mon, 23 Nov 2026 at 10:00, Service Desk <support@example.com> wrote:\n\
            > Shall we replace the toner?\n\nYes, please go ahead.\n\nBob\n";
        kept_whole(text);
        let text = "> Shall we replace the toner?\n\nYes, please go ahead.\n";
        kept_whole(text);
        // The attribution is not on the first line, but the answer is below the quote.
        let text = "Hello,\n\nOn Mon, 23 Nov 2026 at 10:00, Service Desk <support@example.com> wrote:\n\
            > Shall we replace the toner?\n\nYes, please go ahead.\n";
        kept_whole(text);
    }

    #[test]
    fn inline_replies_keep_the_answers() {
        let text = "Hi,\n\n> Is it on?\nYes.\n> Is it plugged in?\nYes.\n\nBob\n";
        kept_whole(text);
        // Only the quote left at the very end (no answer below it) goes.
        let text = "Hi,\n\n> Is it on?\nYes.\n\n> Thanks, Service Desk\n";
        assert_eq!(cut(text), "Hi,\n\n> Is it on?\nYes.");
    }

    #[test]
    fn only_quoted_or_marker_on_the_first_line() {
        kept_whole("> only\n> quoted\n");
        kept_whole("\n\n> only quoted\n");
        kept_whole("-----Original Message-----\nFrom: a\nSent: b\n\ntext");
        kept_whole("From: Service <support@example.com>\nSent: Monday\nTo: Bob\n\nForwarded text");
        kept_whole("## Please reply above this line ##\nText");
        kept_whole("On Mon, 23 Nov 2026 at 10:00, Service wrote:\n> old");
        kept_whole("   \n\nOn Mon, 23 Nov 2026 at 10:00, Service wrote:\n> old");
    }

    #[test]
    fn the_first_marker_wins() {
        let text = "New text.\n\nOn Mon, 23 Nov 2026 at 10:00, Service wrote:\n> Old.\n>\n> -----Original Message-----\n> From: x\n";
        assert_eq!(cut(text), "New text.");
        let text = "New.\n\nFrom: Service <s@example.com>\nSent: Monday\n\nOld.\n\nOn Mon, 23 Nov 2026 at 10:00, Bob wrote:\n> older\n";
        assert_eq!(cut(text), "New.");
    }

    #[test]
    fn no_marker_no_cut() {
        kept_whole("Just a message.\n\nWith two paragraphs.\n");
        kept_whole("");
        kept_whole("one line");
        kept_whole("a > b, and c>d\nx");
    }

    #[test]
    fn line_ends_are_kept_above_the_cut() {
        let text = "First\r\n\r\nSecond  \r\n\r\n> quoted\r\n";
        assert_eq!(cut(text), "First\r\n\r\nSecond");
    }

    #[test]
    fn odd_input_never_panics() {
        let long = "x".repeat(1_000_000);
        let inputs = [
            String::new(),
            " ".into(),
            "\n".into(),
            "\r\n\r\n".into(),
            "\r".into(),
            ">".into(),
            "x\n>".into(),
            "x\nOn".into(),
            "x\nOn 1".into(),
            "x\nFrom:".into(),
            "x\nFrom: a".into(),
            "x\n_____________".into(),
            "日本語のメール\n\n> 引用\n".into(),
            "Ünïcödé\nAm 1.1.2026 um 10:00 schrieb Ö:\n> ä".into(),
            long.clone(),
            format!("x\n{long}\n> q"),
            format!("x\nOn {long} 1 wrote:\n> q"),
            format!("x\nOn 1\n{long} wrote:\n> q"),
            format!("x\nFrom: {long}\nSent: now"),
            "x\n".repeat(100_000),
            "> q\n".repeat(100_000),
        ];
        for input in &inputs {
            let s = strip_quoted(input);
            assert!(input.starts_with(&s.text));
        }
        assert_eq!(cut("日本語のメール\n\n> 引用\n"), "日本語のメール");
        assert_eq!(cut("Ünïcödé\nAm 1.1.2026 um 10:00 schrieb Ö:\n> ä"), "Ünïcödé");
        assert_eq!(cut(&format!("x\n{long}\n> q")), format!("x\n{long}"));
    }

    /// Random concatenations of tricky fragments (a fixed xorshift sequence, so reproducible).
    #[test]
    fn random_fragments_never_panic() {
        let extra = [
            "From:",
            "Sent:",
            "Von:",
            "Gesendet:",
            "On ",
            " wrote:",
            "Am ",
            " schrieb ",
            "-----Original Message-----",
            "________________",
            "reply above this line",
            "[1]: x",
            "> On 1 wrote:",
        ];
        crate::pipeline::tricky_texts(&extra, |text: &str| {
            let stripped = strip_quoted(text);
            assert!(stripped.removed || stripped.text == text);
        });
    }
}
