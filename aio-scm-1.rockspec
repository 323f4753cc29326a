rockspec_format = "3.0"
package = "aio"
version = "scm-1"

source = {
  url = "git+file:///aio",
}

description = {
  summary = "asyncio + aiohttp for Lua 5.4: tasks, composition, sync primitives, HTTP, on libuv",
  detailed = [[
aio runs Lua coroutines as tasks on one libuv event loop driven from C:
async sleep, gather, timeouts, task groups, semaphores, locks, events,
queues, an HTTP client on libcurl's multi interface, files, TCP, threads,
processes and signals. Any function may suspend: no async/await colouring.
]],
  license = "MIT",
}

dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson",
}

external_dependencies = {
  LIBUV = { header = "uv.h" },
  LIBCURL = { library = "curl" },  -- the header is under the multiarch include dir
  OPENSSL = { header = "openssl/ssl.h" },
  WSLAY = { header = "wslay/wslay.h" },
  HTTP_PARSER = { header = "http_parser.h", library = "http_parser" },
  HIREDIS = { header = "hiredis/hiredis.h" },
  LIBPQ = { header = "postgresql/libpq-fe.h" },
  ZLIB = { header = "zlib.h", library = "z" },
}

build = {
  type = "builtin",
  modules = {
    ["aio.core"] = {
      sources = {
        "src/core/anchor.c",
        "src/core/clock.c",
        "src/core/closable.c",
        "src/core/coro.c",
        "src/core/error.c",
        "src/core/loop.c",
        "src/core/object.c",
        "src/core/run.c",
        "src/core/sched.c",
        "src/core/scope.c",
        "src/core/sigint.c",
        "src/core/task.c",
        "src/core/task_object.c",
        "src/core/timer.c",
        "src/db/pg_binary.c",
        "src/db/pg_conn.c",
        "src/db/pg_copy.c",
        "src/db/pg_query.c",
        "src/db/pg_value.c",
        "src/db/pg_decode.c",
        "src/db/pg_encode.c",
        "src/db/redis_call.c",
        "src/db/redis_conn.c",
        "src/db/redis_reply.c",
        "src/http/client_multi.c",
        "src/http/client_request.c",
        "src/http/client_response.c",
        "src/http/server.c",
        "src/http/server_conn.c",
        "src/http/server_file.c",
        "src/http/server_parser.c",
        "src/http/server_request.c",
        "src/http/server_response.c",
        "src/http/ws_conn.c",
        "src/http/ws_handshake.c",
        "src/http/ws_object.c",
        "src/io/address.c",
        "src/io/buf.c",
        "src/io/connect.c",
        "src/io/dns.c",
        "src/io/file.c",
        "src/io/fs.c",
        "src/io/handle.c",
        "src/io/poller.c",
        "src/io/process.c",
        "src/io/req.c",
        "src/io/signal.c",
        "src/io/signame.c",
        "src/io/stream.c",
        "src/io/tcp.c",
        "src/io/tls.c",
        "src/io/thread.c",
        "src/io/thread_copy.c",
        "src/io/workers.c",
        "src/modules.c",
        "src/sync/queue.c",
        "src/sync/semaphore.c",
        "src/sync/waitlist.c",
        "src/sync/watch.c",
      },
      defines = { "_GNU_SOURCE" },
      libraries = { "uv", "curl", "ssl", "crypto", "wslay", "http_parser", "hiredis", "pq", "z" },
      incdirs = { "src", "$(LIBUV_INCDIR)", "$(OPENSSL_INCDIR)", "$(HIREDIS_INCDIR)",
                  "$(LIBPQ_INCDIR)/postgresql", "$(HTTP_PARSER_INCDIR)", "$(ZLIB_INCDIR)" },
      libdirs = { "$(LIBUV_LIBDIR)", "$(LIBCURL_LIBDIR)", "$(OPENSSL_LIBDIR)", "$(HIREDIS_LIBDIR)",
                  "$(LIBPQ_LIBDIR)", "$(HTTP_PARSER_LIBDIR)", "$(ZLIB_LIBDIR)" },
    },
    ["aio"] = "lua/aio/init.lua",
    ["aio.busted"] = "lua/aio/busted.lua",
    ["aio.core.args"] = "lua/aio/core/args.lua",
    ["aio.core.background"] = "lua/aio/core/background.lua",
    ["aio.core.compose"] = "lua/aio/core/compose.lua",
    ["aio.core.retry"] = "lua/aio/core/retry.lua",
    ["aio.core.taskgroup"] = "lua/aio/core/taskgroup.lua",
    ["aio.core.testing"] = "lua/aio/core/testing.lua",
    ["aio.db.pg"] = "lua/aio/db/pg.lua",
    ["aio.db.redis"] = "lua/aio/db/redis.lua",
    ["aio.db.redis_conn"] = "lua/aio/db/redis_conn.lua",
    ["aio.db.redis_pubsub"] = "lua/aio/db/redis_pubsub.lua",
    ["aio.http"] = "lua/aio/http/init.lua",
    ["aio.http.client"] = "lua/aio/http/client.lua",
    ["aio.http.server"] = "lua/aio/http/server.lua",
    ["aio.http.websocket"] = "lua/aio/http/websocket.lua",
    ["aio.io.dns"] = "lua/aio/io/dns.lua",
    ["aio.io.fs"] = "lua/aio/io/fs.lua",
    ["aio.io.process"] = "lua/aio/io/process.lua",
    ["aio.io.signal"] = "lua/aio/io/signal.lua",
    ["aio.io.tcp"] = "lua/aio/io/tcp.lua",
    ["aio.io.thread"] = "lua/aio/io/thread.lua",
    ["aio.io.workers"] = "lua/aio/io/workers.lua",
    ["aio.sync.primitives"] = "lua/aio/sync/primitives.lua",
    ["aio.sync.queue"] = "lua/aio/sync/queue.lua",
    ["aio.sync.ratelimit"] = "lua/aio/sync/ratelimit.lua",
  },
}

test = {
  type = "busted",
}
