# Developer loop for aio. `make` builds build/aio/core.so; the Lua layer is
# used in place from lua/ (see `make env`).

LUA      ?= lua5.4
BUSTED   ?= busted
CC       ?= cc
PKGS      = lua5.4 libuv libcurl libssl hiredis libpq zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null || echo -I/usr/include/lua5.4 -I/usr/include/postgresql)
PKG_LIBS   := $(shell pkg-config --libs libuv libcurl libssl libcrypto hiredis libpq zlib 2>/dev/null || echo -luv -lcurl -lssl -lcrypto -lhiredis -lpq -lz) \
              -lwslay -lhttp_parser
OPT      ?= -O2 -g
WARN      = -std=c99 -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes \
            -Wstrict-prototypes
CFLAGS   += $(OPT) $(WARN) -fPIC -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS  += -shared $(EXTRA_LDFLAGS)

BUILD    ?= build
SRCS      = $(wildcard src/*.c src/*/*.c)
HDRS      = $(wildcard src/*.h src/*/*.h)
OBJS      = $(SRCS:src/%.c=$(BUILD)/obj/%.o)
CORE      = $(BUILD)/aio/core.so

# Lua 5.4 finds the in-tree build first (LUA_PATH_5_4 wins over LUA_PATH).
LUA_ENV   = LUA_PATH_5_4="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;" \
            LUA_CPATH_5_4="$(CURDIR)/$(BUILD)/?.so;;"

.PHONY: all test sanitize valgrind bench bench-server bench-redis bench-pg bench-ws clean env lint

all: $(CORE)

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(CORE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(OBJS) -o $@ $(LDFLAGS) $(PKG_LIBS)

test: all
	$(LUA_ENV) $(BUSTED) --lua=$(LUA) $(BUSTED_ARGS)

env:
	@echo "export LUA_PATH_5_4='$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;'"
	@echo "export LUA_CPATH_5_4='$(CURDIR)/$(BUILD)/?.so;;'"

# AddressSanitizer + UBSan: a separate build, the runtime preloaded into the
# interpreter (lua5.4 itself is not instrumented).
ASAN_LIB := $(shell $(CC) -print-file-name=libasan.so)
UBSAN_LIB := $(shell $(CC) -print-file-name=libubsan.so)
sanitize:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer \
	  -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined"
	LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	AIO_SANITIZE=1 \
	LUA_PATH_5_4="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;" \
	LUA_CPATH_5_4="$(CURDIR)/build-asan/?.so;;" \
	$(BUSTED) --lua=$(LUA) --cpath="build-asan/?.so" $(BUSTED_ARGS)

valgrind: all
	$(LUA_ENV) AIO_VALGRIND=1 valgrind --error-exitcode=99 --quiet \
	  --trace-children=yes --leak-check=no \
	  --trace-children-skip='*/python3*,*/nginx,*/redis-server,*/runuser,*/initdb,*/postgres,*/pg_ctl,*/openssl,*/timeout,*/node,*/luarocks,*/cc,*/gcc,*/cc1,*/as,*/ld,*/collect2' \
	  $(LUA) $$(command -v $(BUSTED)) --lua=$(LUA) $(BUSTED_ARGS)

# every benchmark beside its peers: core (W1-W4), HTTP client (W5, W6),
# HTTP server (W7), TCP and threads, Redis (W10), PostgreSQL (W9),
# WebSocket (W8); BENCH_RUNS repetitions of each (median shown)
BENCH_RUNS ?= 3
bench: all
	$(LUA_ENV) sh bench/run.sh -r $(BENCH_RUNS)
	$(LUA_ENV) bash bench/http.sh -r $(BENCH_RUNS)
	$(MAKE) -s bench-server
	$(LUA_ENV) sh bench/io_compare.sh $(BENCH_RUNS)
	$(MAKE) -s bench-redis
	$(MAKE) -s bench-pg
	$(MAKE) -s bench-ws

bench-redis: all
	$(LUA_ENV) bash bench/redis.sh -r $(BENCH_RUNS)

# W9: aio.pg beside asyncpg and pgbench on one throwaway PostgreSQL
bench-pg: all
	$(LUA_ENV) bash bench/pg.sh -r $(BENCH_RUNS)

# W7: the HTTP server beside nginx, nginx + lua, node and aiohttp.web
bench-server: all
	$(LUA_ENV) bash bench/server.sh -r $(BENCH_RUNS)

# WebSocket (W8 beside node ws, aiohttp, websockets; RSS per idle
# connection) alone
bench-ws: all
	$(LUA_ENV) bash bench/ws.sh -r $(BENCH_RUNS)

lint:
	$(MAKE) clean all EXTRA_CFLAGS=-Werror

clean:
	rm -rf build build-asan
