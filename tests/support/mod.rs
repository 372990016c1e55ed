//! A private Postfix, an smtp-sink and the built ticketmilter for end-to-end tests.
//!
//! [`Env::start`] builds, in a fresh directory under /tmp:
//! - a database loaded with tests/fixtures/directory.sql (`ticketmilter load`): a SQLite file,
//!   or with `TICKETMILTER_TEST_BACKEND=postgres` a fresh PostgreSQL database (the backend is
//!   chosen in tests/common/mod.rs, shared with the other tests);
//! - `smtp-sink -u postfix -d DIR/sink/%M. 127.0.0.1:SINKPORT 100`, which stores what Postfix
//!   relays (one file per transaction, with `X-Rcpt-Args:` lines for the RCPT TOs);
//! - `ticketmilter run --socket inet:127.0.0.1:MILTERPORT`, logging to DIR/milter.log;
//! - a Postfix instance (`postfix -c DIR/pf start`, chroot `n`, its own queue, data directory
//!   and maillog DIR/pf/maillog) with two smtpd services on 127.0.0.1:
//!   * `smtp_port`: the milter (`smtpd_milters`) in front of the queue; relays to the sink;
//!   * `front_port`: no milter; its mail is queued and forwarded (content_filter, transport
//!     `tmfront`) to `smtp_port`, so that Postfix itself is the SMTP client of the milter'd
//!     smtpd and keeps a tempfailed message deferred in its queue (as an upstream MX would).
//!
//! [`Env::start_setup`] takes a [`Setup`] for tests of faults (tests/faults.rs): the backend of a
//! test about one backend, the SQLite database on a small tmpfs of its own, shorter timeouts of
//! the milter and of Postfix. Such tests also kill and restart the milter, hold the database's
//! write lock, fill the tmpfs, and send with [`smtp_send`], a plain SMTP client that reports every
//! reply (many concurrent messages without a process each).
//!
//! Every wait has a deadline; every external command runs under a timeout. Dropping the
//! [`Env`] stops Postfix (`postfix -c DIR stop`, then its master by pid if it lingers), the
//! milter and the sink, unmounts a tmpfs of [`Setup::database_disk_bytes`], and removes the
//! directory (kept when `TICKETMILTER_E2E_KEEP=1`). When
//! the drop happens during a panic (a failed assertion), the tails of the milter log, Postfix's
//! maillog and the sink log are printed first.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
pub mod common;

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};

use common::Backend;

/// Slack for one SMTP transaction or admin command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long anything asynchronous (delivery, a log line, a reload) may take to show up.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// The milter's `max_message_size` in these tests.
pub const MAX_MESSAGE_SIZE: usize = 20_000;

// ------------------------------------------------------------------------------------------
// Tools
// ------------------------------------------------------------------------------------------

/// (program, Debian package) the tests need.
const TOOLS: &[(&str, &str)] =
    &[("postfix", "postfix"), ("postqueue", "postfix"), ("smtp-sink", "postfix"), ("swaks", "swaks")];

/// The absolute path of `program`, searched in PATH and the sbin directories (Postfix's
/// programs live in /usr/sbin, which a non-login PATH may lack). Panics naming the package.
pub fn tool(program: &str) -> PathBuf {
    let package = TOOLS.iter().find(|(p, _)| *p == program).map_or(program, |(_, pkg)| pkg);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for d in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        dirs.push(PathBuf::from(d));
    }
    for d in dirs {
        let p = d.join(program);
        if let Ok(m) = fs::metadata(&p) {
            use std::os::unix::fs::PermissionsExt;
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return p;
            }
        }
    }
    let how = if std::env::var("TICKETMILTER_E2E").as_deref() == Ok("1") {
        "TICKETMILTER_E2E=1 is set: the end-to-end tests must run"
    } else {
        "the Postfix end-to-end tests do not skip silently"
    };
    panic!(
        "`{program}` is not installed, and {how}. Install the Debian package `{package}`: \
         DEBIAN_FRONTEND=noninteractive apt-get install -y {package}"
    );
}

fn require_environment() {
    for (program, _) in TOOLS {
        tool(program);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "the Postfix end-to-end tests must run as root: `postfix start` and `smtp-sink -u postfix` \
             need it (the private instance touches nothing outside its temporary directory)"
        );
    }
}

/// (uid, gid) of the `postfix` user.
fn postfix_user() -> (u32, u32) {
    let name = CString::new("postfix").unwrap();
    // SAFETY: getpwnam with a valid C string; the result is read immediately, single use.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        panic!("there is no `postfix` user: install the Debian package `postfix` (apt-get install -y postfix)");
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

// ------------------------------------------------------------------------------------------
// Ports, processes, waiting
// ------------------------------------------------------------------------------------------

/// A free TCP port on 127.0.0.1 below the kernel's ephemeral range (32768+), so that no
/// outgoing connection of Postfix can take it between choosing and binding. Ports are never
/// handed out twice in one test process; the start differs per process (parallel runs).
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = (std::process::id() * 37) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = (LOW + (start + n) % SPAN) as u16;
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        let given = given.get_or_insert_with(HashSet::new);
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1 between {LOW} and {}", LOW + SPAN);
}

/// Poll `probe` every 50 ms until it gives a value; panic with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

static COMMAND_SEQ: AtomicU32 = AtomicU32::new(0);

/// Run `cmd` to completion within `timeout` (killed and a panic after that). Output goes to
/// files in `scratch`, never to pipes: `postfix start` leaves a daemon that would inherit
/// them and keep a reader waiting forever.
pub fn run(cmd: &mut Command, timeout: Duration, scratch: &Path) -> Output {
    let n = COMMAND_SEQ.fetch_add(1, Ordering::SeqCst);
    let out_path = scratch.join(format!("cmd-{n}.out"));
    let err_path = scratch.join(format!("cmd-{n}.err"));
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("command output file"))
        .stderr(File::create(&err_path).expect("command error file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{desc} did not finish within {timeout:?}; output so far:\n{}{}",
                    read_lossy(&out_path),
                    read_lossy(&err_path)
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for {desc}: {e}"),
        }
    };
    let out = Output { status, stdout: read_lossy(&out_path), stderr: read_lossy(&err_path) };
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    out
}

pub fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// A background process we started; stopped with SIGTERM, then SIGKILL after `grace`.
struct Daemon {
    name: &'static str,
    child: Child,
}

impl Daemon {
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop within {grace:?} of SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Does something accept TCP connections on 127.0.0.1:port?
fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

/// Connect, read the 220 greeting, say QUIT: the SMTP server on `port` is up.
fn smtp_greets(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 512];
    let greeted = matches!(s.read(&mut buf), Ok(n) if n >= 3 && &buf[..3] == b"220");
    let _ = s.write_all(b"QUIT\r\n");
    let _ = s.read(&mut buf);
    greeted
}

// ------------------------------------------------------------------------------------------
// Messages and SMTP
// ------------------------------------------------------------------------------------------

