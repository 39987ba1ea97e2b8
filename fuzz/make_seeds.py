#!/usr/bin/env python3
"""Writes the committed seed corpus, fuzz/corpus/<target>/, from the wire
fixtures in tests/fixtures/*.bin (made by the reference protobuf runtime).

    python3 fuzz/make_seeds.py

decode_*: each fixture of the target's message type, as is.
service_requests: gRPC request bodies built from those fixtures, behind the
target's 3-byte header (flags, grpc-timeout selector, chunk size; see
fuzz_targets/service_requests.rs). service_orders takes arbitrary-crate
structured input, so its seeds are a few small inputs found by the fuzzer
(regression seeds go there too); this script leaves that folder alone.
Existing seed files of the other targets are replaced.
"""

import gzip
import pathlib
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
FIXTURES = FUZZ.parent / "tests" / "fixtures"
CORPUS = FUZZ / "corpus"

# service_requests flags (byte 0)
ADD, GET, SEARCH, UPDATE, PROCESS, UNKNOWN = range(6)
PRODUCTION_CODEC = 0x08
TIMEOUT = 0x10
GZIP = 0x20
ACCEPT_GZIP = 0x40
CHUNKED = 0x80
# indexes into TIMEOUTS in service_requests.rs
T_0N, T_1M, T_99999999H, T_BAD_UNIT = 0, 3, 7, 9


def fixture(name):
    return (FIXTURES / f"{name}.bin").read_bytes()


def frame(payload, compressed=False):
    return struct.pack(">BI", 1 if compressed else 0, len(payload)) + payload


def request(flags, body, timeout=0, chunk=0):
    return bytes([flags, timeout, chunk]) + body


def string_value(text):
    data = text.encode()
    if not data:
        return b""
    return b"\x0a" + varint(len(data)) + data


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def main():
    for target in ["decode_order", "decode_string_value", "decode_combined_shipment", "service_requests"]:
        folder = CORPUS / target
        if folder.exists():
            for f in folder.iterdir():
                f.unlink()

    prefixes = {
        "order_": "decode_order",
        "string_value_": "decode_string_value",
        "shipment_": "decode_combined_shipment",
    }
    for path in sorted(FIXTURES.glob("*.bin")):
        for prefix, target in prefixes.items():
            if path.stem.startswith(prefix):
                # order_price_zero is empty like order_empty: one empty seed is enough.
                if path.stem == "order_price_zero":
                    continue
                write(target, path.stem, path.read_bytes())

    seed_101 = fixture("order_seed_101")
    client_order = fixture("order_seed_client_order1")
    non_ascii = fixture("order_non_ascii")
    sv_101 = fixture("string_value_101")
    seeds = {
        "add_client_order1": request(ADD, frame(client_order)),
        "add_non_ascii_order": request(ADD, frame(non_ascii)),
        "add_101_already_exists": request(ADD, frame(seed_101)),
        "add_blank_items_invalid": request(ADD, frame(fixture("order_items_with_empty_strings"))),
        "add_long_fields": request(ADD, frame(fixture("order_long_fields"))),
        "add_many_items_chunked": request(ADD | CHUNKED, frame(fixture("order_many_items")), chunk=7),
        "add_gzip": request(
            ADD | PRODUCTION_CODEC | GZIP | ACCEPT_GZIP,
            frame(gzip.compress(client_order, mtime=0), compressed=True),
        ),
        "add_gzip_not_accepted": request(
            ADD | GZIP, frame(gzip.compress(client_order, mtime=0), compressed=True)
        ),
        "add_negative_price": request(ADD, frame(client_order + fixture("order_price_negative_one_and_a_half"))),
        "get_101": request(GET, frame(sv_101)),
        "get_101_gzip_reply": request(GET | PRODUCTION_CODEC | ACCEPT_GZIP, frame(sv_101)),
        "get_empty_id": request(GET, frame(b"")),
        "get_unknown_id": request(GET, frame(fixture("string_value_non_ascii"))),
        "get_no_message": request(GET, b""),
        "get_two_messages": request(GET, frame(sv_101) + frame(sv_101)),
        "get_truncated_frame": request(GET, struct.pack(">BI", 0, 100) + sv_101),
        "get_compressed_flag_no_encoding": request(GET, frame(sv_101, compressed=True)),
        "get_timeout_0n": request(GET | TIMEOUT, frame(sv_101), timeout=T_0N),
        "get_timeout_bad_unit": request(GET | TIMEOUT, frame(sv_101), timeout=T_BAD_UNIT),
        "search_item": request(SEARCH, frame(string_value("item"))),
        "search_everything": request(SEARCH, frame(b"")),
        "search_timeout_1m_chunked": request(
            SEARCH | TIMEOUT | CHUNKED, frame(string_value("- b")), timeout=T_1M, chunk=2
        ),
        "update_101": request(UPDATE, frame(seed_101)),
        "update_101_twice": request(UPDATE, frame(seed_101) + frame(fixture("order_unknown_field_6"))),
        "update_unknown_id": request(UPDATE, frame(seed_101) + frame(non_ascii)),
        "update_none": request(UPDATE, b""),
        "update_timeout_long": request(UPDATE | TIMEOUT, frame(seed_101), timeout=T_99999999H),
        "process_101_four_times_chunked": request(PROCESS | CHUNKED, frame(sv_101) * 4, chunk=3),
        "process_then_unknown": request(PROCESS, frame(sv_101) * 3 + frame(string_value("102"))),
        "process_empty_id": request(PROCESS, frame(sv_101) + frame(b"")),
        "unknown_method": request(UNKNOWN, frame(sv_101)),
    }
    for name, data in seeds.items():
        write("service_requests", name, data)
    (CORPUS / "service_orders").mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
    main()
