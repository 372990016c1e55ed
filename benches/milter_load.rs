//! A load generator speaking the milter protocol directly (no MTA): N concurrent connections
//! send distinct messages to one or more milter sockets, report messages/s and end-of-message
//! latency percentiles, and can check afterwards that the database holds exactly the expected
//! records.
//!
//! ```text
//! cargo run --release --example milter-load -- --socket 127.0.0.1:8897 [--socket unix:/path] \
//!     [--connections 16] [--count 2000 | --duration SECS] [--rate MSG_PER_S] [--size 4096] \
//!     [--mix] [--rcpt support@msp.example] [--from alice@example.com] [--tag run1] [--mirror] \
//!     [--verify DATABASE_URL]
//! ```
//!
//! - Several sockets share the load round-robin (several MX hosts, one database); with
//!   `--mirror` every message goes to every socket at once with the same Message-ID (two MX
//!   hosts both accepting a retry), and a message counts once.
//! - `--mix`: of every 20 messages, 12 are new 4 KB-class tickets, 2 carry a 60 KB PDF
//!   attachment, 4 are replies (ticket number in the subject) to tickets created earlier in the
//!   run, and 2 are for a recipient that is no mailbox (the milter accepts those before the
//!   body: they measure the fast path). Without `--mix` every message is a new ticket.
//! - `--rate`: open loop — message n is due at n / rate seconds; latency is still measured from
//!   the end of message, and the achieved rate is printed. Without it each connection sends as
//!   fast as it is answered (closed loop).
//! - `--verify URL`: afterwards, every message sent to the mailbox has exactly one processed
//!   record with the expected outcome and ticket (a reply: a note on the ticket it names), and no
//!   message for the other recipient has any. Exit status 1 when anything differs.
//!
//! Message-IDs are `<load-TAG-N@load.example>`. Output, one line:
//! `messages= seconds= rate= eom_ms_p50= p90= p99= max= [fast_path= verified=ok]`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indymilter_test::{EomAction, ProtoOpts, Status, TestConnection};

#[derive(Clone, Debug)]
enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

struct Args {
    sockets: Vec<Target>,
    connections: usize,
    count: u64,
    duration: Option<Duration>,
    rate: Option<f64>,
    size: usize,
    mix: bool,
    rcpt: String,
    from: String,
    tag: String,
    mirror: bool,
    verify: Option<String>,
}

const USAGE: &str = "usage: milter-load --socket HOST:PORT|unix:PATH [--socket …] [--connections N] [--count N | --duration SECS] [--rate MSG_PER_S] [--size BYTES] [--mix] [--rcpt ADDR] [--from ADDR] [--tag T] [--mirror] [--verify DATABASE_URL]";

fn usage(msg: &str) -> ! {
    eprintln!("milter-load: {msg}\n{USAGE}");
    std::process::exit(64);
}

fn parse_args() -> Args {
    let mut a = Args {
        sockets: Vec::new(),
        connections: 16,
        count: 2000,
        duration: None,
        rate: None,
        size: 4096,
        mix: false,
        rcpt: "support@msp.example".into(),
        from: "alice@example.com".into(),
        tag: format!("{}", std::process::id()),
        mirror: false,
        verify: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage(&format!("{k} needs a value")));
        match k.as_str() {
            "--socket" => {
                let v = val();
                if let Some(path) = v.strip_prefix("unix:").or_else(|| v.strip_prefix("local:")) {
                    a.sockets.push(Target::Unix(PathBuf::from(path)));
                } else {
                    let v = v.trim_start_matches("inet:");
                    a.sockets
                        .push(Target::Tcp(v.parse().unwrap_or_else(|_| usage(&format!("--socket {v}: expected HOST:PORT or unix:PATH")))));
                }
            }
            "--connections" => a.connections = val().parse().unwrap_or_else(|_| usage("--connections: a number")),
            "--count" => a.count = val().parse().unwrap_or_else(|_| usage("--count: a number")),
            "--duration" => {
                let s: f64 = val().parse().unwrap_or_else(|_| usage("--duration: seconds"));
                a.duration = Some(Duration::from_secs_f64(s));
                a.count = u64::MAX;
            }
            "--rate" => a.rate = Some(val().parse().ok().filter(|r: &f64| *r > 0.0).unwrap_or_else(|| usage("--rate: messages per second > 0"))),
            "--size" => a.size = val().parse().unwrap_or_else(|_| usage("--size: a number")),
            "--mix" => a.mix = true,
            "--rcpt" => a.rcpt = val(),
            "--from" => a.from = val(),
            "--tag" => a.tag = val(),
            "--mirror" => a.mirror = true,
            "--verify" => a.verify = Some(val()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => usage(&format!("unknown option {other}")),
        }
    }
    if a.sockets.is_empty() {
        usage("name at least one --socket");
    }
    if a.connections == 0 {
        usage("--connections must be at least 1");
    }
    if a.mirror && a.verify.is_some() {
        usage("--verify counts one record per message; a mirrored run makes a duplicate record on the second host");
    }
    a
}

