//! Many MX hosts, one PostgreSQL (issue 6): every guarantee holds across hosts.
//!
//! Each test gets a fresh PostgreSQL database (tests/pg) loaded with tests/fixtures/directory.sql
//! and runs two real daemons (the built binary, two loopback sockets, a config file each) against
//! it, driven through the milter protocol by indymilter-test as two fake MTAs:
//!
//! * the same 1,000 messages reaching both daemons at once make 1,000 tickets, one answer
//!   `created` and one `duplicate` per message, ticket numbers unique and gap-free per day;
//! * two daemons' senders deliver 500 outbox rows, each exactly once (counted at a fake SMTP
//!   server), and a row claimed by a worker that died is sent once its lease ran out;
//! * a mailbox added (and disabled) with the admin CLI reaches both daemons within the reload
//!   interval;
//! * the loop guard and the reply rate limit count across daemons.
//!
//! Nothing is skipped: without PostgreSQL the tests fail and say why (tests/pg). Every wait is
//! bounded, only 127.0.0.1 is used, and daemons are stopped by a Drop guard even when a test
//! fails.

mod pg;
#[path = "common/mta.rs"]
#[allow(dead_code)]
mod mta;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use indymilter_test::{EomAction, Status, TestConnection};

use ticketmilter::store::outbox::{self, NewOutbox};
use ticketmilter::store::{Store, StoreOptions};

const BIN: &str = env!("CARGO_BIN_EXE_ticketmilter");
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/directory.sql");

const SUPPORT: &str = "support@msp.example";
const ALICE: &str = "alice@example.com";
const ERIK: &str = "erik@example.com";

/// Read and write timeout of every milter connection.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// The whole message stream of the 1,000-message test must be done by then.
const DEADLINE: Duration = Duration::from_secs(300);
/// The daemons' `reload_interval` in these tests.
const RELOAD_INTERVAL: u64 = 1;
/// How long a change may take to reach a daemon before the test fails: a few reload
/// intervals, leaving room for a loaded CI machine (the measured times are printed).
const RELOAD_BOUND: Duration = Duration::from_secs(10);

const NOTIFY_OFF: &str = "[notify]\nenabled = false\n";

// ---------------------------------------------------------------------------------------------
// Harness: one fresh database, the admin CLI, daemons.
// ---------------------------------------------------------------------------------------------

/// One installation: a fresh PostgreSQL database with the test directory and a scratch
/// directory for config files and logs. The database is dropped again when the test passed
/// (kept for inspection when it failed; a private cluster goes away with the test process).
struct Site {
    dir: tempfile::TempDir,
    url: String,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = pg::fresh_database();
        std::fs::write(dir.path().join("cli.toml"), "").unwrap();
        let site = Site { dir, url };
        // `load` applies the migrations first, then the fixture in one transaction.
        let out = site.cli(&["load", FIXTURE]);
        assert!(out.contains("loaded"), "{out}");
        pg::sync_identities(&site.url);
        site
    }

    /// Run the admin CLI against the database (bounded); returns its stdout, panics on failure.
    fn cli(&self, args: &[&str]) -> String {
        let tag = format!("cli-{}", CLI_COUNTER.fetch_add(1, Ordering::Relaxed));
        let out_path = self.dir.path().join(format!("{tag}.out"));
        let err_path = self.dir.path().join(format!("{tag}.err"));
        let started = Instant::now();
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(self.dir.path().join("cli.toml"))
            .arg("--database")
            .arg(&self.url)
            .args(args)
            .env_remove("TICKETMILTER_DATABASE")
            .env_remove("TICKETMILTER_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).unwrap())
            .stderr(File::create(&err_path).unwrap())
            .spawn()
            .expect("start the ticketmilter binary");
        let status = wait_child(&mut child, Duration::from_secs(60));
        let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        match status {
            Some(st) if st.success() => stdout,
            Some(st) => panic!("ticketmilter {args:?} failed ({st}):\n{stdout}{stderr}"),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ticketmilter {args:?} did not finish within {:?}:\n{stdout}{stderr}", started.elapsed())
            }
        }
    }

    /// Start a daemon named `name` with its own config file and log file.
    fn daemon(&self, name: &str, notify: &str) -> Daemon {
        Daemon::start(self.dir.path(), name, &self.url, notify)
    }

    fn count(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut c = pg::connect(&self.url);
        diesel::sql_query(sql).get_result::<N>(&mut c).unwrap_or_else(|e| panic!("{sql}: {e}")).n
    }

    /// Rows of (text, text) from a query selecting `a` and `b`.
    fn pairs(&self, sql: &str) -> Vec<(String, String)> {
        #[derive(diesel::QueryableByName)]
        struct P {
            #[diesel(sql_type = diesel::sql_types::Text)]
            a: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            b: String,
        }
        let mut c = pg::connect(&self.url);
        diesel::sql_query(sql)
            .load::<P>(&mut c)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_iter()
            .map(|p| (p.a, p.b))
            .collect()
    }

    fn texts(&self, sql: &str) -> Vec<String> {
        self.pairs(sql).into_iter().map(|(a, _)| a).collect()
    }

    fn store(&self) -> Store {
        Store::open(&self.url, StoreOptions::default()).expect("open the PostgreSQL store")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            pg::drop_database(&self.url);
        } else {
            eprintln!("multihost: database kept for inspection: {}", self.url);
        }
    }
}

