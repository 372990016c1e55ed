//! The one entry point: (envelope, raw bytes) -> one outcome per mailbox, through scope, parse,
//! facts, decide and apply. The milter, the `process` command, the tests and the benchmarks all
//! call `Engine::process`.

mod follow;
mod writer;

use std::sync::{Arc, RwLock};

use crate::error::Result;
use crate::model::{Action, Envelope, Inbound, Mailbox, Outcome, Plan, SenderReport, TimeReport, Verdict};
use crate::pipeline::{self, Snapshot};
use crate::store::{self, AnyConnection, Finish, Store, apply};

/// How a message is processed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Decide and write as usual, then roll everything back.
    pub dry_run: bool,
    /// Refusals are answered in the SMTP dialogue (the milter rejects or tempfails them), so
    /// the sender gets no failure notice by mail; the administrator's notice is queued anyway.
    pub smtp_refuses: bool,
}

/// Where the milter's answer goes ([`Engine::hand_over`]): the outcomes of one message, once
/// committed, or the error that stopped it.
pub type Answer = tokio::sync::oneshot::Sender<Result<Vec<Outcome>>>;

/// A message made ready for the database: parsed, scoped, keyed. Pure work, done outside any
/// transaction so that several prepared messages can share one commit.
#[derive(Debug)]
pub struct Prepared {
    pub envelope: Envelope,
    pub raw: Vec<u8>,
    pub inbound: Inbound,
    pub analysis: pipeline::Analysis,
    /// (recipient as given, its mailbox), one per distinct mailbox.
    pub targets: Vec<(String, Mailbox)>,
    /// Per target, in the same order: its parsing rules' result and the lookup keys — pure
    /// work done here, off the writer, which only looks the keys up.
    pub keyed: Vec<(pipeline::rules::RuleResult, crate::model::LookupKeys)>,
    pub snapshot: Arc<Snapshot>,
    pub options: Options,
}

/// The conversion engine: a store, the current compiled configuration, and the writer that
/// commits the messages of concurrent callers together.
pub struct Engine {
    store: Store,
    snapshot: RwLock<Arc<Snapshot>>,
    writer: writer::Writer,
}

