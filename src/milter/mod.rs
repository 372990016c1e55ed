//! The async edge: the milter protocol (indymilter). Callbacks only gather bytes into the
//! session; end of message hands them to the engine on the blocking pool under a deadline and
//! turns the outcome into the MTA's answer. Also the daemon: sockets, signals, reloads.

#[doc(hidden)]
pub mod replay;
pub mod socket;
pub mod session;
pub mod verdict;

use std::ffi::CString;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use indymilter::{
    Actions, Callbacks, ContextActions, EomContext, MacroStage, NegotiateContext, ProtoOpts,
    SetErrorReply, SocketInfo, Status,
};
use tracing::{debug, error, info, warn};

use crate::config::{Config, MilterConfig, Policy};
use crate::engine::Engine;
use crate::error::Error;
use crate::metrics::{self, Answered, Handled, Tally};
use crate::model::{AfterConversion, Envelope, Outcome, Verdict};
use session::{Session, bare_address, client_address};
use verdict::{Answer, EomPlan, Failure, Policies};

/// State shared by all connections.
pub struct Shared {
    pub engine: Arc<Engine>,
    settings: RwLock<Arc<MilterConfig>>,
}

impl Shared {
    pub fn new(engine: Arc<Engine>, settings: MilterConfig) -> Arc<Shared> {
        Arc::new(Shared {
            engine,
            settings: RwLock::new(Arc::new(settings)),
        })
    }

    /// The milter settings in force (policies, limits).
    pub fn settings(&self) -> Arc<MilterConfig> {
        self.settings.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replace the milter settings (on reload); connections pick them up at their next message.
    pub fn set_settings(&self, s: MilterConfig) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(s);
    }
}

fn queue_id(macros: &indymilter::Macros) -> String {
    macros
        .get(c"i")
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "NOQUEUE".to_string())
}

fn macro_value(macros: &indymilter::Macros, name: &std::ffi::CStr) -> Option<String> {
    macros
        .get(name)
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| !v.is_empty())
}

fn set_reply(reply: &mut indymilter::SmtpReply, r: &verdict::Reply) {
    if let Err(e) = reply.set_error_reply(r.code, Some(r.ext), [r.text.as_str()]) {
        warn!("cannot set SMTP reply {} {} {:?}: {e}", r.code, r.ext, r.text);
    }
}

/// The status for an answer given before end of message (quarantine needs end of message).
fn early_status(answer: &Answer, reply: &mut indymilter::SmtpReply) -> Option<Status> {
    match answer {
        Answer::Accept => Some(Status::Accept),
        Answer::Discard => Some(Status::Discard),
        Answer::Reject(r) => {
            set_reply(reply, r);
            Some(Status::Reject)
        }
        Answer::Tempfail(r) => {
            set_reply(reply, r);
            Some(Status::Tempfail)
        }
        Answer::Quarantine(_) => None,
    }
}

/// Decide (once per message) whether any recipient is a mailbox; `false` means accept now.
fn scope(shared: &Shared, session: &mut Session) -> bool {
    if session.ours {
        return true;
    }
    let rcpts: Vec<String> = session.rcpts.iter().map(|r| bare_address(r)).collect();
    let snapshot = shared.engine.snapshot();
    session.ours = !Engine::scope(&snapshot, &rcpts).is_empty();
    session.ours
}

/// The fast path: at the first step that comes after the last recipient (DATA, the first
/// header, end of header or the first body chunk — whichever the MTA sends), a message without a
/// mailbox among its recipients is accepted before anything more of it is read.
/// (The queue id is looked up only then: this runs for every header and body chunk.)
fn fast_path(shared: &Shared, macros: &indymilter::Macros, session: &mut Session) -> Option<Status> {
    if scope(shared, session) {
        return None;
    }
    debug!("{}: no mailbox among the recipients; accepted without reading the message", queue_id(macros));
    metrics::global().fast_path_accept();
    session.reset_message();
    Some(Status::Accept)
}

/// The actions the milter asks for with these settings.
fn needed_actions(s: &MilterConfig) -> Actions {
    let mut a = Actions::DELETE_RCPT;
    if s.add_header {
        a |= Actions::ADD_HEADER;
    }
    let policies = [s.on_database_error, s.on_internal_error, s.on_timeout, s.on_unknown_sender, s.on_too_large];
    if policies.contains(&Policy::Quarantine) {
        a |= Actions::QUARANTINE;
    }
    a
}

