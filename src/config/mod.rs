//! The daemon's configuration file: TOML syntax -> typed, validated `Config`. Unknown keys are
//! errors that name the key; every key has a default (documented in conf/ticketmilter.toml).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::store::{ConnOptions, StoreOptions};

/// Where the configuration file is looked for when none is named.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ticketmilter/ticketmilter.toml";
/// The database used when neither the file nor the command line names one.
pub const DEFAULT_DATABASE: &str = "sqlite:/var/lib/ticketmilter/ticketmilter.db";

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub milter: MilterConfig,
    pub notify: NotifyConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
}

/// The Prometheus endpoint (off unless `listen` is set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `IP:port` to serve `GET /metrics` on (`127.0.0.1:9465`, `[::1]:9465`); empty: off.
    pub listen: String,
    /// Allow an address that is not loopback (the endpoint has no authentication).
    pub allow_remote: bool,
}

impl MetricsConfig {
    /// The address to serve on, `None` when off; an error names the key and what is wrong.
    pub fn address(&self) -> std::result::Result<Option<std::net::SocketAddr>, String> {
        let text = self.listen.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let addr: std::net::SocketAddr = text.parse().map_err(|_| {
            format!("metrics.listen: {text:?} is not an IP address and port such as \"127.0.0.1:9465\" or \"[::1]:9465\"")
        })?;
        if addr.port() == 0 {
            return Err(format!("metrics.listen: {text:?} has port 0; name the port to serve on"));
        }
        if !addr.ip().is_loopback() && !self.allow_remote {
            return Err(format!(
                "metrics.listen: {text:?} is not a loopback address and the endpoint has no authentication; \
                 use 127.0.0.1 or [::1], or set metrics.allow_remote = true"
            ));
        }
        Ok(Some(addr))
    }
}

/// The sender of notifications (the outbox worker inside the daemon).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Run the sender inside `ticketmilter run` (notifications are queued either way).
    pub enabled: bool,
    /// SMTP relay host that delivers notifications (usually the local Postfix).
    pub relay: String,
    /// Its port (plain SMTP, no TLS: a relay on this host or a trusted network).
    pub port: u16,
    /// Name used in EHLO (empty: the host name).
    pub helo_name: String,
    /// Seconds an SMTP dialogue may take.
    pub timeout: u64,
    /// Seconds between looks at the outbox when it is idle.
    pub interval: u64,
    /// Most rows taken per pass.
    pub batch: u32,
    /// Seconds a claimed row stays with its worker; a worker that dies releases it after this.
    pub lease: u64,
    /// Attempts before a row that keeps failing transiently is given up.
    pub max_attempts: u32,
    /// Seconds before the first retry; doubled per attempt, with random jitter.
    pub backoff: u64,
    /// Longest wait between retries, in seconds.
    pub backoff_max: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            enabled: true,
            relay: "127.0.0.1".to_string(),
            port: 25,
            helo_name: String::new(),
            timeout: 60,
            interval: 5,
            batch: 50,
            lease: 300,
            max_attempts: 10,
            backoff: 60,
            backoff_max: 21600,
        }
    }
}

/// What the milter answers in a situation (OpenDKIM's `On-*` style).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Let the message through unconverted.
    Accept,
    /// Refuse it with a 5xx reply.
    Reject,
    /// Refuse it with a 4xx reply: the MTA keeps it and retries.
    Tempfail,
    /// Accept it and drop it silently.
    Discard,
    /// Accept it into the MTA's hold queue for an administrator.
    Quarantine,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Accept => "accept",
            Policy::Reject => "reject",
            Policy::Tempfail => "tempfail",
            Policy::Discard => "discard",
            Policy::Quarantine => "quarantine",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MilterConfig {
    /// `inet:host:port`, `inet:port@host`, `inet6:…`, `unix:/path` or `local:/path`.
    pub socket: String,
    /// Permissions of a unix socket (octal, as a string).
    pub socket_mode: String,
    /// Group of a unix socket (empty: the daemon's group).
    pub socket_group: String,
    /// Most MTA connections served at once.
    pub max_connections: usize,
    /// Largest message (headers and body, bytes) converted; larger ones get `on_too_large`.
    pub max_message_size: u64,
    /// Seconds the end-of-message work may take before `on_timeout` answers.
    pub eom_timeout: u64,
    /// Seconds between checks for changed SQL configuration (0: only on SIGHUP).
    pub reload_interval: u64,
    /// Add `X-Ticketmilter: <mailbox> <action> <ticket>` to converted messages.
    pub add_header: bool,
    pub on_database_error: Policy,
    pub on_internal_error: Policy,
    pub on_timeout: Policy,
    pub on_unknown_sender: Policy,
    pub on_too_large: Policy,
}

