#!/bin/sh
# Runs aio's core benchmarks (bench/aio_bench.lua) beside the peers of
# ../shared/bench/peers in one session and prints medians and ratios.
#
# usage: bench/run.sh [-r RUNS] [-n] [w1 w2 w3 w3one w4]   (from the repo root)
#   -r RUNS  repetitions per measurement (default 3; the median is shown)
#   -n       skip the 1,000,000-task run of w2
# Peers that are not installed are skipped: lua5.4 + lua-luv, lua-cqueues,
# /usr/bin/python3 (asyncio; uvloop from python3-uvloop), node.
# The HTTP (w5/w6) and TCP benchmarks have their own scripts in bench/.

set -u
cd "$(dirname "$0")/.." || exit 1
PEERS=${PEERS:-../shared/bench/peers}
RUNS=3
BIG=1
while getopts "r:n" o; do
  case $o in r) RUNS=$OPTARG ;; n) BIG=0 ;; *) sed -n '2,12p' "$0"; exit 2 ;; esac
done
shift $((OPTIND - 1))
WLS=${*:-"w1 w2 w3 w3one w4"}
PY=/usr/bin/python3
export BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
RAW=$(mktemp)
trap 'rm -f "$RAW"' EXIT

have_lua_mod() { lua5.4 -e "require '$1'" >/dev/null 2>&1; }
have_py_mod() { [ -x "$PY" ] && "$PY" -c "import $1" >/dev/null 2>&1; }

# run LABEL CMD...: RUNS times, keeping each RESULT line tagged with LABEL
run() {
  label=$1; shift
  i=0
  while [ "$i" -lt "$RUNS" ]; do
    line=$(timeout $((BENCH_TIMEOUT + 15)) "$@" 2>/dev/null | grep '^RESULT ' | tail -1)
    [ -n "$line" ] && echo "label=$label ${line#RESULT }" >> "$RAW"
    i=$((i + 1))
  done
}

# median of field KEY over the runs of LABEL
median() {
  grep "^label=$1 " "$RAW" | tr ' ' '\n' | sed -n "s/^$2=//p" | sort -g |
    awk '{v[NR]=$1} END{ if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2 }'
}

fmt() { awk -v x="$1" 'BEGIN{ if (x=="-") print "-"; else if (x>=1e6) printf "%.2f M", x/1e6; else if (x>=1e3) printf "%.1f k", x/1e3; else printf "%.4g", x }'; }

# table WORKLOAD KEY UNIT LABELS...: one row per label, ratio of aio to each
table() {
  wl=$1; key=$2; unit=$3; shift 3
  ours=$(median "$wl/aio" "$key")
  printf '\n== %s (%s, median of %s)\n' "$wl" "$unit" "$RUNS"
  for l in aio "$@"; do
    v=$(median "$wl/$l" "$key")
    [ "$v" = "-" ] && continue
    rss=$(median "$wl/$l" rss_kb)
    if [ "$l" = aio ] || [ "$ours" = "-" ]; then ratio=""
    elif [ "$key" = secs ]; then ratio=$(awk -v a="$ours" -v b="$v" 'BEGIN{printf "aio is %.2fx faster", b/a}')
    else ratio=$(awk -v a="$ours" -v b="$v" 'BEGIN{printf "aio/peer = %.2f", a/b}')
    fi
    printf '  %-16s %12s   rss %8s KiB   %s\n' "$l" "$(fmt "$v")" "$rss" "$ratio"
  done
}

LUA_PEERS=""
have_lua_mod luv && LUA_PEERS="$LUA_PEERS luv"
have_lua_mod cqueues && LUA_PEERS="$LUA_PEERS cqueues"

peers_for() {  # WORKLOAD [N]
  wl=$1; n=${2:-}
  run "$wl/aio" lua5.4 bench/aio_bench.lua "$wl" $n
  case " $LUA_PEERS " in *" luv "*) run "$wl/luv" lua5.4 "$PEERS/luv_bench.lua" "$wl" $n ;; esac
  case " $LUA_PEERS " in *" cqueues "*) run "$wl/cqueues" lua5.4 "$PEERS/cqueues_bench.lua" "$wl" $n ;; esac
  if have_py_mod asyncio; then run "$wl/asyncio" "$PY" "$PEERS/asyncio_bench.py" asyncio "$wl" $n; fi
  if have_py_mod uvloop; then run "$wl/uvloop" "$PY" "$PEERS/asyncio_bench.py" uvloop "$wl" $n; fi
  if command -v node >/dev/null; then run "$wl/node" node "$PEERS/node_bench.mjs" "$wl" $n; fi
}

