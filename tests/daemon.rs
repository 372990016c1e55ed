//! The daemon as an administrator runs it: refusing to start with a clear message, reloading on
//! SIGHUP and on its own when the SQL configuration changes, stopping cleanly on SIGTERM.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::Command;

use common::daemon::Daemon;
use common::{free_port, TestDb, binary};

#[test]
fn sighup_and_the_reload_interval_pick_up_sql_changes_and_sigterm_stops_cleanly() {
    let db = TestDb::directory();
    let port = free_port();
    let mut d = Daemon::start(&db, "[milter]\nreload_interval = 1\n", &format!("inet:127.0.0.1:{port}"));
    d.wait_for(&format!("listening on inet:127.0.0.1:{port}"), 20);
    assert!(d.log().contains("mailboxes: alerts@msp.example, nofallback@msp.example, support@msp.example"), "{}", d.log());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());

    // A change in SQL is noticed without any signal.
    db.store.write(|c| ticketmilter::store::mailboxes::add(c, "billing@msp.example", &Default::default())).unwrap();
    d.wait_for("SQL configuration reloaded: 4 mailbox(es) (alerts@msp.example, billing@msp.example", 10);

    // SIGHUP rereads the file and the SQL configuration.
    d.signal(libc::SIGHUP);
    d.wait_for("SIGHUP: reloading the configuration", 10);

    d.signal(libc::SIGTERM);
    let status = d.wait_exit(20).expect("the daemon exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}; log:\n{}", d.log());
    assert!(d.log().contains("ticketmilter stopped"));
}

#[test]
fn a_bad_config_reload_keeps_the_old_one() {
    let db = TestDb::directory();
    let port = free_port();
    let d = Daemon::start(&db, "[milter]\nreload_interval = 0\n", &format!("inet:127.0.0.1:{port}"));
    d.wait_for("listening on", 20);
    std::fs::write(d.config_path(), "[milter]\nno_such_key = 1\n").unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for("unknown field `no_such_key`", 10);
    d.wait_for("keeping the previous configuration", 10);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok(), "still serving");
}

#[test]
fn refuses_to_start_when_the_socket_is_taken_or_the_config_is_wrong() {
    let db = TestDb::directory();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut d = Daemon::start(&db, "", &format!("inet:127.0.0.1:{port}"));
    let status = d.wait_exit(20).expect("exits");
    assert_eq!(status.code(), Some(78), "{}", d.log());
    assert!(d.log().contains("already in use"), "{}", d.log());

    // A unix socket that a live process serves.
    let sock = db.dir.path().join("m.sock");
    let _live = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut d = Daemon::start(&db, "", &format!("unix:{}", sock.display()));
    assert_eq!(d.wait_exit(20).and_then(|s| s.code()), Some(78));
    assert!(d.log().contains("in use by another process"), "{}", d.log());

    let mut d = Daemon::start(&db, "[milter]\nsocket = \"tcp:1\"\n", "inet:127.0.0.1:1");
    assert_eq!(d.wait_exit(20).and_then(|s| s.code()), Some(78));
    assert!(d.log().contains("milter.socket"), "{}", d.log());

    let mut d = Daemon::start(&db, "", "bogus:thing");
    assert_eq!(d.wait_exit(20).and_then(|s| s.code()), Some(78));
    assert!(d.log().contains("unknown socket type"), "{}", d.log());
}

#[test]
fn unix_socket_gets_its_mode_and_is_removed_on_exit() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::directory();
    let sock = db.dir.path().join("tm.sock");
    let mut d = Daemon::start(&db, "[milter]\nsocket_mode = \"0600\"\n", &format!("local:{}", sock.display()));
    d.wait_for("listening on unix:", 20);
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::os::unix::net::UnixStream::connect(&sock).is_ok());
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(20).unwrap().success());
    assert!(!sock.exists(), "socket removed at exit");
}

#[test]
fn check_reports_the_socket() {
    let db = TestDb::directory();
    let port = free_port();
    let cfg = db.dir.path().join("c.toml");
    std::fs::write(&cfg, format!("[milter]\nsocket = \"inet:127.0.0.1:{port}\"\n")).unwrap();
    let out = Command::new(binary()).args(["--config", cfg.to_str().unwrap(), "--database", &db.url(), "check"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("milter socket inet:127.0.0.1:{port} can be bound")));
    let _l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = Command::new(binary()).args(["--config", cfg.to_str().unwrap(), "--database", &db.url(), "check"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("answers (a milter is running)"));
    std::fs::write(&cfg, "[milter]\nsocket = \"unix:/no/such/dir/t.sock\"\n").unwrap();
    let out = Command::new(binary()).args(["--config", cfg.to_str().unwrap(), "--database", &db.url(), "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("directory /no/such/dir does not exist"));
}
