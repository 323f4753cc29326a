# bench/lib.sh: what the benchmark scripts (http.sh, redis.sh, pg.sh, ws.sh,
# server.sh)
# share, sourced before their functions are called; those use WORK (a
# scratch folder), RAW (the file of tagged RESULT lines) and BENCH_TIMEOUT
# (seconds a run may take). See LICENSE

# peers_dir ROOT: the peer benchmarks, ../shared/bench/peers of the
# checkout at ROOT or of the folder holding the worktrees ($PEERS if set)
peers_dir() {
  local d
  if [ -n "${PEERS:-}" ]; then echo "$PEERS"; return; fi
  for d in "$1/.." "$1/../.."; do
    if [ -d "$d/shared/bench/peers" ]; then (cd "$d/shared/bench/peers" && pwd); return; fi
  done
  echo "$1/../shared/bench/peers"
}

# bench_setup DEFAULT "$@": HERE (bench/), ROOT (the checkout, made the
# working directory), PEERS (see peers_dir), and the options: -r RUNS sets
# RUNS (DEFAULT without it); any other option prints the script's leading
# comment and exits 2; the operands are left in ARGS
bench_setup() {
  HERE=$(cd "$(dirname "$0")" && pwd)
  ROOT=$(cd "$HERE/.." && pwd)
  PEERS=$(peers_dir "$ROOT")
  cd "$ROOT" || exit 1
  RUNS=$1; shift
  local o OPTIND=1
  while getopts "r:" o; do
    case $o in
      r) RUNS=$OPTARG ;;
      *) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2 ;;
    esac
  done
  shift $((OPTIND - 1))
  ARGS=("$@")
}

# run LABEL CMD...: one run; its RESULT line (tagged) goes to $RAW
run() {
  local label=$1; shift
  local out line
  out=$(timeout -k 5 $((BENCH_TIMEOUT + 15)) "$@" 2>"$WORK/stderr.txt")
  line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -1)
  [ -z "$line" ] && line="RESULT ok=0 err=$(head -c 200 "$WORK/stderr.txt" | tr -s ' \n\t' '___')"
  echo "label=$label ${line#RESULT }" >> "$RAW"
}

field() { grep "^label=$1 " "$RAW" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
stats() {
  sort -g | awk '{v[NR]=$1} END{ if (NR==0) {print "- - -"; exit}
    m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; print m, v[1], v[NR] }'
}
median() { field "$1" "$2" | stats | cut -d' ' -f1; }
row() {  # LABEL KEY UNIT
  local med mn mx rss oks
  read -r med mn mx < <(field "$1" "$2" | stats)
  read -r rss _ _ < <(field "$1" rss_kb | stats)
  oks=$(field "$1" ok | sort -u | tr '\n' ' ')
  printf '  %-22s %10s  [%s - %s] %-6s  peak RSS %s KiB  ok=%s\n' "$1" "$med" "$mn" "$mx" "$3" "$rss" "$oks"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="-"||b=="-"||b==0) print "-"; else printf "%.2f", a/b }'; }

# free_port: a TCP port free on 127.0.0.1 now
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT: waits up to 10 s for a listener on 127.0.0.1:PORT
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "port $1 never opened" >&2; return 1
}

# bench_start NAME: what every run needs: descriptors, the build, BENCH_TIMEOUT
# (120 s unless set), and a scratch folder WORK with an empty RAW file
bench_start() {
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  make -s all || return 1
  export BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
  WORK=$(mktemp -d "/tmp/aio-$1-bench.XXXXXX")
  RAW=$WORK/raw.txt
  : > "$RAW"
}
