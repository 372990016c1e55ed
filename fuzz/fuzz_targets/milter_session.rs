//! Arbitrary milter command sequences through ticketmilter's protocol callbacks over an
//! in-memory stream, converting against an in-memory SQLite database (see `frame` and
//! `MilterHarness` in fuzz/src/lib.rs for the input format).
#![no_main]

use std::sync::{LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use ticketmilter_fuzz::MilterHarness;

static HARNESS: LazyLock<Mutex<MilterHarness>> = LazyLock::new(|| Mutex::new(MilterHarness::new()));

fuzz_target!(|data: &[u8]| {
    HARNESS.lock().unwrap_or_else(|p| p.into_inner()).session(data);
});