/// A message with CRLF line ends. `extra` are further header lines (`Name: value`).
pub fn message(from: &str, to: &str, subject: &str, message_id: &str, extra: &[&str], body: &str) -> String {
    let mut m = String::new();
    m.push_str(&format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n"));
    m.push_str(&format!("Message-ID: <{message_id}>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n"));
    for h in extra {
        m.push_str(h);
        m.push_str("\r\n");
    }
    m.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    for line in body.lines() {
        m.push_str(line);
        m.push_str("\r\n");
    }
    m
}

/// A Message-ID (without brackets) unique to this run.
pub fn unique_id(tag: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{tag}.{}.{}.{nanos}@client.tmtest.invalid", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst))
}

/// One SMTP transaction as swaks reported it.
#[derive(Debug)]
pub struct Sent {
    pub output: String,
    pub status: ExitStatus,
}

impl Sent {
    /// The server's reply to the end of the message (or to the command that ended the
    /// transaction early), without swaks' `<-`/`<**` marker: e.g. `250 2.0.0 Ok: queued as X`.
    pub fn reply(&self) -> String {
        let lines: Vec<&str> = self.output.lines().collect();
        let server = |l: &&&str| l.starts_with("<-") || l.starts_with("<**");
        let strip = |l: &str| l.trim_start_matches("<**").trim_start_matches("<-").trim().to_string();
        if let Some(i) = lines.iter().position(|l| l.starts_with("<-") && l.contains(" 354 "))
            && let Some(l) = lines[i + 1..].iter().find(server)
        {
            return strip(l);
        }
        lines.iter().find(|l| l.starts_with("<**")).map(|l| strip(l)).unwrap_or_default()
    }

    /// The Postfix queue id from `250 … queued as ID`.
    pub fn queue_id(&self) -> Option<String> {
        let r = self.reply();
        r.strip_prefix("250 ")?.split("queued as ").nth(1).map(|q| q.trim().to_string())
    }

    /// The queue id, or a panic showing the dialogue.
    pub fn queued(&self) -> String {
        self.queue_id().unwrap_or_else(|| {
            panic!("the message was not accepted (reply {:?}); swaks said:\n{}", self.reply(), self.output)
        })
    }
}

/// Header values of `name` (case-insensitive, unfolded, trimmed) in a message or sink dump.
pub fn header_values(text: &str, name: &str) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            fields.push(line.to_string());
        }
    }
    fields
        .iter()
        .filter_map(|f| f.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// The `key=value` fields of a milter log line (`reason="…"` not included).
pub fn log_field(line: &str, key: &str) -> Option<String> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('='))).map(str::to_string)
}

// ------------------------------------------------------------------------------------------
// The environment
// ------------------------------------------------------------------------------------------

pub struct Env {
    /// The temporary directory holding everything (None once handed over for keeping).
    dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub pf_dir: PathBuf,
    pub sink_dir: PathBuf,
    /// The database URL the milter and the admin commands use (`sqlite:PATH` or `postgres://…`).
    pub db_url: String,
    /// The PostgreSQL cluster of this test alone ([`Env::start_with_own_database_server`]).
    own_cluster: Option<OwnCluster>,
    pub config_path: PathBuf,
    pub milter_log: PathBuf,
    pub maillog: PathBuf,
    pub smtp_port: u16,
    pub front_port: u16,
    pub sink_port: u16,
    pub milter_port: u16,
    /// Where the milter's notification sender delivers (default: the milter'd smtpd, which
    /// relays to the sink; a test may point it at a port it controls).
    pub notify_port: u16,
    scratch: PathBuf,
    /// The milter; behind a lock so that a test may kill and restart it while other threads
    /// send mail ([`Env::kill_milter`], [`Env::restart_milter`]).
    milter: Mutex<Option<Daemon>>,
    sink: Option<Daemon>,
    /// The tmpfs the SQLite database lives on ([`Setup::database_disk_bytes`]).
    db_disk: Option<Tmpfs>,
    postfix_started: bool,
    msg_seq: AtomicU32,
}

impl Env {
    /// Start sink, milter and Postfix. Panics (after cleaning up) when any part does not come up.
    pub fn start() -> Env {
        Env::start_with_settings(&[])
    }

    /// [`Env::start`], with SQL settings (`ticketmilter setting set KEY VALUE`) written after the
    /// fixture is loaded and before the milter starts: its first snapshot has them, so no reload
    /// has to be waited for.
    pub fn start_with_settings(settings: &[(&str, &str)]) -> Env {
        Env::start_with(settings, None)
    }

    /// [`Env::start_with_settings`], with the notification sender pointed at `notify_port`
    /// (None: the milter'd smtpd, as an installation that relays through its own Postfix).
    pub fn start_with(settings: &[(&str, &str)], notify_port: Option<u16>) -> Env {
        Env::start_setup(Setup { settings, notify_port, ..Setup::default() })
    }

    /// [`Env::start`] on a database server that [`Env::take_database_down`] may stop: with
    /// PostgreSQL a private cluster of this test alone (the shared test server stays up for
    /// the other tests); with SQLite the same as [`Env::start`].
    pub fn start_with_own_database_server() -> Env {
        Env::start_setup(Setup { own_database_server: true, ..Setup::default() })
    }

