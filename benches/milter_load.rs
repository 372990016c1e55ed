//! A load generator speaking the milter protocol directly (no MTA): N concurrent connections
//! send distinct 4 KB-class messages to one or more milter sockets and report messages/s and
//! end-of-message latency percentiles.
//!
//! ```text
//! cargo run --release --example milter-load -- --socket 127.0.0.1:8897 [--socket 127.0.0.1:8898] \
//!     [--connections 16] [--count 2000] [--size 4096] [--rcpt support@msp.example] \
//!     [--from alice@example.com] [--tag run1] [--mirror]
//! ```
//!
//! Several sockets share the load round-robin (several MX hosts, one database); with
//! `--mirror` every message goes to every socket at once with the same Message-ID (two MX
//! hosts both accepting a retry), and a message counts once. Message-IDs are
//! `<load-TAG-N@load.example>`; the caller checks the database afterwards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indymilter_test::{ProtoOpts, Status, TestConnection};

struct Args {
    sockets: Vec<SocketAddr>,
    connections: usize,
    count: u64,
    size: usize,
    rcpt: String,
    from: String,
    tag: String,
    mirror: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("milter-load: {msg}\nusage: milter-load --socket HOST:PORT [--socket …] [--connections N] [--count N] [--size BYTES] [--rcpt ADDR] [--from ADDR] [--tag T] [--mirror]");
    std::process::exit(64);
}

fn parse_args() -> Args {
    let mut a = Args {
        sockets: Vec::new(),
        connections: 16,
        count: 2000,
        size: 4096,
        rcpt: "support@msp.example".into(),
        from: "alice@example.com".into(),
        tag: format!("{}", std::process::id()),
        mirror: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage(&format!("{k} needs a value")));
        match k.as_str() {
            "--socket" => {
                let v = val();
                let v = v.trim_start_matches("inet:");
                a.sockets.push(v.parse().unwrap_or_else(|_| usage(&format!("--socket {v}: expected HOST:PORT"))));
            }
            "--connections" => a.connections = val().parse().unwrap_or_else(|_| usage("--connections: a number")),
            "--count" => a.count = val().parse().unwrap_or_else(|_| usage("--count: a number")),
            "--size" => a.size = val().parse().unwrap_or_else(|_| usage("--size: a number")),
            "--rcpt" => a.rcpt = val(),
            "--from" => a.from = val(),
            "--tag" => a.tag = val(),
            "--mirror" => a.mirror = true,
            other => usage(&format!("unknown option {other}")),
        }
    }
    if a.sockets.is_empty() {
        usage("name at least one --socket");
    }
    if a.connections == 0 {
        usage("--connections must be at least 1");
    }
    a
}

/// The body: readable text lines up to `size` bytes.
fn body(size: usize, n: u64) -> Vec<u8> {
    let mut b = format!("Hello,\r\n\r\nmessage {n} of the load run: the printer on floor 2 prints blank pages.\r\n\r\n").into_bytes();
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n";
    while b.len() + line.len() < size {
        b.extend_from_slice(line);
    }
    b.extend_from_slice(b"\r\nAlice\r\n");
    b
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

/// Send one message on an open connection as an MTA would (stages the milter declined are not
/// sent); returns the end-of-message latency (or the time to an early accept).
async fn send(c: &mut TestConnection, a: &Args, n: u64) -> Result<Duration, String> {
    let opts = c.negotiated_opts();
    let started = Instant::now();
    macro_rules! stage {
        ($skip:expr, $what:expr, $call:expr) => {
            if !opts.contains($skip) {
                if let Step::Accepted = step($what, $call.await)? {
                    return Ok(started.elapsed());
                }
            }
        };
    }
    let mid = format!("<load-{}-{n}@load.example>", a.tag);
    stage!(ProtoOpts::NO_MAIL, "MAIL", c.mail([format!("<{}>", a.from)]));
    stage!(ProtoOpts::NO_RCPT, "RCPT", c.rcpt([format!("<{}>", a.rcpt)]));
    stage!(ProtoOpts::NO_DATA, "DATA", c.data());
    let subject = format!("Load test {} message {n}", a.tag);
    for (name, value) in [
        ("From", format!("Alice Example <{}>", a.from)),
        ("To", format!("Help desk <{}>", a.rcpt)),
        ("Subject", subject),
        ("Message-ID", mid),
        ("Date", "Fri, 27 Nov 2026 10:00:00 +0000".to_string()),
        ("MIME-Version", "1.0".to_string()),
        ("Content-Type", "text/plain; charset=utf-8".to_string()),
    ] {
        stage!(ProtoOpts::NO_HEADER, "header", c.header(name, value.as_str()));
    }
    stage!(ProtoOpts::NO_EOH, "end of header", c.eoh());
    stage!(ProtoOpts::NO_BODY, "body", c.body(body(a.size, n)));
    let eom = Instant::now();
    let (_actions, status) = c.eom().await.map_err(|e| format!("end of message: {e}"))?;
    let took = eom.elapsed();
    match status {
        Status::Accept | Status::Continue => Ok(took),
        other => Err(format!("message {n}: answer {other:?}")),
    }
}

async fn open(addr: SocketAddr) -> Result<TestConnection, String> {
    let mut c = TestConnection::configure()
        .read_timeout(Duration::from_secs(60))
        .write_timeout(Duration::from_secs(60))
        .open_tcp(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    if !c.negotiated_opts().contains(ProtoOpts::NO_CONNECT) {
        step("connect", c.connect("load.example", [127, 0, 0, 1]).await)?;
    }
    Ok(c)
}

#[tokio::main]
async fn main() {
    let a = Arc::new(parse_args());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..a.connections {
        let (a, next) = (a.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let targets: Vec<SocketAddr> = if a.mirror { a.sockets.clone() } else { vec![a.sockets[w % a.sockets.len()]] };
            let mut conns = Vec::new();
            for t in &targets {
                conns.push(open(*t).await?);
            }
            let mut lat = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= a.count {
                    break;
                }
                // Mirrored: the same message to every socket at the same time.
                let results = futures_join(&mut conns, &a, n).await;
                let mut worst = Duration::ZERO;
                for r in results {
                    worst = worst.max(r?);
                }
                lat.push(worst);
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
    lat.sort();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or_default();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "messages={} seconds={secs:.2} rate={:.1} eom_ms_p50={:.1} p90={:.1} p99={:.1} max={:.1}",
        lat.len(),
        lat.len() as f64 / secs,
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
}

/// Send message `n` on every connection concurrently.
async fn futures_join(conns: &mut [TestConnection], a: &Args, n: u64) -> Vec<Result<Duration, String>> {
    let mut set = Vec::new();
    // TestConnection is not Clone; drive the sends with a join over mutable borrows.
    let mut iter = conns.iter_mut();
    match (iter.next(), iter.next()) {
        (Some(c1), None) => set.push(send(c1, a, n).await),
        (Some(c1), Some(c2)) => {
            let (r1, r2) = tokio::join!(send(c1, a, n), send(c2, a, n));
            set.push(r1);
            set.push(r2);
            for c in iter {
                set.push(send(c, a, n).await);
            }
        }
        _ => {}
    }
    set
}
