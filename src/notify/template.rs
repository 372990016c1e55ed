//! Rendering notification templates (minijinja, strict undefined, header-safe subjects).
//!
//! Templates are compiled once per configuration load ([`Templates::compile`]) and rendered per
//! notification. Every variable a template may use is a field of [`Vars`] and is always defined
//! (empty when unknown), so naming anything else is an error. Subjects and text bodies are not
//! escaped; HTML bodies are HTML-escaped. Blocks (`{% if %}` …) swallow the newline after them
//! and the indentation before them (`trim_blocks`, `lstrip_blocks`), which keeps plain-text
//! templates readable; a final newline is kept.

use std::collections::{HashMap, HashSet};

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

/// A template as stored in SQL (notification_templates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSource {
    pub id: i64,
    pub name: String,
    pub mailbox_id: Option<i64>,
    pub event: Option<String>,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub active: bool,
}

/// The values a template may use. Every field is always defined (empty string when unknown),
/// so a template naming an unknown variable is an error (strict undefined) while a known but
/// empty one renders empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Vars {
    /// ticket_created, note_added, time_entry_added, project_note_added, task_note_added,
    /// failure, failure_admin, rule.
    pub event: String,
    pub ticket_number: String,
    pub ticket_title: String,
    pub status: String,
    pub queue: String,
    pub priority: String,
    pub company: String,
    pub contact: String,
    pub contact_email: String,
    pub assigned_resource: String,
    pub mailbox: String,
    pub mailbox_name: String,
    pub original_subject: String,
    pub sender: String,
    pub project_number: String,
    pub task_number: String,
    /// The number the message was filed under: ticket, project or task.
    pub object_number: String,
    /// The text that was added (notes, time entries).
    pub note_text: String,
    /// Time entries, e.g. "1.50".
    pub hours: String,
    /// failure: the reason shown to the sender.
    pub reason: String,
    /// failure_admin: details for the administrator.
    pub technical_reason: String,
    /// Built from a URL pattern ([`ticket_url`]).
    pub ticket_url: String,
}

/// The names of the variables a template may use (the fields of [`Vars`]).
pub const VARIABLES: &[&str] = &[
    "event",
    "ticket_number",
    "ticket_title",
    "status",
    "queue",
    "priority",
    "company",
    "contact",
    "contact_email",
    "assigned_resource",
    "mailbox",
    "mailbox_name",
    "original_subject",
    "sender",
    "project_number",
    "task_number",
    "object_number",
    "note_text",
    "hours",
    "reason",
    "technical_reason",
    "ticket_url",
];

impl Vars {
    /// Every variable with its value, in the order of [`VARIABLES`].
    fn pairs(&self) -> [(&'static str, &str); 22] {
        [
            ("event", &self.event),
            ("ticket_number", &self.ticket_number),
            ("ticket_title", &self.ticket_title),
            ("status", &self.status),
            ("queue", &self.queue),
            ("priority", &self.priority),
            ("company", &self.company),
            ("contact", &self.contact),
            ("contact_email", &self.contact_email),
            ("assigned_resource", &self.assigned_resource),
            ("mailbox", &self.mailbox),
            ("mailbox_name", &self.mailbox_name),
            ("original_subject", &self.original_subject),
            ("sender", &self.sender),
            ("project_number", &self.project_number),
            ("task_number", &self.task_number),
            ("object_number", &self.object_number),
            ("note_text", &self.note_text),
            ("hours", &self.hours),
            ("reason", &self.reason),
            ("technical_reason", &self.technical_reason),
            ("ticket_url", &self.ticket_url),
        ]
    }

    /// The template context.
    fn to_value(&self) -> Value {
        Value::from_pairs(self.pairs().into_iter().map(|(k, v)| (k, Value::from(v))))
    }
}

/// The three parts of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    fn label(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Text => "text",
            Part::Html => "html",
        }
    }

    /// The name of this part of the template at `index` inside the environment.
    fn key(self, index: usize) -> String {
        format!("{index}.{}", self.label())
    }
}

