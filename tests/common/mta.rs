//! The steps a milter may negotiate away, taken the way an MTA takes them: a skipped step sends
//! no command and counts as "continue", while the macros the milter asked for are sent all the
//! same (Postfix and Sendmail send the macros of a skipped step with the next command); a step
//! whose answer the milter negotiated away counts as "continue" too.

use indymilter_test::{MacroStage, ProtoOpts, Status, TestConnection, TestResult};

/// The connect step from `client` (an IPv4 address): the `{client_addr}` macro when the milter
/// asked for it, then the connect command unless it was negotiated away.
pub async fn connect(c: &mut TestConnection, host: &str, client: [u8; 4]) -> TestResult<Status> {
    let asked = c
        .requested_macros()
        .get(&MacroStage::Connect)
        .is_some_and(|m| m.to_string_lossy().split_whitespace().any(|n| n == "{client_addr}"));
    if asked {
        let addr = std::net::Ipv4Addr::from(client).to_string();
        c.macros(MacroStage::Connect, [("{client_addr}", addr.as_str())]).await?;
    }
    if c.negotiated_opts().contains(ProtoOpts::NO_CONNECT) {
        return Ok(Status::Continue);
    }
    c.connect(host, client).await
}

/// MAIL; no answer (negotiated away) is "continue".
pub async fn mail(c: &mut TestConnection, sender: &str) -> TestResult<Status> {
    c.mail([sender]).await.map(unanswered_goes_on)
}

/// RCPT; no answer (negotiated away) is "continue".
pub async fn rcpt(c: &mut TestConnection, recipient: &str) -> TestResult<Status> {
    c.rcpt([recipient]).await.map(unanswered_goes_on)
}

fn unanswered_goes_on(s: Status) -> Status {
    if s == Status::Noreply { Status::Continue } else { s }
}

/// DATA, unless negotiated away.
pub async fn data(c: &mut TestConnection) -> TestResult<Status> {
    if c.negotiated_opts().contains(ProtoOpts::NO_DATA) {
        return Ok(Status::Continue);
    }
    c.data().await
}

/// End of header, unless negotiated away.
pub async fn eoh(c: &mut TestConnection) -> TestResult<Status> {
    if c.negotiated_opts().contains(ProtoOpts::NO_EOH) {
        return Ok(Status::Continue);
    }
    c.eoh().await
}

/// The options of an MTA that can neither skip connect, DATA and end of header nor take MAIL and
/// RCPT unanswered.
pub fn without_skips() -> ProtoOpts {
    ProtoOpts::all() - ProtoOpts::NO_CONNECT - ProtoOpts::NO_DATA - ProtoOpts::NO_EOH - ProtoOpts::NOREPLY_MAIL - ProtoOpts::NOREPLY_RCPT
}
