//! The daemon's configuration file: TOML syntax -> typed, validated `Config`. Unknown keys are
//! errors that name the key; every key has a default (documented in conf/ticketmilter.toml).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::store::{ConnOptions, StoreOptions};

/// Where the configuration file is looked for when none is named.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ticketmilter/ticketmilter.toml";
/// The database used when neither the file nor the command line names one.
pub const DEFAULT_DATABASE: &str = "sqlite:/var/lib/ticketmilter/ticketmilter.db";

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite:PATH`, a plain path, or `postgres://user:pass@host:port/db`.
    pub url: String,
    /// Most connections open at once.
    pub pool_size: u32,
    /// Seconds to wait for a connection before the message is tempfailed.
    pub connect_timeout: u64,
    /// Milliseconds SQLite waits for a lock held by another writer.
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace` (or a tracing filter such as `ticketmilter=debug`).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
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
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            p.push(format!("log.level: {:?} is not a level or filter", self.log.level));
        }
        if p.is_empty() { Ok(()) } else { Err(p) }
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            pool_size: self.database.pool_size,
            connect_timeout: Duration::from_secs(self.database.connect_timeout),
            conn: ConnOptions {
                busy_timeout: Duration::from_millis(self.database.busy_timeout_ms),
            },
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
    fn shipped_example_is_valid_and_shows_the_defaults() {
        let text = include_str!("../../conf/ticketmilter.toml");
        let c = Config::parse(text, "conf/ticketmilter.toml").unwrap();
        let d = Config::default();
        assert_eq!(c.database.url, d.database.url);
        assert_eq!(c.database.pool_size, d.database.pool_size);
        assert_eq!(c.database.connect_timeout, d.database.connect_timeout);
        assert_eq!(c.database.busy_timeout_ms, d.database.busy_timeout_ms);
        assert_eq!(c.log.level, d.log.level);
    }
}
