#!/usr/bin/env bash
# The long soak (make soak): the release server on a loopback port with a
# durable store, and `loadgen soak` against it for SOAK_SECONDS (default 60):
# all five RPCs at random over many connections, random deadlines and
# cancels, every answer and the final store checked, server RSS before and
# after. Bounded in time; stops the server it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${SOAK_SECONDS:-60}
connections=${SOAK_CONNECTIONS:-16}
workers=${SOAK_WORKERS:-8}

cargo build --release --locked --bins -p order-management -p loadgen
work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

target/release/server --listen 127.0.0.1:0 --data-dir "$work/data" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
    addr=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$work/server.log" | head -1)
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "${addr:-}" ] || { cat "$work/server.log"; echo "soak: the server did not start" >&2; exit 1; }

echo "soak: ${seconds}s, ${connections} connections x ${workers} workers against $addr (pid $server_pid)"
timeout $((seconds + 120)) target/release/loadgen --server "http://$addr" \
    soak --seconds "$seconds" --connections "$connections" --workers "$workers" \
    --server-pid "$server_pid" --seed "${SOAK_SEED:-$RANDOM}"
