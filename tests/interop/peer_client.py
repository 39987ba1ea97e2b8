"""The Python grpcio peer client: every RPC of ecommerce.OrderManagement, each
case asserting what our service promises (README, src/service.rs).

run.sh runs it against our Rust server (`--peer rust`, the interop proof) and
against the Python peer server (`--peer python`, the control that shows the
peer server has our semantics, so the Rust client -> Python server cases
test the client and not a different service).

It keeps the seed client's quirk: the seed calls
`stub.getOrder(order_pb2.Order(id='101'))`, an Order where a StringValue is
expected; the first case sends exactly those bytes (a raw unary_unary with the
Order serializer) and must get order 101 back.

Only loopback targets; every call has a deadline, so a run always ends.
"""

import json
import math
import queue
import threading
import time
import uuid

import grpc
from google.protobuf import wrappers_pb2

import harness
import order_pb2
import order_pb2_grpc

TIMEOUT = 10  # seconds, the deadline of every call that is not about deadlines

suite = harness.Suite()
case = suite.case
ctx = {}  # filled by main(): target, peer, channel, stub, server_log


def stub():
    return ctx["stub"]


def sv(text):
    return wrappers_pb2.StringValue(value=text)


def seed_order_101():
    return order_pb2.Order(
        id="101",
        items=["Item - A", "Item - B"],
        description="Sample order description.",
        price=1000,
        destination="Seoul",
    )


def order(order_id, items, destination="Seoul", price=10.0):
    return order_pb2.Order(
        id=order_id,
        items=items,
        description=f"order {order_id}",
        price=price,
        destination=destination,
    )


def get(order_id):
    return stub().getOrder(sv(order_id), timeout=TIMEOUT)


def add(o):
    return stub().addOrder(o, timeout=TIMEOUT).value


def update(orders):
    return stub().updateOrders(iter(orders), timeout=TIMEOUT).value


def search_ids(query):
    call = stub().searchOrders(sv(query), timeout=TIMEOUT)
    ids = [o.id for o in call]
    assert call.code() == grpc.StatusCode.OK, call.code()
    return ids


def process(ids):
    """(shipments, error or None) of a processOrders call with these ids."""
    shipments = []
    call = stub().processOrders(iter([sv(i) for i in ids]), timeout=TIMEOUT)
    try:
        for s in call:
            shipments.append(s)
    except grpc.RpcError as e:
        return shipments, e
    return shipments, None


def shape(shipments):
    return [f"{s.id} [{','.join(o.id for o in s.ordersList)}] {s.status}" for s in shipments]


def peer_events():
    """How the Python peer's searchOrders streams ended (its test hook)."""
    events = ctx["channel"].unary_unary(
        "/interop.PeerControl/Events",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )
    return json.loads(events(sv(""), timeout=TIMEOUT).value)


def sign(x):
    return math.copysign(1.0, x)


# ---------- getOrder ----------


@case
def seed_client_get_order_with_an_order_message():
    # The seed's client: stub.getOrder(order_pb2.Order(id='101')). Order.id and
    # StringValue.value are both field 1, string: the bytes are the same.
    seed_get_order = ctx["channel"].unary_unary(
        "/ecommerce.OrderManagement/getOrder",
        request_serializer=order_pb2.Order.SerializeToString,
        response_deserializer=order_pb2.Order.FromString,
    )
    request = order_pb2.Order(id="101")
    assert request.SerializeToString() == sv("101").SerializeToString()
    assert seed_get_order(request, timeout=TIMEOUT) == seed_order_101()


@case
def get_order_101():
    got = get("101")
    assert got == seed_order_101(), got
    assert got.price == 1000.0


@case
def get_unknown_id_is_not_found():
    e = harness.expect_error(grpc.StatusCode.NOT_FOUND, get, "102")
    assert e.details() == "Order : 102 Not Found.", e.details()


@case
def get_empty_id_is_invalid_argument():
    e = harness.expect_error(grpc.StatusCode.INVALID_ARGUMENT, get, "")
    assert e.details() == "order id must not be empty", e.details()


