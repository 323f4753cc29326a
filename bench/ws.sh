#!/usr/bin/env bash
# WebSocket benchmarks: aio beside its peers, in the same run.
#
# usage: bench/ws.sh [-r RUNS] [w8] [idle]
#   W8    100 connections x 1,000 echoed 64-byte messages, as W8 of
#         ../shared/bench/peers/run-server.sh: the same node `ws` client
#         (peers/server/ws_client.mjs) against node `ws`, aiohttp + uvloop,
#         Python websockets + uvloop and aio (bench/aio_ws.lua server);
#         msgs/s, and each server's CPU time per message. Also aio's own
#         client against the aio and node ws servers.
#   idle  RSS per idle WebSocket of an aio server holding IDLE_N (10,000)
#         open connections (bench/aio_ws.lua idle).
# Each round runs every client once, one after another, RUNS rounds
# (default 5); the table gives medians and min-max, then ratios of medians.
# Starts every server on 127.0.0.1 and a free port and stops it by PID.
# Needs node with npm (installs `ws` into $PEER_NODE_DIR, default
# ~/.cache/aio-peer-node, once), python3-aiohttp, python3-websockets,
# python3-uvloop.
set -u
# bench_setup and what the scripts share (bench/lib.sh)
. "$(dirname "$0")/lib.sh"
bench_setup 5 "$@"
WLS=${ARGS[*]:-"w8 idle"}
IDLE_N=${IDLE_N:-10000}
PY=/usr/bin/python3
bench_start ws || exit 1
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ " $WLS " == *" w8 "* ]]; then
  ND=${PEER_NODE_DIR:-$HOME/.cache/aio-peer-node}
  if [ ! -d "$ND/node_modules/ws" ]; then
    echo "installing node ws into $ND" >&2
    mkdir -p "$ND" && (cd "$ND" && npm install --silent --no-audit --no-fund ws >/dev/null 2>&1)
  fi
  if [ ! -d "$ND/node_modules/ws" ]; then echo "W8 skipped: npm could not install ws" >&2; exit 1; fi
  cp "$PEERS/server/ws_server.mjs" "$PEERS/server/ws_client.mjs" "$ND/"
  P1=$(free_port); P2=$(free_port); P3=$(free_port); P4=$(free_port)
  node "$ND/ws_server.mjs" "$P1" > "$WORK/node.log" 2>&1 & PIDS+=($!); S1=$!
  $PY "$PEERS/server/ws_python.py" websockets "$P2" > "$WORK/websockets.log" 2>&1 & PIDS+=($!); S2=$!
  $PY "$PEERS/server/ws_python.py" aiohttp "$P3" > "$WORK/aiohttp.log" 2>&1 & PIDS+=($!); S3=$!
  lua5.4 bench/aio_ws.lua server "$P4" > "$WORK/aio.log" 2>&1 & PIDS+=($!); S4=$!
  for p in $P1 $P2 $P3 $P4; do wait_port "$p" || exit 1; done
  TCK=$(getconf CLK_TCK)
  cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
  # serve LABEL PID URL CLIENT...: one run, with the server's CPU time per
  # message (microseconds, user + system) added to its line
  serve() {
    local label=$1 pid=$2 c0 c1; shift 2
    c0=$(cpu "$pid"); run "$label" "$@"; c1=$(cpu "$pid")
    sed -i '$ s/$/ server_us_per_msg='"$(awk -v d=$((c1 - c0)) -v t="$TCK" 'BEGIN{printf "%.1f", d / t * 1e6 / 100000}')"'/' "$RAW"
  }
  for i in $(seq "$RUNS"); do
    for trio in "node-ws:$P1:$S1" "websockets-uvloop:$P2:$S2" "aiohttp-uvloop:$P3:$S3" "aio:$P4:$S4"; do
      IFS=: read -r label port pid <<< "$trio"
      serve "w8/$label" "$pid" node "$ND/ws_client.mjs" "ws://127.0.0.1:$port/" 100 1000
    done
    serve w8/aio-client-aio "$S4" lua5.4 bench/aio_ws.lua client "ws://127.0.0.1:$P4/" 100 1000
    serve w8/aio-client-node-ws "$S1" lua5.4 bench/aio_ws.lua client "ws://127.0.0.1:$P1/" 100 1000
  done
  echo "W8: WebSocket echo, 100 connections x 1,000 round trips of 64 bytes, node ws client (msgs/s; $RUNS rounds)"
  for l in node-ws aiohttp-uvloop websockets-uvloop aio; do
    row "w8/$l" rate msgs/s
    echo "      server CPU per message: $(median "w8/$l" server_us_per_msg) us"
  done
  a=$(median w8/aio rate)
  echo "  ratios of medians: aio/node-ws $(ratio "$a" "$(median w8/node-ws rate)")" \
       " aio/aiohttp-uvloop $(ratio "$a" "$(median w8/aiohttp-uvloop rate)")" \
       " aio/websockets-uvloop $(ratio "$a" "$(median w8/websockets-uvloop rate)")"
  echo "  server CPU per message, node-ws/aio: $(ratio "$(median w8/node-ws server_us_per_msg)" "$(median w8/aio server_us_per_msg)")" \
       " aiohttp-uvloop/aio: $(ratio "$(median w8/aiohttp-uvloop server_us_per_msg)" "$(median w8/aio server_us_per_msg)")" \
       " websockets-uvloop/aio: $(ratio "$(median w8/websockets-uvloop server_us_per_msg)" "$(median w8/aio server_us_per_msg)")"
  echo "W8 with aio's client (bench/aio_ws.lua client) instead of node's:"
  for l in aio-client-aio aio-client-node-ws; do row "w8/$l" rate msgs/s; done
  echo "  ratio of medians: aio server/node-ws server $(ratio "$(median w8/aio-client-aio rate)" "$(median w8/aio-client-node-ws rate)")"
  cleanup
fi

if [[ " $WLS " == *" idle "* ]]; then
  for i in $(seq "$RUNS"); do
    run ws_idle lua5.4 bench/aio_ws.lua idle "$IDLE_N"
  done
  echo "aio server holding $IDLE_N idle WebSockets ($RUNS rounds)"
  read -r med mn mx < <(field ws_idle bytes_per_conn | stats)
  read -r rss _ _ < <(field ws_idle server_rss_kb | stats)
  echo "  RSS per idle WebSocket: $med bytes [$mn - $mx]; server RSS $rss KiB; ok=$(field ws_idle ok | sort -u | tr '\n' ' ')"
fi
echo "raw RESULT lines: $RAW"
