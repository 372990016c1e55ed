//! One milter connection over an in-memory stream: the bytes an MTA would send go in, the
//! milter's answers come out. The fuzzer (fuzz/) and the fuzz regression test drive the real
//! protocol callbacks with it; the daemon does not use it.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use indymilter::Listener;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::{Shared, callbacks};

/// Hands out one stream, then never another.
struct OneStream(Option<DuplexStream>);

impl Listener for OneStream {
    type Io = DuplexStream;

    fn poll_accept(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<DuplexStream>> {
        match self.0.take() {
            Some(stream) => Poll::Ready(Ok(stream)),
            // `run` ends through its shutdown future, which wakes it; nothing to register.
            None => Poll::Pending,
        }
    }
}

/// Serve one connection whose MTA side writes `input` (raw milter protocol bytes: packets with
/// a 4-byte length prefix, or anything else) and then closes its sending half, while reading
/// every answer. Returns the milter's answers once the milter has closed the connection, or
/// `None` when that did not happen within `deadline` (a hang).
#[doc(hidden)]
pub async fn replay(shared: Arc<Shared>, input: &[u8], deadline: Duration) -> Option<Vec<u8>> {
    let (mta, milter) = tokio::io::duplex(64 * 1024);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = indymilter::Config {
        max_connections: 1,
        connection_timeout: deadline,
        ..Default::default()
    };
    let server = indymilter::run(OneStream(Some(milter)), callbacks(shared), config, async move {
        let _ = stop_rx.await;
    });
    let client = async move {
        let (mut rx, mut tx) = tokio::io::split(mta);
        let send = async {
            // The milter may close first (quit, a protocol error): the rest is not sent.
            if tx.write_all(input).await.is_ok() {
                let _ = tx.shutdown().await;
            }
            drop(tx);
        };
        let mut answers = Vec::new();
        let receive = rx.read_to_end(&mut answers);
        let _ = tokio::join!(send, receive);
        let _ = stop_tx.send(());
        answers
    };
    tokio::time::timeout(deadline, async {
        let (_, answers) = tokio::join!(server, client);
        answers
    })
    .await
    .ok()
}