@case
def non_ascii_status_message_arrives_intact():
    # grpc-message is percent-encoded UTF-8 on the wire; both runtimes must
    # decode it back to exactly these characters.
    odd = "주문-없음 ✓ ünïcødé 🍜 100%"
    e = harness.expect_error(grpc.StatusCode.NOT_FOUND, get, odd)
    assert e.details() == f"Order : {odd} Not Found.", e.details()


# ---------- addOrder ----------


@case
def add_then_get_returns_the_same_order():
    new = order_pb2.Order(
        id="py-201",
        items=["Google Pixel 3A", "Mac Book Pro", "김치 🌶"],
        description="배송 전 연락 주세요.\nLine two\t\"quoted\"",
        price=1800.5,
        destination="Mountain View, CA",
    )
    assert add(new) == "py-201"
    assert get("py-201") == new


@case
def add_without_id_gets_a_fresh_uuid_v7():
    first = add(order("", ["x"]))
    second = add(order("", ["y"]))
    assert first != second
    for new_id in (first, second):
        assert uuid.UUID(new_id).version == 7, new_id
        assert get(new_id).id == new_id


@case
def add_existing_id_is_already_exists_and_keeps_the_original():
    e = harness.expect_error(
        grpc.StatusCode.ALREADY_EXISTS, add, order("101", ["other"], "Busan")
    )
    assert e.details() == "order 101 already exists", e.details()
    assert get("101") == seed_order_101()


@case
def add_invalid_orders_is_invalid_argument_naming_the_field():
    exact = [
        (order("py-bad-1", []), "invalid order py-bad-1: items: at least one item is required"),
        (order("", []), "invalid order: items: at least one item is required"),
        (
            order("주문-ø", ["a", " "]),
            "invalid order 주문-ø: items[1]: must not be blank",
        ),
        (
            order("py-bad-2", ["a"] * 1001),
            "invalid order py-bad-2: items: at most 1000 items, got 1001",
        ),
        (order("i" * 129, ["a"]), f"invalid order {'i' * 129}: id: at most 128 bytes, got 129"),
        (
            order("py-bad-3", ["x" * 1025]),
            "invalid order py-bad-3: items[0]: at most 1024 bytes, got 1025",
        ),
        (
            order_pb2.Order(id="py-bad-4", items=["a"], description="d" * 4097),
            "invalid order py-bad-4: description: at most 4096 bytes, got 4097",
        ),
        (
            order_pb2.Order(id="py-bad-5", items=["a"], destination="é" * 129),
            "invalid order py-bad-5: destination: at most 256 bytes, got 258",
        ),
        (order("py\nbad", ["a"]), "invalid order py\nbad: id: must not contain control characters"),
    ]
    for bad, message in exact:
        e = harness.expect_error(grpc.StatusCode.INVALID_ARGUMENT, add, bad)
        assert e.details() == message, (e.details(), message)
    prefixed = [
        (order("py-bad-6", ["a"], price=-1.0), "invalid order py-bad-6: price: must be a finite"),
        (order("py-bad-7", ["a"], price=math.nan), "invalid order py-bad-7: price: must be a finite"),
        (order("py-bad-8", ["a"], price=math.inf), "invalid order py-bad-8: price: must be a finite"),
    ]
    for bad, start in prefixed:
        e = harness.expect_error(grpc.StatusCode.INVALID_ARGUMENT, add, bad)
        assert e.details().startswith(start), (e.details(), start)
    for bad, _ in exact + prefixed:
        if bad.id:
            harness.expect_error(grpc.StatusCode.NOT_FOUND, get, bad.id)


@case
def add_an_order_at_every_limit_round_trips():
    big = order_pb2.Order(
        id="p" * 128,
        items=[f"{i:04}" + "x" * 1020 for i in range(1000)],  # 1000 items of 1024 B
        description="d" * 4096,
        price=3.4028234663852886e38,  # the largest finite float32
        destination="s" * 256,
    )
    assert big.ByteSize() > 1_000_000
    assert add(big) == big.id
    assert get(big.id) == big