/// All active templates compiled once per configuration load.
pub struct Templates {
    env: Environment<'static>,
    /// The templates that compiled, in id order; the environment holds their parts under
    /// `"<index>.subject"`, `"<index>.text"` and `"<index>.html"`.
    sources: Vec<TemplateSource>,
    by_id: HashMap<i64, usize>,
    /// Lower-cased name → index.
    by_name: HashMap<String, usize>,
    /// (mailbox, lower-cased event) → index; the lowest id wins.
    by_event: HashMap<(Option<i64>, String), usize>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("names", &self.sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

/// An environment configured for notification templates.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
    if let Ok(syntax) = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).keep_trailing_newline(true).build() {
        env.set_syntax(syntax);
    }
    env
}

/// One line for a template error: "unknown filter: filter foo is unknown at line 1".
fn describe(e: &minijinja::Error) -> String {
    let mut s = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        s.push_str(&format!(" at line {line}"));
    }
    s.replace(['\r', '\n'], " ")
}

fn problem(source: &TemplateSource, part: Part, what: &str) -> String {
    format!("template {:?} {}: {what}", source.name, part.label())
}

impl Templates {
    /// Compile every active template (subject, text, html). Problems are returned as one line
    /// each naming the template and the part ("template \"ack\" subject: unknown filter … at
    /// line 1"); a template with a problem is left out. Besides syntax, a template is checked
    /// for variables that do not exist and by one render against [`sample_vars`] (which finds
    /// unknown filters and tests).
    pub fn compile(sources: &[TemplateSource]) -> (Templates, Vec<String>) {
        let mut sorted: Vec<&TemplateSource> = sources.iter().filter(|s| s.active).collect();
        sorted.sort_by_key(|s| s.id);
        Self::compile_all(&sorted)
    }

