//! A TCP proxy that adds latency, as a network between regions would: every byte read from
//! one side is written to the other half a round trip later, in both directions, and a new
//! connection waits one round trip before its first byte goes upstream (the TCP handshake).
//! Order and back-pressure are kept (at most `WINDOW` chunks in flight per direction);
//! bandwidth is not limited. For benchmarks only.
//!
//!   delay-proxy LISTEN UPSTREAM RTT_MS     e.g. delay-proxy 127.0.0.1:9000 127.0.0.1:8000 40
//!
//! Prints `ready` on stdout once it listens.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Chunks in flight per direction (64 KiB each at most): 64 MiB, more than a long fat pipe
/// holds at these round trips, so the delay, not this buffer, bounds a stream.
const WINDOW: usize = 1024;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, rtt] = args.as_slice() else {
        eprintln!("usage: delay-proxy LISTEN UPSTREAM RTT_MS");
        std::process::exit(2);
    };
    let rtt = Duration::from_millis(rtt.parse().expect("RTT_MS: a number of milliseconds"));
    let listener = TcpListener::bind(listen).await?;
    println!("ready");
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            tokio::time::sleep(rtt).await;
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::join!(pipe(cr, sw, rtt / 2), pipe(sr, cw, rtt / 2));
        });
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read; shuts `to` down after `from`
/// ends (also delayed).
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(WINDOW);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            // An empty chunk carries the end of the stream.
            if tx.send((Instant::now() + delay, buf[..n].to_vec())).await.is_err() || n == 0 {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if chunk.is_empty() || to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
