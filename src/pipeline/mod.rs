//! The pure, synchronous heart: raw bytes -> `Inbound` -> (with store facts) -> `Plan`.
//! Nothing here performs I/O; the store and the edges call in with data and get data back.

pub mod alerts;
pub mod auto;
pub mod content;
pub mod decide;
pub mod forward;
pub mod html;
pub mod indicators;
pub mod numbers;
pub mod parse;
pub mod quotes;
pub mod rules;
pub mod snapshot;
pub mod tags;
pub mod trust;

pub use decide::{Analysis, Input, analyse, decide, keys};
pub use parse::parse;
pub use snapshot::{ConfRows, Settings, Snapshot};

/// Test inputs for the text scanners: random concatenations of tricky fragments (whitespace
/// oddities, combining marks, quotes, brackets, digits) and the scanner's own `extra` ones,
/// from a fixed xorshift sequence so that a failure is reproducible.
#[cfg(test)]
pub(crate) fn tricky_texts(extra: &[&str], mut check: impl FnMut(&str)) {
    const COMMON: &[&str] = &[
        " ",
        "\t",
        "\n",
        "\r\n",
        "\r",
        "\u{a0}",
        "\u{feff}",
        "é",
        "日本",
        "\u{301}",
        ">",
        "<",
        "[",
        "]",
        "(",
        ")",
        "\"",
        "'",
        "“",
        "”",
        "„",
        ":",
        "-",
        ".",
        ",",
        "*",
        "@",
        "1",
        "0",
        "30",
        "2026",
        "10:00",
    ];
    let fragments: Vec<&str> = COMMON.iter().chain(extra).copied().collect();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..next() % 30 {
            text.push_str(fragments[(next() % fragments.len() as u64) as usize]);
        }
        check(&text);
    }
}
