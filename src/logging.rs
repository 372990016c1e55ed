//! Log output: tracing to stderr with a level from RUST_LOG or the configuration.

use tracing_subscriber::EnvFilter;

/// Logging for one-shot commands: warnings and errors on stderr unless RUST_LOG says otherwise.
pub fn init_cli() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
