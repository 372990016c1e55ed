//! Operational metrics: the counters, gauges and histogram that the milter and the notification
//! sender update, and the optional Prometheus text-format endpoint (`[metrics] listen`) that
//! serves them over a minimal HTTP/1.0 responder.
//!
//! Counting is always on and costs an atomic increment (plus, per mailbox outcome, one
//! read-locked map lookup by the mailbox address); the process keeps one set of metrics
//! ([`global`]). The outbox gauges are the database's view, read at scrape time, so every host
//! of a multi-host installation reports the same backlog.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::model::{Outcome, Verdict};
use crate::store::{Store, outbox};

/// The `Content-Type` of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the end-of-message latency buckets: 1 ms to 30 s.
const EOM_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// What became of a message for one mailbox: its verdict, or why there was none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Verdict(Verdict),
    /// Larger than `max_message_size`.
    TooLarge,
    DatabaseError,
    InternalError,
    /// The conversion did not finish within `eom_timeout`.
    Timeout,
}

const HANDLED: usize = 12;

impl Handled {
    /// The `action` label.
    pub fn name(self) -> &'static str {
        match self {
            Handled::Verdict(v) => v.as_str(),
            Handled::TooLarge => "too_large",
            Handled::DatabaseError => "database_error",
            Handled::InternalError => "internal_error",
            Handled::Timeout => "timeout",
        }
    }

    fn index(self) -> usize {
        match self {
            Handled::Verdict(Verdict::Created) => 0,
            Handled::Verdict(Verdict::NoteAdded) => 1,
            Handled::Verdict(Verdict::TimeEntryAdded) => 2,
            Handled::Verdict(Verdict::Duplicate) => 3,
            Handled::Verdict(Verdict::Ignored) => 4,
            Handled::Verdict(Verdict::Discarded) => 5,
            Handled::Verdict(Verdict::Rejected) => 6,
            Handled::Verdict(Verdict::NotOurs) => 7,
            Handled::TooLarge => 8,
            Handled::DatabaseError => 9,
            Handled::InternalError => 10,
            Handled::Timeout => 11,
        }
    }

    /// The tempfail cause when a message so handled is tempfailed.
    fn cause(self) -> Cause {
        match self {
            Handled::TooLarge => Cause::TooLarge,
            Handled::DatabaseError => Cause::Database,
            Handled::InternalError => Cause::Internal,
            Handled::Timeout => Cause::Timeout,
            Handled::Verdict(_) => Cause::Refused,
        }
    }
}

/// The milter's answer, as the `answer` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    Accept,
    Reject,
    Tempfail,
    Discard,
    Quarantine,
}

const ANSWERS: usize = 5;

