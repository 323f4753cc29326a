#!/usr/bin/env bash
# HTTP benchmarks W5 and W6: aio.http beside its peers, in the same run.
#
# usage: bench/http.sh [-r RUNS] [w5] [w6]
#   W5  20,000 GETs of a 1 KiB file from local nginx, at most 64 in flight:
#       aio (bench/aio_http.lua), wrk -t1 -c64 (the server's limit), lua-http
#       (64 kept-alive connections) and aiohttp on uvloop; req/s.
#   W6  1,000 and 10,000 concurrent GETs to a server answering after 500 ms
#       (../shared/bench/peers/slow_server.mjs): aio, lua-http, aiohttp on
#       uvloop; seconds and peak RSS.
# Each round runs every client once, one after another, RUNS rounds
# (default 5); the table gives medians and min-max, then ratios of medians.
# Starts nginx and the slow server on 127.0.0.1 (NGINX_PORT 18090,
# SLOW_PORT 18091) and stops them by PID. Needs nginx, wrk, node, lua-http,
# lua-cqueues, python3-aiohttp, python3-uvloop (see ../shared/bench).
set -u
# bench_setup and what the scripts share (bench/lib.sh)
. "$(dirname "$0")/lib.sh"
bench_setup 5 "$@"
WLS=${ARGS[*]:-"w5 w6"}

NGINX_PORT=${NGINX_PORT:-18090}
SLOW_PORT=${SLOW_PORT:-18091}
PY=/usr/bin/python3
bench_start http || exit 1
chmod 755 "$WORK"
NGINX_PID=""; SLOW_PID=""
cleanup() {
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  [ -n "$SLOW_PID" ] && kill "$SLOW_PID" 2>/dev/null && wait "$SLOW_PID" 2>/dev/null
  NGINX_PID=""; SLOW_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ " $WLS " == *" w5 "* ]]; then
  d=$WORK/nginx
  mkdir -p "$d/www" "$d/tmp"; chmod 755 "$d" "$d/www"
  head -c 1024 /dev/urandom > "$d/www/1k.bin"; chmod 644 "$d/www/1k.bin"
  sed -e "s#@PREFIX@#$d#g" -e "s#@PORT@#$NGINX_PORT#g" "$PEERS/nginx.conf.in" > "$d/nginx.conf"
  timeout -k 10 3600 nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" > "$d/out.log" 2>&1 &
  NGINX_PID=$!
  for _ in $(seq 50); do [ -s "$d/nginx.pid" ] && break; sleep 0.1; done
  U=http://127.0.0.1:$NGINX_PORT/1k.bin
  for i in $(seq "$RUNS"); do
    run w5/aio lua5.4 bench/aio_http.lua w5 "$U" 20000 64 1024
    rps=$(wrk -t1 -c64 -d5s "$U" 2>&1 | awk '/^Requests\/sec:/{print $2}')
    echo "label=w5/wrk rate=${rps:-0} ok=1" >> "$RAW"
    run w5/lua-http lua5.4 "$PEERS/luahttp_bench.lua" w5 "$U" 20000 64 1024 conn
    run w5/aiohttp-uvloop $PY "$PEERS/aiohttp_bench.py" uvloop w5 "$U" 20000 64 1024
  done
  echo "W5: 20,000 GETs of 1 KiB from nginx, 64 in flight (req/s; $RUNS rounds)"
  for l in aio wrk lua-http aiohttp-uvloop; do row w5/$l rate req/s; done
  a=$(median w5/aio rate)
  echo "  ratios of medians: aio/wrk $(ratio "$a" "$(median w5/wrk rate)")" \
       " aio/lua-http $(ratio "$a" "$(median w5/lua-http rate)")" \
       " aio/aiohttp-uvloop $(ratio "$a" "$(median w5/aiohttp-uvloop rate)")"
  kill "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; NGINX_PID=""
fi

if [[ " $WLS " == *" w6 "* ]]; then
  node "$PEERS/slow_server.mjs" "$SLOW_PORT" 500 > "$WORK/slow.log" 2>&1 &
  SLOW_PID=$!
  for _ in $(seq 50); do grep -q READY "$WORK/slow.log" && break; sleep 0.1; done
  U=http://127.0.0.1:$SLOW_PORT/
  for n in 1000 10000; do
    for i in $(seq "$RUNS"); do
      run w6/aio/$n lua5.4 bench/aio_http.lua w6 "$U" $n 2
      run w6/lua-http/$n lua5.4 "$PEERS/luahttp_bench.lua" w6 "$U" $n 2
      run w6/aiohttp-uvloop/$n $PY "$PEERS/aiohttp_bench.py" uvloop w6 "$U" $n 2
    done
    echo "W6: $n concurrent GETs answered after 500 ms (seconds; $RUNS rounds)"
    for l in aio lua-http aiohttp-uvloop; do row w6/$l/$n secs s; done
    a=$(median w6/aio/$n secs)
    echo "  time ratios of medians: lua-http/aio $(ratio "$(median w6/lua-http/$n secs)" "$a")" \
         " aiohttp-uvloop/aio $(ratio "$(median w6/aiohttp-uvloop/$n secs)" "$a")"
  done
  kill "$SLOW_PID" 2>/dev/null; wait "$SLOW_PID" 2>/dev/null; SLOW_PID=""
fi
echo "raw RESULT lines: $RAW"