    /// Start sink, milter and Postfix as `setup` says ([`Setup::default`] is [`Env::start`]).
    pub fn start_setup(setup: Setup<'_>) -> Env {
        let Setup {
            settings,
            notify_port,
            own_database_server: own_server,
            backend,
            database_disk_bytes,
            busy_timeout_ms,
            connect_timeout,
            eom_timeout,
            milter_content_timeout,
        } = setup;
        let backend = backend.unwrap_or_else(common::backend);
        assert!(
            database_disk_bytes.is_none() || backend == Backend::Sqlite,
            "Setup::database_disk_bytes puts a SQLite file on a tmpfs; it needs Setup::backend = Some(Backend::Sqlite)"
        );
        require_environment();
        let (pf_uid, pf_gid) = postfix_user();
        let base = if Path::new("/tmp").is_dir() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        // Short paths: Postfix's unix sockets live under the queue directory (sun_path ≤ 107).
        let dir = tempfile::Builder::new().prefix("tm-e2e-").tempdir_in(&base).expect("temporary directory");
        let root = dir.path().to_path_buf();
        let mode = |p: &Path, m: u32| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(p, fs::Permissions::from_mode(m)).expect("chmod");
        };
        // The postfix user (smtp-sink -u postfix, Postfix daemons) must reach its directories.
        mode(&root, 0o755);
        let pf_dir = root.join("pf");
        let sink_dir = root.join("sink");
        let data_dir = root.join("pfdata");
        let scratch = root.join("scratch");
        let db_dir = root.join("db");
        for d in [&pf_dir, &pf_dir.join("queue"), &sink_dir, &data_dir, &scratch, &db_dir] {
            fs::create_dir_all(d).expect("mkdir");
        }
        for d in [&sink_dir, &data_dir] {
            std::os::unix::fs::chown(d, Some(pf_uid), Some(pf_gid)).expect("chown postfix");
        }
        // Mounted before anything can fail past this point: the Env below unmounts it on drop.
        let db_disk = database_disk_bytes.map(|bytes| Tmpfs::mount(&db_dir, bytes, &scratch));
        let (db_url, own_cluster) = match (backend, own_server) {
            (Backend::Sqlite, _) => (format!("sqlite:{}", db_dir.join("tickets.db").display()), None),
            (Backend::Postgres, false) => (common::new_database(&db_dir, "tickets"), None),
            (Backend::Postgres, true) => {
                let (cluster, url) = OwnCluster::start();
                (url, Some(cluster))
            }
        };
        let mut env = Env {
            dir: Some(dir),
            db_url,
            own_cluster,
            config_path: root.join("ticketmilter.toml"),
            milter_log: root.join("milter.log"),
            maillog: pf_dir.join("maillog"),
            smtp_port: free_port(),
            front_port: free_port(),
            sink_port: free_port(),
            milter_port: free_port(),
            notify_port: 0,
            root,
            pf_dir,
            sink_dir,
            scratch,
            milter: Mutex::new(None),
            sink: None,
            db_disk,
            postfix_started: false,
            msg_seq: AtomicU32::new(0),
        };
        env.notify_port = notify_port.unwrap_or(env.smtp_port);
        fs::write(
            &env.config_path,
            format!(
                "# ticketmilter for the Postfix end-to-end tests\n\
                 [database]\nurl = \"{db}\"\nbusy_timeout_ms = {busy_timeout_ms}\nconnect_timeout = {connect_timeout}\n\n\
                 [milter]\nsocket = \"inet:127.0.0.1:{port}\"\nmax_message_size = {max}\n\
                 reload_interval = 1\neom_timeout = {eom_timeout}\n\n\
                 [notify]\nrelay = \"127.0.0.1\"\nport = {notify}\ninterval = 1\ntimeout = 10\n\
                 backoff = 1\nbackoff_max = 2\nmax_attempts = 50\nlease = 30\n\n\
                 [log]\nlevel = \"info\"\ntarget = \"stderr\"\n",
                db = env.db_url,
                notify = env.notify_port,
                port = env.milter_port,
                max = MAX_MESSAGE_SIZE
            ),
        )
        .expect("write ticketmilter.toml");

        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/directory.sql");
        env.admin(&["load", fixture.to_str().unwrap()]);
        common::fixture_loaded(&env.db_url);
        for (key, value) in settings {
            env.admin(&["setting", "set", key, value]);
        }

