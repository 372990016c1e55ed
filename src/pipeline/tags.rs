//! Automatic tagging: active tags' labels and aliases found as whole words in a ticket's title
//! and description, case-folded, ranked; compiled once per configuration load.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::collections::HashMap;

use crate::model::TagRef;

/// Phrases of this many characters or fewer never match (Autotask: "longer than two characters").
const MIN_PHRASE_CHARS: usize = 3;

/// A tag with everything that assigns it.
#[derive(Debug, Clone, PartialEq)]
pub struct TagDef {
    pub tag: TagRef,
    pub active: bool,
    pub aliases: Vec<String>,
}

/// The compiled matcher.
#[derive(Debug)]
pub struct TagMatcher {
    tags: Vec<TagRef>,
    /// Folded phrases, parallel to the automaton's pattern ids.
    phrases: Vec<Phrase>,
    automaton: Option<AhoCorasick>,
}

#[derive(Debug)]
struct Phrase {
    /// Indexes into `tags` of the tags this phrase assigns.
    tags: Vec<usize>,
    /// Length in characters (for ranking by the longest phrase).
    chars: usize,
}

/// Unicode case folding as it matters for tag phrases: lower case, plus the folds `to_lowercase`
/// does not do (ß → ss, final sigma, long s).
pub fn fold(s: &str) -> String {
    // Most text is ASCII: lower-casing it byte by byte is the same fold, and much faster than
    // going character by character.
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            'ß' | 'ẞ' => out.push_str("ss"),
            'ς' => out.push('σ'),
            'ſ' => out.push('s'),
            c if c.is_ascii() => out.push(c.to_ascii_lowercase()),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

impl TagMatcher {
    /// Compile the active tags. Phrases too short to match are left out.
    pub fn new(defs: &[TagDef]) -> TagMatcher {
        let mut tags = Vec::new();
        let mut by_phrase: HashMap<String, Vec<usize>> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for def in defs.iter().filter(|d| d.active) {
            let index = tags.len();
            tags.push(def.tag.clone());
            let phrases = std::iter::once(&def.tag.label).chain(def.aliases.iter());
            for phrase in phrases {
                let folded = fold(phrase.trim());
                if folded.chars().count() < MIN_PHRASE_CHARS {
                    continue;
                }
                let entry = by_phrase.entry(folded.clone()).or_insert_with(|| {
                    order.push(folded);
                    Vec::new()
                });
                if !entry.contains(&index) {
                    entry.push(index);
                }
            }
        }
        let phrases: Vec<Phrase> = order
            .iter()
            .map(|p| Phrase {
                tags: by_phrase[p].clone(),
                chars: p.chars().count(),
            })
            .collect();
        let automaton = if order.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .build(&order)
                    .expect("tag phrases form a valid automaton"),
            )
        };
        TagMatcher {
            tags,
            phrases,
            automaton,
        }
    }

    /// The active tag with this label (case-folded).
    pub fn by_label(&self, label: &str) -> Option<TagRef> {
        let f = fold(label.trim());
        self.tags.iter().find(|t| fold(&t.label) == f).cloned()
    }

    /// Number of active tags known to the matcher.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Tags found in the texts, best first: most matches, then longest matched phrase, then label.
    pub fn find(&self, texts: &[&str], limit: usize) -> Vec<TagRef> {
        let Some(ac) = &self.automaton else {
            return Vec::new();
        };
        // (matches, longest phrase) per tag index
        let mut score: HashMap<usize, (usize, usize)> = HashMap::new();
        for text in texts {
            let folded = fold(text);
            for m in ac.find_overlapping_iter(&folded) {
                if !whole_word(&folded, m.start(), m.end()) {
                    continue;
                }
                let phrase = &self.phrases[m.pattern().as_usize()];
                for &t in &phrase.tags {
                    let s = score.entry(t).or_insert((0, 0));
                    s.0 += 1;
                    s.1 = s.1.max(phrase.chars);
                }
            }
        }
        let mut ranked: Vec<(usize, (usize, usize))> = score.into_iter().collect();
        ranked.sort_by(|(a, sa), (b, sb)| {
            sb.0.cmp(&sa.0)
                .then(sb.1.cmp(&sa.1))
                .then_with(|| fold(&self.tags[*a].label).cmp(&fold(&self.tags[*b].label)))
                .then(self.tags[*a].id.cmp(&self.tags[*b].id))
        });
        ranked
            .into_iter()
            .take(limit)
            .map(|(i, _)| self.tags[i].clone())
            .collect()
    }
}

