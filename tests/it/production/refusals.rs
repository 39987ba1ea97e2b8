//! A client whose calls the server refuses keeps its connection, however
//! many it sends.
//!
//! Under overload the server refuses a call at once (`RESOURCE_EXHAUSTED`,
//! `--max-concurrent-calls`), often before the call's DATA frame has
//! arrived. h2 then ends the stream with RST_STREAM(NO_ERROR) and remembers
//! that reset only briefly (at most 50 such streams, for 1 s); the DATA the
//! client had already sent, arriving after that, is for a stream h2 has
//! forgotten, which h2 answers with RST_STREAM(STREAM_CLOSED) and counts
//! among the streams it reset for the peer's errors. That count never goes
//! down, and with hyper's default cap (`max_local_error_reset_streams`,
//! 1,024) h2 sends GOAWAY(ENHANCE_YOUR_CALM, "too_many_internal_resets")
//! once it passes the cap: an honest client loses its connection, and every
//! call on it, for refusals the server made. Seen in a load test.
//!
//! The h2 crate's client will not send DATA on a stream it saw reset, so
//! this test writes the frames itself, over TCP, as a client whose DATA was
//! already on the wire when the refusal came.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use order_management::pb::order_management_client::OrderManagementClient;
use order_management::{Order, seed};
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::Code;

use super::harness::{GET_ORDER, Prod, bounded, drain, open_process, string_value};
use crate::support::raw;

/// Streams opened at once: the server's `--max-concurrent-streams`, so no
/// stream is refused by HTTP/2 itself (REFUSED_STREAM, which h2 counts too).
const BATCH: u32 = 100;

/// h2 remembers at most 50 reset streams, so of each batch of 100 at least
/// 50 DATA frames land on forgotten streams, however slow the machine (with
/// no batch taking a second, all but the first 50 do): 21 batches pass
/// h2's cap of 1,024 whatever the timing.
const BATCHES: u32 = 21;

/// h2's cap on the streams it resets for a peer's errors, in hyper 1.
const H2_CAP: u32 = 1024;

/// The bound on every read and write: the test fails, never hangs.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

// HTTP/2 frame types, flags and error codes (RFC 9113).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const STREAM_CLOSED: u32 = 0x5;

#[tokio::test]
async fn a_connection_survives_more_refused_calls_than_h2s_reset_cap() {
    let server = Prod::start(&[
        "--max-concurrent-calls",
        "1",
        "--max-concurrent-streams",
        &BATCH.to_string(),
    ]);
    // The one slot, held by a stream the test ends only at the end, on a
    // connection of its own.
    let mut client = OrderManagementClient::new(server.channel().await);
    let (hold, mut held) = open_process(&mut client).await;
    let status = bounded(
        "a call beside the held one",
        client.get_order("101".to_owned()),
    )
    .await
    .unwrap_err();
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "the held call should take the only slot: {status:?}"
    );

    let mut conn = RawConn::open(server.addr).await;
    let request = raw::frame(&string_value("101"));
    let mut next_id = 1;
    for _ in 0..BATCHES {
        let ids: Vec<u32> = (0..BATCH).map(|i| next_id + 2 * i).collect();
        next_id += 2 * BATCH;
        let mut out = Vec::new();
        for &id in &ids {
            conn.push_request_headers(&mut out, id, false);
        }
        conn.send(&out, "a batch of HEADERS").await;
        conn.await_refusals(&ids).await;
        // Only now the DATA each call would have sent: as a client's DATA
        // still in flight when the refusal and the reset came.
        let mut out = Vec::new();
        for &id in &ids {
            out.extend(raw::h2_frame(DATA, END_STREAM, id, &request));
        }
        conn.send(&out, "a batch of DATA").await;
        conn.refusals += BATCH;
        conn.data_sent_up_to = ids[ids.len() - 1];
    }

    // The server reads frames in order: its PING ACK comes after it has
    // handled every DATA frame above (and after any GOAWAY they caused).
    conn.ping(*b"refusals").await;
    assert!(
        conn.stream_closed > H2_CAP,
        "only {} of {} DATA frames were answered RST_STREAM(STREAM_CLOSED), \
         not more than h2's cap of {H2_CAP}: this test no longer reaches the \
         cap it is about (has h2 changed how long it remembers reset streams?)",
        conn.stream_closed,
        conn.refusals
    );

    // The connection still serves: free the slot, then a getOrder on it
    // gets the order.
    drop(hold);
    drain(&mut held).await.1.unwrap();
    let order = conn.get_order(next_id, &request).await;
    assert_eq!(order, seed::order_101());
}

