//! The pure pipeline on one message, side by side with mail-parser's own parse of the same bytes
//! (the ceiling: ticketmilter's parse is built on it and cannot be faster).
//!
//! Per message size (`small_4k`, `large_1m`):
//! - `parse_decide`: `pipeline::parse`, then the analysis (alert block, indicators, trust),
//!   parsing rules, `pipeline::keys` and `pipeline::decide` against a snapshot with one mailbox
//!   and 50 tags, with synthetic facts (the sender is a known contact);
//! - `mail_parser_ceiling`: `MessageParser::default().parse(raw)` plus `body_text(0)`;
//! - `parse_only` and `keys_decide_only`: the two halves of `parse_decide`, to show where the
//!   time goes;
//! - `large_1m/sha256_raw`: SHA-256 over the raw bytes, the floor of the content hash that
//!   `parse` computes for messages without Message-ID (and always computes).
//!
//! Run: `cargo bench --bench pipeline`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use mail_parser::MessageParser;

use ticketmilter::model::{Action, Envelope, Facts, Inbound, Plan};
use ticketmilter::pipeline::{self, Snapshot};

struct Inputs {
    envelope: Envelope,
    snapshot: Snapshot,
    facts: Facts,
}

impl Inputs {
    fn new() -> Inputs {
        Inputs {
            envelope: common::envelope(),
            snapshot: common::snapshot(),
            facts: common::facts_contact_found(),
        }
    }

    fn keys_decide(&self, inbound: &Inbound) -> Plan {
        let snapshot = &self.snapshot;
        let mailbox = snapshot.mailbox_for(common::MAILBOX).expect("the benchmark mailbox");
        let analysis = pipeline::analyse(inbound, b"", &self.envelope, snapshot);
        let rules = snapshot.rules.evaluate(mailbox.id, inbound, &snapshot.refs);
        let keys = pipeline::keys(inbound, snapshot, &analysis, &rules);
        pipeline::decide(&pipeline::Input {
            inbound,
            envelope: &self.envelope,
            rcpt: common::MAILBOX,
            mailbox,
            keys: &keys,
            facts: &self.facts,
            snapshot,
            analysis: &analysis,
            rules: &rules,
        })
    }

    fn parse_decide(&self, raw: &[u8]) -> Plan {
        let inbound = pipeline::parse(raw);
        self.keys_decide(&inbound)
    }
}

/// mail-parser's own work on the same bytes: parse, then the first text body.
fn mail_parser_ceiling(raw: &[u8]) -> usize {
    let msg = MessageParser::default().parse(raw).expect("mail-parser parses the message");
    let text = msg.body_text(0).expect("a text body");
    black_box(&msg);
    text.len()
}

/// Check once, outside the measurement, that the inputs do what the benchmark claims.
fn check(inputs: &Inputs, raw: &[u8], attachments: usize) {
    let plan = inputs.parse_decide(raw);
    let Action::CreateTicket(t) = &plan.action else {
        panic!("expected a new ticket, got {:?}", plan.action);
    };
    assert_eq!(t.contact, Some(ticketmilter::model::ContactChoice::Existing(1)), "the sender is the known contact");
    assert_eq!(t.attachments.len(), attachments);
    assert!(!t.tags.is_empty(), "the text mentions several tags");
    assert!(t.description.len() > 1500, "the text body was read");
    // The small message has an HTML alternative; the large one only text and the attachment.
    assert_eq!(t.description_html.is_some(), attachments == 0);
}

fn bench_one(c: &mut Criterion, group_name: &str, raw: &[u8], attachments: usize) {
    let inputs = Inputs::new();
    check(&inputs, raw, attachments);
    eprintln!("{group_name}: the message is {} bytes", raw.len());
    let parsed = pipeline::parse(raw);

    let mut g = c.benchmark_group(group_name);
    // One element = one message, so criterion's elem/s reads as messages per second.
    g.throughput(Throughput::Elements(1));
    if attachments > 0 {
        // Milliseconds per iteration: linear sampling would need more than the target time.
        g.sampling_mode(SamplingMode::Flat);
    }
    g.bench_function("parse_decide", |b| b.iter(|| inputs.parse_decide(black_box(raw))));
    g.bench_function("mail_parser_ceiling", |b| b.iter(|| mail_parser_ceiling(black_box(raw))));
    g.bench_function("parse_only", |b| b.iter(|| pipeline::parse(black_box(raw))));
    g.bench_function("keys_decide_only", |b| b.iter(|| inputs.keys_decide(black_box(&parsed))));
    if attachments > 0 {
        g.bench_function("sha256_raw", |b| {
            b.iter(|| pipeline::parse::sha256_hex(black_box(raw)))
        });
    }
    g.finish();
}

fn small(c: &mut Criterion) {
    let raw = common::small_message(0);
    bench_one(c, "small_4k", &raw, 0);
}

fn large(c: &mut Criterion) {
    let raw = common::large_message(0);
    bench_one(c, "large_1m", &raw, 1);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = small, large
}
criterion_main!(benches);
