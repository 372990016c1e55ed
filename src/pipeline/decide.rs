//! The decision: (message, store facts, mailbox, configuration) -> Plan. Pure and synchronous;
//! every rule about which object a message becomes, whom it is attributed to and what it may
//! command lives here, and each step leaves a line in the plan's trace (`ticketmilter explain`).

use chrono::{DateTime, Utc};

use super::content::{self, Limits};
use super::numbers::{self, NumberKind};
use super::rules::RuleResult;
use super::snapshot::{AutoMailAction, CrossCompany, DuplicateAction, LoopAction, Snapshot, find_id, names};
use super::{alerts, auto, forward, indicators, quotes, trust};
use crate::model::{
    Action, Address, Attribution, CcOnly, CompanyRef, CompletedTicket, ContactChoice, Envelope, Facts, Failure,
    Inbound, LookupKeys, Mailbox, NewContact, NewNote, NewTicket, NewTimeEntry, NoteTarget, Plan, SenderKind, Target,
    TicketRef, TimeTarget, UnknownSender, Visibility,
};

/// What is read from a message once, before any mailbox is considered.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// A structured alert block at the end of the body.
    pub alert: Option<alerts::Alert>,
    /// The text without the alert block.
    pub text: String,
    /// Indicators on the first line (`#T=`, `#R=`, `#S=`).
    pub indicators: Option<Result<indicators::Found, indicators::IndicatorError>>,
    /// Whether the sender is authenticated (commands by mail need it).
    pub trust: Result<trust::TrustReason, trust::Untrusted>,
    /// A forward marker on the first line and the original sender of the forwarded mail.
    pub forward: Option<Forwarded>,
    /// The normalised subject.
    pub subject_key: String,
    /// `Sensitivity: Private`.
    pub private: bool,
    /// To and Cc addresses, lower case.
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// A `Resent-From` (the message was redirected by this address).
    pub resent_from: Option<String>,
    /// Whether the message is auto-generated (auto-reply, bounce, list …) or our own.
    pub auto: auto::AutoMail,
    /// The tags the matcher finds in the ticket title and `text`: the automatic tags of a new
    /// ticket made from this message (unless it is a staff forward, whose description is the
    /// forwarded text). Found here, once per message, so that the decision — which runs in
    /// the database writer — only copies them.
    pub text_tags: Vec<crate::model::TagRef>,
    /// The title a new ticket made from this message gets ([`ticket_title`]).
    pub title: String,
    /// The address the message is attributed to ([`sender_address`]).
    pub sender: Option<String>,
}

/// A customer's mail forwarded by staff with the forward marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub original: Address,
    /// The text without the marker line.
    pub text: String,
}

/// Read a message once: alert block, indicators, trust, forward marker, subject key, and
/// whether a machine wrote it. `raw` is the message as received.
pub fn analyse(inbound: &Inbound, raw: &[u8], envelope: &Envelope, snapshot: &Snapshot) -> Analysis {
    let found = alerts::find(&inbound.text);
    let (alert, text) = match found {
        Some(f) => (Some(f.alert), f.text),
        None => (None, inbound.text.clone()),
    };
    let sender = sender_address(inbound, envelope);
    let sender_domain = sender.as_deref().and_then(crate::model::domain_of);
    let trust = trust::authenticate(
        &inbound.headers,
        sender_domain.as_deref(),
        envelope.client_addr,
        envelope.auth_user.as_deref(),
        &snapshot.settings.trust,
    );
    let marker = snapshot.settings.forward_marker.trim();
    let forward = (!marker.is_empty())
        .then(|| {
            let mut lines = text.lines();
            let first = lines.by_ref().find(|l| !l.trim().is_empty())?;
            if !first.trim().eq_ignore_ascii_case(marker) {
                return None;
            }
            let rest: String = text.split_once(first).map(|(_, r)| r.trim_start_matches(['\r', '\n']).to_string())?;
            let original = forward::forwarded_sender(&rest)?;
            Some(Forwarded { original, text: rest })
        })
        .flatten();
    let lower = |v: &[Address]| v.iter().map(|a| a.email.trim().to_ascii_lowercase()).collect::<Vec<_>>();
    let title = ticket_title(&inbound.subject, envelope.received_at, snapshot);
    let text_tags = snapshot.tags.find(&[&title, &text], snapshot.settings.max_tags);
    Analysis {
        title,
        text_tags,
        sender,
        indicators: indicators::find(&text),
        alert,
        text,
        trust,
        forward,
        subject_key: numbers::subject_key(&inbound.subject),
        private: inbound.header("sensitivity").is_some_and(|v| v.trim().eq_ignore_ascii_case("private")),
        to: lower(&inbound.to),
        cc: lower(&inbound.cc),
        resent_from: inbound.resent_from.as_ref().map(|a| a.email.clone()),
        auto: auto::detect(
            inbound,
            raw,
            match (envelope.null_sender, envelope.sender.as_str()) {
                (true, _) => Some(""),
                (false, "") => None,
                (false, s) => Some(s),
            },
            &auto::Own { loop_names: &snapshot.own_domains, message_id_domains: &snapshot.own_domains },
        ),
    }
}

