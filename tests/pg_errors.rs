//! PostgreSQL connection trouble as an administrator meets it: each cause named in one clear
//! line (missing database, unknown role, nothing listening, unknown host), the temporary-failure
//! exit code 75, never a generic "invalid connection url" and never a hang.

mod pg;

use std::process::Command;
use std::time::{Duration, Instant};

/// Run `ticketmilter --database URL check`-like commands; returns (exit code, stderr + stdout).
fn ticketmilter(url: &str, args: &[&str]) -> (i32, String, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ticketmilter"))
        .arg("--database")
        .arg(url)
        .args(args)
        .env_remove("TICKETMILTER_CONFIG")
        .env_remove("TICKETMILTER_DATABASE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run ticketmilter");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    (out.status.code().unwrap_or(-1), text, started.elapsed())
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn assert_clear(what: &str, (code, text, took): (i32, String, Duration), needle: &str) {
    assert_eq!(code, 75, "{what}: expected exit code 75 (temporary failure), got {code}:\n{text}");
    assert!(text.to_lowercase().contains(&needle.to_lowercase()), "{what}: the message should say {needle:?}:\n{text}");
    assert!(!text.contains("Invalid connection url"), "{what}: diesel's generic message leaked:\n{text}");
    assert!(text.lines().filter(|l| !l.trim().is_empty()).count() <= 3, "{what}: one clear line expected:\n{text}");
    assert!(took < Duration::from_secs(30), "{what}: took {took:?}");
}

#[test]
fn a_missing_database_is_named() {
    let url = pg::with_database(&pg::server_url(), "tm_no_such_database");
    assert_clear("missing database", ticketmilter(&url, &["migrate"]), "does not exist");
}

#[test]
fn an_unknown_role_is_named() {
    let server = pg::server_url();
    let url = server.replacen("postgres://postgres@", "postgres://tm_nobody@", 1);
    assert!(url != server, "the server URL names the role postgres: {server}");
    assert_clear("unknown role", ticketmilter(&url, &["migrate"]), "role \"tm_nobody\" does not exist");
}

#[test]
fn nothing_listening_is_named() {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", closed_port());
    assert_clear("closed port", ticketmilter(&url, &["process", "--rcpt", "support@msp.example", "/dev/null"]), "connection refused");
}

#[test]
fn an_unknown_host_is_named() {
    // `.invalid` never resolves (RFC 2606); the resolver answers at once or within the
    // connect timeout.
    let url = "postgres://postgres@tm-no-such-host.invalid:5432/postgres";
    let (code, text, took) = ticketmilter(url, &["migrate"]);
    assert_eq!(code, 75, "unknown host: exit code 75 expected:\n{text}");
    let t = text.to_lowercase();
    assert!(
        t.contains("could not translate host name") || t.contains("name or service not known") || t.contains("temporary failure in name resolution"),
        "unknown host: the message should name the host lookup:\n{text}"
    );
    assert!(t.contains("tm-no-such-host.invalid"), "the host should be named:\n{text}");
    assert!(took < Duration::from_secs(30), "unknown host: took {took:?}");
}

#[test]
fn the_password_never_reaches_the_message() {
    let url = format!("postgres://postgres:s3cret-pw@127.0.0.1:{}/postgres", closed_port());
    let (_, text, _) = ticketmilter(&url, &["migrate"]);
    assert!(!text.contains("s3cret-pw"), "the password is printed:\n{text}");
}
