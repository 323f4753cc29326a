-- The W7 server for aio: GET / -> "Hello, World!" (text/plain), GET /json
-- -> {"message":"Hello, World!"} encoded per request, on 127.0.0.1.
-- Same workload as ../shared/bench/peers/server/hello_*.
--
-- usage (from the repository root): lua5.4 bench/aio_server.lua PORT [WORKERS]
--   WORKERS > 1: aio.workers(WORKERS) processes sharing the port with
--   reuse_port. Runs until SIGTERM or SIGINT.

package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local aio = require "aio"

local PORT = tonumber(arg[1]) or 8080
local WORKERS = tonumber(arg[2]) or 1

local function main()
  local app = aio.http.App()
  app:get("/", function() return "Hello, World!" end)
  app:get("/json", function() return { json = { message = "Hello, World!" } } end)
  local server <close> = aio.http.listen(app, { port = PORT, reuse_port = WORKERS > 1,
    max_connections = 20000 })
  aio.signal("SIGTERM", function() server:close(1) end)
  server:wait()
end

if WORKERS > 1 then
  aio.workers(WORKERS, main)
else
  aio.run(main)
end