impl Answered {
    pub fn name(self) -> &'static str {
        match self {
            Answered::Accept => "accept",
            Answered::Reject => "reject",
            Answered::Tempfail => "tempfail",
            Answered::Discard => "discard",
            Answered::Quarantine => "quarantine",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a message was tempfailed (the `cause` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The database failed (`on_database_error = "tempfail"`).
    Database,
    /// Anything else inside ticketmilter failed (`on_internal_error`).
    Internal,
    /// The conversion took longer than `eom_timeout` (`on_timeout`).
    Timeout,
    /// The message was over `max_message_size` (`on_too_large`).
    TooLarge,
    /// A mailbox refused the message (`on_unknown_sender = "tempfail"`).
    Refused,
    /// The MTA did not carry out an action (add header, delete recipient, quarantine).
    Mta,
}

const CAUSES: [Cause; 6] = [Cause::Database, Cause::Internal, Cause::Timeout, Cause::TooLarge, Cause::Refused, Cause::Mta];

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::Database => "database",
            Cause::Internal => "internal",
            Cause::Timeout => "timeout",
            Cause::TooLarge => "too_large",
            Cause::Refused => "refused",
            Cause::Mta => "mta",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    mailbox: String,
    action: &'static str,
    answer: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

/// The message counters of one mailbox, one slot per (action, answer), made on first use.
type Slots = [OnceLock<Counter>; HANDLED * ANSWERS];

/// What one message amounted to, for the counters.
#[derive(Debug)]
pub enum Tally {
    /// Converted (or refused) by the engine: one outcome per mailbox.
    Outcomes(Vec<Outcome>),
    /// Not converted: the mailboxes it was for, and why.
    Failed { mailboxes: Vec<String>, why: Handled },
}

/// The metrics of one process.
pub struct Metrics {
    registry: Registry,
    messages: Family<MessageLabels, Counter>,
    by_mailbox: RwLock<HashMap<String, Arc<Slots>>>,
    eom_seconds: Histogram,
    database_errors: Counter,
    tempfails: [Counter; CAUSES.len()],
    outbox_queued: Gauge<f64, std::sync::atomic::AtomicU64>,
    outbox_failed: Gauge<f64, std::sync::atomic::AtomicU64>,
    outbox_failures: Counter,
    connections: Gauge,
    fast_path: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

static GLOBAL: LazyLock<Arc<Metrics>> = LazyLock::new(|| Arc::new(Metrics::new()));

/// The metrics of this process (what the milter and the sender count, what the endpoint serves).
pub fn global() -> &'static Arc<Metrics> {
    &GLOBAL
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, every series registered under the prefix `ticketmilter`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ticketmilter");
        let messages = Family::<MessageLabels, Counter>::default();
        registry.register(
            "messages",
            "Messages answered at end of message or earlier, one per mailbox they were for, by mailbox, action (the outcome, or too_large, database_error, internal_error, timeout) and answer",
            messages.clone(),
        );
        let eom_seconds = Histogram::new(EOM_BUCKETS);
        registry.register_with_unit(
            "eom_duration",
            "Time from the end of a message for a mailbox to the milter's answer",
            Unit::Seconds,
            eom_seconds.clone(),
        );
        let database_errors = Counter::default();
        registry.register(
            "database_errors",
            "Database failures: conversions, notification passes and outbox reads at scrape time",
            database_errors.clone(),
        );
        let tempfail_family = Family::<CauseLabels, Counter>::default();
        registry.register("tempfails", "Messages answered with tempfail (4xx), by cause", tempfail_family.clone());
        let tempfails = CAUSES.map(|c| tempfail_family.get_or_create_owned(&CauseLabels { cause: c.name() }));
        let outbox_queued = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "outbox_queued",
            "Notifications waiting to be sent, all hosts (read from the database at scrape time; NaN when it cannot be read)",
            outbox_queued.clone(),
        );
        let outbox_failed = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "outbox_failed",
            "Notifications given up on, all hosts (read from the database at scrape time; NaN when it cannot be read)",
            outbox_failed.clone(),
        );
        let outbox_failures = Counter::default();
        registry.register(
            "outbox_failures",
            "Notifications this process's sender gave up on (permanent refusal, unbuildable, too many attempts)",
            outbox_failures.clone(),
        );
        let connections = Gauge::default();
        registry.register("connections_open", "MTA connections open to the milter", connections.clone());
        let fast_path = Counter::default();
        registry.register(
            "fast_path_accepts",
            "Messages accepted without being read because no recipient is an active mailbox",
            fast_path.clone(),
        );
        registry.register(
            "build",
            "The ticketmilter version running",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            messages,
            by_mailbox: RwLock::new(HashMap::new()),
            eom_seconds,
            database_errors,
            tempfails,
            outbox_queued,
            outbox_failed,
            outbox_failures,
            connections,
            fast_path,
        }
    }

    /// One message for `mailbox`, handled so and answered so.
    pub fn message(&self, mailbox: &str, handled: Handled, answer: Answered) {
        let slot = handled.index() * ANSWERS + answer.index();
        let make = || {
            self.messages.get_or_create_owned(&MessageLabels {
                mailbox: mailbox.to_owned(),
                action: handled.name(),
                answer: answer.name(),
            })
        };
        if let Some(slots) = self.by_mailbox.read().unwrap_or_else(|p| p.into_inner()).get(mailbox) {
            slots[slot].get_or_init(make).inc();
            return;
        }
        let slots = self
            .by_mailbox
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(mailbox.to_owned())
            .or_insert_with(|| Arc::new(std::array::from_fn(|_| OnceLock::new())))
            .clone();
        slots[slot].get_or_init(make).inc();
    }

    /// A message answered: its counters per mailbox, and the tempfail cause when it was
    /// tempfailed. `mta_failed`: the MTA refused an action, so the answer became tempfail.
    /// A database failure also counts as a database error.
    pub fn answered(&self, tally: &Tally, answer: Answered, mta_failed: bool) {
        let answer = if mta_failed { Answered::Tempfail } else { answer };
        match tally {
            Tally::Outcomes(outcomes) => {
                for o in outcomes {
                    if o.outcome == Verdict::NotOurs {
                        self.fast_path.inc();
                    } else {
                        self.message(&o.mailbox, Handled::Verdict(o.outcome), answer);
                    }
                }
            }
            Tally::Failed { mailboxes, why } => {
                for m in mailboxes {
                    self.message(m, *why, answer);
                }
                if *why == Handled::DatabaseError {
                    self.database_error();
                }
            }
        }
        if answer == Answered::Tempfail {
            let cause = match tally {
                _ if mta_failed => Cause::Mta,
                Tally::Failed { why, .. } => why.cause(),
                Tally::Outcomes(_) => Cause::Refused,
            };
            self.tempfail(cause);
        }
    }

    /// The time a message spent from its end to the answer.
    pub fn end_of_message(&self, took: Duration) {
        self.eom_seconds.observe(took.as_secs_f64());
    }

    pub fn tempfail(&self, cause: Cause) {
        self.tempfails[CAUSES.iter().position(|c| *c == cause).unwrap_or(0)].inc();
    }

    pub fn database_error(&self) {
        self.database_errors.inc();
    }

    /// Mail for no mailbox, accepted before its content was read.
    pub fn fast_path_accept(&self) {
        self.fast_path.inc();
    }

    /// The sender gave up on a notification.
    pub fn outbox_failure(&self) {
        self.outbox_failures.inc();
    }

    /// Set the outbox gauges (`None`: the database could not be read).
    fn set_outbox(&self, counts: Option<(i64, i64)>) {
        let (queued, failed) = counts.map_or((f64::NAN, f64::NAN), |(q, f)| (q as f64, f as f64));
        self.outbox_queued.set(queued);
        self.outbox_failed.set(failed);
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Open connections: a listener whose streams count themselves.
// ---------------------------------------------------------------------------------------------

/// A listener whose accepted streams are counted in `connections_open` while they live.
pub struct CountedListener<L> {
    inner: L,
    metrics: Arc<Metrics>,
}

impl<L> CountedListener<L> {
    pub fn new(inner: L, metrics: Arc<Metrics>) -> Self {
        CountedListener { inner, metrics }
    }
}

/// A stream counted in `connections_open` until it is dropped.
pub struct CountedStream<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Drop for CountedStream<S> {
    fn drop(&mut self) {
        self.metrics.connections.dec();
    }
}

impl<L: indymilter::Listener> indymilter::Listener for CountedListener<L> {
    type Io = CountedStream<L::Io>;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<Self::Io>> {
        self.inner.poll_accept(cx).map_ok(|inner| {
            self.metrics.connections.inc();
            CountedStream { inner, metrics: self.metrics.clone() }
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountedStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountedStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// ---------------------------------------------------------------------------------------------
// The endpoint: GET /metrics over HTTP/1.0.
// ---------------------------------------------------------------------------------------------

/// Bounds that keep a slow or hostile client from holding the endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most bytes of a request (request line and header fields).
    pub max_request: usize,
    /// Time for the whole request to arrive.
    pub read_timeout: Duration,
    /// Time for the whole response to be taken.
    pub write_timeout: Duration,
    /// Most clients served at once; more are disconnected at once.
    pub max_clients: usize,
    /// Time the outbox count in the database may take at scrape time.
    pub query_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request: 8192,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_clients: 8,
            query_timeout: Duration::from_secs(10),
        }
    }
}

/// What the endpoint serves: the metrics, with the outbox gauges read from `store` per scrape.
pub struct Exporter {
    metrics: Arc<Metrics>,
    store: Option<Store>,
    limits: Limits,
    /// One database read at a time, however many scrapes arrive together.
    scrape: tokio::sync::Mutex<()>,
}

impl Exporter {
    pub fn new(metrics: Arc<Metrics>, store: Option<Store>, limits: Limits) -> Exporter {
        Exporter { metrics, store, limits, scrape: tokio::sync::Mutex::new(()) }
    }

    /// The exposition text, with the outbox gauges fresh from the database.
    pub async fn render(&self) -> String {
        let _one = self.scrape.lock().await;
        if let Some(store) = &self.store {
            let store = store.clone();
            let read = tokio::task::spawn_blocking(move || store.read(outbox::counts));
            let counts = match tokio::time::timeout(self.limits.query_timeout, read).await {
                Ok(Ok(Ok(counts))) => Some(counts),
                Ok(Ok(Err(e))) => {
                    warn!("metrics: cannot count the outbox: {e}");
                    self.metrics.database_error();
                    None
                }
                Ok(Err(e)) => {
                    warn!("metrics: cannot count the outbox: {e}");
                    None
                }
                Err(_) => {
                    warn!("metrics: counting the outbox took longer than {} s", self.limits.query_timeout.as_secs());
                    self.metrics.database_error();
                    None
                }
            };
            self.metrics.set_outbox(counts);
        }
        self.metrics.encode()
    }
}

/// Bind the endpoint's listener and serve it on the current runtime until the task is aborted.
pub async fn start(addr: SocketAddr, store: Store) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    info!("metrics served at http://{local}/metrics");
    let exporter = Arc::new(Exporter::new(global().clone(), Some(store), Limits::default()));
    Ok(tokio::spawn(serve(listener, exporter)))
}

/// Answer HTTP requests on `listener` for ever (abort the task to stop).
pub async fn serve(listener: TcpListener, exporter: Arc<Exporter>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(exporter.limits.max_clients.max(1)));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                warn!("metrics: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!("metrics: {peer}: too many clients at once; disconnected");
            continue;
        };
        let exporter = exporter.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            if let Err(e) = respond(stream, &exporter).await {
                debug!("metrics: {peer}: {e}");
            }
        });
    }
}