        env.start_sink();
        env.start_milter();
        env.start_postfix(data_dir, milter_content_timeout);
        env
    }

    fn start_sink(&mut self) {
        let log = File::create(self.root.join("sink.log")).expect("sink.log");
        let child = Command::new(tool("smtp-sink"))
            .arg("-u")
            .arg("postfix")
            .arg("-d")
            .arg(format!("{}/%M.", self.sink_dir.display()))
            .arg(format!("127.0.0.1:{}", self.sink_port))
            .arg("100")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start smtp-sink");
        self.sink = Some(Daemon { name: "smtp-sink", child });
        let port = self.sink_port;
        wait_for("smtp-sink to listen", EVENT_TIMEOUT, || {
            if let Some(s) = self.sink.as_mut().unwrap().exited() {
                panic!("smtp-sink exited ({s}):\n{}", read_lossy(&self.root.join("sink.log")));
            }
            listening(port).then_some(())
        });
    }

    fn start_milter(&self) {
        self.spawn_milter(false);
    }

    /// Start the milter; with `append` its log continues the old one (a restart).
    fn spawn_milter(&self, append: bool) {
        let mut slot = self.milter.lock().unwrap_or_else(|p| p.into_inner());
        assert!(slot.is_none(), "the milter runs already");
        let logged = if append { self.milter_log().len() } else { 0 };
        let log = if append {
            fs::OpenOptions::new().append(true).create(true).open(&self.milter_log).expect("milter.log")
        } else {
            File::create(&self.milter_log).expect("milter.log")
        };
        let child = Command::new(env!("CARGO_BIN_EXE_ticketmilter"))
            .arg("--config")
            .arg(&self.config_path)
            .arg("--database")
            .arg(&self.db_url)
            .arg("run")
            .arg("--socket")
            .arg(format!("inet:127.0.0.1:{}", self.milter_port))
            .env_remove("RUST_LOG")
            .env_remove("TICKETMILTER_CONFIG")
            .env_remove("TICKETMILTER_DATABASE")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start ticketmilter");
        let daemon = slot.insert(Daemon { name: "ticketmilter", child });
        wait_for("ticketmilter to listen", EVENT_TIMEOUT, || {
            if let Some(s) = daemon.exited() {
                panic!("ticketmilter exited ({s}):\n{}", read_lossy(&self.milter_log));
            }
            read_lossy(&self.milter_log).get(logged..).is_some_and(|new| new.contains(" listening on ")).then_some(())
        });
    }

    fn start_postfix(&mut self, data_dir: PathBuf, milter_content_timeout: u64) {
        let d = self.pf_dir.display().to_string();
        let main_cf = format!(
            "# private Postfix for ticketmilter's end-to-end tests\n\
             compatibility_level = 3.6\n\
             queue_directory = {d}/queue\n\
             data_directory = {data}\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = postfix.tmtest.invalid\n\
             mydomain = tmtest.invalid\n\
             myorigin = $myhostname\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mydestination =\n\
             local_recipient_maps =\n\
             local_transport = error:5.1.1 no local delivery in this test instance\n\
             relay_domains =\n\
             mynetworks = 127.0.0.0/8\n\
             relayhost = [127.0.0.1]:{sink}\n\
             smtp_dns_support_level = disabled\n\
             smtpd_peername_lookup = no\n\
             alias_maps =\n\
             alias_database =\n\
             smtputf8_enable = no\n\
             biff = no\n\
             in_flow_delay = 0\n\
             smtpd_milters = inet:127.0.0.1:{milter}\n\
             non_smtpd_milters = $smtpd_milters\n\
             milter_default_action = tempfail\n\
             milter_connect_timeout = 10s\n\
             milter_command_timeout = 20s\n\
             milter_content_timeout = {content_timeout}s\n\
             maillog_file = {d}/maillog\n\
             maillog_file_prefixes = /var, /dev/stdout, {d}\n\
             syslog_name = postfix-tmtest\n",
            data = data_dir.display(),
            sink = self.sink_port,
            milter = self.milter_port,
            content_timeout = milter_content_timeout,
        );
        let master_cf = format!(
            "# service type private unpriv chroot wakeup maxproc command\n\
             127.0.0.1:{smtp} inet n - n - - smtpd\n\
             127.0.0.1:{front} inet n - n - - smtpd\n  \
               -o smtpd_milters=\n  \
               -o content_filter=tmfront:[127.0.0.1]:{smtp}\n\
             tmfront unix - - n - - smtp\n  \
               -o myhostname=front.tmtest.invalid\n\
             pickup unix n - n 60 1 pickup\n\
             cleanup unix n - n - 0 cleanup\n\
             qmgr unix n - n 300 1 qmgr\n\
             rewrite unix - - n - - trivial-rewrite\n\
             bounce unix - - n - 0 bounce\n\
             defer unix - - n - 0 bounce\n\
             trace unix - - n - 0 bounce\n\
             verify unix - - n - 1 verify\n\
             flush unix n - n 1000? 0 flush\n\
             proxymap unix - - n - - proxymap\n\
             proxywrite unix - - n - 1 proxymap\n\
             smtp unix - - n - - smtp\n\
             relay unix - - n - - smtp\n\
             showq unix n - n - - showq\n\
             error unix - - n - - error\n\
             retry unix - - n - - error\n\
             discard unix - - n - - discard\n\
             anvil unix - - n - 1 anvil\n\
             scache unix - - n - 1 scache\n\
             postlog unix-dgram n - n - 1 postlogd\n",
            smtp = self.smtp_port,
            front = self.front_port,
        );
        fs::write(self.pf_dir.join("main.cf"), main_cf).expect("main.cf");
        fs::write(self.pf_dir.join("master.cf"), master_cf).expect("master.cf");
        self.postfix_started = true;
        let out = run(
            Command::new(tool("postfix")).arg("-c").arg(&self.pf_dir).arg("start"),
            Duration::from_secs(60),
            &self.scratch,
        );
        assert!(out.status.success(), "postfix -c {d} start failed ({}):\n{}", out.status, out.text());
        for port in [self.smtp_port, self.front_port] {
            wait_for(&format!("Postfix's smtpd to greet on port {port}"), EVENT_TIMEOUT, || {
                smtp_greets(port).then_some(())
            });
        }
    }

    /// Run a ticketmilter admin command on the test database; panics when it fails.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = run(
            Command::new(env!("CARGO_BIN_EXE_ticketmilter"))
                .arg("--config")
                .arg(&self.config_path)
                .arg("--database")
                .arg(&self.db_url)
                .args(args)
                .env_remove("RUST_LOG")
                .env_remove("TICKETMILTER_CONFIG")
                .env_remove("TICKETMILTER_DATABASE"),
            COMMAND_TIMEOUT,
            &self.scratch,
        );
        assert!(out.status.success(), "ticketmilter {args:?} failed ({}):\n{}", out.status, out.text());
        out.stdout
    }

    /// Change an SQL setting while the milter runs, and wait until the milter has reloaded its
    /// SQL configuration (reload_interval = 1). The milter logs "SQL configuration reloaded" only
    /// when the configuration rows changed, so a line after the change is this change's; `value`
    /// must therefore differ from the current value. Change one setting per call.
    pub fn set_setting(&self, key: &str, value: &str) {
        let logged = self.milter_log().len();
        self.admin(&["setting", "set", key, value]);
        wait_for(&format!("the milter to reload the SQL configuration after {key} = {value:?}"), EVENT_TIMEOUT, || {
            self.milter_log().get(logged..).is_some_and(|new| new.contains("SQL configuration reloaded")).then_some(())
        });
    }

    /// `ticketmilter ticket show NUMBER` as JSON.
    pub fn ticket(&self, number: &str) -> serde_json::Value {
        let out = self.admin(&["ticket", "show", number]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ticket show {number} printed no JSON ({e}):\n{out}"))
    }

    /// Send `msg` with swaks from `from` to `rcpts` through the smtpd on `port`.
    pub fn swaks(&self, port: u16, from: &str, rcpts: &[&str], msg: &str) -> Sent {
        self.swaks_adding(port, from, rcpts, msg, &[])
    }

    /// [`Env::swaks`], with header lines (`Name: value`) that swaks adds at the end of the
    /// message's header (`--add-header`, once per line).
    pub fn swaks_adding(&self, port: u16, from: &str, rcpts: &[&str], msg: &str, add_headers: &[&str]) -> Sent {
        for h in add_headers {
            // swaks would split a literal "\n" into two headers and expand %TOKENS%.
            assert!(
                !h.contains(['\r', '\n', '\\', '%']) && h.contains(':'),
                "not a header line swaks adds verbatim: {h:?}"
            );
        }
        let n = self.msg_seq.fetch_add(1, Ordering::SeqCst);
        let file = self.scratch.join(format!("msg-{n}.eml"));
        fs::write(&file, msg).expect("write message");
        let out = run(
            Command::new(tool("swaks"))
                .arg("--server")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--helo")
                .arg("client.tmtest.invalid")
                .arg("--from")
                .arg(from)
                .arg("--to")
                .arg(rcpts.join(","))
                .arg("--data")
                .arg(format!("@{}", file.display()))
                .arg("--timeout")
                .arg("20")
                .arg("--suppress-data")
                .args(add_headers.iter().flat_map(|h| ["--add-header", h])),
            COMMAND_TIMEOUT,
            &self.scratch,
        );
        Sent { output: out.text(), status: out.status }
    }

    /// Send through the milter'd smtpd.
    pub fn send(&self, from: &str, rcpts: &[&str], msg: &str) -> Sent {
        self.swaks(self.smtp_port, from, rcpts, msg)
    }

    /// Send through the milter'd smtpd, swaks adding `add_headers` (see [`Env::swaks_adding`]).
    pub fn send_adding(&self, from: &str, rcpts: &[&str], msg: &str, add_headers: &[&str]) -> Sent {
        self.swaks_adding(self.smtp_port, from, rcpts, msg, add_headers)
    }

    pub fn milter_log(&self) -> String {
        read_lossy(&self.milter_log)
    }

    pub fn maillog(&self) -> String {
        read_lossy(&self.maillog)
    }

    /// The milter's lines that mention Postfix queue id `qid`.
    pub fn milter_lines(&self, qid: &str) -> Vec<String> {
        let needle = format!("{qid}: ");
        self.milter_log().lines().filter(|l| l.contains(&needle)).map(str::to_string).collect()
    }

    /// Wait for the milter's outcome line `QID: mailbox=MAILBOX …`.
    pub fn milter_line(&self, qid: &str, mailbox: &str) -> String {
        let needle = format!("{qid}: mailbox={mailbox} ");
        wait_for(&format!("the milter's log line {needle:?}"), EVENT_TIMEOUT, || {
            self.milter_log().lines().find(|l| l.contains(&needle)).map(str::to_string)
        })
    }

    /// Maillog lines of queue id `qid`.
    pub fn maillog_lines(&self, qid: &str) -> Vec<String> {
        let needle = format!(" {qid}: ");
        self.maillog().lines().filter(|l| l.contains(&needle)).map(str::to_string).collect()
    }

    /// Wait until a maillog line of `qid` contains `text`; returns the line.
    pub fn wait_maillog(&self, qid: &str, text: &str) -> String {
        wait_for(&format!("a maillog line of {qid} with {text:?}"), EVENT_TIMEOUT, || {
            self.maillog_lines(qid).into_iter().find(|l| l.contains(text))
        })
    }

    /// Wait until Postfix is done with `qid` (`QID: removed`).
    pub fn wait_removed(&self, qid: &str) {
        self.wait_maillog(qid, &format!("{qid}: removed"));
    }

    /// Every transaction the sink stored so far (path, text).
    pub fn sink_files(&self) -> Vec<(PathBuf, String)> {
        let paths: Vec<PathBuf> = fs::read_dir(&self.sink_dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect())
            .unwrap_or_default();
        let mut v: Vec<(PathBuf, String)> = paths
            .into_iter()
            .map(|p| {
                let t = read_lossy(&p);
                (p, t)
            })
            .collect();
        v.sort();
        v
    }

    /// The sink's copies of the message with Message-ID `mid` (wait for Postfix to finish with
    /// `qid` first, so that no relay of it is still under way).
    pub fn relayed(&self, qid: &str, mid: &str) -> Vec<String> {
        self.wait_removed(qid);
        let needle = format!("<{mid}>");
        let has = |t: &str| header_values(t, "Message-ID").iter().any(|v| v == &needle);
        // The sink writes its file before answering 250 to the end of data; allow a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let copies: Vec<String> = self.sink_files().into_iter().map(|(_, t)| t).filter(|t| has(t)).collect();
            if !copies.is_empty() || Instant::now() >= deadline {
                return copies;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The one relayed copy of `mid`.
    pub fn relayed_one(&self, qid: &str, mid: &str) -> String {
        let mut copies = self.relayed(qid, mid);
        assert_eq!(
            copies.len(),
            1,
            "expected exactly one relayed copy of <{mid}> (queue id {qid}) in the sink, found {}",
            copies.len()
        );
        copies.remove(0)
    }

    /// `postqueue -c DIR -p`.
    pub fn postqueue_list(&self) -> String {
        let out =
            run(Command::new(tool("postqueue")).arg("-c").arg(&self.pf_dir).arg("-p"), COMMAND_TIMEOUT, &self.scratch);
        assert!(out.status.success(), "postqueue -p failed ({}):\n{}", out.status, out.text());
        out.text()
    }

    /// `postqueue -c DIR -f`.
    pub fn postqueue_flush(&self) {
        let out =
            run(Command::new(tool("postqueue")).arg("-c").arg(&self.pf_dir).arg("-f"), COMMAND_TIMEOUT, &self.scratch);
        assert!(out.status.success(), "postqueue -f failed ({}):\n{}", out.status, out.text());
    }

    // -- the database ------------------------------------------------------------------------

    fn connect(&self) -> TestConn {
        match self.db_url.strip_prefix("sqlite:") {
            Some(path) => {
                let mut c = SqliteConnection::establish(path).expect("open the test database");
                c.batch_execute("PRAGMA busy_timeout = 10000;").expect("busy_timeout");
                TestConn::Sqlite(c)
            }
            None => TestConn::Postgres(common::pg::connect(&self.db_url)),
        }
    }

    /// One integer from `sql` with text parameters, e.g.
    /// `SELECT count(*) AS n FROM processed_messages WHERE message_id = ?`.
    pub fn count(&self, sql: &str, args: &[&str]) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        match self.connect() {
            TestConn::Sqlite(mut c) => {
                let mut q = diesel::sql_query(sql).into_boxed::<diesel::sqlite::Sqlite>();
                for a in args {
                    q = q.bind::<diesel::sql_types::Text, _>(a.to_string());
                }
                q.get_result::<N>(&mut c).unwrap_or_else(|e| panic!("{sql} ({args:?}): {e}")).n
            }
            TestConn::Postgres(mut c) => {
                let mut q = diesel::sql_query(numbered_placeholders(sql)).into_boxed::<diesel::pg::Pg>();
                for a in args {
                    q = q.bind::<diesel::sql_types::Text, _>(a.to_string());
                }
                q.get_result::<N>(&mut c).unwrap_or_else(|e| panic!("{sql} ({args:?}): {e}")).n
            }
        }
    }

    /// Make the database unavailable to the milter until [`DbOutage::end`] (or drop):
    /// - SQLite: take its write lock (BEGIN EXCLUSIVE) and hold it: every write of the milter
    ///   fails with "database is locked" after its busy_timeout (300 ms here);
    /// - PostgreSQL: stop the server (a fast shutdown: sessions are ended, new connections
    ///   refused); `end` starts it again on the same port. Needs an Env of
    ///   [`Env::start_with_own_database_server`], so that no other test loses its database.
    pub fn take_database_down(&self) -> DbOutage<'_> {
        match self.connect() {
            TestConn::Sqlite(mut c) => {
                c.batch_execute("BEGIN EXCLUSIVE;").expect("BEGIN EXCLUSIVE on the test database");
                DbOutage { env: self, lock: Some(c), stopped: false }
            }
            TestConn::Postgres(c) => {
                drop(c);
                let cluster = self.own_cluster.as_ref().expect(
                    "take_database_down on PostgreSQL needs Env::start_with_own_database_server (the shared server must stay up)",
                );
                cluster.stop_server();
                DbOutage { env: self, lock: None, stopped: true }
            }
        }
    }

    /// Diagnostics: the tails of every log.
    pub fn diagnostics(&self) -> String {
        format!(
            "==== {} (tail) ====\n{}\n==== {} (tail) ====\n{}\n==== sink.log (tail) ====\n{}\n==== test directory: {} ====",
            self.milter_log.display(),
            tail(&self.milter_log(), 40),
            self.maillog.display(),
            // Without postfix-script's start-up permission warnings (a private instance has them all).
            tail(
                &self.maillog().lines().filter(|l| !l.contains("/postfix-script[")).collect::<Vec<_>>().join("\n"),
                40
            ),
            tail(&read_lossy(&self.root.join("sink.log")), 10),
            self.root.display(),
        )
    }

    fn master_pid(&self) -> Option<i32> {
        read_lossy(&self.pf_dir.join("queue/pid/master.pid")).trim().parse().ok()
    }

    fn stop_postfix(&mut self) {
        if !self.postfix_started {
            return;
        }
        self.postfix_started = false;
        let master = self.master_pid();
        // `run` panics on a timeout; during cleanup that must not abort the rest of it.
        let stop = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(
                Command::new(tool("postfix")).arg("-c").arg(&self.pf_dir).arg("stop"),
                Duration::from_secs(20),
                &self.scratch,
            )
        }));
        match stop {
            Ok(out) if !out.status.success() => {
                eprintln!("postfix -c {} stop: {}\n{}", self.pf_dir.display(), out.status, out.text())
            }
            Ok(_) => {}
            Err(_) => eprintln!("postfix -c {} stop did not finish", self.pf_dir.display()),
        }
        // Make sure the master (and with it every daemon of this instance) is gone.
        if let Some(pid) = master {
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pid) {
                eprintln!(
                    "Postfix master {pid} of {} still runs after `postfix stop`; killing it",
                    self.pf_dir.display()
                );
                // SAFETY: the master of the instance this test started (pid from its pid file).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            eprintln!("\n{}", self.diagnostics());
        }
        self.stop_postfix();
        if let Some(mut m) = self.milter.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            m.stop(Duration::from_secs(5));
        }
        if let Some(mut s) = self.sink.take() {
            s.stop(Duration::from_secs(2));
        }
        // Nothing has the database open any more; the directory goes after the unmount.
        drop(self.db_disk.take());
        let keep = std::env::var("TICKETMILTER_E2E_KEEP").as_deref() == Ok("1");
        if keep && let Some(d) = self.dir.take() {
            eprintln!("keeping the test directory {}", d.keep().display());
        }
        // A database on the shared PostgreSQL server goes too (kept when the test failed); a
        // private cluster is removed as a whole when the field is dropped.
        if !keep && self.own_cluster.is_none() {
            common::discard_database(&self.db_url);
        }
    }
}

