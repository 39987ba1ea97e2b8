//! A peer that stops reading: its connection is closed after
//! `--write-stall-timeout` without a byte of progress on a write.
//!
//! A client that opens response streams (searchOrders) and never reads
//! them fills, in turn, its own receive buffer, our kernel send queue
//! (~4 MiB per connection at Linux's default `tcp_wmem`), hyper's send
//! buffer (`--max-send-buffer-bytes` per stream) and each call's channel; there everything
//! waits. HTTP/2 keepalive cannot end it: the PING's answer never comes,
//! but the GOAWAY that hyper then sends waits behind the same full socket,
//! so the connection, its streams and their memory stayed (the hostile
//! trial: 900 streams, +560 MiB, connections ESTABLISHED long after).
//!
//! Here the connection's writes are watched below HTTP/2 and TLS: a write
//! that cannot make progress for the timeout fails with `TimedOut`, which
//! ends the connection in hyper at once (every stream's memory is freed,
//! each call sees its client gone), and the socket is closed with a reset
//! (`SO_LINGER` 0), so the kernel drops its send queue too instead of
//! retrying it to a peer that does not read. Any progress restarts the
//! clock: a slow reader is not a stalled one.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The write-stall clock of one connection.
pub struct WriteStall {
    limit: Duration,
    /// Armed while a write is waiting, for when it becomes a stall.
    timer: Option<Pin<Box<Sleep>>>,
}

impl WriteStall {
    pub fn new(limit: Duration) -> Self {
        Self { limit, timer: None }
    }

    /// Passes on what a write returned: progress disarms the clock; a wait
    /// arms it (waking the task when it runs out), and once it has run
    /// out, the wait becomes a `TimedOut` error.
    pub fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.timer = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the peer read nothing for {limit:?} (--write-stall-timeout)"),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_waiting_past_the_limit_fails_and_progress_resets_the_clock() {
        let mut stall = WriteStall::new(Duration::from_secs(30));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let pending = || Poll::<io::Result<usize>>::Pending;
        assert!(stall.check(&mut cx, pending()).is_pending());
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(stall.check(&mut cx, pending()).is_pending());
        // Progress: the clock starts again.
        assert!(matches!(
            stall.check(&mut cx, Poll::Ready(Ok(1))),
            Poll::Ready(Ok(1))
        ));
        assert!(stall.check(&mut cx, pending()).is_pending());
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(stall.check(&mut cx, pending()).is_pending());
        tokio::time::advance(Duration::from_secs(11)).await;
        match stall.check(&mut cx, pending()) {
            Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            other => panic!("{other:?}"),
        }
    }
}
