//! The real daemon binary in a test: started with a configuration file and a socket, its stderr
//! collected, signalled, waited for; killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{TestDb, binary};

/// A running daemon whose stderr is collected; killed when dropped.
pub struct Daemon {
    child: Child,
    config: std::path::PathBuf,
    log: Arc<Mutex<String>>,
    /// The thread collecting stderr: joined once the process has exited, so that the log is
    /// complete.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// `ticketmilter --config FILE --database DB run --socket SOCKET`, FILE holding `config`.
    pub fn start(db: &TestDb, config: &str, socket: &str) -> Daemon {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let cfg = db.dir.path().join(format!("daemon-{}.toml", STARTED.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&cfg, config).unwrap();
        let mut child = Command::new(binary())
            .args(["--config", cfg.to_str().unwrap(), "--database", &db.url(), "run", "--socket", socket])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Daemon { child, config: cfg, log, reader: Some(reader) }
    }

    /// The configuration file it reads (and rereads on SIGHUP).
    pub fn config_path(&self) -> &std::path::Path {
        &self.config
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log contains `needle` (bounded).
    pub fn wait_for(&self, needle: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("waited {secs} s for {needle:?}; log:\n{}", self.log());
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// The exit status within `secs` (the log is then complete), or None.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