/// The protocol callbacks.
pub fn callbacks(shared: Arc<Shared>) -> Callbacks<Session> {
    let s_neg = shared.clone();
    let s_data = shared.clone();
    let s_header = shared.clone();
    let s_eoh = shared.clone();
    let s_body = shared.clone();
    let s_eom = shared;
    Callbacks::new()
        .on_negotiate(move |cx: &mut NegotiateContext<Session>, actions: Actions, opts: ProtoOpts| {
            let settings = s_neg.settings();
            Box::pin(async move {
                let needed = needed_actions(&settings);
                if !actions.contains(needed) {
                    error!(
                        "the MTA does not offer the milter actions ticketmilter needs ({:?}; offered {:?}); the connection is refused",
                        needed - actions,
                        actions
                    );
                }
                // Ask also for what a reload may need later, when the MTA offers it.
                cx.requested_actions = needed | (actions & (Actions::ADD_HEADER | Actions::QUARANTINE));
                let mut session = Session::default();
                // Headers are answered one by one, never `NOREPLY_HEADER`: an MTA writes each
                // header as a small packet of its own, and without a reply to carry the ACK the
                // second one waits for a delayed ACK (≈ 40 ms per message) in the MTA's Nagle
                // buffer — Postfix does not set TCP_NODELAY on its milter connections.
                for (opt, flag) in [
                    (ProtoOpts::LEADING_SPACE, &mut session.leading_space),
                    (ProtoOpts::SKIP, &mut session.skip),
                ] {
                    if opts.contains(opt) {
                        cx.requested_opts |= opt;
                        *flag = true;
                    }
                }
                // Steps whose answer is always "continue" are skipped when the MTA allows it — a
                // round trip less each, per message: the client address comes with the
                // `{client_addr}` macro (an MTA sends the macros of a skipped step all the same),
                // the fast path answers at the first header instead of at DATA, and the end of the
                // header is seen at the first body chunk or at end of message.
                for opt in [ProtoOpts::NO_CONNECT, ProtoOpts::NO_DATA, ProtoOpts::NO_EOH] {
                    if opts.contains(opt) {
                        cx.requested_opts |= opt;
                    }
                }
                // MAIL and RCPT are always answered "continue": when the MTA allows, they go
                // unanswered, and Postfix writes them with the first header (or before it) instead
                // of waiting for two answers. The socket acknowledges such packets at once
                // (`socket::Framing`), so that the header behind them is not held back.
                let quiet = ProtoOpts::NOREPLY_MAIL | ProtoOpts::NOREPLY_RCPT;
                if opts.contains(quiet) {
                    cx.requested_opts |= quiet;
                    session.quiet_envelope = true;
                }
                let i = CString::new("i").expect("macro name");
                cx.requested_macros.insert(MacroStage::Connect, CString::new("{client_addr}").expect("macro name"));
                cx.requested_macros.insert(MacroStage::Mail, CString::new("i {auth_authen}").expect("macro names"));
                for stage in [MacroStage::Data, MacroStage::Eoh, MacroStage::Eom] {
                    cx.requested_macros.insert(stage, i.clone());
                }
                cx.data = Some(session);
                Status::Continue
            })
        })
        .on_connect(|cx, _host, info| {
            Box::pin(async move {
                let session = cx.data.get_or_insert_with(Session::default);
                session.client = match info {
                    SocketInfo::Inet(addr) => Some(addr.ip()),
                    _ => None,
                };
                Status::Continue
            })
        })
        .on_mail(|cx, args| {
            Box::pin(async move {
                let auth = macro_value(&cx.macros, c"{auth_authen}");
                let session = cx.data.get_or_insert_with(Session::default);
                session.reset_message();
                session.sender = args.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
                session.auth_user = auth;
                session.started = Some(Instant::now());
                envelope_status(session)
            })
        })
        .on_rcpt(|cx, args| {
            Box::pin(async move {
                let session = cx.data.get_or_insert_with(Session::default);
                if let Some(r) = args.first() {
                    session.rcpts.push(r.to_string_lossy().into_owned());
                }
                envelope_status(session)
            })
        })
        .on_data(move |cx| {
            let shared = s_data.clone();
            Box::pin(async move {
                let session = cx.data.get_or_insert_with(Session::default);
                fast_path(&shared, &cx.macros, session).unwrap_or(Status::Continue)
            })
        })
        .on_header(move |cx, name, value| {
            let shared = s_header.clone();
            Box::pin(async move {
                let session = cx.data.get_or_insert_with(Session::default);
                if let Some(accept) = fast_path(&shared, &cx.macros, session) {
                    return accept;
                }
                if session.too_large {
                    return Status::Continue;
                }
                let settings = shared.settings();
                session.push_header(name.as_bytes(), value.as_bytes());
                if !session.header_over(settings.max_message_size) {
                    return Status::Continue;
                }
                // Skip is an answer for body chunks only: during the header, continue.
                match too_large(&shared, &queue_id(&cx.macros), &settings, session, &mut cx.reply) {
                    Status::Skip => Status::Continue,
                    other => other,
                }
            })
        })
        .on_eoh(move |cx| {
            let shared = s_eoh.clone();
            Box::pin(async move {
                let session = cx.data.get_or_insert_with(Session::default);
                if let Some(accept) = fast_path(&shared, &cx.macros, session) {
                    return accept;
                }
                session.end_of_header();
                Status::Continue
            })
        })
        .on_body(move |cx, chunk| {
            let shared = s_body.clone();
            Box::pin(async move {
                let session = cx.data.get_or_insert_with(Session::default);
                if let Some(accept) = fast_path(&shared, &cx.macros, session) {
                    return accept;
                }
                let settings = shared.settings();
                session.end_of_header();
                let was_over = session.too_large;
                if session.push_body(&chunk, settings.max_message_size) {
                    return Status::Continue;
                }
                if was_over {
                    return if session.skip { Status::Skip } else { Status::Continue };
                }
                too_large(&shared, &queue_id(&cx.macros), &settings, session, &mut cx.reply)
            })
        })
        .on_eom(move |cx| {
            let shared = s_eom.clone();
            Box::pin(async move { end_of_message(&shared, cx).await })
        })
        .on_abort(|cx| {
            Box::pin(async move {
                if let Some(s) = cx.data.as_mut() {
                    s.reset_message();
                }
                Status::Continue
            })
        })
        .on_close(|_cx| Box::pin(async { Status::Continue }))
}

