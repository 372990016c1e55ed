//! The Prometheus endpoint of the real daemon: messages driven through the milter protocol
//! (converted, duplicate, fast path, refused, too large, tempfailed on a database failure) and
//! a notification the sender gives up on show up as exact counts at GET /metrics; other paths
//! are 404; a taken or invalid metrics address stops the daemon at start; `check` reports the
//! address.

mod common;

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use indymilter_test::{Status, TestConnection};

use common::daemon::Daemon;
use common::{free_port, TestDb, binary, mta};

const SUPPORT: &str = "support@msp.example";
const ALERTS: &str = "alerts@msp.example";
const ALICE: &str = "alice@example.com";
const OUTSIDER: &str = "bob@elsewhere.example";
const UNKNOWN: &str = "noreply@monitor.unknown.example";

const TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------------------------


// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// A response: status line, Content-Type, body.
struct Response {
    status: String,
    content_type: String,
    body: String,
}

fn get(port: u16, path: &str) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end: {raw:?}"));
    let status = head.lines().next().unwrap_or("").to_string();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    Response { status, content_type, body: body.to_string() }
}

/// The metrics text, checked to be a 200 in the text format.
fn scrape(port: u16) -> String {
    let r = get(port, "/metrics");
    assert_eq!(r.status, "HTTP/1.0 200 OK", "{}", r.body);
    assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    r.body
}

/// The value of the sample `series` (name with its labels, as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.parse::<f64>().unwrap_or_else(|e| panic!("{series}: {v:?}: {e}")))
}

/// Every sample whose name is `name` (with any labels), as written.
fn series_of(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .map(String::from)
        .collect()
}

fn messages(mailbox: &str, action: &str, answer: &str) -> String {
    format!("ticketmilter_messages_total{{mailbox=\"{mailbox}\",action=\"{action}\",answer=\"{answer}\"}}")
}

// ---------------------------------------------------------------------------------------------
// The milter protocol
// ---------------------------------------------------------------------------------------------

