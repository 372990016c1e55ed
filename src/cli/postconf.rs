//! The Postfix part of `ticketmilter check`: what `postconf` says about the milter settings —
//! is `smtpd_milters` pointing at our socket, is `milter_default_action` tempfail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::milter::socket::SocketSpec;

/// The Postfix settings the check reads.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PostfixSettings {
    pub smtpd_milters: String,
    pub non_smtpd_milters: String,
    pub milter_default_action: String,
    pub queue_directory: String,
    /// The `smtp inet` service of master.cf runs chrooted (in the queue directory).
    pub smtpd_chroot: bool,
}

/// Where `postconf` is, if Postfix is installed.
fn postconf_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("postconf"))
        .find(|p| p.is_file())
}

/// Run `postconf` (with `-c DIR` for a Postfix configuration directory other than the default).
fn read_settings(binary: &Path, config_dir: Option<&Path>) -> Result<PostfixSettings, String> {
    let mut cmd = Command::new(binary);
    if let Some(dir) = config_dir {
        cmd.arg("-c").arg(dir);
    }
    cmd.args(["smtpd_milters", "non_smtpd_milters", "milter_default_action", "queue_directory"]);
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let out = wait_bounded(child, Duration::from_secs(10)).map_err(|e| format!("{}: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut settings = parse_postconf(&String::from_utf8_lossy(&out.stdout));
    // master.cf: does smtpd run chrooted? (`postconf -M smtp/inet`; the fifth column)
    let mut cmd = Command::new(binary);
    if let Some(dir) = config_dir {
        cmd.arg("-c").arg(dir);
    }
    cmd.args(["-M", "smtp/inet"]);
    if let Ok(child) = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        if let Ok(out) = wait_bounded(child, Duration::from_secs(10)) {
            settings.smtpd_chroot = chroot_column(&String::from_utf8_lossy(&out.stdout));
        }
    }
    Ok(settings)
}

/// The chroot column of a master.cf service line (`-` is Postfix 3's default: no chroot).
pub fn chroot_column(line: &str) -> bool {
    line.lines().next().and_then(|l| l.split_whitespace().nth(4)) == Some("y")
}

fn wait_bounded(mut child: std::process::Child, limit: Duration) -> Result<std::process::Output, String> {
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().map_err(|e| e.to_string()),
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not answer within {} s", limit.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// `name = value` lines as `postconf NAME…` prints them.
pub fn parse_postconf(text: &str) -> PostfixSettings {
    let mut s = PostfixSettings::default();
    for line in text.lines() {
        let Some((name, value)) = line.split_once('=') else { continue };
        let value = value.trim().to_string();
        match name.trim() {
            "smtpd_milters" => s.smtpd_milters = value,
            "non_smtpd_milters" => s.non_smtpd_milters = value,
            "milter_default_action" => s.milter_default_action = value,
            "queue_directory" => s.queue_directory = value,
            _ => {}
        }
    }
    s
}

/// The milter entries of a Postfix list (`{ inet:… , timeouts… }` groups and plain entries,
/// separated by commas or white space).
fn milter_entries(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            break;
        }
        if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').unwrap_or(inner.len());
            // The first attribute of a group is the socket.
            let first = inner[..end].split(|c: char| c == ',' || c.is_whitespace()).find(|t| !t.is_empty()).unwrap_or("");
            out.push(first.to_string());
            rest = inner.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(|c: char| c == ',' || c.is_whitespace()).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

fn is_loopback_name(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]" | "ip6-localhost")
}

/// Does one Postfix milter entry name our socket? When smtpd runs chrooted (`chroot` is the
/// queue directory), a unix path is relative to the chroot, as the chrooted smtpd sees it.
pub fn entry_matches(entry: &str, ours: &SocketSpec, chroot: Option<&str>) -> bool {
    let Ok(theirs) = SocketSpec::parse(entry) else { return false };
    match (&theirs, ours) {
        (SocketSpec::Unix(p), SocketSpec::Unix(o)) => match chroot {
            Some(root) => Path::new(root).join(p.strip_prefix("/").unwrap_or(p)) == *o,
            None => p == o,
        },
        (SocketSpec::Inet { host: h1, port: p1, .. }, SocketSpec::Inet { host: h2, port: p2, .. }) => {
            p1 == p2 && (h1.eq_ignore_ascii_case(h2) || (is_loopback_name(h1) && is_loopback_name(h2)) || h2 == "0.0.0.0" || h2 == "::")
        }
        _ => false,
    }
}

/// Judge the settings: problems (each one line) and notes.
pub fn judge(s: &PostfixSettings, socket: &str, problems: &mut Vec<String>, notes: &mut Vec<String>) {
    let Ok(ours) = SocketSpec::parse(socket) else {
        // The socket check already reports an unparsable socket.
        return;
    };
    let chroot = (s.smtpd_chroot && !s.queue_directory.is_empty()).then_some(s.queue_directory.as_str());
    if let (Some(root), SocketSpec::Unix(path)) = (chroot, &ours) {
        if !path.starts_with(root) {
            problems.push(format!(
                "Postfix's smtpd runs chrooted in {root} (master.cf, smtp inet) and cannot reach {socket}; put the socket under {root}, use inet:, or set the chroot column to n"
            ));
        }
    }
    let smtpd = milter_entries(&s.smtpd_milters);
    if smtpd.iter().any(|e| entry_matches(e, &ours, chroot)) {
        notes.push(format!("Postfix smtpd_milters names ticketmilter's socket {socket}"));
    } else if smtpd.is_empty() {
        problems.push(format!(
            "Postfix smtpd_milters is empty: mail received by SMTP is not converted; add `smtpd_milters = {}` to main.cf",
            postfix_form(&ours, chroot)
        ));
    } else {
        problems.push(format!(
            "Postfix smtpd_milters = {} does not name ticketmilter's socket {socket} (expected e.g. {})",
            s.smtpd_milters,
            postfix_form(&ours, chroot)
        ));
    }
    match s.milter_default_action.as_str() {
        "tempfail" => notes.push("Postfix milter_default_action = tempfail (mail waits while ticketmilter is unreachable)".into()),
        other => problems.push(format!(
            "Postfix milter_default_action = {other}: while ticketmilter is unreachable mail {}; set `milter_default_action = tempfail`",
            match other {
                "accept" => "is delivered without becoming a ticket",
                "reject" => "is rejected",
                "quarantine" => "is put on hold without becoming a ticket",
                _ => "is not converted",
            }
        )),
    }
    let local = milter_entries(&s.non_smtpd_milters);
    // Local submissions (the cleanup daemon) are not chrooted by this setting; the path is as is
    // unless cleanup is chrooted too, which the check does not read.
    if local.iter().any(|e| entry_matches(e, &ours, None) || entry_matches(e, &ours, chroot)) {
        notes.push("Postfix non_smtpd_milters names ticketmilter's socket (local submissions are converted too)".into());
    } else {
        notes.push("Postfix non_smtpd_milters does not name ticketmilter: mail submitted locally with sendmail(1) is not converted".into());
    }
}

/// How the socket is written in main.cf (for a chrooted smtpd, relative to the chroot).
fn postfix_form(ours: &SocketSpec, chroot: Option<&str>) -> String {
    match (ours, chroot) {
        (SocketSpec::Unix(p), Some(root)) => match p.strip_prefix(root) {
            Ok(rel) => format!("unix:/{}", rel.display()),
            Err(_) => ours.to_string(),
        },
        _ => ours.to_string(),
    }
}

/// The whole Postfix check; `config_dir` is `postconf -c`.
pub fn check(socket: &str, config_dir: Option<&Path>, problems: &mut Vec<String>, notes: &mut Vec<String>) {
    let Some(binary) = postconf_binary() else {
        if config_dir.is_some() {
            problems.push("postconf not found: cannot check the Postfix configuration given with --postfix-config".into());
        } else {
            notes.push("postconf not found: Postfix settings not checked (Sendmail: see conf/sendmail.mc)".into());
        }
        return;
    };
    match read_settings(&binary, config_dir) {
        Ok(s) => judge(&s, socket, problems, notes),
        Err(e) => problems.push(format!("Postfix settings: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(smtpd: &str, action: &str) -> PostfixSettings {
        PostfixSettings {
            smtpd_milters: smtpd.into(),
            non_smtpd_milters: String::new(),
            milter_default_action: action.into(),
            queue_directory: "/var/spool/postfix".into(),
            smtpd_chroot: true,
        }
    }

    fn judged(s: &PostfixSettings, socket: &str) -> (Vec<String>, Vec<String>) {
        let (mut p, mut n) = (Vec::new(), Vec::new());
        judge(s, socket, &mut p, &mut n);
        (p, n)
    }

    #[test]
    fn parses_postconf_output() {
        let s = parse_postconf("smtpd_milters = inet:127.0.0.1:8897, unix:/opendkim/s\nnon_smtpd_milters =\nmilter_default_action = tempfail\nqueue_directory = /var/spool/postfix\n");
        assert_eq!(s.smtpd_milters, "inet:127.0.0.1:8897, unix:/opendkim/s");
        assert_eq!(s.non_smtpd_milters, "");
        assert_eq!(s.milter_default_action, "tempfail");
    }

    #[test]
    fn entries_with_groups_and_separators() {
        assert_eq!(
            milter_entries("{ inet:127.0.0.1:8897, default_action=accept } unix:/a/b,inet:localhost:12301"),
            vec!["inet:127.0.0.1:8897", "unix:/a/b", "inet:localhost:12301"]
        );
        assert!(milter_entries("  ").is_empty());
    }

    #[test]
    fn a_correct_setup_has_no_problem() {
        let (p, n) = judged(&settings("inet:localhost:8897", "tempfail"), "inet:127.0.0.1:8897");
        assert!(p.is_empty(), "{p:?}");
        assert!(n.iter().any(|x| x.contains("names ticketmilter's socket")));
        assert!(n.iter().any(|x| x.contains("non_smtpd_milters does not name")));
    }

    #[test]
    fn a_chroot_relative_unix_path_matches() {
        let s = settings("unix:/ticketmilter/ticketmilter.sock", "tempfail");
        let (p, _) = judged(&s, "unix:/var/spool/postfix/ticketmilter/ticketmilter.sock");
        assert!(p.is_empty(), "{p:?}");
        // Outside the chroot: unreachable, and not the socket main.cf names.
        let (p, _) = judged(&s, "unix:/run/ticketmilter/ticketmilter.sock");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("runs chrooted in /var/spool/postfix") && p[0].contains("cannot reach"), "{p:?}");
        // Without the chroot the path in main.cf is the path itself.
        let mut plain = settings("unix:/run/ticketmilter/ticketmilter.sock", "tempfail");
        plain.smtpd_chroot = false;
        let (p, _) = judged(&plain, "unix:/run/ticketmilter/ticketmilter.sock");
        assert!(p.is_empty(), "{p:?}");
        let mut relative = s.clone();
        relative.smtpd_chroot = false;
        let (p, _) = judged(&relative, "unix:/var/spool/postfix/ticketmilter/ticketmilter.sock");
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn reads_the_chroot_column() {
        assert!(chroot_column("smtp       inet  n       -       y       -       -       smtpd\n"));
        assert!(!chroot_column("smtp       inet  n       -       n       -       -       smtpd\n"));
        assert!(!chroot_column("smtp       inet  n       -       -       -       -       smtpd\n"));
        assert!(!chroot_column(""));
    }

    #[test]
    fn a_missing_milter_and_accept_are_each_one_line() {
        let (p, _) = judged(&settings("", "accept"), "inet:127.0.0.1:8897");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("smtpd_milters is empty") && p[0].contains("smtpd_milters = inet:127.0.0.1:8897"));
        assert!(p[1].contains("milter_default_action = accept") && p[1].contains("without becoming a ticket"));
        let (p, _) = judged(&settings("inet:127.0.0.1:9999", "tempfail"), "inet:127.0.0.1:8897");
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("does not name ticketmilter's socket"), "{p:?}");
    }

    #[test]
    fn the_suggested_line_is_relative_to_the_chroot() {
        let (p, _) = judged(&settings("", "tempfail"), "unix:/var/spool/postfix/tm/tm.sock");
        assert!(p[0].contains("smtpd_milters = unix:/tm/tm.sock"), "{p:?}");
    }
}
