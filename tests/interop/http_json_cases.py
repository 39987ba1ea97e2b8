"""The Rust server's HTTP/JSON API (src/gateway/) from Python's `requests`,
the most common HTTP client there is: every route, the JSON error object and
grpc-gateway's status codes, NDJSON streams, and bad input getting a 4xx.

Usage: http_json_cases.py --label L --base http://127.0.0.1:PORT [--summary F]
"""

import json
import sys
import uuid

import requests

from harness import Suite, arguments

suite = Suite()
BASE = None
TIMEOUT = 30


def url(path):
    return BASE + path


def error_of(response, http, status):
    assert response.status_code == http, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert error["status"] == status, error
    assert error["request_id"] == response.headers["x-request-id"], error
    return error


@suite.case
def get_order_101():
    r = requests.get(url("/v1/orders/101"), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    order = r.json()
    assert order["id"] == "101" and order["items"] == ["Item - A", "Item - B"], order
    assert order["price"] == 1000.0 and order["destination"] == "Seoul", order


@suite.case
def missing_order_is_404_with_the_callers_request_id():
    r = requests.get(url("/v1/orders/nope"), headers={"x-request-id": "py-404"}, timeout=TIMEOUT)
    error = error_of(r, 404, "NOT_FOUND")
    assert error["code"] == 5 and error["request_id"] == "py-404", error


@suite.case
def add_then_get_then_search_as_ndjson():
    item = "Python kettle " + uuid.uuid4().hex[:8]
    r = requests.post(url("/v1/orders"), json={"items": [item], "price": 9.5, "destination": "Lima"},
                      timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    new_id = r.json()["id"]
    assert r.headers["location"] == "/v1/orders/" + new_id
    assert requests.get(url("/v1/orders/" + new_id), timeout=TIMEOUT).json()["items"] == [item]
    with requests.get(url("/v1/orders"), params={"q": item.upper()}, stream=True, timeout=TIMEOUT) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        found = [json.loads(line) for line in r.iter_lines() if line]
    assert [o["id"] for o in found] == [new_id], found


@suite.case
def invalid_order_lists_field_violations():
    r = requests.post(url("/v1/orders"), json={"items": [], "price": -1}, timeout=TIMEOUT)
    error = error_of(r, 400, "INVALID_ARGUMENT")
    violations = error["details"][0]["fieldViolations"]
    assert [v["field"] for v in violations] == ["items", "price"], violations


@suite.case
def bad_json_wrong_types_unknown_fields_are_400():
    for body, says in [('{"items":', "not valid JSON"), ('{"items":["a"],"price":"x"}', "price"),
                       ('{"items":["a"],"colour":1}', "colour")]:
        r = requests.post(url("/v1/orders"), data=body, headers={"content-type": "application/json"},
                          timeout=TIMEOUT)
        error = error_of(r, 400, "INVALID_ARGUMENT")
        assert says in error["message"], (body, error)


@suite.case
def wrong_method_and_content_type():
    r = requests.delete(url("/v1/orders/101"), timeout=TIMEOUT)
    assert r.status_code == 405 and r.headers["allow"] == "GET", (r.status_code, r.headers)
    r = requests.post(url("/v1/orders"), data="items=a", headers={"content-type": "text/plain"},
                      timeout=TIMEOUT)
    assert r.status_code == 415, (r.status_code, r.text)


@suite.case
def update_all_or_nothing_and_process():
    r = requests.patch(url("/v1/orders"), json=[{"id": "101", "items": ["x"]}, {"id": "ghost", "items": ["y"]}],
                       timeout=TIMEOUT)
    error_of(r, 404, "NOT_FOUND")
    assert requests.get(url("/v1/orders/101"), timeout=TIMEOUT).json()["items"] == ["Item - A", "Item - B"]
    r = requests.post(url("/v1/shipments:process"), json=["101"], timeout=TIMEOUT)
    shipments = [json.loads(line) for line in r.text.splitlines()]
    assert shipments[0]["id"] == "cmb - Seoul" and shipments[0]["ordersList"][0]["id"] == "101", shipments


def main():
    global BASE
    parser = arguments(__doc__)
    parser.add_argument("--base", required=True, help="http://host:port of the Rust server")
    args = parser.parse_args()
    BASE = args.base.rstrip("/")
    return suite.run(args.label, args.summary, args.only)


if __name__ == "__main__":
    sys.exit(main())
