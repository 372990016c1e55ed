//! Milter socket specifications (`inet:host:port`, `inet:port@host`, `inet6:…`, `unix:`/`local:`
//! paths) and binding them: stale unix sockets removed, mode and group set, TCP_NODELAY on every
//! accepted TCP connection, and the MTA's unanswered packets acknowledged at once.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use indymilter::{Listener, ProtoOpts};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Where the milter listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketSpec {
    /// A TCP address; `host` may be a name (resolved when binding) or an IP address.
    Inet { host: String, port: u16, v6: bool },
    /// A unix domain socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for SocketSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketSpec::Inet { host, port, v6: false } => write!(f, "inet:{host}:{port}"),
            SocketSpec::Inet { host, port, v6: true } => write!(f, "inet6:[{host}]:{port}"),
            SocketSpec::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

fn parse_port(p: &str, spec: &str) -> Result<u16, String> {
    match p.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{spec:?}: {p:?} is not a port number (1-65535)")),
        Ok(n) => Ok(n),
    }
}

impl SocketSpec {
    /// Parse Postfix (`inet:host:port`) and libmilter (`inet:port@host`) forms alike.
    pub fn parse(spec: &str) -> Result<SocketSpec, String> {
        let s = spec.trim();
        if s.is_empty() {
            return Err("the socket is empty".into());
        }
        let (proto, rest) = match s.split_once(':') {
            Some((p, r)) if !p.contains('/') => (p.to_ascii_lowercase(), r),
            _ if s.starts_with('/') => ("unix".to_string(), s),
            _ => return Err(format!("{s:?}: expected unix:/path, local:/path, inet:host:port, inet:port@host or inet6:…")),
        };
        match proto.as_str() {
            "unix" | "local" => {
                if !rest.starts_with('/') {
                    return Err(format!("{s:?}: the socket path must be absolute"));
                }
                Ok(SocketSpec::Unix(PathBuf::from(rest)))
            }
            "inet" | "inet6" => {
                let v6 = proto == "inet6";
                let default_host = if v6 { "::" } else { "0.0.0.0" };
                let (host, port) = if let Some((port, host)) = rest.split_once('@') {
                    (host.trim().trim_matches(['[', ']']).to_string(), parse_port(port, s)?)
                } else if let Some(inner) = rest.strip_prefix('[') {
                    let (host, port) = inner
                        .split_once("]:")
                        .ok_or_else(|| format!("{s:?}: expected inet6:[address]:port"))?;
                    (host.to_string(), parse_port(port, s)?)
                } else if let Some((host, port)) = rest.rsplit_once(':').filter(|_| !v6 || rest.matches(':').count() == 1) {
                    (host.trim().to_string(), parse_port(port, s)?)
                } else {
                    (default_host.to_string(), parse_port(rest, s)?)
                };
                if host.is_empty() {
                    return Err(format!("{s:?}: the host is empty"));
                }
                Ok(SocketSpec::Inet { host, port, v6 })
            }
            other => Err(format!("{s:?}: unknown socket type {other:?} (use unix:, local:, inet: or inet6:)")),
        }
    }
}