impl Default for MilterConfig {
    fn default() -> Self {
        MilterConfig {
            socket: DEFAULT_SOCKET.to_string(),
            socket_mode: "0660".to_string(),
            socket_group: String::new(),
            max_connections: 200,
            max_message_size: 30 * 1024 * 1024,
            eom_timeout: 240,
            reload_interval: 5,
            add_header: true,
            on_database_error: Policy::Tempfail,
            on_internal_error: Policy::Tempfail,
            on_timeout: Policy::Tempfail,
            on_unknown_sender: Policy::Reject,
            on_too_large: Policy::Reject,
        }
    }
}

/// The socket the milter listens on when nothing else is configured.
pub const DEFAULT_SOCKET: &str = "inet:127.0.0.1:8897";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite:PATH`, a plain path, or `postgres://user:pass@host:port/db`.
    pub url: String,
    /// Most connections open at once.
    pub pool_size: u32,
    /// Seconds to wait for a connection before the message is tempfailed.
    pub connect_timeout: u64,
    /// Milliseconds a statement waits for a lock held elsewhere (SQLite's busy timeout,
    /// PostgreSQL's `lock_timeout`) before the message is tempfailed.
    pub busy_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: DEFAULT_DATABASE.to_string(),
            pool_size: 8,
            connect_timeout: 10,
            busy_timeout_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace` (or a tracing filter such as `ticketmilter=debug`).
    pub level: String,
    /// `stderr` (the journal under systemd) or `syslog` (facility below, ident ticketmilter).
    pub target: LogTarget,
    /// Syslog facility: `mail` (beside Postfix's own lines), `daemon`, or `local0` … `local7`.
    pub facility: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    Stderr,
    Syslog,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            target: LogTarget::Stderr,
            facility: "mail".to_string(),
        }
    }
}

impl Config {
    /// Parse a configuration text. `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            Error::Config(format!("{origin}: {}", e.to_string().trim_end()))
        })?;
        cfg.validate().map_err(|problems| Error::Config(format!("{origin}: {}", problems.join("; "))))?;
        Ok(cfg)
    }

    /// Read the file at `path`; with `required == false` a missing file means defaults.
    pub fn load(path: &Path, required: bool) -> Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Config::default()),
            Err(e) => Err(Error::Config(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Everything wrong with the values (syntax is already checked by serde).
    pub fn validate(&self) -> std::result::Result<(), Vec<String>> {
        let mut p = Vec::new();
        if let Err(e) = crate::store::DbUrl::parse(&self.database.url) {
            p.push(format!("database.url: {e}"));
        }
        if self.database.pool_size == 0 || self.database.pool_size > 1000 {
            p.push("database.pool_size: expected 1 to 1000".into());
        }
        if self.database.connect_timeout == 0 {
            p.push("database.connect_timeout: must be at least 1 second".into());
        }
        if let Err(e) = crate::milter::socket::SocketSpec::parse(&self.milter.socket) {
            p.push(format!("milter.socket: {e}"));
        }
        if u32::from_str_radix(self.milter.socket_mode.trim_start_matches("0o"), 8).map_or(true, |m| m > 0o777) {
            p.push(format!("milter.socket_mode: {:?} is not an octal mode such as \"0660\"", self.milter.socket_mode));
        }
        if self.milter.max_connections == 0 {
            p.push("milter.max_connections: must be at least 1".into());
        }
        if self.milter.max_message_size < 1024 {
            p.push("milter.max_message_size: must be at least 1024 bytes".into());
        }
        if self.milter.eom_timeout == 0 || self.milter.eom_timeout >= 300 {
            p.push("milter.eom_timeout: expected 1 to 299 seconds (below Postfix's milter_content_timeout of 300 s)".into());
        }
        let n = &self.notify;
        if n.relay.trim().is_empty() {
            p.push("notify.relay: the relay host is empty".into());
        }
        if n.port == 0 {
            p.push("notify.port: must be 1 to 65535".into());
        }
        if n.timeout == 0 || n.interval == 0 || n.batch == 0 || n.lease == 0 || n.max_attempts == 0 || n.backoff == 0 {
            p.push("notify: timeout, interval, batch, lease, max_attempts and backoff must be at least 1".into());
        }
        if n.backoff_max < n.backoff {
            p.push("notify.backoff_max: must not be below notify.backoff".into());
        }
        if crate::logging::facility(&self.log.facility).is_none() {
            p.push(format!("log.facility: {:?} is not mail, daemon, user or local0 … local7", self.log.facility));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            p.push(format!("log.level: {:?} is not a level or filter", self.log.level));
        }
        if let Err(e) = self.metrics.address() {
            p.push(e);
        }
        if p.is_empty() { Ok(()) } else { Err(p) }
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            pool_size: self.database.pool_size,
            connect_timeout: Duration::from_secs(self.database.connect_timeout),
            conn: ConnOptions {
                busy_timeout: Duration::from_millis(self.database.busy_timeout_ms),
                connect_timeout: Duration::from_secs(self.database.connect_timeout),
                ..ConnOptions::default()
            },
            ..StoreOptions::default()
        }
    }
}

