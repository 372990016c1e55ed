//! Sender authentication for commands by mail: SMTP AUTH, trusted client networks, or DKIM/DMARC
//! verdicts in `Authentication-Results` headers (RFC 8601) written by a trusted verifier.
//!
//! A From line proves nothing. A verdict proves something only when it was written by a verifier
//! we trust, named by its authserv-id; headers carrying any other authserv-id are ignored, since
//! anyone can add them. The MTA must in turn remove incoming headers that carry a trusted
//! authserv-id (RFC 8601 section 5; OpenDKIM, OpenDMARC and rspamd can do this), or a sender could
//! forge those as well.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Most ignored authserv-ids listed in `Untrusted::NoTrustedResults`.
pub const MAX_IGNORED_LISTED: usize = 10;

/// Who is believed when a sender claims an identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPolicy {
    /// authserv-ids (lower case) whose `Authentication-Results` headers are believed. Empty ids never
    /// match, so headers without an authserv-id (as Microsoft 365 writes them) are never believed.
    pub authserv_ids: Vec<String>,
    /// Client networks whose mail is trusted as it is, e.g. the help desk's own submission hosts.
    pub networks: Vec<Network>,
}

/// An IPv4 or IPv6 network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network {
    /// The network address, host bits cleared.
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (`/32` resp. `/128`). Host bits are cleared
    /// (`10.1.2.3/8` is `10.0.0.0/8`); an IPv6 address may stand in brackets (`[::1]/128`).
    pub fn parse(s: &str) -> Result<Network, String> {
        let s = s.trim();
        let (addr_part, prefix_part) = match s.split_once('/') {
            Some((a, p)) => (a.trim(), Some(p.trim())),
            None => (s, None),
        };
        let addr_part = addr_part
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr_part);
        let addr: IpAddr = addr_part
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_part {
            None => max,
            Some(p) => {
                let bad = || format!("{s:?}: the prefix length must be a number from 0 to {max}");
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let n: u8 = p.parse().map_err(|_| bad())?;
                if n > max {
                    return Err(bad());
                }
                n
            }
        };
        Ok(Network {
            addr: masked(addr, prefix),
            prefix,
        })
    }

    /// Whether `ip` lies in the network. IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`) also match
    /// IPv4 networks; plain IPv4 addresses never match IPv6 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => masked(ip, self.prefix) == self.addr,
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6
                .to_ipv4_mapped()
                .is_some_and(|v4| masked(IpAddr::V4(v4), self.prefix) == self.addr),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Network, String> {
        Network::parse(s)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `ip` with all but the first `prefix` bits cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

/// Why a sender counts as authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustReason {
    /// The SMTP session was authenticated with this login.
    SmtpAuth(String),
    /// The SMTP client's address lies in a trusted network.
    TrustedNetwork(IpAddr),
    /// A trusted verifier reported `dmarc=pass`.
    Dmarc { authserv_id: String },
    /// A trusted verifier reported `dkim=pass` for the sender's domain (lower case).
    Dkim { authserv_id: String, domain: String },
}

impl fmt::Display for TrustReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustReason::SmtpAuth(login) => write!(f, "SMTP AUTH as {login}"),
            TrustReason::TrustedNetwork(ip) => write!(f, "client {ip} is in a trusted network"),
            TrustReason::Dmarc { authserv_id } => write!(f, "dmarc=pass from {authserv_id}"),
            TrustReason::Dkim { authserv_id, domain } => write!(f, "dkim=pass for {domain} from {authserv_id}"),
        }
    }
}

/// Why a sender does not count as authenticated; `Display` says it in one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untrusted {
    /// No SMTP AUTH, the client is not in a trusted network, and no authserv-id is trusted.
    NoEvidence,
    /// No `Authentication-Results` header carries a trusted authserv-id.
    NoTrustedResults {
        /// The trusted authserv-ids.
        trusted: Vec<String>,
        /// The authserv-ids of the headers ignored (`""` for a header without one), without repeats,
        /// at most `MAX_IGNORED_LISTED`.
        ignored: Vec<String>,
        /// How many `Authentication-Results` headers could not be read.
        unreadable: usize,
    },
    /// Trusted headers exist, but none reports `dmarc=pass` or `dkim=pass` with a signing domain.
    NoPass {
        /// The trusted verdicts, e.g. `mx.example.com: spf=pass, dkim=none, dmarc=none`.
        results: String,
    },
    /// A trusted verifier reported a DMARC result other than `pass` or `none`.
    DmarcFailed { result: String },
    /// `dmarc=pass`, but for a From domain other than the sender's.
    DmarcOtherDomain { domain: String, sender_domain: String },
    /// `dkim=pass`, but for a domain other than the sender's.
    DkimOtherDomain { signer: String, sender_domain: String },
    /// `dkim=pass`, but the sender's domain is not known, so it cannot be compared.
    NoSenderDomain { signer: String },
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Untrusted::NoEvidence => write!(
                f,
                "no SMTP AUTH login, the client is not in a trusted network, and no authserv-id is trusted"
            ),
            Untrusted::NoTrustedResults {
                trusted,
                ignored,
                unreadable,
            } => {
                let trusted = if trusted.is_empty() {
                    "none".to_string()
                } else {
                    trusted.join(", ")
                };
                write!(
                    f,
                    "no Authentication-Results header from a trusted authserv-id (trusted: {trusted}"
                )?;
                if !ignored.is_empty() {
                    let ignored: Vec<&str> = ignored
                        .iter()
                        .map(|id| if id.is_empty() { "(no authserv-id)" } else { id.as_str() })
                        .collect();
                    write!(f, "; ignored: {}", ignored.join(", "))?;
                }
                if *unreadable > 0 {
                    write!(f, "; {unreadable} unreadable")?;
                }
                write!(f, ")")
            }
            Untrusted::NoPass { results } => {
                write!(f, "no dmarc=pass or dkim=pass from a trusted authserv-id ({results})")
            }
            Untrusted::DmarcFailed { result } => write!(f, "dmarc={result}"),
            Untrusted::DmarcOtherDomain { domain, sender_domain } => {
                write!(f, "dmarc=pass for {domain}, not the sender's domain {sender_domain}")
            }
            Untrusted::DkimOtherDomain { signer, sender_domain } => {
                write!(f, "dkim=pass for {signer}, not the sender's domain {sender_domain}")
            }
            Untrusted::NoSenderDomain { signer } => {
                write!(f, "dkim=pass for {signer}, but the sender's domain is unknown")
            }
        }
    }
}

