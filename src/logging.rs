//! Log output: tracing to stderr (the journal under systemd) or to syslog (facility mail by
//! default, ident ticketmilter), with the level from RUST_LOG or the configuration.

use std::ffi::CString;
use std::io::{IsTerminal, Write};
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogTarget};

/// Logging for one-shot commands: warnings and errors on stderr unless RUST_LOG says otherwise.
pub fn init_cli() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The syslog facility code for a name.
pub fn facility(name: &str) -> Option<libc::c_int> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "mail" => libc::LOG_MAIL,
        "daemon" => libc::LOG_DAEMON,
        "user" => libc::LOG_USER,
        "local0" => libc::LOG_LOCAL0,
        "local1" => libc::LOG_LOCAL1,
        "local2" => libc::LOG_LOCAL2,
        "local3" => libc::LOG_LOCAL3,
        "local4" => libc::LOG_LOCAL4,
        "local5" => libc::LOG_LOCAL5,
        "local6" => libc::LOG_LOCAL6,
        "local7" => libc::LOG_LOCAL7,
        _ => return None,
    })
}

/// A writer that sends each formatted event to syslog at the event's priority.
#[derive(Clone, Copy)]
struct Syslog;

struct SyslogLine {
    priority: libc::c_int,
    buf: Vec<u8>,
}

impl Write for SyslogLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        if let Ok(c) = CString::new(text.replace('\0', " ")) {
            // SAFETY: a constant format string and a valid C string argument.
            unsafe { libc::syslog(self.priority, c"%s".as_ptr(), c.as_ptr()) };
        }
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;
    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine { priority: libc::LOG_INFO, buf: Vec::new() }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SyslogLine {
        let priority = match *meta.level() {
            Level::ERROR => libc::LOG_ERR,
            Level::WARN => libc::LOG_WARNING,
            Level::INFO => libc::LOG_INFO,
            _ => libc::LOG_DEBUG,
        };
        SyslogLine { priority, buf: Vec::new() }
    }
}

/// Logging for the daemon, as configured. RUST_LOG overrides the configured level.
pub fn init_daemon(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::try_new(&cfg.level).unwrap_or_else(|_| EnvFilter::new("info")));
    match cfg.target {
        LogTarget::Stderr => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(std::io::stderr().is_terminal())
                .try_init();
        }
        LogTarget::Syslog => {
            let facility = facility(&cfg.facility).unwrap_or(libc::LOG_MAIL);
            // SAFETY: the ident is a static C string; openlog keeps the pointer.
            unsafe { libc::openlog(c"ticketmilter".as_ptr(), libc::LOG_PID | libc::LOG_NDELAY, facility) };
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(Syslog)
                .with_target(false)
                .without_time()
                .with_level(false)
                .with_ansi(false)
                .try_init();
        }
    }
}
