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
