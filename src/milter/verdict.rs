//! From outcomes (or a failure) to the milter's answer: accept / reject / tempfail / discard /
//! quarantine, the headers to add and the recipients to delete. Pure, so every path is testable.

use std::time::Duration;

use crate::config::{MilterConfig, Policy};
use crate::model::{AfterConversion, Outcome, Verdict};

/// An SMTP error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: &'static str,
    pub ext: &'static str,
    pub text: String,
}

/// The milter's answer to the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Reject(Reply),
    Tempfail(Reply),
    Discard,
    Quarantine(String),
}

impl Answer {
    pub fn name(&self) -> &'static str {
        match self {
            Answer::Accept => "accept",
            Answer::Reject(_) => "reject",
            Answer::Tempfail(_) => "tempfail",
            Answer::Discard => "discard",
            Answer::Quarantine(_) => "quarantine",
        }
    }

    /// The answer as the metrics count it.
    pub fn kind(&self) -> crate::metrics::Answered {
        use crate::metrics::Answered;
        match self {
            Answer::Accept => Answered::Accept,
            Answer::Reject(_) => Answered::Reject,
            Answer::Tempfail(_) => Answered::Tempfail,
            Answer::Discard => Answered::Discard,
            Answer::Quarantine(_) => Answered::Quarantine,
        }
    }
}

/// Everything the end-of-message callback does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EomPlan {
    pub answer: Answer,
    /// Header fields to add, in order.
    pub headers: Vec<(String, String)>,
    /// Recipients to delete (as the MTA gave them).
    pub delete_rcpts: Vec<String>,
}

impl EomPlan {
    fn only(answer: Answer) -> EomPlan {
        EomPlan {
            answer,
            headers: Vec::new(),
            delete_rcpts: Vec::new(),
        }
    }
}

/// The answer policies of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    pub on_database_error: Policy,
    pub on_internal_error: Policy,
    pub on_timeout: Policy,
    pub on_unknown_sender: Policy,
    pub on_too_large: Policy,
}

impl From<&MilterConfig> for Policies {
    fn from(c: &MilterConfig) -> Self {
        Policies {
            on_database_error: c.on_database_error,
            on_internal_error: c.on_internal_error,
            on_timeout: c.on_timeout,
            on_unknown_sender: c.on_unknown_sender,
            on_too_large: c.on_too_large,
        }
    }
}

/// Text safe for an SMTP reply line: no control characters or `%`, at most 400 characters.
pub fn reply_text(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() || c == '%' { ' ' } else { c })
        .collect();
    let cleaned = crate::pipeline::parse::collapse_ws(&cleaned);
    cleaned.chars().take(400).collect()
}

/// The answer a policy gives, with the replies to use for reject and tempfail.
fn by_policy(policy: Policy, reject: Reply, tempfail: Reply, why: &str) -> Answer {
    match policy {
        Policy::Accept => Answer::Accept,
        Policy::Reject => Answer::Reject(reject),
        Policy::Tempfail => Answer::Tempfail(tempfail),
        Policy::Discard => Answer::Discard,
        Policy::Quarantine => Answer::Quarantine(reply_text(why)),
    }
}

/// A byte count for people: "30 MB", "1.5 MB", "20 KB", "900 bytes" (1 MB = 1024 KB).
pub fn human_size(n: u64) -> String {
    const KB: u64 = 1024;
    const MB: u64 = 1024 * 1024;
    let scaled = |unit: u64, name: &str| {
        if n % unit == 0 {
            format!("{} {name}", n / unit)
        } else {
            format!("{:.1} {name}", n as f64 / unit as f64)
        }
    };
    if n >= MB {
        scaled(MB, "MB")
    } else if n >= KB {
        scaled(KB, "KB")
    } else {
        format!("{n} bytes")
    }
}

/// Why the end-of-message work did not produce outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Database(String),
    Internal(String),
    Timeout(Duration),
}

