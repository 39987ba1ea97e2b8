//! What a call's request body may cost: time and memory.
//!
//! - **Time.** A client can send a call's headers and never its message:
//!   the call then holds its admission slot until `--max-call-seconds`, and
//!   a few such clients hold every slot. For calls whose request is one
//!   message (every method but the client-streaming and bidirectional
//!   ones), the body must end within `--request-message-timeout` of the
//!   headers, or the call ends with `DEADLINE_EXCEEDED`. The timer is armed
//!   only if the body is not complete when the handler first asks for it,
//!   so the usual call (headers and message in one read) pays for no timer.
//! - **Memory.** tonic buffers a message until all of it has arrived (up to
//!   `--max-request-bytes`), and reserves its whole announced length as
//!   soon as its 5-byte prefix arrives, so streams that announce a large
//!   message and send all but its last byte pin that much memory each. A
//!   message still incomplete is counted against a server-wide budget
//!   (`--max-buffered-bytes`) at its announced length, from its prefix on,
//!   *before* tonic sees it (counting the bytes as they arrived let 1,000
//!   such streams take 2 GB with a budget of 32 MiB: `cargo xtask attacks`);
//!   a chunk that would go over it ends the call with `RESOURCE_EXHAUSTED`.
//!   updateOrders keeps every order until its stream ends, so its messages
//!   stay counted until the call ends, and one call may not send more than
//!   `--max-update-bytes`.
//! - **A write waiting in line** (`--max-queued-writes`) is not read by its
//!   handler yet, and what its client sent would sit in h2, uncounted, up
//!   to its connection's HTTP/2 window (1 MiB): 1,000 writes waiting on
//!   1,000 connections, ~1 GiB. So while it waits, its request is read
//!   ahead ([`RequestBody::poll_read_ahead`]), each chunk counted at its
//!   size; a chunk that would go over the budget refuses the write at once
//!   (nothing applied), and the handler later gets the chunks read ahead
//!   first, counted then as any other.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tonic::Status;

use crate::buffer_budget::Budget;

/// How a method's request is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One message: the body must end within the message timeout.
    Unary,
    /// A stream of messages, each released once complete.
    Stream,
    /// updateOrders: a stream whose messages are all kept until the end.
    Kept { max_bytes: usize },
    /// An HTTP/JSON body (`crate::gateway`): not gRPC-framed, read whole,
    /// so every byte stays counted until the call ends; it must end within
    /// the message timeout. The gateway bounds its size.
    Whole,
}

/// The shape of `path`'s request.
pub fn shape(path: &str, max_update_bytes: usize) -> Shape {
    match path {
        "/ecommerce.OrderManagement/updateOrders" => Shape::Kept {
            max_bytes: max_update_bytes,
        },
        "/ecommerce.OrderManagement/processOrders"
        | "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" => Shape::Stream,
        _ => Shape::Unary,
    }
}

pin_project_lite::pin_project! {
    /// A request body bounded in time and memory; see the module docs.
    #[project = RequestBodyProj]
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        shape: Shape,
        budget: Arc<Budget>,
        // Bytes counted against the budget by this call.
        counted: usize,
        // What the message still incomplete is counted at: the header bytes
        // seen, then, once the header is whole, its announced length.
        current: usize,
        // Bytes of the complete messages a kept stream holds.
        completed: usize,
        // Bytes of the current message still to come (0: between messages),
        // and how many header bytes of the next one have been seen.
        message_left: usize,
        header: [u8; 5],
        header_len: usize,
        // Every byte this call has sent, for Shape::Kept's bound.
        total: usize,
        due: Option<Instant>,
        limit: Duration,
        sleep: Option<Pin<Box<Sleep>>>,
        ended: bool,
        // What was read ahead while the call waited in line; boxed, as
        // few calls wait: every call's body (and the futures holding it)
        // stays as small as before.
        ahead: Option<Box<Ahead>>,
    }

    impl<B> PinnedDrop for RequestBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let ahead = this.ahead.as_ref().map_or(0, |a| a.data.len());
            this.budget.give(*this.counted + ahead);
        }
    }
}

/// What a call waiting in line read ahead ([`RequestBody::poll_read_ahead`]).
#[derive(Default)]
struct Ahead {
    /// The data, counted against the budget at its size and handed on
    /// first, in one chunk: frame by frame, each message would be counted
    /// twice as it is handed on (at its announced length, and in the frames
    /// still here).
    data: BytesMut,
    /// Then the trailers, if any.
    trailers: Option<http::HeaderMap>,
    /// The inner body has ended.
    inner_done: bool,
}

