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
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# the peers live in ../shared (beside a checkout) or ../../shared (a worktree)
for d in "$ROOT/../shared/bench/peers" "$ROOT/../../shared/bench/peers"; do
  [ -z "${PEERS:-}" ] && [ -d "$d" ] && PEERS=$(cd "$d" && pwd)
done
PEERS=${PEERS:-$ROOT/../shared/bench/peers}
cd "$ROOT" || exit 1

RUNS=5
while getopts "r:" o; do
  case $o in r) RUNS=$OPTARG ;; *) sed -n '2,18p' "$0"; exit 2 ;; esac
done

PY=/usr/bin/python3
PGBIN=${AIO_PG_BIN:-/usr/lib/postgresql/15/bin}
export BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}

make -s all || exit 1
WORK=$(mktemp -d /tmp/aio-pg-bench.XXXXXX)
chmod 755 "$WORK"
RAW=$WORK/raw.txt
: > "$RAW"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  [ -f "$WORK/pg/data/postmaster.pid" ] &&
    as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate -w stop > /dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run LABEL CMD...: one run; its RESULT lines (tagged by workload) go to $RAW
run() {
  local label=$1; shift
  local out
  out=$(timeout -k 5 $((BENCH_TIMEOUT + 15)) "$@" 2>"$WORK/stderr.txt")
  printf '%s\n' "$out" | grep '^RESULT ' | while read -r line; do
    wl=$(printf '%s\n' "$line" | tr ' ' '\n' | sed -n 's/^wl=//p')
    echo "label=$wl/$label ${line#RESULT }" >> "$RAW"
  done
  printf '%s\n' "$out" | grep -q '^RESULT ' ||
    echo "label=w9/$label ok=0 err=$(head -c 200 "$WORK/stderr.txt" | tr -s ' \n\t' '___')" >> "$RAW"
}

field() { grep "^label=$1 " "$RAW" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
stats() {
  sort -g | awk '{v[NR]=$1} END{ if (NR==0) {print "- - -"; exit}
    m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; print m, v[1], v[NR] }'
}
median() { field "$1" "$2" | stats | cut -d' ' -f1; }
row() {  # LABEL UNIT
  local med mn mx oks
  read -r med mn mx < <(field "$1" rate | stats)
  oks=$(field "$1" ok | sort -u | tr '\n' ' ')
  printf '  %-24s %10s  [%s - %s] %-10s ok=%s\n' "$1" "$med" "$mn" "$mx" "$2" "$oks"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="-"||b=="-"||b==0) print "-"; else printf "%.2f", a/b }'; }

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -A trust -U app --no-sync > /dev/null || exit 1
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w -o "-p $PORT -k $WORK/pg \
  -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start > /dev/null || exit 1
printf '\\set n random(1, 1000)\nSELECT :n::int + 1;\n' > "$WORK/q.sql"
chmod 644 "$WORK/q.sql"

for i in $(seq "$RUNS"); do
  run aio lua5.4 bench/aio_pg.lua "$PORT"
  for f in uvloop asyncio; do run "asyncpg-$f" $PY "$PEERS/server/pg_asyncpg.py" $f "$PORT"; done
  tps=$("$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U app -n -c 10 -j 2 -T 5 -M prepared \
    -f "$WORK/q.sql" postgres 2>/dev/null | awk '/^tps/ {printf "%.0f", $3}')
  echo "label=w9/pgbench rate=${tps:-0} ok=$([ -n "$tps" ] && echo 1 || echo 0)" >> "$RAW"
done

echo "W9: 50,000 x SELECT \$1::int + 1, pool of 10, 64 tasks (queries/s; $RUNS rounds)"
for l in aio asyncpg-uvloop asyncpg-asyncio pgbench; do row w9/$l queries/s; done
a=$(median w9/aio rate)
echo "  ratios of medians: aio/asyncpg-uvloop $(ratio "$a" "$(median w9/asyncpg-uvloop rate)")" \
     " aio/asyncpg-asyncio $(ratio "$a" "$(median w9/asyncpg-asyncio rate)")" \
     " aio/pgbench $(ratio "$a" "$(median w9/pgbench rate)")"
echo "W9rows: 100,000 typed rows decoded (rows/s; $RUNS rounds)"
for l in aio asyncpg-uvloop asyncpg-asyncio; do row w9rows/$l rows/s; done
a=$(median w9rows/aio rate)
echo "  ratios of medians: aio/asyncpg-uvloop $(ratio "$a" "$(median w9rows/asyncpg-uvloop rate)")" \
     " aio/asyncpg-asyncio $(ratio "$a" "$(median w9rows/asyncpg-asyncio rate)")"
cp "$RAW" /tmp/aio-pg-bench-raw.txt
echo "raw RESULT lines: /tmp/aio-pg-bench-raw.txt"