/// The answer to a failure.
pub fn for_failure(f: &Failure, p: &Policies) -> EomPlan {
    let (policy, why, text) = match f {
        Failure::Database(e) => (
            p.on_database_error,
            format!("ticketmilter: database error: {e}"),
            "ticketmilter: the help-desk database is unavailable; try again later".to_string(),
        ),
        Failure::Internal(e) => (
            p.on_internal_error,
            format!("ticketmilter: internal error: {e}"),
            "ticketmilter: internal error; try again later".to_string(),
        ),
        Failure::Timeout(d) => (
            p.on_timeout,
            format!("ticketmilter: conversion took longer than {} s", d.as_secs()),
            "ticketmilter: conversion timed out; try again later".to_string(),
        ),
    };
    EomPlan::only(by_policy(
        policy,
        Reply { code: "550", ext: "5.3.0", text: reply_text(&text.replace("try again later", "message refused")) },
        Reply { code: "451", ext: "4.3.0", text: reply_text(&text) },
        &why,
    ))
}

/// The answer when a message exceeds the size limit.
pub fn for_too_large(limit: u64, p: &Policies) -> Answer {
    let text = format!("ticketmilter: message too large for ticket conversion (limit {})", human_size(limit));
    by_policy(
        p.on_too_large,
        Reply { code: "552", ext: "5.3.4", text: reply_text(&text) },
        Reply { code: "452", ext: "4.3.4", text: reply_text(&text) },
        &text,
    )
}

/// The answer to a processed message. `rcpts` are all recipients as the MTA gave them;
/// `handling` says what each outcome's mailbox does with its copy after conversion.
pub fn for_outcomes(
    outcomes: &[Outcome],
    rcpts: &[String],
    handling: &dyn Fn(&Outcome) -> AfterConversion,
    p: &Policies,
    add_header: bool,
) -> EomPlan {
    let mut plan = EomPlan::only(Answer::Accept);
    let mut rejected: Vec<&Outcome> = Vec::new();
    // Recipients whose copy is not to be delivered, and those that may go only with the rest.
    let mut removed: Vec<&str> = Vec::new();
    let mut discardable: Vec<&str> = Vec::new();
    for o in outcomes {
        match o.outcome {
            Verdict::Created | Verdict::NoteAdded | Verdict::TimeEntryAdded | Verdict::Duplicate => {
                if add_header {
                    let number = o.object.as_ref().and_then(|x| x.ticket_number.as_deref()).unwrap_or("-");
                    plan.headers.push((
                        "X-Ticketmilter".to_string(),
                        format!("{} {} {}", o.mailbox, o.outcome.as_str(), number),
                    ));
                }
                match handling(o) {
                    AfterConversion::Deliver => {}
                    AfterConversion::Remove => removed.push(&o.rcpt),
                    AfterConversion::Discard => discardable.push(&o.rcpt),
                }
            }
            Verdict::Rejected => rejected.push(o),
            // Not converted, and its copy is not to be delivered either.
            Verdict::Discarded => removed.push(&o.rcpt),
            Verdict::Ignored | Verdict::NotOurs => {}
        }
    }

    let same = |a: &str, b: &str| strip(a).eq_ignore_ascii_case(strip(b));
    let all_in = |set: &[&str]| rcpts.iter().all(|r| set.iter().any(|x| same(x, r)));

    if let Some(first) = rejected.first() {
        let reason = first.reason.clone().unwrap_or_else(|| "the message cannot be converted".into());
        let answer = by_policy(
            p.on_unknown_sender,
            Reply { code: "550", ext: "5.7.1", text: reply_text(&reason) },
            Reply { code: "450", ext: "4.7.1", text: reply_text(&reason) },
            &reason,
        );
        let rejected_rcpts: Vec<&str> = rejected.iter().map(|o| o.rcpt.as_str()).collect();
        match answer {
            // Refusing the whole message would also refuse it for the other recipients: then
            // only the refusing mailboxes lose their copy (no backscatter, nobody else harmed).
            Answer::Reject(_) | Answer::Discard if !all_in(&rejected_rcpts) => removed.extend(rejected_rcpts),
            Answer::Accept => {}
            other => return EomPlan::only(other),
        }
    }

    let mut gone: Vec<&str> = removed.clone();
    gone.extend(discardable.iter().copied());
    if !rcpts.is_empty() && all_in(&gone) {
        // No recipient is left to deliver to.
        plan.answer = Answer::Discard;
        return plan;
    }
    for r in rcpts {
        if removed.iter().any(|x| same(x, r)) && !plan.delete_rcpts.contains(r) {
            plan.delete_rcpts.push(r.clone());
        }
    }
    plan
}

