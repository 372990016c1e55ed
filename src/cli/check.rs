//! `ticketmilter check`: configuration file, database and SQL configuration, each problem on one
//! line; exit code 1 when there is any.

use super::Context;
use crate::error::Result;
use crate::pipeline::{ConfRows, Snapshot};
use crate::store::{Store, conf};

pub fn run(ctx: &Context) -> Result<i32> {
    let mut problems: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    match &ctx.config_path {
        Some(p) => notes.push(format!("configuration file {} is valid", p.display())),
        None => notes.push("no configuration file; using the defaults".into()),
    }
    match Store::open(&ctx.database, ctx.config.store_options()) {
        Err(e) => problems.push(e.to_string()),
        Ok(store) => {
            notes.push(format!("database {} is reachable", store.url().redacted()));
            match store.pending_migrations() {
                Err(e) => problems.push(e.to_string()),
                Ok(pending) if !pending.is_empty() => problems.push(format!(
                    "database needs {} migration(s) ({}); run `ticketmilter migrate`",
                    pending.len(),
                    pending.join(", ")
                )),
                Ok(_) => match store.read(conf::load) {
                    Err(e) => problems.push(e.to_string()),
                    Ok(rows) => check_conf(rows, &mut problems, &mut notes),
                },
            }
        }
    }
    for n in &notes {
        println!("ok: {n}");
    }
    for p in &problems {
        println!("problem: {p}");
    }
    if problems.is_empty() {
        println!("everything is in order");
        Ok(0)
    } else {
        println!("{} problem(s) found", problems.len());
        Ok(1)
    }
}

fn check_conf(rows: ConfRows, problems: &mut Vec<String>, notes: &mut Vec<String>) {
    let snapshot = Snapshot::build(rows);
    problems.extend(snapshot.problems.iter().cloned());
    let mailboxes = snapshot.mailboxes();
    if mailboxes.is_empty() {
        problems.push("no active mailbox: no mail will be converted (add one with `ticketmilter mailbox add`)".into());
    } else {
        notes.push(format!(
            "{} active mailbox(es): {}",
            mailboxes.len(),
            mailboxes.iter().map(|m| m.address.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    notes.push(format!("{} active tag(s) compiled", snapshot.tags.len()));
}
