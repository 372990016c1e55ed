//! The real binary: `process` output and exit codes, the admin commands, `check`, `load`, and
//! configuration errors.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::binary;

/// A temporary directory and a new, empty database of the selected backend (common::backend).
struct Cli {
    dir: tempfile::TempDir,
    db: String,
}

impl Cli {
    fn new() -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let db = common::new_database(dir.path(), "t");
        Cli { dir, db }
    }

    fn db(&self) -> String {
        self.db.clone()
    }

    /// A Postfix configuration directory (for `check --postfix-config`) with these main.cf
    /// lines; `check` reads it with postconf.
    fn postfix_config(&self, main_cf: &str) -> String {
        let dir = self.dir.path().join("postfix");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.cf"), main_cf).unwrap();
        std::fs::write(dir.join("master.cf"), "").unwrap();
        dir.to_str().unwrap().to_string()
    }

    /// `check` against a Postfix that is attached the way the README says.
    fn check(&self) -> std::process::Output {
        let pf = self.postfix_config("smtpd_milters = inet:127.0.0.1:8897\nmilter_default_action = tempfail\n");
        self.run(&["check", "--postfix-config", &pf])
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(binary());
        c.arg("--database").arg(self.db()).args(args);
        c.env_remove("TICKETMILTER_CONFIG").env_remove("TICKETMILTER_DATABASE");
        // Never pick up a host-wide /etc/ticketmilter/ticketmilter.toml.
        c.arg("--config").arg(self.dir.path().join("none.toml"));
        std::fs::write(self.dir.path().join("none.toml"), "").unwrap();
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    fn stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self.cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        common::discard_database(&self.db);
    }
}

fn lines(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn admin_commands_set_up_a_working_installation() {
    let t = Cli::new();
    t.ok(&["company", "add", "Example Corp", "--domain", "example.com"]);
    t.ok(&["company", "add", "Walk-ins"]);
    t.ok(&["contact", "add", "alice@example.com", "--company", "Example Corp", "--name", "Alice Example"]);
    t.ok(&["resource", "add", "tina@msp.example", "--name", "Tina Tech"]);
    t.ok(&["tag", "add", "Printer", "--alias", "Drucker", "--alias", "printing"]);
    t.ok(&["tag", "add", "VIP"]);
    t.ok(&["mailbox", "add", "support@msp.example", "--fallback-company", "Walk-ins", "--unknown-sender", "fallback", "--tag", "VIP"]);
    t.ok(&["mailbox", "add", "alerts@msp.example", "--unknown-sender", "reject", "--queue", "Monitoring Alert", "--priority", "High", "--note-visibility", "internal"]);

    let companies = t.ok(&["company", "list"]);
    assert!(companies.contains("Example Corp") && companies.contains("example.com"), "{companies}");
    assert!(t.ok(&["contact", "list"]).contains("alice@example.com"));
    assert!(t.ok(&["resource", "list"]).contains("Tina Tech"));
    let tags = t.ok(&["tag", "list"]);
    assert!(tags.contains("Drucker, printing"), "{tags}");
    let mailboxes = t.ok(&["mailbox", "list"]);
    assert!(mailboxes.contains("alerts@msp.example") && mailboxes.contains("Monitoring Alert") && mailboxes.contains("Walk-ins"), "{mailboxes}");

    let raw = "From: Alice <alice@example.com>\nSubject: Drucker kaputt\nMessage-ID: <cli1@example.com>\n\nThe printer is broken.\n";
    let path = t.dir.path().join("m.eml");
    std::fs::write(&path, raw).unwrap();
    let out = lines(&t.ok(&["process", "--rcpt", "support@msp.example", "--rcpt", "alerts@msp.example", "--from", "<alice@example.com>", path.to_str().unwrap()]));
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["outcome"], "created");
    assert_eq!(out[0]["mailbox"], "support@msp.example");
    assert_eq!(out[0]["sender"]["kind"], "contact");
    assert_eq!(out[0]["sender"]["company"], "Example Corp");
    assert_eq!(out[0]["tags"], serde_json::json!(["VIP", "Printer"]));
    assert_eq!(out[0]["object"]["kind"], "ticket");
    let number = out[0]["object"]["number"].as_str().unwrap().to_string();
    assert!(number.starts_with('T') && number.len() == 14, "{number}");
    assert_eq!(out[1]["outcome"], "created");

    // The ticket can be shown.
    let shown: serde_json::Value = serde_json::from_str(&t.ok(&["ticket", "show", &number])).unwrap();
    assert_eq!(shown["title"], "Drucker kaputt");
    assert_eq!(shown["company"], "Example Corp");
    assert!(t.ok(&["ticket", "list"]).contains(&number));

    // Disable: the mailbox no longer converts.
    t.ok(&["mailbox", "disable", "alerts@msp.example"]);
    let raw2 = "From: x@y.example\nSubject: s\nMessage-ID: <cli2@x>\n\nb\n";
    let o = t.stdin(&["process", "--rcpt", "alerts@msp.example", "-"], raw2.as_bytes());
    assert!(o.status.success());
    assert_eq!(lines(&String::from_utf8(o.stdout).unwrap())[0]["outcome"], "not_ours");
    t.ok(&["mailbox", "set", "alerts@msp.example", "--enable"]);
    let o = t.stdin(&["process", "--rcpt", "alerts@msp.example"], raw2.as_bytes());
    let v = lines(&String::from_utf8(o.stdout).unwrap());
    assert_eq!(v[0]["outcome"], "rejected", "a rejection is an answer: exit 0");
    assert!(o.status.success());
    assert!(v[0]["reason"].as_str().unwrap().contains("x@y.example"));
}

