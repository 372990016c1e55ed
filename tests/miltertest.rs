//! The built binary as a daemon on 127.0.0.1, driven from outside:
//!
//! * Debian's `miltertest` runs the Lua scripts in tests/lua/ (conversion with header, early
//!   accept of unrelated mail, rejection of an unknown sender at alerts@, abort, size bound,
//!   NUL bytes) — a missing `miltertest` fails the test (install the Debian package
//!   `miltertest`), it is never skipped;
//! * bad input, several rounds against one daemon: clients that vanish mid-message or
//!   mid-frame, broken and oversized frames, unknown commands, an aborted transaction, 10,000
//!   header fields, a 1 MB header line, a header over the protocol's frame limit, NUL bytes in
//!   the body, a body over the limit, a stalled client — after which the daemon still answers
//!   correctly, and its open file descriptors and memory stay bounded.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, DIRECTORY_SQL, TestDb, binary, mta};
use indymilter_test::{EomAction, MacroStage, Status, TestConnection};

// ---------------------------------------------------------------------------------------------
// The daemon.
// ---------------------------------------------------------------------------------------------

/// `ticketmilter run` on a free port of 127.0.0.1 with a fresh database loaded with the test
/// directory through `ticketmilter load`. Killed when dropped; its log is printed when the
/// test fails.
struct Daemon {
    child: Child,
    port: u16,
    db: TestDb,
    log: PathBuf,
}


fn command(cfg: &Path, url: &str) -> Command {
    let mut c = Command::new(binary());
    c.env_remove("RUST_LOG")
        .env_remove("TICKETMILTER_DATABASE")
        .env_remove("TICKETMILTER_CONFIG")
        .arg("--config")
        .arg(cfg)
        .arg("--database")
        .arg(url);
    c
}

