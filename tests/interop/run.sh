#!/usr/bin/env bash
# Interop proof against the reference implementations (Python grpcio and
# protobuf from PyPI, versions pinned in requirements.txt), both directions:
#
#   1. a virtual environment in tests/interop/.venv with the pinned packages
#      (binary wheels only; a failed install fails the run, never skips it);
#   2. Python stubs generated from proto/order.proto by grpcio-tools into
#      tests/interop/.gen;
#   3. wire fixtures: make_fixtures.py regenerates tests/fixtures/ into a temp
#      folder, which must equal the committed one; then the wire_fixtures
#      tests (prost against those bytes; tests/it/wire_fixtures.rs);
#   4. Python client -> Rust server: peer_client.py against target/debug/server,
#      and http_json_cases.py (`requests`) against its HTTP/JSON API;
#   5. Python client -> Python server: the same cases against peer_server.py,
#      the control that shows the peer has our semantics;
#   6. Rust client -> Python server: our client binary (rust_cli_cases.py) and
#      tests/it/interop_python_peer.rs (its #[ignore]d tests, run with
#      cargo test --test it -- --ignored interop_python_peer::).
#
# Ends with `interop: N passed, M failed`; exits 1 if anything failed.
# Usage: bash tests/interop/run.sh [--write-fixtures]
#   --write-fixtures  rewrite tests/fixtures/ from make_fixtures.py first (then
#                     review and commit the diff).
# Environment: PYTHON (default python3), CARGO (default cargo).
# Servers listen on 127.0.0.1 ephemeral ports only; every process started
# here is killed on exit, and every step is bounded by a timeout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/interop"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
CARGO="${CARGO:-cargo}"
VENV="$HERE/.venv"
GEN="$HERE/.gen"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WRITE_FIXTURES=0
for arg in "$@"; do
    case "$arg" in
        --write-fixtures) WRITE_FIXTURES=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "interop: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the work tree
export PYTHONUNBUFFERED=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

WORK="$(mktemp -d "${TMPDIR:-/tmp}/order-interop.XXXXXX")"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
    echo "interop: FAILED: $*" >&2
    echo "interop: 0 passed, 1 failed"
    exit 1
}

section() { echo; echo "== interop: $*"; }

# ---------- results ----------

TOTAL_PASSED=0
TOTAL_FAILED=0
SUMMARY=()

# record LABEL PASSED FAILED
record() {
    TOTAL_PASSED=$((TOTAL_PASSED + $2))
    TOTAL_FAILED=$((TOTAL_FAILED + $3))
    SUMMARY+=("$(printf '  %-38s %3d passed, %d failed' "$1" "$2" "$3")")
}

# record_summary LABEL FILE: a Python suite's `PASSED FAILED` file; a suite
# that crashed before writing it counts as one failure.
record_summary() {
    local passed failed
    if [[ -s "$2" ]] && read -r passed failed <"$2"; then
        record "$1" "$passed" "$failed"
    else
        echo "interop: $1 wrote no summary (it crashed or timed out)"
        record "$1" 0 1
    fi
}

# record_cargo LABEL EXIT_CODE LOG: adds up cargo test's `test result:` lines.
record_cargo() {
    local passed=0 failed=0 line n
    while read -r line; do
        n=$(grep -Eo "[0-9]+ passed" <<<"$line" | grep -Eo "[0-9]+" || true)
        passed=$((passed + ${n:-0}))
        n=$(grep -Eo "[0-9]+ failed" <<<"$line" | grep -Eo "[0-9]+" || true)
        failed=$((failed + ${n:-0}))
    done < <(grep -E '^test result: ' "$3" || true)
    if [[ "$2" != 0 && "$failed" == 0 ]]; then
        echo "interop: $1: cargo exited $2 (build failure or timeout)"
        failed=1
    fi
    if [[ "$passed" == 0 && "$failed" == 0 ]]; then
        echo "interop: $1 ran no test"
        failed=1
    fi
    record "$1" "$passed" "$failed"
}

# ---------- processes ----------

