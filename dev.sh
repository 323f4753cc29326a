#!/bin/sh
# dev.sh: set up, build and run aio on a Debian machine.
#   ./dev.sh demo      install what is missing, build, run examples/health_check.lua
#   ./dev.sh test      install what is missing, build, run the whole test suite
#   ./dev.sh sanitize  the test suite against an ASan/UBSan build
#   ./dev.sh deps      only install the missing Debian packages
#   ./dev.sh run F     build, then run Lua file F with the in-tree aio
# Extra arguments after test/sanitize go to busted (e.g. -o TAP).
set -eu
cd "$(dirname "$0")"

PACKAGES="make gcc pkg-config lua5.4 liblua5.4-dev libuv1-dev libcurl4-openssl-dev
zlib1g-dev lua-cjson lua-busted luarocks nginx python3 python3-aiohttp openssl curl
procps libhiredis-dev redis-server libpq-dev postgresql libhttp-parser-dev libssl-dev
libwslay-dev python3-websockets"

deps() {
  missing=""
  for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  echo "dev.sh: installing Debian packages:$missing" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

build() { make -s all; }

env_run() {
  LUA_PATH_5_4="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" \
  LUA_CPATH_5_4="$PWD/build/?.so;;" "$@"
}

cmd=${1:-test}
[ $# -gt 0 ] && shift
case $cmd in
  deps) deps ;;
  demo) deps; build; ulimit -n 4096 2>/dev/null || true
        env_run lua5.4 examples/health_check.lua "$@" ;;
  run) deps; build; env_run lua5.4 "$@" ;;
  test) deps; build; ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
        env_run busted --lua=lua5.4 "$@" ;;
  sanitize) deps; ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
        make -s sanitize BUSTED_ARGS="$*" ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac
