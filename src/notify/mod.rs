//! Notifications: templates rendered into outbox rows, and the worker that sends them.

pub mod mail;
pub mod template;
pub mod worker;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A number that differs per call, in this process and across hosts: std's randomly keyed
/// hasher over a counter, the time and the process id. Good for Message-ID tokens and retry
/// jitter, not for secrets.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    h.finish()
}
