#!/usr/bin/env bash
# PostgreSQL benchmark W9: aio.pg beside its peers, against one throwaway
# server, in the same run.
#
# usage: bench/pg.sh [-r RUNS]
#   W9      50,000 x `SELECT $1::int + 1` through a pool of 10 connections
#           from 64 tasks: aio (bench/aio_pg.lua), asyncpg on asyncio and
#           on uvloop (../shared/bench/peers/server/pg_asyncpg.py), and
#           pgbench (C, 10 clients, 2 threads, prepared, 5 s: the limit);
#           queries/s
#   W9rows  100,000 rows of (int, text, numeric, bool, timestamptz) in one
#           query, decoded: aio and asyncpg; rows/s
# Each round runs every client once, one after another, RUNS rounds
# (default 5); the table gives medians and min-max, then ratios of medians.
# Starts PostgreSQL 15 (initdb in a temporary directory, fsync off, as the
# `postgres` user when run as root) on a free port of 127.0.0.1 and stops
# it by PID. Needs postgresql, python3-asyncpg, python3-uvloop.
set -u
# bench_setup and what the scripts share (bench/lib.sh)
. "$(dirname "$0")/lib.sh"
bench_setup 5 "$@"

PY=/usr/bin/python3
PGBIN=${AIO_PG_BIN:-/usr/lib/postgresql/15/bin}

bench_start pg || exit 1
chmod 755 "$WORK"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  [ -f "$WORK/pg/data/postmaster.pid" ] &&
    as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate -w stop > /dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# runs LABEL CMD...: one run of a client printing a RESULT line per
# workload (w9, w9rows); each goes to $RAW tagged WL/LABEL
runs() {
  local label=$1 out wl line; shift
  out=$(timeout -k 5 $((BENCH_TIMEOUT + 15)) "$@" 2>"$WORK/stderr.txt")
  for wl in w9 w9rows; do
    line=$(printf '%s\n' "$out" | grep "^RESULT .* wl=$wl " | tail -1)
    [ -z "$line" ] && line="RESULT ok=0 err=$(head -c 200 "$WORK/stderr.txt" | tr -s ' \n\t' '___')"
    echo "label=$wl/$label ${line#RESULT }" >> "$RAW"
  done
}

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -A trust -U app --no-sync > /dev/null || exit 1
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w -o "-p $PORT -k $WORK/pg \
  -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start > /dev/null || exit 1
printf '\\set n random(1, 1000)\nSELECT :n::int + 1;\n' > "$WORK/q.sql"
chmod 644 "$WORK/q.sql"

for i in $(seq "$RUNS"); do
  runs aio lua5.4 bench/aio_pg.lua "$PORT"
  for f in uvloop asyncio; do runs "asyncpg-$f" $PY "$PEERS/server/pg_asyncpg.py" $f "$PORT"; done
  tps=$("$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U app -n -c 10 -j 2 -T 5 -M prepared \
    -f "$WORK/q.sql" postgres 2>/dev/null | awk '/^tps/ {printf "%.0f", $3}')
  echo "label=w9/pgbench rate=${tps:-0} ok=$([ -n "$tps" ] && echo 1 || echo 0)" >> "$RAW"
done

echo "W9: 50,000 x SELECT \$1::int + 1, pool of 10, 64 tasks (queries/s; $RUNS rounds)"
for l in aio asyncpg-uvloop asyncpg-asyncio pgbench; do row w9/$l rate queries/s; done
a=$(median w9/aio rate)
echo "  ratios of medians: aio/asyncpg-uvloop $(ratio "$a" "$(median w9/asyncpg-uvloop rate)")" \
     " aio/asyncpg-asyncio $(ratio "$a" "$(median w9/asyncpg-asyncio rate)")" \
     " aio/pgbench $(ratio "$a" "$(median w9/pgbench rate)")"
echo "W9rows: 100,000 typed rows decoded (rows/s; $RUNS rounds)"
for l in aio asyncpg-uvloop asyncpg-asyncio; do row w9rows/$l rate rows/s; done
a=$(median w9rows/aio rate)
echo "  ratios of medians: aio/asyncpg-uvloop $(ratio "$a" "$(median w9rows/asyncpg-uvloop rate)")" \
     " aio/asyncpg-asyncio $(ratio "$a" "$(median w9rows/asyncpg-asyncio rate)")"
cp "$RAW" /tmp/aio-pg-bench-raw.txt
echo "raw RESULT lines: /tmp/aio-pg-bench-raw.txt"
