//! Arbitrary bytes as text through the scanners that read body text and header values
//! directly: alert blocks, indicators, quotes, forwarded headers, object numbers,
//! Authentication-Results, HTML to text (see `text_scanners` in fuzz/src/lib.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticketmilter_fuzz::text_scanners;

fuzz_target!(|data: &[u8]| text_scanners(data));