/// The lookups a message needs for one mailbox (after its parsing rules).
pub fn keys(inbound: &Inbound, snapshot: &Snapshot, analysis: &Analysis, rules: &RuleResult) -> LookupKeys {
    let sender = analysis.sender.clone();
    let sender_domain = sender.as_deref().and_then(crate::model::domain_of);
    let company_domain = sender_domain.clone().filter(|d| !snapshot.is_public_domain(d));
    let mut referenced_ids: Vec<String> = inbound.in_reply_to.clone();
    for id in inbound.references.iter().rev() {
        if !referenced_ids.contains(id) {
            referenced_ids.push(id.clone());
        }
    }
    // A bounce threads to the ticket of the notification it returns.
    if let Some(id) = analysis.auto.bounce.as_ref().and_then(|b| b.original_message_id.as_ref()) {
        if !referenced_ids.contains(id) {
            referenced_ids.insert(0, id.clone());
        }
    }
    referenced_ids.truncate(50);
    let alert = analysis.alert.as_ref();
    let sender_lower = sender.as_deref().map(str::to_ascii_lowercase);
    let cc: Vec<String> = analysis
        .cc
        .iter()
        .filter(|a| snapshot.mailbox_for(a).is_none() && Some(a.as_str()) != sender_lower.as_deref() && crate::model::is_mailbox_address(a))
        .take(50)
        .cloned()
        .collect();
    LookupKeys {
        dedup_key: inbound.dedup_key(),
        sender_domain,
        company_domain,
        sender,
        numbers: numbers::numbers(&inbound.subject),
        referenced_ids,
        subject_key: analysis.subject_key.clone(),
        alert_id: alert.and_then(|a| a.alert_id.clone()),
        external_id: alert.and_then(|a| a.external_id.clone()),
        named_company: rules.company.clone().or_else(|| alert.and_then(|a| a.company.clone())),
        named_contact_email: alert.and_then(|a| a.contact_email.clone()),
        cc,
        forwarded_sender: analysis.forward.as_ref().map(|f| f.original.clone()),
    }
}

/// The address a message is attributed to: From, Sender, Reply-To, else the envelope sender —
/// the first that is a mailbox address.
pub fn sender_address(inbound: &Inbound, envelope: &Envelope) -> Option<String> {
    inbound
        .author()
        .map(|a| a.email.clone())
        .or_else(|| crate::model::is_mailbox_address(&envelope.sender).then(|| envelope.sender.clone()))
}

/// Longest title kept (as Autotask: 255); the full subject stays in the stored message.
pub const MAX_TITLE_CHARS: usize = 255;

/// A subject as a title: trimmed, at most `MAX_TITLE_CHARS` characters (cut ones end in "…").
pub fn title_of(subject: &str) -> String {
    let t = subject.trim();
    if t.chars().count() <= MAX_TITLE_CHARS {
        return t.to_string();
    }
    let mut s: String = t.chars().take(MAX_TITLE_CHARS - 1).collect();
    s.push('…');
    s
}

/// Title of a ticket made from a message: the subject, or `New Ticket - <date>` without one.
pub fn ticket_title(subject: &str, received_at: DateTime<Utc>, snapshot: &Snapshot) -> String {
    let t = title_of(subject);
    if t.is_empty() {
        let local = snapshot.settings.time_zone.local(received_at);
        format!("New Ticket - {}", local.format("%Y-%m-%d %H:%M"))
    } else {
        t
    }
}

/// Everything a decision reads.
pub struct Input<'a> {
    pub inbound: &'a Inbound,
    pub envelope: &'a Envelope,
    pub rcpt: &'a str,
    pub mailbox: &'a Mailbox,
    pub keys: &'a LookupKeys,
    pub facts: &'a Facts,
    pub snapshot: &'a Snapshot,
    pub analysis: &'a Analysis,
    pub rules: &'a RuleResult,
}

/// Decide what one message becomes for one mailbox.
pub fn decide(i: &Input<'_>) -> Plan {
    let mut d = Decision::new(i);
    d.run();
    d.plan
}

struct Decision<'a> {
    i: &'a Input<'a>,
    plan: Plan,
    remarks: Vec<String>,
    /// Said only when a new ticket is really made: the subject's number matched nothing.
    unknown_number: Option<String>,
    /// The sender is a resource whose mail is believed: authenticated, or no means to tell are
    /// configured (no trusted verifiers or networks). Forged staff addresses are outsiders.
    staff: bool,
    /// Auto-generated mail: notes are internal whatever the mailbox says.
    internal_only: bool,
    /// The queue a new ticket goes to instead of the mailbox's (auto-generated mail).
    queue_override: Option<i64>,
}

