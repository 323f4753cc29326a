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
}

build = {
  type = "builtin",
  modules = {
    ["aio.core"] = {
      sources = {
        "src/coro.c",
        "src/dns.c",
        "src/error.c",
        "src/file.c",
        "src/fs.c",
        "src/http_multi.c",
        "src/http_request.c",
        "src/http_response.c",
        "src/io.c",
        "src/loop.c",
        "src/process.c",
        "src/queue.c",
        "src/sched.c",
        "src/scope.c",
        "src/semaphore.c",
        "src/signal.c",
        "src/stream.c",
        "src/task.c",
        "src/tcp.c",
        "src/thread.c",
        "src/thread_copy.c",
        "src/timer.c",
        "src/waitlist.c",
        "src/watch.c",
      },
      defines = { "_GNU_SOURCE" },
      libraries = { "uv", "curl" },
      incdirs = { "$(LIBUV_INCDIR)" },
      libdirs = { "$(LIBUV_LIBDIR)", "$(LIBCURL_LIBDIR)" },
    },
    ["aio"] = "lua/aio/init.lua",
    ["aio.background"] = "lua/aio/background.lua",
    ["aio.compose"] = "lua/aio/compose.lua",
    ["aio.dns"] = "lua/aio/dns.lua",
    ["aio.fs"] = "lua/aio/fs.lua",
    ["aio.http"] = "lua/aio/http.lua",
    ["aio.process"] = "lua/aio/process.lua",
    ["aio.queue"] = "lua/aio/queue.lua",
    ["aio.ratelimit"] = "lua/aio/ratelimit.lua",
    ["aio.retry"] = "lua/aio/retry.lua",
    ["aio.signal"] = "lua/aio/signal.lua",
    ["aio.sync"] = "lua/aio/sync.lua",
    ["aio.taskgroup"] = "lua/aio/taskgroup.lua",
    ["aio.tcp"] = "lua/aio/tcp.lua",
    ["aio.thread"] = "lua/aio/thread.lua",
  },
}

test = {
  type = "busted",
}