@case
def add_negative_zero_price_is_accepted_and_comes_back_as_zero():
    # -0.0 is a valid price (not < 0). The Python runtime sends it (it checks
    # the bits); what comes back depends on the server's runtime: prost skips
    # a float field equal to 0.0, which -0.0 is, so our Rust server answers
    # +0.0; the Python peer keeps the sign. See tests/it/wire_fixtures.rs.
    negative_zero = order("py-neg-zero", ["a"], price=-0.0)
    assert sign(negative_zero.price) == -1.0
    assert negative_zero.SerializeToString().endswith(b"\x25\x00\x00\x00\x80" + b"\x2a\x05Seoul")
    assert add(negative_zero) == "py-neg-zero"
    back = get("py-neg-zero")
    assert back.price == 0.0
    expected_sign = {"rust": 1.0, "python": -1.0}[ctx["peer"]]
    assert sign(back.price) == expected_sign, (ctx["peer"], back.price)


# ---------- searchOrders ----------


@case
def search_matches_items_case_insensitively_each_order_once_by_id():
    for o in [
        order("py-s-c", ["ZQX-APPLE Watch", "zqx-apple pie"]),
        order("py-s-a", ["zqx-Apple"]),
        order("py-s-b", ["zqx-banana"]),
        order("py-s-d", ["Pine zqx-applE"]),
    ]:
        add(o)
    assert search_ids("Zqx-aPpLe") == ["py-s-a", "py-s-c", "py-s-d"]
    assert search_ids("zqx-BANANA") == ["py-s-b"]
    found = [o for o in stub().searchOrders(sv("zqx-apple pie"), timeout=TIMEOUT)]
    assert [o.id for o in found] == ["py-s-c"]
    assert found[0] == order("py-s-c", ["ZQX-APPLE Watch", "zqx-apple pie"])


@case
def search_with_no_match_is_an_empty_ok_stream():
    assert search_ids("no such item, anywhere") == []


# ---------- updateOrders ----------


@case
def update_replaces_all_orders_and_lists_their_ids():
    for i in (1, 2, 3):
        add(order(f"py-u-{i}", [f"old {i}"], "X"))
    changed = [order("py-u-1", ["new 1"], "Y"), order("py-u-3", ["new 3"], "Y")]
    assert update(changed) == "Updated Order IDs : py-u-1, py-u-3"
    assert get("py-u-1") == changed[0]
    assert get("py-u-3") == changed[1]
    assert list(get("py-u-2").items) == ["old 2"]


@case
def update_with_an_unknown_order_applies_none():
    add(order("py-v-1", ["old"], "X"))
    e = harness.expect_error(
        grpc.StatusCode.NOT_FOUND,
        update,
        [order("py-v-1", ["new"], "X"), order("py-v-404", ["n"], "X")],
    )
    assert e.details() == (
        "Order : py-v-404 Not Found. None of the orders in this call was updated."
    ), e.details()
    assert list(get("py-v-1").items) == ["old"]


@case
def update_with_invalid_or_repeated_orders_applies_none():
    add(order("py-w-1", ["old"], "X"))
    add(order("py-w-2", ["old"], "X"))
    cases = [
        (
            [order("py-w-1", ["new"], "X"), order("py-w-2", [], "X")],
            "invalid order py-w-2: items: at least one item is required",
        ),
        (
            [order("py-w-1", ["new"], "X"), order("py-w-1", ["again"], "X")],
            "order py-w-1 appears more than once in this call; none was updated",
        ),
        ([order("", ["new"], "X")], "invalid order: id: must not be empty"),
    ]
    for orders, message in cases:
        e = harness.expect_error(grpc.StatusCode.INVALID_ARGUMENT, update, orders)
        assert e.details() == message, (e.details(), message)
    assert list(get("py-w-1").items) == ["old"]
    assert list(get("py-w-2").items) == ["old"]


@case
def update_with_an_empty_stream_updates_nothing():
    assert update([]) == "Updated Order IDs : "
    assert get("101") == seed_order_101()