#[test]
fn admin_errors_are_clear() {
    let t = Cli::new();
    let o = t.run(&["contact", "add", "a@b.example", "--company", "Nope"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no company named \"Nope\""));
    let o = t.run(&["mailbox", "add", "support@msp.example", "--queue", "Nowhere"]);
    assert_eq!(o.status.code(), Some(64));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no active queue named \"Nowhere\"") && err.contains("Service Desk"), "{err}");
    // The failed add left nothing behind (one transaction).
    assert!(!t.ok(&["mailbox", "list"]).contains("support@"));
    let o = t.run(&["mailbox", "add", "not-an-address"]);
    assert_eq!(o.status.code(), Some(64));
    t.ok(&["company", "add", "A"]);
    let o = t.run(&["company", "add", "a"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let o = t.run(&["setting", "set", "max_tags", "lots"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("max_tags"));
    t.ok(&["setting", "set", "max_tags", "5"]);
    assert!(t.ok(&["setting", "list"]).lines().any(|l| l.starts_with("max_tags") && l.contains(" 5 ")));
}

#[test]
fn process_failures_have_messages_and_exit_codes() {
    let t = Cli::new();
    let o = t.run(&["process", "--rcpt", "a@b.example", "/no/such/file.eml"]);
    assert_eq!(o.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read /no/such/file.eml"));

    // A SQLite file in a missing directory: a SQLite matter, so the URL names SQLite whatever
    // the backend of the run (this part runs, and must pass, in both passes of tests/run-all).
    let o = Command::new(binary())
        .args(["--config", "/dev/null", "--database", "sqlite:/no/such/dir/t.db", "process", "--rcpt", "a@b.example", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(75), "database trouble is temporary");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("directory /no/such/dir does not exist"), "{err}");

    // The same for PostgreSQL: nothing listens on the port (needs no server, so it runs on
    // every backend) …
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://tm@127.0.0.1:{closed}/tm");
    let o = Command::new(binary())
        .args(["--config", "/dev/null", "--database", &url, "process", "--rcpt", "a@b.example", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(75), "database trouble is temporary");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("cannot open {url}")) && err.contains("Connection refused"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    // … and, with the PostgreSQL backend, a server that lacks the database.
    if common::is_postgres() {
        let url = common::pg::with_database(&common::pg::server_url(), "tm_no_such_database");
        let o = Command::new(binary())
            .args(["--config", "/dev/null", "--database", &url, "process", "--rcpt", "a@b.example", "/dev/null"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(75), "database trouble is temporary");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("database \"tm_no_such_database\" does not exist"), "{err}");
    }

    let o = Command::new(binary())
        .args(["--config", "/dev/null", "--database", "mysql://x/y", "migrate"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not supported"));
}

#[test]
fn unknown_config_keys_are_named() {
    let t = Cli::new();
    let cfg = t.dir.path().join("bad.toml");
    std::fs::write(&cfg, "[database]\nurl = \"x.db\"\npool_sise = 4\n").unwrap();
    let o = Command::new(binary()).args(["--config", cfg.to_str().unwrap(), "check"]).output().unwrap();
    assert_eq!(o.status.code(), Some(78));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("pool_sise") && err.contains("bad.toml"), "{err}");
    let o = Command::new(binary()).args(["--config", "/no/such.toml", "check"]).output().unwrap();
    assert_eq!(o.status.code(), Some(78));
}

/// A database named by `url` exists and is migrated.
fn migrated(url: &str) -> bool {
    ticketmilter::store::Store::open(url, ticketmilter::store::StoreOptions::default())
        .and_then(|s| s.pending_migrations())
        .is_ok_and(|pending| pending.is_empty())
}

#[test]
fn config_file_and_environment_name_the_database() {
    let t = Cli::new();
    // SQLite: files that the URLs name, made by `migrate`; PostgreSQL: two empty databases.
    let (db, db2) = match common::backend() {
        common::Backend::Sqlite => (
            format!("sqlite:{}", t.dir.path().join("from-config.db").display()),
            t.dir.path().join("from-env.db").display().to_string(),
        ),
        common::Backend::Postgres => (common::new_database(t.dir.path(), "c"), common::new_database(t.dir.path(), "e")),
    };
    let cfg = t.dir.path().join("c.toml");
    std::fs::write(&cfg, format!("[database]\nurl = \"{db}\"\n")).unwrap();
    let o = Command::new(binary()).env_remove("TICKETMILTER_DATABASE").args(["--config", cfg.to_str().unwrap(), "migrate"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if let Some(path) = db.strip_prefix("sqlite:") {
        assert!(std::path::Path::new(path).exists());
    }
    assert!(migrated(&db));
    let o = Command::new(binary())
        .env("TICKETMILTER_CONFIG", cfg.to_str().unwrap())
        .env("TICKETMILTER_DATABASE", &db2)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(o.status.success());
    if common::backend() == common::Backend::Sqlite {
        assert!(std::path::Path::new(&db2).exists());
    }
    assert!(migrated(&db2));
    common::discard_database(&db);
    common::discard_database(&db2);
}

#[test]
fn check_lists_problems() {
    let t = Cli::new();
    let o = t.check();
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("problem: database needs") && out.contains("ticketmilter migrate"), "{out}");
    t.ok(&["migrate"]);
    let o = t.check();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("problem: no active mailbox"));
    let sql = t.dir.path().join("bad.sql");
    std::fs::write(&sql, "INSERT INTO settings (key, value) VALUES ('max_tags', 'many'), ('colour', 'red');\nINSERT INTO mailboxes (address, name, active, note_visibility, unknown_sender, created_at) VALUES ('help@x.example', '', TRUE, 'all', 'fallback', CURRENT_TIMESTAMP);\n").unwrap();
    t.ok(&["load", sql.to_str().unwrap()]);
    let o = t.check();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1));
    assert!(out.contains("problem: setting max_tags = \"many\""), "{out}");
    assert!(out.contains("problem: unknown setting \"colour\""), "{out}");
    assert!(out.contains("help@x.example: unknown senders get tickets without a company"), "{out}");
    assert!(out.contains("3 problem(s) found"), "{out}");
}

#[test]
fn check_reads_the_postfix_settings() {
    let t = Cli::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    t.ok(&["load", root.join("conf/example.sql").to_str().unwrap()]);
    // Attached as the README says: no problem, one line per setting read.
    let o = t.check();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("ok: Postfix smtpd_milters names ticketmilter's socket inet:127.0.0.1:8897"), "{out}");
    assert!(out.contains("ok: Postfix milter_default_action = tempfail"), "{out}");
    // Not attached, and mail passing unconverted while the milter is down: two problems.
    let pf = t.postfix_config("smtpd_milters = inet:127.0.0.1:12301\nmilter_default_action = accept\n");
    let o = t.run(&["check", "--postfix-config", &pf]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("problem: Postfix smtpd_milters = inet:127.0.0.1:12301 does not name ticketmilter's socket inet:127.0.0.1:8897"), "{out}");
    assert!(out.contains("problem: Postfix milter_default_action = accept: while ticketmilter is unreachable mail is delivered without becoming a ticket"), "{out}");
    assert!(out.contains("2 problem(s) found"), "{out}");
    // A directory postconf cannot read is a problem, not a silent pass.
    let o = t.run(&["check", "--postfix-config", "/no/such/postfix"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("problem: Postfix settings:"), "{out}");
}

#[test]
fn the_shipped_example_loads_and_converts() {
    let t = Cli::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    t.ok(&["load", root.join("conf/example.sql").to_str().unwrap()]);
    let out = lines(&t.ok(&["process", "--rcpt", "support@msp.example", root.join("conf/examples/printer.eml").to_str().unwrap()]));
    assert_eq!(out[0]["outcome"], "created");
    assert_eq!(out[0]["sender"]["company"], "Example Corp");
    assert_eq!(out[0]["attachments"][0]["filename"], "display.png");
    assert_eq!(out[0]["tags"], serde_json::json!(["Printer", "Network"]));
    let o = t.check();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

// ------------------------------------------------------------------------------------------
// Projects, tasks, roles, work types, the new mailbox options, explain and messages
// ------------------------------------------------------------------------------------------

/// A CLI database loaded with the test directory.
fn with_directory() -> Cli {
    let t = Cli::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    t.ok(&["load", root.join("tests/fixtures/directory.sql").to_str().unwrap()]);
    common::fixture_loaded(&t.db());
    t
}

/// One integer from the CLI's database.
fn count(t: &Cli, sql: &str) -> i64 {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let store = ticketmilter::store::Store::open(&t.db(), ticketmilter::store::StoreOptions::default()).unwrap();
    let mut conn = store.conn().unwrap();
    match &mut *conn {
        ticketmilter::store::AnyConnection::Sqlite(c) => diesel::sql_query(sql).get_result::<N>(c).unwrap().n,
        ticketmilter::store::AnyConnection::Postgres(c) => diesel::sql_query(sql).get_result::<N>(c).unwrap().n,
    }
}

fn fails(t: &Cli, args: &[&str], code: i32, wanted: &[&str]) {
    let o = t.run(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    for w in wanted {
        assert!(err.contains(w), "{args:?}: stderr lacks {w:?}: {err}");
    }
}

#[test]
fn projects_and_tasks_get_numbers() {
    let t = with_directory();
    let today = chrono::Local::now().format("%Y%m%d").to_string();
    let out = t.ok(&["project", "add", "Website relaunch", "--company", "Example Corp"]);
    let project = format!("P{today}.0001");
    assert_eq!(out.trim(), format!("added project {project} \"Website relaunch\""));
    let out = t.ok(&["project", "add", "Internal wiki"]);
    assert!(out.contains(&format!("P{today}.0002")), "{out}");
    let list = t.ok(&["project", "list"]);
    assert!(list.starts_with("NUMBER"), "{list}");
    assert!(list.lines().any(|l| l.starts_with(&project) && l.contains("New") && l.contains("Example Corp") && l.ends_with("Website relaunch")), "{list}");
    assert!(list.lines().any(|l| l.starts_with("P20261120.0001") && l.contains("In Progress") && l.ends_with("Network refresh")), "{list}");

    let out = t.ok(&["task", "add", &project.to_lowercase(), "Migrate DNS", "--assign", "tina@msp.example"]);
    let task = format!("K{today}.0001");
    assert_eq!(out.trim(), format!("added task {task} \"Migrate DNS\" to {project}"));
    let list = t.ok(&["task", "list"]);
    assert!(list.lines().any(|l| l.starts_with(&task) && l.contains(&project) && l.contains("tina@msp.example") && l.ends_with("Migrate DNS")), "{list}");
    assert!(list.lines().any(|l| l.starts_with("K20261120.0002") && l.contains("Complete")), "{list}");
    assert_eq!(count(&t, &format!("SELECT count(*) AS n FROM tasks WHERE number = '{task}' AND assigned_resource_id = 1 AND status_id = 1")), 1);

    // A mail naming the new task becomes a task note.
    let path = t.dir.path().join("k.eml");
    std::fs::write(&path, format!("From: alice@example.com\nSubject: Re: {task}\nMessage-ID: <k1@example.com>\n\nDNS records attached.\n")).unwrap();
    let out = lines(&t.ok(&["process", "--rcpt", "support@msp.example", path.to_str().unwrap()]));
    assert_eq!(out[0]["outcome"], "note_added");
    assert_eq!(out[0]["object"]["kind"], "task_note");
    assert_eq!(out[0]["object"]["task_number"], task.as_str());
    assert_eq!(out[0]["object"]["project_number"], project.as_str());

    fails(&t, &["project", "add", "X", "--company", "Nope"], 64, &["no company named \"Nope\""]);
    fails(&t, &["project", "add", "  "], 64, &["a project needs a name"]);
    fails(&t, &["task", "add", "P20990101.0001", "X"], 64, &["no project P20990101.0001"]);
    fails(&t, &["task", "add", &project, "X", "--assign", "nobody@msp.example"], 64, &["no active resource with address nobody@msp.example"]);
    assert_eq!(count(&t, "SELECT count(*) AS n FROM tasks"), 3, "failed adds leave nothing behind");
}

#[test]
fn roles_and_work_types() {
    let t = with_directory();
    let out = t.ok(&["role", "add", "Consultant", "--rate", "120"]);
    assert_eq!(out.trim(), "added role \"Consultant\" (id 4)");
    let list = t.ok(&["role", "list"]);
    assert!(list.lines().any(|l| l.contains("Consultant") && l.contains("120.00") && l.contains("no") && l.ends_with("yes")), "{list}");
    assert!(list.lines().any(|l| l.contains("Engineer") && !l.contains("Senior") && l.contains("yes")), "{list}");
    fails(&t, &["role", "add", "senior engineer"], 64, &["a role named \"senior engineer\" exists"]);

    let out = t.ok(&["work-type", "add", "Travel", "--non-billable"]);
    assert_eq!(out.trim(), "added work type \"Travel\" (id 4)");
    let list = t.ok(&["work-type", "list"]);
    assert!(list.lines().any(|l| l.starts_with("4 ") && l.contains("Travel") && l.contains("no")), "{list}");
    fails(&t, &["work-type", "add", "remote support"], 64, &["exists"]);

    // The new role can be named by #R= and by the mailbox.
    t.ok(&["mailbox", "set", "support@msp.example", "--role", "Consultant", "--work-type", "Travel"]);
    let path = t.dir.path().join("t.eml");
    std::fs::write(&path, "From: tina@msp.example\nSubject: [T20261120.0001] VPN\nMessage-ID: <r1@msp.example>\n\n#T=30m\nDrove over.\n").unwrap();
    let out = t.ok(&["explain", "--rcpt", "support@msp.example", "--auth", "tina", path.to_str().unwrap()]);
    assert!(out.contains("→ time entry of 30 min (Consultant) on T20261120.0001"), "{out}");
    // `process` has no SMTP AUTH: the line stays text of a note.
    let out = lines(&t.ok(&["process", "--rcpt", "support@msp.example", path.to_str().unwrap()]));
    assert_eq!(out[0]["outcome"], "note_added");
    assert!(out[0]["reason"].as_str().unwrap().contains("not authenticated"), "{:?}", out[0]);
}

#[test]
fn mailbox_set_takes_the_entity_options_and_refuses_bad_values() {
    let t = with_directory();
    let mb = "support@msp.example";
    t.ok(&[
        "mailbox", "set", mb, "--allow", "tickets,ticket-notes,task-time", "--role", "Senior Engineer", "--work-type", "On-Site Support",
        "--create-contacts", "yes", "--cc-contacts", "no", "--only-when-to", "yes", "--cc-only", "ignore", "--completed-ticket", "new",
        "--reopen-status", "In Progress", "--max-attachment-size", "1000", "--max-attachments-size", "5000", "--inline-image-size", "100",
        "--strip-quotes", "no",
    ]);
    assert_eq!(count(&t, "SELECT count(*) AS n FROM mailboxes WHERE id = 1 AND allow_tickets = TRUE AND allow_ticket_notes = TRUE AND allow_ticket_time = FALSE AND allow_project_notes = FALSE AND allow_task_notes = FALSE AND allow_task_time = TRUE AND role_id = 2 AND work_type_id = 2 AND create_contacts = TRUE AND cc_contacts = FALSE AND only_when_to = TRUE AND cc_only = 'ignore' AND completed_ticket = 'new' AND reopen_status_id = 2 AND max_attachment_bytes = 1000 AND max_attachments_bytes = 5000 AND inline_image_bytes = 100 AND strip_quotes = FALSE"), 1);
    t.ok(&["mailbox", "set", mb, "--allow", "all", "--role", "default", "--reopen-status", ""]);
    assert_eq!(count(&t, "SELECT count(*) AS n FROM mailboxes WHERE id = 1 AND allow_project_notes = TRUE AND allow_ticket_time = TRUE AND role_id IS NULL AND reopen_status_id IS NULL"), 1);

    // The mailbox acts on them: only in Cc → ignored.
    let path = t.dir.path().join("cc.eml");
    std::fs::write(&path, "From: alice@example.com\nTo: bob@example.com\nCc: support@msp.example\nSubject: FYI\nMessage-ID: <cc1@example.com>\n\nx\n").unwrap();
    let out = lines(&t.ok(&["process", "--rcpt", mb, path.to_str().unwrap()]));
    assert_eq!(out[0]["outcome"], "ignored");
    assert_eq!(out[0]["reason"], "mailbox support@msp.example was only in Cc; it makes tickets only when it is in To");

    // Bad values: exit 64, a message naming the option and the valid values, nothing changed.
    fails(&t, &["mailbox", "set", mb, "--completed-ticket", "sometimes"], 64, &["completed-ticket \"sometimes\": expected reopen, note or new"]);
    fails(&t, &["mailbox", "set", mb, "--cc-only", "maybe"], 64, &["cc-only \"maybe\": expected note or ignore"]);
    fails(&t, &["mailbox", "set", mb, "--allow", "tickets,time"], 64, &["unknown entity kind \"time\"", "ticket-time", "task-notes"]);
    fails(&t, &["mailbox", "set", mb, "--role", "Janitor"], 64, &["no active role named \"Janitor\"", "Engineer, Senior Engineer, Project Manager"]);
    fails(&t, &["mailbox", "set", mb, "--work-type", "Gardening"], 64, &["Gardening", "Remote Support"]);
    fails(&t, &["mailbox", "set", mb, "--reopen-status", "Reopened"], 64, &["no active status named \"Reopened\"", "In Progress"]);
    fails(&t, &["mailbox", "set", "nobody@msp.example", "--only-when-to", "no"], 64, &["no mailbox nobody@msp.example"]);
    // One transaction: the good option before the bad one is not applied either.
    fails(&t, &["mailbox", "set", mb, "--strip-quotes", "yes", "--completed-ticket", "never"], 64, &["completed-ticket"]);
    assert_eq!(count(&t, "SELECT count(*) AS n FROM mailboxes WHERE id = 1 AND strip_quotes = FALSE AND completed_ticket = 'new'"), 1);
}

#[test]

fn clap_value_errors_exit_64() {
    let t = with_directory();
    fails(&t, &["mailbox", "set", "support@msp.example", "--create-contacts", "maybe"], 64, &["expected yes or no"]);
    fails(&t, &["mailbox", "set", "support@msp.example", "--max-attachment-size", "lots"], 64, &["max-attachment-size"]);
}

#[test]
fn explain_prints_the_trace_and_the_result() {
    let t = with_directory();
    let path = t.dir.path().join("reply.eml");
    std::fs::write(&path, "From: Alice <alice@example.com>\nTo: support@msp.example\nSubject: Re: [T20261120.0001] VPN drops every hour\nMessage-ID: <x1@example.com>\n\nStill dropping.\n").unwrap();
    let out = t.ok(&["explain", "--rcpt", "support@msp.example", path.to_str().unwrap()]);
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "== support@msp.example (support@msp.example)", "{out}");
    assert!(l.contains(&"  subject names ticket T20261120.0001: it exists"), "{out}");
    assert!(l.contains(&"  sender alice@example.com: contact of Example Corp"), "{out}");
    assert!(l.iter().any(|x| x.starts_with("  sender not authenticated:")), "{out}");
    assert_eq!(l.iter().filter(|x| x.starts_with("  result: ")).copied().collect::<Vec<&str>>(), ["  result: note_added ticket_note on T20261120.0001"], "{out}");
    // Nothing was written.
    assert_eq!(count(&t, "SELECT count(*) AS n FROM processed_messages"), 0);
    assert_eq!(count(&t, "SELECT count(*) AS n FROM ticket_notes"), 0);

    // With an assumed SMTP AUTH login a resource's #T= is a time entry; standard input works.
    let raw = "From: tina@msp.example\nSubject: K20261120.0001 switch\nMessage-ID: <x2@msp.example>\n\n#T=1:30 #S=Complete\nDone.\n";
    let o = t.stdin(&["explain", "--rcpt", "<support@msp.example>", "--auth", "tina"], raw.as_bytes());
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("  sender authenticated: SMTP AUTH as tina"), "{out}");
    assert!(out.contains("  result: time_entry_added task_time_entry on K20261120.0001"), "{out}");
    // A refusal shows its reason.
    let raw = "From: tina@msp.example\nSubject: K20261120.0001 switch\nMessage-ID: <x3@msp.example>\n\n#T=1 #R=Janitor\n";
    let o = t.stdin(&["explain", "--rcpt", "support@msp.example", "--auth", "tina", "-"], raw.as_bytes());
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("  result: rejected") && out.contains("  reason: unknown role \"Janitor\""), "{out}");
    assert_eq!(count(&t, "SELECT count(*) AS n FROM time_entries"), 0);
    // No mailbox among the recipients.
    let out = t.ok(&["explain", "--rcpt", "x@elsewhere.example", path.to_str().unwrap()]);
    assert!(out.contains("no recipient is an active mailbox") && out.contains("  result: not_ours"), "{out}");
    fails(&t, &["explain", "--rcpt", "support@msp.example", "/no/such.eml"], 66, &["cannot read /no/such.eml"]);
}

#[test]
fn messages_list_show_reprocess_and_purge() {
    let t = with_directory();
    let raw = "From: Alice <alice@example.com>\nTo: support@msp.example\nSubject: Printer on fire\nMessage-ID: <m1@example.com>\n\nReally.\n";
    let path = t.dir.path().join("m.eml");
    std::fs::write(&path, raw).unwrap();
    let out = lines(&t.ok(&["process", "--rcpt", "support@msp.example", "--from", "alice@example.com", path.to_str().unwrap()]));
    let number = out[0]["object"]["number"].as_str().unwrap().to_string();
    let private = "From: alice@example.com\nTo: support@msp.example\nSubject: Salary\nSensitivity: Private\nMessage-ID: <m2@example.com>\n\nsecret\n";
    assert_eq!(lines(&String::from_utf8(t.stdin(&["process", "--rcpt", "support@msp.example"], private.as_bytes()).stdout).unwrap())[0]["outcome"], "ignored");

    let list = t.ok(&["messages", "list"]);
    let rows: Vec<&str> = list.lines().collect();
    assert!(rows[0].starts_with("ID") && rows[0].contains("OUTCOME") && rows[0].contains("TICKET"), "{list}");
    assert_eq!(rows.len(), 3, "{list}");
    assert!(rows[1].starts_with("2 ") && rows[1].contains("ignored") && rows[1].contains("<>"), "newest first: {list}");
    assert!(rows[2].starts_with("1 ") && rows[2].contains("created") && rows[2].contains(&number) && rows[2].contains("alice@example.com"), "{list}");
    let only = t.ok(&["messages", "list", "--outcome", "ignored"]);
    assert_eq!(only.lines().count(), 2, "{only}");

    let shown: serde_json::Value = serde_json::from_str(&t.ok(&["messages", "show", "1"])).unwrap();
    assert_eq!(shown["outcome"], "created");
    assert_eq!(shown["ticket"], number.as_str());
    assert_eq!(shown["message_id"], "m1@example.com");
    assert_eq!(shown["raw_size"], raw.len());
    let o = t.run(&["messages", "show", "1", "--raw"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, raw.as_bytes(), "the message exactly as received");

    // A converted message is not converted again without --force.
    fails(&t, &["messages", "reprocess", "1"], 64, &["message 1 was converted already (created, ", &number, "--force"]);
    assert_eq!(count(&t, "SELECT count(*) AS n FROM tickets"), 3);
    // The ignored one is converted once its cause is gone (private mail stays private).
    let out = lines(&t.ok(&["messages", "reprocess", "2"]));
    assert_eq!(out[0]["outcome"], "ignored");
    let id = count(&t, "SELECT max(id) AS n FROM processed_messages");
    // --force converts it again; the duplicate rules see the first ticket and add a note to it.
    let out = lines(&t.ok(&["messages", "reprocess", "1", "--force"]));
    assert_eq!(out[0]["outcome"], "note_added", "{:?}", out[0]);
    assert_eq!(out[0]["object"]["ticket_number"], number.as_str());
    assert_eq!(count(&t, "SELECT count(*) AS n FROM tickets"), 3);
    assert_eq!(count(&t, "SELECT count(*) AS n FROM ticket_notes WHERE body = 'Really.'"), 1);
    fails(&t, &["messages", "show", "99"], 64, &["no stored message 99"]);
    fails(&t, &["messages", "reprocess", "99"], 64, &["no stored message 99"]);

    // Purge: nothing is old enough; then everything is.
    assert_eq!(t.ok(&["messages", "purge"]).trim(), "dropped the raw text of 0 message(s)");
    let sql = t.dir.path().join("age.sql");
    std::fs::write(&sql, "UPDATE processed_messages SET received_at = '2020-01-01 00:00:00';").unwrap();
    t.ok(&["load", sql.to_str().unwrap()]);
    assert_eq!(t.ok(&["messages", "purge"]).trim(), "dropped the raw text of 2 message(s)", "reprocessing replaced the two records");
    fails(&t, &["messages", "show", &id.to_string(), "--raw"], 64, &["raw text is no longer kept"]);
    t.ok(&["setting", "set", "raw_retention_days", "0"]);
    assert_eq!(t.ok(&["messages", "purge"]).trim(), "dropped the raw text of 0 message(s)");
}
