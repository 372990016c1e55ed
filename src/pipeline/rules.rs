//! Parsing rules (ConnectWise's parsing rules, Znuny's postmaster filters): ordered regular
//! expressions over subject, body, sender or any header that set queue, priority, status,
//! issue type, company or a tag, or mark the message to be left unconverted. Compiled once per
//! configuration load.

use regex::{Regex, RegexBuilder};

use super::snapshot::{RefData, find_id, names};
use crate::model::Inbound;

/// A rule as stored in SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDef {
    pub id: i64,
    pub mailbox_id: Option<i64>,
    /// `subject`, `body`, `from` or `header:Name`.
    pub field: String,
    pub pattern: String,
    pub set_queue: Option<String>,
    pub set_priority: Option<String>,
    pub set_status: Option<String>,
    pub set_issue_type: Option<String>,
    pub set_company: Option<String>,
    pub add_tag: Option<String>,
    pub ignore: bool,
    pub stop: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Subject,
    Body,
    From,
    Header(String),
}

#[derive(Debug)]
struct Compiled {
    def: RuleDef,
    field: Field,
    regex: Regex,
}

/// The rules of a configuration, compiled, in order.
#[derive(Debug, Default)]
pub struct CompiledRules {
    rules: Vec<Compiled>,
}

/// What the rules decided for a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleResult {
    pub queue_id: Option<i64>,
    pub priority_id: Option<i64>,
    pub status_id: Option<i64>,
    pub issue_type_id: Option<i64>,
    /// A company name (resolved by the store).
    pub company: Option<String>,
    pub tags: Vec<String>,
    /// The id of a rule that says not to convert the message.
    pub ignore: Option<i64>,
    /// Which rules matched and what they set, in words.
    pub trace: Vec<String>,
}

/// A value naming a queue/priority/… is checked at load time unless it uses capture groups.
fn uses_captures(v: &str) -> bool {
    v.contains('$')
}