make -s all || exit 1
for wl in $WLS; do
  case $wl in
    w1)
      peers_for w1
      run w1/lua-limit lua5.4 "$PEERS/lua_limit.lua" w1
      table w1 rate yields/s luv cqueues asyncio uvloop node lua-limit ;;
    w2)
      for n in 0 100000; do
        run "w2-$n/aio" lua5.4 bench/aio_bench.lua w2 "$n"
        run "w2-$n/lua-limit" lua5.4 "$PEERS/lua_limit.lua" w2 "$n"
        case " $LUA_PEERS " in *" luv "*) run "w2-$n/luv" lua5.4 "$PEERS/luv_bench.lua" w2 "$n" ;; esac
        case " $LUA_PEERS " in *" cqueues "*) run "w2-$n/cqueues" lua5.4 "$PEERS/cqueues_bench.lua" w2 "$n" ;; esac
        if have_py_mod asyncio; then run "w2-$n/asyncio" "$PY" "$PEERS/asyncio_bench.py" asyncio w2 "$n"; fi
        if command -v node >/dev/null; then run "w2-$n/node" node "$PEERS/node_bench.mjs" w2 "$n"; fi
      done
      table w2-100000 secs "seconds for 100,000 tasks" luv cqueues asyncio node lua-limit
      echo "  bytes per task = (peak RSS(100,000) - peak RSS(0)) * 1024 / 100,000:"
      for l in aio lua-limit luv cqueues asyncio node; do
        a=$(median "w2-0/$l" rss_kb); b=$(median "w2-100000/$l" rss_kb)
        [ "$a" = "-" ] || [ "$b" = "-" ] && continue
        awk -v l="$l" -v a="$a" -v b="$b" 'BEGIN{printf "  %-16s %6.0f B\n", l, (b-a)*1024/100000}'
      done
      if [ "$BIG" = 1 ]; then
        # 1,000,000 tasks: the first large allocation after a pause costs
        # more page faults on a VM, so an uncounted plain-Lua run warms the
        # memory up, then the clients take turns, RUNS rounds.
        lua5.4 "$PEERS/lua_limit.lua" w2 1000000 >/dev/null 2>&1
        RUNS_SAVED=$RUNS; RUNS=1
        r=0
        while [ "$r" -lt "$RUNS_SAVED" ]; do
          run "w2-1M/aio" lua5.4 bench/aio_bench.lua w2 1000000
          run "w2-1M/lua-limit" lua5.4 "$PEERS/lua_limit.lua" w2 1000000
          case " $LUA_PEERS " in *" luv "*) run "w2-1M/luv" lua5.4 "$PEERS/luv_bench.lua" w2 1000000 ;; esac
          case " $LUA_PEERS " in *" cqueues "*) run "w2-1M/cqueues" lua5.4 "$PEERS/cqueues_bench.lua" w2 1000000 ;; esac
          if command -v node >/dev/null; then run "w2-1M/node" node "$PEERS/node_bench.mjs" w2 1000000; fi
          r=$((r + 1))
        done
        RUNS=$RUNS_SAVED
        table w2-1M secs "seconds for 1,000,000 tasks" luv cqueues node lua-limit
        echo "  bytes per task = (peak RSS(1,000,000) - peak RSS(0)) * 1024 / 1,000,000:"
        for l in aio lua-limit luv cqueues node; do
          a=$(median "w2-0/$l" rss_kb); b=$(median "w2-1M/$l" rss_kb)
          [ "$a" = "-" ] || [ "$b" = "-" ] && continue
          awk -v l="$l" -v a="$a" -v b="$b" 'BEGIN{printf "  %-16s %6.0f B\n", l, (b-a)*1024/1000000}'
        done
      fi ;;
    w3|w3one|w4)
      unit=items/s; [ "$wl" = w4 ] && unit=acq/s
      peers_for "$wl"
      table "$wl" rate "$unit" luv cqueues asyncio uvloop node ;;
    *) echo "unknown workload $wl" >&2 ;;
  esac
done
