//! `ticketmilter process`: one message through the same entry point the milter uses.

use clap::Args;
use std::io::{Read, Write};
use std::path::PathBuf;

use super::Context;
use crate::engine::{Engine, Options};
use crate::error::{Error, Result};
use crate::model::Envelope;

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Envelope recipient (repeat for several)
    #[arg(long = "rcpt", value_name = "ADDR", required = true)]
    pub rcpt: Vec<String>,
    /// Envelope sender; `<>` is the null sender of bounces and automatic replies (default: unknown)
    #[arg(long = "from", value_name = "ADDR")]
    pub from: Option<String>,
    /// Decide and report, but write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Queue id to record (as the MTA's {i} would be)
    #[arg(long, value_name = "ID")]
    pub queue_id: Option<String>,
    /// The message (RFC 5322 file); `-` or nothing reads standard input
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

pub(super) fn read_input(file: Option<&PathBuf>) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    match file {
        Some(p) if p.as_os_str() != "-" => {
            raw = std::fs::read(p).map_err(|e| Error::Io(format!("cannot read {}: {e}", p.display())))?;
        }
        _ => {
            std::io::stdin()
                .lock()
                .read_to_end(&mut raw)
                .map_err(|e| Error::Io(format!("cannot read standard input: {e}")))?;
        }
    }
    Ok(raw)
}

pub fn run(ctx: &Context, args: ProcessArgs) -> Result<i32> {
    let raw = read_input(args.file.as_ref())?;
    let store = ctx.open_store()?;
    let engine = Engine::new(store)?;
    let mut envelope = Envelope::new(args.rcpt.iter().map(|r| r.trim().trim_matches(['<', '>']).to_string()));
    envelope.sender = args
        .from
        .as_deref()
        .map(|f| f.trim().trim_matches(['<', '>']).to_string())
        .unwrap_or_default();
    envelope.null_sender = args.from.as_deref().is_some_and(|f| f.trim() == "<>");
    envelope.queue_id = args.queue_id.clone();
    let outcomes = engine.process(&envelope, &raw, Options { dry_run: args.dry_run, ..Options::default() })?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for o in outcomes {
        let line = serde_json::to_string(&o).map_err(|e| Error::Internal(e.to_string()))?;
        writeln!(out, "{line}").map_err(|e| Error::Io(format!("cannot write output: {e}")))?;
    }
    Ok(0)
}