/// A connection of the test itself to the milter's database.
enum TestConn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// `?` placeholders (outside quoted literals) as PostgreSQL's `$1`, `$2`, ….
fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let (mut n, mut quoted) = (0, false);
    for ch in sql.chars() {
        match ch {
            '\'' => {
                quoted = !quoted;
                out.push(ch);
            }
            '?' if !quoted => {
                n += 1;
                out.push_str(&format!("${n}"));
            }
            _ => out.push(ch),
        }
    }
    out
}

/// The database made unavailable by [`Env::take_database_down`]; available again after `end`
/// or on drop.
pub struct DbOutage<'a> {
    env: &'a Env,
    /// SQLite: the connection holding the write lock.
    lock: Option<SqliteConnection>,
    /// PostgreSQL: the test's own server was stopped.
    stopped: bool,
}

impl DbOutage<'_> {
    /// What the milter's database error says while the database is down: SQLite's "database is
    /// locked", PostgreSQL's refused or lost connection.
    pub fn symptoms(&self) -> &'static [&'static str] {
        if self.lock.is_some() {
            &["locked"]
        } else {
            // "cannot get a connection … Connection refused", "terminating connection due to
            // administrator command", "server closed the connection unexpectedly".
            &["connection"]
        }
    }

    /// Make the database available again.
    pub fn end(mut self) {
        self.restore(true);
    }

    fn restore(&mut self, must: bool) {
        if let Some(mut c) = self.lock.take() {
            let r = c.batch_execute("ROLLBACK;");
            if must {
                r.expect("release the database lock");
            }
        }
        if std::mem::take(&mut self.stopped) {
            if let Some(cluster) = &self.env.own_cluster {
                cluster.start_server(must);
            }
        }
    }
}