static CLI_COUNTER: AtomicUsize = AtomicUsize::new(0);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Wait for a child to exit, at most `limit`.
fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `ticketmilter run` (one "MX host"): its own config file, socket and log file
/// (stderr). Stopped with SIGTERM (SIGKILL when that does not work) when dropped.
struct Daemon {
    name: String,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, name: &str, url: &str, notify: &str) -> Daemon {
        let cfg = dir.join(format!("{name}.toml"));
        let log = dir.join(format!("{name}.log"));
        // A free port can be taken by someone else before the daemon binds it: try another.
        for attempt in 1..=5 {
            let port = free_port();
            std::fs::write(
                &cfg,
                format!(
                    "[database]\nurl = \"{url}\"\n\n[milter]\nsocket = \"inet:127.0.0.1:{port}\"\nreload_interval = {RELOAD_INTERVAL}\n\n{notify}\n[log]\nlevel = \"info\"\n"
                ),
            )
            .unwrap();
            let child = Command::new(BIN)
                .arg("--config")
                .arg(&cfg)
                .arg("run")
                .env_remove("TICKETMILTER_DATABASE")
                .env_remove("TICKETMILTER_CONFIG")
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&log).unwrap())
                .spawn()
                .expect("start the daemon");
            let mut d = Daemon { name: name.to_string(), child, port, log: log.clone() };
            let needle = format!("listening on inet:127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if d.log().contains(&needle) {
                    return d;
                }
                if let Some(st) = d.child.try_wait().unwrap() {
                    let text = d.log();
                    if text.contains("already in use") && attempt < 5 {
                        break;
                    }
                    panic!("daemon {name} exited ({st}) before listening:\n{text}");
                }
                if Instant::now() >= deadline {
                    panic!("daemon {name} did not listen within 60 s:\n{}", d.log());
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        unreachable!()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log (for failure messages).
    fn tail(&self, n: usize) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        format!("--- daemon {} (last {} lines) ---\n{}", self.name, n.min(lines.len()), lines[lines.len().saturating_sub(n)..].join("\n"))
    }

    fn wait_log(&self, needle: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.log().contains(needle) {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("daemon {}: waited {limit:?} for {needle:?}\n{}", self.name, self.tail(40));
    }

    /// SIGTERM and wait (bounded); SIGKILL when it does not exit in time.
    fn stop(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let st = wait_child(&mut self.child, limit);
        if st.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        st
    }
}

/// SIGTERM: the daemon finishes what is in flight and exits 0.
fn stop_clean(mut d: Daemon) {
    let st = d.stop(Duration::from_secs(30));
    assert!(st.is_some_and(|s| s.success()), "daemon {} stopped with {st:?}\n{}", d.name, d.tail(20));
    assert!(d.log().contains("ticketmilter stopped"), "{}", d.tail(20));
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

// ---------------------------------------------------------------------------------------------
// A fake MTA: messages and answers over the milter protocol.
// ---------------------------------------------------------------------------------------------

/// A message as an MTA hands it over: envelope, header fields, body.
#[derive(Clone, Debug)]
struct Mail {
    from: String,
    rcpts: Vec<String>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Mail {
    fn new(from: &str, rcpt: &str, subject: &str, message_id: &str) -> Mail {
        Mail {
            from: format!("<{from}>"),
            rcpts: vec![format!("<{rcpt}>")],
            headers: vec![
                ("From".into(), from.as_bytes().to_vec()),
                ("To".into(), rcpt.as_bytes().to_vec()),
                ("Subject".into(), subject.as_bytes().to_vec()),
                ("Date".into(), b"Fri, 27 Nov 2026 10:00:00 +0000".to_vec()),
                ("Message-ID".into(), format!("<{message_id}>").into_bytes()),
            ],
            body: format!("Hello,\r\nplease help ({message_id}).\r\n").into_bytes(),
        }
    }
}

/// The milter's answer to one message.
#[derive(Debug, Clone)]
struct Answer {
    /// The answer came at end of message (not earlier).
    eom: bool,
    status: Status,
    actions: Vec<EomAction>,
}

impl Answer {
    /// X-Ticketmilter values (`<mailbox> <action> <number>`).
    fn ticket_headers(&self) -> Vec<String> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                EomAction::AddHeader { name, value } if name.to_bytes() == b"X-Ticketmilter" => {
                    Some(value.to_string_lossy().trim().to_string())
                }
                _ => None,
            })
            .collect()
    }

    /// `(mailbox, action, number)` of the one X-Ticketmilter header, if there is one.
    fn converted(&self) -> Option<(String, String, String)> {
        let h = self.ticket_headers();
        match h.as_slice() {
            [] => None,
            [one] => {
                let p: Vec<&str> = one.split(' ').collect();
                assert_eq!(p.len(), 3, "X-Ticketmilter {one:?} in {self:?}");
                Some((p[0].to_string(), p[1].to_string(), p[2].to_string()))
            }
            more => panic!("more than one X-Ticketmilter header: {more:?}"),
        }
    }

    fn accepted(&self) -> bool {
        self.status == Status::Accept
    }
}

