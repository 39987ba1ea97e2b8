"""Our Rust client binary (target/debug/client) against the Python grpcio peer
server (peer_server.py): every RPC through the real CLI, asserting its output
and its exit code (README: 0 ok, 3 NOT_FOUND, 4 INVALID_ARGUMENT, 5
ALREADY_EXISTS, 7 DEADLINE_EXCEEDED, 9 RESOURCE_EXHAUSTED).

What the CLI cannot express (custom metadata, cancelling a stream, an unknown
method) is in tests/it/interop_python_peer.rs, which run.sh runs against the
same kind of peer.
"""

import json
import os
import subprocess
import tempfile
import time
import uuid

import harness

suite = harness.Suite()
case = suite.case
ctx = {}  # filled by main(): client, url

SEED_TEXT = (
    'id: "101"\n'
    'items: "Item - A"\n'
    'items: "Item - B"\n'
    'description: "Sample order description."\n'
    "price: 1000.0\n"
    'destination: "Seoul"\n'
)
SEED_JSON = {
    "id": "101",
    "items": ["Item - A", "Item - B"],
    "description": "Sample order description.",
    "price": 1000,
    "destination": "Seoul",
}


class Run:
    def __init__(self, proc, took):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.took = took

    def __repr__(self):
        return f"exit {self.code}, stdout {self.out!r}, stderr {self.err!r}"

    def json_lines(self):
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def client(*args, stdin=None, timeout_s=30):
    """Runs the Rust client with --server URL; never longer than timeout_s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDER_")}
    start = time.monotonic()
    proc = subprocess.run(
        [ctx["client"], "--server", ctx["url"], *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout_s,
        env=env,
    )
    return Run(proc, time.monotonic() - start)


def ok(*args, **kwargs):
    run = client(*args, **kwargs)
    assert run.code == 0, run
    assert run.err == "", run
    return run


def add(order_id, items, destination="Seoul", price="10", description=None):
    args = ["add", "--id", order_id, "--price", price, "--destination", destination]
    for item in items:
        args += ["--item", item]
    if description is not None:
        args += ["--description", description]
    run = ok(*args)
    assert run.out == f"{order_id}\n", run


def get_json(order_id):
    [order] = ok("--json", "get", order_id).json_lines()
    return order


def write_orders(orders):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8")
    with f:
        for o in orders:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
    ctx.setdefault("temp_files", []).append(f.name)
    return f.name


def shape(shipments):
    return [
        f"{s['id']} [{','.join(o['id'] for o in s.get('ordersList', []))}] {s['status']}"
        for s in shipments
    ]


# ---------- getOrder ----------


@case
def get_101_prints_the_seed_text():
    assert ok("101").out == SEED_TEXT
    assert ok("get", "101").out == SEED_TEXT


@case
def get_101_as_json():
    assert get_json("101") == SEED_JSON


@case
def get_unknown_is_not_found_exit_3():
    run = client("get", "102")
    assert run.code == 3, run
    assert run.err == "client: NotFound: Order : 102 Not Found.\n", run
    assert run.out == "", run


@case
def get_empty_id_is_invalid_argument_exit_4():
    run = client("get", "")
    assert run.code == 4, run
    assert run.err == "client: InvalidArgument: order id must not be empty\n", run


@case
def non_ascii_status_message_arrives_intact():
    odd = "주문-없음 ✓ ünïcødé 🍜 100%"
    run = client("get", odd)
    assert run.code == 3, run
    assert run.err == f"client: NotFound: Order : {odd} Not Found.\n", run


# ---------- addOrder ----------


@case
def add_then_get_returns_the_same_order():
    add(
        "rs-201",
        ["Google Pixel 3A", "Mac Book Pro", "김치 🌶"],
        destination="Mountain View, CA",
        price="1800.5",
        description="배송 전 연락 주세요.",
    )
    assert get_json("rs-201") == {
        "id": "rs-201",
        "items": ["Google Pixel 3A", "Mac Book Pro", "김치 🌶"],
        "description": "배송 전 연락 주세요.",
        "price": 1800.5,
        "destination": "Mountain View, CA",
    }


@case
def add_without_id_prints_a_fresh_uuid_v7():
    run = ok("add", "--item", "x", "--price", "1", "--destination", "Seoul")
    new_id = run.out.strip()
    assert uuid.UUID(new_id).version == 7, run
    assert get_json(new_id)["id"] == new_id


@case
def add_existing_id_is_already_exists_exit_5():
    run = client("add", "--id", "101", "--item", "x", "--price", "1", "--destination", "Busan")
    assert run.code == 5, run
    assert run.err == "client: AlreadyExists: order 101 already exists\n", run
    assert get_json("101") == SEED_JSON


@case
def add_invalid_is_invalid_argument_exit_4():
    run = client("add", "--id", "rs-bad", "--item", " ", "--price", "-1", "--destination", "X")
    assert run.code == 4, run
    assert run.err.startswith(
        "client: InvalidArgument: invalid order rs-bad: items[0]: must not be blank; "
        "price: must be a finite number >= 0, got -1"
    ), run
    assert client("get", "rs-bad").code == 3


# ---------- searchOrders ----------


@case
def search_prints_every_match_by_id():
    add("rs-s-c", ["ZQX-APPLE Watch", "zqx-apple pie"])
    add("rs-s-a", ["zqx-Apple"])
    add("rs-s-b", ["zqx-banana"])
    add("rs-s-d", ["Pine zqx-applE"])
    found = ok("--json", "search", "Zqx-aPpLe").json_lines()
    assert [o["id"] for o in found] == ["rs-s-a", "rs-s-c", "rs-s-d"], found
    text = ok("search", "zqx-banana").out
    assert text == (
        'id: "rs-s-b"\nitems: "zqx-banana"\nprice: 10.0\ndestination: "Seoul"\n'
    ), text


@case
def search_with_no_match_prints_nothing():
    assert ok("search", "no such item, anywhere").out == ""


# ---------- updateOrders ----------


@case
def update_from_a_file_replaces_the_orders():
    for i in (1, 2, 3):
        add(f"rs-u-{i}", [f"old {i}"], destination="X")
    path = write_orders(
        [
            {"id": "rs-u-1", "items": ["new 1"], "price": 2.5, "destination": "Y"},
            {"id": "rs-u-3", "items": ["new 3"], "price": 3, "destination": "Y"},
        ]
    )
    run = ok("update", path)
    assert run.out == "Updated Order IDs : rs-u-1, rs-u-3\n", run
    assert get_json("rs-u-1") == {
        "id": "rs-u-1",
        "items": ["new 1"],
        "price": 2.5,
        "destination": "Y",
    }
    assert get_json("rs-u-2")["items"] == ["old 2"]


@case
def update_from_stdin_with_an_unknown_order_is_not_found_exit_3():
    add("rs-v-1", ["old"], destination="X")
    orders = [
        {"id": "rs-v-1", "items": ["new"], "destination": "X"},
        {"id": "rs-v-404", "items": ["n"], "destination": "X"},
    ]
    run = client("update", "-", stdin=json.dumps(orders))
    assert run.code == 3, run
    assert run.err == (
        "client: NotFound: Order : rs-v-404 Not Found. "
        "None of the orders in this call was updated.\n"
    ), run
    assert get_json("rs-v-1")["items"] == ["old"]


@case
def update_beyond_1000_orders_is_resource_exhausted_exit_9():
    path = write_orders([{"id": f"rs-x-{i}", "items": ["a"]} for i in range(1001)])
    run = client("update", path)
    assert run.code == 9, run
    assert "at most 1000 orders per updateOrders call" in run.err, run


# ---------- processOrders ----------


def add_orders_to_ship(prefix):
    for i in range(1, 8):
        add(f"{prefix}{i}", ["item"], destination="Busan" if i % 2 == 0 else "Seoul")


@case
def process_prints_the_shipments_of_every_batch():
    add_orders_to_ship("rs-p-")
    shipments = ok("--json", "process", *[f"rs-p-{i}" for i in range(1, 8)]).json_lines()
    assert shape(shipments) == [
        "cmb - Seoul [rs-p-1,rs-p-3] Processed!",
        "cmb - Busan [rs-p-2] Processed!",
        "cmb - Busan [rs-p-4,rs-p-6] Processed!",
        "cmb - Seoul [rs-p-5] Processed!",
        "cmb - Seoul [rs-p-7] Processed!",
    ], shipments
    assert shipments[0]["ordersList"][0] == {
        "id": "rs-p-1",
        "items": ["item"],
        "price": 10,
        "destination": "Seoul",
    }


@case
def process_unknown_id_prints_the_shipments_sent_then_exits_3():
    add_orders_to_ship("rs-r-")
    run = client("--json", "process", "rs-r-1", "rs-r-2", "rs-r-3", "rs-r-4", "rs-r-nope")
    assert run.code == 3, run
    assert shape(run.json_lines()) == [
        "cmb - Seoul [rs-r-1,rs-r-3] Processed!",
        "cmb - Busan [rs-r-2] Processed!",
    ], run
    # Under --json the error is JSON on stderr too, one line.
    error = json.loads(run.err)
    assert (error["code"], error["message"], error["exit"]) == (
        "NOT_FOUND",
        "Order : rs-r-nope Not Found.",
        3,
    ), run


# ---------- deadline ----------


@case
def an_expired_deadline_is_deadline_exceeded_exit_7():
    # The peer's slow search (--test-hooks) sends an order every 100 ms for
    # 30 s; the client's 0.5 s deadline must end it.
    run = client("--timeout", "0.5", "--json", "search", "__interop_slow__")
    assert run.code == 7, run
    assert json.loads(run.err)["code"] == "DEADLINE_EXCEEDED", run
    assert len(run.json_lines()) <= 10, run  # ~5: one per 100 ms until 0.5 s
    assert run.took < 5, run


def main():
    parser = harness.arguments(__doc__.splitlines()[0])
    parser.add_argument("--client", required=True, help="path of the Rust client binary")
    parser.add_argument("--url", required=True, help="http://HOST:PORT of the Python peer")
    args = parser.parse_args()
    ctx.update(client=args.client, url=args.url)
    try:
        return suite.run(args.label, args.summary, args.only)
    finally:
        for path in ctx.get("temp_files", []):
            os.unlink(path)


if __name__ == "__main__":
    raise SystemExit(main())
