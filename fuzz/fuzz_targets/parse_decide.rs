//! Arbitrary bytes as a message through the engine's pure path: parse, analyse, parsing rules,
//! lookup keys and decision, against a fixed configuration built once (see `parse_decide` in
//! fuzz/src/lib.rs).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ticketmilter_fuzz::{Decider, parse_decide};

static DECIDER: LazyLock<Decider> = LazyLock::new(Decider::new);

fuzz_target!(|data: &[u8]| parse_decide(&DECIDER, data));
