//! Building RFC 3834-clean messages from outbox rows.