impl std::error::Error for Untrusted {}

/// Decide whether the sender of a message is authenticated, in this order: SMTP AUTH (`auth_user`
/// non-empty), a client address in a trusted network, then every `Authentication-Results` header
/// in `headers` (lower-case name, unfolded value) whose authserv-id is trusted: `dmarc=pass`, or
/// `dkim=pass` whose `header.d` (or the domain of `header.i`) equals `sender_domain` exactly.
///
/// `sender_domain` is the domain of the author (From) address. When a trusted `dmarc=pass` names a
/// `header.from` and `sender_domain` is known, the two must agree as well.
///
/// Without trust the error is the most telling reason found: a DMARC pass for another From domain,
/// a DMARC failure, a DKIM pass for another domain, the trusted verdicts, or the lack of them.
pub fn authenticate(
    headers: &[(String, String)],
    sender_domain: Option<&str>,
    client: Option<IpAddr>,
    auth_user: Option<&str>,
    policy: &TrustPolicy,
) -> Result<TrustReason, Untrusted> {
    if let Some(login) = auth_user.map(str::trim).filter(|l| !l.is_empty()) {
        return Ok(TrustReason::SmtpAuth(login.to_string()));
    }
    if let Some(ip) = client
        && policy.networks.iter().any(|n| n.contains(ip))
    {
        return Ok(TrustReason::TrustedNetwork(ip));
    }
    let trusted: Vec<String> = policy
        .authserv_ids
        .iter()
        .map(|id| id.trim().to_ascii_lowercase())
        .filter(|id| !id.is_empty())
        .collect();
    if trusted.is_empty() {
        return Err(Untrusted::NoEvidence);
    }
    let sender = sender_domain.and_then(normalise_domain);

    // The most telling reason so far, with its rank (higher is more telling; first one wins ties).
    let mut best: Option<(u8, Untrusted)> = None;
    let mut consider = |rank: u8, reason: Untrusted| {
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, reason));
        }
    };
    let mut verdicts: Vec<String> = Vec::new();
    let mut ignored: Vec<String> = Vec::new();
    let mut unreadable = 0;

    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("authentication-results") {
            continue;
        }
        let Some(ar) = parse_authentication_results(value) else {
            unreadable += 1;
            continue;
        };
        if !trusted.contains(&ar.authserv_id) {
            if ignored.len() < MAX_IGNORED_LISTED && !ignored.contains(&ar.authserv_id) {
                ignored.push(ar.authserv_id);
            }
            continue;
        }
        for r in &ar.results {
            match (r.method.as_str(), r.result.as_str()) {
                ("dmarc", "pass") => match (r.prop("header.from").and_then(normalise_domain), &sender) {
                    (Some(domain), Some(sender)) if domain != *sender => consider(
                        6,
                        Untrusted::DmarcOtherDomain {
                            domain,
                            sender_domain: sender.clone(),
                        },
                    ),
                    _ => {
                        return Ok(TrustReason::Dmarc {
                            authserv_id: ar.authserv_id,
                        });
                    }
                },
                ("dmarc", "none") => {}
                ("dmarc", other) => consider(
                    5,
                    Untrusted::DmarcFailed {
                        result: other.to_string(),
                    },
                ),
                ("dkim", "pass") => {
                    let d = r.prop("header.d").and_then(normalise_domain);
                    let i = r.prop("header.i").and_then(auid_domain);
                    match &sender {
                        Some(s) if d.as_ref() == Some(s) || i.as_ref() == Some(s) => {
                            return Ok(TrustReason::Dkim {
                                authserv_id: ar.authserv_id,
                                domain: s.clone(),
                            });
                        }
                        Some(s) => {
                            if let Some(signer) = d.or(i) {
                                consider(
                                    4,
                                    Untrusted::DkimOtherDomain {
                                        signer,
                                        sender_domain: s.clone(),
                                    },
                                );
                            }
                        }
                        None => {
                            if let Some(signer) = d.or(i) {
                                consider(4, Untrusted::NoSenderDomain { signer });
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let listed: Vec<String> = ar
            .results
            .iter()
            .map(|r| format!("{}={}", r.method, r.result))
            .collect();
        let listed = if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join(", ")
        };
        verdicts.push(format!("{}: {listed}", ar.authserv_id));
    }

    if let Some((_, reason)) = best {
        return Err(reason);
    }
    if !verdicts.is_empty() {
        return Err(Untrusted::NoPass {
            results: verdicts.join("; "),
        });
    }
    Err(Untrusted::NoTrustedResults {
        trusted,
        ignored,
        unreadable,
    })
}

/// A domain in lower case without a trailing dot; `None` when empty.
fn normalise_domain(d: &str) -> Option<String> {
    let d = d.trim().trim_end_matches('.');
    (!d.is_empty() && !d.contains(char::is_whitespace)).then(|| d.to_ascii_lowercase())
}

/// The domain of a DKIM agent identifier (`[local-part]@domain`).
fn auid_domain(i: &str) -> Option<String> {
    normalise_domain(i.rsplit_once('@')?.1)
}

/// One `Authentication-Results` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// The authserv-id in lower case; empty when the header has none (as Microsoft 365 writes it).
    pub authserv_id: String,
    /// The results in order; empty for `none`.
    pub results: Vec<MethodResult>,
}

/// One `method=result` with its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    /// Lower case, without a method version (`dkim/1` is `dkim`).
    pub method: String,
    /// Lower case.
    pub result: String,
    /// `ptype.property` in lower case with its value as written (quotes removed). A `reason=` is kept
    /// as `reason`, and non-standard bare properties (Microsoft's `action=none`) under their name.
    pub props: Vec<(String, String)>,
}

impl MethodResult {
    /// The first value of a property (name compared case-insensitively).
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse the value of an `Authentication-Results` header (RFC 8601): `authserv-id [version];
/// method=result [reason=…] ptype.property=value …; …`, with comments in parentheses, quoted
/// strings, and `none` for no results. A header that starts with a result has no authserv-id (as
/// Microsoft 365 writes them); it is returned with an empty one. A result that cannot be read is
/// skipped up to the next `;`; `None` when the authserv-id part cannot be read.
pub fn parse_authentication_results(value: &str) -> Option<AuthResults> {
    let mut c = Cursor { s: value, pos: 0 };
    c.skip_cfws();
    let start = c.pos;
    let id = c.value(true)?;
    c.skip_cfws();
    let mut out = AuthResults {
        authserv_id: String::new(),
        results: Vec::new(),
    };
    let mut need_semicolon = true;
    if matches!(c.peek(), Some(b'=' | b'/')) {
        // No authserv-id: the header starts with its first result.
        c.pos = start;
        need_semicolon = false;
    } else {
        if id.is_empty() || id.contains(char::is_whitespace) {
            return None;
        }
        out.authserv_id = id.to_ascii_lowercase();
        if c.peek().is_some_and(|b| b.is_ascii_digit()) {
            c.take_while(|b| b.is_ascii_digit());
            c.skip_cfws();
        }
    }
    loop {
        c.skip_cfws();
        if need_semicolon {
            match c.peek() {
                None => break,
                Some(b';') => c.pos += 1,
                // Anything between the authserv-id (and version) and the first `;`.
                Some(_) => return None,
            }
            c.skip_cfws();
        }
        need_semicolon = true;
        if matches!(c.peek(), None | Some(b';')) {
            continue;
        }
        match c.resinfo() {
            Some(Some(r)) => out.results.push(r),
            Some(None) => {}
            None => c.skip_to_semicolon(),
        }
    }
    Some(out)
}

/// A position in a header value. It only ever stops at ASCII bytes, so slices stay on char
/// boundaries.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// Whitespace and (nested) comments; an unclosed comment runs to the end.
    fn skip_cfws(&mut self) {
        loop {
            self.take_while(|b| b.is_ascii_whitespace());
            if self.peek() != Some(b'(') {
                return;
            }
            let bytes = self.s.as_bytes();
            let mut depth = 0usize;
            while let Some(&b) = bytes.get(self.pos) {
                self.pos += 1;
                match b {
                    b'\\' => self.pos = (self.pos + 1).min(bytes.len()),
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            // A backslash may have stepped into a multi-byte character; move to its end.
            while !self.s.is_char_boundary(self.pos) {
                self.pos += 1;
            }
        }
    }

    /// A quoted string at the cursor, unescaped; `None` when it is not closed.
    fn quoted(&mut self) -> Option<String> {
        let bytes = self.s.as_bytes();
        let mut out = Vec::new();
        self.pos += 1;
        while let Some(&b) = bytes.get(self.pos) {
            self.pos += 1;
            match b {
                b'"' => return Some(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    if let Some(&next) = bytes.get(self.pos) {
                        out.push(next);
                        self.pos += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        None
    }

    /// A value: a quoted string, or everything up to whitespace, `;` or `(` (and `=` if
    /// `stop_at_eq`). Quoted strings inside (`"a b"@example.com`) are kept with their quotes.
    fn value(&mut self, stop_at_eq: bool) -> Option<String> {
        let mut raw = String::new();
        let mut pieces = 0;
        let mut only_quoted = None;
        loop {
            match self.peek() {
                None | Some(b';' | b'(') => break,
                Some(b) if b.is_ascii_whitespace() => break,
                Some(b'=') if stop_at_eq => break,
                Some(b'"') => {
                    let q = self.quoted()?;
                    raw.push('"');
                    raw.push_str(&q.replace('\\', "\\\\").replace('"', "\\\""));
                    raw.push('"');
                    only_quoted = (pieces == 0).then_some(q);
                }
                Some(_) => {
                    let part = self.take_while(|b| {
                        !(b.is_ascii_whitespace() || matches!(b, b';' | b'(' | b'"') || (stop_at_eq && b == b'='))
                    });
                    raw.push_str(part);
                    only_quoted = None;
                }
            }
            pieces += 1;
        }
        Some(match only_quoted {
            Some(q) if pieces == 1 => q,
            _ => raw,
        })
    }

    /// Letters, digits, `-` and `_`, in lower case; `None` when there are none.
    fn keyword(&mut self) -> Option<String> {
        let k = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (!k.is_empty()).then(|| k.to_ascii_lowercase())
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.pos += 1)
    }

    /// Skip to the next `;` outside comments and quoted strings (or to the end).
    fn skip_to_semicolon(&mut self) {
        loop {
            match self.peek() {
                None | Some(b';') => return,
                Some(b'(') => self.skip_cfws(),
                Some(b'"') => {
                    if self.quoted().is_none() {
                        return;
                    }
                }
                Some(_) => {
                    self.take_while(|b| !matches!(b, b';' | b'(' | b'"'));
                }
            }
        }
    }

    /// `method[/version]=result` and its properties. `Some(None)` for `none`; `None` when the
    /// method or result cannot be read. Unreadable properties end the result (up to the next `;`).
    fn resinfo(&mut self) -> Option<Option<MethodResult>> {
        let method = self.keyword()?;
        self.skip_cfws();
        if method == "none" && matches!(self.peek(), None | Some(b';')) {
            return Some(None);
        }
        if self.eat(b'/').is_some() {
            self.skip_cfws();
            self.keyword()?;
            self.skip_cfws();
        }
        self.eat(b'=')?;
        self.skip_cfws();
        let result = self.keyword()?;
        let mut r = MethodResult {
            method,
            result,
            props: Vec::new(),
        };
        loop {
            self.skip_cfws();
            if matches!(self.peek(), None | Some(b';')) {
                break;
            }
            match self.property() {
                Some(prop) => r.props.push(prop),
                None => {
                    self.skip_to_semicolon();
                    break;
                }
            }
        }
        Some(Some(r))
    }

    /// `ptype.property=value` (or a bare `name=value`).
    fn property(&mut self) -> Option<(String, String)> {
        let mut name = self.keyword()?;
        self.skip_cfws();
        if self.eat(b'.').is_some() {
            self.skip_cfws();
            name.push('.');
            name.push_str(&self.keyword()?);
            self.skip_cfws();
        }
        self.eat(b'=')?;
        self.skip_cfws();
        let value = self.value(false)?;
        if value.is_empty() {
            return None;
        }
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> Network {
        Network::parse(s).unwrap()
    }

    fn policy(ids: &[&str], nets: &[&str]) -> TrustPolicy {
        TrustPolicy {
            authserv_ids: ids.iter().map(|s| s.to_string()).collect(),
            networks: nets.iter().map(|s| net(s)).collect(),
        }
    }

    fn ar(value: &str) -> (String, String) {
        ("authentication-results".to_string(), value.to_string())
    }

    fn check(headers: &[(String, String)], sender: Option<&str>, ids: &[&str]) -> Result<TrustReason, Untrusted> {
        authenticate(headers, sender, None, None, &policy(ids, &[]))
    }

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    // --- networks ---

    #[test]
    fn network_parses_cidr_and_bare_addresses() {
        let n = net("10.0.0.0/8");
        assert_eq!((n.addr(), n.prefix()), (ip("10.0.0.0"), 8));
        assert_eq!(net("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(net("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(net("2001:db8::1").to_string(), "2001:db8::1/128");
        assert_eq!(net(" 10.1.2.3/8 ").to_string(), "10.0.0.0/8", "host bits are cleared");
        assert_eq!(net("[::1]/128").to_string(), "::1/128");
        assert_eq!(net("[2001:db8::]").to_string(), "2001:db8::/128");
        assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(net("::/0").to_string(), "::/0");
        assert_eq!(net("10.0.0.0 / 8").to_string(), "10.0.0.0/8");
        assert_eq!("172.16.0.0/12".parse::<Network>().unwrap(), net("172.16.0.0/12"));
    }

    #[test]
    fn network_rejects_nonsense() {
        for s in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/08x",
            "10.0.0.0/0008",
            "10.0.0.0/8/8",
            "10/8",
            "example.com",
            "300.1.1.1",
            "fe80::1%eth0",
            "10.0.0.0/999999999999",
            "10.0.0.0/ 8 8",
        ] {
            assert!(Network::parse(s).is_err(), "{s:?}");
        }
        let e = Network::parse("10.0.0.0/40").unwrap_err();
        assert!(e.contains("0 to 32"), "{e}");
    }

    #[test]
    fn network_contains() {
        let n = net("10.0.0.0/8");
        assert!(n.contains(ip("10.0.0.0")));
        assert!(n.contains(ip("10.255.255.255")));
        assert!(!n.contains(ip("11.0.0.0")));
        assert!(!n.contains(ip("9.255.255.255")));
        let n = net("192.0.2.128/25");
        assert!(n.contains(ip("192.0.2.200")));
        assert!(!n.contains(ip("192.0.2.127")));
        let host = net("192.0.2.7");
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));
        let all4 = net("0.0.0.0/0");
        assert!(all4.contains(ip("203.0.113.9")));
        assert!(!all4.contains(ip("2001:db8::1")));
        let v6 = net("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let odd = net("2001:db8::/33");
        assert!(odd.contains(ip("2001:db8:7fff::1")));
        assert!(!odd.contains(ip("2001:db8:8000::1")));
        assert!(net("::1").contains(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert!(net("127.0.0.0/8").contains(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(net("::/0").contains(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_networks() {
        let n = net("10.0.0.0/8");
        assert!(n.contains(ip("::ffff:10.1.2.3")));
        assert!(!n.contains(ip("::ffff:11.1.2.3")));
        // IPv4-compatible (deprecated) addresses are not mapped ones.
        assert!(!n.contains(ip("::10.1.2.3")));
        assert!(net("192.0.2.7").contains(ip("::ffff:192.0.2.7")));
        // A plain IPv4 address does not match a mapped IPv6 network.
        assert!(!net("::ffff:10.0.0.0/104").contains(ip("10.1.2.3")));
        assert!(net("::ffff:10.0.0.0/104").contains(ip("::ffff:10.1.2.3")));
    }

    // --- the order of the checks ---

    #[test]
    fn smtp_auth_is_trusted() {
        let got = authenticate(
            &[],
            Some("example.com"),
            Some(ip("203.0.113.5")),
            Some("alice"),
            &TrustPolicy::default(),
        );
        assert_eq!(got, Ok(TrustReason::SmtpAuth("alice".into())));
        assert_eq!(got.unwrap().to_string(), "SMTP AUTH as alice");
        let got = authenticate(&[], None, None, Some(" bob@example.com "), &TrustPolicy::default());
        assert_eq!(got, Ok(TrustReason::SmtpAuth("bob@example.com".into())));
    }

    #[test]
    fn empty_login_is_no_smtp_auth() {
        for login in ["", "   "] {
            let got = authenticate(&[], None, None, Some(login), &TrustPolicy::default());
            assert_eq!(got, Err(Untrusted::NoEvidence), "{login:?}");
        }
    }

    #[test]
    fn trusted_network_is_trusted() {
        let p = policy(&[], &["192.0.2.0/24", "2001:db8::/32"]);
        let got = authenticate(&[], None, Some(ip("192.0.2.44")), None, &p);
        assert_eq!(got, Ok(TrustReason::TrustedNetwork(ip("192.0.2.44"))));
        assert_eq!(got.unwrap().to_string(), "client 192.0.2.44 is in a trusted network");
        let got = authenticate(&[], None, Some(ip("::ffff:192.0.2.44")), None, &p);
        assert_eq!(got, Ok(TrustReason::TrustedNetwork(ip("::ffff:192.0.2.44"))));
        let got = authenticate(&[], None, Some(ip("2001:db8::25")), None, &p);
        assert_eq!(got, Ok(TrustReason::TrustedNetwork(ip("2001:db8::25"))));
        let got = authenticate(&[], None, Some(ip("198.51.100.1")), None, &p);
        assert_eq!(got, Err(Untrusted::NoEvidence));
        let got = authenticate(&[], None, None, None, &p);
        assert_eq!(got, Err(Untrusted::NoEvidence));
    }

    #[test]
    fn smtp_auth_wins_over_everything_else() {
        let p = policy(&["mx.example.com"], &["192.0.2.0/24"]);
        let h = [ar("mx.example.com; dmarc=pass header.from=example.com")];
        let got = authenticate(&h, Some("example.com"), Some(ip("192.0.2.1")), Some("carol"), &p);
        assert_eq!(got, Ok(TrustReason::SmtpAuth("carol".into())));
        let got = authenticate(&h, Some("example.com"), Some(ip("192.0.2.1")), None, &p);
        assert_eq!(got, Ok(TrustReason::TrustedNetwork(ip("192.0.2.1"))));
        let got = authenticate(&h, Some("example.com"), Some(ip("198.51.100.1")), None, &p);
        assert_eq!(
            got,
            Ok(TrustReason::Dmarc {
                authserv_id: "mx.example.com".into()
            })
        );
    }

    #[test]
    fn no_evidence_without_trusted_authserv_ids() {
        let h = [ar("mx.example.com; dmarc=pass header.from=example.com")];
        let got = check(&h, Some("example.com"), &[]);
        assert_eq!(got, Err(Untrusted::NoEvidence));
        assert_eq!(
            got.unwrap_err().to_string(),
            "no SMTP AUTH login, the client is not in a trusted network, and no authserv-id is trusted"
        );
        // Blank ids in the policy count as none.
        assert_eq!(check(&h, Some("example.com"), &["", "  "]), Err(Untrusted::NoEvidence));
    }

    // --- DMARC and DKIM from trusted verifiers ---

    #[test]
    fn dmarc_pass_from_trusted_verifier() {
        let h = [ar(
            "mail.example.org; dmarc=pass (p=none dis=none) header.from=example.com",
        )];
        let got = check(&h, Some("example.com"), &["mail.example.org"]);
        assert_eq!(
            got,
            Ok(TrustReason::Dmarc {
                authserv_id: "mail.example.org".into()
            })
        );
        assert_eq!(got.unwrap().to_string(), "dmarc=pass from mail.example.org");
        // Without a known sender domain a DMARC pass still counts.
        let got = check(&h, None, &["mail.example.org"]);
        assert!(matches!(got, Ok(TrustReason::Dmarc { .. })), "{got:?}");
    }

    #[test]
    fn authserv_id_and_header_name_compare_case_insensitively() {
        let h = [(
            "Authentication-Results".to_string(),
            "MAIL.Example.ORG; DMARC=PASS header.from=EXAMPLE.COM".to_string(),
        )];
        let got = check(&h, Some("Example.Com."), &["Mail.example.org"]);
        assert_eq!(
            got,
            Ok(TrustReason::Dmarc {
                authserv_id: "mail.example.org".into()
            })
        );
    }

    #[test]
    fn dmarc_pass_for_another_from_domain_is_refused() {
        let h = [ar("mx.example.com; dmarc=pass header.from=other.example")];
        let got = check(&h, Some("example.com"), &["mx.example.com"]);
        assert_eq!(
            got,
            Err(Untrusted::DmarcOtherDomain {
                domain: "other.example".into(),
                sender_domain: "example.com".into()
            })
        );
        assert_eq!(
            got.unwrap_err().to_string(),
            "dmarc=pass for other.example, not the sender's domain example.com"
        );
    }

    #[test]
    fn dmarc_fail() {
        let h = [ar(
            "mx.example.com; dkim=none; spf=softfail smtp.mailfrom=example.com; dmarc=fail (p=reject dis=reject) header.from=example.com",
        )];
        let got = check(&h, Some("example.com"), &["mx.example.com"]);
        assert_eq!(got, Err(Untrusted::DmarcFailed { result: "fail".into() }));
        assert_eq!(got.unwrap_err().to_string(), "dmarc=fail");
        let h = [ar("mx.example.com; dmarc=temperror header.from=example.com")];
        assert_eq!(
            check(&h, Some("example.com"), &["mx.example.com"])
                .unwrap_err()
                .to_string(),
            "dmarc=temperror"
        );
    }

    #[test]
    fn dkim_pass_for_sender_domain() {
        let h = [ar(
            "mx.example.com; dkim=pass header.d=example.com header.s=sel header.b=abcdefgh",
        )];
        let got = check(&h, Some("example.com"), &["mx.example.com"]);
        assert_eq!(
            got,
            Ok(TrustReason::Dkim {
                authserv_id: "mx.example.com".into(),
                domain: "example.com".into()
            })
        );
        assert_eq!(
            got.unwrap().to_string(),
            "dkim=pass for example.com from mx.example.com"
        );
    }

    #[test]
    fn dkim_pass_by_header_i_domain() {
        let h = [ar("mx.example.com; dkim=pass header.i=@example.com header.s=sel")];
        assert!(matches!(
            check(&h, Some("example.com"), &["mx.example.com"]),
            Ok(TrustReason::Dkim { .. })
        ));
        let h = [ar(
            "mx.example.com; dkim=pass header.i=alice@Sub.Example.com header.d=example.com",
        )];
        assert!(matches!(
            check(&h, Some("sub.example.com"), &["mx.example.com"]),
            Ok(TrustReason::Dkim { .. })
        ));
    }

    #[test]
    fn dkim_pass_for_another_domain_is_refused() {
        let h = [ar(
            "mx.example.com; dkim=pass header.d=other.example header.s=k1; dmarc=none header.from=example.com",
        )];
        let got = check(&h, Some("example.com"), &["mx.example.com"]);
        assert_eq!(
            got,
            Err(Untrusted::DkimOtherDomain {
                signer: "other.example".into(),
                sender_domain: "example.com".into()
            })
        );
        assert_eq!(
            got.unwrap_err().to_string(),
            "dkim=pass for other.example, not the sender's domain example.com"
        );
    }

    #[test]
    fn dkim_domain_match_is_exact() {
        for (d, sender) in [
            ("mail.example.com", "example.com"),
            ("example.com", "mail.example.com"),
            ("example.com.evil", "example.com"),
            ("xexample.com", "example.com"),
        ] {
            let h = [ar(&format!("mx.example.com; dkim=pass header.d={d}"))];
            let got = check(&h, Some(sender), &["mx.example.com"]);
            assert!(
                matches!(got, Err(Untrusted::DkimOtherDomain { .. })),
                "{d} vs {sender}: {got:?}"
            );
        }
    }

    #[test]
    fn dkim_pass_without_sender_domain() {
        let h = [ar("mx.example.com; dkim=pass header.d=example.com")];
        let got = check(&h, None, &["mx.example.com"]);
        assert_eq!(
            got,
            Err(Untrusted::NoSenderDomain {
                signer: "example.com".into()
            })
        );
        assert_eq!(
            got.clone().unwrap_err().to_string(),
            "dkim=pass for example.com, but the sender's domain is unknown"
        );
        assert_eq!(check(&h, Some("  "), &["mx.example.com"]), got);
    }

    #[test]
    fn dkim_fail_or_missing_domain_is_no_pass() {
        let h = [ar(
            "mx.example.com; dkim=fail (bad signature) header.d=example.com; spf=pass smtp.mailfrom=example.com",
        )];
        let got = check(&h, Some("example.com"), &["mx.example.com"]);
        assert_eq!(
            got,
            Err(Untrusted::NoPass {
                results: "mx.example.com: dkim=fail, spf=pass".into()
            })
        );
        assert_eq!(
            got.unwrap_err().to_string(),
            "no dmarc=pass or dkim=pass from a trusted authserv-id (mx.example.com: dkim=fail, spf=pass)"
        );
        let h = [ar("mx.example.com; dkim=pass")];
        let got = check(&h, Some("example.com"), &["mx.example.com"]);
        assert!(matches!(got, Err(Untrusted::NoPass { .. })), "{got:?}");
        let h = [ar("mx.example.com; none")];
        assert_eq!(
            check(&h, Some("example.com"), &["mx.example.com"]),
            Err(Untrusted::NoPass {
                results: "mx.example.com: none".into()
            })
        );
    }

    #[test]
    fn spf_pass_alone_is_not_enough() {
        let h = [ar("mx.example.com; spf=pass smtp.mailfrom=alice@example.com")];
        assert!(matches!(
            check(&h, Some("example.com"), &["mx.example.com"]),
            Err(Untrusted::NoPass { .. })
        ));
    }

    #[test]
    fn headers_from_untrusted_verifiers_are_ignored() {
        let h = [
            ar("evil.example; dmarc=pass header.from=example.com; dkim=pass header.d=example.com"),
            ar("dkim=pass header.d=example.com; dmarc=pass header.from=example.com"),
        ];
        let got = check(&h, Some("example.com"), &["mx.example.com"]);
        assert_eq!(
            got,
            Err(Untrusted::NoTrustedResults {
                trusted: vec!["mx.example.com".into()],
                ignored: vec!["evil.example".into(), "".into()],
                unreadable: 0
            })
        );
        assert_eq!(
            got.unwrap_err().to_string(),
            "no Authentication-Results header from a trusted authserv-id (trusted: mx.example.com; ignored: evil.example, (no authserv-id))"
        );
    }

    #[test]
    fn ignored_ids_are_listed_once_and_at_most_ten() {
        let mut h: Vec<(String, String)> = (0..30).map(|i| ar(&format!("relay{i}.example; dmarc=pass"))).collect();
        h.insert(0, ar("relay0.example; dkim=pass"));
        let Err(Untrusted::NoTrustedResults { ignored, .. }) = check(&h, Some("example.com"), &["mx.example.com"])
        else {
            panic!("expected NoTrustedResults");
        };
        assert_eq!(ignored.len(), MAX_IGNORED_LISTED);
        assert_eq!(ignored[0], "relay0.example");
        assert_eq!(ignored[1], "relay1.example");
    }

    #[test]
    fn no_headers_at_all() {
        let got = check(&[], Some("example.com"), &["mx.example.com"]);
        assert_eq!(
            got.clone().unwrap_err().to_string(),
            "no Authentication-Results header from a trusted authserv-id (trusted: mx.example.com)"
        );
        assert!(matches!(got, Err(Untrusted::NoTrustedResults { unreadable: 0, .. })));
    }

    #[test]
    fn other_header_names_are_not_read() {
        let h = [
            (
                "arc-authentication-results".to_string(),
                "i=1; mx.example.com; dmarc=pass header.from=example.com".to_string(),
            ),
            (
                "authentication-results-original".to_string(),
                "mx.example.com; dmarc=pass header.from=example.com".to_string(),
            ),
            (
                "x-authentication-results".to_string(),
                "mx.example.com; dmarc=pass header.from=example.com".to_string(),
            ),
            ("subject".to_string(), "mx.example.com; dmarc=pass".to_string()),
        ];
        assert!(matches!(
            check(&h, Some("example.com"), &["mx.example.com"]),
            Err(Untrusted::NoTrustedResults { .. })
        ));
    }

    #[test]
    fn any_trusted_header_may_vouch() {
        let h = [
            ar("mx.example.com; dkim=none; dmarc=none header.from=example.com"),
            ar("evil.example; dmarc=pass"),
            ar("filter.example.com; dkim=pass header.d=example.com"),
        ];
        let got = check(&h, Some("example.com"), &["mx.example.com", "filter.example.com"]);
        assert_eq!(
            got,
            Ok(TrustReason::Dkim {
                authserv_id: "filter.example.com".into(),
                domain: "example.com".into()
            })
        );
    }

    #[test]
    fn several_dkim_signatures_one_of_them_aligned() {
        let h = [ar(
            "mx.example.com; dkim=pass header.d=mailchimpapp.net header.s=k2; dkim=pass header.d=example.com header.s=k1",
        )];
        assert!(matches!(
            check(&h, Some("example.com"), &["mx.example.com"]),
            Ok(TrustReason::Dkim { .. })
        ));
    }

    #[test]
    fn the_most_telling_reason_wins() {
        // A DMARC failure says more than a DKIM pass for a third party.
        let h = [
            ar("mx.example.com; dkim=pass header.d=esp.example"),
            ar("mx.example.com; dmarc=fail header.from=example.com"),
        ];
        assert_eq!(
            check(&h, Some("example.com"), &["mx.example.com"]),
            Err(Untrusted::DmarcFailed { result: "fail".into() })
        );
        // A DKIM pass for a third party says more than the list of verdicts.
        let h = [
            ar("mx.example.com; spf=fail"),
            ar("mx.example.com; dkim=pass header.d=esp.example; dmarc=none"),
        ];
        assert!(matches!(
            check(&h, Some("example.com"), &["mx.example.com"]),
            Err(Untrusted::DkimOtherDomain { .. })
        ));
        // Untrusted headers do not contribute reasons.
        let h = [ar("evil.example; dmarc=fail"), ar("mx.example.com; spf=pass")];
        assert!(matches!(
            check(&h, Some("example.com"), &["mx.example.com"]),
            Err(Untrusted::NoPass { .. })
        ));
    }

    #[test]
    fn unreadable_headers_are_counted_and_ignored() {
        let h = [
            ar(""),
            ar(";;;"),
            ar("mx.example.com junk; dmarc=pass header.from=example.com"),
        ];
        let got = check(&h, Some("example.com"), &["mx.example.com"]);
        assert_eq!(
            got,
            Err(Untrusted::NoTrustedResults {
                trusted: vec!["mx.example.com".into()],
                ignored: vec![],
                unreadable: 3
            })
        );
        assert!(
            got.unwrap_err()
                .to_string()
                .ends_with("(trusted: mx.example.com; 3 unreadable)")
        );
    }

    // --- real-world headers ---

    const GMAIL: &str = "mx.google.com; dkim=pass header.i=@example.com header.s=20230601 header.b=Gx3fQ1aB; \
        spf=pass (google.com: domain of alice@example.com designates 209.85.220.41 as permitted sender) \
        smtp.mailfrom=alice@example.com; dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com";

    #[test]
    fn gmail() {
        let a = parse_authentication_results(GMAIL).unwrap();
        assert_eq!(a.authserv_id, "mx.google.com");
        assert_eq!(a.results.len(), 3);
        assert_eq!(
            a.results[0],
            MethodResult {
                method: "dkim".into(),
                result: "pass".into(),
                props: props(&[
                    ("header.i", "@example.com"),
                    ("header.s", "20230601"),
                    ("header.b", "Gx3fQ1aB")
                ]),
            }
        );
        assert_eq!(a.results[1].method, "spf");
        assert_eq!(a.results[1].prop("smtp.mailfrom"), Some("alice@example.com"));
        assert_eq!(a.results[2].method, "dmarc");
        assert_eq!(a.results[2].props, props(&[("header.from", "example.com")]));
        // The first passing result counts: here the aligned DKIM signature.
        let h = [ar(GMAIL)];
        assert_eq!(
            check(&h, Some("example.com"), &["mx.google.com"]),
            Ok(TrustReason::Dkim {
                authserv_id: "mx.google.com".into(),
                domain: "example.com".into()
            })
        );
        // Signed by the mail provider only: DMARC (SPF-aligned) vouches.
        let h = [ar(&GMAIL.replace("header.i=@example.com", "header.i=@esp.example"))];
        assert_eq!(
            check(&h, Some("example.com"), &["mx.google.com"]),
            Ok(TrustReason::Dmarc {
                authserv_id: "mx.google.com".into()
            })
        );
        assert!(check(&h, Some("example.com"), &["mx.example.com"]).is_err());
    }

    const M365: &str = "spf=pass (sender IP is 209.85.128.41) smtp.mailfrom=example.com; dkim=pass \
        (signature was verified) header.d=example.com;dmarc=pass action=none header.from=example.com;compauth=pass \
        reason=100";

    #[test]
    fn microsoft_365_has_no_authserv_id() {
        let a = parse_authentication_results(M365).unwrap();
        assert_eq!(a.authserv_id, "");
        let methods: Vec<(&str, &str)> = a
            .results
            .iter()
            .map(|r| (r.method.as_str(), r.result.as_str()))
            .collect();
        assert_eq!(
            methods,
            [
                ("spf", "pass"),
                ("dkim", "pass"),
                ("dmarc", "pass"),
                ("compauth", "pass")
            ]
        );
        assert_eq!(a.results[1].props, props(&[("header.d", "example.com")]));
        assert_eq!(
            a.results[2].props,
            props(&[("action", "none"), ("header.from", "example.com")])
        );
        assert_eq!(a.results[3].props, props(&[("reason", "100")]));
        // Never believed, whatever the policy says.
        let h = [ar(M365)];
        assert!(matches!(
            check(&h, Some("example.com"), &["", "mx.microsoft.com"]),
            Err(Untrusted::NoTrustedResults { .. })
        ));

        let a = parse_authentication_results(
            "dkim=none (message not signed) header.d=none;dmarc=none action=none header.from=example.com;",
        )
        .unwrap();
        assert_eq!(a.authserv_id, "");
        assert_eq!(a.results.len(), 2);
        assert_eq!(a.results[0].prop("header.d"), Some("none"));
    }

    #[test]
    fn version_after_authserv_id() {
        let a = parse_authentication_results(
            "mx.microsoft.com 1; spf=pass smtp.mailfrom=example.com; dkim=pass header.d=example.com",
        )
        .unwrap();
        assert_eq!(a.authserv_id, "mx.microsoft.com");
        assert_eq!(a.results.len(), 2);
        let a = parse_authentication_results("example.org 1 (comment) ; none").unwrap();
        assert_eq!((a.authserv_id.as_str(), a.results.len()), ("example.org", 0));
    }

    const OPENDKIM: &str = "mail.example.org; dkim=pass (2048-bit key; unprotected) header.d=example.com \
        header.i=@example.com header.a=rsa-sha256 header.s=sel header.b=abc";
    const OPENDMARC: &str = "mail.example.org; dmarc=pass (p=none dis=none) header.from=example.com";

    #[test]
    fn opendkim_and_opendmarc() {
        // The semicolon inside the comment does not end the result.
        let a = parse_authentication_results(OPENDKIM).unwrap();
        assert_eq!(a.authserv_id, "mail.example.org");
        assert_eq!(a.results.len(), 1);
        assert_eq!(
            a.results[0].props,
            props(&[
                ("header.d", "example.com"),
                ("header.i", "@example.com"),
                ("header.a", "rsa-sha256"),
                ("header.s", "sel"),
                ("header.b", "abc")
            ])
        );
        let a = parse_authentication_results(OPENDMARC).unwrap();
        assert_eq!(a.results[0].method, "dmarc");
        assert_eq!(a.results[0].props, props(&[("header.from", "example.com")]));

        let h = [ar(OPENDKIM)];
        assert!(matches!(
            check(&h, Some("example.com"), &["mail.example.org"]),
            Ok(TrustReason::Dkim { .. })
        ));
        let h = [ar(OPENDMARC)];
        assert!(matches!(
            check(&h, Some("example.com"), &["mail.example.org"]),
            Ok(TrustReason::Dmarc { .. })
        ));
        // OpenDKIM's other forms.
        let a = parse_authentication_results(
            "mail.example.org; dkim=fail reason=\"signature verification failed\" (2048-bit key; secure) header.d=example.com header.i=@example.com header.b=\"X+y/z=\"",
        )
        .unwrap();
        assert_eq!(a.results[0].result, "fail");
        assert_eq!(a.results[0].prop("reason"), Some("signature verification failed"));
        assert_eq!(a.results[0].prop("header.b"), Some("X+y/z="));
        let a = parse_authentication_results("mail.example.org (amavisd-new); dkim=none").unwrap();
        assert_eq!(a.authserv_id, "mail.example.org");
    }

    #[test]
    fn rspamd() {
        let v = "mail.example.org; dkim=pass header.d=example.com header.s=dkim header.b=cLlfPz7S; \
            spf=pass (mail.example.org: domain of \"alice@example.com\" designates 192.0.2.1 as permitted sender) \
            smtp.mailfrom=alice@example.com; dmarc=pass reason=\"SPF not aligned (relaxed)\" header.from=example.com (policy=reject); arc=none";
        let a = parse_authentication_results(v).unwrap();
        let methods: Vec<&str> = a.results.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["dkim", "spf", "dmarc", "arc"]);
        assert_eq!(a.results[2].prop("reason"), Some("SPF not aligned (relaxed)"));
        assert_eq!(a.results[2].prop("header.from"), Some("example.com"));
        let h = [ar(v)];
        assert!(matches!(
            check(&h, Some("example.com"), &["mail.example.org"]),
            Ok(TrustReason::Dkim { .. })
        ));
        let a = parse_authentication_results("mail.example.org; none").unwrap();
        assert!(a.results.is_empty());
    }

    #[test]
    fn rfc8601_examples() {
        let a = parse_authentication_results("example.com; none").unwrap();
        assert!(a.results.is_empty());
        let a = parse_authentication_results(
            "example.com; spf=pass smtp.mailfrom=example.net; auth=pass (cram-md5) smtp.auth=sender@example.net",
        )
        .unwrap();
        assert_eq!(a.results[1].prop("smtp.auth"), Some("sender@example.net"));
        let a = parse_authentication_results(
            "example.com; sender-id=fail header.from=example.com; dkim=pass (good signature) header.d=example.com",
        )
        .unwrap();
        assert_eq!(a.results[0].method, "sender-id");
        let a = parse_authentication_results("\"quoted.example.com\"; dkim=pass header.d=example.com").unwrap();
        assert_eq!(a.authserv_id, "quoted.example.com");
        let a =
            parse_authentication_results("example.com; iprev=pass policy.iprev=192.0.2.200; auth=pass smtp.auth=alice")
                .unwrap();
        assert_eq!(a.results[0].prop("policy.iprev"), Some("192.0.2.200"));
    }

    #[test]
    fn whitespace_and_comments_everywhere() {
        let a = parse_authentication_results(
            " (c1) mx.example.com (c2) ; (c3) dkim (c4) = (c5) pass (nested (comment) \\) here) header (x) . (y) d (z) = (w) example.com ( ) ;dmarc/1=pass",
        )
        .unwrap();
        assert_eq!(a.authserv_id, "mx.example.com");
        assert_eq!(a.results.len(), 2);
        assert_eq!(a.results[0].props, props(&[("header.d", "example.com")]));
        assert_eq!(a.results[1].method, "dmarc");
        let a =
            parse_authentication_results("mx.example.com;\tdkim=pass\theader.d=example.com\r\n\theader.s=x").unwrap();
        assert_eq!(a.results[0].props.len(), 2);
    }

    #[test]
    fn quoted_values() {
        let a = parse_authentication_results(
            r#"mx.example.com; spf=pass smtp.mailfrom="odd local"@example.com; dkim=pass header.d="example.com" header.b="a\"b""#,
        )
        .unwrap();
        assert_eq!(a.results[0].prop("smtp.mailfrom"), Some(r#""odd local"@example.com"#));
        assert_eq!(a.results[1].prop("header.d"), Some("example.com"));
        assert_eq!(a.results[1].prop("header.b"), Some("a\"b"));
    }

    #[test]
    fn unreadable_results_are_skipped_not_guessed() {
        let a = parse_authentication_results(
            "mx.example.com; junk words here dmarc=pass; =pass; dkim=; @@@; dkim=pass header.d=example.com",
        )
        .unwrap();
        assert_eq!(a.results.len(), 1);
        assert_eq!(a.results[0].prop("header.d"), Some("example.com"));
        // Junk among the properties ends that result but keeps what came before.
        let a =
            parse_authentication_results("mx.example.com; dkim=pass header.d=example.com junk dmarc=pass; spf=none")
                .unwrap();
        assert_eq!(a.results.len(), 2);
        assert_eq!(a.results[0].props, props(&[("header.d", "example.com")]));
        assert_eq!(a.results[1].method, "spf");
        // An unterminated quote swallows the rest, and its property is dropped.
        let a = parse_authentication_results("mx.example.com; dkim=pass header.d=\"example.com; dmarc=pass").unwrap();
        assert_eq!(a.results.len(), 1);
        assert!(a.results[0].props.is_empty());
    }

    #[test]
    fn malformed_headers() {
        for v in [
            "",
            "   ",
            "(only a comment)",
            ";",
            "; dkim=pass",
            "mx.example.com extra; dkim=pass",
            "mx.example.com 1 2; dkim=pass",
            "\"unterminated; dkim=pass",
            "\"\"; dkim=pass",
            "mx.example.com dkim=pass",
        ] {
            assert_eq!(parse_authentication_results(v), None, "{v:?}");
        }
        // Tolerated: trailing and doubled semicolons, an unclosed comment, an id without results.
        for v in [
            "mx.example.com; dkim=pass;",
            "mx.example.com;; dkim=pass ;; ",
            "mx.example.com; dkim=pass (unclosed comment; dmarc=pass",
            "mx.example.com",
        ] {
            let a = parse_authentication_results(v).unwrap();
            assert!(a.results.len() <= 1, "{v:?}: {a:?}");
            assert!(a.results.iter().all(|r| r.method == "dkim"), "{v:?}");
        }
    }

    #[test]
    fn never_panics() {
        let pieces = [
            "mx.example.com",
            ";",
            " ",
            "(",
            ")",
            "\\",
            "\"",
            "=",
            "/",
            ".",
            "dkim",
            "pass",
            "header.d",
            "@",
            "é",
            "ü\\",
            "\\é",
            "none",
            "1",
            "\t",
            "\r\n",
            "(((",
            ")))",
            "ä(",
            "=\"",
            "💥",
        ];
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            let mut s = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 24) as usize;
            for k in 0..n {
                let x = seed.rotate_left(k as u32 * 5).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                s.push_str(pieces[(x >> 40) as usize % pieces.len()]);
            }
            let _ = parse_authentication_results(&s);
            let h = [ar(&s)];
            let _ = check(&h, Some("example.com"), &["mx.example.com"]);
        }
    }
}
