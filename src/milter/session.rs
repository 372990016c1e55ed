//! Per-connection state: what the MTA told us about the client and the current message, and
//! the message bytes rebuilt from the header and body callbacks.

use std::net::IpAddr;
use std::time::Instant;

/// The state of one MTA connection. Message fields are reset after each message.
#[derive(Debug, Default)]
pub struct Session {
    /// SMTP client address.
    pub client: Option<IpAddr>,
    /// The MTA keeps the space after the colon in header values (protocol option negotiated).
    pub leading_space: bool,
    /// The MTA accepts `Skip` from the body callback.
    pub skip: bool,
    /// The MTA expects no answer to MAIL and RCPT (protocol options negotiated).
    pub quiet_envelope: bool,

    /// `MAIL FROM` as given (with angle brackets, possibly with ESMTP parameters removed).
    pub sender: String,
    /// SASL login of the session, when authenticated.
    pub auth_user: Option<String>,
    /// `RCPT TO` addresses as given (for deleting them again).
    pub rcpts: Vec<String>,
    /// The message as rebuilt so far (header lines, blank line, body).
    pub raw: Vec<u8>,
    /// The message has at least one mailbox recipient (decided before the body).
    pub ours: bool,
    /// The message went over the size limit; its bytes were dropped.
    pub too_large: bool,
    /// The blank line after the header is in `raw` (the end of the header is seen at the
    /// end-of-header step, or — when that step is negotiated away — at the first body chunk or
    /// at end of message).
    pub header_done: bool,
    /// When the MAIL command came.
    pub started: Option<Instant>,
}

impl Session {
    /// Forget the current message (after end of message or abort); the connection stays.
    pub fn reset_message(&mut self) {
        self.sender.clear();
        self.auth_user = None;
        self.rcpts.clear();
        self.raw = Vec::new();
        self.ours = false;
        self.too_large = false;
        self.header_done = false;
        self.started = None;
    }

    /// Append one header field as the MTA sent it. Postfix strips the space after the colon
    /// (unless the leading-space option is negotiated) and folds with a bare LF; the field is
    /// rebuilt as `Name: value` with CRLF line ends, keeping 8-bit bytes as they are.
    pub fn push_header(&mut self, name: &[u8], value: &[u8]) {
        self.raw.extend_from_slice(name);
        self.raw.push(b':');
        if !self.leading_space {
            self.raw.push(b' ');
        }
        let mut prev = 0u8;
        for &b in value {
            if b == b'\n' && prev != b'\r' {
                self.raw.push(b'\r');
            }
            self.raw.push(b);
            prev = b;
        }
        self.raw.extend_from_slice(b"\r\n");
    }

    /// The blank line between header and body, once (nothing once the message is over the
    /// limit).
    pub fn end_of_header(&mut self) {
        if !self.header_done && !self.too_large {
            self.raw.extend_from_slice(b"\r\n");
            self.header_done = true;
        }
    }

    /// Append a body chunk unless that would pass `limit`; returns false when over the limit
    /// (the buffer is then dropped: memory stays bounded).
    pub fn push_body(&mut self, chunk: &[u8], limit: u64) -> bool {
        if self.too_large {
            return false;
        }
        if (self.raw.len() + chunk.len()) as u64 > limit {
            self.too_large = true;
            self.raw = Vec::new();
            return false;
        }
        self.raw.extend_from_slice(chunk);
        true
    }

    /// Over the limit already while receiving headers?
    pub fn header_over(&mut self, limit: u64) -> bool {
        if self.raw.len() as u64 > limit {
            self.too_large = true;
            self.raw = Vec::new();
        }
        self.too_large
    }
}

/// The SMTP client's address from the `{client_addr}` macro: Postfix writes an IPv6 address
/// bare, Sendmail with an `IPv6:` prefix; anything else (`unknown`, a name) is no address.
pub fn client_address(value: &str) -> Option<IpAddr> {
    let v = value.trim();
    let v = match v.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("ipv6:") => &v[5..],
        _ => v,
    };
    v.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// An address without angle brackets (and without ESMTP parameters that some MTAs append).
pub fn bare_address(arg: &str) -> String {
    let a = arg.trim();
    let a = a.strip_prefix('<').map_or(a, |rest| rest.split('>').next().unwrap_or(rest));
    a.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_headers_are_rebuilt() {
        let mut s = Session::default();
        s.push_header(b"Subject", b"a long\n\tfolded subject");
        s.push_header(b"X-8bit", b"Gr\xfc\xdfe");
        s.end_of_header();
        s.end_of_header();
        assert_eq!(s.raw, b"Subject: a long\r\n\tfolded subject\r\nX-8bit: Gr\xfc\xdfe\r\n\r\n");
        let mut s = Session { leading_space: true, ..Session::default() };
        s.push_header(b"Subject", b" kept\r\n more");
        assert_eq!(s.raw, b"Subject: kept\r\n more\r\n");
    }

    #[test]
    fn body_is_bounded() {
        let mut s = Session::default();
        assert!(s.push_body(b"12345", 10));
        assert!(!s.push_body(b"123456", 10));
        assert!(s.too_large && s.raw.is_empty());
        assert!(!s.push_body(b"1", 10));
    }

    #[test]
    fn client_addresses_come_from_the_macro_in_either_spelling() {
        assert_eq!(client_address("192.0.2.10"), Some("192.0.2.10".parse().unwrap()));
        assert_eq!(client_address("2001:db8::1"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(client_address("IPv6:2001:db8::1"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(client_address("ipv6:::1"), Some("::1".parse().unwrap()));
        assert_eq!(client_address("[192.0.2.10]"), Some("192.0.2.10".parse().unwrap()));
        assert_eq!(client_address("unknown"), None);
        assert_eq!(client_address(""), None);
    }

    #[test]
    fn addresses_lose_brackets_and_parameters() {
        assert_eq!(bare_address("<a@b.example>"), "a@b.example");
        assert_eq!(bare_address("<a@b.example> SIZE=100"), "a@b.example");
        assert_eq!(bare_address("<>"), "");
        assert_eq!(bare_address("a@b.example"), "a@b.example");
    }
}