# start_bg DIR LOG CMD...: starts CMD in DIR in the background, inside a
# `timeout` so that it ends even if this script is killed without its trap.
start_bg() {
    local dir="$1" log="$2"
    shift 2
    (cd "$dir" && exec timeout --signal=TERM 1800 "$@") >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

stop_bg() {
    local pid="$1"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# wait_listening PID LOG: prints the address from the `listening on ADDR` line.
wait_listening() {
    local pid="$1" log="$2" addr
    for _ in $(seq 300); do
        addr=$(grep -Eo 'listening on [^ ]+' "$log" 2>/dev/null | head -n1 | sed 's/^listening on //' || true)
        if [[ -n "$addr" ]]; then
            echo "$addr"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "interop: the server exited before listening:" >&2
            tail -n 20 "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "interop: the server did not listen within 30 s:" >&2
    tail -n 20 "$log" >&2
    return 1
}

PY_ENV=(env "PYTHONPATH=$GEN:$HERE")

start_python_peer() { # NAME: sets PEER_PID, PEER_ADDR
    start_bg "$WORK" "$WORK/$1.log" "${PY_ENV[@]}" "$VENV/bin/python" "$HERE/peer_server.py" \
        --listen 127.0.0.1:0 --test-hooks
    PEER_PID=$LAST_PID
    PEER_ADDR=$(wait_listening "$PEER_PID" "$WORK/$1.log") || die "the Python peer server did not start"
    echo "python peer server ($1) on $PEER_ADDR"
}

# ---------- 1. Python environment ----------

section "Python environment ($VENV)"
command -v "$PYTHON" >/dev/null 2>&1 ||
    die "no $PYTHON on PATH; the interop run needs Python >= 3.10 (set PYTHON=...)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$("$PYTHON" --version 2>&1) is too old: grpcio needs Python >= 3.10"
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
STAMP="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1) python $PY_VERSION"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.interop-stamp" 2>/dev/null)" != "$STAMP" ]]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" ||
        die "cannot create a virtual environment with $PYTHON (on Debian: apt-get install python3-venv)"
    echo "installing the pinned packages from PyPI (requirements.txt)"
    if ! timeout 900 "$VENV/bin/python" -m pip install --no-input --timeout 60 \
        --only-binary=:all: --no-deps -r "$HERE/requirements.txt"; then
        rm -rf "$VENV"
        die "cannot install the pinned Python packages (tests/interop/requirements.txt) from PyPI; the interop run needs grpcio, grpcio-tools and protobuf and does not skip without them"
    fi
    "$VENV/bin/python" -m pip check || die "the pinned Python packages are inconsistent (pip check)"
    echo "$STAMP" >"$VENV/.interop-stamp"
fi
"$VENV/bin/python" -c 'import grpc, grpc_tools, google.protobuf as p; print("grpcio", grpc.__version__, "/ protobuf", p.__version__)' ||
    die "the virtual environment cannot import grpcio/protobuf; delete $VENV and rerun"

# ---------- 2. stubs ----------

section "Python stubs from proto/order.proto ($GEN)"
rm -rf "$GEN"
mkdir -p "$GEN"
# order.proto imports the vendored google/api protos (its google.api.http
# options): their modules too, or `import order_pb2` fails.
timeout 120 "$VENV/bin/python" -m grpc_tools.protoc -I "$ROOT/proto" \
    --python_out="$GEN" --grpc_python_out="$GEN" "$ROOT/proto/order.proto" \
    "$ROOT/proto/google/api/http.proto" "$ROOT/proto/google/api/annotations.proto" ||
    die "grpcio-tools could not generate the stubs"
ls "$GEN"

# ---------- 3a. fixtures: regenerate and compare ----------

section "wire fixtures: regenerate with Python protobuf and compare"
# What tests/fixtures/ holds besides make_fixtures.py's files: other tests'
# data (store-v1/, store-v2/: data files written by the store's formats 1 and 2). Neither
# compared nor deleted here.
NOT_FROM_MAKE_FIXTURES=(store-v1 store-v2)
DIFF_EXCLUDES=()
for name in "${NOT_FROM_MAKE_FIXTURES[@]}"; do
    DIFF_EXCLUDES+=("--exclude=$name")