/// The answer to MAIL and RCPT, which always let the message go on.
fn envelope_status(session: &Session) -> Status {
    if session.quiet_envelope { Status::Noreply } else { Status::Continue }
}

/// Answer a message over the size limit (early where the policy allows it).
fn too_large(shared: &Shared, qid: &str, settings: &MilterConfig, session: &mut Session, reply: &mut indymilter::SmtpReply) -> Status {
    let answer = verdict::for_too_large(settings.max_message_size, &Policies::from(settings));
    warn!(
        "{qid}: from={} message larger than max_message_size ({} bytes); answer={}",
        session.sender,
        settings.max_message_size,
        answer.name()
    );
    match early_status(&answer, reply) {
        Some(status) => {
            let tally = Tally::Failed { mailboxes: mailboxes_of(shared, session), why: Handled::TooLarge };
            metrics::global().answered(&tally, answer.kind(), false);
            session.reset_message();
            status
        }
        // Quarantine happens at end of message; stop reading the body meanwhile.
        None if session.skip => Status::Skip,
        None => Status::Continue,
    }
}

async fn end_of_message(shared: &Arc<Shared>, cx: &mut EomContext<Session>) -> Status {
    let qid = queue_id(&cx.macros);
    let settings = shared.settings();
    let policies = Policies::from(&*settings);
    let Some(session) = cx.data.as_mut() else {
        return Status::Continue;
    };
    if let Some(accept) = fast_path(shared, &cx.macros, session) {
        return accept;
    }
    // A message without a body: the end of the header is seen only now.
    session.end_of_header();
    // `ms=` in the log is the end-of-message work: what the conversion adds to the SMTP dialog.
    let started = Instant::now();
    let (plan, tally) = if session.too_large {
        let plan = EomPlan {
            answer: verdict::for_too_large(settings.max_message_size, &policies),
            headers: Vec::new(),
            delete_rcpts: Vec::new(),
        };
        (plan, Tally::Failed { mailboxes: mailboxes_of(shared, session), why: Handled::TooLarge })
    } else {
        // The bare sender is kept for the log line too.
        let sender = bare_address(&session.sender);
        let envelope = Envelope {
            sender: sender.clone(),
            null_sender: sender.is_empty(),
            recipients: session.rcpts.iter().map(|r| bare_address(r)).collect(),
            queue_id: (qid != "NOQUEUE").then(|| qid.clone()),
            client_addr: session.client.or_else(|| macro_value(&cx.macros, c"{client_addr}").and_then(|v| client_address(&v))),
            auth_user: session.auth_user.clone(),
            received_at: chrono::Utc::now(),
        };
        let raw = std::mem::take(&mut session.raw);
        let engine = shared.engine.clone();
        let deadline = Duration::from_secs(settings.eom_timeout);
        // A refusal answered with 5xx/4xx tells the sender already; no failure notice by mail.
        let refuses = matches!(policies.on_unknown_sender, Policy::Reject | Policy::Tempfail);
        // Parsing runs on the blocking pool, which hands the message to the engine's writer;
        // the answer is awaited here without a thread held for it. The preparing task is not
        // awaited: this task wakes once, for the answer. A panic while preparing is the
        // message's answer too (an error), never a silence.
        let (answer, outcomes) = tokio::sync::oneshot::channel();
        drop(tokio::task::spawn_blocking(move || {
            let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.prepare(envelope, raw)));
            match prepared {
                Ok(mut p) => {
                    p.options.smtp_refuses = refuses;
                    engine.hand_over(p, answer);
                }
                Err(panic) => {
                    let _ = answer.send(Err(Error::Internal(format!(
                        "conversion task failed: {}",
                        crate::error::panic_text(&*panic)
                    ))));
                }
            }
        }));
        let failure = match tokio::time::timeout(deadline, outcomes).await {
            Ok(Ok(Ok(outcomes))) => {
                let snapshot = shared.engine.snapshot();
                let handling = |o: &Outcome| {
                    snapshot
                        .mailbox_for(&o.mailbox)
                        .map_or(AfterConversion::Deliver, |m| m.after_conversion)
                };
                let plan = verdict::for_outcomes(&outcomes, &session.rcpts, &handling, &policies, settings.add_header);
                log_outcomes(&qid, &sender, &outcomes, &plan, started);
                Ok((plan, outcomes))
            }
            Ok(Ok(Err(e @ Error::Database(_)))) => Err(Failure::Database(e.to_string())),
            Ok(Ok(Err(e))) => Err(Failure::Internal(e.to_string())),
            Ok(Err(_)) => Err(Failure::Internal("conversion task failed: it ended without an answer".into())),
            Err(_) => Err(Failure::Timeout(deadline)),
        };
        match failure {
            Ok((plan, outcomes)) => (plan, Tally::Outcomes(outcomes)),
            Err(f) => {
                let plan = verdict::for_failure(&f, &policies);
                error!(
                    "{qid}: from={} {}; answer={}{}",
                    session.sender,
                    match &f {
                        Failure::Database(e) | Failure::Internal(e) => e.clone(),
                        Failure::Timeout(d) => format!("conversion did not finish within {} s", d.as_secs()),
                    },
                    plan.answer.name(),
                    reply_suffix(&plan.answer)
                );
                let why = match f {
                    Failure::Database(_) => Handled::DatabaseError,
                    Failure::Internal(_) => Handled::InternalError,
                    Failure::Timeout(_) => Handled::Timeout,
                };
                (plan, Tally::Failed { mailboxes: mailboxes_of(shared, session), why })
            }
        }
    };
    let leading_space = session.leading_space;
    session.reset_message();
    let answer = plan.answer.kind();
    let status = apply_plan(&qid, cx, plan, leading_space).await;
    let m = metrics::global();
    m.answered(&tally, answer, status == Status::Tempfail && answer != Answered::Tempfail);
    m.end_of_message(started.elapsed());
    status
}