    fn compile_all(sources: &[&TemplateSource]) -> (Templates, Vec<String>) {
        let mut templates = Templates {
            env: environment(),
            sources: Vec::new(),
            by_id: HashMap::new(),
            by_name: HashMap::new(),
            by_event: HashMap::new(),
        };
        let mut problems = Vec::new();
        let sample = sample_vars().to_value();
        // Variables plus the environment's globals (range, dict, namespace …).
        let known: HashSet<String> =
            VARIABLES.iter().map(|v| v.to_string()).chain(templates.env.globals().map(|(k, _)| k.to_string())).collect();

        for source in sources {
            let index = templates.sources.len();
            let mut parts = vec![(Part::Subject, source.subject.as_str()), (Part::Text, source.body_text.as_str())];
            if let Some(html) = &source.body_html {
                parts.push((Part::Html, html.as_str()));
            }
            let mut ok = true;
            for (part, text) in &parts {
                let key = part.key(index);
                if let Err(e) = templates.env.add_template_owned(key.clone(), text.to_string()) {
                    problems.push(problem(source, *part, &describe(&e)));
                    ok = false;
                    continue;
                }
                let Ok(tmpl) = templates.env.get_template(&key) else {
                    problems.push(problem(source, *part, "internal error: the compiled template is missing"));
                    ok = false;
                    continue;
                };
                let mut unknown: Vec<String> =
                    tmpl.undeclared_variables(false).into_iter().filter(|v| !known.contains(v)).collect();
                if !unknown.is_empty() {
                    unknown.sort();
                    let list = unknown.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ");
                    let noun = if unknown.len() == 1 { "variable" } else { "variables" };
                    problems.push(problem(source, *part, &format!("unknown {noun} {list}")));
                    ok = false;
                    continue;
                }
                if let Err(e) = tmpl.render(&sample) {
                    problems.push(problem(source, *part, &describe(&e)));
                    ok = false;
                }
            }
            if !ok {
                for (part, _) in &parts {
                    templates.env.remove_template(&part.key(index));
                }
                continue;
            }
            templates.sources.push((*source).clone());
            templates.by_id.entry(source.id).or_insert(index);
            templates.by_name.entry(source.name.to_lowercase()).or_insert(index);
            if let Some(event) = source.event.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
                templates.by_event.entry((source.mailbox_id, event.to_lowercase())).or_insert(index);
            }
        }
        (templates, problems)
    }

    /// The template for an event: the mailbox's own active one first, else the active one with
    /// no mailbox. None when there is none.
    pub fn for_event(&self, mailbox_id: i64, event: &str) -> Option<&TemplateSource> {
        let event = event.trim().to_lowercase();
        self.by_event
            .get(&(Some(mailbox_id), event.clone()))
            .or_else(|| self.by_event.get(&(None, event)))
            .map(|&i| &self.sources[i])
    }

    /// The active template of that name (case-insensitive).
    pub fn by_name(&self, name: &str) -> Option<&TemplateSource> {
        self.by_name.get(&name.trim().to_lowercase()).map(|&i| &self.sources[i])
    }

    /// The active template with that id.
    pub fn by_id(&self, id: i64) -> Option<&TemplateSource> {
        self.by_id.get(&id).map(|&i| &self.sources[i])
    }

    /// Render one template. Errors (e.g. undefined variable) come back as one line naming the
    /// template. The subject is made header-safe.
    pub fn render(&self, id: i64, vars: &Vars) -> Result<Rendered, String> {
        let index = *self.by_id.get(&id).ok_or_else(|| format!("no usable template with id {id}"))?;
        let source = &self.sources[index];
        let ctx = vars.to_value();
        let run = |part: Part| -> Result<String, String> {
            let tmpl = self
                .env
                .get_template(&part.key(index))
                .map_err(|e| problem(source, part, &describe(&e)))?;
            tmpl.render(&ctx).map_err(|e| problem(source, part, &describe(&e)))
        };
        let subject = header_safe(&run(Part::Subject)?);
        let text = run(Part::Text)?;
        let html = match source.body_html {
            Some(_) => Some(run(Part::Html)?),
            None => None,
        };
        Ok(Rendered { subject, text, html })
    }

    /// No template compiled.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// How many templates compiled.
    pub fn len(&self) -> usize {
        self.sources.len()
    }
}

/// A rendered template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Render every template (active or not) against sample data; one line per problem (used by
/// `ticketmilter check`).
pub fn check(sources: &[TemplateSource]) -> Vec<String> {
    let all: Vec<&TemplateSource> = sources.iter().collect();
    let (templates, mut problems) = Templates::compile_all(&all);
    let sample = sample_vars();
    for source in &templates.sources {
        if let Err(e) = templates.render(source.id, &sample) {
            problems.push(e);
        }
    }
    problems
}

/// Plausible values for every variable (checks and previews).
pub fn sample_vars() -> Vars {
    Vars {
        event: "ticket_created".into(),
        ticket_number: "T20261127.0001".into(),
        ticket_title: "Printer on floor 2 does not print".into(),
        status: "New".into(),
        queue: "Service Desk".into(),
        priority: "Medium".into(),
        company: "Example Ltd".into(),
        contact: "Alex Example".into(),
        contact_email: "alex@example.com".into(),
        assigned_resource: "Sam Support".into(),
        mailbox: "support@msp.example".into(),
        mailbox_name: "MSP Support".into(),
        original_subject: "Printer on floor 2 does not print".into(),
        sender: "alex@example.com".into(),
        project_number: "P20261127.0001".into(),
        task_number: "T20261127.0002".into(),
        object_number: "T20261127.0001".into(),
        note_text: "The printer shows error E-42 since this morning.".into(),
        hours: "1.50".into(),
        reason: "The message was sent to an address that does not accept requests.".into(),
        technical_reason: "no contact matches sender alex@example.com".into(),
        ticket_url: "https://psa.msp.example/tickets/T20261127.0001".into(),
    }
}