fn proceed(s: &Status) -> bool {
    matches!(s, Status::Continue | Status::Noreply | Status::Skip)
}

/// A negotiated connection to a daemon after the connect step.
async fn open(port: u16) -> Result<TestConnection, String> {
    let mut c = TestConnection::configure()
        .read_timeout(IO_TIMEOUT)
        .write_timeout(IO_TIMEOUT)
        .open_tcp(("127.0.0.1", port))
        .await
        .map_err(|e| format!("open 127.0.0.1:{port}: {e}"))?;
    let st = mta::connect(&mut c, "mx.client.example", [192, 0, 2, 10]).await.map_err(|e| format!("connect: {e}"))?;
    if st != Status::Continue {
        return Err(format!("connect answered {st:?}"));
    }
    Ok(c)
}

/// Send one message the way an MTA does, stopping at the first answer that ends it.
async fn send(c: &mut TestConnection, m: &Mail) -> Result<Answer, String> {
    let early = |status| Ok(Answer { eom: false, status, actions: Vec::new() });
    let st = mta::mail(c, &m.from).await.map_err(|e| format!("MAIL: {e}"))?;
    if !proceed(&st) {
        return early(st);
    }
    for r in &m.rcpts {
        let st = mta::rcpt(c, r).await.map_err(|e| format!("RCPT: {e}"))?;
        if !proceed(&st) {
            return early(st);
        }
    }
    let st = mta::data(c).await.map_err(|e| format!("DATA: {e}"))?;
    if !proceed(&st) {
        return early(st);
    }
    for (name, value) in &m.headers {
        let v = CString::new(value.clone()).expect("no NUL in header values");
        let st = c.header(name.as_str(), v).await.map_err(|e| format!("header {name}: {e}"))?;
        if !proceed(&st) {
            return early(st);
        }
    }
    let st = mta::eoh(c).await.map_err(|e| format!("EOH: {e}"))?;
    if !proceed(&st) {
        return early(st);
    }
    let st = c.body(m.body.clone()).await.map_err(|e| format!("body: {e}"))?;
    if !proceed(&st) {
        return early(st);
    }
    let (actions, status) = c.eom().await.map_err(|e| format!("EOM: {e}"))?;
    Ok(Answer { eom: true, status, actions: actions.actions })
}

/// One message on a connection of its own.
async fn send_one(port: u16, m: &Mail) -> Answer {
    let work = async {
        let mut c = open(port).await?;
        let a = send(&mut c, m).await?;
        let _ = c.close().await;
        Ok::<Answer, String>(a)
    };
    match tokio::time::timeout(IO_TIMEOUT * 2, work).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => panic!("message to 127.0.0.1:{port}: {e}"),
        Err(_) => panic!("message to 127.0.0.1:{port}: no answer within {:?}", IO_TIMEOUT * 2),
    }
}

