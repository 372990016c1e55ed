//! The real binary: `process` output and exit codes, the admin commands, `check`, `load`, and
//! configuration errors.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::binary;

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        Cli { dir: tempfile::tempdir().unwrap() }
    }

    fn db(&self) -> String {
        format!("sqlite:{}", self.dir.path().join("t.db").display())
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

    let o = Command::new(binary())
        .args(["--config", "/dev/null", "--database", "sqlite:/no/such/dir/t.db", "process", "--rcpt", "a@b.example", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(75), "database trouble is temporary");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("directory /no/such/dir does not exist"), "{err}");

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

#[test]
fn config_file_and_environment_name_the_database() {
    let t = Cli::new();
    let db = t.dir.path().join("from-config.db");
    let cfg = t.dir.path().join("c.toml");
    std::fs::write(&cfg, format!("[database]\nurl = \"sqlite:{}\"\n", db.display())).unwrap();
    let o = Command::new(binary()).env_remove("TICKETMILTER_DATABASE").args(["--config", cfg.to_str().unwrap(), "migrate"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(db.exists());
    let db2 = t.dir.path().join("from-env.db");
    let o = Command::new(binary())
        .env("TICKETMILTER_CONFIG", cfg.to_str().unwrap())
        .env("TICKETMILTER_DATABASE", db2.to_str().unwrap())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(db2.exists());
}

#[test]
fn check_lists_problems() {
    let t = Cli::new();
    let o = t.run(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("problem: database needs") && out.contains("ticketmilter migrate"), "{out}");
    t.ok(&["migrate"]);
    let o = t.run(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("problem: no active mailbox"));
    let sql = t.dir.path().join("bad.sql");
    std::fs::write(&sql, "INSERT INTO settings (key, value) VALUES ('max_tags', 'many'), ('colour', 'red');\nINSERT INTO mailboxes (address, name, active, note_visibility, unknown_sender, created_at) VALUES ('help@x.example', '', TRUE, 'all', 'fallback', CURRENT_TIMESTAMP);\n").unwrap();
    t.ok(&["load", sql.to_str().unwrap()]);
    let o = t.run(&["check"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1));
    assert!(out.contains("problem: setting max_tags = \"many\""), "{out}");
    assert!(out.contains("problem: unknown setting \"colour\""), "{out}");
    assert!(out.contains("help@x.example: unknown senders get tickets without a company"), "{out}");
    assert!(out.contains("3 problem(s) found"), "{out}");
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
    let o = t.run(&["check"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}