impl Drop for DbOutage<'_> {
    fn drop(&mut self) {
        self.restore(false);
    }
}

/// A PostgreSQL cluster for one test alone (`tests/pg-cluster` with a state directory of its
/// own), for tests that stop the server. Removed on drop; a watchdog removes it too when the
/// test process dies without unwinding (as in tests/pg/mod.rs).
struct OwnCluster {
    dir: PathBuf,
    url: String,
    watchdog: Option<u32>,
}

impl OwnCluster {
    /// Start the cluster and make a database in it; (cluster, database URL).
    fn start() -> (OwnCluster, String) {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = PathBuf::from(format!(
            "/tmp/tm-e2e-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let watchdog = Command::new("bash")
            .args(["-c", r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$0" stop"#])
            .arg(common::pg::cluster_script())
            .arg(std::process::id().to_string())
            .env("TICKETMILTER_PG_DIR", &dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(|c| c.id());
        let mut cluster = OwnCluster { dir, url: String::new(), watchdog };
        cluster.url = cluster.run_script("start").unwrap_or_else(|e| panic!("{e}"));
        let mut c = common::pg::connect(&cluster.url);
        diesel::sql_query("CREATE DATABASE tm_e2e TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'")
            .execute(&mut c)
            .expect("create the database of the private cluster");
        let url = common::pg::with_database(&cluster.url, "tm_e2e");
        (cluster, url)
    }

    /// `tests/pg-cluster CMD` on this cluster's directory; its stdout, or the reason it failed.
    fn run_script(&self, cmd: &str) -> Result<String, String> {
        let script = common::pg::cluster_script();
        let out = Command::new(&script)
            .arg(cmd)
            .env("TICKETMILTER_PG_DIR", &self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`{} {cmd}` (TICKETMILTER_PG_DIR={}) failed ({}):\n{}",
                script.display(),
                self.dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// A fast shutdown of the server (SIGINT to the postmaster): sessions are ended, the data
    /// stays. Returns when the postmaster is gone.
    fn stop_server(&self) {
        let pidfile = self.dir.join("data/postmaster.pid");
        let pid: i32 = read_lossy(&pidfile)
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no postmaster pid in {}", pidfile.display()));
        // SAFETY: signalling the postmaster of the cluster this test started, by its pid.
        unsafe { libc::kill(pid, libc::SIGINT) };
        wait_for("the private PostgreSQL server to stop", Duration::from_secs(60), || (!alive(pid)).then_some(()));
    }

    /// Start the stopped server again (on its old port, which the URL names).
    fn start_server(&self, must: bool) {
        match self.run_script("start") {
            Ok(url) if url == self.url => {}
            Ok(url) if must => panic!("the private PostgreSQL came back as {url}, not {}", self.url),
            Err(e) if must => panic!("{e}"),
            Ok(_) | Err(_) => {}
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        if let Some(pid) = self.watchdog.take() {
            // SAFETY: the watchdog this cluster started, by its pid.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        if let Err(e) = self.run_script("stop") {
            eprintln!("{e}");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Preparing the SQL configuration before the first message (tests/notifications.rs)
// ------------------------------------------------------------------------------------------

impl Env {
    /// [`Env::start_with`], then `prepare` (admin commands on the test database, such as
    /// `template enable acknowledgement`, which `start_with`'s settings cannot express), then
    /// [`Env::reload_milter`]: the first message the test sends sees everything `prepare` wrote.
    pub fn start_prepared(settings: &[(&str, &str)], notify_port: Option<u16>, prepare: impl FnOnce(&Env)) -> Env {
        let env = Env::start_with(settings, notify_port);
        prepare(&env);
        env.reload_milter();
        env
    }

    /// Send the milter SIGHUP and wait for the reload it causes. The SIGHUP handler reloads the
    /// SQL configuration unconditionally and logs "SQL configuration reloaded" after its
    /// "SIGHUP: reloading the configuration" line (one task runs both, in order), so the reload
    /// waited for read everything written before the signal — unlike a periodic reload, which
    /// may have read the rows half-way through a series of admin commands.
    pub fn reload_milter(&self) {
        let logged = self.milter_log().len();
        let pid = self.milter_pid().expect("the milter runs");
        // SAFETY: signalling the milter this Env started, by its pid.
        unsafe { libc::kill(pid, libc::SIGHUP) };
        wait_for("the milter to reload the SQL configuration after SIGHUP", EVENT_TIMEOUT, || {
            let log = self.milter_log();
            let new = log.get(logged..)?;
            let at = new.find("SIGHUP: reloading the configuration")?;
            new[at..].contains("SQL configuration reloaded").then_some(())
        });
    }
}

// ------------------------------------------------------------------------------------------
// Faults (tests/faults.rs): a tailored start, a killed milter, a held lock, a full disk, and a
// plain SMTP client whose every reply is seen
// ------------------------------------------------------------------------------------------

/// How [`Env::start_setup`] builds an environment. `Setup::default()` is what [`Env::start`]
/// builds; the other constructors set a field or two.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// SQL settings written before the milter starts ([`Env::start_with_settings`]).
    pub settings: &'a [(&'a str, &'a str)],
    /// Where the notification sender delivers (None: the milter'd smtpd).
    pub notify_port: Option<u16>,
    /// With PostgreSQL a private cluster that [`Env::take_database_down`] may stop
    /// ([`Env::start_with_own_database_server`]).
    pub own_database_server: bool,
    /// The backend of a test that is about one backend only (None: `TICKETMILTER_TEST_BACKEND`,
    /// see tests/common/mod.rs).
    pub backend: Option<Backend>,
    /// SQLite only: the database directory is a tmpfs of this many bytes of its own, which
    /// [`Env::fill_database_disk`] fills up. Unmounted when the Env is dropped.
    pub database_disk_bytes: Option<u64>,
    /// The milter's `[database] busy_timeout_ms` (how long SQLite waits for another writer).
    pub busy_timeout_ms: u64,
    /// The milter's `[database] connect_timeout` in seconds (how long a conversion waits for a
    /// database connection before it is tempfailed).
    pub connect_timeout: u64,
    /// The milter's `[milter] eom_timeout` in seconds (the bound on the end-of-message work).
    pub eom_timeout: u64,
    /// Postfix's `milter_content_timeout` in seconds (how long Postfix waits for the milter's
    /// answer to the end of the message before it applies `milter_default_action`).
    pub milter_content_timeout: u64,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            settings: &[],
            notify_port: None,
            own_database_server: false,
            backend: None,
            database_disk_bytes: None,
            busy_timeout_ms: 300,
            connect_timeout: 5,
            eom_timeout: 20,
            milter_content_timeout: 40,
        }
    }
}

/// A tmpfs mounted on a directory for one test; unmounted on drop (lazily when busy).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, bytes: u64, scratch: &Path) -> Tmpfs {
        let out = run(
            Command::new(tool("mount"))
                .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0755"), "tm-e2e-db"])
                .arg(path),
            COMMAND_TIMEOUT,
            scratch,
        );
        assert!(
            out.status.success(),
            "cannot mount a tmpfs of {bytes} bytes on {} ({}): {}\nThe disk-full test needs root with the \
             right to mount (CAP_SYS_ADMIN).",
            path.display(),
            out.status,
            out.text()
        );
        Tmpfs { path: path.to_path_buf() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("-l");
            }
            c.arg(&self.path).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
            c.output()
        };
        match umount(false) {
            Ok(o) if o.status.success() => {}
            first => {
                let why = match first {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                eprintln!("umount {}: {why}; unmounting lazily", self.path.display());
                if !matches!(umount(true), Ok(o) if o.status.success()) {
                    eprintln!("could not unmount the tmpfs on {}", self.path.display());
                }
            }
        }
    }
}

impl Env {
    /// The pid of the running milter.
    pub fn milter_pid(&self) -> Option<i32> {
        self.milter.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|d| d.child.id() as i32)
    }

    /// `kill -9` the milter: no answer to anyone, no cleanup, no transaction finished. Returns
    /// once the process is gone (reaped).
    pub fn kill_milter(&self) {
        let mut slot = self.milter.lock().unwrap_or_else(|p| p.into_inner());
        let mut d = slot.take().expect("the milter runs");
        d.child.kill().expect("SIGKILL the milter");
        d.child.wait().expect("reap the killed milter");
    }

    /// Start the milter again, on the same socket, database and configuration, after
    /// [`Env::kill_milter`]; its log continues the old one. Returns once it listens.
    pub fn restart_milter(&self) {
        self.spawn_milter(true);
    }

    /// A transaction of the test that holds the lock every writer of the milter needs, until
    /// [`WriteLock::release`] or drop: SQLite's write lock, or on PostgreSQL an EXCLUSIVE lock
    /// on the tables a conversion writes (readers go on) — the statements of
    /// [`common::hold_write_lock_sql`], chosen by this Env's database rather than by
    /// `TICKETMILTER_TEST_BACKEND` ([`Setup::backend`] may differ). With a busy timeout longer
    /// than the hold, the milter's writer waits for it.
    pub fn hold_write_lock(&self) -> WriteLock {
        let mut conn = self.connect();
        let r = match &mut conn {
            TestConn::Sqlite(c) => {
                c.batch_execute("BEGIN IMMEDIATE; INSERT INTO settings (key, value) VALUES ('lock', 'held');")
            }
            TestConn::Postgres(c) => {
                c.batch_execute("BEGIN; LOCK TABLE processed_messages, tickets, number_sequences IN EXCLUSIVE MODE;")
            }
        };
        r.unwrap_or_else(|e| panic!("take the write lock of the test database: {e}"));
        WriteLock { conn: Some(conn) }
    }

    /// Run `sql` (one statement, or several in one implicit transaction) on a connection of
    /// the test's own, e.g. `ALTER SYSTEM …` on a private PostgreSQL cluster.
    pub fn execute(&self, sql: &str) {
        match &mut self.connect() {
            TestConn::Sqlite(c) => c.batch_execute(sql),
            TestConn::Postgres(c) => c.batch_execute(sql),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// SQLite: `PRAGMA integrity_check` of the test database, its rows joined by newlines
    /// ("ok" for a sound file).
    pub fn sqlite_integrity_check(&self) -> String {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            integrity_check: String,
        }
        match self.connect() {
            TestConn::Sqlite(mut c) => diesel::sql_query("PRAGMA integrity_check")
                .load::<Row>(&mut c)
                .expect("PRAGMA integrity_check")
                .into_iter()
                .map(|r| r.integrity_check)
                .collect::<Vec<_>>()
                .join("\n"),
            TestConn::Postgres(_) => panic!("PRAGMA integrity_check is SQLite's"),
        }
    }

    /// The filler file of [`Env::fill_database_disk`].
    fn filler(&self) -> PathBuf {
        let disk = self.db_disk.as_ref().expect("the database is on a tmpfs of its own (Setup::database_disk_bytes)");
        disk.path.join("filler")
    }

    /// Fill the database's tmpfs with a filler file until not one more byte fits (ENOSPC), then
    /// give `leave` bytes back: with 0 the database and its WAL cannot grow at all. A second
    /// call fills up what the first left. Returns the bytes added to the filler.
    pub fn fill_database_disk(&self, leave: u64) -> u64 {
        let path = self.filler();
        let mut f = fs::OpenOptions::new().create(true).append(true).open(&path).expect("create the filler file");
        let mut written = 0u64;
        for chunk in [1 << 20, 1 << 12, 1] {
            let buf = vec![0x5au8; chunk];
            loop {
                match f.write(&buf) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => panic!("writing the filler {}: {e}", path.display()),
                }
            }
        }
        match f.write(&[0]) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {}
            other => panic!("the tmpfs is not full after {written} filler bytes: {other:?}"),
        }
        if leave > 0 {
            let len = f.metadata().expect("filler size").len();
            assert!(len >= leave, "the filler ({len} bytes) is smaller than the {leave} bytes to leave");
            f.set_len(len - leave).expect("shorten the filler");
            written -= leave.min(written);
        }
        written
    }

    /// Remove the filler of [`Env::fill_database_disk`]: the database may grow again.
    pub fn free_database_disk(&self) {
        let path = self.filler();
        fs::remove_file(&path).unwrap_or_else(|e| panic!("remove the filler {}: {e}", path.display()));
    }

    /// Postfix queue ids whose cleanup logged Message-ID `<mid>` (every queue file made for the
    /// message: the front smtpd's and each attempt at the milter'd smtpd), in log order.
    pub fn queue_ids_of(&self, mid: &str) -> Vec<String> {
        let needle = format!(": message-id=<{mid}>");
        self.maillog()
            .lines()
            .filter_map(|l| {
                let head = &l[..l.find(&needle)?];
                head.rsplit(' ').next().map(str::to_string)
            })
            .collect()
    }
}

/// The lock of [`Env::hold_write_lock`]; released by [`WriteLock::release`] or on drop.
pub struct WriteLock {
    conn: Option<TestConn>,
}

impl WriteLock {
    pub fn release(mut self) {
        self.rollback(true);
    }

    fn rollback(&mut self, must: bool) {
        if let Some(mut conn) = self.conn.take() {
            let r = match &mut conn {
                TestConn::Sqlite(c) => c.batch_execute("ROLLBACK;"),
                TestConn::Postgres(c) => c.batch_execute("ROLLBACK;"),
            };
            if must {
                r.expect("release the write lock");
            }
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        self.rollback(false);
    }
}

/// What the SMTP server said to one transaction of [`smtp_send`].
#[derive(Debug, Clone)]
pub struct SmtpReply {
    /// The step whose reply ended the transaction: `greeting`, `EHLO`, `MAIL`, `RCPT`, `DATA`
    /// or `end of data` (the reply to the message itself); `connect` when no connection was
    /// made, and the step at which the connection broke for a code of 0.
    pub stage: &'static str,
    /// The reply code; 0 when the connection broke or timed out without one.
    pub code: u16,
    /// The reply text (continuation lines joined with " / "), or what went wrong.
    pub text: String,
    /// From the end of the message's data to the reply (zero when it ended earlier).
    pub eom_latency: Duration,
}

impl SmtpReply {
    /// The message was accepted (250 to the end of data).
    pub fn accepted(&self) -> bool {
        self.stage == "end of data" && self.code == 250
    }

    /// A 4xx reply at any step: the client keeps the message and tries again later.
    pub fn temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The Postfix queue id of an accepted message (`250 … queued as ID`).
    pub fn queue_id(&self) -> Option<String> {
        if !self.accepted() {
            return None;
        }
        self.text.split("queued as ").nth(1).map(|q| q.split_whitespace().next().unwrap_or("").to_string())
    }
}

impl std::fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (after {})", self.code, self.text, self.stage)
    }
}

/// One SMTP transaction on 127.0.0.1:`port` (EHLO, MAIL, RCPT…, DATA, the message, QUIT), a
/// plain client without pipelining, every reply read — for tests that send many messages at
/// once and must see each answer (swaks costs a process per message). `msg` has CRLF line
/// ends; it is dot-stuffed here. A reply other than 2xx/354 ends the transaction.
/// The reply wait is bounded by `reply_timeout`.
pub fn smtp_send(port: u16, from: &str, rcpts: &[&str], msg: &str, reply_timeout: Duration) -> SmtpReply {
    let fail = |stage, text: String| SmtpReply { stage, code: 0, text, eom_latency: Duration::ZERO };
    let mut c = match SmtpClient::connect(port, reply_timeout) {
        Ok(c) => c,
        Err(e) => return fail("connect", e.to_string()),
    };
    let mut dialogue = || -> Result<(), SmtpReply> {
        c.step("greeting", None, &[220])?;
        c.step("EHLO", Some("EHLO client.tmtest.invalid"), &[250])?;
        c.step("MAIL", Some(&format!("MAIL FROM:<{from}>")), &[250])?;
        for r in rcpts {
            c.step("RCPT", Some(&format!("RCPT TO:<{r}>")), &[250, 251])?;
        }
        c.step("DATA", Some("DATA"), &[354])
    };
    if let Err(early) = dialogue() {
        let _ = c.writer.write_all(b"QUIT\r\n");
        return early;
    }
    let mut data = String::with_capacity(msg.len() + 64);
    for line in msg.strip_suffix("\r\n").unwrap_or(msg).split("\r\n") {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    data.push_str(".\r\n");
    if let Err(e) = c.writer.write_all(data.as_bytes()) {
        return fail("end of data", e.to_string());
    }
    let sent = Instant::now();
    let reply = match c.reply() {
        Ok((code, text)) => SmtpReply { stage: "end of data", code, text, eom_latency: sent.elapsed() },
        Err(e) => SmtpReply { eom_latency: sent.elapsed(), ..fail("end of data", e) },
    };
    let _ = c.step("QUIT", Some("QUIT"), &[221]);
    reply
}

/// The connection of [`smtp_send`].
struct SmtpClient {
    reader: std::io::BufReader<TcpStream>,
    writer: TcpStream,
}

impl SmtpClient {
    fn connect(port: u16, reply_timeout: Duration) -> std::io::Result<SmtpClient> {
        let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5))?;
        stream.set_read_timeout(Some(reply_timeout))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(SmtpClient { writer: stream.try_clone()?, reader: std::io::BufReader::new(stream) })
    }

    /// (code, text) of the next reply, or why there was none.
    fn reply(&mut self) -> Result<(u16, String), String> {
        use std::io::BufRead;
        let mut lines: Vec<String> = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(format!("connection closed (read so far: {lines:?})")),
                Ok(_) => {}
                Err(e) => return Err(format!("{e} (read so far: {lines:?})")),
            }
            let line = line.trim_end();
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok()).ok_or_else(|| format!("not a reply: {line:?}"))?;
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, lines.join(" / ")));
            }
        }
    }

    /// Send `command` (when given) and read its reply; a code not in `want` ends the dialogue.
    fn step(&mut self, stage: &'static str, command: Option<&str>, want: &[u16]) -> Result<(), SmtpReply> {
        let broken = |text: String| SmtpReply { stage, code: 0, text, eom_latency: Duration::ZERO };
        if let Some(c) = command {
            self.writer.write_all(format!("{c}\r\n").as_bytes()).map_err(|e| broken(e.to_string()))?;
        }
        let (code, text) = self.reply().map_err(broken)?;
        if want.contains(&code) { Ok(()) } else { Err(SmtpReply { stage, code, text, eom_latency: Duration::ZERO }) }
    }
}