/// The addresses of the mailboxes among the recipients (for the metrics of a message that was
/// not converted).
fn mailboxes_of(shared: &Shared, session: &Session) -> Vec<String> {
    let rcpts: Vec<String> = session.rcpts.iter().map(|r| bare_address(r)).collect();
    Engine::scope(&shared.engine.snapshot(), &rcpts).into_iter().map(|(_, m)| m.address).collect()
}

fn reply_suffix(a: &Answer) -> String {
    match a {
        Answer::Reject(r) | Answer::Tempfail(r) => format!(" ({} {} {})", r.code, r.ext, r.text),
        Answer::Quarantine(why) => format!(" ({why})"),
        _ => String::new(),
    }
}

/// Carry out an end-of-message plan with the MTA.
/// With the leading-space option negotiated the MTA inserts header values verbatim, so the
/// space after the colon is ours to write.
async fn apply_plan(qid: &str, cx: &mut EomContext<Session>, plan: EomPlan, leading_space: bool) -> Status {
    if matches!(plan.answer, Answer::Accept | Answer::Quarantine(_)) {
        for (name, value) in &plan.headers {
            let value = if leading_space { format!(" {value}") } else { value.clone() };
            if let Err(e) = cx.actions.add_header(name.as_str(), value).await {
                error!("{qid}: cannot add header {name}: {e}; answer=tempfail");
                return Status::Tempfail;
            }
        }
        for r in &plan.delete_rcpts {
            if let Err(e) = cx.actions.delete_recipient(r.as_str()).await {
                error!("{qid}: cannot delete recipient {r}: {e}; answer=tempfail");
                return Status::Tempfail;
            }
        }
    }
    match &plan.answer {
        Answer::Quarantine(why) => {
            if let Err(e) = cx.actions.quarantine(why.as_str()).await {
                error!("{qid}: cannot quarantine: {e}; answer=tempfail");
                return Status::Tempfail;
            }
            Status::Accept
        }
        other => early_status(other, &mut cx.reply).unwrap_or(Status::Accept),
    }
}

