#!/usr/bin/env bash
# Redis benchmark W10 (../shared/bench/peers/run-server.sh): 200,000 SET/GET
# of 32-byte values from 50 clients, against one redis-server, each client
# in turn, RUNS rounds (default 3); medians, min-max, then ratios of medians.
#   redis-benchmark -c 50 -d 32        the server's limit without pipelining
#   redis-benchmark -c 50 -d 32 -P 16  the server's limit with pipelining
#   redis-py asyncio, and with uvloop  (../shared/bench/peers/server/redis_py.py)
#   node ioredis, enableAutoPipelining (bench/ioredis_bench.mjs)
#   aio                                (bench/aio_redis.lua)
# usage: bench/redis.sh [-r RUNS]
# Starts redis-server on 127.0.0.1 and a free port and stops it by PID.
# Needs redis-server (redis-benchmark), python3-redis, python3-uvloop, node
# with npm (installs ioredis into $PEER_NODE_DIR, default
# ~/.cache/aio-peer-node, once).
set -u
# bench_setup and what the scripts share (bench/lib.sh)
. "$(dirname "$0")/lib.sh"
bench_setup 3 "$@"
PY=/usr/bin/python3
N=200000; C=50

bench_start redis || exit 1
REDIS_PID=""
cleanup() {
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ND=${PEER_NODE_DIR:-$HOME/.cache/aio-peer-node}
if [ ! -d "$ND/node_modules/ioredis" ]; then
  echo "installing node ioredis into $ND" >&2
  mkdir -p "$ND" && (cd "$ND" && npm install --silent ioredis >/dev/null 2>&1)
fi
cp "$HERE/ioredis_bench.mjs" "$ND/"

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$WORK" > "$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

# redis-benchmark's mean of the SET and GET rates
rbench() {
  redis-benchmark -p "$PORT" -t set,get -n "$N" -c "$C" -d 32 -P "$1" --csv 2>/dev/null |
    awk -F'"' '/"(SET|GET)"/ {s += $4; n++} END {if (n) printf "%.0f", s / n}'
}

for i in $(seq "$RUNS"); do
  for pl in 1 16; do
    echo "label=redis-benchmark-P$pl rate=$(rbench $pl) ok=1" >> "$RAW"
  done
  run redis-py-asyncio $PY "$PEERS/server/redis_py.py" asyncio "$PORT" "$N" "$C"
  run redis-py-uvloop $PY "$PEERS/server/redis_py.py" uvloop "$PORT" "$N" "$C"
  run ioredis node "$ND/ioredis_bench.mjs" "$PORT" "$N" "$C"
  run aio lua5.4 bench/aio_redis.lua "$PORT" "$N" "$C"
done

echo "W10: $N SET/GET of 32 bytes from $C clients (ops/s; medians of $RUNS rounds [min - max])"
for l in redis-benchmark-P1 redis-benchmark-P16 redis-py-asyncio redis-py-uvloop ioredis aio; do
  row $l rate ops/s
done
a=$(median aio rate)
echo "  ratios of medians: aio/redis-benchmark $(ratio "$a" "$(median redis-benchmark-P1 rate)") (target 4)" \
     " aio/redis-py-uvloop $(ratio "$a" "$(median redis-py-uvloop rate)") (target 8)" \
     " aio/ioredis $(ratio "$a" "$(median ioredis rate)")" \
     " aio/redis-benchmark-P16 $(ratio "$a" "$(median redis-benchmark-P16 rate)")"
