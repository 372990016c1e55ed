//! The sender worker: claims outbox rows, delivers them over SMTP, retries with backoff.