/// A bound listener: TCP (with TCP_NODELAY on accepted streams) or unix.
pub enum MilterListener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl MilterListener {
    /// The address for log lines.
    pub fn describe(&self) -> String {
        match self {
            MilterListener::Tcp(l) => match l.local_addr() {
                Ok(SocketAddr::V4(a)) => format!("inet:{}:{}", a.ip(), a.port()),
                Ok(SocketAddr::V6(a)) => format!("inet6:[{}]:{}", a.ip(), a.port()),
                Err(_) => "inet:?".into(),
            },
            MilterListener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

impl Drop for MilterListener {
    fn drop(&mut self) {
        if let MilterListener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A stream of either kind. A TCP stream follows the MTA's packets to acknowledge at once those
/// the milter does not answer (see [`Framing`]).
pub enum MilterStream {
    Tcp(TcpStream, Framing),
    Unix(UnixStream),
}

/// The MTA's packets, followed as they arrive only as far as needed to tell where each ends and
/// whether the milter answers it.
///
/// Why: the MTA writes a packet the milter does not answer (macros, always; MAIL and RCPT when
/// their answers are negotiated away; Postfix writes the macros of a skipped DATA step as a packet
/// of its own), and its next packet — the first header — waits in its Nagle buffer until that one
/// is acknowledged. Postfix does not set TCP_NODELAY on milter connections, and an unanswered
/// packet is acknowledged only when the kernel's delayed-ACK timer fires: ≈ 40 ms per message, with
/// the milter idle. Such a packet is acknowledged at once instead (TCP_QUICKACK), while answered
/// ones keep carrying the acknowledgement in the answer.
#[derive(Debug, Default)]
pub struct Framing {
    /// Length and command of the packet being read, as far as they have come.
    head: [u8; 5],
    have: usize,
    /// Bytes of the packet's data still to come.
    left: usize,
    /// Command of the packet read last.
    command: u8,
    /// The protocol options the milter negotiated (which commands it does not answer).
    opts: ProtoOpts,
    /// Something was written: the negotiation answer, which comes first, is past.
    written: bool,
}

impl Framing {
    /// Follow bytes read from the MTA; true when they end exactly at the end of a packet the
    /// milter does not answer.
    pub fn read(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.left > 0 {
                let n = self.left.min(bytes.len());
                self.left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (self.head.len() - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == self.head.len() {
                let len = u32::from_be_bytes([self.head[0], self.head[1], self.head[2], self.head[3]]) as usize;
                self.command = self.head[4];
                self.left = len.saturating_sub(1);
                self.have = 0;
            }
        }
        self.have == 0 && self.left == 0 && self.unanswered()
    }

    /// Follow bytes written to the MTA: the option-negotiation answer says which commands the
    /// milter leaves unanswered.
    pub fn wrote(&mut self, bytes: &[u8]) {
        if !self.written && bytes.len() >= 17 && bytes[4] == b'O' {
            self.opts = ProtoOpts::from_bits_truncate(u32::from_be_bytes([bytes[13], bytes[14], bytes[15], bytes[16]]));
        }
        self.written = true;
    }

    fn unanswered(&self) -> bool {
        // The protocol's command letters, and the option that leaves each unanswered.
        let noreply = match self.command {
            // Macros, abort, quit-and-new-connection: never answered.
            b'D' | b'A' | b'K' => return true,
            b'C' => ProtoOpts::NOREPLY_CONNECT,
            b'H' => ProtoOpts::NOREPLY_HELO,
            b'M' => ProtoOpts::NOREPLY_MAIL,
            b'R' => ProtoOpts::NOREPLY_RCPT,
            b'T' => ProtoOpts::NOREPLY_DATA,
            b'U' => ProtoOpts::NOREPLY_UNKNOWN,
            b'L' => ProtoOpts::NOREPLY_HEADER,
            b'N' => ProtoOpts::NOREPLY_EOH,
            b'B' => ProtoOpts::NOREPLY_BODY,
            _ => return false,
        };
        self.opts.contains(noreply)
    }
}

/// Acknowledge what was received now rather than when the delayed-ACK timer fires. The value 2
/// (even) leaves delayed acknowledgements on for what follows. Failure only costs the delay.
fn acknowledge_now(s: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let value: libc::c_int = 2;
        // SAFETY: a valid socket descriptor and a c_int option value of the given size.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = s;
}

impl Listener for MilterListener {
    type Io = MilterStream;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<MilterStream>> {
        match self {
            MilterListener::Tcp(l) => TcpListener::poll_accept(l, cx).map_ok(|(s, _)| {
                // Without this, an answer written as two packets (header, then accept) waits
                // for the MTA's delayed ACK: ~40 ms per message.
                let _ = s.set_nodelay(true);
                MilterStream::Tcp(s, Framing::default())
            }),
            MilterListener::Unix(l, _) => UnixListener::poll_accept(l, cx).map_ok(|(s, _)| MilterStream::Unix(s)),
        }
    }
}

impl tokio::io::AsyncRead for MilterStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MilterStream::Tcp(s, framing) => {
                let before = buf.filled().len();
                let read = Pin::new(&mut *s).poll_read(cx, buf);
                if matches!(read, Poll::Ready(Ok(()))) && framing.read(&buf.filled()[before..]) {
                    acknowledge_now(s);
                }
                read
            }
            MilterStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for MilterStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MilterStream::Tcp(s, framing) => {
                framing.wrote(buf);
                Pin::new(s).poll_write(cx, buf)
            }
            MilterStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MilterStream::Tcp(s, _) => Pin::new(s).poll_flush(cx),
            MilterStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MilterStream::Tcp(s, _) => Pin::new(s).poll_shutdown(cx),
            MilterStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Permissions for a unix socket.
#[derive(Debug, Clone)]
pub struct UnixPerms {
    pub mode: u32,
    pub group: Option<String>,
}

/// Bind the socket. Errors say what is wrong: in use, not a socket, no such group …
pub async fn bind(spec: &SocketSpec, perms: &UnixPerms) -> Result<MilterListener, String> {
    match spec {
        SocketSpec::Inet { host, port, .. } => {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .collect();
            let mut last = None;
            for addr in addrs {
                match TcpListener::bind(addr).await {
                    Ok(l) => return Ok(MilterListener::Tcp(l)),
                    Err(e) => last = Some(format!("cannot listen on {addr}: {}", describe_bind_error(&e))),
                }
            }
            Err(last.unwrap_or_else(|| format!("{host} has no address")))
        }
        SocketSpec::Unix(path) => bind_unix(path, perms).await,
    }
}

fn describe_bind_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "the address is already in use (is another ticketmilter running?)".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::AddrNotAvailable => "the address is not available on this host".into(),
        _ => e.to_string(),
    }
}

async fn bind_unix(path: &Path, perms: &UnixPerms) -> Result<MilterListener, String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // In use by a live process? Then refuse; a stale socket from a crash is replaced.
            if UnixStream::connect(path).await.is_ok() {
                return Err(format!("{shown} is in use by another process (is another ticketmilter running?)"));
            }
            std::fs::remove_file(path).map_err(|e| format!("cannot remove stale socket {shown}: {e}"))?;
        }
        Ok(_) => return Err(format!("{shown} exists and is not a socket")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot check {shown}: {e}")),
    }
    if let Some(dir) = path.parent() {
        if !dir.is_dir() {
            return Err(format!("directory {} does not exist", dir.display()));
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("cannot listen on {shown}: {}", describe_bind_error(&e)))?;
    let bound = MilterListener::Unix(listener, path.to_path_buf());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(perms.mode))
        .map_err(|e| format!("cannot set mode {:o} on {shown}: {e}", perms.mode))?;
    if let Some(group) = perms.group.as_deref().filter(|g| !g.is_empty()) {
        let gid = group_id(group).ok_or_else(|| format!("socket group {group:?} does not exist"))?;
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| format!("cannot give {shown} to group {group}: {e}"))?;
    }
    Ok(bound)
}

/// The id of a group by name (or a numeric id).
pub fn group_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: getgrnam returns a pointer into static storage or NULL; we read one field at once.
    unsafe {
        let g = libc::getgrnam(cname.as_ptr());
        if g.is_null() { None } else { Some((*g).gr_gid) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(host: &str, port: u16, v6: bool) -> SocketSpec {
        SocketSpec::Inet { host: host.into(), port, v6 }
    }

    fn packet(command: u8, data: &[u8]) -> Vec<u8> {
        let mut p = ((data.len() + 1) as u32).to_be_bytes().to_vec();
        p.push(command);
        p.extend_from_slice(data);
        p
    }

    /// The milter's option-negotiation answer with these protocol options.
    fn negotiated(opts: ProtoOpts) -> Vec<u8> {
        let mut data = 6u32.to_be_bytes().to_vec();
        data.extend_from_slice(&0x29u32.to_be_bytes());
        data.extend_from_slice(&opts.bits().to_be_bytes());
        packet(b'O', &data)
    }

    #[test]
    fn packets_left_unanswered_are_acknowledged_where_they_end() {
        let mut f = Framing::default();
        f.wrote(&negotiated(ProtoOpts::NO_CONNECT | ProtoOpts::NO_DATA));
        let macros = packet(b'D', b"Li\0QID1\0");
        let header = packet(b'L', b"Subject\0hello\0");
        // A macro packet alone, whole or in pieces: acknowledged when its last byte is in.
        assert!(f.read(&macros));
        assert!(!f.read(&macros[..3]));
        assert!(!f.read(&macros[3..7]));
        assert!(f.read(&macros[7..]));
        // Macros followed by an answered command: the answer carries the acknowledgement.
        assert!(!f.read(&[macros.clone(), header.clone()].concat()));
        // A read ending inside a packet, then one ending with the macros of the next.
        let both = [header.clone(), macros.clone()].concat();
        assert!(!f.read(&both[..header.len() + 2]));
        assert!(f.read(&both[header.len() + 2..]));
        // Abort is never answered; MAIL and RCPT are unless negotiated otherwise.
        assert!(f.read(&packet(b'A', b"")));
        assert!(!f.read(&packet(b'M', b"<a@example.com>\0")));
        assert!(!f.read(&packet(b'R', b"<b@example.com>\0")));
        // An empty (malformed) length does not stall the count.
        assert!(!f.read(&[0, 0, 0, 0, b'L']));
        assert!(f.read(&macros));
    }

    #[test]
    fn the_negotiation_says_which_commands_go_unanswered() {
        let mut f = Framing::default();
        f.wrote(&negotiated(ProtoOpts::NOREPLY_MAIL | ProtoOpts::NOREPLY_RCPT));
        assert!(f.read(&packet(b'M', b"<a@example.com>\0")));
        assert!(f.read(&[packet(b'D', b"R{rcpt_addr}\0b@example.com\0"), packet(b'R', b"<b@example.com>\0")].concat()));
        assert!(!f.read(&packet(b'L', b"From\0a@example.com\0")));
        // Only the first write is the negotiation: later answers do not change it.
        f.wrote(&negotiated(ProtoOpts::empty()));
        assert!(f.read(&packet(b'R', b"<c@example.com>\0")));
        // Nothing negotiated (nothing written yet): MAIL is answered.
        let mut fresh = Framing::default();
        assert!(!fresh.read(&packet(b'M', b"<a@example.com>\0")));
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(SocketSpec::parse("inet:127.0.0.1:8897"), Ok(inet("127.0.0.1", 8897, false)));
        assert_eq!(SocketSpec::parse("inet:8897@localhost"), Ok(inet("localhost", 8897, false)));
        assert_eq!(SocketSpec::parse("inet:8897"), Ok(inet("0.0.0.0", 8897, false)));
        assert_eq!(SocketSpec::parse("inet6:8897@::1"), Ok(inet("::1", 8897, true)));
        assert_eq!(SocketSpec::parse("inet6:8897@[::1]"), Ok(inet("::1", 8897, true)));
        assert_eq!(SocketSpec::parse("inet6:[::1]:8897"), Ok(inet("::1", 8897, true)));
        assert_eq!(SocketSpec::parse("unix:/run/t/t.sock"), Ok(SocketSpec::Unix("/run/t/t.sock".into())));
        assert_eq!(SocketSpec::parse("local:/run/t/t.sock"), Ok(SocketSpec::Unix("/run/t/t.sock".into())));
        assert_eq!(SocketSpec::parse("/run/t/t.sock"), Ok(SocketSpec::Unix("/run/t/t.sock".into())));
    }

    #[test]
    fn bad_forms_are_explained() {
        assert!(SocketSpec::parse("tcp:1").unwrap_err().contains("unknown socket type"));
        assert!(SocketSpec::parse("inet:host:99999").unwrap_err().contains("not a port"));
        assert!(SocketSpec::parse("unix:relative.sock").unwrap_err().contains("absolute"));
        assert!(SocketSpec::parse("").is_err());
        assert!(SocketSpec::parse("inet:0@127.0.0.1").is_err());
    }

    #[tokio::test]
    async fn unix_sockets_stale_in_use_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sock");
        let perms = UnixPerms { mode: 0o660, group: None };
        let first = bind(&SocketSpec::Unix(path.clone()), &perms).await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o660);
        let err = bind(&SocketSpec::Unix(path.clone()), &perms).await.err().unwrap();
        assert!(err.contains("in use by another process"), "{err}");
        drop(first);
        assert!(!path.exists(), "the socket is removed when the listener goes");
        // A socket file left behind by a crash (nobody listening) is replaced.
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(stale.exists());
        let _again = bind(&SocketSpec::Unix(stale), &perms).await.unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        assert!(bind(&SocketSpec::Unix(file), &perms).await.err().unwrap().contains("not a socket"));
        let bad_group = UnixPerms { mode: 0o660, group: Some("no-such-group-xyz".into()) };
        let err = bind(&SocketSpec::Unix(dir.path().join("g.sock")), &bad_group).await.err().unwrap();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[tokio::test]
    async fn tcp_port_in_use_is_explained() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let err = bind(&inet("127.0.0.1", port, false), &UnixPerms { mode: 0o660, group: None }).await.err().unwrap();
        assert!(err.contains("already in use"), "{err}");
    }
}