fn strip(r: &str) -> &str {
    r.trim().trim_start_matches('<').trim_end_matches('>')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ObjectKind, ObjectRef};

    fn p() -> Policies {
        Policies::from(&MilterConfig::default())
    }

    fn out(mailbox: &str, rcpt: &str, v: Verdict) -> Outcome {
        Outcome {
            outcome: v,
            mailbox: mailbox.into(),
            rcpt: rcpt.into(),
            object: matches!(v, Verdict::Created | Verdict::NoteAdded | Verdict::Duplicate).then(|| ObjectRef {
                kind: ObjectKind::Ticket,
                id: 1,
                number: Some("T20261127.0001".into()),
                ticket_number: Some("T20261127.0001".into()),
                project_number: None,
                task_number: None,
            }),
            title: None,
            description: None,
            sender: None,
            attachments: vec![],
            tags: vec![],
            reason: (v == Verdict::Rejected).then(|| "sender x@y is not known".to_string()),
            failure: (v == Verdict::Rejected).then_some(crate::model::Failure::UnknownSender),
            time: None,
            notices: Vec::new(),
            rules: Vec::new(),
            auto: None,
        }
    }

    fn rcpts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn converted_gets_a_header_and_is_delivered() {
        let plan = for_outcomes(&[out("support@m", "support@m", Verdict::Created)], &rcpts(&["<support@m>"]), &|_| AfterConversion::Deliver, &p(), true);
        assert_eq!(plan.answer, Answer::Accept);
        assert_eq!(plan.headers, vec![("X-Ticketmilter".to_string(), "support@m created T20261127.0001".to_string())]);
        assert!(plan.delete_rcpts.is_empty());
        let plan = for_outcomes(&[out("support@m", "support@m", Verdict::Created)], &rcpts(&["<support@m>"]), &|_| AfterConversion::Deliver, &p(), false);
        assert!(plan.headers.is_empty());
    }

    #[test]
    fn remove_deletes_only_the_mailbox_copy() {
        let plan = for_outcomes(&[out("support@m", "support@m", Verdict::Created)], &rcpts(&["<support@m>", "<bob@m>"]), &|_| AfterConversion::Remove, &p(), true);
        assert_eq!((plan.answer.clone(), plan.delete_rcpts.clone()), (Answer::Accept, rcpts(&["<support@m>"])));
        // Alone, removing it leaves nobody: discard rather than a message without recipients.
        let plan = for_outcomes(&[out("support@m", "support@m", Verdict::Created)], &rcpts(&["<support@m>"]), &|_| AfterConversion::Remove, &p(), true);
        assert_eq!(plan.answer, Answer::Discard);
    }

    #[test]
    fn discard_only_when_every_recipient_is_a_converted_mailbox() {
        let both = [out("a@m", "a@m", Verdict::Created), out("b@m", "b@m", Verdict::Duplicate)];
        let plan = for_outcomes(&both, &rcpts(&["<a@m>", "<b@m>"]), &|_| AfterConversion::Discard, &p(), true);
        assert_eq!(plan.answer, Answer::Discard);
        let plan = for_outcomes(&both, &rcpts(&["<a@m>", "<b@m>", "<carol@m>"]), &|_| AfterConversion::Discard, &p(), true);
        assert_eq!((plan.answer, plan.delete_rcpts.len()), (Answer::Accept, 0));
        // Ignored (private) mail is never discarded.
        let plan = for_outcomes(&[out("a@m", "a@m", Verdict::Ignored)], &rcpts(&["<a@m>"]), &|_| AfterConversion::Discard, &p(), true);
        assert_eq!(plan.answer, Answer::Accept);
    }

    #[test]
    fn rejection_refuses_the_message_only_when_nobody_else_wants_it() {
        let plan = for_outcomes(&[out("alerts@m", "alerts@m", Verdict::Rejected)], &rcpts(&["<alerts@m>"]), &|_| AfterConversion::Deliver, &p(), true);
        assert_eq!(plan.answer, Answer::Reject(Reply { code: "550", ext: "5.7.1", text: "sender x@y is not known".into() }));
        let plan = for_outcomes(&[out("alerts@m", "alerts@m", Verdict::Rejected)], &rcpts(&["<alerts@m>", "<bob@m>"]), &|_| AfterConversion::Deliver, &p(), true);
        assert_eq!((plan.answer, plan.delete_rcpts), (Answer::Accept, rcpts(&["<alerts@m>"])));
        let mut pol = p();
        pol.on_unknown_sender = Policy::Tempfail;
        let plan = for_outcomes(&[out("alerts@m", "alerts@m", Verdict::Rejected)], &rcpts(&["<alerts@m>", "<bob@m>"]), &|_| AfterConversion::Deliver, &pol, true);
        assert!(matches!(plan.answer, Answer::Tempfail(Reply { code: "450", .. })));
        pol.on_unknown_sender = Policy::Accept;
        let plan = for_outcomes(&[out("alerts@m", "alerts@m", Verdict::Rejected)], &rcpts(&["<alerts@m>"]), &|_| AfterConversion::Deliver, &pol, true);
        assert_eq!(plan.answer, Answer::Accept);
        pol.on_unknown_sender = Policy::Quarantine;
        let plan = for_outcomes(&[out("alerts@m", "alerts@m", Verdict::Rejected)], &rcpts(&["<alerts@m>"]), &|_| AfterConversion::Deliver, &pol, true);
        assert_eq!(plan.answer, Answer::Quarantine("sender x@y is not known".into()));
    }

    #[test]
    fn failures_follow_their_policies() {
        let plan = for_failure(&Failure::Database("locked".into()), &p());
        assert_eq!(plan.answer, Answer::Tempfail(Reply { code: "451", ext: "4.3.0", text: "ticketmilter: the help-desk database is unavailable; try again later".into() }));
        let mut pol = p();
        pol.on_database_error = Policy::Accept;
        assert_eq!(for_failure(&Failure::Database("x".into()), &pol).answer, Answer::Accept);
        pol.on_timeout = Policy::Reject;
        assert!(matches!(for_failure(&Failure::Timeout(Duration::from_secs(240)), &pol).answer, Answer::Reject(Reply { code: "550", .. })));
        assert!(matches!(for_failure(&Failure::Internal("x".into()), &p()).answer, Answer::Tempfail(_)));
    }

    #[test]
    fn too_large() {
        assert_eq!(
            for_too_large(30 * 1024 * 1024, &p()),
            Answer::Reject(Reply { code: "552", ext: "5.3.4", text: "ticketmilter: message too large for ticket conversion (limit 30 MB)".into() })
        );
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_size(30 * 1024 * 1024), "30 MB");
        assert_eq!(human_size(1536 * 1024), "1.5 MB");
        assert_eq!(human_size(20000), "19.5 KB");
        assert_eq!(human_size(4096), "4 KB");
        assert_eq!(human_size(1000), "1000 bytes");
    }

    #[test]
    fn reply_text_is_one_safe_line() {
        assert_eq!(reply_text("a\r\nb%c\0d"), "a b c d");
        assert_eq!(reply_text(&"x".repeat(1000)).len(), 400);
    }
}
