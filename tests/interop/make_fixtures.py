"""Writes the wire fixtures: golden encodings made by the reference protobuf
runtime (Python `protobuf`, pinned in requirements.txt) from proto/order.proto.

    python make_fixtures.py --out tests/fixtures

writes, for every case below, `<name>.bin` (the exact bytes
`SerializeToString()` produces), plus `index.json` (name, message type,
values, hex, notes) and `index.md` (the same as a table). The output depends
only on the cases and the protobuf version, so a rerun writes identical files:
tests/interop/run.sh regenerates into a temporary folder and fails on any
difference with the committed tests/fixtures/.

tests/it/wire_fixtures.rs then checks that prost encodes every case to exactly
these bytes and decodes them back to the same value, except the documented
differences (see NOTES below and that file).

The generated stubs (order_pb2) must be importable: run.sh puts them on
PYTHONPATH (generated into tests/interop/.gen by grpcio-tools).
"""

import argparse
import json
import os
import struct
import sys

import google.protobuf
from google.protobuf import text_format, wrappers_pb2
from google.protobuf.internal import api_implementation

try:
    import order_pb2
except ImportError:
    sys.exit(
        "make_fixtures.py: cannot import order_pb2; generate the stubs first "
        "(tests/interop/run.sh does) and put them on PYTHONPATH"
    )

# Differences between this runtime and prost that the Rust test asserts
# explicitly instead of hiding. Keyed by fixture name.
NOTES = {
    "order_price_negative_zero": (
        "KNOWN DIFFERENCE. proto3 `float price` has implicit presence: a field "
        "equal to its default is not written. Python protobuf decides by the "
        "bits, so -0.0 (0x80000000) is not the default and is written "
        "(25 00 00 00 80); prost compares `value != 0.0`, which is false for "
        "-0.0, so prost writes nothing. Both decode these bytes to -0.0."
    ),
    "order_unknown_field_6": (
        "KNOWN DIFFERENCE (by design). Bytes with a field this contract does "
        "not define (6, varint 1), as a newer peer could send them: Python "
        "keeps unknown fields and writes them back; prost skips them on "
        "decode, so it decodes order 101 and re-encodes without field 6."
    ),
    "order_id_only_101": (
        "The seed client's getOrder request, Order(id='101'): the same bytes as "
        "StringValue('101') (string_value_101)."
    ),
}


def f32(bits):
    """The float32 with these bits, as the Python float the runtime stores."""
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def f32_bits(value):
    return struct.unpack("<I", struct.pack("<f", value))[0]


def f32_repr(value):
    """The shortest decimal that reads back as this float32."""
    if value == 0:
        return "-0.0" if f32_bits(value) == 0x80000000 else "0.0"
    for digits in range(1, 10):
        text = "%.*g" % (digits, value)
        try:
            if f32(f32_bits(float(text))) == value:
                return repr(float(text))
        except OverflowError:  # rounded past the largest float32
            continue
    raise AssertionError(value)


def seed_order_101():
    return order_pb2.Order(
        id="101",
        items=["Item - A", "Item - B"],
        description="Sample order description.",
        price=1000,
        destination="Seoul",
    )


def cases():
    """(name, message) in a fixed order."""
    Order = order_pb2.Order
    Shipment = order_pb2.CombinedShipment
    StringValue = wrappers_pb2.StringValue

    out = [
        ("order_empty", Order()),
        ("order_seed_101", seed_order_101()),
        ("order_id_only_101", Order(id="101")),
        (
            # The seed client's order1, as its code builds it.
            "order_seed_client_order1",
            Order(
                items=["Item - A", "Item - B", "Item - C"],
                price=1000,
                description="This is a Sample order - 1 : description.",
                destination="Seoul, Guro",
            ),
        ),
        (
            "order_non_ascii",
            Order(
                id="주문-7",
                items=[
                    "Item – ünïcødé",
                    "🍜 라면",
                    "e\u0301 (e + combining acute)",
                    'tab\tnewline\n"quote" \\backslash',
                    "nul\u0000inside",
                ],
                description="배송 전 연락 주세요.",
                price=12.5,
                destination="Séoul, 구로구",
            ),
        ),
        ("order_items_with_empty_strings", Order(id="e", items=["", "a", ""])),
        (
            "order_many_items",
            Order(id="many", items=[f"item-{i:04}" for i in range(1000)], price=1),
        ),
        (
            # Every string at the service's limits (id 128 B, item 1 KiB,
            # description 4 KiB, destination 256 B): 2-byte lengths.
            "order_long_fields",
            Order(
                id="i" * 128,
                items=["x" * 1024],
                description="d" * 4096,
                price=f32(0x7F7FFFFF),
                destination="s" * 256,
            ),
        ),
        (
            # A length that needs a 3-byte varint (> 16383).
            "order_description_20000_bytes",
            Order(id="long", items=["a"], description="가" * 6666 + "ab"),
        ),
    ]
    prices = [
        ("zero", 0x00000000),
        ("negative_zero", 0x80000000),
        ("1000", f32_bits(1000.0)),
        ("one_tenth", f32_bits(0.1)),
        ("negative_one_and_a_half", f32_bits(-1.5)),
        ("smallest_subnormal", 0x00000001),
        ("smallest_normal", 0x00800000),
        ("largest_finite", 0x7F7FFFFF),
        ("lowest_finite", 0xFF7FFFFF),
    ]
    for name, bits in prices:
        out.append((f"order_price_{name}", Order(price=f32(bits))))

    unknown = order_pb2.Order()
    unknown.ParseFromString(seed_order_101().SerializeToString() + b"\x30\x01")
    out.append(("order_unknown_field_6", unknown))

    out += [
        ("shipment_empty", Shipment()),
        (
            "shipment_nested_orders",
            Shipment(
                id="cmb - Seoul",
                status="Processed!",
                ordersList=[
                    seed_order_101(),
                    Order(
                        id="102",
                        items=["Google Pixel 3A", "김치"],
                        price=0.5,
                        destination="Seoul",
                    ),
                ],
            ),
        ),
        (
            # An empty nested order is still one element: 1a 00.
            "shipment_with_empty_orders",
            Shipment(id="cmb - ", ordersList=[Order(), Order(id="x"), Order()]),
        ),
        ("string_value_101", StringValue(value="101")),
        ("string_value_empty", StringValue(value="")),
        ("string_value_non_ascii", StringValue(value="주문-101 ✓ 🍜")),
        ("string_value_300_bytes", StringValue(value="v" * 300)),
    ]
    return out