impl CompiledRules {
    /// Compile the rules; a rule that cannot work is left out and reported.
    pub fn compile(defs: &[RuleDef], refs: &RefData) -> (CompiledRules, Vec<String>) {
        let mut rules = Vec::new();
        let mut problems = Vec::new();
        for def in defs {
            let field = match def.field.trim().to_ascii_lowercase().as_str() {
                "subject" => Field::Subject,
                "body" => Field::Body,
                "from" => Field::From,
                f => match f.strip_prefix("header:") {
                    Some(name) if !name.trim().is_empty() => Field::Header(name.trim().to_string()),
                    _ => {
                        problems.push(format!(
                            "parsing rule {}: field {:?} is not subject, body, from or header:Name; the rule is skipped",
                            def.id, def.field
                        ));
                        continue;
                    }
                },
            };
            let regex = match RegexBuilder::new(&def.pattern).case_insensitive(true).size_limit(1 << 20).build() {
                Ok(r) => r,
                Err(e) => {
                    let first = e.to_string().lines().last().unwrap_or("").trim().to_string();
                    problems.push(format!("parsing rule {}: pattern {:?} does not compile ({first}); the rule is skipped", def.id, def.pattern));
                    continue;
                }
            };
            let checks: [(&Option<String>, &[(i64, String)], &str); 3] = [
                (&def.set_queue, &refs.queues, "queue"),
                (&def.set_priority, &refs.priorities, "priority"),
                (&def.set_issue_type, &refs.issue_types, "issue type"),
            ];
            for (value, rows, noun) in checks {
                if let Some(v) = value.as_deref().filter(|v| !uses_captures(v)) {
                    if find_id(rows, v).is_none() {
                        problems.push(format!("parsing rule {}: no active {noun} named {v:?} (valid: {})", def.id, names(rows)));
                    }
                }
            }
            if let Some(v) = def.set_status.as_deref().filter(|v| !uses_captures(v)) {
                if refs.status_id(v).is_none() {
                    problems.push(format!("parsing rule {}: no active status named {v:?} (valid: {})", def.id, refs.status_names()));
                }
            }
            rules.push(Compiled { def: def.clone(), field, regex });
        }
        (CompiledRules { rules }, problems)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Apply the rules that concern `mailbox_id` to a message, in order.
    pub fn evaluate(&self, mailbox_id: i64, inbound: &Inbound, refs: &RefData) -> RuleResult {
        let mut r = RuleResult::default();
        for rule in self.rules.iter().filter(|x| x.def.mailbox_id.is_none_or(|m| m == mailbox_id)) {
            let values: Vec<&str> = match &rule.field {
                Field::Subject => vec![inbound.subject.as_str()],
                Field::Body => vec![inbound.text.as_str()],
                Field::From => inbound.author().map(|a| a.email.as_str()).into_iter().collect(),
                Field::Header(name) => inbound
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
                    .collect(),
            };
            let Some(caps) = values.iter().find_map(|v| rule.regex.captures(v)) else { continue };
            let fill = |template: &Option<String>| -> Option<String> {
                let t = template.as_deref()?;
                let mut out = String::new();
                caps.expand(t, &mut out);
                let out = out.trim().to_string();
                (!out.is_empty()).then_some(out)
            };
            let mut did: Vec<String> = Vec::new();
            let mut resolve = |value: Option<String>, rows: &[(i64, String)], noun: &str, slot: &mut Option<i64>| {
                if let Some(v) = value {
                    match find_id(rows, &v) {
                        Some(id) => {
                            *slot = Some(id);
                            did.push(format!("{noun} {v}"));
                        }
                        None => did.push(format!("{noun} {v:?} unknown, not set")),
                    }
                }
            };
            resolve(fill(&rule.def.set_queue), &refs.queues, "queue", &mut r.queue_id);
            resolve(fill(&rule.def.set_priority), &refs.priorities, "priority", &mut r.priority_id);
            resolve(fill(&rule.def.set_issue_type), &refs.issue_types, "issue type", &mut r.issue_type_id);
            if let Some(v) = fill(&rule.def.set_status) {
                match refs.status_id(&v) {
                    Some(id) => {
                        r.status_id = Some(id);
                        did.push(format!("status {v}"));
                    }
                    None => did.push(format!("status {v:?} unknown, not set")),
                }
            }
            if let Some(v) = fill(&rule.def.set_company) {
                did.push(format!("company {v}"));
                r.company = Some(v);
            }
            if let Some(v) = fill(&rule.def.add_tag) {
                did.push(format!("tag {v}"));
                if !r.tags.contains(&v) {
                    r.tags.push(v);
                }
            }
            if rule.def.ignore {
                did.push("leave the message unconverted".into());
                r.ignore.get_or_insert(rule.def.id);
            }
            r.trace.push(format!(
                "parsing rule {} matched {} /{}/: {}{}",
                rule.def.id,
                rule.def.field,
                rule.def.pattern,
                if did.is_empty() { "nothing to set".to_string() } else { did.join(", ") },
                if rule.def.stop { "; stop" } else { "" }
            ));
            if rule.def.stop {
                break;
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs() -> RefData {
        RefData {
            queues: vec![(1, "Service Desk".into()), (2, "Monitoring Alert".into())],
            priorities: vec![(1, "Critical".into()), (3, "Medium".into())],
            statuses: vec![(1, "New".into(), false), (5, "Complete".into(), true)],
            issue_types: vec![(3, "Network".into())],
            ..RefData::default()
        }
    }

    fn rule(id: i64, field: &str, pattern: &str) -> RuleDef {
        RuleDef {
            id,
            mailbox_id: None,
            field: field.into(),
            pattern: pattern.into(),
            set_queue: None,
            set_priority: None,
            set_status: None,
            set_issue_type: None,
            set_company: None,
            add_tag: None,
            ignore: false,
            stop: false,
        }
    }

    fn msg(subject: &str, body: &str, headers: &[(&str, &str)]) -> Inbound {
        Inbound {
            subject: subject.into(),
            text: body.into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            ..Inbound::default()
        }
    }

    #[test]
    fn rules_set_values_with_captures_in_order_and_stop() {
        let mut a = rule(1, "subject", r"^\[(\w+)\] host (\S+) is DOWN");
        a.set_priority = Some("Critical".into());
        a.set_queue = Some("Monitoring Alert".into());
        a.set_company = Some("$1".into());
        a.add_tag = Some("host-$2".into());
        a.stop = true;
        let mut b = rule(2, "subject", "down");
        b.set_priority = Some("Medium".into());
        let (rules, problems) = CompiledRules::compile(&[a, b], &refs());
        assert!(problems.is_empty(), "{problems:?}");
        let r = rules.evaluate(1, &msg("[Acme] host srv01 is down", "", &[]), &refs());
        assert_eq!((r.priority_id, r.queue_id), (Some(1), Some(2)));
        assert_eq!(r.company.as_deref(), Some("Acme"));
        assert_eq!(r.tags, vec!["host-srv01"]);
        assert_eq!(r.trace.len(), 1, "stop after the first: {:?}", r.trace);
    }

    #[test]
    fn headers_body_and_ignore() {
        let mut a = rule(1, "header:X-Spam-Flag", "^yes$");
        a.ignore = true;
        let mut b = rule(2, "body", r"(?m)^Severity:\s*critical");
        b.set_priority = Some("Critical".into());
        let (rules, _) = CompiledRules::compile(&[a, b], &refs());
        let r = rules.evaluate(1, &msg("x", "Host: a\nSeverity: CRITICAL\n", &[("x-spam-flag", "YES")]), &refs());
        assert_eq!((r.ignore, r.priority_id), (Some(1), Some(1)));
        let r = rules.evaluate(1, &msg("x", "Severity: low", &[("x-spam-flag", "NO")]), &refs());
        assert_eq!((r.ignore, r.priority_id), (None, None));
    }

    #[test]
    fn mailbox_specific_rules_only_for_their_mailbox() {
        let mut a = rule(1, "subject", "x");
        a.mailbox_id = Some(7);
        a.add_tag = Some("seven".into());
        let (rules, _) = CompiledRules::compile(&[a], &refs());
        assert_eq!(rules.evaluate(7, &msg("x", "", &[]), &refs()).tags, vec!["seven"]);
        assert!(rules.evaluate(8, &msg("x", "", &[]), &refs()).tags.is_empty());
    }

    #[test]
    fn broken_rules_are_reported_and_skipped() {
        let mut bad_name = rule(3, "subject", "x");
        bad_name.set_queue = Some("Nowhere".into());
        let (rules, problems) = CompiledRules::compile(
            &[rule(1, "subject", "(unclosed"), rule(2, "title", "x"), bad_name],
            &refs(),
        );
        assert_eq!(rules.len(), 1);
        assert!(problems[0].contains("parsing rule 1") && problems[0].contains("does not compile"), "{problems:?}");
        assert!(problems[1].contains("field \"title\""), "{problems:?}");
        assert!(problems[2].contains("no active queue named \"Nowhere\"") && problems[2].contains("Service Desk"), "{problems:?}");
        // A name that capture groups produce at run time and that does not exist is not set.
        let mut dynamic = rule(4, "subject", r"queue=(\w+)");
        dynamic.set_queue = Some("$1".into());
        let (rules, problems) = CompiledRules::compile(&[dynamic], &refs());
        assert!(problems.is_empty());
        let r = rules.evaluate(1, &msg("queue=Nowhere", "", &[]), &refs());
        assert_eq!(r.queue_id, None);
        assert!(r.trace[0].contains("unknown, not set"), "{:?}", r.trace);
    }
}
