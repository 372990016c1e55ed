//! Fuzz regressions: every file in tests/fuzz-regressions/<target>/ — inputs that crashed a fuzz
//! target once, and hand-made nasty ones — replayed through the very functions the fuzz targets
//! call (fuzz/src/lib.rs, included here), plus a few inputs too large to keep as files. Runs in
//! the normal test suite on the stable toolchain; no fuzzer needed. An empty directory fails.
//!
//! A crash found by `tests/fuzz-run` is kept by copying its file into the target's directory
//! (any name) once the bug is fixed.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use harness::{MESSAGE, MilterHarness, record, session_prefix};

/// The files of one target's directory, sorted by name.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions").join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "{} holds no inputs", dir.display());
    paths
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))))
        .collect()
}

/// Run `f` on every input; fail naming every input that panicked.
fn replay(inputs: Vec<(String, Vec<u8>)>, mut f: impl FnMut(&[u8])) {
    let mut failed = Vec::new();
    for (name, data) in &inputs {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(data))) {
            failed.push(format!("{name}: {}", ticketmilter::error::panic_text(&*panic)));
        }
    }
    assert!(failed.is_empty(), "{} input(s) failed:\n{}", failed.len(), failed.join("\n"));
}

/// A message with 10,000 header fields.
fn ten_thousand_headers() -> Vec<u8> {
    let mut m = b"From: alice@example.com\r\nTo: support@msp.example\r\nSubject: many\r\n".to_vec();
    for i in 0..10_000 {
        m.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    m.extend_from_slice(b"\r\nbody\r\n");
    m
}

#[test]
fn parse_decide_inputs() {
    let decider = harness::Decider::new();
    let mut all = inputs("parse_decide");
    all.push(("(generated) 10,000 header fields".into(), ten_thousand_headers()));
    all.push(("(generated) 64 KiB of NUL bytes".into(), vec![0u8; 64 * 1024]));
    replay(all, |data| harness::parse_decide(&decider, data));
}

#[test]
fn text_scanner_inputs() {
    let mut all = inputs("text_scanners");
    all.push(("(generated) 64 KiB of NUL bytes".into(), vec![0u8; 64 * 1024]));
    replay(all, harness::text_scanners);
}

#[test]
fn milter_session_inputs() {
    let mut h = MilterHarness::new();
    let mut all = inputs("milter_session");
    // 10,000 header commands in one message, then end of message.
    let mut many = session_prefix();
    many.extend(record(b'L', b"From\0alice@example.com\0"));
    for i in 0..10_000 {
        many.extend(record(b'L', format!("X-H{i}\0v\0").as_bytes()));
    }
    many.extend(record(b'N', b""));
    many.extend(record(b'B', b"body\r\n"));
    many.extend(record(b'E', b""));
    all.push(("(generated) 10,000 header commands".into(), many));
    // A message of 64 KiB of NUL bytes.
    let mut nul = session_prefix();
    nul.extend(record(MESSAGE, &[0u8; 65_535]));
    all.push(("(generated) a message of NUL bytes".into(), nul));
    replay(all, |data| {
        h.session(data);
    });
}

/// The fuzz seed prefix file (fuzz/seeds/milter-session-prefix, which tests/fuzz-run puts in
/// front of every corpus message) is `session_prefix()` followed by the start of a message
/// record, and an ordinary session built on it really converts: the milter adds its header and
/// accepts. Without this, the milter_session target could silently stop reaching the engine.
#[test]
fn an_ordinary_session_converts_the_message() {
    let prefix = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/milter-session-prefix")).expect("the seed prefix");
    let mut expected = session_prefix();
    expected.extend_from_slice(&[MESSAGE, 0xFF, 0xFF]);
    assert_eq!(prefix, expected, "fuzz/seeds/milter-session-prefix is out of date");

    let mut input = prefix;
    input.extend_from_slice(
        b"From: Alice Example <alice@example.com>\r\nTo: support@msp.example\r\nSubject: The printer is jammed\r\n\
          Message-ID: <fuzz-harness-check@example.com>\r\n\r\nPaper jam on floor 2.\r\n",
    );
    let answers = MilterHarness::new().session(&input);
    let text = String::from_utf8_lossy(&answers);
    assert!(text.contains("X-Ticketmilter"), "no header added: {text:?}");
    assert!(text.contains("support@msp.example created T"), "no ticket created: {text:?}");
    // The last answer is the accept (kind `a`) of end of message.
    assert_eq!(answers.last(), Some(&b'a'), "{text:?}");
}