impl<'a> Decision<'a> {
    fn new(i: &'a Input<'a>) -> Decision<'a> {
        let plan = Plan {
            action: Action::Ignore,
            mailbox_id: i.mailbox.id,
            mailbox: i.mailbox.address.clone(),
            rcpt: i.rcpt.to_string(),
            attribution: Attribution {
                address: i.keys.sender.clone(),
                kind: SenderKind::Unknown,
                company: None,
                contact: None,
                resource: None,
                new_contact: None,
            },
            reason: None,
            system_notes: Vec::new(),
            message_id: i.inbound.message_id.clone(),
            dedup_key: i.keys.dedup_key.clone(),
            sender_address: i.keys.sender.as_deref().map(str::to_ascii_lowercase),
            subject_key: i.keys.subject_key.clone(),
            trace: Vec::new(),
        };
        let s = &i.snapshot.settings;
        let trust_configured = !s.trust.authserv_ids.is_empty() || !s.trust.networks.is_empty();
        let staff = i.facts.resource.is_some() && (i.analysis.trust.is_ok() || !trust_configured);
        Decision { i, plan, remarks: Vec::new(), unknown_number: None, staff, internal_only: false, queue_override: None }
    }

    fn trace(&mut self, line: impl Into<String>) {
        self.plan.trace.push(line.into());
    }

    fn finish(&mut self, action: Action, reason: Option<String>) {
        self.plan.action = action;
        if let Some(r) = reason {
            self.remarks.insert(0, r);
        }
        if !self.remarks.is_empty() {
            self.plan.reason = Some(self.remarks.join("; "));
        }
    }

    fn reject(&mut self, failure: Failure, reason: String) {
        self.trace(format!("refused ({failure:?}): {reason}"));
        self.remarks.clear();
        self.finish(Action::Reject(failure), Some(reason));
    }

    fn run(&mut self) {
        let i = self.i;
        self.trace(format!("mailbox {} (recipient {})", i.mailbox.address, i.rcpt));

        if let Some(prior) = &i.facts.prior {
            let reason = format!(
                "already processed for {} at {} ({})",
                i.mailbox.address,
                prior.received_at.format("%Y-%m-%d %H:%M:%S UTC"),
                prior.outcome
            );
            self.trace(format!("duplicate: {reason} (key {})", i.keys.dedup_key));
            self.finish(Action::Duplicate(prior.clone()), Some(reason));
            return;
        }
        self.trace(format!("first time this message ({}) reaches the mailbox", i.keys.dedup_key));
        for line in &i.rules.trace {
            self.trace(line.clone());
        }

        // Our own notification passing back through the MTA (e.g. to a mailbox address).
        if i.analysis.auto.ours {
            let why = i.analysis.auto.reason.clone().unwrap_or_default();
            self.trace(format!("our own notification ({why}) → not converted"));
            self.finish(Action::Ignore, Some(format!("one of our own notifications ({why}); never converted")));
            return;
        }

        // Excluded senders.
        if let Some(sender) = i.keys.sender.as_deref() {
            if let Some(x) = i.snapshot.exclusion_for(sender, i.mailbox.id) {
                let reason = format!("sender {sender} is excluded ({}) for mailbox {}", x.pattern, i.mailbox.address);
                self.trace(format!("excluded sender: {} → {}", x.pattern, x.action));
                self.attribute(None);
                match x.action.as_str() {
                    "reject" => self.reject(Failure::ExcludedSender, reason),
                    "discard" => self.finish(Action::Discard, Some(reason)),
                    _ => self.finish(Action::Ignore, Some(reason)),
                }
                return;
            }
        }

        let target = self.target();
        self.attribute(target.as_ref());

        if i.analysis.private {
            self.trace("Sensitivity: Private → not converted");
            self.finish(Action::Ignore, Some("marked private (Sensitivity: Private); private mail is never converted".into()));
            return;
        }
        if let Some(rule) = i.rules.ignore {
            self.finish(Action::Ignore, Some(format!("parsing rule {rule} says to leave such mail unconverted")));
            return;
        }

        // The loop guard (counted in the database across hosts). Believed staff are exempt: a
        // technician booking time or answering quickly is no mail loop.
        let s = &i.snapshot.settings;
        if s.loop_max > 0 && i.facts.loop_count >= s.loop_max as i64 && !self.staff {
            let reason = format!(
                "loop guard: {} messages from {} with this subject in the last {} minutes (limit {})",
                i.facts.loop_count,
                i.keys.sender.as_deref().unwrap_or("?"),
                s.loop_window_minutes,
                s.loop_max
            );
            self.trace(reason.clone());
            match s.loop_action {
                LoopAction::Ignore => self.finish(Action::Ignore, Some(reason)),
                LoopAction::Discard => self.finish(Action::Discard, Some(reason)),
                LoopAction::Reject => self.reject(Failure::Loop, reason),
            }
            return;
        }
        self.trace(format!("loop guard: {} earlier message(s) from this sender with this subject in the window", i.facts.loop_count));

        // A mailbox that makes tickets only when it is in To, and is only in Cc.
        if i.mailbox.only_when_to && self.only_in_cc() {
            let ignore = match (&target, i.mailbox.cc_only) {
                (Some(_), CcOnly::Note) => false,
                (Some(_), CcOnly::Ignore) | (None, _) => true,
            };
            self.trace(format!("mailbox only in Cc (cc_only = {})", i.mailbox.cc_only.as_str()));
            if ignore {
                let reason = format!("mailbox {} was only in Cc; it makes tickets only when it is in To", i.mailbox.address);
                self.finish(Action::Ignore, Some(reason));
                return;
            }
        }

        if i.analysis.auto.is_auto() {
            self.auto_mail(target);
            return;
        }

        match target {
            Some(t) => self.to_existing(t),
            None => self.new_ticket(None),
        }
    }

    /// Auto-generated mail: never commands, never a status change, never answered (the
    /// notifications stage reads `auto` too). A ticket named by number gets an internal note;
    /// otherwise the `auto_mail` setting decides.
    fn auto_mail(&mut self, target: Option<Target>) {
        let i = self.i;
        let auto = &i.analysis.auto;
        let why = auto.reason.clone().unwrap_or_else(|| "auto-generated".into());
        self.trace(format!("auto-generated mail ({:?}): {why}", auto.kind));
        let by_number = i.facts.numbered.iter().any(|(_, t)| t.is_some());
        let setting = i.snapshot.settings.auto_mail;
        self.internal_only = true;
        match target {
            Some(t) if by_number || setting != AutoMailAction::Ignore => {
                let (allowed, noun) = match &t {
                    Target::Ticket(_) => (i.mailbox.allowed.ticket_notes, "ticket notes"),
                    Target::Project(_) => (i.mailbox.allowed.project_notes, "project notes"),
                    Target::Task(_) => (i.mailbox.allowed.task_notes, "task notes"),
                };
                if !allowed {
                    let reason = format!("auto-generated mail ({why}) for {}: mailbox {} does not accept {noun}", t.number(), i.mailbox.address);
                    self.finish(Action::Ignore, Some(reason));
                    return;
                }
                self.remarks.push(format!("auto-generated mail ({why}): internal note, status unchanged, not answered"));
                self.note(t, false, None, None);
            }
            Some(t) => {
                let reason = format!("auto-generated mail ({why}) threading to {} is not converted (auto_mail = ignore)", t.number());
                self.finish(Action::Ignore, Some(reason));
            }
            None if setting == AutoMailAction::Ticket => {
                self.queue_override = i.snapshot.auto_mail_queue_id;
                self.remarks.push(format!("auto-generated mail ({why}): not answered"));
                self.new_ticket(None);
            }
            None => {
                let reason = format!("auto-generated mail ({why}) that belongs to no ticket is not converted");
                self.trace(format!("auto_mail = {} → ignored", if setting == AutoMailAction::Note { "note" } else { "ignore" }));
                self.finish(Action::Ignore, Some(reason));
            }
        }
    }

    /// The mailbox address is in Cc but not in To.
    fn only_in_cc(&self) -> bool {
        let addr = self.i.mailbox.address.to_ascii_lowercase();
        let here = |list: &[String]| list.iter().any(|a| super::snapshot::normalise_recipient(a) == addr);
        here(&self.i.analysis.cc) && !here(&self.i.analysis.to)
    }

    /// The existing object the message belongs to: a number in the subject first, then threading.
    fn target(&mut self) -> Option<Target> {
        let f = self.i.facts;
        for (number, found) in &f.numbered {
            match found {
                Some(t) => {
                    self.trace(format!("subject names {} {number}: it exists", t.noun()));
                    return Some(t.clone());
                }
                None => self.trace(format!("subject names {number}: no such object")),
            }
        }
        let unknown: Vec<&str> = f.numbered.iter().filter(|(_, t)| t.is_none()).map(|(n, _)| n.as_str()).collect();
        if let Some((id, t)) = &f.referenced {
            self.trace(format!("In-Reply-To/References <{id}> belongs to ticket {}", t.number));
            return Some(Target::Ticket(t.clone()));
        }
        if !self.i.keys.referenced_ids.is_empty() {
            self.trace("no In-Reply-To/References id belongs to a ticket");
        }
        if !unknown.is_empty() {
            let kinds: Vec<&str> = unknown
                .iter()
                .map(|n| match NumberKind::of(n) {
                    Some(NumberKind::Ticket) => "ticket",
                    Some(NumberKind::Project) => "project",
                    _ => "task",
                })
                .collect();
            self.unknown_number = Some(format!(
                "{} number {} in the subject matches no {}; a new ticket was made",
                kinds[0],
                unknown.join(", "),
                kinds[0]
            ));
        }
        None
    }

    /// Sender attribution, in Autotask's order; the forward marker and structured alerts may
    /// name another person.
    fn attribute(&mut self, target: Option<&Target>) {
        let i = self.i;
        let f = i.facts;
        let a = &mut self.plan.attribution;
        a.kind = SenderKind::Unknown;
        a.company = None;
        a.contact = None;
        a.resource = None;
        // A staff address that is not believed (see `staff`) is attributed like anyone else.
        let resource = f.resource.as_ref().filter(|_| self.staff);
        if let Some(r) = resource {
            a.kind = SenderKind::Resource;
            a.resource = Some(r.clone());
            a.company = target.and_then(|t| t.company().cloned()).or_else(|| i.mailbox.fallback_company.clone());
        } else if let Some(c) = &f.contact {
            a.kind = SenderKind::Contact;
            a.contact = Some(c.clone());
            a.company = Some(c.company.clone());
        } else if let Some(t) = target {
            a.kind = SenderKind::Unknown;
            a.company = t.company().cloned();
        } else if let [one] = f.domain_companies.as_slice() {
            a.kind = SenderKind::CompanyDomain;
            a.company = Some(one.clone());
        } else if let Some(fb) = &i.mailbox.fallback_company {
            if f.domain_companies.len() > 1 {
                self.plan.trace.push(format!("sender domain matches {} companies: not used", f.domain_companies.len()));
            }
            a.kind = SenderKind::Fallback;
            a.company = Some(fb.clone());
        } else {
            a.kind = SenderKind::Unknown;
        }
        let how = match a.kind {
            SenderKind::Resource => "an active resource".to_string(),
            SenderKind::Contact => format!("contact of {}", a.company.as_ref().map_or("?", |c| c.name.as_str())),
            SenderKind::CompanyDomain => format!("unknown, domain of {}", a.company.as_ref().map_or("?", |c| c.name.as_str())),
            SenderKind::Fallback => format!("unknown, mailbox fallback company {}", a.company.as_ref().map_or("?", |c| c.name.as_str())),
            SenderKind::Unknown => "unknown".to_string(),
        };
        let who = a.address.clone().unwrap_or_else(|| "(no address)".into());
        self.plan.trace.push(format!("sender {who}: {how}"));
        if let Some(r) = &i.analysis.resent_from {
            self.plan.trace.push(format!("redirected by {r} (Resent-From); attributed to the author in From"));
        }
    }

    /// A structured alert or a parsing rule names the company (and maybe the contact).
    fn apply_named(&mut self) {
        let f = self.i.facts;
        if let Some(c) = &f.named_company {
            self.trace(format!("company {} named by a structured alert or parsing rule", c.name));
            let a = &mut self.plan.attribution;
            if a.kind != SenderKind::Resource && a.kind != SenderKind::Contact {
                a.kind = SenderKind::CompanyDomain;
            }
            a.company = Some(c.clone());
            // A contact belongs to the ticket only if it belongs to the ticket's company.
            if a.contact.as_ref().is_some_and(|x| x.company.id != c.id) {
                a.contact = None;
                if a.kind == SenderKind::Contact {
                    a.kind = SenderKind::CompanyDomain;
                }
            }
            if let Some(contact) = &f.named_contact {
                if contact.company.id == c.id {
                    a.contact = Some(contact.clone());
                }
            }
        } else if let Some(name) = &self.i.keys.named_company {
            self.remarks.push(format!("company {name:?} named by the message is not an active company"));
        }
    }

    /// The staff forward marker: the ticket belongs to the original sender.
    fn apply_forward(&mut self) -> bool {
        let i = self.i;
        let (Some(fwd), Some(_)) = (&i.analysis.forward, &i.facts.resource) else {
            return false;
        };
        if !self.staff {
            self.trace("forward marker from a staff address that nothing authenticates: not believed");
            return false;
        }
        let a = &mut self.plan.attribution;
        a.address = Some(fwd.original.email.clone());
        a.resource = None;
        if let Some(c) = &i.facts.forwarded_contact {
            a.kind = SenderKind::Contact;
            a.contact = Some(c.clone());
            a.company = Some(c.company.clone());
        } else if let [one] = i.facts.forwarded_domain_companies.as_slice() {
            a.kind = SenderKind::CompanyDomain;
            a.company = Some(one.clone());
        } else {
            a.kind = SenderKind::Fallback;
            a.company = i.mailbox.fallback_company.clone();
        }
        let line = format!("forwarded by staff with the marker: attributed to the original sender {}", fwd.original.email);
        self.trace(line);
        true
    }

    /// A message for an existing ticket, project or task.
    fn to_existing(&mut self, target: Target) {
        let i = self.i;
        let s = &i.snapshot.settings;
        let resource = i.facts.resource.clone();

        // Commands in the first line (time entries) — staff only, and only when authenticated.
        if let Some(result) = &i.analysis.indicators {
            match result {
                Err(e) => {
                    if resource.is_some() && i.analysis.trust.is_ok() {
                        let reason = format!("the first line cannot be used: {e}");
                        self.reject(Failure::BadCommand, reason);
                        return;
                    }
                    self.trace(format!("first line looks like commands but cannot be used ({e}); kept as text"));
                }
                Ok(found) => {
                    let why_not = match (&resource, &i.analysis.trust) {
                        (None, _) => Some("the sender is not a resource".to_string()),
                        (Some(_), Err(u)) => Some(format!("the sender is not authenticated: {u}")),
                        (Some(_), Ok(_)) => None,
                    };
                    match why_not {
                        Some(why) => {
                            self.trace(format!("indicators {:?} not carried out: {why}", found.line));
                            self.remarks.push(format!("the commands in the first line were kept as text: {why}"));
                        }
                        None => {
                            if let Ok(reason) = &i.analysis.trust {
                                self.trace(format!("indicators {:?} from a resource, authenticated ({reason})", found.line));
                            }
                            self.time_entry(&target, found);
                            return;
                        }
                    }
                }
            }
        }

        // Cross-company guard: a number from someone who is neither staff nor of that company.
        // Once the installation can tell authenticated mail (trusted verifiers or networks are
        // set), a staff address without authentication is not believed to be staff here: a
        // forged From must not put notes under a colleague's name on any customer's ticket.
        let staff = self.staff;
        if resource.is_some() && !staff {
            self.trace("sender is a resource address, but the message is not authenticated: treated as an outsider");
        }
        let mut unverified = false;
        if !staff {
            let contact_company = self.plan.attribution.contact.as_ref().map(|c| c.company.id);
            let target_company = target.company().map(|c| c.id);
            let verified = match (target_company, contact_company) {
                (Some(t), Some(c)) => t == c,
                (None, _) => self.plan.attribution.contact.is_some(),
                (Some(_), None) => false,
            };
            // A reply that threads by References answers our own mail: the thread vouches for it.
            let threaded = i.facts.referenced.as_ref().is_some_and(|(_, t)| t.number == target.number());
            if !verified && !threaded {
                self.trace(format!("cross-company guard: sender is not staff and not a contact of the {}'s company", target.noun()));
                match s.cross_company {
                    CrossCompany::UnverifiedNote => {
                        unverified = true;
                        self.remarks.push("sender is not a contact of the object's company: note marked unverified (internal)".into());
                    }
                    CrossCompany::NewTicket => {
                        self.remarks.push(format!("{} names {} but is not one of its company's contacts; a new ticket was made", self.plan.attribution.address.clone().unwrap_or_default(), target.number()));
                        self.attribute(None);
                        self.new_ticket(None);
                        return;
                    }
                    CrossCompany::Reject => {
                        let reason = format!(
                            "{} is not a contact of the company of {}; only its contacts and staff may write to it",
                            self.plan.attribution.address.clone().unwrap_or_default(),
                            target.number()
                        );
                        self.reject(Failure::CrossCompany, reason);
                        return;
                    }
                }
            }
        }

        let (allowed, noun) = match &target {
            Target::Ticket(_) => (i.mailbox.allowed.ticket_notes, "ticket notes"),
            Target::Project(_) => (i.mailbox.allowed.project_notes, "project notes"),
            Target::Task(_) => (i.mailbox.allowed.task_notes, "task notes"),
        };
        if !allowed {
            let reason = format!("mailbox {} does not accept {noun} (the subject names {})", i.mailbox.address, target.number());
            self.reject(Failure::NotAllowed, reason);
            return;
        }

        // Replies to completed tickets.
        let mut set_status = None;
        if let Target::Ticket(t) = &target {
            if t.complete && unverified {
                self.trace(format!("ticket {} is complete; an unverified note does not reopen it", t.number));
            } else if t.complete {
                match i.mailbox.completed_ticket {
                    CompletedTicket::Reopen => {
                        set_status = Some(i.mailbox.reopen_status_id);
                        let name = i.snapshot.refs.status_name(i.mailbox.reopen_status_id).unwrap_or("?").to_string();
                        self.trace(format!("ticket {} is complete: reopened to {name}", t.number));
                        self.remarks.push(format!("ticket {} was complete and is reopened ({name})", t.number));
                    }
                    CompletedTicket::Note => self.trace(format!("ticket {} is complete: note only", t.number)),
                    CompletedTicket::New => {
                        self.trace(format!("ticket {} is complete: a new ticket linked to it", t.number));
                        self.remarks.push(format!("ticket {} is complete; a new ticket linked to it was made", t.number));
                        self.new_ticket(Some((t.id, "follow_up")));
                        return;
                    }
                }
            }
        }
        self.note(target, unverified, set_status, None);
    }

    /// A note on an existing object.
    fn note(&mut self, target: Target, unverified: bool, set_status: Option<i64>, body: Option<String>) {
        let i = self.i;
        let text = body.unwrap_or_else(|| i.analysis.text.clone());
        let text = if i.mailbox.strip_quotes {
            let st = quotes::strip_quoted(&text);
            if st.removed {
                self.trace("quoted history below the reply cut from the note text (kept in HTML and the raw message)");
            }
            st.text
        } else {
            text
        };
        let content = self.content();
        let a = &self.plan.attribution;
        let note = NewNote {
            target: match target {
                Target::Ticket(t) => NoteTarget::Ticket(t),
                Target::Project(p) => NoteTarget::Project(p),
                Target::Task(t) => NoteTarget::Task(t),
            },
            title: title_of(&i.inbound.subject),
            body: text,
            body_html: content.html.clone(),
            author_contact_id: a.contact.as_ref().map(|c| c.id),
            author_resource_id: a.resource.as_ref().map(|r| r.id),
            author_address: a.address.clone().unwrap_or_default(),
            visibility: if unverified || self.internal_only { Visibility::Internal } else { i.mailbox.note_visibility },
            unverified,
            mailbox_id: i.mailbox.id,
            attachments: content.attachments,
            set_status,
        };
        self.trace(format!("→ note on {}", target_number(&note.target)));
        self.finish(Action::AddNote(note), None);
    }

    /// Files and HTML within the mailbox's limits; files left out become a system note.
    fn content(&mut self) -> content::Content {
        let m = self.i.mailbox;
        let c = content::select(
            self.i.inbound,
            Limits { max_file: m.max_attachment_bytes, max_total: m.max_attachments_bytes, inline_max: m.inline_image_bytes },
        );
        for d in &c.dropped {
            self.trace(d.clone());
            self.plan.system_notes.push(d.clone());
        }
        if c.left_out > 0 {
            self.remarks.push(format!("{} attachment(s) left out (see the note on the object)", c.left_out));
        }
        c
    }

    /// A time entry from `#T=` (with `#R=` role and `#S=` status).
    fn time_entry(&mut self, target: &Target, found: &indicators::Found) {
        let i = self.i;
        let (allowed, noun, time_target) = match target {
            Target::Ticket(t) => (i.mailbox.allowed.ticket_time, "ticket time entries", TimeTarget::Ticket(t.clone())),
            Target::Task(t) => (i.mailbox.allowed.task_time, "task time entries", TimeTarget::Task(t.clone())),
            Target::Project(p) => {
                let reason = format!("time cannot be entered on a project ({}); name one of its tasks", p.number);
                self.reject(Failure::BadCommand, reason);
                return;
            }
        };
        if !allowed {
            let reason = format!("mailbox {} does not accept {noun}", i.mailbox.address);
            self.reject(Failure::NotAllowed, reason);
            return;
        }
        let refs = &i.snapshot.refs;
        let ind = &found.indicators;
        let Some(time) = ind.time else {
            return;
        };
        let role_id = match &ind.role {
            Some(name) => match find_id(&refs.roles, name) {
                Some(id) => id,
                None => {
                    let reason = format!("unknown role {name:?} in #R= (valid: {})", names(&refs.roles));
                    self.reject(Failure::BadCommand, reason);
                    return;
                }
            },
            None => i.mailbox.role_id,
        };
        let set_status = match &ind.status {
            Some(name) => match refs.status_id(name) {
                Some(id) => Some((id, refs.status_name(id).unwrap_or(name).to_string())),
                None => {
                    let reason = format!("unknown status {name:?} in #S= (valid: {})", refs.status_names());
                    self.reject(Failure::BadCommand, reason);
                    return;
                }
            },
            None => None,
        };
        let local = i.snapshot.settings.time_zone.local(i.envelope.received_at);
        let (start, end) = match time {
            indicators::TimeSpec::Range { start, end } => (
                Some(format!("{:02}:{:02}", start.0, start.1)),
                Some(format!("{:02}:{:02}", end.0, end.1)),
            ),
            indicators::TimeSpec::Duration { .. } => (None, None),
        };
        let summary = found.rest.trim().to_string();
        let summary = if i.mailbox.strip_quotes { quotes::strip_quoted(&summary).text } else { summary };
        let content = self.content();
        let entry = NewTimeEntry {
            target: time_target,
            resource_id: i.facts.resource.as_ref().map(|r| r.id).unwrap_or_default(),
            role_id,
            role: refs.role_name(role_id).unwrap_or("?").to_string(),
            work_type_id: i.mailbox.work_type_id,
            work_date: local.format("%Y-%m-%d").to_string(),
            start,
            end,
            minutes: time.minutes(),
            summary,
            mailbox_id: i.mailbox.id,
            set_status,
            attachments: content.attachments,
        };
        self.trace(format!(
            "→ time entry of {} min ({}) on {}{}",
            entry.minutes,
            entry.role,
            target.number(),
            entry.set_status.as_ref().map(|(_, n)| format!(", status {n}")).unwrap_or_default()
        ));
        self.finish(Action::AddTimeEntry(entry), None);
    }

    /// A new ticket (or, by duplicate handling, a note on a recent one).
    fn new_ticket(&mut self, link: Option<(i64, &'static str)>) {
        let i = self.i;
        let m = i.mailbox;
        let forwarded = self.apply_forward();
        self.apply_named();

        // Unknown senders: the mailbox's policy (a staff forward vouches for its sender).
        let a = &self.plan.attribution;
        if matches!(a.kind, SenderKind::Fallback | SenderKind::Unknown) && !forwarded {
            if m.unknown_sender == UnknownSender::Reject {
                let reason = format!(
                    "sender {} is not a known contact or resource, and mailbox {} does not take mail from unknown senders",
                    a.address.as_deref().unwrap_or("(no address)"),
                    m.address
                );
                self.reject(Failure::UnknownSender, reason);
                return;
            }
            if a.company.is_none() {
                self.remarks.push(format!("sender is unknown and mailbox {} has no fallback company; the ticket has no company", m.address));
            }
        }

        if !m.allowed.tickets {
            let reason = format!("mailbox {} does not create tickets (and the message names no existing ticket)", m.address);
            self.reject(Failure::NotAllowed, reason);
            return;
        }

        // Duplicate handling.
        let mut link = link;
        if link.is_none() {
            if let Some((dup, criterion)) = self.duplicate() {
                let s = &i.snapshot.settings;
                let action = match s.duplicate_action {
                    DuplicateAction::Note if !m.allowed.ticket_notes => {
                        self.trace("mailbox takes no ticket notes: the duplicate becomes a linked ticket");
                        DuplicateAction::Link
                    }
                    other => other,
                };
                match action {
                    DuplicateAction::Note => {
                        self.trace(format!("duplicate of open ticket {} ({criterion}): appended as a note", dup.number));
                        self.remarks.push(format!("duplicate of ticket {} ({criterion}); added as a note", dup.number));
                        self.note(Target::Ticket(dup), false, None, None);
                        return;
                    }
                    DuplicateAction::Discard => {
                        let reason = format!("duplicate of ticket {} ({criterion}); discarded", dup.number);
                        self.trace(reason.clone());
                        self.finish(Action::Discard, Some(reason));
                        return;
                    }
                    DuplicateAction::Link => {
                        self.trace(format!("duplicate of ticket {} ({criterion}): new ticket linked to it", dup.number));
                        self.remarks.push(format!("duplicate of ticket {} ({criterion}); linked", dup.number));
                        link = Some((dup.id, "duplicate"));
                    }
                }
            }
        }

        // A contact for an unknown sender, under the company found for them.
        let a = self.plan.attribution.clone();
        let mut contact = a.contact.as_ref().map(|c| ContactChoice::Existing(c.id));
        // A staff address never becomes a customer contact, believed or not (the original
        // sender of a staff forward is no staff address).
        let staff_address = !forwarded && i.facts.resource.is_some();
        if contact.is_none() && !staff_address && m.create_contacts {
            if let (Some(company), Some(addr)) = (&a.company, &a.address) {
                let name = if forwarded {
                    i.analysis.forward.as_ref().and_then(|f| f.original.name.clone())
                } else {
                    i.inbound.author().and_then(|x| x.name.clone())
                };
                let nc = NewContact { company_id: company.id, email: addr.to_ascii_lowercase(), name: name.unwrap_or_default() };
                self.trace(format!("unknown sender {addr} becomes a contact of {}", company.name));
                self.remarks.push(format!("{addr} was added as a contact of {}", company.name));
                self.plan.attribution.new_contact = Some(nc.clone());
                contact = Some(ContactChoice::Create(nc));
            }
        }

        // CC'd addresses as additional contacts.
        let mut additional = Vec::new();
        if m.cc_contacts {
            let ticket_company = self.plan.attribution.company.as_ref().map(|c| c.id);
            for (addr, c) in &i.facts.cc_contacts {
                // Additional contacts see the ticket: only contacts of its own company.
                if Some(c.company.id) != ticket_company {
                    self.trace(format!("Cc {addr}: contact of {}, another company → not added", c.company.name));
                    continue;
                }
                self.trace(format!("Cc {addr}: contact of {} → additional contact", c.company.name));
                additional.push(ContactChoice::Existing(c.id));
            }
            if m.create_contacts {
                if let Some(company) = self.plan.attribution.company.clone() {
                    for addr in &i.keys.cc {
                        if i.facts.cc_contacts.iter().any(|(x, _)| x == addr) || i.facts.cc_staff.iter().any(|x| x == addr) {
                            continue;
                        }
                        // An unknown CC belongs to the company of its own domain, else to the
                        // mailbox's fallback company; only a contact of the ticket's company is added.
                        let own = i
                            .facts
                            .cc_domain_companies
                            .iter()
                            .find(|(x, _)| x == addr)
                            .map(|(_, c)| c.clone())
                            .or_else(|| m.fallback_company.clone());
                        match own {
                            Some(c) if c.id == company.id => {
                                self.trace(format!("Cc {addr}: unknown → new contact of {}", company.name));
                                additional.push(ContactChoice::Create(NewContact { company_id: company.id, email: addr.clone(), name: String::new() }));
                            }
                            Some(c) => self.trace(format!("Cc {addr}: belongs to {}, not the ticket's company → not added", c.name)),
                            None => self.trace(format!("Cc {addr}: unknown, no company → not added")),
                        }
                    }
                }
            }
        }

        let r = i.rules;
        let alert = i.analysis.alert.as_ref();
        let refs = &i.snapshot.refs;
        let mut queue_id = r.queue_id.or(self.queue_override).unwrap_or(m.queue_id);
        let mut priority_id = r.priority_id.unwrap_or(m.priority_id);
        let mut issue_type_id = r.issue_type_id.or(m.issue_type_id);
        let mut sub_issue_type_id = m.sub_issue_type_id;
        // The issue type the message itself names (alert or rule) narrows a sub-issue lookup;
        // the mailbox's default does not.
        let mut named_issue_type = r.issue_type_id;
        if let Some(al) = alert {
            if let Some(q) = al.queue.as_deref().and_then(|q| find_id(&refs.queues, q)) {
                queue_id = q;
            }
            if let Some(p) = al.priority.as_deref().and_then(|p| find_id(&refs.priorities, p)) {
                priority_id = p;
            }
            if let Some(it) = al.issue.as_deref().and_then(|x| find_id(&refs.issue_types, x)) {
                issue_type_id = Some(it);
                named_issue_type = Some(it);
            }
            if let Some(name) = al.sub_issue.as_deref() {
                let hit = refs
                    .sub_issue_types
                    .iter()
                    .find(|(_, it, n)| n.eq_ignore_ascii_case(name.trim()) && named_issue_type.is_none_or(|x| x == *it));
                match hit {
                    Some((id, it, _)) => {
                        sub_issue_type_id = Some(*id);
                        issue_type_id = Some(*it);
                    }
                    None => self.remarks.push(format!("sub-issue {name:?} named by the alert does not exist")),
                }
            }
        }
        let status_id = r.status_id.unwrap_or(m.status_id);

        let title = i.analysis.title.clone();
        let (description, found) = match &i.analysis.forward {
            Some(f) if forwarded => (f.text.clone(), None),
            _ => (i.analysis.text.clone(), Some(i.analysis.text_tags.as_slice())),
        };
        let tags = ticket_tags(&title, &description, found, m, r, i.snapshot);
        let content = self.content();
        let a = &self.plan.attribution;
        let ticket = NewTicket {
            title,
            description,
            description_html: content.html.clone(),
            status_id,
            priority_id,
            queue_id,
            source_id: m.source_id,
            issue_type_id,
            sub_issue_type_id,
            company_id: a.company.as_ref().map(|c| c.id),
            contact,
            mailbox_id: m.id,
            tags,
            attachments: content.attachments,
            additional_contacts: additional,
            link,
            sender_address: a.address.as_deref().map(str::to_ascii_lowercase),
            subject_key: i.keys.subject_key.clone(),
            alert_id: i.keys.alert_id.clone(),
            external_id: i.keys.external_id.clone(),
        };
        self.trace(format!(
            "→ new ticket for {} in queue {}",
            a.company.as_ref().map_or("no company", |c| c.name.as_str()),
            refs.queues.iter().find(|(q, _)| *q == queue_id).map_or("?", |(_, n)| n.as_str())
        ));
        if let Some(remark) = self.unknown_number.take() {
            self.remarks.insert(0, remark);
        }
        self.finish(Action::CreateTicket(ticket), None);
    }

    /// A recent open ticket this message duplicates, by the configured criteria.
    fn duplicate(&mut self) -> Option<(TicketRef, &'static str)> {
        let i = self.i;
        let company = self.plan.attribution.company.as_ref().map(|c: &CompanyRef| c.id);
        for d in &i.facts.duplicates {
            // Alert and external ids count only within the same company.
            if d.criterion != "sender_subject" && d.ticket.company.as_ref().map(|c| c.id) != company {
                self.trace(format!("ticket {} has the same {} but another company: not a duplicate", d.ticket.number, d.criterion));
                continue;
            }
            return Some((d.ticket.clone(), d.criterion));
        }
        None
    }
}