/// What message n is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    New,
    Attachment,
    Reply,
    Unrelated,
}

fn kind_of(a: &Args, n: u64) -> Kind {
    if !a.mix {
        return Kind::New;
    }
    match n % 20 {
        3 | 13 => Kind::Unrelated,
        7 | 17 => Kind::Attachment,
        5 | 10 | 15 | 19 => Kind::Reply,
        _ => Kind::New,
    }
}

/// The text body: readable lines up to `size` bytes.
fn text(size: usize, n: u64) -> String {
    let mut b = format!("Hello,\r\n\r\nmessage {n} of the load run: the printer on floor 2 prints blank pages.\r\n\r\n");
    let line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n";
    while b.len() + line.len() < size {
        b.push_str(line);
    }
    b.push_str("\r\nAlice\r\n");
    b
}

/// A 60 KB "PDF" in base64 lines, distinct per message.
fn attachment(n: u64) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(82_000);
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..1100 {
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(B64[(x % 64) as usize] as char);
        }
        out.push_str("\r\n");
    }
    out
}

/// Shared state of a run: tickets created so far (for replies) and what each message expects.
#[derive(Default)]
struct Ledger {
    tickets: Vec<String>,
    /// Message-ID → (kind, ticket it created or replied to).
    sent: HashMap<String, (Kind, Option<String>)>,
    fast_path: u64,
}

/// How a stage answered: go on, or the message is decided (accepted early, as the fast path
/// answers mail for no mailbox at DATA).
enum Step {
    Next,
    Accepted,
}

fn step(what: &str, r: Result<Status, indymilter_test::TestError>) -> Result<Step, String> {
    match r.map_err(|e| format!("{what}: {e}"))? {
        Status::Continue | Status::Noreply | Status::Skip => Ok(Step::Next),
        Status::Accept => Ok(Step::Accepted),
        other => Err(format!("{what}: answer {other:?}")),
    }
}

/// One message as the MTA hands it over.
struct Message {
    mid: String,
    kind: Kind,
    rcpt: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    replies_to: Option<String>,
}

fn message(a: &Args, ledger: &Mutex<Ledger>, n: u64) -> Message {
    let mut kind = kind_of(a, n);
    let mut replies_to = None;
    if kind == Kind::Reply {
        let l = ledger.lock().unwrap_or_else(|p| p.into_inner());
        match l.tickets.len() {
            0 => kind = Kind::New,
            len => replies_to = Some(l.tickets[(n as usize * 7919) % len].clone()),
        }
    }
    let mid = format!("<load-{}-{n}@load.example>", a.tag);
    let rcpt = if kind == Kind::Unrelated { "someone@elsewhere.example".to_string() } else { a.rcpt.clone() };
    let subject = match &replies_to {
        Some(t) => format!("RE: Load test {} reply {n} [{t}]", a.tag),
        None => format!("Load test {} message {n}", a.tag),
    };
    let mut headers = vec![
        ("From", format!("Alice Example <{}>", a.from)),
        ("To", format!("Help desk <{rcpt}>")),
        ("Subject", subject),
        ("Message-ID", mid.clone()),
        ("Date", "Fri, 27 Nov 2026 10:00:00 +0000".to_string()),
        ("MIME-Version", "1.0".to_string()),
    ];
    let body = if kind == Kind::Attachment {
        headers.push(("Content-Type", "multipart/mixed; boundary=\"=-load-boundary\"".to_string()));
        format!(
            "--=-load-boundary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n--=-load-boundary\r\n\
             Content-Type: application/pdf; name=\"report-{n}.pdf\"\r\nContent-Disposition: attachment; filename=\"report-{n}.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}--=-load-boundary--\r\n",
            text(a.size, n),
            attachment(n)
        )
        .into_bytes()
    } else {
        headers.push(("Content-Type", "text/plain; charset=utf-8".to_string()));
        text(a.size, n).into_bytes()
    };
    Message { mid, kind, rcpt, headers, body, replies_to }
}