/// Ticket numbers grouped by day: every day's numbers are exactly 1..=n, and the day's
/// sequence stands at n (no number taken and lost at the end either).
fn assert_numbers_gap_free(site: &Site) -> BTreeMap<String, usize> {
    let mut by_day: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for number in site.texts("SELECT number AS a, '' AS b FROM tickets") {
        let (day, seq) = number
            .strip_prefix('T')
            .and_then(|r| r.split_once('.'))
            .unwrap_or_else(|| panic!("ticket number {number:?} is not TYYYYMMDD.NNNN"));
        assert!(seq.len() >= 4, "{number}: at least four digits");
        by_day.entry(day.to_string()).or_default().push(seq.parse().unwrap_or_else(|_| panic!("{number}")));
    }
    let mut counts = BTreeMap::new();
    for (day, mut seqs) in by_day {
        seqs.sort_unstable();
        let n = seqs.len();
        let missing: Vec<u64> = (1..=n as u64).filter(|s| seqs.binary_search(s).is_err()).collect();
        let mut dup = seqs.clone();
        dup.dedup();
        assert_eq!(dup.len(), n, "day {day}: a ticket number used twice");
        assert!(missing.is_empty(), "day {day}: {n} tickets but numbers missing: {missing:?} (highest {:?})", seqs.last());
        let last = site.count(&format!("SELECT last_value AS n FROM number_sequences WHERE kind = 'T' AND day = '{day}'"));
        assert_eq!(last, n as i64, "day {day}: the sequence stands at {last} after {n} tickets (a number was lost)");
        counts.insert(day, n);
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// 1. The same 1,000 messages to two daemons at once.
// ---------------------------------------------------------------------------------------------

/// What one client saw: (message index, daemon A's answer, daemon B's answer), or its error.
type ClientResult = Result<Vec<(usize, Answer, Answer)>, String>;

#[test]
fn two_daemons_same_messages_make_each_object_once() {
    const MESSAGES: usize = 1000;
    const CLIENTS: usize = 8;
    let site = Site::new();
    let a = site.daemon("A", NOTIFY_OFF);
    let b = site.daemon("B", NOTIFY_OFF);
    let ports = (a.port, b.port);
    let tickets_before = site.count("SELECT count(*) AS n FROM tickets");

    let run = format!("{}", std::process::id());
    let mails: Arc<Vec<(String, Mail)>> = Arc::new(
        (0..MESSAGES)
            .map(|i| {
                let mid = format!("mh.{i:04}.{run}@example.com");
                let mail = Mail::new(ALICE, SUPPORT, &format!("Multihost request {i:04}"), &mid);
                (mid, mail)
            })
            .collect(),
    );

    // CLIENTS tasks, each with one connection to A and one to B (two MX hosts that both took
    // the message, say after a retry): every message goes to both at the same time.
    let started = Instant::now();
    let rt = runtime();
    let results: Vec<ClientResult> = rt.block_on(async {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for client in 0..CLIENTS {
            let (next, mails) = (next.clone(), mails.clone());
            tasks.push(tokio::spawn(async move {
                let mut ca = open(ports.0).await.map_err(|e| format!("client {client}, daemon A: {e}"))?;
                let mut cb = open(ports.1).await.map_err(|e| format!("client {client}, daemon B: {e}"))?;
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= mails.len() {
                        break;
                    }
                    let m = &mails[i].1;
                    let (ra, rb) = tokio::join!(send(&mut ca, m), send(&mut cb, m));
                    let ra = ra.map_err(|e| format!("message {i} to A: {e}"))?;
                    let rb = rb.map_err(|e| format!("message {i} to B: {e}"))?;
                    out.push((i, ra, rb));
                }
                let _ = ca.close().await;
                let _ = cb.close().await;
                Ok(out)
            }));
        }
        let all = async {
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await.unwrap_or_else(|e| Err(format!("client task failed: {e}"))));
            }
            results
        };
        match tokio::time::timeout(DEADLINE, all).await {
            Ok(r) => r,
            Err(_) => vec![Err(format!(
                "deadline: the {MESSAGES} messages were not answered within {DEADLINE:?} ({} handed out)",
                next.load(Ordering::Relaxed).min(MESSAGES)
            ))],
        }
    });
    let elapsed = started.elapsed();
    drop(rt);

    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(errors.is_empty(), "client errors: {errors:?}\n{}\n{}", a.tail(30), b.tail(30));
    let mut answers: Vec<(usize, Answer, Answer)> = results.into_iter().flat_map(|r| r.unwrap()).collect();
    answers.sort_by_key(|(i, _, _)| *i);
    assert_eq!(answers.len(), MESSAGES, "every message answered by both daemons");
    println!(
        "two daemons, one PostgreSQL: {MESSAGES} messages, each to both daemons ({} milter transactions, {CLIENTS} clients per daemon) in {:.2} s = {:.0} messages/s ({:.0} transactions/s)",
        2 * MESSAGES,
        elapsed.as_secs_f64(),
        MESSAGES as f64 / elapsed.as_secs_f64(),
        2.0 * MESSAGES as f64 / elapsed.as_secs_f64()
    );

    // Each message: both daemons accept; one made the ticket, the other says duplicate and
    // names the same ticket.
    let mut numbers: HashMap<String, String> = HashMap::new();
    let (mut made_by_a, mut made_by_b) = (0, 0);
    let mut problems = Vec::new();
    for (i, ra, rb) in &answers {
        let mid = &mails[*i].0;
        if !(ra.eom && ra.accepted() && rb.eom && rb.accepted()) {
            problems.push(format!("{mid}: not accepted at end of message by both: A {ra:?}, B {rb:?}"));
            continue;
        }
        let (Some(ha), Some(hb)) = (ra.converted(), rb.converted()) else {
            problems.push(format!("{mid}: an answer without X-Ticketmilter: A {ra:?}, B {rb:?}"));
            continue;
        };
        let number = match (ha.1.as_str(), hb.1.as_str()) {
            ("created", "duplicate") => {
                made_by_a += 1;
                &ha.2
            }
            ("duplicate", "created") => {
                made_by_b += 1;
                &hb.2
            }
            _ => {
                problems.push(format!("{mid}: want one created and one duplicate, got A {ha:?}, B {hb:?}"));
                continue;
            }
        };
        if ha.0 != SUPPORT || hb.0 != SUPPORT || ha.2 != hb.2 {
            problems.push(format!("{mid}: both answers must name the same ticket of {SUPPORT}: A {ha:?}, B {hb:?}"));
        }
        numbers.insert(mid.clone(), number.clone());
    }
    assert!(
        problems.is_empty(),
        "{} of {MESSAGES} messages answered wrongly, first ones:\n{}\n{}\n{}",
        problems.len(),
        problems.iter().take(10).cloned().collect::<Vec<_>>().join("\n"),
        a.tail(20),
        b.tail(20)
    );
    println!("tickets made by daemon A: {made_by_a}, by daemon B: {made_by_b} (the other answered duplicate)");

    // In the database: exactly one ticket per message, one processed record per message
    // (created; the duplicate answers record nothing, the unique key forbids a second row).
    assert_eq!(site.count("SELECT count(*) AS n FROM tickets") - tickets_before, MESSAGES as i64, "tickets made");
    assert_eq!(site.count("SELECT count(*) AS n FROM tickets WHERE title LIKE 'Multihost request %'"), MESSAGES as i64);
    assert_eq!(site.count("SELECT count(DISTINCT title) AS n FROM tickets WHERE title LIKE 'Multihost request %'"), MESSAGES as i64);
    let like = format!("'mid:mh.%.{run}@example.com'");
    assert_eq!(site.count(&format!("SELECT count(*) AS n FROM processed_messages WHERE dedup_key LIKE {like}")), MESSAGES as i64);
    assert_eq!(
        site.count(&format!("SELECT count(DISTINCT dedup_key) AS n FROM processed_messages WHERE dedup_key LIKE {like}")),
        MESSAGES as i64
    );
    assert_eq!(
        site.count(&format!("SELECT count(*) AS n FROM processed_messages WHERE dedup_key LIKE {like} AND outcome = 'created'")),
        MESSAGES as i64,
        "every record says created"
    );
    assert_eq!(
        site.count(&format!("SELECT count(DISTINCT ticket_id) AS n FROM processed_messages WHERE dedup_key LIKE {like}")),
        MESSAGES as i64
    );
    // The ticket each record names is the one both answers named.
    let recorded: HashMap<String, String> = site
        .pairs(&format!(
            "SELECT p.message_id AS a, t.number AS b FROM processed_messages p JOIN tickets t ON t.id = p.ticket_id WHERE p.dedup_key LIKE {like}"
        ))
        .into_iter()
        .collect();
    assert_eq!(recorded.len(), MESSAGES);
    for (mid, number) in &numbers {
        assert_eq!(recorded.get(mid), Some(number), "{mid}: the answers named {number}, the record says {:?}", recorded.get(mid));
    }
    let distinct: HashSet<&String> = numbers.values().collect();
    assert_eq!(distinct.len(), MESSAGES, "ticket numbers are unique");

    // Numbers: unique and consecutive per day, no gap, nothing lost at the end.
    let per_day = assert_numbers_gap_free(&site);
    println!("ticket numbers per day (all gap-free): {per_day:?}");
    assert_eq!(per_day.values().sum::<usize>() as i64, tickets_before + MESSAGES as i64);
    stop_clean(a);
    stop_clean(b);
}