fn target_number(t: &NoteTarget) -> &str {
    match t {
        NoteTarget::Ticket(t) => &t.number,
        NoteTarget::Project(p) => &p.number,
        NoteTarget::Task(t) => &t.number,
    }
}

/// Required tags of the mailbox first, then tags of parsing rules, then tags found in title and
/// description (`found`, when the analysis found them already), up to the limit.
fn ticket_tags(
    title: &str,
    description: &str,
    found: Option<&[crate::model::TagRef]>,
    mailbox: &Mailbox,
    rules: &RuleResult,
    snapshot: &Snapshot,
) -> Vec<(crate::model::TagRef, &'static str)> {
    let limit = snapshot.settings.max_tags;
    let mut tags: Vec<(crate::model::TagRef, &'static str)> = Vec::new();
    let push = |t: crate::model::TagRef, origin: &'static str, tags: &mut Vec<(crate::model::TagRef, &'static str)>| {
        if tags.len() < limit && !tags.iter().any(|(x, _)| x.id == t.id) {
            tags.push((t, origin));
        }
    };
    for t in &mailbox.required_tags {
        push(t.clone(), "mailbox", &mut tags);
    }
    for label in &rules.tags {
        if let Some(t) = snapshot.tags.by_label(label) {
            push(t, "rule", &mut tags);
        }
    }
    if tags.len() < limit {
        let found = match found {
            Some(f) => f.to_vec(),
            None => snapshot.tags.find(&[title, description], limit),
        };
        for t in found {
            push(t, "auto", &mut tags);
        }
    }
    tags
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