/// The request head as read.
enum Head {
    Complete(Vec<u8>),
    TooLarge,
    /// The client closed before the end of the head.
    Truncated,
}

/// Read up to the blank line that ends the request head, at most `max` bytes.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, max: usize) -> std::io::Result<Head> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(Head::Truncated);
        }
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        let tail = &head[from..];
        if let Some(end) = find_end(tail) {
            head.truncate(from + end);
            return Ok(if head.len() > max { Head::TooLarge } else { Head::Complete(head) });
        }
        if head.len() > max {
            return Ok(Head::TooLarge);
        }
    }
}

/// Where the head ends in `b` (just after `\r\n\r\n` or `\n\n`).
fn find_end(b: &[u8]) -> Option<usize> {
    (0..b.len()).find_map(|i| {
        if b[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if b[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    BadRequest,
}

fn route(head: &[u8]) -> Route {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Route::BadRequest;
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if method == "GET" && path == "/metrics" { Route::Metrics } else { Route::NotFound }
}

/// One request, one response, then the connection closes.
async fn respond<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, exporter: &Exporter) -> std::io::Result<()> {
    let limits = exporter.limits;
    let (status, content_type, body) = match tokio::time::timeout(limits.read_timeout, read_head(&mut stream, limits.max_request)).await {
        Err(_) => ("408 Request Timeout", "text/plain; charset=utf-8", "request timeout\n".to_string()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(Head::Truncated)) => return Ok(()),
        Ok(Ok(Head::TooLarge)) => ("431 Request Header Fields Too Large", "text/plain; charset=utf-8", "request too large\n".to_string()),
        Ok(Ok(Head::Complete(head))) => match route(&head) {
            Route::Metrics => ("200 OK", CONTENT_TYPE, exporter.render().await),
            Route::NotFound => ("404 Not Found", "text/plain; charset=utf-8", "not found: the metrics are at GET /metrics\n".to_string()),
            Route::BadRequest => ("400 Bad Request", "text/plain; charset=utf-8", "bad request\n".to_string()),
        },
    };
    let response = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::time::timeout(limits.write_timeout, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the client did not take the response in time"))??;
    // Closing with unread input would reset the connection and could destroy the response
    // before the client reads it (a request cut off at the size limit): read what is left,
    // briefly and boundedly, until the client closes.
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 4096];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
    Ok(())
}

/// How long, and how many bytes, a closing connection is drained for.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    fn limits() -> Limits {
        Limits { read_timeout: Duration::from_millis(300), max_clients: 2, ..Limits::default() }
    }

    /// An endpoint for fresh metrics on a loopback port, on a runtime of its own.
    struct Endpoint {
        port: u16,
        metrics: Arc<Metrics>,
        _runtime: tokio::runtime::Runtime,
    }

    impl Endpoint {
        fn start(limits: Limits) -> Endpoint {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            let metrics = Arc::new(Metrics::new());
            let exporter = Arc::new(Exporter::new(metrics.clone(), None, limits));
            let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
            let port = listener.local_addr().unwrap().port();
            runtime.spawn(serve(listener, exporter));
            Endpoint { port, metrics, _runtime: runtime }
        }

        fn connect(&self) -> TcpStream {
            let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        }

        /// Send `request` and read the whole response.
        fn exchange(&self, request: &[u8]) -> String {
            let mut s = self.connect();
            s.write_all(request).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        }
    }

    fn status(response: &str) -> &str {
        response.lines().next().unwrap_or("")
    }

    #[test]
    fn get_metrics_serves_the_text_format() {
        let e = Endpoint::start(limits());
        e.metrics.message("support@msp.example", Handled::Verdict(Verdict::Created), Answered::Accept);
        e.metrics.end_of_message(Duration::from_millis(3));
        let r = e.exchange(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
        assert_eq!(status(&r), "HTTP/1.0 200 OK", "{r}");
        assert!(r.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{r}");
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())), "{head}");
        assert!(body.contains("ticketmilter_messages_total{mailbox=\"support@msp.example\",action=\"created\",answer=\"accept\"} 1\n"), "{body}");
        assert!(body.contains(&format!("ticketmilter_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"))), "{body}");
        assert!(body.contains("ticketmilter_eom_duration_seconds_bucket{le=\"0.005\"} 1\n"), "{body}");
        assert!(body.contains("ticketmilter_eom_duration_seconds_bucket{le=\"0.0025\"} 0\n"), "{body}");
        assert!(body.contains("ticketmilter_eom_duration_seconds_count 1\n"), "{body}");
        assert!(body.contains("ticketmilter_tempfails_total{cause=\"database\"} 0\n"), "{body}");
        // A query string is allowed, and an HTTP/1.0 request with bare LF line ends.
        let r = e.exchange(b"GET /metrics?x=1 HTTP/1.0\n\n");
        assert_eq!(status(&r), "HTTP/1.0 200 OK", "{r}");
    }

    #[test]
    fn other_paths_and_methods_are_not_found() {
        let e = Endpoint::start(limits());
        for req in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"GET /metricsx HTTP/1.0\r\n\r\n",
            b"GET /metrics/ HTTP/1.0\r\n\r\n",
            b"POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
            b"HEAD /metrics HTTP/1.0\r\n\r\n",
        ] {
            let r = e.exchange(req);
            assert_eq!(status(&r), "HTTP/1.0 404 Not Found", "{}: {r}", String::from_utf8_lossy(req));
            assert!(r.ends_with("not found: the metrics are at GET /metrics\n"), "{r}");
        }
    }

    #[test]
    fn malformed_requests_get_400() {
        let e = Endpoint::start(limits());
        for req in [
            &b"hello\r\n\r\n"[..],
            b"GET /metrics\r\n\r\n",
            b"GET metrics HTTP/1.0\r\n\r\n",
            b"GET /metrics HTTP/2\r\n\r\n",
            b"GET  /metrics HTTP/1.0\r\n\r\n",
            b"get /metrics HTTP/1.0\r\n\r\n",
            b"GET /metrics HTTP/1.0 extra\r\n\r\n",
            b"\xff\xfe /metrics HTTP/1.0\r\n\r\n",
            b"\r\n\r\n",
        ] {
            let r = e.exchange(req);
            assert_eq!(status(&r), "HTTP/1.0 400 Bad Request", "{:?}: {r}", String::from_utf8_lossy(req));
        }
    }

    #[test]
    fn an_oversized_request_is_refused_without_reading_it_all() {
        let e = Endpoint::start(limits());
        let mut req = b"GET /metrics HTTP/1.0\r\n".to_vec();
        while req.len() < 9000 {
            req.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let mut s = e.connect();
        s.write_all(&req).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert_eq!(status(&out), "HTTP/1.0 431 Request Header Fields Too Large", "{out}");
        // Endless header bytes without an end: refused as soon as the limit is passed.
        let mut s = e.connect();
        let filler = vec![b'a'; 20000];
        let _ = s.write_all(&filler);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.is_empty() || status(&out) == "HTTP/1.0 431 Request Header Fields Too Large", "{out}");
    }

    #[test]
    fn a_slow_or_silent_client_is_dropped_after_the_read_timeout() {
        let e = Endpoint::start(limits());
        let started = Instant::now();
        let mut s = e.connect();
        s.write_all(b"GET /metrics HTTP/1.0\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert_eq!(status(&out), "HTTP/1.0 408 Request Timeout", "{out}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        // A client that trickles bytes does not extend its time: the deadline is for the whole request.
        let started = Instant::now();
        let mut s = e.connect();
        for b in b"GET /metrics HTTP/1.0\r\nX: y" {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.is_empty() || status(&out) == "HTTP/1.0 408 Request Timeout", "{out}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }

    #[test]
    fn clients_beyond_the_limit_are_disconnected_and_service_resumes() {
        let e = Endpoint::start(limits());
        // Two silent clients hold both places until their read timeout.
        let idle: Vec<TcpStream> = (0..2).map(|_| e.connect()).collect();
        std::thread::sleep(Duration::from_millis(50));
        let mut third = e.connect();
        let _ = third.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
        let mut out = String::new();
        let _ = third.read_to_string(&mut out);
        assert!(out.is_empty(), "the third client is closed without an answer: {out}");
        // Once the silent ones time out (read timeout, then the closing drain), requests are
        // answered again.
        std::thread::sleep(Duration::from_millis(1500));
        let r = e.exchange(b"GET /metrics HTTP/1.0\r\n\r\n");
        assert_eq!(status(&r), "HTTP/1.0 200 OK", "{r}");
        drop(idle);
    }

    #[test]
    fn answers_count_per_mailbox_and_tempfail_cause() {
        let m = Metrics::new();
        let failed = Tally::Failed { mailboxes: vec!["a@m".into(), "b@m".into()], why: Handled::DatabaseError };
        m.answered(&failed, Answered::Tempfail, false);
        let too_large = Tally::Failed { mailboxes: vec!["a@m".into()], why: Handled::TooLarge };
        m.answered(&too_large, Answered::Reject, false);
        let timeout = Tally::Failed { mailboxes: vec!["a@m".into()], why: Handled::Timeout };
        m.answered(&timeout, Answered::Tempfail, false);
        let internal = Tally::Failed { mailboxes: vec!["a@m".into()], why: Handled::InternalError };
        m.answered(&internal, Answered::Accept, false);
        m.answered(&Tally::Outcomes(Vec::new()), Answered::Accept, true);
        m.fast_path_accept();
        let text = m.encode();
        for line in [
            "ticketmilter_messages_total{mailbox=\"a@m\",action=\"database_error\",answer=\"tempfail\"} 1",
            "ticketmilter_messages_total{mailbox=\"b@m\",action=\"database_error\",answer=\"tempfail\"} 1",
            "ticketmilter_messages_total{mailbox=\"a@m\",action=\"too_large\",answer=\"reject\"} 1",
            "ticketmilter_messages_total{mailbox=\"a@m\",action=\"timeout\",answer=\"tempfail\"} 1",
            "ticketmilter_messages_total{mailbox=\"a@m\",action=\"internal_error\",answer=\"accept\"} 1",
            "ticketmilter_database_errors_total 1",
            "ticketmilter_tempfails_total{cause=\"database\"} 1",
            "ticketmilter_tempfails_total{cause=\"timeout\"} 1",
            "ticketmilter_tempfails_total{cause=\"mta\"} 1",
            "ticketmilter_tempfails_total{cause=\"too_large\"} 0",
            "ticketmilter_fast_path_accepts_total 1",
            "ticketmilter_connections_open 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn every_action_and_answer_has_its_own_slot() {
        let handled = [
            Handled::Verdict(Verdict::Created),
            Handled::Verdict(Verdict::NoteAdded),
            Handled::Verdict(Verdict::TimeEntryAdded),
            Handled::Verdict(Verdict::Duplicate),
            Handled::Verdict(Verdict::Ignored),
            Handled::Verdict(Verdict::Discarded),
            Handled::Verdict(Verdict::Rejected),
            Handled::Verdict(Verdict::NotOurs),
            Handled::TooLarge,
            Handled::DatabaseError,
            Handled::InternalError,
            Handled::Timeout,
        ];
        let mut seen = std::collections::HashSet::new();
        for h in handled {
            for a in [Answered::Accept, Answered::Reject, Answered::Tempfail, Answered::Discard, Answered::Quarantine] {
                let slot = h.index() * ANSWERS + a.index();
                assert!(slot < HANDLED * ANSWERS, "{h:?} {a:?}");
                assert!(seen.insert(slot), "{h:?} {a:?} shares a slot");
            }
        }
    }
}
