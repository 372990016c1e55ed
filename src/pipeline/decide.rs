//! The decision: (message, store facts, mailbox, configuration) -> Plan. Pure and synchronous;
//! every rule about which object a message becomes and whom it is attributed to lives here.

use chrono::{DateTime, Utc};

use super::numbers;
use super::snapshot::Snapshot;
use crate::model::{
    Action, Attribution, Envelope, Facts, Inbound, LookupKeys, Mailbox, NewAttachment, NewTicket,
    NewTicketNote, Plan, SenderKind, TicketRef, UnknownSender,
};

/// The lookups a message needs, derived from the message alone.
pub fn keys(inbound: &Inbound, envelope: &Envelope, snapshot: &Snapshot) -> LookupKeys {
    let sender = sender_address(inbound, envelope);
    let sender_domain = sender.as_deref().and_then(crate::model::domain_of);
    let company_domain = sender_domain.clone().filter(|d| !snapshot.is_public_domain(d));
    let mut referenced_ids: Vec<String> = inbound.in_reply_to.clone();
    for id in inbound.references.iter().rev() {
        if !referenced_ids.contains(id) {
            referenced_ids.push(id.clone());
        }
    }
    referenced_ids.truncate(50);
    LookupKeys {
        dedup_key: inbound.dedup_key(),
        sender_domain,
        company_domain,
        sender,
        ticket_numbers: numbers::ticket_numbers(&inbound.subject),
        referenced_ids,
    }
}

