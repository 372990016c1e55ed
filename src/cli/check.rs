//! `ticketmilter check`: configuration file, database and SQL configuration, sockets and the
//! Postfix settings, each problem on one line; exit code 1 when there is any.

use super::Context;
use crate::error::Result;
use crate::pipeline::{ConfRows, Snapshot};
use crate::store::{Store, conf};

pub fn run(ctx: &Context, postfix_config: Option<&std::path::Path>) -> Result<i32> {
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
    check_socket(&ctx.config.milter.socket, &mut problems, &mut notes);
    check_metrics(&ctx.config.metrics, &mut problems, &mut notes);
    super::postconf::check(&ctx.config.milter.socket, postfix_config, &mut problems, &mut notes);
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

/// Is the milter socket usable: already served (a running daemon), or free to bind?
fn check_socket(spec: &str, problems: &mut Vec<String>, notes: &mut Vec<String>) {
    use crate::milter::socket::SocketSpec;
    let parsed = match SocketSpec::parse(spec) {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("milter socket: {e}"));
            return;
        }
    };
    match &parsed {
        SocketSpec::Unix(path) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                notes.push(format!("milter socket {spec} answers (a milter is running)"));
                return;
            }
            let dir = path.parent().unwrap_or(std::path::Path::new("/"));
            if !dir.is_dir() {
                problems.push(format!("milter socket {spec}: directory {} does not exist", dir.display()));
            } else if std::fs::metadata(dir).map(|m| m.permissions().readonly()).unwrap_or(true)
                || tempfile_in(dir).is_err()
            {
                problems.push(format!("milter socket {spec}: directory {} is not writable for this user", dir.display()));
            } else if path.exists() && !is_socket(path) {
                problems.push(format!("milter socket {spec}: {} exists and is not a socket", path.display()));
            } else {
                notes.push(format!("milter socket {spec} can be created"));
            }
        }
        SocketSpec::Inet { host, port, .. } => {
            let addr = format!("{}:{port}", if host.contains(':') { format!("[{host}]") } else { host.clone() });
            let resolved: Vec<std::net::SocketAddr> = match std::net::ToSocketAddrs::to_socket_addrs(&addr) {
                Ok(a) => a.collect(),
                Err(e) => {
                    problems.push(format!("milter socket {spec}: cannot resolve {host}: {e}"));
                    return;
                }
            };
            let Some(first) = resolved.first() else {
                problems.push(format!("milter socket {spec}: {host} has no address"));
                return;
            };
            if std::net::TcpStream::connect_timeout(first, std::time::Duration::from_secs(1)).is_ok() {
                notes.push(format!("milter socket {spec} answers (a milter is running)"));
            } else {
                match std::net::TcpListener::bind(first) {
                    Ok(_) => notes.push(format!("milter socket {spec} can be bound")),
                    Err(e) => problems.push(format!("milter socket {spec}: cannot listen on {first}: {e}")),
                }
            }
        }
    }
}

/// Is the metrics address usable: served by a running ticketmilter, or free to bind?
fn check_metrics(cfg: &crate::config::MetricsConfig, problems: &mut Vec<String>, notes: &mut Vec<String>) {
    use std::io::{Read, Write};
    use std::time::Duration;
    let addr = match cfg.address() {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            notes.push("metrics endpoint is off (metrics.listen is empty)".into());
            return;
        }
        Err(e) => {
            problems.push(e);
            return;
        }
    };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        match std::net::TcpListener::bind(addr) {
            Ok(_) => notes.push(format!("metrics address {addr} can be bound")),
            Err(e) => problems.push(format!("metrics address {addr}: cannot listen: {e}")),
        }
        return;
    };
    // Something listens there: ticketmilter's endpoint, or another program holding the port.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut response = Vec::new();
    let asked = stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").is_ok();
    let _ = stream.take(1 << 20).read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    if asked && text.starts_with("HTTP/1.0 200") && text.contains("ticketmilter_build_info") {
        notes.push(format!("metrics address {addr} answers (ticketmilter is running)"));
    } else {
        problems.push(format!("metrics address {addr} is taken by another program"));
    }
}

fn tempfile_in(dir: &std::path::Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".ticketmilter-check-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

fn is_socket(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).map(|m| m.file_type().is_socket()).unwrap_or(false)
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
    notes.push(format!(
        "{} parsing rule(s) compiled, {} excluded sender(s)",
        snapshot.rules.len(),
        snapshot.exclusions.len()
    ));
    let rows = snapshot.rows();
    let template_problems = crate::notify::template::check(&rows.templates);
    if template_problems.is_empty() {
        notes.push(format!(
            "{} notification template(s) render ({} active)",
            rows.templates.len(),
            rows.templates.iter().filter(|t| t.active).count()
        ));
    }
    for p in template_problems {
        if !problems.contains(&p) {
            problems.push(p);
        }
    }
    notes.push(format!("{} workflow rule(s) compiled", snapshot.workflow.len()));
    let trust = &snapshot.settings.trust;
    if trust.authserv_ids.is_empty() && trust.networks.is_empty() {
        notes.push("commands by mail (#T=) work only for SMTP-authenticated staff: no trusted_authserv_ids or trusted_networks are set".into());
    }
}
