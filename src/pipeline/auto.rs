//! Detection of auto-generated mail (auto-replies, bounces, lists) and parsing of DSNs.