impl<B> RequestBody<B> {
    /// `inner`, under `budget`; a unary body must end within `timeout` of
    /// `started`.
    pub fn new(
        inner: B,
        shape: Shape,
        budget: Arc<Budget>,
        started: std::time::Instant,
        timeout: Option<Duration>,
    ) -> Self {
        let timeout = timeout.filter(|_| matches!(shape, Shape::Unary | Shape::Whole));
        Self {
            inner,
            shape,
            budget,
            counted: 0,
            current: 0,
            completed: 0,
            message_left: 0,
            header: [0; 5],
            header_len: 0,
            total: 0,
            due: timeout.map(|t| Instant::from_std(started) + t),
            limit: timeout.unwrap_or_default(),
            sleep: None,
            ended: false,
            ahead: None,
        }
    }
}

impl<B> RequestBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Reads the request on while the call waits in line for a write slot
    /// (see the module docs): ready with `Ok` once the body has ended, or
    /// once one message's worth (an updateOrders call: its
    /// `--max-update-bytes`) is read ahead; the rest, if any, the call
    /// fails on anyway. An `Err` refuses the call: over the budget or its
    /// own bound, the message late, or the stream broken.
    pub fn poll_read_ahead(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        let mut this = self.project();
        let cap = match *this.shape {
            Shape::Kept { max_bytes } => max_bytes,
            _ => 5 + this.budget.max_message(),
        };
        let ahead = this.ahead.get_or_insert_with(Box::default);
        loop {
            if ahead.inner_done || ahead.data.len() >= cap {
                return Poll::Ready(Ok(()));
            }
            let frame = match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => {
                    return match this.timed_out(cx) {
                        Some(status) => Poll::Ready(Err(status)),
                        None => Poll::Pending,
                    };
                }
                Poll::Ready(None) => {
                    ahead.inner_done = true;
                    *this.sleep = None;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Status::from_error(e.into()))),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    // Trailers: the body's end.
                    ahead.trailers = frame.into_trailers().ok();
                    ahead.inner_done = true;
                    *this.sleep = None;
                    return Poll::Ready(Ok(()));
                }
            };
            let n = data.len();
            if let Shape::Kept { max_bytes } = *this.shape
                && ahead.data.len() + n > max_bytes
            {
                return Poll::Ready(Err(update_too_large(max_bytes)));
            }
            if !this.budget.take(n) {
                return Poll::Ready(Err(over_budget(this.budget.limit())));
            }
            ahead.data.extend_from_slice(&data);
        }
    }
}

fn update_too_large(max_bytes: usize) -> Status {
    Status::resource_exhausted(format!(
        "this updateOrders call sent more than {max_bytes} bytes \
         (--max-update-bytes); none was updated"
    ))
}

fn over_budget(limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "the server is buffering its limit of {limit} request bytes \
         (--max-buffered-bytes); retry later"
    ))
}