/// Send one message on an open connection as an MTA would (stages the milter declined are not
/// sent); returns the end-of-message latency (or the time to an early accept) and the value of
/// the `X-Ticketmilter` header the milter added, if any.
async fn send(c: &mut TestConnection, a: &Args, m: &Message) -> Result<(Duration, bool, Option<String>), String> {
    let opts = c.negotiated_opts();
    let started = Instant::now();
    macro_rules! stage {
        ($skip:expr, $what:expr, $call:expr) => {
            if !opts.contains($skip) {
                if let Step::Accepted = step($what, $call.await)? {
                    return Ok((started.elapsed(), true, None));
                }
            }
        };
    }
    stage!(ProtoOpts::NO_MAIL, "MAIL", c.mail([format!("<{}>", a.from)]));
    stage!(ProtoOpts::NO_RCPT, "RCPT", c.rcpt([format!("<{}>", m.rcpt)]));
    stage!(ProtoOpts::NO_DATA, "DATA", c.data());
    for (name, value) in &m.headers {
        stage!(ProtoOpts::NO_HEADER, "header", c.header(*name, value.as_str()));
    }
    stage!(ProtoOpts::NO_EOH, "end of header", c.eoh());
    for chunk in m.body.chunks(65_535) {
        stage!(ProtoOpts::NO_BODY, "body", c.body(chunk.to_vec()));
    }
    let eom = Instant::now();
    let (actions, status) = c.eom().await.map_err(|e| format!("end of message {}: {e}", m.mid))?;
    let took = eom.elapsed();
    let header = actions.actions.iter().find_map(|act| match act {
        EomAction::AddHeader { name, value } | EomAction::InsertHeader { name, value, .. }
            if name.to_bytes().eq_ignore_ascii_case(b"X-Ticketmilter") =>
        {
            Some(value.to_string_lossy().trim().to_string())
        }
        _ => None,
    });
    match status {
        Status::Accept | Status::Continue => Ok((took, false, header)),
        other => Err(format!("message {}: answer {other:?}", m.mid)),
    }
}

async fn open(target: &Target) -> Result<TestConnection, String> {
    let cfg = TestConnection::configure().read_timeout(Duration::from_secs(60)).write_timeout(Duration::from_secs(60));
    let mut c = match target {
        Target::Tcp(addr) => cfg.open_tcp(*addr).await,
        Target::Unix(path) => cfg.open_unix(path).await,
    }
    .map_err(|e| format!("cannot connect to {target:?}: {e}"))?;
    if !c.negotiated_opts().contains(ProtoOpts::NO_CONNECT) {
        step("connect", c.connect("load.example", [127, 0, 0, 1]).await)?;
    }
    Ok(c)
}

/// Record what a message was answered; a new ticket joins the pool replies are drawn from.
fn record(ledger: &Mutex<Ledger>, m: &Message, fast: bool, header: Option<String>) -> Result<(), String> {
    let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
    if fast {
        if m.kind != Kind::Unrelated {
            return Err(format!("{}: accepted before the body although it is for a mailbox", m.mid));
        }
        l.fast_path += 1;
        return Ok(());
    }
    let ticket = match m.kind {
        Kind::New | Kind::Attachment => {
            // "support@msp.example created T20261127.0001"
            let number = header.as_deref().and_then(|h| h.split_whitespace().nth(2)).map(str::to_string);
            if let Some(t) = &number {
                if l.tickets.len() < 1000 {
                    l.tickets.push(t.clone());
                }
            }
            number
        }
        Kind::Reply => m.replies_to.clone(),
        Kind::Unrelated => None,
    };
    l.sent.insert(m.mid.trim_matches(|c| c == '<' || c == '>').to_string(), (m.kind, ticket));
    Ok(())
}

