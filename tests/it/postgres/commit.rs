//! A connection lost during COMMIT: the write's outcome is unknown, and
//! the store must say so (never success, never "nothing written").
//!
//! The store talks to PostgreSQL through a TCP proxy that, when armed,
//! cuts the connection at the client's next `COMMIT`: either after
//! passing it on (the write is stored) or before (it is not). The caller
//! gets the same answer both times, because it cannot tell them apart.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use order_management::store::{OrderStore, PgOptions, PgStore, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::harness::Postgres;
use super::order;

const PASS: u8 = 0;
/// Forward the COMMIT, then cut both sides before its answer returns.
const CUT_AFTER: u8 = 1;
/// Cut both sides instead of forwarding the COMMIT.
const CUT_BEFORE: u8 = 2;

/// Listens on 127.0.0.1; returns its port and the arming switch.
async fn proxy(upstream: u16) -> (u16, Arc<AtomicU8>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mode = Arc::new(AtomicU8::new(PASS));
    let armed = Arc::clone(&mode);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
            tokio::spawn(relay(client, server, Arc::clone(&armed)));
        }
    });
    (port, mode)
}

async fn relay(client: TcpStream, server: TcpStream, mode: Arc<AtomicU8>) {
    let (mut client_read, client_write) = client.into_split();
    let (server_read, mut server_write) = server.into_split();
    // Server to client: copied as is until cut.
    let (cut, mut cut_seen) = tokio::sync::watch::channel(false);
    let down = tokio::spawn(async move {
        let (mut server_read, mut client_write) = (server_read, client_write);
        let mut buf = [0u8; 8192];
        loop {
            tokio::select! {
                _ = cut_seen.changed() => return server_read, // drops client_write: EOF to the client
                n = server_read.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return server_read,
                    Ok(n) => {
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            return server_read;
                        }
                    }
                },
            }
        }
    });
    // Client to server: the startup packet (no type byte), then messages.
    let mut len = [0u8; 4];
    if client_read.read_exact(&mut len).await.is_err() {
        return;
    }
    let mut startup = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
    if client_read.read_exact(&mut startup).await.is_err() {
        return;
    }
    let _ = server_write.write_all(&len).await;
    let _ = server_write.write_all(&startup).await;
    loop {
        let mut head = [0u8; 5];
        if client_read.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        if client_read.read_exact(&mut body).await.is_err() {
            return;
        }
        let is_commit = head[0] == b'Q' && body.starts_with(b"COMMIT");
        let cut_mode = if is_commit {
            mode.swap(PASS, Ordering::SeqCst)
        } else {
            PASS
        };
        if cut_mode != PASS {
            // The client loses the connection before any answer.
            let _ = cut.send(true);
            let server_read = down.await.unwrap();
            if cut_mode == CUT_AFTER {
                let _ = server_write.write_all(&head).await;
                let _ = server_write.write_all(&body).await;
                // Let the server read and run it before it sees the end.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            drop((server_read, server_write));
            return;
        }
        if server_write.write_all(&head).await.is_err()
            || server_write.write_all(&body).await.is_err()
        {
            return;
        }
    }
}

fn unknown(result: &Result<(), StoreError>) -> bool {
    matches!(result, Err(StoreError::Unavailable(m)) if m.contains("outcome of this write is unknown"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_during_commit_is_an_unknown_outcome() {
    let port = Postgres::free_port();
    let Some(pg) = Postgres::start_tcp(port) else {
        return;
    };
    pg.create_database("commit").await;
    let (proxy_port, mode) = proxy(port).await;
    let url = format!("postgres://postgres@127.0.0.1:{proxy_port}/commit?sslmode=disable");
    let store = PgStore::connect(&url, PgOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", pg.log()));
    let deadline = || Some(std::time::Instant::now() + Duration::from_secs(5));

    for (cut, stored) in [(CUT_AFTER, true), (CUT_BEFORE, false)] {
        let id = format!("insert-{cut}");
        mode.store(cut, Ordering::SeqCst);
        let result = store.insert(order(&id, &["x"]), deadline()).await;
        assert!(unknown(&result), "cut {cut}: {result:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            store.get(&id).await.unwrap().is_some(),
            stored,
            "cut {cut}: the answer said unknown; the database decides"
        );
    }

    store.insert(order("u", &["before"]), None).await.unwrap();
    for (cut, items) in [(CUT_BEFORE, "before"), (CUT_AFTER, "after")] {
        mode.store(cut, Ordering::SeqCst);
        let result = store
            .update_all(vec![order("u", &["after"])], deadline())
            .await;
        assert!(unknown(&result), "cut {cut}: {result:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            store.get("u").await.unwrap().unwrap().items,
            [items],
            "cut {cut}"
        );
    }
    assert_eq!(mode.load(Ordering::SeqCst), PASS);
}
