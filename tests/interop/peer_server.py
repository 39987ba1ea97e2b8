"""The Python grpcio peer server: the seed's server, extended to the five RPCs.

It starts from the seed (the Korean blog post in shared/seed/): a dict of
orders holding order `101`, `getOrder` answering NOT_FOUND for an unknown id.
It then does what our Rust service does (README, src/service.rs), message for
message, so that our Rust client can be checked against a server written with
the reference gRPC runtime:

- addOrder: validates like src/validate.rs (INVALID_ARGUMENT naming the
  field), ALREADY_EXISTS for a taken id, a fresh UUIDv7 for an empty id.
- getOrder: INVALID_ARGUMENT for an empty id, `Order : <id> Not Found.`.
- searchOrders: every order with an item containing the query,
  case-insensitive, each once, by id.
- updateOrders: all or nothing when the stream ends; RESOURCE_EXHAUSTED past
  1000 orders; `Updated Order IDs : a, b`.
- processOrders: shipments by destination every 3 ids (`cmb - <dest>`,
  `Processed!`), the rest at the end; NOT_FOUND after what was already sent.

Deadlines and cancellation are grpcio's own: the runtime ends a call whose
deadline passed with DEADLINE_EXCEEDED and marks the context inactive.

Only for the interop tests (none of this changes the five RPCs' semantics):
- Every call echoes the caller's `x-request-id` in its initial metadata, and
  in its trailing metadata as `x-echo-request-id` (`x-trace-bin`, a binary
  header, comes back as `x-echo-trace-bin`), so a client can prove its custom
  metadata reached the server.
- With --test-hooks, searchOrders for the query `__interop_slow__` streams a
  copy of order 101 every 100 ms (for at most 30 s): a stream that is still
  running when a test cancels it or its deadline passes.
- With --test-hooks, the extra service `interop.PeerControl/Events`
  (StringValue in, StringValue out) returns, as a JSON array, how each
  searchOrders stream ended (`{"rpc": "searchOrders", "outcome": "cancelled" |
  "deadline" | "completed", "sent": N, "request_id": <its x-request-id>}`),
  so a test can see that a cancellation reached the server.

Run: python peer_server.py --listen 127.0.0.1:0 [--test-hooks] [--quiet]; it
prints `listening on HOST:PORT` on stderr once it accepts calls. --quiet (for
benchmarks) drops the per-call log lines; the start and stop lines remain.
The generated stubs (order_pb2, order_pb2_grpc) must be importable (run.sh
puts them on PYTHONPATH).
"""

import argparse
import json
import math
import os
import signal
import struct
import sys
import threading
import time
import unicodedata
import uuid
from concurrent import futures

import grpc
from google.protobuf import wrappers_pb2

import order_pb2
import order_pb2_grpc

SLOW_QUERY = "__interop_slow__"
SLOW_INTERVAL_S = 0.1
SLOW_MAX_MESSAGES = 300

BATCH_SIZE = 3
MAX_UPDATE_ORDERS = 1000

MAX_ID_BYTES = 128
MAX_ITEMS = 1000
MAX_ITEM_BYTES = 1024
MAX_DESCRIPTION_BYTES = 4096
MAX_DESTINATION_BYTES = 256


def seed_order_101():
    # Exactly as the seed's server builds it.
    return order_pb2.Order(
        id="101",
        price=1000,
        items=["Item - A", "Item - B"],
        description="Sample order description.",
        destination="Seoul",
    )


def utf8_len(text):
    return len(text.encode("utf-8"))


