//! Bad input never panics and always gets an answer: every corpus message truncated at several
//! offsets and with random byte flips, plus pathological messages, through the entry point.

mod common;

use common::{TestDb, corpus_files, envelope};
use ticketmilter::Options;
use ticketmilter::model::Verdict;

/// xorshift64*: deterministic, so a failure can be reproduced.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn answer(db: &TestDb, engine: &ticketmilter::Engine, raw: &[u8], what: &str) {
    let env = envelope("sender@robust.example", &["support@msp.example", "alerts@msp.example"]);
    let out = engine
        .process(&env, raw, Options::default())
        .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    assert_eq!(out.len(), 2, "{what}");
    for o in &out {
        assert_ne!(o.outcome, Verdict::NotOurs, "{what}");
    }
    let _ = db;
}

#[test]
fn truncated_and_flipped_corpus_messages_always_get_an_answer() {
    let files = corpus_files();
    assert!(!files.is_empty(), "empty corpus");
    let db = TestDb::directory();
    let engine = db.engine();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut runs = 0;
    for path in files {
        let raw = std::fs::read(&path).unwrap();
        let n = raw.len();
        let mut cuts = vec![0, 1, n / 7, n / 3, n / 2, (2 * n) / 3, n.saturating_sub(1)];
        cuts.push(rng.below(n));
        for cut in cuts {
            answer(&db, &engine, &raw[..cut.min(n)], &format!("{} cut at {cut}", path.display()));
            runs += 1;
        }
        for round in 0..12 {
            let mut m = raw.clone();
            let flips = 1 + rng.below(16);
            for _ in 0..flips {
                if m.is_empty() {
                    break;
                }
                let i = rng.below(m.len());
                m[i] = (rng.next() & 0xff) as u8;
            }
            answer(&db, &engine, &m, &format!("{} flip round {round}", path.display()));
            runs += 1;
        }
    }
    assert!(runs > 500, "only {runs} runs");
}

#[test]
fn pathological_messages_get_an_answer() {
    let db = TestDb::directory();
    let engine = db.engine();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("empty", Vec::new()));
    cases.push(("only a header", b"Subject: x".to_vec()));
    cases.push(("binary", (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect()));
    let mut many = String::from("From: a@example.com\r\n");
    for i in 0..10_000 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\nbody\r\n");
    cases.push(("10,000 headers", many.into_bytes()));
    let long = format!("From: a@example.com\r\nSubject: {}\r\n\r\nbody\r\n", "x".repeat(1 << 20));
    cases.push(("1 MB header line", long.into_bytes()));
    cases.push(("NUL bytes", b"From: a@example.com\r\nSubject: n\0ul\r\n\r\nbo\0dy\0\r\n".to_vec()));
    let mut nested = String::from("From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n");
    for i in 0..300 {
        nested.push_str(&format!("--b{i}\r\nContent-Type: multipart/mixed; boundary=b{}\r\n\r\n", i + 1));
    }
    nested.push_str("--b300\r\nContent-Type: text/plain\r\n\r\ndeep\r\n");
    cases.push(("300 nested multiparts", nested.into_bytes()));
    let mut msgs = String::from("From: a@example.com\r\nContent-Type: message/rfc822\r\n\r\n");
    for _ in 0..200 {
        msgs.push_str("Content-Type: message/rfc822\r\n\r\n");
    }
    msgs.push_str("Subject: innermost\r\n\r\nhi\r\n");
    cases.push(("200 nested messages", msgs.into_bytes()));
    let html = format!(
        "From: a@example.com\r\nContent-Type: text/html\r\n\r\n{}x{}",
        "<div><table><tr><td>".repeat(5000),
        "</td></tr></table></div>".repeat(5000)
    );
    cases.push(("deeply nested HTML", html.into_bytes()));
    cases.push(("bad charset and encoding", b"From: a@example.com\r\nSubject: =?x-unknown?B?!!!?=\r\nContent-Type: text/plain; charset=x-nonsense\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@not base64@@@\r\n".to_vec()));
    cases.push(("boundary never closed", b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n\r\n%PDF".to_vec()));
    let numbers: String = (0..40_000).map(|i| format!("T202611{:02}.{:04} ", 1 + i / 10_000, i % 10_000)).collect();
    cases.push(("a subject of 40,000 ticket numbers", format!("From: a@example.com\r\nSubject: {numbers}\r\n\r\nbody\r\n").into_bytes()));
    for (what, raw) in cases {
        answer(&db, &engine, &raw, what);
    }
}

/// Messages built to exhaust the machine, each answered on a thread with a 1 MiB stack (the
/// daemon parses on threads of 2 MiB): attached messages nested 100,000 deep (the drop of the
/// parsed tree once took a stack frame per level and aborted the process), a flood of
/// 300,000 tiny parts, 20,000 inline images.
#[test]
fn floods_and_deep_nesting_are_answered_on_a_small_stack() {
    let db = TestDb::directory();
    let engine = std::sync::Arc::new(db.engine());
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut nested = "From: a@example.com\r\nContent-Type: message/rfc822\r\n\r\n".repeat(100_000);
    nested.push_str("From: a@example.com\r\nSubject: innermost\r\n\r\nhi\r\n");
    cases.push(("100,000 nested messages", nested.into_bytes()));
    let mut flood = String::from("From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n");
    flood.push_str(&"--b\r\n\r\nx\r\n".repeat(300_000));
    flood.push_str("--b--\r\n");
    cases.push(("300,000 tiny parts", flood.into_bytes()));
    let n = 20_000;
    let mut cid = String::from("From: a@example.com\r\nContent-Type: multipart/related; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n");
    cid.extend((0..n).map(|i| format!("<img src=\"cid:i{i}@x\">")));
    cid.push_str("\r\n");
    cid.extend((0..n).map(|i| format!("--b\r\nContent-Type: image/png\r\nContent-ID: <i{i}@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n")));
    cid.push_str("--b--\r\n");
    cases.push(("20,000 inline images", cid.into_bytes()));
    for (what, mut raw) in cases {
        // A subject each, or the loop guard would take the third for a loop.
        raw.splice(0..0, format!("Subject: {what}\r\n").into_bytes());
        let engine = engine.clone();
        let out = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let env = envelope("sender@robust.example", &["support@msp.example"]);
                engine.process(&env, &raw, Options::default()).map(|o| o.into_iter().map(|o| (o.outcome, o.reason)).collect::<Vec<_>>())
            })
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("{what}: the thread failed"))
            .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        assert_eq!(out.len(), 1, "{what}");
        assert_eq!(out[0].0, Verdict::Created, "{what}: {out:?}");
    }
}
