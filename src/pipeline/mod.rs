//! The pure, synchronous heart: raw bytes -> `Inbound` -> (with store facts) -> `Plan`.
//! Nothing here performs I/O; the store and the edges call in with data and get data back.

pub mod decide;
pub mod html;
pub mod numbers;
pub mod parse;
pub mod snapshot;
pub mod tags;

pub use decide::{decide, keys};
pub use parse::parse;
pub use snapshot::{ConfRows, Settings, Snapshot};
