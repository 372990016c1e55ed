//! Corpus test: every tests/corpus/*.eml is processed into a fresh test database and its outcomes
//! compared with NAME.json. A difference writes NAME.actual.json beside it and fails; an empty
//! corpus fails. `UPDATE_CORPUS=1 cargo test --test corpus` rewrites the expected files.

mod common;

use serde_json::{Value, json};
use std::path::Path;

use common::{TestDb, corpus_files, envelope};
use ticketmilter::Options;

const DEFAULT_RCPT: &str = "support@msp.example";

fn expected_rcpts(expected: Option<&Value>) -> Vec<String> {
    expected
        .and_then(|v| v.get("rcpt"))
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_else(|| vec![DEFAULT_RCPT.to_string()])
}

fn run_one(path: &Path, rcpts: &[String]) -> Value {
    let db = TestDb::directory();
    let engine = db.engine();
    let raw = std::fs::read(path).unwrap();
    let rcpt_refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let env = envelope("", &rcpt_refs);
    let outcomes = engine
        .process(&env, &raw, Options::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    json!({ "rcpt": rcpts, "outcomes": outcomes })
}

#[test]
fn corpus_matches_expected_outcomes() {
    let files = corpus_files();
    assert!(files.len() >= 40, "the corpus must hold at least 40 messages, found {}", files.len());
    let update = std::env::var_os("UPDATE_CORPUS").is_some();
    let mut failures = Vec::new();
    for path in &files {
        let expected_path = path.with_extension("json");
        let actual_path = path.with_extension("actual.json");
        let expected: Option<Value> = std::fs::read_to_string(&expected_path)
            .ok()
            .map(|t| serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())));
        let actual = run_one(path, &expected_rcpts(expected.as_ref()));
        let pretty = serde_json::to_string_pretty(&actual).unwrap() + "\n";
        if update {
            std::fs::write(&expected_path, &pretty).unwrap();
            let _ = std::fs::remove_file(&actual_path);
            continue;
        }
        match expected {
            Some(e) if e == actual => {
                let _ = std::fs::remove_file(&actual_path);
            }
            Some(_) => {
                std::fs::write(&actual_path, &pretty).unwrap();
                failures.push(format!("{} differs; see {}", path.display(), actual_path.display()));
            }
            None => {
                std::fs::write(&actual_path, &pretty).unwrap();
                failures.push(format!("{} has no expected {}; see {}", path.display(), expected_path.display(), actual_path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{} corpus message(s) failed:\n{}", failures.len(), failures.join("\n"));
}
