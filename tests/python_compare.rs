//! Cross-check against Python's `email` package: for every tests/corpus/*.eml, the title, the
//! sender address and the attachment names the binary reports must equal what Python decodes
//! (tests/compare_python.py holds the comparison and its short allowlist). Needs `python3`;
//! without it the test fails rather than skips.

mod common;

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ticketmilter");
const MAILBOX: &str = "support@msp.example";

#[test]
fn corpus_decodes_like_python_email() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    // The backend of the other tests (tests/common/mod.rs).
    let url = common::new_database(dir.path(), "x");
    let db = url.as_str();

    // A fresh database (migrated on first use) that knows the one mailbox the script sends to.
    let add = Command::new(BIN)
        .args(["--database", db, "mailbox", "add", MAILBOX])
        .output()
        .expect("run ticketmilter mailbox add");
    assert!(
        add.status.success(),
        "ticketmilter mailbox add failed: {}",
        String::from_utf8_lossy(&add.stderr)
    );

    let out = Command::new("python3")
        .arg(root.join("tests/compare_python.py"))
        .args(["--bin", BIN, "--database", db])
        .arg(root.join("tests/corpus"))
        .env("PYTHONIOENCODING", "utf-8")
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (it is required for this test): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    if out.status.success() {
        common::discard_database(&url);
    }
    assert!(
        out.status.success(),
        "compare_python.py found differences (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
}