impl<B> RequestBodyProj<'_, B> {
    /// Counts a chunk: an incomplete message is taken from the budget at
    /// its announced length (what tonic reserves for it), and given back
    /// once it is complete (for a kept stream, when the call ends).
    fn account(&mut self, mut chunk: &[u8]) -> Result<(), Status> {
        *self.total += chunk.len();
        if let Shape::Kept { max_bytes } = *self.shape
            && *self.total > max_bytes
        {
            return Err(update_too_large(max_bytes));
        }
        let incoming = chunk.len();
        // Not gRPC-framed: nothing to parse, every byte is kept.
        let framed = *self.shape != Shape::Whole;
        while framed && !chunk.is_empty() {
            if *self.message_left == 0 {
                // A message header: 1 flag byte and a 4-byte length.
                let n = (5 - *self.header_len).min(chunk.len());
                self.header[*self.header_len..*self.header_len + n].copy_from_slice(&chunk[..n]);
                *self.header_len += n;
                *self.current += n;
                chunk = &chunk[n..];
                if *self.header_len == 5 {
                    *self.header_len = 0;
                    let len = u32::from_be_bytes(self.header[1..5].try_into().unwrap()) as usize;
                    *self.message_left = len;
                    if len <= self.budget.max_message() {
                        *self.current = 5 + len;
                    }
                    if len == 0 {
                        self.message_done();
                    }
                }
                continue;
            }
            let n = (*self.message_left).min(chunk.len());
            *self.message_left -= n;
            chunk = &chunk[n..];
            if *self.message_left == 0 {
                self.message_done(); // complete: tonic's to decode now
            }
        }
        // What this call should have counted now: its message still
        // incomplete, and, for a kept stream, every message before it.
        let target = match self.shape {
            Shape::Whole => *self.counted + incoming,
            _ => *self.completed + *self.current,
        };
        if target > *self.counted {
            if !self.budget.take(target - *self.counted) {
                return Err(over_budget(self.budget.limit()));
            }
        } else {
            self.budget.give(*self.counted - target);
        }
        *self.counted = target;
        Ok(())
    }

    /// The message in progress is complete: a kept stream keeps counting it.
    fn message_done(&mut self) {
        if let Shape::Kept { .. } = self.shape {
            *self.completed += *self.current;
        }
        *self.current = 0;
    }

    fn timed_out(&mut self, cx: &mut Context<'_>) -> Option<Status> {
        let due = (*self.due)?;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if sleep.as_mut().poll(cx).is_pending() {
            return None;
        }
        *self.sleep = None;
        Some(Status::deadline_exceeded(format!(
            "the request message did not arrive within {:?} of the call's headers \
             (--request-message-timeout)",
            self.limit
        )))
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let mut this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        let frame = match this.ahead.as_deref_mut() {
            Some(ahead) if !ahead.data.is_empty() => {
                // Read ahead: no longer held here, now counted as it is read.
                let data = std::mem::take(&mut ahead.data).freeze();
                this.budget.give(data.len());
                Some(Ok(Frame::data(data)))
            }
            Some(ahead) if ahead.trailers.is_some() => {
                ahead.trailers.take().map(|t| Ok(Frame::trailers(t)))
            }
            Some(ahead) if ahead.inner_done => None,
            _ => match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    return match this.timed_out(cx) {
                        Some(status) => {
                            *this.ended = true;
                            Poll::Ready(Some(Err(status)))
                        }
                        None => Poll::Pending,
                    };
                }
            },
        };
        let result = match frame {
            None => {
                *this.ended = true;
                *this.sleep = None;
                return Poll::Ready(None);
            }
            Some(Err(e)) => Err(Status::from_error(e.into())),
            Some(Ok(frame)) => match frame.data_ref() {
                Some(data) => this.account(data.chunk()).map(|()| frame),
                None => Ok(frame),
            },
        };
        if result.is_err() {
            *this.ended = true;
        }
        Poll::Ready(Some(result))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
            || match &self.ahead {
                Some(a) => {
                    a.data.is_empty()
                        && a.trailers.is_none()
                        && (a.inner_done || self.inner.is_end_stream())
                }
                None => self.inner.is_end_stream(),
            }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(len: usize) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend(std::iter::repeat_n(7u8, len));
        out
    }

    fn body(shape: Shape, budget: &Arc<Budget>) -> RequestBody<http_body_util::Empty<Bytes>> {
        RequestBody::new(
            http_body_util::Empty::new(),
            shape,
            Arc::clone(budget),
            std::time::Instant::now(),
            None,
        )
    }

    #[test]
    fn bytes_of_incomplete_messages_are_counted_until_they_complete() {
        let budget = Budget::new(1000, 1 << 20);
        let mut b = body(Shape::Stream, &budget);
        let message = framed(100);
        let mut p = Pin::new(&mut b).project();
        p.account(&message[..3]).unwrap();
        assert_eq!(budget.used(), 3, "a header not yet whole: its bytes");
        p.account(&message[3..50]).unwrap();
        assert_eq!(
            budget.used(),
            105,
            "an incomplete message: its announced length"
        );
        p.account(&message[50..]).unwrap();
        assert_eq!(budget.used(), 0, "a complete message is given back");
        // Two messages and a half in one chunk: only the half stays counted.
        let mut chunk = framed(10);
        chunk.extend(framed(10));
        chunk.extend(&framed(100)[..30]);
        p.account(&chunk).unwrap();
        assert_eq!(budget.used(), 105);
        drop(b);
        assert_eq!(budget.used(), 0, "dropping the body gives everything back");
    }

    #[test]
    fn a_chunk_over_the_budget_is_refused_and_nothing_of_it_counted() {
        let budget = Budget::new(300, 1 << 20);
        let mut held = body(Shape::Stream, &budget);
        Pin::new(&mut held)
            .project()
            .account(&framed(200)[..80])
            .unwrap();
        assert_eq!(budget.used(), 205);
        // Only 40 bytes sent, but 200 announced: over the budget.
        let mut other = body(Shape::Stream, &budget);
        let err = Pin::new(&mut other)
            .project()
            .account(&framed(200)[..40])
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("--max-buffered-bytes"), "{err:?}");
        assert_eq!(budget.used(), 205);
    }

    #[test]
    fn a_message_announced_over_the_size_limit_is_left_to_tonic() {
        // tonic refuses it from its prefix (OUT_OF_RANGE) and reserves
        // nothing: it is not counted at its announced length.
        let budget = Budget::new(300, 200);
        let mut b = body(Shape::Unary, &budget);
        Pin::new(&mut b)
            .project()
            .account(&framed(1_000)[..50])
            .unwrap();
        assert_eq!(budget.used(), 5);
    }

    #[test]
    fn a_kept_stream_stays_counted_and_is_bounded_per_call() {
        let budget = Budget::new(10_000, 1 << 20);
        let mut b = body(Shape::Kept { max_bytes: 300 }, &budget);
        let mut p = Pin::new(&mut b).project();
        p.account(&framed(100)).unwrap();
        p.account(&framed(100)).unwrap();
        assert_eq!(budget.used(), 210, "kept messages stay counted");
        assert_eq!(budget.used(), 210);
        let err = p.account(&framed(100)).unwrap_err();
        assert!(err.message().contains("--max-update-bytes"), "{err:?}");
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    /// A body of `chunks`, as h2 would hand them on.
    fn chunked(
        chunks: Vec<Vec<u8>>,
        shape: Shape,
        budget: &Arc<Budget>,
    ) -> RequestBody<impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin> {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c))));
        let inner = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        RequestBody::new(
            inner,
            shape,
            Arc::clone(budget),
            std::time::Instant::now(),
            None,
        )
    }

    fn read_ahead<B>(b: &mut RequestBody<B>) -> Result<(), Status>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let waker = futures_util::task::noop_waker();
        match Pin::new(b).poll_read_ahead(&mut Context::from_waker(&waker)) {
            Poll::Ready(result) => result,
            Poll::Pending => panic!("reading ahead a body that is all there waited"),
        }
    }

    #[tokio::test]
    async fn read_ahead_counts_what_arrived_and_hands_it_on_counted_once() {
        use http_body_util::BodyExt as _;
        let budget = Budget::new(1_000, 1 << 20);
        let message = framed(300);
        let chunks: Vec<Vec<u8>> = message.chunks(100).map(<[u8]>::to_vec).collect();
        let mut b = chunked(chunks, Shape::Unary, &budget);
        read_ahead(&mut b).unwrap();
        assert_eq!(budget.used(), 305, "read ahead: counted at its size");
        // Handed on in one chunk: the whole message, never counted twice
        // (frame by frame, 305 read ahead + 305 announced would not fit a
        // budget of 600).
        let collected = b.collect().await.unwrap().to_bytes();
        assert_eq!(collected.as_ref(), message.as_slice());
        assert_eq!(budget.used(), 0);

        let tight = Budget::new(600, 1 << 20);
        let chunks: Vec<Vec<u8>> = message.chunks(100).map(<[u8]>::to_vec).collect();
        let mut b = chunked(chunks, Shape::Unary, &tight);
        read_ahead(&mut b).unwrap();
        assert_eq!(b.collect().await.unwrap().to_bytes().len(), 305);
        assert_eq!(tight.used(), 0);
    }

    #[test]
    fn read_ahead_beyond_the_budget_or_the_update_bound_refuses_the_call() {
        let budget = Budget::new(250, 1 << 20);
        let mut b = chunked(vec![vec![0; 200], vec![0; 100]], Shape::Unary, &budget);
        let err = read_ahead(&mut b).unwrap_err();
        assert!(err.message().contains("--max-buffered-bytes"), "{err:?}");
        assert_eq!(
            budget.used(),
            200,
            "the chunk that did not fit: not counted"
        );
        drop(b);
        assert_eq!(budget.used(), 0, "dropped: everything given back");

        let budget = Budget::new(10_000, 1 << 20);
        let kept = Shape::Kept { max_bytes: 250 };
        let mut b = chunked(vec![vec![0; 200], vec![0; 100]], kept, &budget);
        let err = read_ahead(&mut b).unwrap_err();
        assert!(err.message().contains("--max-update-bytes"), "{err:?}");
    }
}