// ---------------------------------------------------------------------------------------------
// 2. The outbox: two daemons' senders, 500 rows, each delivered once; a dead worker's row.
// ---------------------------------------------------------------------------------------------

/// One message the fake relay accepted.
#[derive(Debug, Clone)]
struct Delivery {
    message_id: String,
    helo: String,
    at: Instant,
}

/// A minimal SMTP server on 127.0.0.1 that serves each connection on a thread of its own and
/// records every message's Message-ID, the client's EHLO name and the time. Each accepted
/// message costs `delay`, so that a stream of rows takes long enough for both senders to work.
struct FakeSmtp {
    port: u16,
    seen: Arc<Mutex<Vec<Delivery>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeSmtp {
    fn start(delay: Duration) -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(600);
            let mut sessions = Vec::new();
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let seen = seen2.clone();
                        sessions.push(std::thread::spawn(move || {
                            let _ = FakeSmtp::session(stream, &seen, delay);
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for s in sessions {
                let _ = s.join();
            }
        });
        FakeSmtp { port, seen, stop, thread: Some(thread) }
    }

    fn session(stream: TcpStream, seen: &Mutex<Vec<Delivery>>, delay: Duration) -> std::io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_write_timeout(Some(Duration::from_secs(15)))?;
        let mut out = stream.try_clone()?;
        let mut input = BufReader::new(stream);
        out.write_all(b"220 fake.test ESMTP\r\n")?;
        let mut helo = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            quickack(input.get_ref());
            if input.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let cmd = line.trim_end().to_string();
            let upper = cmd.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                helo = cmd.get(5..).unwrap_or_default().trim().to_string();
                b"250-fake.test\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                b"250 2.1.0 ok\r\n"
            } else if upper.starts_with("RCPT TO:") {
                b"250 2.1.5 ok\r\n"
            } else if upper == "DATA" {
                out.write_all(b"354 go ahead\r\n")?;
                let mut message_id = String::new();
                let mut in_header = true;
                loop {
                    line.clear();
                    quickack(input.get_ref());
                    if input.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    if line == "\r\n" {
                        in_header = false;
                    }
                    if in_header && line.to_ascii_lowercase().starts_with("message-id:") {
                        message_id = line["message-id:".len()..].trim().trim_matches(['<', '>']).to_string();
                    }
                }
                std::thread::sleep(delay);
                seen.lock().unwrap().push(Delivery { message_id, helo: helo.clone(), at: Instant::now() });
                b"250 2.0.0 queued\r\n"
            } else if upper == "QUIT" {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            } else if upper == "NOOP" || upper == "RSET" {
                b"250 ok\r\n"
            } else {
                b"502 5.5.2 unknown command\r\n"
            };
            out.write_all(reply)?;
        }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Acknowledge what arrives at once (Linux TCP_QUICKACK, which the kernel clears again, hence
/// before every read). The SMTP client writes the message and the final "." in two writes
/// without TCP_NODELAY; with delayed ACKs each message would wait about 40 ms for Nagle.
fn quickack(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn outbox_row(message_id: &str) -> NewOutbox {
    NewOutbox {
        kind: "acknowledgement".into(),
        mailbox_id: None,
        ticket_id: None,
        template_id: None,
        recipient: ALICE.into(),
        envelope_from: String::new(),
        from_header: "Support <support@msp.example>".into(),
        subject: format!("[{message_id}] We got your message"),
        body_text: "Hello,\nwe are on it.\n".into(),
        body_html: None,
        headers: vec![("X-Ticketmilter-Loop".into(), "msp.example".into())],
        message_id: message_id.into(),
        in_reply_to: None,
        references: Vec::new(),
    }
}

fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

#[test]
fn outbox_two_senders_send_each_row_once() {
    const ROWS: usize = 500;
    const DEAD_LEASE_SECS: i64 = 4;
    let site = Site::new();
    let smtp = FakeSmtp::start(Duration::from_millis(5));
    let notify = |name: &str| {
        format!(
            "[notify]\nenabled = true\nrelay = \"127.0.0.1\"\nport = {}\nhelo_name = \"{name}.senders.test\"\ntimeout = 10\ninterval = 1\nbatch = 10\nlease = 60\nmax_attempts = 3\nbackoff = 1\nbackoff_max = 5\n",
            smtp.port
        )
    };
    let a = site.daemon("A", &notify("a"));
    let b = site.daemon("B", &notify("b"));
    a.wait_log("notifications are sent through 127.0.0.1", Duration::from_secs(10));
    b.wait_log("notifications are sent through 127.0.0.1", Duration::from_secs(10));
    let store = site.store();
    let run = std::process::id();

    // A worker that dies: it claims a row with a short lease and is never heard of again.
    let dead_mid = format!("tm.dead.{run}@msp.example");
    let claimed = Instant::now();
    let (dead_id, rows) = store
        .write(|c| {
            let id = outbox::insert(c, &outbox_row(&dead_mid), now())?;
            let rows = outbox::claim(c, now(), chrono::Duration::seconds(DEAD_LEASE_SECS), 1)?;
            Ok((id, rows))
        })
        .expect("insert and claim the dead worker's row");
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![dead_id], "the dead worker holds its row");

    // 500 rows for the two live senders, queued in one transaction.
    let mids: Vec<String> = (0..ROWS).map(|i| format!("tm.T{i:04}.{run}@msp.example")).collect();
    store
        .write(|c| {
            for m in &mids {
                outbox::insert(c, &outbox_row(m), now())?;
            }
            Ok(())
        })
        .expect("queue 500 rows");
    let queued = Instant::now();

    // Until every row is sent (bounded).
    let total = ROWS as i64 + 1;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sent = site.count("SELECT count(*) AS n FROM outbox WHERE status = 'sent'");
        if sent == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 120 s only {sent} of {total} rows sent; status: {:?}\n{}\n{}",
            site.pairs("SELECT status AS a, count(*)::text AS b FROM outbox GROUP BY status"),
            a.tail(20),
            b.tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let all_sent = queued.elapsed();
    // A row sent twice would reach the relay around now: give a straggler two intervals.
    std::thread::sleep(Duration::from_secs(2));
    let seen = smtp.deliveries();

    // At the sink: every Message-ID once, none twice, nothing else.
    let mut per_mid: HashMap<&str, usize> = HashMap::new();
    for d in &seen {
        *per_mid.entry(d.message_id.as_str()).or_default() += 1;
    }
    let twice: Vec<(&&str, &usize)> = per_mid.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "rows delivered more than once: {twice:?}");
    let missing: Vec<&String> = mids.iter().chain([&dead_mid]).filter(|m| !per_mid.contains_key(m.as_str())).collect();
    assert!(missing.is_empty(), "{} rows never reached the relay, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    assert_eq!(seen.len(), ROWS + 1, "deliveries at the relay");

    // Both senders took part.
    let by_a = seen.iter().filter(|d| d.helo == "a.senders.test").count();
    let by_b = seen.iter().filter(|d| d.helo == "b.senders.test").count();
    assert_eq!(by_a + by_b, ROWS + 1, "every delivery came from daemon A or B: {:?}", seen.iter().map(|d| &d.helo).collect::<HashSet<_>>());
    assert!(by_a > 0 && by_b > 0, "both senders worked: A sent {by_a}, B sent {by_b}");
    println!(
        "outbox: {ROWS} rows sent by two daemons in {:.2} s (A {by_a}, B {by_b}, including the dead worker's row)",
        all_sent.as_secs_f64()
    );

    // In the database: all sent, each of the 500 claimed exactly once.
    assert_eq!(site.count("SELECT count(*) AS n FROM outbox WHERE status = 'sent' AND sent_at IS NOT NULL"), total);
    assert_eq!(
        site.count(&format!("SELECT count(*) AS n FROM outbox WHERE id <> {dead_id} AND attempts = 1")),
        ROWS as i64,
        "each live row was claimed exactly once"
    );

    // The dead worker's row: taken over only once its lease ran out, then sent once.
    let dead = seen.iter().find(|d| d.message_id == dead_mid).unwrap();
    let after = dead.at.duration_since(claimed);
    assert!(
        after >= Duration::from_secs(DEAD_LEASE_SECS as u64) - Duration::from_millis(50),
        "the dead worker's row was sent {after:?} after its claim, before its {DEAD_LEASE_SECS} s lease ran out"
    );
    assert_eq!(site.count(&format!("SELECT attempts::bigint AS n FROM outbox WHERE id = {dead_id}")), 2, "the dead claim and the real one");
    println!("the dead worker's row was sent {:.2} s after its claim (lease {DEAD_LEASE_SECS} s)", after.as_secs_f64());

    drop(store);
    stop_clean(a);
    stop_clean(b);
}

// ---------------------------------------------------------------------------------------------
// 3. SQL changes made with the admin CLI reach both daemons.
// ---------------------------------------------------------------------------------------------

/// What polling a daemon saw: how long until the wanted answer came, and the answers before.
struct Polled {
    after: Duration,
    earlier: Vec<Answer>,
}

/// Send fresh messages (each its own Message-ID and subject) to `rcpt` through one daemon
/// until `want(answer)` holds. Panics after `RELOAD_BOUND`.
async fn poll_until(port: u16, label: &str, rcpt: &str, want: impl Fn(&Answer) -> bool) -> Polled {
    let started = Instant::now();
    let mut earlier = Vec::new();
    let mut k = 0;
    loop {
        k += 1;
        let mid = format!("poll.{label}.{k}.{}@example.com", std::process::id());
        let a = send_one(port, &Mail::new(ALICE, rcpt, &format!("Billing question {label} {k}"), &mid)).await;
        if want(&a) {
            return Polled { after: started.elapsed(), earlier };
        }
        assert!(started.elapsed() < RELOAD_BOUND, "{label}: not seen within {RELOAD_BOUND:?}; last answer {a:?}");
        earlier.push(a);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn sql_changes_reach_both_daemons() {
    const BILLING: &str = "billing@msp.example";
    let site = Site::new();
    let a = site.daemon("A", NOTIFY_OFF);
    let b = site.daemon("B", NOTIFY_OFF);
    let rt = runtime();

    // Before: billing@ is nobody's mailbox; both daemons let its mail pass unread.
    for (d, label) in [(&a, "A"), (&b, "B")] {
        let ans = rt.block_on(send_one(d.port, &Mail::new(ALICE, BILLING, "Invoice question", &format!("before.{label}@example.com"))));
        assert!(ans.accepted() && !ans.eom && ans.converted().is_none(), "daemon {label}: {ans:?}");
    }

    // One administrator, on any host: a new mailbox.
    let out = site.cli(&["mailbox", "add", BILLING, "--name", "Billing"]);
    assert!(out.contains("added mailbox billing@msp.example"), "{out}");
    let converted = |ans: &Answer| {
        ans.accepted() && ans.converted().is_some_and(|(mb, action, _)| mb == BILLING && action == "created")
    };
    let (pa, pb) = rt.block_on(async {
        tokio::join!(poll_until(a.port, "add-A", BILLING, converted), poll_until(b.port, "add-B", BILLING, converted))
    });
    println!(
        "mailbox added with the CLI: converted by daemon A after {:.2} s, by daemon B after {:.2} s (reload_interval {RELOAD_INTERVAL} s)",
        pa.after.as_secs_f64(),
        pb.after.as_secs_f64()
    );
    for p in [&pa, &pb] {
        for e in &p.earlier {
            assert!(e.accepted() && !e.eom && e.converted().is_none(), "before the reload: passed unread, not {e:?}");
        }
    }
    for d in [&a, &b] {
        d.wait_log("SQL configuration reloaded: 4 mailbox(es) (alerts@msp.example, billing@msp.example", Duration::from_secs(5));
    }
    let billing_records = || {
        site.count("SELECT count(*) AS n FROM processed_messages p JOIN mailboxes m ON m.id = p.mailbox_id WHERE m.address = 'billing@msp.example'")
    };
    assert_eq!(billing_records(), 2, "one ticket through each daemon");

    // And a change back: the mailbox disabled; both stop converting its mail.
    let out = site.cli(&["mailbox", "disable", BILLING]);
    assert!(out.contains("disabled mailbox billing@msp.example"), "{out}");
    let unconverted = |ans: &Answer| ans.accepted() && ans.converted().is_none();
    let (pa, pb) = rt.block_on(async {
        tokio::join!(poll_until(a.port, "off-A", BILLING, unconverted), poll_until(b.port, "off-B", BILLING, unconverted))
    });
    println!(
        "mailbox disabled with the CLI: seen by daemon A after {:.2} s, by daemon B after {:.2} s",
        pa.after.as_secs_f64(),
        pb.after.as_secs_f64()
    );
    // Polls that came before the reload were converted, each once; nothing after it.
    let mut converted_before = 0;
    for p in [&pa, &pb] {
        for e in &p.earlier {
            assert!(converted(e), "before the reload: converted, not {e:?}");
            converted_before += 1;
        }
    }
    assert_eq!(billing_records(), 2 + converted_before, "records of billing@ (2 + {converted_before} polls converted before the reload)");
    stop_clean(a);
    stop_clean(b);
}

// ---------------------------------------------------------------------------------------------
// 4. The loop guard and the reply rate limit count across daemons.
// ---------------------------------------------------------------------------------------------

#[test]
fn loop_guard_and_rate_limit_hold_across_hosts() {
    let site = Site::new();
    for args in [
        &["setting", "set", "loop_max", "2"][..],
        &["setting", "set", "loop_window_minutes", "5"],
        &["setting", "set", "reply_limit", "2"],
        &["template", "enable", "acknowledgement"],
    ] {
        site.cli(args);
    }
    let a = site.daemon("A", NOTIFY_OFF);
    let b = site.daemon("B", NOTIFY_OFF);
    let ports = [a.port, b.port];
    let rt = runtime();
    let run = std::process::id();

    // The loop guard: one sender, one subject, alternately through A and B.
    let mut answers = Vec::new();
    let mut mids = Vec::new();
    for k in 0..4 {
        let mid = format!("loop.{k}.{run}@example.com");
        let m = Mail::new(ALICE, SUPPORT, "Server room too hot", &mid);
        answers.push(rt.block_on(send_one(ports[k % 2], &m)));
        mids.push(mid);
    }
    for (k, ans) in answers.iter().enumerate() {
        assert!(ans.eom && ans.accepted(), "message {k} via {}: {ans:?}", ["A", "B"][k % 2]);
    }
    let first = answers[0].converted().expect("the first message is converted");
    assert_eq!((first.0.as_str(), first.1.as_str()), (SUPPORT, "created"), "{:?}", answers[0]);
    let second = answers[1].converted().expect("the second message (via B) is converted");
    assert!(["created", "note_added"].contains(&second.1.as_str()), "{:?}", answers[1]);
    for k in 2..4 {
        assert_eq!(answers[k].converted(), None, "message {k} via {} is past loop_max: {:?}", ["A", "B"][k % 2], answers[k]);
    }
    let outcomes: HashMap<String, (String, String)> = site
        .pairs(&format!(
            "SELECT message_id AS a, outcome || '|' || COALESCE(reason, '') AS b FROM processed_messages WHERE message_id LIKE 'loop.%.{run}@example.com'"
        ))
        .into_iter()
        .map(|(mid, b)| {
            let (o, r) = b.split_once('|').unwrap();
            (mid, (o.to_string(), r.to_string()))
        })
        .collect();
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert_eq!(outcomes[&mids[0]].0, "created");
    assert!(["created", "note_added"].contains(&outcomes[&mids[1]].0.as_str()), "{outcomes:?}");
    for mid in &mids[2..] {
        let (o, r) = &outcomes[mid];
        assert_eq!(o, "ignored", "{mid}: {outcomes:?}");
        // Counted across both daemons: the guard saw the messages taken by the other host.
        assert!(
            r.starts_with("loop guard: ") && r.contains(" messages from alice@example.com with this subject") && r.ends_with("(limit 2)"),
            "{mid}: {r}"
        );
    }
    for (mid, n) in [(&mids[2], 2), (&mids[3], 3)] {
        assert!(outcomes[mid].1.starts_with(&format!("loop guard: {n} messages")), "{mid}: {:?}", outcomes[mid]);
    }

    // The rate limit: three new tickets from one sender through A, B, A; reply_limit = 2.
    for (k, port) in [a.port, b.port, a.port].into_iter().enumerate() {
        let m = Mail::new(ERIK, SUPPORT, &format!("Rate limit case {k}"), &format!("rate.{k}.{run}@example.com"));
        let ans = rt.block_on(send_one(port, &m));
        let c = ans.converted().unwrap_or_else(|| panic!("rate message {k}: {ans:?}"));
        assert_eq!((ans.accepted(), c.1.as_str()), (true, "created"), "rate message {k}: {ans:?}");
    }
    let acks = site.count("SELECT count(*) AS n FROM outbox WHERE recipients = 'erik@example.com' AND kind = 'acknowledgement'");
    assert_eq!(
        acks,
        2,
        "acknowledgements queued to erik@example.com with reply_limit 2 over two daemons; outbox: {:?}",
        site.pairs("SELECT recipients AS a, subject AS b FROM outbox ORDER BY id")
    );
    assert_eq!(site.count("SELECT count(*) AS n FROM outbox WHERE recipients = 'erik@example.com' AND status <> 'queued'"), 0);
    assert!(
        a.log().contains("rate limit: 2 automatic mails to this address"),
        "daemon A logs the dropped acknowledgement:\n{}",
        a.tail(20)
    );
    stop_clean(a);
    stop_clean(b);
}
