//! ticketmilter: a milter that converts mail to help-desk mailboxes into tickets, ticket notes
//! and (later) time entries, exactly once, while the SMTP session is open.

pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod milter;
pub mod model;
pub mod pipeline;
pub mod notify;
pub mod store;
pub mod workflow;

pub use engine::{Engine, Options};
pub use error::{Error, Result};