impl Daemon {
    fn start(milter_settings: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("ticketmilter.toml");
        std::fs::write(&cfg, format!("[milter]\n{milter_settings}\n\n[log]\nlevel = \"info\"\n")).unwrap();
        let url = common::new_database(dir.path(), "t");
        let fixture = dir.path().join("directory.sql");
        // These tests resend the same sender and subject on purpose (protocol paths, bad input):
        // duplicate handling and the loop guard, tested elsewhere, stay out of the way.
        let sql = format!("{DIRECTORY_SQL}\nINSERT INTO settings (key, value) VALUES ('duplicate_criteria', 'none'), ('loop_max', '0');\n");
        std::fs::write(&fixture, sql).unwrap();
        let out = command(&cfg, &url).arg("load").arg(&fixture).output().expect("run ticketmilter load");
        assert!(out.status.success(), "ticketmilter load failed: {}", String::from_utf8_lossy(&out.stderr));
        common::fixture_loaded(&url);
        let mut db = Some(TestDb::attach(dir, url.clone()));

        // A port taken between our probe and the daemon's bind: try another one.
        for attempt in 0..5 {
            let port = free_port();
            let log = db.as_ref().unwrap().dir.path().join(format!("daemon-{attempt}.log"));
            let logfile = File::create(&log).unwrap();
            let mut child = command(&cfg, &url)
                .args(["run", "--socket", &format!("inet:127.0.0.1:{port}")])
                .stdin(Stdio::null())
                .stdout(logfile.try_clone().unwrap())
                .stderr(logfile)
                .spawn()
                .expect("start ticketmilter run");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if text.contains("already in use") {
                        break;
                    }
                    panic!("ticketmilter run exited ({status}) before listening:\n{text}");
                }
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Daemon { child, port, db: db.take().unwrap(), log };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("ticketmilter did not listen on 127.0.0.1:{port} within 30 s:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("no free port after 5 attempts");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the daemon exited ({status}):\n{}", self.log());
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Open file descriptors of the daemon.
    /// Open descriptors other than the database's: connections, pipes, sockets, log. The
    /// database's come and go with the connection pool (up to its size: two files each on
    /// SQLite, one connection each on PostgreSQL).
    fn fds(&self) -> usize {
        let db = self.database_targets();
        self.fd_targets().iter().filter(|t| !db(t)).count()
    }

    /// Open descriptors of the database.
    fn db_fds(&self) -> usize {
        let db = self.database_targets();
        self.fd_targets().iter().filter(|t| db(t)).count()
    }

    /// Which descriptor targets belong to the database: the SQLite file with its WAL and shared
    /// memory, or a TCP connection to the PostgreSQL server's port.
    fn database_targets(&self) -> impl Fn(&str) -> bool + use<> {
        let url = self.db.url();
        let pg_port = url
            .starts_with("postgres")
            .then(|| url.rsplit_once(':').and_then(|(_, rest)| rest.split('/').next()?.parse::<u16>().ok()))
            .flatten();
        let pg_sockets: std::collections::HashSet<String> = pg_port.map(tcp_sockets_to).unwrap_or_default();
        move |t: &str| [".db", ".db-wal", ".db-shm"].iter().any(|e| t.ends_with(e)) || pg_sockets.contains(t)
    }

    /// What the daemon's descriptors point at.
    fn fd_targets(&self) -> Vec<String> {
        let dir = format!("/proc/{}/fd", self.pid());
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| std::fs::read_link(e.path()).map(|t| t.display().to_string()).unwrap_or_default()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Resident memory of the daemon in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Threads of the daemon.
    fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid())).map(|d| d.count()).unwrap_or(0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- ticketmilter daemon log ({}) -----\n{}\n----- end of daemon log -----", self.log.display(), self.log());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// miltertest.
// ---------------------------------------------------------------------------------------------

fn lua_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lua")
}

/// Run `miltertest -s script` with `-D name=value` definitions (and `common`, the path of the
/// scripts' shared tests/lua/common.lua), under a deadline.
fn miltertest(script: &Path, defs: &[(&str, String)], work: &Path) -> Output {
    let mut cmd = Command::new("miltertest");
    cmd.arg("-D").arg(format!("common={}", lua_dir().join("common.lua").display()));
    for (k, v) in defs {
        cmd.arg("-D").arg(format!("{k}={v}"));
    }
    cmd.arg("-s").arg(script);
    let stem = script.file_stem().unwrap().to_string_lossy().into_owned();
    let out_path = work.join(format!("{stem}.out"));
    let err_path = work.join(format!("{stem}.err"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "miltertest is not installed: these tests need Debian's `miltertest` package \
             (apt-get install miltertest); they are never skipped"
        ),
        Err(e) => panic!("cannot run miltertest: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "miltertest {} did not finish within 120 s; output so far:\n{}",
                script.display(),
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

fn run_script(d: &mut Daemon, name: &str, defs: &[(&str, String)]) -> String {
    let script = lua_dir().join(name);
    let mut all = vec![("port", d.port.to_string())];
    all.extend(defs.iter().cloned());
    let out = miltertest(&script, &all, d.db.dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("----- miltertest {name} -----\n{stdout}{stderr}");
    assert!(
        out.status.success() && stdout.contains("checkpoint: done") && !stdout.contains("FAIL"),
        "miltertest {name} failed ({}).\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    d.assert_alive();
    stdout
}

#[test]
fn miltertest_drives_the_daemon() {
    let mut d = Daemon::start("max_message_size = 65536");
    let before = d.db.count("SELECT count(*) AS n FROM tickets");

    let out = run_script(&mut d, "e2e.lua", &[("run", "A".to_string())]);
    assert!(out.contains("header X-Ticketmilter:  support@msp.example created T") || out.contains("header X-Ticketmilter: support@msp.example created T"), "{out}");
    // What the database and the log say about it.
    let db = &d.db;
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE queue_id = 'E2EAQ1' AND outcome = 'created'"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE queue_id = 'E2EAQ6' AND outcome = 'note_added' AND ticket_id = 1"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM processed_messages WHERE queue_id IN ('E2EAQ2', 'E2EAQ3', 'E2EAQ4', 'E2EAQ5')"), 0,
        "unrelated, duplicate and rejected messages write nothing");
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets"), before + 1);
    let log = d.log();
    for needle in [
        "E2EAQ1: mailbox=support@msp.example from=<alice@example.com> action=created",
        "E2EAQ3: mailbox=support@msp.example from=<alice@example.com> action=duplicate",
        "E2EAQ4: mailbox=alerts@msp.example from=<noreply@monitor.unknown.example> action=rejected",
        "answer=reject",
        "(550 5.7.1 sender noreply@monitor.unknown.example is not a known contact or resource",
        "E2EAQ6: mailbox=support@msp.example from=<tina@msp.example> action=note_added ticket=T20261120.0001",
    ] {
        assert!(log.contains(needle), "the daemon log lacks {needle:?}:\n{log}");
    }

    let out = run_script(&mut d, "abort_and_limits.lua", &[("limit", "65536".to_string())]);
    assert!(out.contains("after nul bytes: X-Ticketmilter:  support@msp.example created") || out.contains("after nul bytes: X-Ticketmilter: support@msp.example created"), "{out}");
    assert_eq!(d.db.count("SELECT count(*) AS n FROM processed_messages WHERE queue_id IN ('ABRT1', 'BIG1')"), 0);
    assert_eq!(d.db.count("SELECT count(*) AS n FROM processed_messages WHERE queue_id IN ('ABRT2', 'BIG2', 'NUL1', 'NUL2') AND outcome = 'created'"), 4);
    assert!(d.log().contains("BIG1: from=<alice@example.com> message larger than max_message_size (65536 bytes); answer=reject"), "{}", d.log());

    // Still answering after all that: the first script once more gives a new ticket.
    let out = run_script(&mut d, "e2e.lua", &[("run", "B".to_string())]);
    assert!(out.contains("checkpoint: done"), "{out}");
    assert_eq!(d.db.count("SELECT count(*) AS n FROM processed_messages WHERE queue_id = 'E2EBQ1' AND outcome = 'created'"), 1);
    d.assert_alive();
}

// ---------------------------------------------------------------------------------------------
// A hand-written milter client for input no MTA would send.
// ---------------------------------------------------------------------------------------------

/// A raw milter protocol client: frames are a 4-byte big-endian length, a command byte and
/// the payload.
struct Raw(TcpStream, u32);

const OPT_NEG_PROTOCOL: u32 = 0x37f; // every SMFIP_NO* step may be skipped; no "no reply" options

/// The steps of [`Raw::begin_message`] the milter may skip (SMFIP_NOCONNECT, NODATA, NOEOH).
const NO_CONNECT: u32 = 0x1;
const NO_DATA: u32 = 0x200;
const NO_EOH: u32 = 0x40;

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw(s, 0)
    }

    fn send(&mut self, cmd: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut frame = Vec::with_capacity(payload.len() + 5);
        frame.extend_from_slice(&((payload.len() + 1) as u32).to_be_bytes());
        frame.push(cmd);
        frame.extend_from_slice(payload);
        self.0.write_all(&frame)
    }

    /// The next reply (command byte, data), or None when the milter closed the connection.
    fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).ok()?;
        let len = u32::from_be_bytes(len) as usize;
        assert!((1..(1 << 24)).contains(&len), "reply length {len}");
        let mut buf = vec![0u8; len];
        self.0.read_exact(&mut buf).ok()?;
        let cmd = buf.remove(0);
        Some((cmd, buf))
    }

    /// Send a command and expect `want` as the reply; returns the reply's data.
    fn expect(&mut self, cmd: u8, payload: &[u8], want: u8, what: &str) -> Vec<u8> {
        self.send(cmd, payload).unwrap_or_else(|e| panic!("{what}: send: {e}"));
        let r = self.recv().unwrap_or_else(|| panic!("{what}: the milter closed the connection"));
        assert_eq!(r.0 as char, want as char, "{what}: reply {:?}", String::from_utf8_lossy(&r.1));
        r.1
    }

    /// A step the milter may have negotiated away (`skip`): sent and answered only if not.
    fn step(&mut self, skip: u32, cmd: u8, payload: &[u8], what: &str) {
        if self.1 & skip == 0 {
            self.expect(cmd, payload, b'c', what);
        }
    }

    fn negotiate(&mut self) {
        let mut p = Vec::new();
        p.extend_from_slice(&6u32.to_be_bytes());
        p.extend_from_slice(&0x1ffu32.to_be_bytes());
        p.extend_from_slice(&OPT_NEG_PROTOCOL.to_be_bytes());
        let reply = self.expect(b'O', &p, b'O', "negotiate");
        assert!(reply.len() >= 12, "negotiation reply {reply:?}");
        self.1 = u32::from_be_bytes(reply[8..12].try_into().unwrap());
        self.step(NO_CONNECT, b'C', b"client.example\x004\x00\x00192.0.2.77\x00", "connect");
    }

    /// MAIL, RCPT (support@), DATA and a few header fields with replies, then end of header.
    fn begin_message(&mut self, subject: &str) {
        self.expect(b'M', b"<alice@example.com>\0", b'c', "mail");
        self.expect(b'R', b"<support@msp.example>\0", b'c', "rcpt");
        self.step(NO_DATA, b'T', b"", "data");
        self.expect(b'L', b"From\0alice@example.com\0", b'c', "header From");
        self.expect(b'L', format!("Subject\0{subject}\0").as_bytes(), b'c', "header Subject");
        self.step(NO_EOH, b'N', b"", "eoh");
    }

    /// True when the milter closed the connection (EOF or reset) within the read timeout.
    fn closed_by_peer(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.0.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input.
// ---------------------------------------------------------------------------------------------

const BIG_LIMIT: usize = 4 * 1024 * 1024;

async fn open(addr: SocketAddr) -> TestConnection {
    let mut c = TestConnection::configure()
        .read_timeout(Duration::from_secs(60))
        .write_timeout(Duration::from_secs(60))
        .open_tcp(addr)
        .await
        .expect("negotiate");
    assert_eq!(mta::connect(&mut c, "client.example", [192, 0, 2, 78]).await.unwrap(), Status::Continue);
    c
}

/// Envelope for alice -> support@, header fields, end of header; returns the EOH status.
async fn start(c: &mut TestConnection, qid: &str, headers: &[(&str, Vec<u8>)]) -> Status {
    c.macros(MacroStage::Mail, [("i", qid)]).await.unwrap();
    assert_eq!(mta::mail(c, "<alice@example.com>").await.unwrap(), Status::Continue);
    assert_eq!(mta::rcpt(c, "<support@msp.example>").await.unwrap(), Status::Continue);
    assert_eq!(mta::data(c).await.unwrap(), Status::Continue);
    for (n, v) in headers {
        let st = c.header(*n, std::ffi::CString::new(v.clone()).unwrap()).await.unwrap();
        assert!(matches!(st, Status::Continue | Status::Noreply), "header {n}: {st:?}");
    }
    mta::eoh(c).await.unwrap()
}

fn std_headers(id: &str, subject: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("From", b"Alice Example <alice@example.com>".to_vec()),
        ("To", b"support@msp.example".to_vec()),
        ("Subject", subject.as_bytes().to_vec()),
        ("Message-ID", format!("<{id}>").into_bytes()),
    ]
}

fn ticket_header(actions: &[EomAction]) -> Option<String> {
    actions.iter().find_map(|a| match a {
        // With the leading-space option the value carries the space after the colon.
        EomAction::AddHeader { name, value } if name.to_bytes() == b"X-Ticketmilter" => {
            let v = value.to_string_lossy().into_owned();
            Some(v.strip_prefix(' ').map(str::to_string).unwrap_or(v))
        }
        _ => None,
    })
}

/// A complete message to support@; returns (status, X-Ticketmilter value).
async fn full(c: &mut TestConnection, qid: &str, headers: &[(&str, Vec<u8>)], body: Vec<u8>) -> (Status, Option<String>) {
    let st = start(c, qid, headers).await;
    assert_eq!(st, Status::Continue, "{qid}: eoh");
    if !body.is_empty() {
        let st = c.body(body).await.unwrap();
        if st != Status::Continue {
            return (st, None);
        }
    }
    let (actions, status) = c.eom().await.unwrap();
    (status, ticket_header(&actions.actions))
}

/// A normal message on a new connection must be converted: accept + header naming a ticket.
async fn normal_message(addr: SocketAddr, tag: &str) {
    let mut c = open(addr).await;
    let (st, h) = full(&mut c, &format!("OK{tag}"), &std_headers(&format!("normal-{tag}@example.com"), "normal message"), b"All fine.\r\n".to_vec()).await;
    assert_eq!(st, Status::Accept, "normal message {tag}");
    let h = h.unwrap_or_default();
    assert!(h.starts_with("support@msp.example created T"), "normal message {tag}: {h:?}");
    c.close().await.unwrap();
}

/// One round of hostile clients; `round` keeps message ids apart.
async fn bad_round(d: &Daemon, round: usize) {
    let addr = d.addr();
    let t0 = Instant::now();
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    let mut lap = |what: &'static str, t: &mut Instant| {
        timings.push((what, t.elapsed()));
        *t = Instant::now();
    };
    let mut t = Instant::now();

    // Raw clients on blocking sockets, off the async threads.
    tokio::task::spawn_blocking(move || {
        // Connect and leave at once; negotiate and leave.
        drop(Raw::connect(addr));
        let mut r = Raw::connect(addr);
        r.negotiate();
        drop(r);
        // Disconnect in the middle of a message (after a body chunk).
        let mut r = Raw::connect(addr);
        r.negotiate();
        r.begin_message("vanishing client");
        r.expect(b'B', b"the first half of the bo", b'c', "body");
        drop(r);
        // Disconnect in the middle of a frame.
        let mut r = Raw::connect(addr);
        r.negotiate();
        r.expect(b'M', b"<alice@example.com>\0", b'c', "mail");
        r.0.write_all(&1000u32.to_be_bytes()).unwrap();
        r.0.write_all(b"R<support@").unwrap();
        drop(r);
        // A frame claiming 2 GB: refused without allocating it, connection closed.
        let mut r = Raw::connect(addr);
        r.negotiate();
        r.0.write_all(&0x7fff_fff0u32.to_be_bytes()).unwrap();
        r.0.write_all(b"Bxxxxxxxx").unwrap();
        assert!(r.closed_by_peer(), "an oversized frame must close the connection");
        // A command without its payload, and an unknown command.
        let mut r = Raw::connect(addr);
        r.negotiate();
        r.send(b'M', b"").unwrap();
        assert!(r.closed_by_peer(), "MAIL without payload must close the connection");
        let mut r = Raw::connect(addr);
        r.negotiate();
        r.send(b'Z', b"garbage").unwrap();
        assert!(r.closed_by_peer(), "an unknown command must close the connection");
        // Garbage before negotiation.
        let mut r = Raw::connect(addr);
        r.0.write_all(b"EHLO example.com\r\nMAIL FROM:<x@y>\r\n").unwrap();
        assert!(r.closed_by_peer(), "SMTP instead of milter must close the connection");
        // A header field larger than a protocol frame may be (1 MiB): connection closed.
        let mut r = Raw::connect(addr);
        r.negotiate();
        r.expect(b'M', b"<alice@example.com>\0", b'c', "mail");
        r.expect(b'R', b"<support@msp.example>\0", b'c', "rcpt");
        r.step(NO_DATA, b'T', b"", "data");
        let mut h = b"X-Huge\0".to_vec();
        h.extend(std::iter::repeat_n(b'h', 1_100_000));
        h.push(0);
        let _ = r.send(b'L', &h);
        assert!(r.closed_by_peer(), "a frame over 1 MiB must close the connection");
    })
    .await
    .unwrap();
    lap("raw clients", &mut t);

    // A stalled client holding half a message open must not block anybody.
    let mut stalled = open(addr).await;
    assert_eq!(start(&mut stalled, "STALL", &std_headers(&format!("stall-{round}@example.com"), "stalled")).await, Status::Continue);
    assert_eq!(stalled.body("half of it").await.unwrap(), Status::Continue);

    // Abort, then a good message on the same connection.
    let mut c = open(addr).await;
    assert_eq!(start(&mut c, "ABORT", &std_headers(&format!("abort-{round}@example.com"), "aborted")).await, Status::Continue);
    assert_eq!(c.body("part of a body").await.unwrap(), Status::Continue);
    c.abort().await.unwrap();
    let (st, h) = full(&mut c, "AFTERABORT", &std_headers(&format!("after-abort-{round}@example.com"), "after abort"), b"ok\r\n".to_vec()).await;
    assert_eq!(st, Status::Accept);
    assert!(h.is_some_and(|h| h.contains(" created T")), "after abort");
    lap("abort + good", &mut t);

    // 10,000 header fields.
    let mut headers = std_headers(&format!("many-headers-{round}@example.com"), "ten thousand header fields");
    for i in 0..10_000 {
        headers.push(("X-Filler", format!("filler header field number {i:05}").into_bytes()));
    }
    let (st, h) = full(&mut c, "MANYHDRS", &headers, b"Body after many headers.\r\n".to_vec()).await;
    assert_eq!(st, Status::Accept, "10,000 headers");
    assert!(h.is_some_and(|h| h.contains(" created T")), "10,000 headers");
    lap("10,000 headers", &mut t);

    // One header line of 1 MB (within the 1 MiB protocol frame), as the Subject.
    let mut headers = std_headers(&format!("long-header-{round}@example.com"), "");
    headers.retain(|(n, _)| *n != "Subject");
    let long: Vec<u8> = b"Sehr langer Betreff ".iter().copied().cycle().take(1_000_000).collect();
    headers.push(("Subject", long));
    headers.push(("X-Long", b"x".repeat(900_000)));
    let (st, h) = full(&mut c, "LONGHDR", &headers, b"Body after a long header.\r\n".to_vec()).await;
    assert_eq!(st, Status::Accept, "1 MB header");
    assert!(h.is_some_and(|h| h.contains(" created T")), "1 MB header");
    lap("1 MB header", &mut t);

    // NUL bytes in the body.
    let body = b"before NUL\0after NUL\r\n\0\0\0\r\nend\r\n".to_vec();
    let (st, h) = full(&mut c, "NULBODY", &std_headers(&format!("nul-{round}@example.com"), "NUL bytes"), body).await;
    assert_eq!(st, Status::Accept, "NUL body");
    assert!(h.is_some_and(|h| h.contains(" created T")), "NUL body");
    lap("NUL body", &mut t);

    // A body over the limit: 552 5.3.4 at the body step.
    let body: Vec<u8> = b"0123456789abcdef\r\n".iter().copied().cycle().take(BIG_LIMIT + 300_000).collect();
    let (st, _) = full(&mut c, "TOOBIG", &std_headers(&format!("big-{round}@example.com"), "too big"), body).await;
    match &st {
        Status::Reject { message: Some(m) } => assert!(m.to_string_lossy().starts_with("552 5.3.4 "), "{m:?}"),
        other => panic!("over the limit: {other:?}"),
    }
    lap("body over limit", &mut t);

    // The same connection goes on normally, and so does a new one — while the stalled client
    // still holds its half message.
    let (st, h) = full(&mut c, "AFTERBAD", &std_headers(&format!("after-bad-{round}@example.com"), "after the bad ones"), b"fine\r\n".to_vec()).await;
    assert_eq!(st, Status::Accept);
    assert!(h.is_some_and(|h| h.contains(" created T")));
    c.close().await.unwrap();
    normal_message(addr, &format!("R{round}")).await;
    drop(stalled);
    lap("normal messages", &mut t);

    println!("round {round}: {:?} in total; {timings:?}", t0.elapsed());
}

/// The descriptor targets (`socket:[inode]`) of this host's TCP connections to `port`.
fn tcp_sockets_to(port: u16) -> std::collections::HashSet<String> {
    let mut found = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let remote_port = f.get(2).and_then(|a| a.rsplit_once(':')).and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port)
                && let Some(inode) = f.get(9)
            {
                found.insert(format!("socket:[{inode}]"));
            }
        }
    }
    found
}