struct Mail {
    from: String,
    rcpts: Vec<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Mail {
    fn new(from: &str, rcpts: &[&str], subject: &str, message_id: &str) -> Mail {
        Mail {
            from: format!("<{from}>"),
            rcpts: rcpts.iter().map(|r| format!("<{r}>")).collect(),
            headers: vec![
                ("From".into(), from.into()),
                ("To".into(), rcpts.join(", ")),
                ("Subject".into(), subject.into()),
                ("Date".into(), "Fri, 27 Nov 2026 10:00:00 +0000".into()),
                ("Message-ID".into(), format!("<{message_id}>")),
            ],
            body: b"Hello,\r\nplease help.\r\n".to_vec(),
        }
    }

    fn body(mut self, body: Vec<u8>) -> Mail {
        self.body = body;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Data,
    Header,
    Eoh,
    Body,
    Eom,
}

fn going_on(s: &Status) -> bool {
    matches!(s, Status::Continue | Status::Noreply)
}

async fn open(addr: SocketAddr) -> TestConnection {
    let mut c = TestConnection::configure().read_timeout(TIMEOUT).write_timeout(TIMEOUT).open_tcp(addr).await.expect("negotiate");
    assert_eq!(mta::connect(&mut c, "client.example", [192, 0, 2, 10]).await.expect("connect"), Status::Continue);
    c
}

/// One message on a fresh connection: the step that answered it, and the answer.
async fn send(addr: SocketAddr, m: &Mail) -> (Stage, Status) {
    let mut c = open(addr).await;
    let answer = async {
        assert_eq!(mta::mail(&mut c, &m.from).await.unwrap(), Status::Continue);
        for r in &m.rcpts {
            assert_eq!(mta::rcpt(&mut c, r).await.unwrap(), Status::Continue);
        }
        let st = mta::data(&mut c).await.unwrap();
        if !going_on(&st) {
            return (Stage::Data, st);
        }
        for (name, value) in &m.headers {
            let st = c.header(name.as_str(), CString::new(value.as_str()).unwrap()).await.unwrap();
            if !going_on(&st) {
                return (Stage::Header, st);
            }
        }
        let st = mta::eoh(&mut c).await.unwrap();
        if !going_on(&st) {
            return (Stage::Eoh, st);
        }
        let st = c.body(m.body.clone()).await.unwrap();
        if !going_on(&st) {
            return (Stage::Body, st);
        }
        let (_, st) = c.eom().await.unwrap();
        (Stage::Eom, st)
    }
    .await;
    c.close().await.unwrap();
    answer
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn config(metrics_port: u16, relay_port: u16) -> String {
    format!(
        "[milter]\nreload_interval = 0\nmax_message_size = 4096\n\
         [notify]\nrelay = \"127.0.0.1\"\nport = {relay_port}\ninterval = 1\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn the_endpoint_counts_what_the_milter_answered() {
    let db = TestDb::directory();
    let (milter_port, metrics_port, relay_port) = (free_port(), free_port(), free_port());
    let d = Daemon::start(&db, &config(metrics_port, relay_port), &format!("inet:127.0.0.1:{}", milter_port));
    d.wait_for("listening on", 30);
    assert!(d.log().contains(&format!("metrics served at http://127.0.0.1:{metrics_port}/metrics")), "{}", d.log());
    let addr: SocketAddr = ([127, 0, 0, 1], milter_port).into();

    // Before any mail: the version, nothing counted, the series that always exist at zero.
    let text = scrape(metrics_port);
    assert_eq!(sample(&text, &format!("ticketmilter_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))), Some(1.0), "{text}");
    assert!(series_of(&text, "ticketmilter_messages_total").is_empty(), "{text}");
    assert_eq!(sample(&text, "ticketmilter_fast_path_accepts_total"), Some(0.0));
    assert_eq!(sample(&text, "ticketmilter_connections_open"), Some(0.0));
    assert_eq!(sample(&text, "ticketmilter_eom_duration_seconds_count"), Some(0.0));
    assert_eq!(sample(&text, "ticketmilter_outbox_queued"), Some(0.0));
    assert_eq!(sample(&text, "ticketmilter_outbox_failed"), Some(0.0));
    assert!(text.contains("# TYPE ticketmilter_eom_duration_seconds histogram\n"), "{text}");

    // A notification that cannot be built: the sender gives up on it at once (no relay needed).
    let row = ticketmilter::store::outbox::NewOutbox {
        kind: "notification".into(),
        mailbox_id: None,
        ticket_id: None,
        template_id: None,
        recipient: "not an address".into(),
        envelope_from: String::new(),
        from_header: "Support <support@msp.example>".into(),
        subject: "unbuildable".into(),
        body_text: "x\n".into(),
        body_html: None,
        headers: Vec::new(),
        message_id: "unbuildable.metrics@msp.example".into(),
        in_reply_to: None,
        references: Vec::new(),
    };
    db.store
        .write(|c| Ok(ticketmilter::store::outbox::insert(c, &row, chrono::Utc::now().naive_utc())?))
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while db.count("SELECT count(*) AS n FROM outbox WHERE status = 'failed'") == 0 {
        assert!(Instant::now() < deadline, "the sender never gave up on the row; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    let rt = runtime();
    rt.block_on(async {
        let converted = Mail::new(ALICE, &[SUPPORT], "Printer on fire", "metrics-1@example.com");
        assert_eq!(send(addr, &converted).await, (Stage::Eom, Status::Accept));
        assert_eq!(send(addr, &converted).await, (Stage::Eom, Status::Accept), "the duplicate");
        let unrelated = Mail::new(ALICE, &[OUTSIDER], "Lunch?", "metrics-2@example.com");
        assert_eq!(send(addr, &unrelated).await, (Stage::Header, Status::Accept), "the fast path, at the first header");
        let refused = Mail::new(UNKNOWN, &[ALERTS], "[ALERT] Disk C: below 5%", "metrics-3@monitor.unknown.example");
        let (stage, status) = send(addr, &refused).await;
        assert_eq!(stage, Stage::Eom);
        assert!(matches!(status, Status::Reject { .. }), "{status:?}");
        let big = Mail::new(ALICE, &[SUPPORT], "Big", "metrics-4@example.com").body(vec![b'x'; 6000]);
        let (stage, status) = send(addr, &big).await;
        assert_eq!(stage, Stage::Body);
        assert!(matches!(status, Status::Reject { .. }), "{status:?}");
    });
    db.exec(&common::refuse_inserts_sql("metrics_fail", "tickets", None, "disk on fire"));
    rt.block_on(async {
        let failing = Mail::new(ALICE, &[SUPPORT], "Database down", "metrics-5@example.com");
        let (stage, status) = send(addr, &failing).await;
        assert_eq!(stage, Stage::Eom);
        assert!(matches!(status, Status::Tempfail { .. }), "{status:?}");
    });
    db.exec(&common::drop_trigger_sql("metrics_fail", "tickets"));

    // Connections close asynchronously after the client's quit: wait for the gauge to settle.
    let deadline = Instant::now() + TIMEOUT;
    let mut text = scrape(metrics_port);
    while sample(&text, "ticketmilter_connections_open") != Some(0.0) {
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(50));
        text = scrape(metrics_port);
    }
    let queued = db.count("SELECT count(*) AS n FROM outbox WHERE status IN ('queued', 'sending')");
    let failed = db.count("SELECT count(*) AS n FROM outbox WHERE status = 'failed'");

    let mut counted = series_of(&text, "ticketmilter_messages_total");
    counted.sort();
    let mut expected = vec![
        format!("{} 1", messages(SUPPORT, "created", "accept")),
        format!("{} 1", messages(SUPPORT, "duplicate", "accept")),
        format!("{} 1", messages(ALERTS, "rejected", "reject")),
        format!("{} 1", messages(SUPPORT, "too_large", "reject")),
        format!("{} 1", messages(SUPPORT, "database_error", "tempfail")),
    ];
    expected.sort();
    assert_eq!(counted, expected, "{text}");
    assert!(text.contains("# TYPE ticketmilter_messages_total counter\n"), "{text}");
    assert_eq!(sample(&text, "ticketmilter_fast_path_accepts_total"), Some(1.0), "{text}");
    // End of message was reached by the converted, duplicate, refused and failed messages (the
    // too large one was answered during its body, the unrelated one at DATA).
    assert_eq!(sample(&text, "ticketmilter_eom_duration_seconds_count"), Some(4.0), "{text}");
    assert_eq!(sample(&text, "ticketmilter_eom_duration_seconds_bucket{le=\"+Inf\"}"), Some(4.0), "{text}");
    assert_eq!(sample(&text, "ticketmilter_eom_duration_seconds_bucket{le=\"30\"}"), Some(4.0), "{text}");
    assert!(sample(&text, "ticketmilter_eom_duration_seconds_sum").unwrap() > 0.0, "{text}");
    assert_eq!(sample(&text, "ticketmilter_database_errors_total"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "ticketmilter_tempfails_total{cause=\"database\"}"), Some(1.0), "{text}");
    for cause in ["internal", "timeout", "too_large", "refused", "mta"] {
        assert_eq!(sample(&text, &format!("ticketmilter_tempfails_total{{cause=\"{cause}\"}}")), Some(0.0), "{cause}: {text}");
    }
    assert_eq!(sample(&text, "ticketmilter_outbox_failures_total"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "ticketmilter_outbox_failed"), Some(failed as f64), "{text}");
    assert_eq!(failed, 1);
    assert_eq!(sample(&text, "ticketmilter_outbox_queued"), Some(queued as f64), "{text}");

    // An open connection is counted while it lasts.
    rt.block_on(async {
        let c = open(addr).await;
        let deadline = Instant::now() + TIMEOUT;
        while sample(&scrape(metrics_port), "ticketmilter_connections_open") != Some(1.0) {
            assert!(Instant::now() < deadline, "the open connection is not counted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        c.close().await.unwrap();
    });

    // Only GET /metrics is served.
    for path in ["/", "/metrics/", "/metricsx", "/other"] {
        let r = get(metrics_port, path);
        assert_eq!(r.status, "HTTP/1.0 404 Not Found", "{path}");
    }
}

#[test]
fn a_taken_or_invalid_metrics_address_stops_the_daemon_at_start() {
    let db = TestDb::directory();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut d = Daemon::start(&db, &config(port, free_port()), &format!("inet:127.0.0.1:{}", free_port()));
    let status = d.wait_exit(30).expect("exits");
    assert_eq!(status.code(), Some(78), "{}", d.log());
    assert!(d.log().contains(&format!("cannot listen on metrics address 127.0.0.1:{port}")), "{}", d.log());

    let mut d = Daemon::start(&db, "[metrics]\nlisten = \"localhost\"\n", &format!("inet:127.0.0.1:{}", free_port()));
    assert_eq!(d.wait_exit(30).and_then(|s| s.code()), Some(78), "{}", d.log());
    assert!(
        d.log().contains("metrics.listen: \"localhost\" is not an IP address and port such as \"127.0.0.1:9465\""),
        "{}",
        d.log()
    );

    let mut d = Daemon::start(&db, "[metrics]\nlisten = \"0.0.0.0:9465\"\n", &format!("inet:127.0.0.1:{}", free_port()));
    assert_eq!(d.wait_exit(30).and_then(|s| s.code()), Some(78), "{}", d.log());
    assert!(d.log().contains("is not a loopback address"), "{}", d.log());
}

#[test]
fn check_reports_the_metrics_address() {
    let db = TestDb::directory();
    let cfg = db.dir.path().join("check.toml");
    let check = |text: &str| -> (Option<i32>, String) {
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(binary()).args(["--config", cfg.to_str().unwrap(), "--database", &db.url(), "check"]).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (_, out) = check("");
    assert!(out.contains("ok: metrics endpoint is off"), "{out}");

    let port = free_port();
    let (_, out) = check(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    assert!(out.contains(&format!("ok: metrics address 127.0.0.1:{port} can be bound")), "{out}");

    // Another program holds the port.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = other.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        if let Ok((mut s, _)) = other.accept() {
            let _ = s.write_all(b"SSH-2.0-something\r\n");
        }
    });
    let (code, out) = check(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("problem: metrics address 127.0.0.1:{port} is taken by another program")), "{out}");
    holder.join().unwrap();

    // A running daemon's own endpoint.
    let (milter_port, metrics_port) = (free_port(), free_port());
    let d = Daemon::start(&db, &config(metrics_port, free_port()), &format!("inet:127.0.0.1:{}", milter_port));
    d.wait_for("listening on", 30);
    let (_, out) = check(&format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"));
    assert!(out.contains(&format!("ok: metrics address 127.0.0.1:{metrics_port} answers (ticketmilter is running)")), "{out}");
}
