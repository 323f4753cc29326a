-- spec/support/workers_main.lua: the master of the aio.workers spec, run
-- as a process of its own (forking never happens inside busted).
-- usage: lua5.4 spec/support/workers_main.lua PORT DIR
-- Writes its pid to DIR/master.pid; each of 2 workers serves on PORT with
-- reuse_port: GET / -> "<worker index> <pid>", GET /slow -> the same after
-- 0.3 s. SIGTERM to the master stops the workers gracefully (grace 5 s).
local aio = require "aio"

local port, dir = tonumber(arg[1]), arg[2]
local f = assert(io.open(dir .. "/master.pid", "w"))
f:write(require("aio.core").workers.getpid(), "\n")
f:close()

local ok, failures = aio.workers(2, function(i)
  local pid = require("aio.core").workers.getpid()
  local app = aio.http.App()
  app:get("/", function() return i .. " " .. pid end)
  app:get("/slow", function() aio.sleep(0.3) return i .. " " .. pid end)
  local server <close> = aio.http.listen(app, { port = port, reuse_port = true, grace = 5 })
  server:wait()
end)
if not ok then
  for _, w in ipairs(failures) do
    io.stderr:write(("worker %d (pid %d): code %s signal %s\n"):format(w.worker, w.pid, tostring(w.code), tostring(w.signal)))
  end
  os.exit(1)
end
