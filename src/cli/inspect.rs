//! `ticketmilter messages …` and `ticketmilter explain`: what happened to a message, and why a
//! message would go where it goes.

use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;

use super::Context;
use super::admin::table;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::Envelope;
use crate::store::messages;

#[derive(Debug, Subcommand)]
pub enum MessagesCmd {
    /// List processed messages, newest first
    List {
        /// Only this outcome: created, note_added, time_entry_added, ignored, discarded
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one processed message (JSON), or its raw text
    Show {
        id: i64,
        /// Print the message as received instead
        #[arg(long)]
        raw: bool,
    },
    /// Convert a stored message again (e.g. one ignored before a mailbox was fixed)
    Reprocess {
        id: i64,
        /// Also for a message that was converted already (makes a second object)
        #[arg(long)]
        force: bool,
    },
    /// Drop the raw text of messages older than raw_retention_days now (the daemon does it hourly)
    Purge,
}

pub fn messages(ctx: &Context, cmd: MessagesCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        MessagesCmd::List { outcome, limit } => {
            let rows = store.read(|c| messages::list(c, outcome.as_deref(), limit))?;
            table(
                &["ID", "RECEIVED", "MAILBOX", "OUTCOME", "TICKET", "FROM", "QUEUE ID"],
                rows.into_iter()
                    .map(|m| {
                        vec![
                            m.id.to_string(),
                            m.received_at,
                            m.mailbox,
                            m.outcome,
                            m.ticket.unwrap_or_else(|| "-".into()),
                            if m.envelope_from.is_empty() { "<>".into() } else { m.envelope_from },
                            m.queue_id.unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect(),
            );
        }
        MessagesCmd::Show { id, raw } => {
            let (view, bytes) = store.read(|c| messages::get(c, id))?.ok_or_else(|| Error::Usage(format!("no stored message {id}")))?;
            if raw {
                let bytes = bytes.ok_or_else(|| Error::Usage(format!("message {id}: its raw text is no longer kept")))?;
                std::io::stdout().write_all(&bytes).map_err(|e| Error::Io(e.to_string()))?;
            } else {
                println!("{}", serde_json::to_string_pretty(&view).map_err(|e| Error::Internal(e.to_string()))?);
            }
        }
        MessagesCmd::Reprocess { id, force } => {
            let engine = Engine::new(store)?;
            for o in engine.reprocess(id, force)? {
                println!("{}", serde_json::to_string(&o).map_err(|e| Error::Internal(e.to_string()))?);
            }
        }
        MessagesCmd::Purge => {
            let engine = Engine::new(store)?;
            let n = engine.purge_raw()?;
            println!("dropped the raw text of {n} message(s)");
        }
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Envelope recipient (repeat for several)
    #[arg(long = "rcpt", value_name = "ADDR", required = true)]
    pub rcpt: Vec<String>,
    /// Envelope sender
    #[arg(long = "from", value_name = "ADDR")]
    pub from: Option<String>,
    /// SMTP AUTH login to assume (as the MTA's {auth_authen} would say)
    #[arg(long, value_name = "LOGIN")]
    pub auth: Option<String>,
    /// SMTP client address to assume
    #[arg(long, value_name = "IP")]
    pub client: Option<std::net::IpAddr>,
    /// The message; `-` or nothing reads standard input
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

pub fn explain(ctx: &Context, a: ExplainArgs) -> Result<i32> {
    let raw = super::process::read_input(a.file.as_ref())?;
    let engine = Engine::new(ctx.open_store()?)?;
    let mut envelope = Envelope::new(a.rcpt.iter().map(|r| r.trim().trim_matches(['<', '>']).to_string()));
    envelope.sender = a.from.as_deref().map(|f| f.trim().trim_matches(['<', '>']).to_string()).unwrap_or_default();
    envelope.null_sender = a.from.as_deref().is_some_and(|f| f.trim() == "<>");
    envelope.auth_user = a.auth;
    envelope.client_addr = a.client;
    for (outcome, trace) in engine.explain(envelope, raw)? {
        println!("== {} ({})", if outcome.mailbox.is_empty() { "-" } else { &outcome.mailbox }, outcome.rcpt);
        for line in trace {
            println!("  {line}");
        }
        let what = match (&outcome.object, outcome.outcome) {
            (Some(o), v) => format!(
                "{} {}{}",
                v.as_str(),
                o.kind.as_str(),
                o.ticket_number.as_deref().or(o.task_number.as_deref()).or(o.project_number.as_deref()).map(|n| format!(" on {n}")).unwrap_or_default()
            ),
            (None, v) => v.as_str().to_string(),
        };
        println!("  result: {what}");
        if let Some(r) = &outcome.reason {
            println!("  reason: {r}");
        }
    }
    Ok(0)
}