/// One HTTP/2 connection, written and read frame by frame.
struct RawConn {
    tcp: TcpStream,
    /// `:authority`.
    authority: String,
    /// Refused calls whose DATA frame was sent.
    refusals: u32,
    /// The last stream whose DATA frame was sent.
    data_sent_up_to: u32,
    /// RST_STREAM(STREAM_CLOSED) frames received: DATA on forgotten streams,
    /// each counted toward h2's cap.
    stream_closed: u32,
    /// The error codes of the RST_STREAMs that ended refused calls.
    refusal_resets: BTreeMap<u32, u32>,
}

struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl RawConn {
    /// Connects and sends the client preface and an empty SETTINGS frame.
    async fn open(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut conn = Self {
            tcp,
            authority: addr.to_string(),
            refusals: 0,
            data_sent_up_to: 0,
            stream_closed: 0,
            refusal_resets: BTreeMap::new(),
        };
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(raw::h2_frame(SETTINGS, 0, 0, &[]));
        conn.send(&out, "the preface").await;
        conn
    }

    async fn send(&mut self, bytes: &[u8], what: &str) {
        match tokio::time::timeout(IO_TIMEOUT, self.tcp.write_all(bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!(
                "writing {what} failed after {} refused calls: {e}",
                self.refusals
            ),
            Err(_) => panic!("writing {what} took over {IO_TIMEOUT:?}"),
        }
    }

    /// A getOrder's HEADERS: HPACK literals without indexing, new names,
    /// no Huffman (RFC 7541 6.2.2), so no encoder state.
    fn push_request_headers(&self, out: &mut Vec<u8>, id: u32, end_stream: bool) {
        let block = raw::grpc_headers_block(&self.authority, GET_ORDER);
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        out.extend(raw::h2_frame(HEADERS, flags, id, &block));
    }

    /// The next frame but for SETTINGS and PING, which it answers; fails the
    /// test on GOAWAY, on the connection's end, or after [`IO_TIMEOUT`].
    async fn frame(&mut self, waiting_for: &str) -> Frame {
        loop {
            let frame = match tokio::time::timeout(IO_TIMEOUT, self.read_frame()).await {
                Ok(Ok(frame)) => frame,
                Ok(Err(e)) => panic!(
                    "the server closed the connection without a GOAWAY ({e}) after {} \
                     refused calls, waiting for {waiting_for}",
                    self.refusals
                ),
                Err(_) => panic!(
                    "no frame from the server within {IO_TIMEOUT:?}, waiting for {waiting_for} \
                     ({} refused calls in)",
                    self.refusals
                ),
            };
            match frame.kind {
                SETTINGS if frame.flags & ACK == 0 => {
                    let mut ack = Vec::new();
                    ack.extend(raw::h2_frame(SETTINGS, ACK, 0, &[]));
                    self.send(&ack, "a SETTINGS ACK").await;
                }
                PING if frame.flags & ACK == 0 => {
                    let mut ack = Vec::new();
                    ack.extend(raw::h2_frame(PING, ACK, 0, &frame.payload));
                    self.send(&ack, "a PING ACK").await;
                }
                GOAWAY => self.goaway(&frame.payload),
                RST_STREAM
                    if frame.stream <= self.data_sent_up_to
                        && be32(&frame.payload) == STREAM_CLOSED =>
                {
                    self.stream_closed += 1;
                }
                _ => return frame,
            }
        }
    }

    async fn read_frame(&mut self) -> std::io::Result<Frame> {
        let mut head = [0u8; 9];
        self.tcp.read_exact(&mut head).await?;
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; length];
        self.tcp.read_exact(&mut payload).await?;
        Ok(Frame {
            kind: head[3],
            flags: head[4],
            stream: be32(&head[5..9]) & 0x7fff_ffff,
            payload,
        })
    }

    fn goaway(&self, payload: &[u8]) -> ! {
        let last_stream = be32(&payload[0..4]) & 0x7fff_ffff;
        let code = be32(&payload[4..8]);
        let debug = String::from_utf8_lossy(&payload[8..]);
        panic!(
            "the server sent GOAWAY({}, debug data {debug:?}, last stream {last_stream}) \
             after {} refused calls on this connection ({} of their DATA frames answered \
             RST_STREAM(STREAM_CLOSED)): h2's max_local_error_reset_streams cap ({H2_CAP} by \
             default) counted the resets for DATA on streams the server had refused and \
             forgotten, and tore down an honest client's connection for refusals the server \
             made; the server must turn that cap off (hyper's \
             http2().max_local_error_reset_streams(None), as tonic's server does)",
            error_code(code),
            self.refusals,
            self.stream_closed,
        )
    }

    /// Reads until every stream of `ids` has been answered with HEADERS
    /// carrying END_STREAM (a trailers-only response: the refusal) and then
    /// reset.
    async fn await_refusals(&mut self, ids: &[u32]) {
        let batch: HashSet<u32> = ids.iter().copied().collect();
        let mut answered = HashSet::new();
        let mut reset = HashSet::new();
        while reset.len() < ids.len() {
            let frame = self.frame("the refusals of a batch").await;
            if !batch.contains(&frame.stream) {
                continue;
            }
            match frame.kind {
                HEADERS => {
                    assert!(
                        frame.flags & END_STREAM != 0,
                        "stream {} got response headers without END_STREAM: \
                         the call was taken, not refused (is the slot still held?)",
                        frame.stream
                    );
                    answered.insert(frame.stream);
                }
                DATA => panic!(
                    "stream {} got response DATA: the call was served, not refused",
                    frame.stream
                ),
                RST_STREAM => {
                    let code = be32(&frame.payload);
                    assert!(
                        answered.contains(&frame.stream),
                        "stream {} was reset ({}) before any answer: not a refusal by \
                         --max-concurrent-calls (REFUSED_STREAM: more streams than \
                         --max-concurrent-streams)",
                        frame.stream,
                        error_code(code)
                    );
                    *self.refusal_resets.entry(code).or_default() += 1;
                    reset.insert(frame.stream);
                }
                _ => {}
            }
        }
    }

    /// Sends a PING and waits for its ACK.
    async fn ping(&mut self, payload: [u8; 8]) {
        let mut out = Vec::new();
        out.extend(raw::h2_frame(PING, 0, 0, &payload));
        self.send(&out, "a PING").await;
        loop {
            let frame = self.frame("the PING's ACK").await;
            if frame.kind == PING && frame.flags & ACK != 0 && frame.payload == payload {
                return;
            }
        }
    }

    /// A whole getOrder on stream `id`: the order it returns.
    async fn get_order(&mut self, id: u32, request: &[u8]) -> Order {
        let mut out = Vec::new();
        self.push_request_headers(&mut out, id, false);
        out.extend(raw::h2_frame(DATA, END_STREAM, id, request));
        self.send(&out, "a getOrder").await;
        let mut body = Vec::new();
        loop {
            let frame = self.frame("the getOrder's response").await;
            if frame.stream != id {
                continue;
            }
            match frame.kind {
                DATA => body.extend_from_slice(&frame.payload),
                RST_STREAM => panic!(
                    "the getOrder was reset ({})",
                    error_code(be32(&frame.payload))
                ),
                _ => {}
            }
            if frame.flags & END_STREAM != 0 {
                break;
            }
        }
        assert!(
            body.len() > 5,
            "the getOrder ended with no order: refused again? ({body:?})"
        );
        Order::decode(&body[5..]).expect("an Order")
    }
}

impl Drop for RawConn {
    /// What the refused calls' resets were, for `--nocapture`.
    fn drop(&mut self) {
        eprintln!(
            "refused calls: {}; their RST_STREAM codes: {:?}; RST_STREAM(STREAM_CLOSED) for \
             their DATA: {}",
            self.refusals,
            self.refusal_resets
                .iter()
                .map(|(&code, &n)| (error_code(code), n))
                .collect::<Vec<_>>(),
            self.stream_closed
        );
    }
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes[..4].try_into().unwrap())
}

fn error_code(code: u32) -> String {
    let name = match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x5 => "STREAM_CLOSED",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0xb => "ENHANCE_YOUR_CALM",
        _ => return format!("error code {code:#x}"),
    };
    name.to_owned()
}
