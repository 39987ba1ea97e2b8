#!/usr/bin/env bash
# Two server replicas sharing one local PostgreSQL database, for trying the
# PostgreSQL store by hand:
#
#   bash examples/cluster.sh            # replicas on :50051 and :50052
#   REPLICAS=3 BASE_PORT=6000 bash examples/cluster.sh
#
# PostgreSQL is started the way the tests start it: initdb into a temporary
# directory, listening only on a Unix socket there (no TCP, no network),
# as the `postgres` user when run as root. Needs PostgreSQL's server
# binaries (Debian: `apt-get install -y postgresql`; or PG_BIN=dir).
# Ctrl-C stops the replicas and the database and removes the directory.
#
# The replicas get the database as `--database-url URL`
# (ORDER_DATABASE_URL); `server migrate` is run once first.
set -euo pipefail
cd "$(dirname "$0")/.."

REPLICAS=${REPLICAS:-2}
BASE_PORT=${BASE_PORT:-50051}

bin=${PG_BIN:-}
if [[ -z $bin ]]; then
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [[ -z $bin || ! -x $bin/initdb ]]; then
    bin=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
fi
if [[ ! -x $bin/initdb || ! -x $bin/pg_ctl ]]; then
    echo "cluster.sh: no PostgreSQL server found: apt-get install -y postgresql (or set PG_BIN)" >&2
    exit 1
fi

dir=$(mktemp -d /tmp/order-cluster-XXXXXX)
as_pg=()
if [[ $(id -u) == 0 ]]; then
    chown postgres:postgres "$dir"
    as_pg=(runuser -u postgres --)
fi
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories='$dir'" start >/dev/null
"${as_pg[@]}" "$bin/psql" -h "$dir" -U postgres -q -c "CREATE DATABASE orders ENCODING 'UTF8' TEMPLATE template0"
url="postgres://postgres@${dir//\//%2F}/orders"
echo "PostgreSQL: $url (log: $dir/postgres.log)"

cargo build --release --bin server
server=target/release/server
if ! "$server" --help 2>&1 | grep -q -- '--database-url'; then
    echo "cluster.sh: this server has no --database-url flag yet; PostgreSQL stays up for" >&2
    echo "  other uses until Ctrl-C: $url" >&2
    sleep infinity &
    pids+=($!)
    wait
fi
"$server" migrate --database-url "$url"
for ((i = 0; i < REPLICAS; i++)); do
    port=$((BASE_PORT + i))
    "$server" --database-url "$url" --listen "127.0.0.1:$port" &
    pids+=($!)
    echo "replica $i: 127.0.0.1:$port (pid $!)"
done
echo "Ctrl-C stops everything."
wait