/// Wait (bounded) until the daemon's descriptor count drops to `at_most`; returns the count.
fn settle_fds(d: &Daemon, at_most: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = d.fds();
        if n <= at_most || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_input_leaves_the_daemon_answering_with_bounded_descriptors_and_memory() {
    let mut d = Daemon::start(&format!("max_message_size = {BIG_LIMIT}\nmax_connections = 50"));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let addr = d.addr();

    // Warm up: the first messages open the database pool.
    rt.block_on(async {
        for i in 0..3 {
            normal_message(addr, &format!("W{i}")).await;
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let fd0 = d.fds();
    let fds_at_start = d.fd_targets();
    let rss0 = d.rss_kib();
    let threads0 = d.threads();
    println!("baseline: fds={fd0} rss={rss0} KiB threads={threads0}");

    // More rounds on request, to tell a leak from allocator caching.
    let rounds: usize = std::env::var("TICKETMILTER_BAD_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(2);
    let mut after_round = Vec::new();
    for round in 1..=rounds {
        rt.block_on(bad_round(&d, round));
        d.assert_alive();
        let fds = settle_fds(&d, fd0 + 3);
        let rss = d.rss_kib();
        println!("after round {round}: fds={fds} rss={rss} KiB threads={}", d.threads());
        after_round.push((fds, rss));
    }

    // Still answering correctly.
    rt.block_on(normal_message(addr, "FINAL"));
    d.assert_alive();

    let (fds_end, rss_end) = *after_round.last().unwrap();
    let (_, rss_1) = after_round[0];
    println!("descriptors: {fd0} -> {fds_end}; RSS: {rss0} KiB -> {rss_1} KiB (round 1) -> {rss_end} KiB (round {rounds})");
    assert!(fds_end <= fd0 + 3, "open descriptors grew from {fd0} to {fds_end}: {fds_at_start:?} -> {:?}", d.fd_targets());
    // The pool opens at most pool_size (8) connections: two files each on SQLite (plus the
    // shared memory), one socket each on PostgreSQL.
    assert!(d.db_fds() <= 2 * 8 + 1, "database descriptors beyond the pool: {:?}", d.fd_targets());
    // Each round holds a few MB of message at a time; what the allocator keeps afterwards must
    // not grow round after round, and stays far below a leak of every message.
    assert!(rss_end < 400 * 1024, "RSS {rss_end} KiB");
    assert!(rss_end <= rss_1 + 48 * 1024, "RSS kept growing: {rss_1} KiB after round 1, {rss_end} KiB after round {rounds}");

    // Every conversion the rounds asked for is there, nothing of the broken ones.
    let db = &d.db;
    for (qid, per_round) in [("AFTERABORT", 1), ("MANYHDRS", 1), ("LONGHDR", 1), ("NULBODY", 1), ("AFTERBAD", 1)] {
        assert_eq!(db.count(&format!("SELECT count(*) AS n FROM processed_messages WHERE queue_id = '{qid}' AND outcome = 'created'")), rounds as i64 * per_round, "{qid}");
    }
    for qid in ["ABORT", "STALL", "TOOBIG"] {
        assert_eq!(db.count(&format!("SELECT count(*) AS n FROM processed_messages WHERE queue_id = '{qid}'")), 0, "{qid}");
    }
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE title = 'vanishing client'"), 0);
    // NUL bytes reach the database as they were sent (raw message kept).
    assert_eq!(db.count(&format!("SELECT count(*) AS n FROM processed_messages WHERE queue_id = 'NULBODY' AND {}", common::blob_contains_sql("raw", b"NUL\0after "))), rounds as i64);
    // The 1 MB subject became a title cut to 255 characters (the raw message keeps it whole).
    assert_eq!(db.count("SELECT count(*) AS n FROM tickets WHERE length(title) = 255 AND title LIKE 'Sehr langer Betreff%'"), rounds as i64);
    drop(rt);
}
