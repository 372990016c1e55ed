//! Notifications: templates rendered into outbox rows, and the worker that sends them.

pub mod mail;
pub mod template;
pub mod worker;