/// One line per mailbox outcome, prefixed with the queue id, key=value.
fn log_outcomes(qid: &str, sender: &str, outcomes: &[Outcome], plan: &EomPlan, started: Instant) {
    let ms = started.elapsed().as_millis();
    for o in outcomes {
        let rejected = o.outcome == Verdict::Rejected;
        // The line is built only when the log level shows it.
        let shown = if rejected { tracing::enabled!(tracing::Level::WARN) } else { tracing::enabled!(tracing::Level::INFO) };
        if !shown {
            continue;
        }
        let ticket = o.object.as_ref().and_then(|x| x.ticket_number.as_deref()).unwrap_or("-");
        let mut line = format!(
            "{qid}: mailbox={} from=<{}> action={} ticket={ticket} tags={} ms={ms} answer={}",
            o.mailbox,
            sender,
            o.outcome.as_str(),
            if o.tags.is_empty() { "-".to_string() } else { o.tags.join(",") },
            plan.answer.name()
        );
        let removed: Vec<&str> = plan
            .delete_rcpts
            .iter()
            .filter(|r| session::bare_address(r).eq_ignore_ascii_case(&o.rcpt))
            .map(String::as_str)
            .collect();
        if !removed.is_empty() {
            line.push_str(&format!(" removed={}", removed.join(",")));
        }
        if o.auto.is_some() {
            line.push_str(" auto=yes");
        }
        if !o.rules.is_empty() {
            line.push_str(&format!(" rules=\"{}\"", verdict::reply_text(&o.rules.join(","))));
        }
        let queued: Vec<&str> = o.notices.iter().filter(|n| n.dropped.is_none()).map(|n| n.to.as_str()).collect();
        if !queued.is_empty() {
            line.push_str(&format!(" notify={}", queued.join(",")));
        }
        for n in o.notices.iter().filter(|n| n.dropped.is_some()) {
            line.push_str(&format!(" dropped=\"{} to {}: {}\"", n.kind, n.to, verdict::reply_text(n.dropped.as_deref().unwrap_or(""))));
        }
        if let Some(r) = &o.reason {
            line.push_str(&format!(" reason=\"{}\"", verdict::reply_text(r)));
        }
        if rejected {
            warn!("{line}{}", reply_suffix(&plan.answer));
        } else {
            info!("{line}");
        }
    }
}

/// Serve milter connections on `listener` until `shutdown` resolves; then stop accepting, let
/// messages in flight finish, and return.
pub async fn serve(
    listener: socket::MilterListener,
    shared: Arc<Shared>,
    shutdown: impl Future,
) -> std::io::Result<()> {
    let config = indymilter::Config {
        max_connections: shared.settings().max_connections,
        ..Default::default()
    };
    let listener = metrics::CountedListener::new(listener, metrics::global().clone());
    indymilter::run(listener, callbacks(shared), config, shutdown).await
}