@case
def update_beyond_1000_orders_is_resource_exhausted():
    # 1001 orders that all exist, so the bound is the one problem (our
    # server reports an unknown id as soon as it arrives).
    orders = [order(f"py-x-{i}", ["bound"], "X") for i in range(1001)]
    for o in orders:
        add(o)
    e = harness.expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, update, orders)
    assert e.details() == "at most 1000 orders per updateOrders call; none was updated", (
        e.details()
    )


# ---------- processOrders ----------


def add_orders_to_ship(prefix):
    for i in range(1, 8):
        add(order(f"{prefix}{i}", ["item"], "Busan" if i % 2 == 0 else "Seoul"))


@case
def process_batches_by_destination_every_3_ids():
    add_orders_to_ship("py-p-")
    s, err = process([f"py-p-{i}" for i in range(1, 8)])
    assert err is None, err
    assert shape(s) == [
        "cmb - Seoul [py-p-1,py-p-3] Processed!",
        "cmb - Busan [py-p-2] Processed!",
        "cmb - Busan [py-p-4,py-p-6] Processed!",
        "cmb - Seoul [py-p-5] Processed!",
        "cmb - Seoul [py-p-7] Processed!",
    ], shape(s)
    assert s[0].ordersList[0] == order("py-p-1", ["item"], "Seoul"), "whole orders"


@case
def process_answers_each_batch_while_the_client_is_still_sending():
    add_orders_to_ship("py-q-")
    outbox = queue.Queue()

    def requests():
        while True:
            item = outbox.get(timeout=TIMEOUT)
            if item is None:
                return
            yield sv(item)

    call = stub().processOrders(requests(), timeout=TIMEOUT)
    for i in ("py-q-1", "py-q-2", "py-q-3"):
        outbox.put(i)
    first = next(call)  # before the client has ended its stream
    assert first.id == "cmb - Seoul", first
    outbox.put("py-q-4")
    outbox.put(None)
    rest = list(call)
    assert shape(rest) == [
        "cmb - Busan [py-q-2] Processed!",
        "cmb - Busan [py-q-4] Processed!",
    ], shape(rest)


@case
def process_unknown_id_ends_with_not_found_after_the_shipments_sent():
    add_orders_to_ship("py-r-")
    s, err = process(["py-r-1", "py-r-2", "py-r-3", "py-r-4", "py-r-nope", "py-r-5"])
    assert shape(s) == [
        "cmb - Seoul [py-r-1,py-r-3] Processed!",
        "cmb - Busan [py-r-2] Processed!",
    ], shape(s)
    assert err is not None and err.code() == grpc.StatusCode.NOT_FOUND, err
    assert err.details() == "Order : py-r-nope Not Found.", err.details()


@case
def process_with_no_ids_sends_nothing():
    s, err = process([])
    assert s == [] and err is None, (s, err)


# ---------- deadlines, cancellation, metadata, unknown methods ----------


@case
def an_expired_deadline_is_deadline_exceeded():
    # Client streams that never end: the server cannot answer before the
    # deadline, and the caller must see DEADLINE_EXCEEDED (not CANCELLED).
    for rpc, message in (
        (stub().processOrders, lambda: sv("101")),
        (stub().updateOrders, seed_order_101),
    ):
        stop = threading.Event()

        def never_ending():
            yield message()
            stop.wait(TIMEOUT)  # bounded: the call is over long before

        start = time.monotonic()
        try:
            result = rpc(never_ending(), timeout=0.5)
            if rpc is stub().processOrders:
                result = list(result)
            raise AssertionError(f"the call succeeded: {result!r}")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (e.code(), e.details())
        finally:
            stop.set()
        took = time.monotonic() - start
        assert took < 5, f"the deadline of 0.5 s took {took:.1f} s"


