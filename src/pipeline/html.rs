//! HTML bodies rendered as readable text: paragraphs, line breaks, list items, links, tables as
//! rows. Bounded: oversized or deeply nested HTML falls back to plain tag stripping.

/// HTML larger than this is stripped of tags instead of rendered (rendering cost grows with size).
const MAX_RENDER_BYTES: usize = 2 * 1024 * 1024;
/// Nesting deeper than this is not rendered (the renderer recurses per element).
const MAX_NESTING: usize = 400;
/// Wrapping width; wide enough that paragraphs stay one line each.
const WIDTH: usize = 2000;

/// Render HTML as text.
pub fn to_text(html: &str) -> String {
    if html.len() > MAX_RENDER_BYTES || nesting_depth(html) > MAX_NESTING {
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

/// A cheap upper bound of the element nesting depth: opening minus closing tags, at most.
fn nesting_depth(html: &str) -> usize {
    let bytes = html.as_bytes();
    let mut depth: isize = 0;
    let mut max: isize = 0;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'<' {
            let next = bytes[i + 1];
            if next == b'/' {
                depth -= 1;
            } else if next.is_ascii_alphabetic() {
                depth += 1;
                max = max.max(depth);
            }
        }
        i += 1;
    }
    max.max(0) as usize
}

/// Last resort: drop tags, script and style; decode the common entities; keep line structure.
pub fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        let lower: String = rest.chars().take(8).collect::<String>().to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            find_ci(rest, "</script>").map(|p| p + 9)
        } else if lower.starts_with("<style") {
            find_ci(rest, "</style>").map(|p| p + 8)
        } else {
            None
        };
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

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.to_ascii_lowercase().find(needle)
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
}
