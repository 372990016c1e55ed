//! A no-op milter for comparison benchmarks: the same protocol handling as ticketmilter
//! (indymilter, TCP_NODELAY, the same socket forms), it takes the whole message and accepts it
//! without converting anything. `cargo run --release --example noop-milter -- inet:127.0.0.1:8898`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use indymilter::{Callbacks, Status};
use ticketmilter::milter::socket::{SocketSpec, UnixPerms, bind};

// One thread for the protocol, as ticketmilter runs it (`milter::run_daemon`).
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let spec = std::env::args().nth(1).unwrap_or_else(|| "inet:127.0.0.1:8898".to_string());
    let add_header = std::env::args().any(|a| a == "--add-header");
    let spec = SocketSpec::parse(&spec).unwrap_or_else(|e| {
        eprintln!("noop-milter: {e}");
        std::process::exit(64);
    });
    let listener = bind(&spec, &UnixPerms { mode: 0o660, group: None }).await.unwrap_or_else(|e| {
        eprintln!("noop-milter: {e}");
        std::process::exit(78);
    });
    let messages = Arc::new(AtomicU64::new(0));
    let counter = messages.clone();
    let callbacks: Callbacks<Vec<u8>> = Callbacks::new()
        .on_header(|cx, name, value| {
            Box::pin(async move {
                let buf = cx.data.get_or_insert_with(Vec::new);
                buf.extend_from_slice(name.as_bytes());
                buf.extend_from_slice(b": ");
                buf.extend_from_slice(value.as_bytes());
                buf.extend_from_slice(b"\r\n");
                Status::Continue
            })
        })
        .on_body(|cx, chunk| {
            Box::pin(async move {
                cx.data.get_or_insert_with(Vec::new).extend_from_slice(&chunk);
                Status::Continue
            })
        })
        .on_eom(move |cx| {
            let counter = counter.clone();
            Box::pin(async move {
                use indymilter::ContextActions;
                cx.data = None;
                counter.fetch_add(1, Ordering::Relaxed);
                if add_header {
                    let _ = cx.actions.add_header("X-Noop", "accepted").await;
                }
                Status::Accept
            })
        })
        .on_abort(|cx| {
            Box::pin(async move {
                cx.data = None;
                Status::Continue
            })
        });
    let config = indymilter::Config {
        max_connections: 200,
        actions: if add_header { indymilter::Actions::ADD_HEADER } else { indymilter::Actions::empty() },
        ..Default::default()
    };
    eprintln!("noop-milter listening on {}", listener.describe());
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    let stop = async move {
        tokio::select! {
            _ = shutdown => {},
            _ = term.recv() => {},
        }
    };
    if let Err(e) = indymilter::run(listener, callbacks, config, stop).await {
        eprintln!("noop-milter: {e}");
        std::process::exit(1);
    }
    eprintln!("noop-milter: {} messages", messages.load(Ordering::Relaxed));
}