/// No letter or digit directly before or after the match.
fn whole_word(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let glued = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
    // A phrase that itself starts or ends with a non-word character (e.g. "c++") is bounded there.
    let first = text[start..end].chars().next();
    let last = text[start..end].chars().next_back();
    (!glued(before) || !glued(first)) && (!glued(after) || !glued(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(id: i64, label: &str, aliases: &[&str]) -> TagDef {
        TagDef {
            tag: TagRef {
                id,
                label: label.into(),
            },
            active: true,
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn labels(v: Vec<TagRef>) -> Vec<String> {
        v.into_iter().map(|t| t.label).collect()
    }

    #[test]
    fn whole_words_only() {
        let m = TagMatcher::new(&[def(1, "CTI", &[]), def(2, "VPN", &[])]);
        assert!(m.find(&["Please take action on this"], 30).is_empty());
        assert!(m.find(&["the vpn2 link", "xvpn"], 30).is_empty());
        assert_eq!(labels(m.find(&["CTI is down; VPN too."], 30)), vec!["CTI", "VPN"]);
        assert_eq!(labels(m.find(&["(vpn)"], 30)), vec!["VPN"]);
    }

    #[test]
    fn short_phrases_never_match() {
        let m = TagMatcher::new(&[def(1, "IT", &["pc"]), def(2, "Printer", &["HP"])]);
        assert!(m.find(&["IT says the pc and HP are broken"], 30).is_empty());
        assert_eq!(labels(m.find(&["printer"], 30)), vec!["Printer"]);
    }

    #[test]
    fn unicode_case_folding() {
        let m = TagMatcher::new(&[def(1, "Straße", &[]), def(2, "Überlauf", &[])]);
        assert_eq!(
            labels(m.find(&["STRASSE gesperrt, ÜBERLAUF im Keller"], 30)),
            // one match each; "überlauf" (8 characters) is longer than "strasse" (7)
            vec!["Überlauf", "Straße"]
        );
    }

    #[test]
    fn aliases_assign_their_tag() {
        let m = TagMatcher::new(&[def(1, "Wi-Fi", &["wifi", "wlan"])]);
        assert_eq!(labels(m.find(&["the WLAN is slow"], 30)), vec!["Wi-Fi"]);
        assert_eq!(labels(m.find(&["wifi wi-fi"], 30)), vec!["Wi-Fi"]);
    }

    #[test]
    fn ranking_by_count_then_longest_then_alphabet() {
        let m = TagMatcher::new(&[
            def(1, "Backup", &[]),
            def(2, "Mail", &["exchange server"]),
            def(3, "Disk", &[]),
            def(4, "Alpha", &[]),
        ]);
        let found = m.find(
            &["disk disk backup", "exchange server", "alpha backup"],
            30,
        );
        // Backup 2, Disk 2 (both 4 chars vs 6: Backup longer), Mail 1 (15 chars), Alpha 1 (5)
        assert_eq!(labels(found), vec!["Backup", "Disk", "Mail", "Alpha"]);
        let m = TagMatcher::new(&[def(1, "Zeta", &[]), def(2, "Beta", &[])]);
        assert_eq!(labels(m.find(&["zeta beta"], 30)), vec!["Beta", "Zeta"]);
    }

    #[test]
    fn limit_and_inactive() {
        let mut defs: Vec<TagDef> = (0..40).map(|i| def(i, &format!("tag{i:02}"), &[])).collect();
        defs[0].active = false;
        let m = TagMatcher::new(&defs);
        let text: String = (0..40).map(|i| format!("tag{i:02} ")).collect();
        let found = m.find(&[&text], 30);
        assert_eq!(found.len(), 30);
        assert!(!labels(found).contains(&"tag00".to_string()));
    }

    #[test]
    fn phrases_with_symbols() {
        let m = TagMatcher::new(&[def(1, "C++", &[]), def(2, "Office 365", &[])]);
        assert_eq!(labels(m.find(&["c++ build on office 365"], 30)), vec!["Office 365", "C++"]);
        assert!(m.find(&["office 3650"], 30).is_empty());
    }
}
