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
        "src/error.c",
        "src/http_multi.c",
        "src/http_request.c",
        "src/http_response.c",
        "src/loop.c",
        "src/sched.c",
        "src/scope.c",
        "src/task.c",
        "src/timer.c",
      },
      defines = { "_GNU_SOURCE" },
      libraries = { "uv", "curl" },
      incdirs = { "$(LIBUV_INCDIR)" },
      libdirs = { "$(LIBUV_LIBDIR)", "$(LIBCURL_LIBDIR)" },
    },
    ["aio"] = "lua/aio/init.lua",
    ["aio.http"] = "lua/aio/http.lua",
  },
}

test = {
  type = "busted",
}
