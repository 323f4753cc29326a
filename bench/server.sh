#!/usr/bin/env bash
# W7, the HTTP server benchmark: aio (bench/aio_server.lua) beside the W7
# peers of ../shared/bench/peers/run-server.sh in one session, with the
# same wrk command: nginx `return 200` (the limit), nginx + lua
# content_by_lua (OpenResty style), node http, aiohttp.web + uvloop.
#
# usage: bench/server.sh [-r RUNS]    (from the repository root)
#   Each round runs `wrk -t1 -c64 -d5s` against every server for GET /
#   and GET /json, one after the other; RUNS rounds (default 3); prints
#   medians [min-max] and aio's ratio to each peer. Then aio.workers(2)
#   with reuse_port, and aio's RSS per idle keep-alive connection with
#   10,000 open (bench/idle_clients.lua).
# Starts every server on 127.0.0.1 on free ports and stops each by PID.
# Needs nginx + libnginx-mod-http-lua, node, python3-aiohttp,
# python3-uvloop, wrk.
set -u
# bench_setup and what the scripts share (bench/lib.sh)
. "$(dirname "$0")/lib.sh"
bench_setup 3 "$@"
PY=/usr/bin/python3
IDLE=${IDLE:-10000}
bench_start server || exit 1
W=$WORK; chmod 755 "$W"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT; trap 'exit 130' INT TERM
start() { "$@" >>"$W/server.log" 2>&1 & PIDS+=($!); }
record() { echo "label=$1 $2" >> "$RAW"; }
med() { field "$1" "$2" | stats | awk '$1 == "-" { print "-"; next } { printf "%.0f [%.0f-%.0f]\n", $1, $2, $3 }'; }
rate() { wrk -t1 -c64 -d5s "$1" 2>/dev/null | awk '/Requests\/sec/ {print $2}'; }

P1=$(free_port); P2=$(free_port); P3=$(free_port); P4=$(free_port); PA=$(free_port)
mkdir -p "$W/ngx"
cat > "$W/ngx/nginx.conf" <<NGX
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1; daemon off; pid $W/ngx/nginx.pid; error_log $W/ngx/error.log warn;
events { worker_connections 16384; }
http {
  access_log off; keepalive_requests 1000000; client_body_temp_path $W/ngx/body;
  server { listen 127.0.0.1:$P1;
    location = /json { default_type application/json; return 200 '{"message":"Hello, World!"}'; }
    location / { default_type text/plain; return 200 "Hello, World!"; } }
  server { listen 127.0.0.1:$P2;
    location = /json { default_type application/json; content_by_lua_block { ngx.print('{"message":"Hello, World!"}') } }
    location / { default_type text/plain; content_by_lua_block { ngx.print("Hello, World!") } } }
}
NGX
start /usr/sbin/nginx -c "$W/ngx/nginx.conf" -p "$W/ngx"
start node "$PEERS/server/hello_node.mjs" "$P3"
start $PY "$PEERS/server/hello_aiohttp.py" "$P4" uvloop
start lua5.4 bench/aio_server.lua "$PA"
for p in $P1 $P2 $P3 $P4 $PA; do wait_port "$p" || exit 1; done
SERVERS="aio:$PA nginx:$P1 nginx+lua:$P2 node-http:$P3 aiohttp+uvloop:$P4"
for i in $(seq 1 "$RUNS"); do
  for pair in $SERVERS; do
    for path in / /json; do
      record "w7${path%/}/${pair%%:*}" "rate=$(rate "http://127.0.0.1:${pair#*:}$path")"
    done
  done
done

# aio.workers(2) sharing one port with reuse_port
PW=$(free_port)
lua5.4 bench/aio_server.lua "$PW" 2 >>"$W/server.log" 2>&1 & WPID=$!
wait_port "$PW" && sleep 0.5
for i in $(seq 1 "$RUNS"); do
  for path in / /json; do record "w7${path%/}/aio-workers2" "rate=$(rate "http://127.0.0.1:$PW$path")"; done
done
kill -TERM "$WPID"; wait "$WPID" 2>/dev/null

# RSS per idle keep-alive connection: a fresh aio server, IDLE connections
PI=$(free_port)
lua5.4 bench/aio_server.lua "$PI" >>"$W/server.log" 2>&1 & IPID=$!; PIDS+=("$IPID")
wait_port "$PI"
wrk -t1 -c64 -d1s "http://127.0.0.1:$PI/" >/dev/null 2>&1     # warm up
sleep 0.5
rss0=$(awk '/VmRSS/ {print $2}' "/proc/$IPID/status")
mkfifo "$W/ready"
lua5.4 bench/idle_clients.lua "$PI" "$IDLE" 60 > "$W/ready" 2>>"$W/server.log" & CPID=$!; PIDS+=("$CPID")
read -r _ nopen < "$W/ready"
sleep 1
rss1=$(awk '/VmRSS/ {print $2}' "/proc/$IPID/status")
kill "$CPID" 2>/dev/null

echo
echo "== W7: wrk -t1 -c64 -d5s, medians of $RUNS runs [min-max], req/s"
for path in "" /json; do
  for s in aio aio-workers2 nginx nginx+lua node-http aiohttp+uvloop; do
    printf '  %-8s %-16s %s\n' "${path:-/}" "$s" "$(med "w7$path/$s" rate)"
  done
done
echo
echo "== aio's ratios (medians of the same session)"
for path in "" /json; do
  a=$(med "w7$path/aio" rate | cut -d' ' -f1)
  line="  ${path:-/}:"
  for s in nginx nginx+lua node-http aiohttp+uvloop; do
    line="$line  $s $(ratio "$a" "$(med "w7$path/$s" rate | cut -d' ' -f1)")"
  done
  line="$line  workers2/aio $(ratio "$(med "w7$path/aio-workers2" rate | cut -d' ' -f1)" "$a")"
  echo "$line"
done
echo
echo "== aio: RSS per idle keep-alive connection ($nopen open)"
awk -v a="$rss0" -v b="$rss1" -v n="$nopen" 'BEGIN{ printf "  %d KiB before, %d KiB after: %.2f KiB per connection\n", a, b, (b-a)/n }'