impl Engine {
    /// Load the SQL configuration and compile it; start the writer.
    pub fn new(store: Store) -> Result<Engine> {
        let snapshot = Arc::new(load_snapshot(&store)?);
        Ok(Engine {
            writer: writer::Writer::start(store.clone())?,
            store,
            snapshot: RwLock::new(snapshot),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The configuration in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reload the SQL configuration; messages in flight keep the snapshot they started with.
    pub fn reload(&self) -> Result<Arc<Snapshot>> {
        let fresh = Arc::new(load_snapshot(&self.store)?);
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    /// Reload the SQL configuration if it changed since the last load (or `always`); returns
    /// the new snapshot when one was installed.
    pub fn reload_if_changed(&self, always: bool) -> Result<Option<Arc<Snapshot>>> {
        let rows = self.store.read(store::conf::load)?;
        if !always && rows == *self.snapshot().rows() {
            return Ok(None);
        }
        let fresh = Arc::new(Snapshot::build(rows));
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(Some(fresh))
    }

    /// The recipients that name active mailboxes, one per mailbox (first recipient wins).
    pub fn scope(snapshot: &Snapshot, recipients: &[String]) -> Vec<(String, Mailbox)> {
        let mut out: Vec<(String, Mailbox)> = Vec::new();
        for rcpt in recipients {
            if let Some(mb) = snapshot.mailbox_for(rcpt) {
                if !out.iter().any(|(_, m)| m.id == mb.id) {
                    out.push((rcpt.clone(), mb.clone()));
                }
            }
        }
        out
    }

    /// Parse and key a message (no database access).
    pub fn prepare(&self, envelope: Envelope, raw: Vec<u8>) -> Prepared {
        let snapshot = self.snapshot();
        let targets = Engine::scope(&snapshot, &envelope.recipients);
        let mut inbound = if targets.is_empty() {
            Inbound::default()
        } else {
            pipeline::parse(&raw)
        };
        let postgres = !self.store.url().is_sqlite();
        if postgres {
            postgres_text(&mut inbound);
        }
        let analysis = pipeline::analyse(&inbound, &raw, &envelope, &snapshot);
        let keyed = targets
            .iter()
            .map(|(_, mailbox)| {
                let rules = snapshot.rules.evaluate(mailbox.id, &inbound, &snapshot.refs);
                let keys = pipeline::keys(&inbound, &snapshot, &analysis, &rules);
                (rules, keys)
            })
            .collect();
        Prepared {
            envelope,
            raw,
            inbound,
            analysis,
            targets,
            keyed,
            snapshot,
            options: Options::default(),
        }
    }

    /// Process one message: one outcome per mailbox recipient, or a single `not_ours` outcome
    /// when no recipient is a mailbox. Everything is written in one transaction.
    pub fn process(&self, envelope: &Envelope, raw: &[u8], opts: Options) -> Result<Vec<Outcome>> {
        self.process_owned(envelope.clone(), raw.to_vec(), opts)
    }

    /// `process` for async callers (the milter): called on the thread that prepared the
    /// message (a blocking-pool thread), this hands it straight to the writer, which sends the
    /// outcomes to `answer` once they are durable; the caller awaits them without holding a
    /// thread. The caller's task wakes once per message — for the answer, not also for the end
    /// of the preparing task — and the preparing thread never waits for the writer.
    pub fn hand_over(&self, prepared: Prepared, answer: Answer) {
        if prepared.targets.is_empty() {
            let _ = answer.send(Ok(vec![not_ours(&prepared.envelope)]));
            return;
        }
        self.writer.enqueue(prepared, writer::Reply::Task(answer));
    }

    /// `process` for callers that can hand over the message (no copy).
    ///
    /// Messages of concurrent callers are committed together: the writer takes every prepared
    /// message that is waiting, writes each in its own savepoint (a failing message does not
    /// fail its neighbours), commits once, then answers every caller. A durable commit costs a
    /// disk flush; sharing it is what lets throughput exceed one flush per message.
    pub fn process_owned(&self, envelope: Envelope, raw: Vec<u8>, opts: Options) -> Result<Vec<Outcome>> {
        let mut prepared = self.prepare(envelope, raw);
        prepared.options = opts;
        if prepared.targets.is_empty() {
            return Ok(vec![not_ours(&prepared.envelope)]);
        }
        if opts.dry_run {
            return self.store.transact(Finish::Rollback, |c| write_prepared(c, &prepared));
        }
        self.writer.submit(prepared)
    }
}

impl Engine {
    /// The decision trace of a message for each mailbox recipient, written and rolled back
    /// (`ticketmilter explain`): what it would become, and why.
    pub fn explain(&self, envelope: Envelope, raw: Vec<u8>) -> Result<Vec<(Outcome, Vec<String>)>> {
        let p = self.prepare(envelope, raw);
        let auto = &p.analysis.auto;
        if p.targets.is_empty() {
            return Ok(vec![(not_ours(&p.envelope), vec!["no recipient is an active mailbox".to_string()])]);
        }
        let mut head = vec![format!("parsed: subject {:?}, {} attachment(s)", p.inbound.subject, p.inbound.attachments.len())];
        for problem in &p.inbound.problems {
            head.push(format!("parse problem: {problem}"));
        }
        match &p.analysis.trust {
            Ok(r) => head.push(format!("sender authenticated: {r}")),
            Err(u) => head.push(format!("sender not authenticated: {u}")),
        }
        if let Some(a) = &p.analysis.alert {
            head.push(format!("structured alert block: {a:?}"));
        }
        if let Some(Ok(f)) = &p.analysis.indicators {
            head.push(format!("first line holds indicators: {:?}", f.line));
        }
        match &auto.reason {
            Some(r) => head.push(format!("auto-generated ({:?}): {r}", auto.kind)),
            None => head.push("written by a person (no sign of automatic mail)".to_string()),
        }
        let settings = &p.snapshot.settings;
        let now = p.envelope.received_at.naive_utc();
        let day = settings.time_zone.local(p.envelope.received_at).format("%Y%m%d").to_string();
        self.store.transact(Finish::Rollback, |c| {
            let mut out = Vec::new();
            for (i, (rcpt, mailbox)) in p.targets.iter().enumerate() {
                let plan = plan_for(c, &p, i, rcpt, mailbox, now)?;
                let ctx = apply::Context {
                    queue_id: None,
                    envelope_from: if p.envelope.null_sender { "<>" } else { &p.envelope.sender },
                    day: &day,
                    now,
                    raw: None,
                    client_addr: p.envelope.client_addr,
                    auth_user: p.envelope.auth_user.as_deref(),
                };
                let applied = apply::apply(c, &plan, &ctx).map_err(crate::error::Error::from)?;
                let followed = follow::follow(c, &p, &plan, &applied, &p.options, now).map_err(crate::error::Error::from)?;
                let mut trace = head.clone();
                trace.extend(plan.trace.iter().cloned());
                trace.extend(followed.trace.iter().cloned());
                out.push((report(&plan, applied, followed, &p), trace));
            }
            Ok(out)
        })
    }

    /// Drop the raw text of messages older than `raw_retention_days` (0 keeps them forever).
    pub fn purge_raw(&self) -> Result<usize> {
        let days = self.snapshot().settings.raw_retention_days;
        if days == 0 {
            return Ok(0);
        }
        let before = (chrono::Utc::now() - chrono::Duration::days(days as i64)).naive_utc();
        self.store.write(|c| store::messages::purge_raw(c, before))
    }

    /// Convert a stored message again (after fixing the configuration). A message that was
    /// converted already is refused unless `force` (that makes a second object).
    pub fn reprocess(&self, id: i64, force: bool) -> Result<Vec<Outcome>> {
        let (view, raw) = self
            .store
            .read(|c| store::messages::get(c, id))?
            .ok_or_else(|| crate::error::Error::Usage(format!("no stored message {id}")))?;
        let raw = raw.ok_or_else(|| {
            crate::error::Error::Usage(format!("message {id}: its raw text is no longer kept (raw_retention_days)"))
        })?;
        if matches!(view.outcome.as_str(), "created" | "note_added" | "time_entry_added") && !force {
            return Err(crate::error::Error::Usage(format!(
                "message {id} was converted already ({}{}); --force converts it again and makes a second object",
                view.outcome,
                view.ticket.as_deref().map(|t| format!(", {t}")).unwrap_or_default()
            )));
        }
        // The envelope as it was: trust and dates are judged as on arrival.
        let envelope = Envelope {
            sender: if view.envelope_from == "<>" { String::new() } else { view.envelope_from.clone() },
            null_sender: view.envelope_from == "<>",
            recipients: vec![view.envelope_rcpt.clone()],
            queue_id: view.queue_id.clone(),
            client_addr: view.client_addr.as_deref().and_then(|a| a.parse().ok()),
            auth_user: view.auth_user.clone(),
            received_at: chrono::DateTime::from_naive_utc_and_offset(view.received_at_utc, chrono::Utc),
        };
        let p = self.prepare(envelope, raw);
        if p.targets.is_empty() {
            return Err(crate::error::Error::Usage(format!(
                "message {id}: {} is no active mailbox now",
                view.envelope_rcpt
            )));
        }
        // The stored record goes only when the message is converted again; a refusal would
        // lose it, so that undoes everything.
        self.store.transact(Finish::Commit, |c| {
            store::messages::delete(c, id)?;
            let outcomes = write_prepared(c, &p)?;
            if let Some(o) = outcomes.iter().find(|o| o.outcome == Verdict::Rejected) {
                return Err(crate::error::Error::Usage(format!(
                    "message {id} would now be refused ({}); it stays stored as it was",
                    o.reason.as_deref().unwrap_or("no reason")
                )));
            }
            Ok(outcomes)
        })
    }
}

/// PostgreSQL only: text values cannot hold NUL characters (SQLite stores them), so the parsed
/// message loses them before anything is looked up or written — as the body text always does
/// (`pipeline::normalise_text`). Without this, a stray NUL in a header (a broken or hostile
/// message) would fail every statement that binds it, and the message would be tempfailed
/// for good.
fn postgres_text(m: &mut Inbound) {
    fn clean(s: &mut String) {
        if s.contains('\0') {
            s.retain(|c| c != '\0');
        }
    }
    fn clean_addr(a: &mut crate::model::Address) {
        clean(&mut a.email);
        if let Some(n) = &mut a.name {
            clean(n);
        }
    }
    clean(&mut m.subject);
    for a in [&mut m.from, &mut m.reply_to, &mut m.sender, &mut m.resent_from].into_iter().flatten() {
        clean_addr(a);
    }
    m.to.iter_mut().chain(m.cc.iter_mut()).for_each(clean_addr);
    m.message_id.iter_mut().chain(m.in_reply_to.iter_mut()).chain(m.references.iter_mut()).for_each(clean);
    clean(&mut m.text);
    if let Some(h) = &mut m.html {
        clean(h);
    }
    for a in &mut m.attachments {
        clean(&mut a.filename);
        clean(&mut a.content_type);
        if let Some(id) = &mut a.content_id {
            clean(id);
        }
    }
    for (n, v) in &mut m.headers {
        clean(n);
        clean(v);
    }
    m.problems.iter_mut().for_each(clean);
}

fn load_snapshot(store: &Store) -> Result<Snapshot> {
    let rows = store.read(store::conf::load)?;
    Ok(Snapshot::build(rows))
}

/// The outcome for a message none of whose recipients is a mailbox.
pub fn not_ours(envelope: &Envelope) -> Outcome {
    Outcome {
        outcome: Verdict::NotOurs,
        mailbox: String::new(),
        rcpt: envelope.recipients.join(", "),
        object: None,
        title: None,
        description: None,
        sender: None,
        attachments: Vec::new(),
        tags: Vec::new(),
        reason: Some("no recipient is an active mailbox".into()),
        failure: None,
        time: None,
        notices: Vec::new(),
        rules: Vec::new(),
        auto: None,
    }
}

/// The database half of processing, inside the caller's transaction: per mailbox, in a savepoint,
/// look up facts, decide, apply. A unique-key conflict (the same message committed meanwhile by
/// another connection or host) rolls back the savepoint and decides again, which then sees the
/// earlier record and answers `duplicate`.
pub fn write_prepared(conn: &mut AnyConnection, p: &Prepared) -> Result<Vec<Outcome>> {
    write_each(conn, p, true)
}

/// `write_prepared` without savepoints, for a message that is alone in its transaction: every
/// page a statement changes inside a savepoint is first copied to SQLite's sub-journal, and
/// the savepoint statements themselves are compiled each time. Any failure (a unique-key
/// conflict or a panic included) is returned at once; the caller rolls the transaction back
/// and writes the message again with `write_prepared`.
pub fn write_prepared_alone(conn: &mut AnyConnection, p: &Prepared) -> Result<Vec<Outcome>> {
    write_each(conn, p, false)
}

fn write_each(conn: &mut AnyConnection, p: &Prepared, savepoints: bool) -> Result<Vec<Outcome>> {
    let settings = &p.snapshot.settings;
    let local = settings.time_zone.local(p.envelope.received_at);
    let day = local.format("%Y%m%d").to_string();
    let now = p.envelope.received_at.naive_utc();
    let raw = settings.keep_raw_messages.then_some(p.raw.as_slice());
    // A panic becomes an error of this message only (after its savepoint, or the whole
    // transaction, is rolled back): the writer goes on with the other messages.
    let guarded = |c: &mut AnyConnection, i: usize| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write_target(c, p, i, &day, now, raw))).unwrap_or_else(|panic| {
            Err(store::StoreFail::Other(crate::error::Error::Internal(format!(
                "processing panicked: {}",
                crate::error::panic_text(&*panic)
            ))))
        })
    };
    let mut outcomes = Vec::with_capacity(p.targets.len());
    for i in 0..p.targets.len() {
        if !savepoints {
            outcomes.push(guarded(conn, i)?);
            continue;
        }
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            match store::savepoint(conn, |c| guarded(c, i)) {
                Ok(o) => break o,
                Err(e) if e.is_unique_violation() && attempt < 3 => continue,
                Err(e) => return Err(e.into()),
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Decide and write the message for its `target`-th mailbox (inside that mailbox's savepoint).
fn write_target(
    c: &mut AnyConnection,
    p: &Prepared,
    target: usize,
    day: &str,
    now: chrono::NaiveDateTime,
    raw: Option<&[u8]>,
) -> std::result::Result<Outcome, store::StoreFail> {
    let (rcpt, mailbox) = &p.targets[target];
    let plan = plan_for(c, p, target, rcpt, mailbox, now)?;
    let ctx = apply::Context {
        queue_id: p.envelope.queue_id.as_deref(),
        envelope_from: if p.envelope.null_sender { "<>" } else { &p.envelope.sender },
        day,
        now,
        raw,
        client_addr: p.envelope.client_addr,
        auth_user: p.envelope.auth_user.as_deref(),
    };
    let applied = apply::apply(c, &plan, &ctx)?;
    let followed = follow::follow(c, p, &plan, &applied, &p.options, now)?;
    Ok(report(&plan, applied, followed, p))
}

/// The decision for one mailbox: its parsing rules, the lookups, the pure decision.
/// `target` indexes `p.targets` and `p.keyed`.
pub fn plan_for(conn: &mut AnyConnection, p: &Prepared, target: usize, rcpt: &str, mailbox: &Mailbox, now: chrono::NaiveDateTime) -> Result<Plan> {
    let (rules, keys) = (&p.keyed[target].0, &p.keyed[target].1);
    let facts = apply::facts(conn, &keys, mailbox.id, &p.snapshot.settings, &|d| p.snapshot.is_public_domain(d), now)?;
    Ok(pipeline::decide(&pipeline::Input {
        inbound: &p.inbound,
        envelope: &p.envelope,
        rcpt,
        mailbox,
        keys,
        facts: &facts,
        snapshot: &p.snapshot,
        analysis: &p.analysis,
        rules,
    }))
}

/// The outcome a plan and its write amount to.
fn report(plan: &Plan, applied: apply::Applied, followed: follow::Followed, p: &Prepared) -> Outcome {
    let inbound = &p.inbound;
    let a = &plan.attribution;
    let sender = Some(SenderReport {
        address: a.address.clone(),
        kind: a.kind,
        company: a.company.as_ref().map(|c| c.name.clone()),
    });
    let mut o = Outcome {
        outcome: Verdict::Rejected,
        mailbox: plan.mailbox.clone(),
        rcpt: plan.rcpt.clone(),
        object: applied.object,
        title: None,
        description: None,
        sender,
        attachments: applied.attachments,
        tags: Vec::new(),
        reason: plan.reason.clone(),
        failure: None,
        time: None,
        notices: Vec::new(),
        rules: Vec::new(),
        auto: None,
    };
    match &plan.action {
        Action::CreateTicket(t) => {
            o.outcome = Verdict::Created;
            o.title = Some(t.title.clone());
            o.description = Some(t.description.clone());
            o.tags = t.tags.iter().map(|(t, _)| t.label.clone()).collect();
        }
        Action::AddNote(n) => {
            o.outcome = Verdict::NoteAdded;
            o.title = Some(n.title.clone());
            o.description = Some(n.body.clone());
        }
        Action::AddTimeEntry(e) => {
            o.outcome = Verdict::TimeEntryAdded;
            o.title = Some(inbound.subject.clone());
            o.description = Some(e.summary.clone());
            o.time = Some(TimeReport {
                minutes: e.minutes,
                hours: format!("{:.2}", e.minutes as f64 / 60.0),
                role: e.role.clone(),
                date: e.work_date.clone(),
                start: e.start.clone(),
                end: e.end.clone(),
                status: e.set_status.as_ref().map(|(_, n)| n.clone()),
            });
        }
        Action::Discard => {
            o.outcome = Verdict::Discarded;
            o.title = Some(inbound.subject.clone());
        }
        Action::Duplicate(prior) => {
            // Nothing was decided about the sender this time; the first processing did that.
            o.outcome = Verdict::Duplicate;
            o.object = prior.object.clone();
            o.sender = None;
        }
        Action::Ignore => {
            o.outcome = Verdict::Ignored;
            o.title = Some(inbound.subject.clone());
        }
        Action::Reject(f) => {
            o.outcome = Verdict::Rejected;
            o.failure = Some(*f);
            o.title = Some(inbound.subject.clone());
        }
    }
    o.notices = followed.notices;
    o.rules = followed.rules;
    o.auto = p.analysis.auto.reason.clone();
    o
}
