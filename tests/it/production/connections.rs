//! Hostile connections (issue 16): connections that never speak, too many
//! from one address, idle ones, a file-descriptor limit reached, and a
//! deadline that has already passed. Each attack is bounded in time and
//! stays on loopback.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::Code;

use super::harness::{GET_ORDER, Prod, bounded, string_value};
use crate::support::process::ServerProcess;
use crate::support::raw;

/// Reads until the server closes the connection (EOF or reset); panics if
/// it is still open after `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) {
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // the server's SETTINGS, GOAWAY...
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
}

/// The `grpc-status` and `grpc-message` of a trailers-only answer.
fn trailers_only_status<T>(response: &http::Response<T>) -> (Option<String>, String) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (
        header("grpc-status"),
        header("grpc-message").unwrap_or_default(),
    )
}

/// Whether the connection is still open after `wait` (no EOF, no reset).
async fn still_open(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(wait, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    read.is_err()
}

/// 50 TCP connections that send nothing are all closed once the handshake
/// timeout passes, and the server serves a real client meanwhile.
#[tokio::test]
async fn connections_that_never_speak_are_closed_at_the_handshake_timeout() {
    let server = Prod::start(&["--handshake-timeout", "0.5"]);
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut client = server.client().await;
    bounded(
        "getOrder beside silent connections",
        client.get_order("101".to_string()),
    )
    .await
    .unwrap();
    for stream in &mut silent {
        closed_by_server(stream, Duration::from_secs(10)).await;
    }
    // A client that did speak was not affected.
    bounded("getOrder after", client.get_order("101".to_string()))
        .await
        .unwrap();
}

/// Beyond --max-connections-per-ip, a new connection is closed at once;
/// when one closes, a new one gets in.
#[tokio::test]
async fn connections_beyond_the_per_address_limit_are_closed_at_once() {
    let server = Prod::start(&["--max-connections-per-ip", "3"]);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Give the accept loop time to take the three.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = TcpStream::connect(server.addr).await.unwrap();
    closed_by_server(&mut refused, Duration::from_secs(5)).await;
    for stream in &mut held {
        assert!(still_open(stream, Duration::from_millis(50)).await);
    }
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = server.client().await;
    bounded(
        "getOrder on the freed slot",
        client.get_order("101".to_string()),
    )
    .await
    .unwrap();
}

/// A connection with no call in flight for --idle-timeout is closed; one
/// whose call is still streaming is not.
#[tokio::test]
async fn an_idle_connection_is_closed_but_not_one_with_a_call_in_flight() {
    let server = Prod::start(&["--idle-timeout", "0.5"]);
    // Idle: one call, then nothing.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let (mut h2, connection) =
        h2::client::handshake(TcpStream::connect(server.addr).await.unwrap())
            .await
            .unwrap();
    let open = tokio::spawn(connection);
    // A call that stays open past the idle timeout: a processOrders stream
    // whose request side the test never ends.
    let request = raw::grpc_request(server.addr, super::harness::PROCESS_ORDERS, &[]);
    h2 = h2.ready().await.unwrap();
    let (response, _send) = h2.send_request(request, false).unwrap();
    let response = bounded("processOrders headers", response).await.unwrap();
    assert_eq!(response.status(), 200);
    closed_by_server(&mut idle, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !open.is_finished(),
        "a connection with a call in flight stays open"
    );
}

/// An idle HTTP/2 connection is sent GOAWAY (NO_ERROR) before it closes,
/// as grpc-go does, so a client whose next call races the close knows the
/// call was never taken; it closes as soon as the client has answered the
/// GOAWAY's PING (hyper's graceful shutdown), long before the 10 s bound
/// for a peer that never answers.
#[tokio::test]
async fn an_idle_connection_gets_goaway_before_it_closes() {
    let server = Prod::start(&["--idle-timeout", "0.5"]);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let connected = std::time::Instant::now();
    // The client preface and an empty SETTINGS frame.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut goaways = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            let mut head = [0u8; 9];
            if stream.read_exact(&mut head).await.is_err() {
                return; // closed
            }
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (kind, flags) = (head[3], head[4]);
            let mut payload = vec![0u8; length];
            if stream.read_exact(&mut payload).await.is_err() {
                return;
            }
            match kind {
                // SETTINGS without ACK: acknowledge.
                0x4 if flags & 1 == 0 => {
                    let _ = stream.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).await;
                }
                // PING without ACK: answer with its payload.
                0x6 if flags & 1 == 0 => {
                    let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
                    ack.extend_from_slice(&payload);
                    let _ = stream.write_all(&ack).await;
                }
                0x7 => goaways.push(u32::from_be_bytes(payload[4..8].try_into().unwrap())),
                _ => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the idle connection was not closed");
    assert!(
        !goaways.is_empty(),
        "the connection closed without a GOAWAY"
    );
    assert!(
        goaways.iter().all(|&code| code == 0),
        "GOAWAY error codes {goaways:?}, expected NO_ERROR"
    );
    let lasted = connected.elapsed();
    assert!(
        lasted < Duration::from_secs(5),
        "closed after {lasted:?}: the graceful close should not need its 10 s bound"
    );
}

/// `--max-connection-age`: at that age a connection is sent GOAWAY (a new
/// call on it is refused, the client reconnects), and once the grace has
/// passed it is closed even with a call still open.
#[tokio::test]
async fn a_connection_past_its_age_gets_goaway_then_closes_after_the_grace() {
    let server = Prod::start(&[
        "--max-connection-age",
        "0.5",
        "--max-connection-age-grace",
        "1",
    ]);
    let (h2, connection) = h2::client::handshake(TcpStream::connect(server.addr).await.unwrap())
        .await
        .unwrap();
    let connected = std::time::Instant::now();
    let open = tokio::spawn(connection);
    // A call that would stay open for ever: a processOrders stream whose
    // request side the test never ends.
    let request = raw::grpc_request(server.addr, super::harness::PROCESS_ORDERS, &[]);
    let mut h2 = h2.ready().await.unwrap();
    let (response, _send) = h2.send_request(request, false).unwrap();
    let response = bounded("processOrders headers", response).await.unwrap();
    assert_eq!(response.status(), 200);
    // Past the age, within the grace: the connection takes no new call.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!open.is_finished(), "closed before the grace ended");
    let refused = async {
        let mut h2 = h2.ready().await?;
        let request = raw::grpc_request(server.addr, GET_ORDER, &[]);
        let (response, mut body) = h2.send_request(request, false)?;
        body.send_data(raw::frame(&string_value("101")).into(), true)?;
        response.await.map(|_| ())
    };
    let refused: Result<(), h2::Error> = bounded("a call after GOAWAY", refused).await;
    assert!(refused.is_err(), "a new call was taken after GOAWAY");
    // The grace ends: closed, although its call is still open.
    bounded("the connection's end", open).await.unwrap().ok();
    let lasted = connected.elapsed();
    assert!(
        lasted < Duration::from_secs(4),
        "closed only after {lasted:?} (age 0.5 s + grace 1 s)"
    );
}

/// `grpc-timeout: 0n` and `1n` have passed on arrival: DEADLINE_EXCEEDED
/// (tonic's own timer would answer CANCELLED).
#[tokio::test]
async fn a_deadline_that_passed_on_arrival_is_deadline_exceeded() {
    let server = Prod::start(&[]);
    for timeout in ["0n", "1n", "1u"] {
        let request = raw::grpc_request(server.addr, GET_ORDER, &[("grpc-timeout", timeout)]);
        let response = bounded(
            "getOrder with a past deadline",
            raw::call(
                server.addr,
                request,
                &raw::frame(&string_value("101")),
                true,
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            response.grpc_status(),
            Some(Code::DeadlineExceeded as i32),
            "grpc-timeout {timeout}: {}",
            response.grpc_message()
        );
    }
}

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of /proc/PID/stat (utime, stime), counted from 1.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// With the file-descriptor limit reached, the accept loop backs off and
/// warns instead of spinning; once descriptors free up it accepts again.
/// (Before, 1,100 idle sockets under `ulimit -n 1024` cost 1.17 cores.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_accept_loop_backs_off_and_recovers() {
    // --max-connections high so the kernel's limit (64 descriptors) is
    // what is hit, as when a user sets --max-connections too high.
    let mut server = ServerProcess::start_with_fd_limit(
        &[
            "--in-memory",
            "--max-connections",
            "100000",
            "--max-connections-per-ip",
            "100000",
        ],
        64,
    )
    .expect("the server starts under ulimit -n 64");
    let pid = server.pid();
    let mut sockets = Vec::new();
    for _ in 0..100 {
        sockets.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(pid) - before;
    // A spinning loop uses ~200 ticks (100 Hz) in 2 s; backing off, ~0.
    assert!(
        used < 50,
        "the server used {used} ticks of CPU in 2 s while out of descriptors"
    );
    drop(sockets);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = crate::support::run_client(&server.url, &["101"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    server.signal("TERM");
    server.wait_exit();
    let log = server.rest_of_log();
    let warnings = log.matches("cannot accept connections").count();
    assert!(
        warnings >= 1,
        "no warning about the descriptor limit:\n{log}"
    );
    assert!(warnings <= 3, "the warning is rate-limited:\n{log}");
}

/// Calls that send their headers and never their message (the attack held
/// every slot for --max-call-seconds): with --request-message-timeout they
/// end with DEADLINE_EXCEEDED, and their slots serve other clients.
#[tokio::test]
async fn calls_whose_message_never_arrives_end_and_free_their_slots() {
    let server = Prod::start(&[
        "--max-concurrent-calls",
        "4",
        "--request-message-timeout",
        "0.5",
    ]);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut pending = Vec::new();
    for _ in 0..4 {
        let mut h2 = h2.clone().ready().await.unwrap();
        let request = raw::grpc_request(server.addr, GET_ORDER, &[]);
        // Headers only: the request stream stays open, no message is sent.
        let (response, send) = h2.send_request(request, false).unwrap();
        pending.push((response, send));
    }
    let mut client = server.client().await;
    for (response, _send) in pending {
        let response = bounded("the stalled call's answer", response)
            .await
            .unwrap();
        let (status, message) = trailers_only_status(&response);
        assert_eq!(
            status.as_deref(),
            Some("4"),
            "DEADLINE_EXCEEDED expected: {message}"
        );
        assert!(message.contains("request-message-timeout"), "{message}");
    }
    bounded(
        "getOrder once the slots are free",
        client.get_order("101".to_string()),
    )
    .await
    .unwrap();
}

/// Writes have slots of their own: with every write slot held, a write is
/// refused at once naming writes, and reads still get in.
#[tokio::test]
async fn writes_at_their_limit_do_not_take_the_reads_slots() {
    let server = Prod::start(&[
        "--max-concurrent-writes",
        "2",
        "--max-queued-writes",
        "0",
        "--max-concurrent-calls",
        "2",
    ]);
    let mut client = server.client().await;
    // Two updateOrders whose request streams stay open hold the write slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<order_management::Order>(1);
        let mut c = client.clone();
        held.push((
            tx,
            tokio::spawn(async move {
                c.update_orders(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
            }),
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = bounded(
        "a third write",
        client.add_order(super::harness::order("x1", "Seoul")),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("writes"),
        "{}",
        refused.message()
    );
    for _ in 0..2 {
        bounded(
            "a read beside full writes",
            client.get_order("101".to_string()),
        )
        .await
        .unwrap();
    }
    drop(held);
}

/// An updateOrders call whose request stream stays open until the sender is
/// dropped: it holds a write slot until then.
fn held_update(
    client: &super::harness::Client,
) -> (
    tokio::sync::mpsc::Sender<order_management::Order>,
    tokio::task::JoinHandle<Result<tonic::Response<String>, tonic::Status>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<order_management::Order>(1);
    let mut c = client.clone();
    let call = tokio::spawn(async move {
        c.update_orders(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    (tx, call)
}

/// addOrder(`id`) with `grpc-timeout: {millis}m`, sent raw: tonic's client
/// would end the call on its own timer (CANCELLED) and hide the server's answer.
async fn add_within(addr: std::net::SocketAddr, id: &str, millis: u64) -> (Option<i32>, String) {
    use prost::Message as _;
    let timeout = format!("{millis}m");
    let request = raw::grpc_request(
        addr,
        "/ecommerce.OrderManagement/addOrder",
        &[("grpc-timeout", &timeout)],
    );
    let order = super::harness::order(id, "Seoul").encode_to_vec();
    let mut body = vec![0];
    body.extend((order.len() as u32).to_be_bytes());
    body.extend(order);
    let response = raw::call(addr, request, &body, true).await.unwrap();
    (response.grpc_status(), response.grpc_message())
}

/// Writes beyond their slots wait in line, first come first served, up to
/// --max-queued-writes; beyond that, or when their expected wait is longer
/// than their deadline, they are refused at once; a write whose deadline
/// passes in line ends DEADLINE_EXCEEDED and is not applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_beyond_their_slots_wait_in_a_bounded_line() {
    let server = Prod::start(&["--max-concurrent-writes", "1", "--max-queued-writes", "2"]);
    let mut client = server.client().await;
    let (hold, held) = held_update(&client);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // In line, its deadline passes: DEADLINE_EXCEEDED, and not applied.
    let late = bounded(
        "a write whose deadline passes in line",
        add_within(server.addr, "late", 300),
    )
    .await;
    assert_eq!(late.0, Some(Code::DeadlineExceeded as i32), "{late:?}");

    // Two wait; the third is refused at once.
    let first = tokio::spawn({
        let mut c = client.clone();
        async move { c.add_order(super::harness::order("first", "Seoul")).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = tokio::spawn({
        let mut c = client.clone();
        async move { c.add_order(super::harness::order("second", "Seoul")).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = bounded(
        "a write beyond the line",
        client.add_order(super::harness::order("third", "Seoul")),
    )
    .await
    .unwrap_err();
    assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
    assert!(third.message().contains("2 waiting"), "{}", third.message());
    assert!(
        !first.is_finished() && !second.is_finished(),
        "a write took a held slot"
    );

    // The slot is given back (after ~1 s held): those in line are served.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(hold);
    bounded("the held update", held).await.unwrap().unwrap();
    bounded("the first in line", first).await.unwrap().unwrap();
    bounded("the second in line", second)
        .await
        .unwrap()
        .unwrap();
    for (id, stored) in [
        ("first", true),
        ("second", true),
        ("third", false),
        ("late", false),
    ] {
        let found = client.get_order(id.to_owned()).await;
        assert_eq!(found.is_ok(), stored, "{id}: {found:?}");
    }

    // A write has lately held its slot ~1 s: one that could wait only
    // 300 ms is refused at once rather than left to time out.
    let (hold, held) = held_update(&client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hopeless = bounded(
        "a write that cannot start in time",
        add_within(server.addr, "hopeless", 300),
    )
    .await;
    assert_eq!(
        hopeless.0,
        Some(Code::ResourceExhausted as i32),
        "{hopeless:?}"
    );
    // grpc-message is percent-encoded.
    assert!(hopeless.1.contains("expected%20wait"), "{}", hopeless.1);
    drop(hold);
    bounded("the second held update", held)
        .await
        .unwrap()
        .unwrap();
}

/// Health Watch streams need no token, so they are bounded on their own;
/// health Check still answers when they are at their limit.
#[tokio::test]
async fn health_watches_are_bounded_and_checks_still_answer() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let server = Prod::start(&["--max-health-watches", "2"]);
    let channel = server.channel().await;
    let mut watches = Vec::new();
    for _ in 0..2 {
        let stream = bounded(
            "a health watch",
            HealthClient::new(channel.clone()).watch(HealthCheckRequest::default()),
        )
        .await
        .unwrap();
        watches.push(stream);
    }
    let refused = bounded(
        "a third watch",
        HealthClient::new(channel.clone()).watch(HealthCheckRequest::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("health watches"),
        "{}",
        refused.message()
    );
    bounded(
        "a health check",
        HealthClient::new(channel).check(HealthCheckRequest::default()),
    )
    .await
    .unwrap();
}

/// Streams that announce a large message and send all but its end pin
/// memory until the message completes: beyond --max-buffered-bytes, the
/// call that would go over is refused, and other calls are still served.
#[tokio::test]
async fn partial_messages_beyond_the_buffer_budget_are_refused() {
    let server = Prod::start(&["--max-buffered-bytes", "1000000"]);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    // Each stream: a 300,000-byte addOrder message, of which 200,000 are
    // sent. It counts at its announced length (tonic reserves that much).
    let partial = raw::partial_message(300_000, 200_000);
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut h2 = h2.clone().ready().await.unwrap();
        let request = raw::grpc_request(server.addr, "/ecommerce.OrderManagement/addOrder", &[]);
        let (response, mut send) = h2.send_request(request, false).unwrap();
        send.reserve_capacity(partial.len());
        send.send_data(bytes::Bytes::from(partial.clone()), false)
            .unwrap();
        streams.push((response, send));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Three fit in 1,000,000 bytes; the fourth does not.
    let (fourth, _send) = streams.pop().unwrap();
    let fourth = bounded("the fourth partial message's answer", fourth)
        .await
        .unwrap();
    let (status, message) = trailers_only_status(&fourth);
    assert_eq!(
        status.as_deref(),
        Some("8"),
        "RESOURCE_EXHAUSTED expected: {message}"
    );
    assert!(message.contains("max-buffered-bytes"), "{message}");
    let mut client = server.client().await;
    bounded(
        "getOrder beside the partial messages",
        client.get_order("101".to_string()),
    )
    .await
    .unwrap();
    // Once the three go away, their bytes are given back.
    drop(streams);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut big = super::harness::order("big", "Seoul");
    big.description = "y".repeat(900_000);
    let status = bounded(
        "a 900 KB order after the budget is free",
        client.add_order(big),
    )
    .await
    .unwrap_err();
    // It fits the budget; the order is refused only by validation.
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

/// A write waiting in line for its slot has its request read meanwhile and
/// counted against --max-buffered-bytes: otherwise what its client sent
/// would sit in h2 uncounted, up to a connection's window each. The write
/// that would go over is refused at once (and not applied); those counted
/// are applied once a slot frees up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_waiting_in_line_count_their_requests_against_the_buffer_budget() {
    let server = Prod::start(&[
        "--max-concurrent-writes",
        "1",
        "--max-buffered-bytes",
        "1000000",
    ]);
    let mut client = server.client().await;
    let (hold, held) = held_update(&client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ~400 KB each: two fit in the budget, a third does not.
    let large = |id: &str| {
        let mut order = super::harness::order(id, "Seoul");
        order.items = vec!["i".repeat(1_000); 400];
        order
    };
    let mut waiting = Vec::new();
    for id in ["first", "second"] {
        let mut c = client.clone();
        let order = large(id);
        waiting.push(tokio::spawn(async move { c.add_order(order).await }));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let third = bounded(
        "a write in line beyond the buffer budget",
        client.add_order(large("third")),
    )
    .await
    .unwrap_err();
    assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
    assert!(
        third.message().contains("max-buffered-bytes"),
        "{}",
        third.message()
    );
    assert!(
        waiting.iter().all(|w| !w.is_finished()),
        "a write took the held slot"
    );

    drop(hold);
    bounded("the held update", held).await.unwrap().unwrap();
    for (id, write) in ["first", "second"].into_iter().zip(waiting) {
        bounded(id, write).await.unwrap().unwrap();
        let stored = client.get_order(id.to_owned()).await.unwrap().into_inner();
        assert_eq!(stored, large(id));
    }
    let status = client.get_order("third".to_owned()).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "the refused write was applied"
    );
}

/// One updateOrders call may send at most --max-update-bytes; beyond it the
/// call fails at once with RESOURCE_EXHAUSTED and nothing is applied.
#[tokio::test]
async fn an_update_call_beyond_its_byte_bound_is_refused_and_applies_nothing() {
    let stored: Vec<_> = (0..50)
        .map(|i| super::harness::order(&format!("u{i}"), "Seoul"))
        .collect();
    let store = order_management::store::MemoryStore::with_orders(stored.clone());
    let server = Prod::with_store(&["--max-update-bytes", "20000"], std::sync::Arc::new(store));
    let mut client = server.client().await;
    let orders: Vec<_> = stored
        .iter()
        .map(|o| {
            let mut changed = o.clone();
            changed.items = vec![format!("new {}", "z".repeat(900))];
            changed
        })
        .collect();
    let status = bounded(
        "an oversized updateOrders",
        client.update_orders(tokio_stream::iter(orders)),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("max-update-bytes"),
        "{}",
        status.message()
    );
    for order in &stored {
        let now = client
            .get_order(order.id.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&now, order, "nothing applied");
    }
}