/// What `ticketmilter run` needs to start.
pub struct DaemonArgs {
    pub config: Config,
    pub config_path: Option<PathBuf>,
    /// Database URL (command line or config).
    pub database: String,
    /// Socket from the command line, overriding the config.
    pub socket: Option<String>,
}

/// What a SIGHUP cannot apply: every section but the [milter] limits and answers, and the
/// [milter] keys the running daemon was started with (socket, connections, reload interval).
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    fn differ<T: serde::Serialize>(a: &T, b: &T) -> bool {
        serde_json::to_value(a).ok() != serde_json::to_value(b).ok()
    }
    let (a, b) = (&old.milter, &new.milter);
    let mut out = Vec::new();
    for (name, changed) in [
        ("milter.socket", a.socket != b.socket || a.socket_mode != b.socket_mode || a.socket_group != b.socket_group),
        ("milter.max_connections", a.max_connections != b.max_connections),
        ("milter.reload_interval", a.reload_interval != b.reload_interval),
        ("[database]", differ(&old.database, &new.database)),
        ("[notify]", differ(&old.notify, &new.notify)),
        ("[log]", differ(&old.log, &new.log)),
        ("[metrics]", differ(&old.metrics, &new.metrics)),
    ] {
        if changed {
            out.push(name);
        }
    }
    out
}

/// The daemon: bind, serve, reload on SIGHUP and on SQL changes, stop on SIGTERM/SIGINT.
pub fn run_daemon(args: DaemonArgs) -> crate::error::Result<()> {
    // One thread runs every connection's protocol handling, which is light; the work of a
    // message runs on the blocking pool (parsing) and the writer thread (the database). With a
    // multi-thread runtime, each message also woke, parked and stole between workers: 30 % more
    // CPU per message and 20 % fewer messages/s at 16 connections (BENCHMARKS.md §5).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("ticketmilter")
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(daemon(args));
    // Let conversions still running on the blocking pool commit before the process ends.
    runtime.shutdown_timeout(Duration::from_secs(30));
    result
}