@case
def cancelling_a_server_stream_stops_it():
    # Enough ~1 KiB orders that the stream cannot be buffered whole (the
    # channel below keeps the default 64 KiB HTTP/2 window: no BDP probing).
    filler = "w" * 1000
    for start in range(0, 1500, 50):  # 50 calls in flight at a time
        pending = [
            stub().addOrder.future(order(f"py-bulk-{i:05}", [f"zqx-bulk {filler}"]), timeout=30)
            for i in range(start, start + 50)
        ]
        for p in pending:
            p.result()

    channel = grpc.insecure_channel(ctx["target"], options=[("grpc.http2.bdp_probe", 0)])
    try:
        slow_reader = order_pb2_grpc.OrderManagementStub(channel)
        request_id = f"py-cancel-{uuid.uuid4()}"
        call = slow_reader.searchOrders(
            sv("zqx-bulk"), timeout=30, metadata=[("x-request-id", request_id)]
        )
        first = [next(call).id for _ in range(5)]
        assert first == [f"py-bulk-{i:05}" for i in range(5)], first
        time.sleep(0.5)  # let the server fill the window and wait
        assert call.cancel()
        try:
            for _ in call:
                pass
            raise AssertionError("the cancelled stream ended as if complete")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.CANCELLED, (e.code(), e.details())
        assert call.code() == grpc.StatusCode.CANCELLED
    finally:
        channel.close()

    # The server saw the cancel.
    deadline = time.monotonic() + 10
    if ctx["peer"] == "rust":
        # Its log line for this call (found by our x-request-id, or by the
        # query in older logs) says so: `status=Cancelled` (`client gone`
        # before the call logs of the production server).
        while True:
            with open(ctx["server_log"], encoding="utf-8", errors="replace") as f:
                lines = [
                    line
                    for line in f
                    if "searchOrders" in line
                    and (request_id in line or "zqx-bulk" in line)
                    and ("Cancelled" in line or "client gone" in line)
                ]
            if lines:
                break
            assert time.monotonic() < deadline, (
                f"no line in the server log says that searchOrders {request_id} was cancelled"
            )
            time.sleep(0.1)
    else:
        while True:
            ends = [e for e in peer_events() if e["request_id"] == request_id]
            if ends and ends[-1]["outcome"] == "cancelled":
                assert ends[-1]["sent"] < 1500, ends[-1]
                break
            assert time.monotonic() < deadline, f"no cancelled searchOrders event: {ends}"
            time.sleep(0.1)
    assert get("101") == seed_order_101()


@case
def custom_metadata_reaches_the_server_and_is_echoed():
    # The client's x-request-id must come back in the response's initial
    # metadata (headers): proof that custom metadata reached the server.
    request_id = f"py-req-{uuid.uuid4()}"
    reply, call = stub().getOrder.with_call(
        sv("101"), metadata=[("x-request-id", request_id)], timeout=TIMEOUT
    )
    assert reply == seed_order_101()
    initial = dict(call.initial_metadata())
    assert initial.get("x-request-id") == request_id, f"initial metadata: {initial}"


@case
def unknown_method_is_unimplemented():
    for path in (
        "/ecommerce.OrderManagement/deleteOrder",
        "/ecommerce.NoSuchService/getOrder",
    ):
        unknown = ctx["channel"].unary_unary(
            path,
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )
        harness.expect_error(grpc.StatusCode.UNIMPLEMENTED, unknown, sv("101"), timeout=TIMEOUT)


def main():
    parser = harness.arguments(__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT of the server (loopback)")
    parser.add_argument("--peer", required=True, choices=["rust", "python"])
    parser.add_argument("--server-log", help="the Rust server's log (for --peer rust)")
    args = parser.parse_args()
    if args.peer == "rust" and not args.server_log:
        parser.error("--peer rust needs --server-log")
    channel = grpc.insecure_channel(args.target)
    grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
    ctx.update(
        target=args.target,
        peer=args.peer,
        channel=channel,
        stub=order_pb2_grpc.OrderManagementStub(channel),
        server_log=args.server_log,
    )
    try:
        return suite.run(args.label, args.summary, args.only)
    finally:
        channel.close()


if __name__ == "__main__":
    raise SystemExit(main())
