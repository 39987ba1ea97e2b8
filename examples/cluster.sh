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

cargo build --release --bin server --bin client
server=target/release/server
client=target/release/client
"$server" migrate --database-url "$url"
for ((i = 0; i < REPLICAS; i++)); do
    port=$((BASE_PORT + i))
    "$server" --database-url "$url" --listen "127.0.0.1:$port" 2>"$dir/replica-$i.log" &
    pids+=($!)
    echo "replica $i: 127.0.0.1:$port (pid $!, log $dir/replica-$i.log)"
done
for ((i = 0; i < REPLICAS; i++)); do
    for _ in $(seq 100); do
        grep -q "listening on" "$dir/replica-$i.log" && break
        sleep 0.1
    done
    grep -q "listening on" "$dir/replica-$i.log" || { cat "$dir/replica-$i.log"; exit 1; }
done

# The demonstration: a write through one replica, read back through the other.
first=http://127.0.0.1:$BASE_PORT
last=http://127.0.0.1:$((BASE_PORT + REPLICAS - 1))
id=cluster-$(date +%s)
echo "+ client --server $first add --id $id ..."
"$client" --server "$first" add --id "$id" --item "Google Pixel 3A" --price 1800 --destination "Mountain View, CA"
echo "+ client --server $last get $id"
"$client" --server "$last" get "$id"
echo "+ client --server $last search pixel"
"$client" --server "$last" search pixel

if [[ ${CLUSTER_DEMO_ONLY:-0} == 1 ]]; then
    exit 0
fi
echo "Ctrl-C stops everything."
wait