def f32_text(value):
    """A float32 as Rust's `{}` prints it, near enough for error messages."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e16:
        return "-0" if math.copysign(1.0, value) < 0 and value == 0 else str(int(value))
    for digits in range(1, 10):
        text = "%.*g" % (digits, value)
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == value:
            return text
    return repr(value)


def too_long(text, limit):
    return f"at most {limit} bytes, got {utf8_len(text)}"


def violations(order, id_required):
    """Every problem with `order`, as `field: description`, in field order."""
    out = []
    if not order.id:
        if id_required:
            out.append("id: must not be empty")
    elif utf8_len(order.id) > MAX_ID_BYTES:
        out.append("id: " + too_long(order.id, MAX_ID_BYTES))
    elif any(unicodedata.category(c) == "Cc" for c in order.id):
        out.append("id: must not contain control characters")

    if not order.items:
        out.append("items: at least one item is required")
    elif len(order.items) > MAX_ITEMS:
        out.append(f"items: at most {MAX_ITEMS} items, got {len(order.items)}")
    else:
        for i, item in enumerate(order.items):
            if not item.strip():
                out.append(f"items[{i}]: must not be blank")
            elif utf8_len(item) > MAX_ITEM_BYTES:
                out.append(f"items[{i}]: " + too_long(item, MAX_ITEM_BYTES))

    if utf8_len(order.description) > MAX_DESCRIPTION_BYTES:
        out.append("description: " + too_long(order.description, MAX_DESCRIPTION_BYTES))

    if not math.isfinite(order.price) or order.price < 0:
        out.append(f"price: must be a finite number >= 0, got {f32_text(order.price)}")

    if utf8_len(order.destination) > MAX_DESTINATION_BYTES:
        out.append("destination: " + too_long(order.destination, MAX_DESTINATION_BYTES))
    return out


def invalid_order_message(order_id, problems):
    what = f"invalid order {order_id}" if order_id else "invalid order"
    return f"{what}: {'; '.join(problems)}"


def uuid7():
    """A UUIDv7 (RFC 9562), as our Rust server makes for an empty id."""
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC variant
    return str(uuid.UUID(int=value))


class Abort(Exception):
    """A status to end the call with."""

    def __init__(self, code, details):
        super().__init__(details)
        self.code = code
        self.details = details


def echo_metadata(context):
    """Sends the caller's x-request-id back in the initial metadata and, with
    x-trace-bin, in the trailing metadata (x-echo-*)."""
    received = dict(context.invocation_metadata())
    initial, trailing = [], []
    if "x-request-id" in received:
        initial.append(("x-request-id", received["x-request-id"]))
        trailing.append(("x-echo-request-id", received["x-request-id"]))
    if "x-trace-bin" in received:
        trailing.append(("x-echo-trace-bin", received["x-trace-bin"]))
    context.send_initial_metadata(initial)
    if trailing:
        context.set_trailing_metadata(trailing)


class OrderManagementServicer(order_pb2_grpc.OrderManagementServicer):
    def __init__(self, test_hooks):
        self.lock = threading.Lock()
        self.orderDict = {"101": seed_order_101()}
        self.test_hooks = test_hooks
        self.events = []

    # ---------- helpers ----------

    def record(self, **event):
        with self.lock:
            self.events.append(event)
        log(f"event {json.dumps(event)}")

    def lookup(self, order_id):
        if not order_id:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "order id must not be empty")
        with self.lock:
            order = self.orderDict.get(order_id)
        if order is None:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"Order : {order_id} Not Found.")
        copy = order_pb2.Order()
        copy.CopyFrom(order)
        return copy

    # ---------- the five RPCs ----------

    def addOrder(self, request, context):
        echo_metadata(context)
        try:
            problems = violations(request, id_required=False)
            if problems:
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    invalid_order_message(request.id, problems),
                )
            order = order_pb2.Order()
            order.CopyFrom(request)
            with self.lock:
                if not order.id:
                    order.id = uuid7()
                    while order.id in self.orderDict:
                        order.id = uuid7()
                elif order.id in self.orderDict:
                    raise Abort(
                        grpc.StatusCode.ALREADY_EXISTS, f"order {order.id} already exists"
                    )
                self.orderDict[order.id] = order
            log(f"addOrder {order.id!r}: OK")
            return wrappers_pb2.StringValue(value=order.id)
        except Abort as e:
            return fail(context, "addOrder", request.id, e, wrappers_pb2.StringValue())

    def getOrder(self, request, context):
        echo_metadata(context)
        try:
            order = self.lookup(request.value)
            log(f"getOrder {request.value!r}: OK")
            return order
        except Abort as e:
            return fail(context, "getOrder", request.value, e, order_pb2.Order())

    def searchOrders(self, request, context):
        echo_metadata(context)
        state = {
            "sent": 0,
            "completed": False,
            "request_id": dict(context.invocation_metadata()).get("x-request-id"),
        }
        if self.test_hooks:
            context.add_callback(lambda: self.record_stream_end(context, state))
        if self.test_hooks and request.value == SLOW_QUERY:
            yield from self.slow_search(context, state)
            return
        needle = request.value.lower()
        with self.lock:
            matches = [
                self.orderDict[k]
                for k in sorted(self.orderDict)
                if any(needle in item.lower() for item in self.orderDict[k].items)
            ]
        for order in matches:
            if not context.is_active():
                return
            yield order
            state["sent"] += 1
        state["completed"] = True
        log(f"searchOrders {request.value!r}: OK, {state['sent']} sent")

    def slow_search(self, context, state):
        template = seed_order_101()
        for n in range(1, SLOW_MAX_MESSAGES + 1):
            if not context.is_active():
                return
            order = order_pb2.Order()
            order.CopyFrom(template)
            order.id = f"slow-{n}"
            yield order
            state["sent"] = n
            time.sleep(SLOW_INTERVAL_S)
        state["completed"] = True

    def record_stream_end(self, context, state):
        """How a searchOrders stream ended, for interop.PeerControl/Events."""
        if state["completed"]:
            outcome = "completed"
        elif context.time_remaining() is not None and context.time_remaining() <= 0:
            outcome = "deadline"
        else:
            outcome = "cancelled"
        self.record(
            rpc="searchOrders",
            outcome=outcome,
            sent=state["sent"],
            request_id=state["request_id"],
        )

    def updateOrders(self, request_iterator, context):
        echo_metadata(context)
        try:
            orders, ids = [], set()
            for order in request_iterator:
                if len(orders) == MAX_UPDATE_ORDERS:
                    raise Abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"at most {MAX_UPDATE_ORDERS} orders per updateOrders call; "
                        "none was updated",
                    )
                problems = violations(order, id_required=True)
                if problems:
                    raise Abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        invalid_order_message(order.id, problems),
                    )
                if order.id in ids:
                    raise Abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"order {order.id} appears more than once in this call; "
                        "none was updated",
                    )
                ids.add(order.id)
                orders.append(order)
            with self.lock:
                for order in orders:
                    if order.id not in self.orderDict:
                        raise Abort(
                            grpc.StatusCode.NOT_FOUND,
                            f"Order : {order.id} Not Found. "
                            "None of the orders in this call was updated.",
                        )
                for order in orders:
                    self.orderDict[order.id] = order
            reply = "Updated Order IDs : " + ", ".join(o.id for o in orders)
            log(f"updateOrders: OK, {len(orders)} updated")
            return wrappers_pb2.StringValue(value=reply)
        except Abort as e:
            return fail(context, "updateOrders", "", e, wrappers_pb2.StringValue())

    def processOrders(self, request_iterator, context):
        echo_metadata(context)
        shipments = []  # of the current batch, in order of first appearance
        in_batch = 0
        try:
            for request in request_iterator:
                order = self.lookup(request.value)
                shipment_id = f"cmb - {order.destination}"
                shipment = next((s for s in shipments if s.id == shipment_id), None)
                if shipment is None:
                    shipment = order_pb2.CombinedShipment(id=shipment_id, status="Processed!")
                    shipments.append(shipment)
                shipment.ordersList.append(order)
                in_batch += 1
                if in_batch == BATCH_SIZE:
                    yield from shipments
                    shipments, in_batch = [], 0
            yield from shipments
            log("processOrders: OK")
        except Abort as e:
            fail(context, "processOrders", "", e, None)


def fail(context, method, order_id, abort, empty_reply):
    log(f"{method} {order_id!r}: {abort.code.name} {abort.details}")
    context.set_code(abort.code)
    context.set_details(abort.details)
    return empty_reply


def events_handler(servicer):
    def events(request, context):
        with servicer.lock:
            text = json.dumps(servicer.events)
        return wrappers_pb2.StringValue(value=text)

    return grpc.method_handlers_generic_handler(
        "interop.PeerControl",
        {
            "Events": grpc.unary_unary_rpc_method_handler(
                events,
                request_deserializer=wrappers_pb2.StringValue.FromString,
                response_serializer=wrappers_pb2.StringValue.SerializeToString,
            )
        },
    )


QUIET = False  # --quiet: only the lines logged with always=True


def log(line, always=False):
    if QUIET and not always:
        return
    print(f"peer_server: {line}", file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT; port 0 picks one")
    parser.add_argument(
        "--test-hooks",
        action="store_true",
        help=f"enable the slow search ({SLOW_QUERY!r}) and interop.PeerControl/Events",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no log line per call (for benchmarks)"
    )
    args = parser.parse_args()
    global QUIET
    QUIET = args.quiet

    host = args.listen.rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "[::1]", "localhost"):
        parser.error("listen on loopback only (127.0.0.1, [::1])")

    servicer = OrderManagementServicer(args.test_hooks)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    order_pb2_grpc.add_OrderManagementServicer_to_server(servicer, server)
    if args.test_hooks:
        server.add_generic_rpc_handlers((events_handler(servicer),))
    port = server.add_insecure_port(args.listen)
    if port == 0:
        log(f"cannot listen on {args.listen}", always=True)
        return 1
    server.start()
    log(f"listening on {host}:{port}", always=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=1).wait()
    log("stopped", always=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