def render_string(text):
    """A string for the index: runs of one character are shown as a count."""
    if len(text) > 40 and len(set(text)) == 1:
        return {"repeat": text[0], "times": len(text)}
    if len(text) > 40 and len(set(text[:-2])) == 1:
        return {"repeat": text[0], "times": len(text) - 2, "then": text[-2:]}
    return text


def render(message):
    """The values of a message, for the index (every field, defaults too)."""
    if isinstance(message, wrappers_pb2.StringValue):
        return {"value": render_string(message.value)}
    if isinstance(message, order_pb2.CombinedShipment):
        return {
            "id": render_string(message.id),
            "status": render_string(message.status),
            "ordersList": [render(o) for o in message.ordersList],
        }
    items = [render_string(i) for i in message.items]
    if len(items) > 20:
        items = {"first": items[:3], "last": items[-1], "count": len(items)}
    value = {
        "id": render_string(message.id),
        "items": items,
        "description": render_string(message.description),
        "price": {"float32": f32_repr(message.price), "bits": f"0x{f32_bits(message.price):08x}"},
        "destination": render_string(message.destination),
    }
    if message.SerializeToString() != without_unknown_fields(message).SerializeToString():
        value["unknown_fields"] = "field 6, varint 1"
    return value


def without_unknown_fields(message):
    copy = type(message)()
    copy.CopyFrom(message)
    copy.DiscardUnknownFields()
    return copy


HEX_IN_FULL = 512  # bytes; larger fixtures list a prefix in the index


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write the fixtures to")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    entries = []
    for name, message in cases():
        data = message.SerializeToString()
        with open(os.path.join(args.out, f"{name}.bin"), "wb") as f:
            f.write(data)
        entry = {
            "name": name,
            "file": f"{name}.bin",
            "type": message.DESCRIPTOR.full_name,
            "size": len(data),
            "value": render(message),
        }
        if len(data) <= HEX_IN_FULL:
            entry["hex"] = data.hex(" ")
            # The text layout our client prints (src/format.rs), as this
            # runtime's text_format writes it; wire_fixtures.rs compares.
            entry["text"] = text_format.MessageToString(message, as_utf8=True)
        else:
            entry["hex_prefix"] = data[:32].hex(" ")
        if name in NOTES:
            entry["note"] = NOTES[name]
        entries.append(entry)

    index = {
        "about": (
            "Golden protobuf encodings of the ecommerce contract (proto/order.proto), "
            "written by tests/interop/make_fixtures.py with the Python protobuf "
            "runtime below; checked against prost by tests/it/wire_fixtures.rs. "
            "Do not edit by hand: rerun the script (tests/interop/run.sh shows how)."
        ),
        "generator": "tests/interop/make_fixtures.py",
        "protobuf": google.protobuf.__version__,
        "protobuf_backend": api_implementation.Type(),
        "fixtures": entries,
    }
    with open(os.path.join(args.out, "index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, ensure_ascii=False, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "index.md"), "w", encoding="utf-8") as f:
        f.write(markdown(index))
    print(f"make_fixtures: {len(entries)} fixtures written to {args.out}")


def markdown(index):
    lines = [
        "# Wire fixtures",
        "",
        "Golden encodings of `proto/order.proto` messages, made by the reference",
        f"protobuf runtime (Python `protobuf` {index['protobuf']}, "
        f"`{index['protobuf_backend']}` backend)",
        "with `tests/interop/make_fixtures.py`; `tests/it/wire_fixtures.rs` checks that",
        "prost writes and reads exactly these bytes. Generated: do not edit.",
        "`tests/interop/run.sh` regenerates them into a temporary folder and fails",
        "if they differ from these. After changing the cases or the pinned protobuf,",
        "rewrite them, review the diff and commit it:",
        "",
        "```sh",
        "bash tests/interop/run.sh --write-fixtures",
        "```",
        "",
        "`index.json` lists every fixture's values (price as float32 and its bits;",
        "a long run of one character as `repeat`/`times`; a long item list as its",
        "first, last and count) and its hex (up to 512 bytes; else the first 32).",
        "",
        "| fixture | type | bytes | hex (first 24 bytes) |",
        "|---|---|---|---|",
    ]
    for e in index["fixtures"]:
        hex_text = e.get("hex", e.get("hex_prefix", ""))
        shown = " ".join(hex_text.split()[:24]) or "(empty)"
        if e["size"] > 24:
            shown += " …"
        lines.append(f"| `{e['name']}` | `{e['type']}` | {e['size']} | `{shown}` |")
    lines += ["", "## Known differences between prost and Python protobuf", ""]
    for e in index["fixtures"]:
        if "note" in e and e["note"].startswith("KNOWN DIFFERENCE"):
            lines.append(f"- `{e['name']}`: {e['note']}")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