#[tokio::main]
async fn main() {
    let a = Arc::new(parse_args());
    let next = Arc::new(AtomicU64::new(0));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..a.connections {
        let (a, next, ledger) = (a.clone(), next.clone(), ledger.clone());
        tasks.push(tokio::spawn(async move {
            let targets: Vec<Target> = if a.mirror { a.sockets.clone() } else { vec![a.sockets[w % a.sockets.len()].clone()] };
            let mut conns = Vec::new();
            for t in &targets {
                conns.push(open(t).await?);
            }
            let mut lat = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= a.count || a.duration.is_some_and(|d| started.elapsed() >= d) {
                    break;
                }
                if let Some(rate) = a.rate {
                    let due = started + Duration::from_secs_f64(n as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let m = message(&a, &ledger, n);
                // Mirrored: the same message to every socket at the same time.
                let results = join_all(&mut conns, &a, &m).await;
                let mut worst = Duration::ZERO;
                let (mut fast, mut header) = (false, None);
                for r in results {
                    let (d, f, h) = r?;
                    worst = worst.max(d);
                    fast |= f;
                    header = header.or(h);
                }
                record(&ledger, &m, fast, header)?;
                if !fast {
                    lat.push(worst);
                }
            }
            Ok::<Vec<Duration>, String>(lat)
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(l)) => lat.extend(l),
            Ok(Err(e)) => {
                eprintln!("milter-load: {e}");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("milter-load: a client task failed: {e}");
                std::process::exit(1);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let ledger = std::mem::take(&mut *ledger.lock().unwrap_or_else(|p| p.into_inner()));
    let total = lat.len() as u64 + ledger.fast_path;
    lat.sort();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or_default();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut line = format!(
        "messages={total} seconds={secs:.2} rate={:.1} eom_ms_p50={:.1} p90={:.1} p99={:.1} max={:.1}",
        total as f64 / secs,
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    if a.mix {
        line.push_str(&format!(" fast_path={}", ledger.fast_path));
    }
    if let Some(url) = &a.verify {
        match verify(url, &ledger) {
            Ok(()) => line.push_str(" verified=ok"),
            Err(problems) => {
                println!("{line} verified=FAILED");
                for p in problems.iter().take(20) {
                    eprintln!("milter-load: verify: {p}");
                }
                eprintln!("milter-load: verify: {} problem(s)", problems.len());
                std::process::exit(1);
            }
        }
    }
    println!("{line}");
}

/// Compare the processed-message records of this run with what was sent.
fn verify(url: &str, ledger: &Ledger) -> Result<(), Vec<String>> {
    use ticketmilter::store::{Store, StoreOptions, messages};
    let store = Store::open(url, StoreOptions::default()).map_err(|e| vec![format!("cannot open {url}: {e}")])?;
    let limit = (ledger.sent.len() as i64).saturating_mul(4).saturating_add(10_000);
    let rows = store.read(|c| messages::list(c, None, limit)).map_err(|e| vec![format!("cannot list processed messages: {e}")])?;
    let mut seen: HashMap<&str, u32> = HashMap::new();
    let mut problems = Vec::new();
    for r in &rows {
        let Some(mid) = r.message_id.as_deref() else { continue };
        let mid = mid.trim_matches(|c| c == '<' || c == '>');
        let Some((kind, ticket)) = ledger.sent.get(mid) else {
            continue;
        };
        let key = ledger.sent.get_key_value(mid).map(|(k, _)| k.as_str()).unwrap_or(mid);
        *seen.entry(key).or_default() += 1;
        let want = match kind {
            Kind::New | Kind::Attachment => "created",
            Kind::Reply => "note_added",
            Kind::Unrelated => {
                problems.push(format!("{mid}: for no mailbox, yet recorded as {}", r.outcome));
                continue;
            }
        };
        if r.outcome != want {
            problems.push(format!("{mid}: outcome {} (expected {want}; reason {:?})", r.outcome, r.reason));
        }
        if ticket.is_some() && r.ticket != *ticket {
            problems.push(format!("{mid}: ticket {:?} (expected {ticket:?})", r.ticket));
        }
    }
    for (mid, (kind, _)) in &ledger.sent {
        let n = seen.get(mid.as_str()).copied().unwrap_or(0);
        let want = u32::from(*kind != Kind::Unrelated);
        if n != want {
            problems.push(format!("{mid}: {n} record(s), expected {want}"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// Send message `m` on every connection concurrently.
async fn join_all(conns: &mut [TestConnection], a: &Args, m: &Message) -> Vec<Result<(Duration, bool, Option<String>), String>> {
    let mut set = Vec::new();
    // TestConnection is not Clone; drive the sends with a join over mutable borrows.
    let mut iter = conns.iter_mut();
    match (iter.next(), iter.next()) {
        (Some(c1), None) => set.push(send(c1, a, m).await),
        (Some(c1), Some(c2)) => {
            let (r1, r2) = tokio::join!(send(c1, a, m), send(c2, a, m));
            set.push(r1);
            set.push(r2);
            for c in iter {
                set.push(send(c, a, m).await);
            }
        }
        _ => {}
    }
    set
}
