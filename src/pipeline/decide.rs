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

/// Title of a ticket made from a message: the subject, or `New Ticket - <date>` without one.
pub fn ticket_title(subject: &str, received_at: DateTime<Utc>, snapshot: &Snapshot) -> String {
    let t = subject.trim();
    if t.is_empty() {
        let local = snapshot.settings.time_zone.local(received_at);
        format!("New Ticket - {}", local.format("%Y-%m-%d %H:%M"))
    } else {
        t.to_string()
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

    if inbound
        .header("sensitivity")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("private"))
    {
        plan.reason = Some("marked private (Sensitivity: Private); private mail is never converted".into());
        plan.action = Action::Ignore;
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
    } else if mailbox.unknown_sender == UnknownSender::Reject {
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
            title: inbound.subject.trim().to_string(),
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
