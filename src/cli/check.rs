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
    check_socket(&ctx.config.milter, SERVICE_UNITS, &mut problems, &mut notes);
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

/// Where systemd looks for the service's unit, first match wins.
const SERVICE_UNITS: &[&str] = &[
    "/etc/systemd/system/ticketmilter.service",
    "/run/systemd/system/ticketmilter.service",
    "/usr/lib/systemd/system/ticketmilter.service",
    "/lib/systemd/system/ticketmilter.service",
];

/// The directories systemd creates under /run when the service starts (`RuntimeDirectory=` of the
/// first unit file found among `units`).
fn runtime_directories(units: &[&str]) -> Vec<std::path::PathBuf> {
    let Some(text) = units.iter().find_map(|u| std::fs::read_to_string(u).ok()) else {
        return Vec::new();
    };
    let mut dirs = Vec::new();
    for line in text.lines() {
        if let Some(value) = line.trim().strip_prefix("RuntimeDirectory=") {
            // An empty assignment resets the list, as in systemd.
            if value.trim().is_empty() {
                dirs.clear();
            }
            dirs.extend(value.split_whitespace().map(|d| std::path::Path::new("/run").join(d)));
        }
    }
    dirs
}

/// Is the milter socket usable: already served (a running daemon), or free to bind? A unix
/// socket's directory may be one systemd creates when the service starts; its group must exist.
fn check_socket(milter: &crate::config::MilterConfig, units: &[&str], problems: &mut Vec<String>, notes: &mut Vec<String>) {
    use crate::milter::socket::SocketSpec;
    let spec = milter.socket.as_str();
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
            let group = milter.socket_group.trim();
            if !group.is_empty() {
                match crate::milter::socket::group_id(group) {
                    Some(_) => notes.push(format!("milter socket group {group} exists")),
                    None => problems.push(format!("milter.socket_group {group:?} does not exist (the socket could not be given to it)")),
                }
            }
            let dir = path.parent().unwrap_or(std::path::Path::new("/"));
            if !dir.is_dir() {
                if runtime_directories(units).iter().any(|d| d == dir) {
                    notes.push(format!(
                        "milter socket {spec}: directory {} does not exist now; systemd creates it when the service starts (RuntimeDirectory=)",
                        dir.display()
                    ));
                } else {
                    problems.push(format!("milter socket {spec}: directory {} does not exist", dir.display()));
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MilterConfig;

    fn unit(dir: &std::path::Path, text: &str) -> String {
        let path = dir.join("ticketmilter.service");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    #[test]
    fn runtime_directories_come_from_the_first_unit_found() {
        let d = tempfile::tempdir().unwrap();
        let u = unit(d.path(), "[Service]\nRuntimeDirectory=ticketmilter other\nRuntimeDirectoryMode=0755\n");
        let missing = d.path().join("missing.service");
        let units = [missing.to_str().unwrap(), u.as_str()];
        assert_eq!(runtime_directories(&units), vec![std::path::PathBuf::from("/run/ticketmilter"), "/run/other".into()]);
        let reset = unit(d.path(), "RuntimeDirectory=a\nRuntimeDirectory=\nRuntimeDirectory=b\n");
        assert_eq!(runtime_directories(&[reset.as_str()]), vec![std::path::PathBuf::from("/run/b")]);
        assert!(runtime_directories(&[missing.to_str().unwrap()]).is_empty());
    }

    #[test]
    fn a_socket_directory_systemd_creates_is_no_problem_and_an_unknown_group_is() {
        let d = tempfile::tempdir().unwrap();
        let name = format!("tm-check-{}", std::process::id());
        let u = unit(d.path(), &format!("RuntimeDirectory={name}\n"));
        let milter = |socket: String, group: &str| MilterConfig { socket, socket_group: group.into(), ..MilterConfig::default() };
        let (mut problems, mut notes) = (Vec::new(), Vec::new());
        check_socket(&milter(format!("unix:/run/{name}/t.sock"), ""), &[u.as_str()], &mut problems, &mut notes);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(notes.iter().any(|n| n.contains("systemd creates it")), "{notes:?}");
        // Without the unit, the missing directory is a problem.
        let (mut problems, mut notes) = (Vec::new(), Vec::new());
        check_socket(&milter(format!("unix:/run/{name}/t.sock"), ""), &[], &mut problems, &mut notes);
        assert!(problems.iter().any(|p| p.contains("does not exist")), "{problems:?}");
        // The socket group: an unknown one is a problem, a known one (by name or number) is not.
        let sock = format!("unix:{}/t.sock", d.path().display());
        let (mut problems, mut notes) = (Vec::new(), Vec::new());
        check_socket(&milter(sock.clone(), "no-such-group-tm"), &[], &mut problems, &mut notes);
        assert_eq!(problems, vec!["milter.socket_group \"no-such-group-tm\" does not exist (the socket could not be given to it)".to_string()]);
        let (mut problems, mut notes) = (Vec::new(), Vec::new());
        check_socket(&milter(sock, "0"), &[], &mut problems, &mut notes);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(notes.iter().any(|n| n == "milter socket group 0 exists"), "{notes:?}");
    }
}