/// The address a message is attributed to: From, Sender, Reply-To, else the envelope sender.
pub fn sender_address(inbound: &Inbound, envelope: &Envelope) -> Option<String> {
    inbound
        .author()
        .map(|a| a.email.clone())
        .or_else(|| (!envelope.sender.is_empty()).then(|| envelope.sender.clone()))
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

/// Decide what one message becomes for one mailbox.
pub fn decide(
    inbound: &Inbound,
    envelope: &Envelope,
    rcpt: &str,
    mailbox: &Mailbox,
    keys: &LookupKeys,
    facts: &Facts,
    snapshot: &Snapshot,
) -> Plan {
    let mut plan = Plan {
        action: crate::model::Action::Ignore,
        mailbox_id: mailbox.id,
        mailbox: mailbox.address.clone(),
        rcpt: rcpt.to_string(),
        attribution: Attribution {
            address: keys.sender.clone(),
            kind: SenderKind::Unknown,
            company: None,
            contact: None,
            resource: None,
        },
        reason: None,
        message_id: inbound.message_id.clone(),
        dedup_key: keys.dedup_key.clone(),
    };

    if let Some(prior) = &facts.prior {
        plan.reason = Some(format!(
            "already processed for {} at {} ({})",
            mailbox.address,
            prior.received_at.format("%Y-%m-%d %H:%M:%S UTC"),
            prior.outcome
        ));
        plan.action = Action::Duplicate(prior.clone());
        return plan;
    }

    // Which existing ticket the message belongs to: a number in the subject first, then threading.
    let mut remarks: Vec<String> = Vec::new();
    let by_number: Option<&TicketRef> = facts.numbered.iter().find_map(|(_, t)| t.as_ref());
    let unknown_numbers: Vec<&str> = facts
        .numbered
        .iter()
        .filter(|(_, t)| t.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    let target: Option<&TicketRef> = by_number.or(facts.referenced.as_ref().map(|(_, t)| t));
    if target.is_none() && !unknown_numbers.is_empty() {
        remarks.push(format!(
            "ticket number {} in the subject matches no ticket; a new ticket was made",
            unknown_numbers.join(", ")
        ));
    }

    let private = inbound
        .header("sensitivity")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("private"));

    // Sender attribution, in Autotask's order.
    let a = &mut plan.attribution;
    if let Some(r) = &facts.resource {
        a.kind = SenderKind::Resource;
        a.resource = Some(r.clone());
        a.company = match target {
            Some(t) => t.company.clone(),
            None => mailbox.fallback_company.clone(),
        };
    } else if let Some(c) = &facts.contact {
        a.kind = SenderKind::Contact;
        a.contact = Some(c.clone());
        a.company = Some(c.company.clone());
    } else if let Some(t) = target {
        a.kind = SenderKind::Unknown;
        a.company = t.company.clone();
    } else if let Some(company) = domain_company(keys, facts) {
        a.kind = SenderKind::CompanyDomain;
        a.company = Some(company);
    } else if mailbox.unknown_sender == UnknownSender::Reject && !private {
        plan.reason = Some(format!(
            "sender {} is not a known contact or resource, and mailbox {} does not take mail from unknown senders",
            keys.sender.as_deref().unwrap_or("(no address)"),
            mailbox.address
        ));
        plan.action = Action::Reject;
        return plan;
    } else if let Some(fallback) = &mailbox.fallback_company {
        a.kind = SenderKind::Fallback;
        a.company = Some(fallback.clone());
    } else {
        a.kind = SenderKind::Unknown;
        remarks.push(format!(
            "sender is unknown and mailbox {} has no fallback company; the ticket has no company",
            mailbox.address
        ));
    }

    if private {
        plan.reason = Some("marked private (Sensitivity: Private); private mail is never converted".into());
        plan.action = Action::Ignore;
        return plan;
    }

    let attachments: Vec<NewAttachment> = inbound
        .attachments
        .iter()
        .map(|att| NewAttachment {
            filename: att.filename.clone(),
            content_type: att.content_type.clone(),
            data: att.data.clone(),
        })
        .collect();

    plan.action = match target {
        Some(ticket) => Action::AddTicketNote(NewTicketNote {
            ticket: ticket.clone(),
            title: title_of(&inbound.subject),
            body: inbound.text.clone(),
            body_html: inbound.html.clone(),
            author_contact_id: plan.attribution.contact.as_ref().map(|c| c.id),
            author_resource_id: plan.attribution.resource.as_ref().map(|r| r.id),
            author_address: keys.sender.clone().unwrap_or_default(),
            visibility: mailbox.note_visibility,
            mailbox_id: mailbox.id,
            attachments,
        }),
        None => {
            let title = ticket_title(&inbound.subject, envelope.received_at, snapshot);
            let tags = ticket_tags(&title, &inbound.text, mailbox, snapshot);
            Action::CreateTicket(NewTicket {
                title,
                description: inbound.text.clone(),
                description_html: inbound.html.clone(),
                status_id: mailbox.status_id,
                priority_id: mailbox.priority_id,
                queue_id: mailbox.queue_id,
                source_id: mailbox.source_id,
                issue_type_id: mailbox.issue_type_id,
                sub_issue_type_id: mailbox.sub_issue_type_id,
                company_id: plan.attribution.company.as_ref().map(|c| c.id),
                contact_id: plan.attribution.contact.as_ref().map(|c| c.id),
                mailbox_id: mailbox.id,
                tags,
                attachments,
            })
        }
    };
    if !remarks.is_empty() {
        plan.reason = Some(remarks.join("; "));
    }
    plan
}

/// The one active company whose web domain is the sender's domain; never for public domains.
fn domain_company(keys: &LookupKeys, facts: &Facts) -> Option<crate::model::CompanyRef> {
    keys.company_domain.as_deref()?;
    match facts.domain_companies.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Required tags of the mailbox first, then tags found in title and description, up to the limit.
fn ticket_tags(
    title: &str,
    description: &str,
    mailbox: &Mailbox,
    snapshot: &Snapshot,
) -> Vec<(crate::model::TagRef, &'static str)> {
    let limit = snapshot.settings.max_tags;
    let mut tags: Vec<(crate::model::TagRef, &'static str)> = Vec::new();
    for t in &mailbox.required_tags {
        if tags.len() < limit && !tags.iter().any(|(x, _)| x.id == t.id) {
            tags.push((t.clone(), "mailbox"));
        }
    }
    if tags.len() < limit {
        for t in snapshot.tags.find(&[title, description], limit) {
            if tags.len() >= limit {
                break;
            }
            if !tags.iter().any(|(x, _)| x.id == t.id) {
                tags.push((t, "auto"));
            }
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Address, CompanyRef, ContactRef, Prior, ResourceRef, TagRef, Visibility};
    use crate::pipeline::ConfRows;
    use crate::pipeline::tags::TagDef;
    use chrono::TimeZone;

    fn company(id: i64, name: &str) -> CompanyRef {
        CompanyRef { id, name: name.into() }
    }

    fn mailbox(unknown: UnknownSender, fallback: Option<CompanyRef>) -> Mailbox {
        Mailbox {
            id: 7,
            address: "support@msp.example".into(),
            name: "Support".into(),
            queue_id: 1,
            priority_id: 3,
            status_id: 1,
            source_id: 1,
            issue_type_id: None,
            sub_issue_type_id: None,
            note_visibility: Visibility::All,
            fallback_company: fallback,
            unknown_sender: unknown,
            required_tags: vec![TagRef { id: 50, label: "Mailbox Tag".into() }],
            after_conversion: crate::model::AfterConversion::Deliver,
        }
    }

    fn snapshot() -> Snapshot {
        let tag = |id, label: &str, aliases: &[&str]| TagDef {
            tag: TagRef { id, label: label.into() },
            active: true,
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
        };
        Snapshot::build(ConfRows {
            tags: vec![tag(1, "Printer", &["drucker"]), tag(2, "CTI", &[]), tag(50, "Mailbox Tag", &[])],
            public_domains: vec!["gmail.com".into()],
            settings: vec![("time_zone".into(), "UTC".into())],
            ..ConfRows::default()
        })
    }

    fn inbound(from: &str, subject: &str, body: &str) -> Inbound {
        Inbound {
            subject: subject.into(),
            from: Some(Address { name: None, email: from.into() }),
            text: body.into(),
            message_id: Some("m1@x".into()),
            content_hash: "00".into(),
            ..Inbound::default()
        }
    }

    fn env() -> Envelope {
        let mut e = Envelope::new(["support@msp.example"]);
        e.received_at = Utc.with_ymd_and_hms(2026, 11, 27, 8, 5, 0).unwrap();
        e
    }

    fn ticket(id: i64, number: &str, company: Option<CompanyRef>) -> TicketRef {
        TicketRef { id, number: number.into(), title: "old".into(), company, mailbox_id: Some(7), complete: false }
    }

    fn run(inb: &Inbound, mb: &Mailbox, facts: &Facts) -> Plan {
        let snap = snapshot();
        let e = env();
        let k = keys(inb, &e, &snap);
        decide(inb, &e, "support@msp.example", mb, &k, facts, &snap)
    }

    fn contact() -> ContactRef {
        ContactRef { id: 3, name: "Alice".into(), company: company(1, "Example Corp") }
    }

    #[test]
    fn resource_wins_over_contact_and_domain() {
        let facts = Facts {
            resource: Some(ResourceRef { id: 9, name: "Tina".into() }),
            contact: Some(contact()),
            domain_companies: vec![company(1, "Example Corp")],
            ..Facts::default()
        };
        let p = run(&inbound("tina@msp.example", "x", ""), &mailbox(UnknownSender::Reject, None), &facts);
        assert_eq!(p.attribution.kind, SenderKind::Resource);
        assert!(matches!(p.action, Action::CreateTicket(_)));
    }

    #[test]
    fn contact_wins_over_domain_and_sets_company() {
        let facts = Facts {
            contact: Some(contact()),
            domain_companies: vec![company(2, "Other")],
            ..Facts::default()
        };
        let p = run(&inbound("alice@example.com", "x", ""), &mailbox(UnknownSender::Reject, None), &facts);
        assert_eq!(p.attribution.kind, SenderKind::Contact);
        let Action::CreateTicket(t) = p.action else { panic!() };
        assert_eq!((t.company_id, t.contact_id), (Some(1), Some(3)));
    }

    #[test]
    fn number_in_subject_attaches_unknown_sender_before_domain_and_policy() {
        let facts = Facts {
            numbered: vec![("T20261120.0001".into(), Some(ticket(5, "T20261120.0001", Some(company(1, "Example Corp")))))],
            domain_companies: vec![company(2, "Other")],
            ..Facts::default()
        };
        let p = run(&inbound("stranger@other.example", "Re: T20261120.0001", "thanks"), &mailbox(UnknownSender::Reject, None), &facts);
        assert_eq!(p.attribution.kind, SenderKind::Unknown);
        assert_eq!(p.attribution.company, Some(company(1, "Example Corp")));
        let Action::AddTicketNote(n) = p.action else { panic!("{:?}", p.action) };
        assert_eq!((n.ticket.id, n.title.as_str(), n.body.as_str()), (5, "Re: T20261120.0001", "thanks"));
        assert_eq!(n.visibility, Visibility::All);
    }

    #[test]
    fn domain_of_exactly_one_company() {
        let mb = mailbox(UnknownSender::Fallback, Some(company(9, "Fallback")));
        let one = Facts { domain_companies: vec![company(2, "Acme")], ..Facts::default() };
        let p = run(&inbound("new@acme.example", "x", ""), &mb, &one);
        assert_eq!((p.attribution.kind, p.attribution.company.clone()), (SenderKind::CompanyDomain, Some(company(2, "Acme"))));
        let two = Facts { domain_companies: vec![company(2, "A"), company(3, "B")], ..Facts::default() };
        let p = run(&inbound("new@twins.example", "x", ""), &mb, &two);
        assert_eq!((p.attribution.kind, p.attribution.company), (SenderKind::Fallback, Some(company(9, "Fallback"))));
    }

    #[test]
    fn public_domains_never_name_a_company() {
        let snap = snapshot();
        let k = keys(&inbound("someone@GMAIL.com", "x", ""), &env(), &snap);
        assert_eq!(k.sender_domain.as_deref(), Some("gmail.com"));
        assert_eq!(k.company_domain, None);
        // Even if a lookup had found one, the decision does not use it without a company domain.
        let facts = Facts { domain_companies: vec![company(2, "Gmail Users")], ..Facts::default() };
        let mb = mailbox(UnknownSender::Fallback, Some(company(9, "Fallback")));
        let p = decide(&inbound("someone@gmail.com", "x", ""), &env(), "support@msp.example", &mb, &k, &facts, &snap);
        assert_eq!(p.attribution.kind, SenderKind::Fallback);
    }

    #[test]
    fn unknown_sender_policy_reject_gives_a_reason() {
        let p = run(&inbound("x@nowhere.example", "x", ""), &mailbox(UnknownSender::Reject, Some(company(9, "F"))), &Facts::default());
        assert!(matches!(p.action, Action::Reject));
        let r = p.reason.unwrap();
        assert!(r.contains("x@nowhere.example") && r.contains("support@msp.example"), "{r}");
    }

    #[test]
    fn fallback_without_company_still_makes_a_ticket_and_says_so() {
        let p = run(&inbound("x@nowhere.example", "x", ""), &mailbox(UnknownSender::Fallback, None), &Facts::default());
        let Action::CreateTicket(t) = &p.action else { panic!() };
        assert_eq!(t.company_id, None);
        assert!(p.reason.unwrap().contains("no fallback company"));
    }

    #[test]
    fn threading_by_references_when_no_number() {
        let facts = Facts {
            contact: Some(contact()),
            referenced: Some(("orig@x".into(), ticket(4, "T20261120.0004", None))),
            ..Facts::default()
        };
        let p = run(&inbound("alice@example.com", "Re: my printer", "more"), &mailbox(UnknownSender::Reject, None), &facts);
        let Action::AddTicketNote(n) = p.action else { panic!() };
        assert_eq!(n.ticket.number, "T20261120.0004");
        assert_eq!(n.author_contact_id, Some(3));
    }

    #[test]
    fn number_wins_over_references() {
        let facts = Facts {
            numbered: vec![("T20261120.0001".into(), Some(ticket(1, "T20261120.0001", None)))],
            referenced: Some(("orig@x".into(), ticket(4, "T20261120.0004", None))),
            ..Facts::default()
        };
        let p = run(&inbound("a@b.example", "Re: T20261120.0001", ""), &mailbox(UnknownSender::Fallback, None), &facts);
        let Action::AddTicketNote(n) = p.action else { panic!() };
        assert_eq!(n.ticket.id, 1);
    }

    #[test]
    fn unknown_number_makes_a_new_ticket_with_a_reason() {
        let facts = Facts {
            contact: Some(contact()),
            numbered: vec![("T20261120.0099".into(), None)],
            ..Facts::default()
        };
        let p = run(&inbound("alice@example.com", "Re: T20261120.0099", ""), &mailbox(UnknownSender::Reject, None), &facts);
        assert!(matches!(p.action, Action::CreateTicket(_)));
        assert!(p.reason.unwrap().contains("T20261120.0099 in the subject matches no ticket"));
    }

    #[test]
    fn duplicates_write_nothing_and_name_the_first() {
        let prior = Prior { outcome: "created".into(), object: None, reason: None, received_at: env().received_at.naive_utc() };
        let facts = Facts { prior: Some(prior), contact: Some(contact()), ..Facts::default() };
        let p = run(&inbound("alice@example.com", "x", ""), &mailbox(UnknownSender::Reject, None), &facts);
        assert!(matches!(p.action, Action::Duplicate(_)));
        assert!(p.reason.unwrap().contains("already processed"));
    }

    #[test]
    fn private_mail_is_ignored() {
        let mut inb = inbound("alice@example.com", "salary", "secret");
        inb.headers.push(("sensitivity".into(), " private ".into()));
        let p = run(&inb, &mailbox(UnknownSender::Fallback, None), &Facts { contact: Some(contact()), ..Facts::default() });
        assert!(matches!(p.action, Action::Ignore));
        assert_eq!(p.attribution.kind, SenderKind::Contact, "the outcome still says who sent it");
        assert!(p.reason.unwrap().contains("Sensitivity: Private"));
        // Private mail from an unknown sender to a rejecting mailbox is accepted, not bounced.
        let mut inb = inbound("x@nowhere.example", "salary", "secret");
        inb.headers.push(("sensitivity".into(), "Private".into()));
        let p = run(&inb, &mailbox(UnknownSender::Reject, None), &Facts::default());
        assert!(matches!(p.action, Action::Ignore));
        let mut inb = inbound("alice@example.com", "x", "");
        inb.headers.push(("sensitivity".into(), "Company-Confidential".into()));
        let p = run(&inb, &mailbox(UnknownSender::Fallback, None), &Facts { contact: Some(contact()), ..Facts::default() });
        assert!(matches!(p.action, Action::CreateTicket(_)));
    }

    #[test]
    fn long_subjects_are_cut_to_255_characters() {
        let long = "ü".repeat(300);
        let p = run(&inbound("alice@example.com", &long, ""), &mailbox(UnknownSender::Fallback, None), &Facts { contact: Some(contact()), ..Facts::default() });
        let Action::CreateTicket(t) = p.action else { panic!() };
        assert_eq!(t.title.chars().count(), 255);
        assert!(t.title.ends_with('…'));
    }

    #[test]
    fn empty_subject_gets_a_dated_title() {
        let p = run(&inbound("alice@example.com", "   ", ""), &mailbox(UnknownSender::Fallback, None), &Facts { contact: Some(contact()), ..Facts::default() });
        let Action::CreateTicket(t) = p.action else { panic!() };
        assert_eq!(t.title, "New Ticket - 2026-11-27 08:05");
    }

    #[test]
    fn tags_required_first_then_found_whole_words() {
        let p = run(
            &inbound("alice@example.com", "Drucker kaputt", "Please take action: the printer is down"),
            &mailbox(UnknownSender::Fallback, None),
            &Facts { contact: Some(contact()), ..Facts::default() },
        );
        let Action::CreateTicket(t) = p.action else { panic!() };
        let tags: Vec<(&str, &str)> = t.tags.iter().map(|(t, o)| (t.label.as_str(), *o)).collect();
        assert_eq!(tags, vec![("Mailbox Tag", "mailbox"), ("Printer", "auto")]);
    }

    #[test]
    fn sender_falls_back_to_the_envelope() {
        let mut inb = inbound("x@y", "s", "");
        inb.from = None;
        let mut e = env();
        e.sender = "bounce@list.example".into();
        let k = keys(&inb, &e, &snapshot());
        assert_eq!(k.sender.as_deref(), Some("bounce@list.example"));
    }

    #[test]
    fn references_are_looked_up_newest_first_after_in_reply_to() {
        let mut inb = inbound("a@b.example", "s", "");
        inb.in_reply_to = vec!["c@x".into()];
        inb.references = vec!["a@x".into(), "b@x".into(), "c@x".into()];
        let k = keys(&inb, &env(), &snapshot());
        assert_eq!(k.referenced_ids, vec!["c@x", "b@x", "a@x"]);
    }
}