/// Longest header-safe value, in characters.
const HEADER_MAX_CHARS: usize = 250;

/// A value made safe for a header: every control character (CR, LF, TAB, NUL, other C0/C1,
/// U+2028/2029) becomes a space, runs of whitespace collapse, trimmed, at most 250 characters.
pub fn header_safe(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() || c == '\u{2028}' || c == '\u{2029}' { ' ' } else { c })
        .collect();
    let mut out = String::with_capacity(cleaned.len().min(HEADER_MAX_CHARS * 4));
    for (count, word) in cleaned.split_whitespace().enumerate() {
        if count > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    match out.char_indices().nth(HEADER_MAX_CHARS) {
        Some((cut, _)) => out[..cut].trim_end().to_string(),
        None => out,
    }
}

/// The subject with the number in it: unchanged when it already contains `number`
/// (case-insensitive), else "[number] subject".
pub fn with_number(subject: &str, number: &str) -> String {
    let number = number.trim();
    if number.is_empty() || subject.to_lowercase().contains(&number.to_lowercase()) {
        return subject.to_string();
    }
    if subject.trim().is_empty() {
        return format!("[{number}]");
    }
    format!("[{number}] {subject}")
}

/// A ticket URL from a pattern with `{number}`; an empty pattern gives "". The number is
/// percent-encoded (only RFC 3986 unreserved characters stay as they are).
pub fn ticket_url(pattern: &str, number: &str) -> String {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return String::new();
    }
    let mut encoded = String::with_capacity(number.len());
    for b in number.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    pattern.replace("{number}", &encoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(id: i64, name: &str, mailbox: Option<i64>, event: Option<&str>, subject: &str, text: &str, html: Option<&str>) -> TemplateSource {
        TemplateSource {
            id,
            name: name.into(),
            mailbox_id: mailbox,
            event: event.map(String::from),
            subject: subject.into(),
            body_text: text.into(),
            body_html: html.map(String::from),
            active: true,
        }
    }

    #[test]
    fn variables_match_the_fields() {
        let json = serde_json::to_value(Vars::default()).unwrap();
        let mut fields: Vec<&str> = json.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        fields.sort();
        let mut names = VARIABLES.to_vec();
        names.sort();
        assert_eq!(fields, names);
        let pairs: Vec<&str> = Vars::default().pairs().iter().map(|(k, _)| *k).collect();
        assert_eq!(pairs, VARIABLES);
    }

    #[test]
    fn renders_subject_text_and_escaped_html() {
        let (t, problems) = Templates::compile(&[src(
            7,
            "ack",
            None,
            Some("ticket_created"),
            "Ticket {{ ticket_number }}: {{ original_subject }}",
            "Title: {{ ticket_title }} & more",
            Some("<p>{{ ticket_title }}</p>"),
        )]);
        assert!(problems.is_empty(), "{problems:?}");
        let vars = Vars {
            ticket_number: "T1".into(),
            original_subject: "a & b <c>".into(),
            ticket_title: "<script>alert(1)</script> & co".into(),
            ..Vars::default()
        };
        let r = t.render(7, &vars).unwrap();
        assert_eq!(r.subject, "Ticket T1: a & b <c>");
        assert_eq!(r.text, "Title: <script>alert(1)</script> & co & more");
        let html = r.html.unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("&amp; co"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn subject_never_spans_lines() {
        let (t, problems) = Templates::compile(&[src(1, "x", None, None, "Re: {{ original_subject }}", "body", None)]);
        assert!(problems.is_empty(), "{problems:?}");
        let vars = Vars { original_subject: "hi\r\nBcc: x@y\u{2028}z".into(), ..Vars::default() };
        let r = t.render(1, &vars).unwrap();
        assert_eq!(r.subject, "Re: hi Bcc: x@y z");
    }

    #[test]
    fn empty_known_variable_renders_empty() {
        let (t, problems) = Templates::compile(&[src(1, "x", None, None, "[{{ queue }}]", "{{ contact }}.", None)]);
        assert!(problems.is_empty(), "{problems:?}");
        let r = t.render(1, &Vars::default()).unwrap();
        assert_eq!(r.subject, "[]");
        assert_eq!(r.text, ".");
    }

    #[test]
    fn problems_name_template_and_part() {
        let (t, problems) = Templates::compile(&[
            src(1, "ack", None, None, "{{ ticket_number | nosuchfilter }}", "ok", None),
            src(2, "typo", None, None, "ok", "Hello {{ contcat }}", None),
            src(3, "syntax", None, None, "ok", "ok", Some("{% if %}")),
            src(4, "good", None, Some("note_added"), "ok", "ok", None),
        ]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("template \"ack\" subject: unknown filter"), "{}", problems[0]);
        assert!(problems[0].contains("nosuchfilter") && problems[0].ends_with("at line 1"), "{}", problems[0]);
        assert_eq!(problems[1], "template \"typo\" text: unknown variable \"contcat\"");
        assert!(problems[2].starts_with("template \"syntax\" html: syntax error"), "{}", problems[2]);
        assert!(problems.iter().all(|p| !p.contains('\n')));
        assert_eq!(t.len(), 1);
        assert!(t.by_name("ack").is_none());
        assert!(t.render(1, &Vars::default()).is_err());
        assert_eq!(t.by_name("GOOD").unwrap().id, 4);
    }

    #[test]
    fn jinja_constructs_are_accepted() {
        let text = "\
{% set greeting = 'Hello' %}
{% set ns = namespace(n=0) %}
{% macro line(label, value) %}{{ label }}: {{ value }}{% endmacro %}
{{ greeting }} {{ contact | default('there') | title }}
{% for word in ticket_title | split %}
{{ loop.index }}={{ word | upper }}{% if not loop.last %},{% endif %}
{% set ns.n = ns.n + 1 %}
{% endfor %}
{{ line('Hours', hours) }} {{ ns.n }}
{% if hours %}{{ '%.1f' | format(hours | float) }}{% endif %}
{{ range(2) | join(',') }} {{ dict(a=1).a }}
";
        let (t, problems) = Templates::compile(&[src(1, "fancy", None, None, "{{ ticket_number ~ '!' }}", text, None)]);
        assert!(problems.is_empty(), "{problems:?}");
        let r = t.render(1, &sample_vars()).unwrap();
        assert_eq!(r.subject, "T20261127.0001!");
        // Block tags swallow the newline after them (trim_blocks).
        assert_eq!(r.text, "Hello Alex Example\n1=PRINTER,2=ON,3=FLOOR,4=2,5=DOES,6=NOT,7=PRINTHours: 1.50 7\n1.50,1 1\n");
    }

    #[test]
    fn strict_undefined_at_render_names_template() {
        // An attribute of a known (string) variable is undefined: only the render can tell.
        let (t, problems) = Templates::compile(&[src(1, "attr", None, None, "ok", "ok", None)]);
        assert!(problems.is_empty());
        assert!(t.render(1, &Vars::default()).is_ok());
        let problems = check(&[src(2, "attr", None, None, "{{ ticket_number.foo }}", "ok", None)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("template \"attr\" subject: undefined"), "{}", problems[0]);
    }

    #[test]
    fn event_lookup_prefers_the_mailbox() {
        let mut inactive = src(1, "inactive", Some(5), Some("ticket_created"), "s", "t", None);
        inactive.active = false;
        let (t, problems) = Templates::compile(&[
            inactive,
            src(2, "global", None, Some("ticket_created"), "s", "t", None),
            src(3, "mine", Some(5), Some("Ticket_Created"), "s", "t", None),
            src(4, "rule-only", None, None, "s", "t", None),
        ]);
        assert!(problems.is_empty());
        assert_eq!(t.for_event(5, "ticket_created").unwrap().name, "mine");
        assert_eq!(t.for_event(6, "ticket_created").unwrap().name, "global");
        assert!(t.for_event(5, "note_added").is_none());
        assert!(t.by_name("inactive").is_none());
        assert_eq!(t.by_name("Rule-Only").unwrap().id, 4);
        assert!(!t.is_empty());
        let (empty, _) = Templates::compile(&[]);
        assert!(empty.is_empty());
    }

    #[test]
    fn installed_templates_are_valid() {
        // The templates the migrations install, as an installation loads them.
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = crate::store::Store::open(dir.path().join("t.db").to_str().unwrap(), Default::default()).expect("open");
        store.migrate().expect("migrate");
        let defaults = store.read(crate::store::conf::load).expect("load").templates;
        assert_eq!(defaults.iter().filter(|t| t.active).map(|t| t.name.as_str()).collect::<Vec<_>>(), ["failure_admin"]);
        assert_eq!(check(&defaults), Vec::<String>::new());
        let names: Vec<&str> = defaults.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["acknowledgement", "failure", "failure_admin"]);
        let mut active = defaults.clone();
        for (i, s) in active.iter_mut().enumerate() {
            s.id = i as i64 + 1;
            s.active = true;
        }
        let (t, problems) = Templates::compile(&active);
        assert!(problems.is_empty(), "{problems:?}");
        let vars = sample_vars();
        let ack = t.render(t.for_event(1, "ticket_created").unwrap().id, &vars).unwrap();
        assert_eq!(ack.subject, "[T20261127.0001] Printer on floor 2 does not print");
        assert!(ack.text.starts_with("Hello Alex Example,\n\nWe received your request"), "{}", ack.text);
        assert!(ack.text.contains("Service Desk") && ack.text.contains("keep T20261127.0001"), "{}", ack.text);
        assert!(!ack.text.contains("\n\n\n"), "{}", ack.text);
        assert!(ack.html.unwrap().contains("<strong>T20261127.0001</strong>"));
        let empty = t.render(1, &Vars { ticket_number: "T1".into(), mailbox: "help@x".into(), ..Vars::default() }).unwrap();
        assert!(empty.text.starts_with("Hello,\n"), "{}", empty.text);
        assert!(empty.text.trim_end().ends_with("help@x"), "{}", empty.text);
        let failure = t.render(t.for_event(1, "failure").unwrap().id, &vars).unwrap();
        assert!(failure.text.contains(&vars.reason) && !failure.text.contains(&vars.technical_reason));
        let admin = t.render(t.for_event(1, "failure_admin").unwrap().id, &vars).unwrap();
        assert!(admin.text.contains(&vars.technical_reason) && admin.text.contains(&vars.sender));
    }

    #[test]
    fn header_safe_cleans() {
        assert_eq!(header_safe("  a\r\nb\tc\0d\u{85}e\u{2029}f  "), "a b c d e f");
        assert_eq!(header_safe("x\r\n\r\nBcc: evil@example.com"), "x Bcc: evil@example.com");
        let long = "é".repeat(300);
        let cut = header_safe(&long);
        assert_eq!(cut.chars().count(), 250);
        assert_eq!(header_safe(""), "");
    }

    #[test]
    fn number_in_subject() {
        assert_eq!(with_number("Printer broken", "T1"), "[T1] Printer broken");
        assert_eq!(with_number("Re: [t1] Printer", "T1"), "Re: [t1] Printer");
        assert_eq!(with_number("", "T1"), "[T1]");
        assert_eq!(with_number("abc", ""), "abc");
    }

    #[test]
    fn url_pattern() {
        assert_eq!(ticket_url("", "T1"), "");
        assert_eq!(ticket_url("https://psa/t/{number}", "T2026.0001"), "https://psa/t/T2026.0001");
        assert_eq!(ticket_url("https://psa/t?n={number}", "a b&c/d"), "https://psa/t?n=a%20b%26c%2Fd");
    }
}
