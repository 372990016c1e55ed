//! HTML bodies rendered as readable text: paragraphs, line breaks, list items, links, tables as
//! rows. Bounded: oversized or deeply nested HTML falls back to plain tag stripping.

/// HTML larger than this is stripped of tags instead of rendered (rendering cost grows with size).
const MAX_RENDER_BYTES: usize = 2 * 1024 * 1024;
/// Nesting deeper than this is not rendered (the renderer recurses per element).
const MAX_NESTING: usize = 400;
/// HTML with more elements than this is not rendered: the renderer's table layout keeps about
/// 2 KB per cell (a 2 MB table of 200,000 tiny cells took 465 MB).
const MAX_ELEMENTS: usize = 20_000;
/// Wrapping width; wide enough that paragraphs stay one line each.
const WIDTH: usize = 2000;

/// Render HTML as text.
pub fn to_text(html: &str) -> String {
    let (depth, elements) = tag_counts(html);
    if html.len() > MAX_RENDER_BYTES || depth > MAX_NESTING || elements > MAX_ELEMENTS {
        return strip_tags(html);
    }
    let rendered = html2text::config::plain_no_decorate()
        .link_footnotes(true)
        .no_table_borders()
        .allow_width_overflow()
        .no_link_wrapping()
        .string_from_read(html.as_bytes(), WIDTH);
    match rendered {
        Ok(text) => tidy(&text),
        Err(_) => strip_tags(html),
    }
}

/// Remove the padding html2text puts at line ends and collapse runs of blank lines.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_matches('\n').to_string()
}

/// A cheap upper bound of the element nesting depth (opening minus closing tags, at most), and
/// the number of opening tags.
fn tag_counts(html: &str) -> (usize, usize) {
    let bytes = html.as_bytes();
    let mut depth: isize = 0;
    let mut max: isize = 0;
    let mut opened = 0;
    for i in memchr::memchr_iter(b'<', bytes) {
        match bytes.get(i + 1) {
            Some(b'/') => depth -= 1,
            Some(next) if next.is_ascii_alphabetic() => {
                depth += 1;
                opened += 1;
                max = max.max(depth);
            }
            _ => {}
        }
    }
    (max.max(0) as usize, opened)
}

/// Last resort: drop tags, script and style; decode the common entities; keep line structure.
pub fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    // Elements dropped with their content. A closing tag not found once is not found further
    // on either: it is not searched for again.
    let dropped: [(&[u8], &[u8]); 2] = [(b"<script", b"</script>"), (b"<style", b"</style>")];
    let mut no_end = [false; 2];
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        let opened = dropped
            .iter()
            .position(|(open, _)| rest.as_bytes().get(..open.len()).is_some_and(|b| b.eq_ignore_ascii_case(open)));
        let skip_to = opened.filter(|&k| !no_end[k]).and_then(|k| {
            let close = dropped[k].1;
            let end = find_ci(rest, close).map(|p| p + close.len());
            no_end[k] = end.is_none();
            end
        });
        if let Some(end) = skip_to {
            rest = &rest[end..];
            continue;
        }
        match rest.find('>') {
            Some(gt) => {
                let tag = rest[1..gt].trim_start_matches('/').to_ascii_lowercase();
                let name: String = tag.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                if matches!(name.as_str(), "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "table") {
                    out.push('\n');
                } else if matches!(name.as_str(), "td" | "th") {
                    out.push(' ');
                }
                rest = &rest[gt + 1..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    let decoded = decode_entities(&out);
    tidy(&decoded.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n"))
}

/// Where `needle` (a tag, starting with `<`) first stands in `hay`, ASCII case ignored.
fn find_ci(hay: &str, needle: &[u8]) -> Option<usize> {
    let bytes = hay.as_bytes();
    memchr::memchr_iter(b'<', bytes).find(|&at| bytes.get(at..at + needle.len()).is_some_and(|b| b.eq_ignore_ascii_case(needle)))
}

fn decode_entities(s: &str) -> String {
    s.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_lists_links_tables() {
        let t = to_text(
            "<p>Hello <b>team</b>,</p><p>line one<br>line two</p><ul><li>first</li><li>second</li></ul>\
             <p>See <a href=\"https://example.com/x\">the page</a>.</p>\
             <table><tr><td>Name</td><td>Value</td></tr><tr><td>cpu</td><td>99%</td></tr></table>",
        );
        assert!(t.contains("Hello team,"), "{t}");
        assert!(t.contains("line one\nline two"), "{t}");
        assert!(t.contains("* first") && t.contains("* second"), "{t}");
        assert!(t.contains("https://example.com/x"), "{t}");
        let row = t.lines().find(|l| l.contains("cpu")).unwrap();
        assert!(row.contains("99%"), "table row kept on one line: {t}");
    }

    #[test]
    fn deep_nesting_is_not_rendered_recursively() {
        let html = "<div>".repeat(100_000) + "deep" + &"</div>".repeat(100_000);
        assert_eq!(to_text(&html), "deep");
    }

    #[test]
    fn strip_tags_drops_script_and_style() {
        let t = strip_tags("<style>p{}</style><p>a&amp;b</p><script>x()</script><div>c</div>");
        assert_eq!(t, "a&b\n\nc");
    }

    #[test]
    fn html_of_too_many_elements_is_stripped_not_rendered() {
        let wide = format!("<table><tr>{}</tr></table>", "<td>c</td>".repeat(MAX_ELEMENTS + 1));
        assert_eq!(tag_counts(&wide), (3, MAX_ELEMENTS + 3));
        let t = to_text(&wide);
        assert_eq!(t.lines().count(), 1, "stripped: the cells stay on one line");
        assert_eq!(t.split(' ').count(), MAX_ELEMENTS + 1);
    }

    #[test]
    fn unclosed_scripts_are_stripped_in_one_pass() {
        // Each unclosed <script> once searched the rest of the document for its end, lowered
        // to a new copy: 20,000 of them before 2 MB of text took seconds.
        let html = format!("<p>kept</p>{}<SCRIPT>tail {}<Style>p {{}}</sTyLe>after", "<script>x".repeat(20_000), "y".repeat(2 * 1024 * 1024));
        let t = strip_tags(&html);
        assert!(t.starts_with("kept\nxxx"), "{}", &t[..40]);
        assert!(t.ends_with("yyy after") || t.ends_with("yyyafter"), "{}", &t[t.len() - 40..]);
        assert!(!t.contains("p {}"), "a closed style is still dropped");
        assert_eq!(find_ci("a <P> <sTyLe>", b"<style"), Some(6));
    }
}