/// The configuration file named on the command line, or the default one if it exists.
pub fn resolve(path: Option<&Path>) -> Result<(Config, Option<PathBuf>)> {
    match path {
        Some(p) => Ok((Config::load(p, true)?, Some(p.to_path_buf()))),
        None => {
            let p = PathBuf::from(DEFAULT_CONFIG_PATH);
            let exists = p.exists();
            Ok((Config::load(&p, false)?, exists.then_some(p)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        let c = Config::parse("", "t").unwrap();
        assert_eq!(c.database.url, DEFAULT_DATABASE);
        assert_eq!(c.log.level, "info");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::parse("[database]\nurll = \"x\"\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("unknown field `urll`"), "{e}");
        let e = Config::parse("colour = 1\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn bad_values_are_explained() {
        let e = Config::parse("[database]\nurl = \"mysql://x\"\npool_size = 0\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("database.url") && e.contains("pool_size"), "{e}");
    }

    #[test]
    fn shipped_example_is_valid_and_shows_every_key_with_its_default() {
        let text = include_str!("../../conf/ticketmilter.toml");
        Config::parse(text, "conf/ticketmilter.toml").unwrap();
        let shipped: toml::Value = toml::from_str(text).unwrap();
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        assert_eq!(shipped, defaults, "conf/ticketmilter.toml must list every key with its default");
    }

    #[test]
    fn policies_and_milter_values_are_checked() {
        let c = Config::parse("[milter]\non_database_error = \"accept\"\nsocket = \"unix:/run/t.sock\"\n", "t").unwrap();
        assert_eq!(c.milter.on_database_error, Policy::Accept);
        let e = Config::parse("[milter]\non_database_error = \"maybe\"\n", "t").unwrap_err().to_string();
        assert!(e.contains("unknown variant `maybe`"), "{e}");
        let e = Config::parse("[milter]\nsocket = \"tcp:1\"\neom_timeout = 300\nsocket_mode = \"rw\"\n", "t").unwrap_err().to_string();
        assert!(e.contains("milter.socket") && e.contains("eom_timeout") && e.contains("socket_mode"), "{e}");
    }

    #[test]
    fn metrics_listen_is_checked() {
        assert_eq!(Config::parse("", "t").unwrap().metrics.address(), Ok(None));
        let c = Config::parse("[metrics]\nlisten = \"127.0.0.1:9465\"\n", "t").unwrap();
        assert_eq!(c.metrics.address(), Ok(Some("127.0.0.1:9465".parse().unwrap())));
        let c = Config::parse("[metrics]\nlisten = \"[::1]:9465\"\n", "t").unwrap();
        assert_eq!(c.metrics.address(), Ok(Some("[::1]:9465".parse().unwrap())));
        for bad in ["localhost:9465", "127.0.0.1", "9465", "127.0.0.1:99999", "::1:9465"] {
            let e = Config::parse(&format!("[metrics]\nlisten = \"{bad}\"\n"), "t.toml").unwrap_err().to_string();
            assert!(e.contains(&format!("metrics.listen: {bad:?} is not an IP address and port such as")), "{bad}: {e}");
        }
        let e = Config::parse("[metrics]\nlisten = \"127.0.0.1:0\"\n", "t").unwrap_err().to_string();
        assert!(e.contains("has port 0"), "{e}");
        let e = Config::parse("[metrics]\nlisten = \"0.0.0.0:9465\"\n", "t").unwrap_err().to_string();
        assert!(e.contains("is not a loopback address") && e.contains("metrics.allow_remote = true"), "{e}");
        let c = Config::parse("[metrics]\nlisten = \"0.0.0.0:9465\"\nallow_remote = true\n", "t").unwrap();
        assert_eq!(c.metrics.address(), Ok(Some("0.0.0.0:9465".parse().unwrap())));
        let e = Config::parse("[metrics]\nport = 9465\n", "t").unwrap_err().to_string();
        assert!(e.contains("unknown field `port`"), "{e}");
    }
}