done
if [[ "$WRITE_FIXTURES" == 1 ]]; then
    for entry in "$ROOT"/tests/fixtures/*; do
        [[ " ${NOT_FROM_MAKE_FIXTURES[*]} " == *" $(basename "$entry") "* ]] || rm -rf "$entry"
    done
    timeout 120 "${PY_ENV[@]}" "$VENV/bin/python" "$HERE/make_fixtures.py" --out "$ROOT/tests/fixtures" ||
        die "make_fixtures.py failed"
fi
if timeout 120 "${PY_ENV[@]}" "$VENV/bin/python" "$HERE/make_fixtures.py" --out "$WORK/fixtures" &&
    diff -r "${DIFF_EXCLUDES[@]}" "$ROOT/tests/fixtures" "$WORK/fixtures" >"$WORK/fixtures.diff" 2>&1; then
    echo "PASS fixtures: tests/fixtures/ is exactly what make_fixtures.py writes"
    record "fixtures regenerate identically" 1 0
else
    echo "FAIL fixtures: tests/fixtures/ differs from what make_fixtures.py writes:"
    head -n 40 "$WORK/fixtures.diff"
    echo "(rerun with --write-fixtures, review the diff, commit it)"
    record "fixtures regenerate identically" 0 1
fi

# ---------- build ----------

section "build (cargo build --bins; the integration test binary)"
timeout 1800 "$CARGO" build --locked --bins || die "cargo build --bins failed"
timeout 1800 "$CARGO" test --locked --no-run --test it ||
    die "cannot build the integration tests (tests/it)"
SERVER_BIN="$TARGET_DIR/debug/server"
CLIENT_BIN="$TARGET_DIR/debug/client"
[[ -x "$SERVER_BIN" && -x "$CLIENT_BIN" ]] || die "no $SERVER_BIN or $CLIENT_BIN after the build"

# ---------- 3b. prost against the fixtures ----------

section "wire fixtures: prost (cargo test --test it wire_fixtures::)"
rc=0
timeout 900 "$CARGO" test --locked --test it wire_fixtures:: 2>&1 | tee "$WORK/wire_fixtures.log" || rc=$?
record_cargo "prost vs fixtures (wire_fixtures.rs)" "$rc" "$WORK/wire_fixtures.log"

# ---------- 4. Python client -> Rust server ----------

section "Python client -> Rust server"
SERVER_FLAGS=()
SERVER_HELP="$("$SERVER_BIN" --help)"
if grep -q -- '--in-memory' <<<"$SERVER_HELP"; then
    SERVER_FLAGS=(--in-memory)
elif grep -q -- '--data-dir' <<<"$SERVER_HELP"; then
    SERVER_FLAGS=(--data-dir "$WORK/rust-data")
fi
# The server reads ORDER_* variables: run it with none of the caller's.
# (env takes its -u options before any NAME=VALUE: after one, `-u` would
# be read as the command to run.)
RUST_ENV=(env)
while read -r name; do
    RUST_ENV+=(-u "$name")
done < <(compgen -e | grep '^ORDER_' || true)
RUST_ENV+=(RUST_LOG=info)
mkdir -p "$WORK/rust-cwd"
# From an empty folder: a server without --in-memory/--data-dir may write
# its data under the current directory.
start_bg "$WORK/rust-cwd" "$WORK/rust-server.log" "${RUST_ENV[@]}" "$SERVER_BIN" \
    --listen 127.0.0.1:0 "${SERVER_FLAGS[@]}"
RUST_PID=$LAST_PID
RUST_ADDR=$(wait_listening "$RUST_PID" "$WORK/rust-server.log") || die "the Rust server did not start"
echo "rust server on $RUST_ADDR (flags: ${SERVER_FLAGS[*]:-none})"
timeout 300 "${PY_ENV[@]}" "$VENV/bin/python" "$HERE/peer_client.py" \
    --label python-client-rust-server --peer rust --target "$RUST_ADDR" \
    --server-log "$WORK/rust-server.log" --summary "$WORK/py-rust.summary" || true
record_summary "python client -> rust server" "$WORK/py-rust.summary"
# The same server's HTTP/JSON API, from Python's `requests`.
timeout 300 "${PY_ENV[@]}" "$VENV/bin/python" "$HERE/http_json_cases.py" \
    --label python-requests-rust-http-json --base "http://$RUST_ADDR" \
    --summary "$WORK/py-http.summary" || true
record_summary "python requests -> rust HTTP/JSON API" "$WORK/py-http.summary"
stop_bg "$RUST_PID"

# ---------- 5. Python client -> Python server (control) ----------

section "Python client -> Python server (control: the peer has our semantics)"
start_python_peer python-peer-control
timeout 300 "${PY_ENV[@]}" "$VENV/bin/python" "$HERE/peer_client.py" \
    --label python-client-python-server --peer python --target "$PEER_ADDR" \
    --summary "$WORK/py-py.summary" || true
record_summary "python client -> python server" "$WORK/py-py.summary"
stop_bg "$PEER_PID"

# ---------- 6. Rust client -> Python server ----------

section "Rust client binary -> Python server"
start_python_peer python-peer-cli
timeout 300 "${PY_ENV[@]}" "$VENV/bin/python" "$HERE/rust_cli_cases.py" \
    --label rust-client-python-server --client "$CLIENT_BIN" --url "http://$PEER_ADDR" \
    --summary "$WORK/rs-cli.summary" || true
record_summary "rust client binary -> python server" "$WORK/rs-cli.summary"
stop_bg "$PEER_PID"

section "Rust tonic client -> Python server (cargo test --test it -- --ignored interop_python_peer::)"
start_python_peer python-peer-tonic
rc=0
# --ignored runs only #[ignore]d tests, the filter only this module's.
INTEROP_PEER_URL="http://$PEER_ADDR" timeout 900 "$CARGO" test --locked \
    --test it -- --ignored interop_python_peer:: 2>&1 | tee "$WORK/interop_python_peer.log" || rc=$?
record_cargo "rust tonic client -> python server" "$rc" "$WORK/interop_python_peer.log"
stop_bg "$PEER_PID"

# ---------- result ----------

echo
echo "== interop: summary (grpcio/protobuf versions: tests/interop/requirements.txt)"
printf '%s\n' "${SUMMARY[@]}"
echo "interop: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
[[ "$TOTAL_FAILED" == 0 ]]