async fn daemon(args: DaemonArgs) -> crate::error::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let DaemonArgs { config, config_path, database, socket } = args;
    let socket_text = socket.clone().unwrap_or_else(|| config.milter.socket.clone());
    let spec = socket::SocketSpec::parse(&socket_text).map_err(Error::Config)?;
    let mode = u32::from_str_radix(config.milter.socket_mode.trim_start_matches("0o"), 8)
        .map_err(|_| Error::Config(format!("milter.socket_mode {:?} is not octal", config.milter.socket_mode)))?;
    let perms = socket::UnixPerms {
        mode,
        group: Some(config.milter.socket_group.clone()).filter(|g| !g.is_empty()),
    };

    let store_opts = config.store_options();
    let store = tokio::task::spawn_blocking(move || -> crate::error::Result<crate::store::Store> {
        let store = crate::store::Store::open(&database, store_opts)?;
        store.migrate()?;
        Ok(store)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    let engine = Arc::new(tokio::task::spawn_blocking(move || Engine::new(store)).await.map_err(|e| Error::Internal(e.to_string()))??);
    for p in &engine.snapshot().problems {
        warn!("configuration: {p}");
    }

    // Signal handlers first: a SIGHUP right after "listening" must reload, not kill.
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::Internal(e.to_string()))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::Internal(e.to_string()))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::Internal(e.to_string()))?;
    let listener = socket::bind(&spec, &perms).await.map_err(|e| Error::Config(format!("cannot listen on {socket_text}: {e}")))?;
    let metrics_task = match config.metrics.address().map_err(Error::Config)? {
        Some(addr) => {
            if !addr.ip().is_loopback() {
                warn!("metrics.listen {addr} is not a loopback address: whoever reaches it can read the metrics");
            }
            let task = metrics::start(addr, engine.store().clone())
                .await
                .map_err(|e| Error::Config(format!("cannot listen on metrics address {addr}: {e}")))?;
            Some(task)
        }
        None => None,
    };
    let shared = Shared::new(engine.clone(), config.milter.clone());
    let mailboxes: Vec<String> = engine.snapshot().mailboxes().iter().map(|m| m.address.clone()).collect();
    info!(
        "ticketmilter {} listening on {} (database {}; mailboxes: {})",
        env!("CARGO_PKG_VERSION"),
        listener.describe(),
        engine.store().url().redacted(),
        if mailboxes.is_empty() { "none".to_string() } else { mailboxes.join(", ") }
    );

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();

    // The notification sender: its own thread, blocking SMTP, never inside a transaction.
    let notify_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let notifier = if config.notify.enabled {
        let handle = crate::notify::worker::spawn(engine.store().clone(), config.notify.clone(), notify_stop.clone())
            .map_err(|e| Error::Internal(format!("cannot start the notification sender: {e}")))?;
        info!("notifications are sent through {}:{}", config.notify.relay, config.notify.port);
        Some(handle)
    } else {
        info!("notifications are queued but not sent here (notify.enabled = false)");
        None
    };

    // Signals and periodic SQL reloads.
    let control_shared = shared.clone();
    let control = tokio::spawn(async move {
        let shared = control_shared;
        let interval = shared.settings().reload_interval;
        let mut tick = tokio::time::interval(Duration::from_secs(interval.max(1)));
        tick.tick().await;
        // Raw messages past raw_retention_days lose their text once an hour (first at start).
        let mut purge = tokio::time::interval(Duration::from_secs(3600));
        let mut current = config;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    info!("SIGHUP: reloading the configuration");
                    if let Some(path) = &config_path {
                        match Config::load(path, true) {
                            Ok(new) => {
                                let later = needs_restart(&current, &new);
                                if !later.is_empty() {
                                    warn!("changes to {} take effect after a restart", later.join(", "));
                                }
                                shared.set_settings(new.milter.clone());
                                current = new;
                            }
                            Err(e) => error!("{e}; keeping the previous configuration"),
                        }
                    }
                    reload_sql(&shared, true).await;
                }
                _ = tick.tick(), if interval > 0 => reload_sql(&shared, false).await,
                _ = purge.tick() => {
                    let engine = shared.engine.clone();
                    match tokio::task::spawn_blocking(move || engine.purge_raw()).await {
                        Ok(Ok(0)) => {}
                        Ok(Ok(n)) => info!("dropped the raw text of {n} message(s) older than raw_retention_days"),
                        Ok(Err(e)) => warn!("cannot purge old raw messages: {e}"),
                        Err(e) => warn!("cannot purge old raw messages: {e}"),
                    }
                }
                _ = term.recv() => { info!("SIGTERM: finishing messages in flight, then exiting"); break; }
                _ = int.recv() => { info!("SIGINT: finishing messages in flight, then exiting"); break; }
            }
        }
        let _ = stop_tx.send(());
    });

    let served = serve(listener, shared, async {
        let _ = stop_rx.await;
    })
    .await;
    control.abort();
    if let Some(task) = metrics_task {
        task.abort();
    }
    notify_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(h) = notifier {
        // The sender finishes the message it is on (bounded by notify.timeout).
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    info!("ticketmilter stopped");
    served.map_err(|e| Error::Internal(format!("the listener failed: {e}")))
}

async fn reload_sql(shared: &Arc<Shared>, always: bool) {
    let engine = shared.engine.clone();
    let result = tokio::task::spawn_blocking(move || engine.reload_if_changed(always)).await;
    match result {
        Ok(Ok(Some(snapshot))) => {
            let names: Vec<String> = snapshot.mailboxes().iter().map(|m| m.address.clone()).collect();
            info!("SQL configuration reloaded: {} mailbox(es) ({}), {} tag(s)", names.len(), names.join(", "), snapshot.tags.len());
            for p in &snapshot.problems {
                warn!("configuration: {p}");
            }
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => warn!("cannot reload the SQL configuration: {e}; keeping the previous one"),
        Err(e) => warn!("cannot reload the SQL configuration: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_names_what_waits_for_a_restart() {
        let old = Config::default();
        let mut new = old.clone();
        assert!(needs_restart(&old, &new).is_empty());
        // Applied at once: limits and answers.
        new.milter.max_message_size += 1;
        new.milter.eom_timeout += 1;
        assert!(needs_restart(&old, &new).is_empty());
        new.milter.socket = "inet:127.0.0.1:9999".into();
        new.milter.max_connections += 1;
        new.database.url = "sqlite:/elsewhere.db".into();
        new.notify.interval += 1;
        assert_eq!(needs_restart(&old, &new), vec!["milter.socket", "milter.max_connections", "[database]", "[notify]"]);
    }
}
