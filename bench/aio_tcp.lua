-- TCP echo benchmark for aio: an echo server and CONNS client tasks (one
-- per connection) in one process on 127.0.0.1; each client sends a SIZE-
-- byte message and reads the echo back, ROUNDS times.
-- Same workload as bench/luv_tcp.lua (luv callbacks), for side-by-side runs.
--
-- usage (from the repository root): lua5.4 bench/aio_tcp.lua [ROUNDS] [CONNS] [SIZE]
--   defaults: 2000 rounds, 64 connections, 1024 bytes
-- Prints: RESULT peer=aio wl=tcp_echo n=<round trips> secs=... rate=... unit=msgs/s
--         rss_kb=... ok=... conns=... size=... mb_s=...
-- Bounded in time: exits with status 3 after BENCH_TIMEOUT seconds (120).

package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local aio = require "aio"
local benchlib = require "benchlib"

local ROUNDS = tonumber(arg[1]) or 2000
local CONNS = tonumber(arg[2]) or 64
local SIZE = tonumber(arg[3]) or 1024

local ok = aio.run(function()
  local watchdog = benchlib.watchdog()
  local srv = aio.tcp.listen("127.0.0.1", 0, function(s)
    local read, write = s.read, s.write
    while true do
      local data = read(s)
      if not data then return end
      write(s, data)
    end
  end)
  local msg = ("m"):rep(SIZE)
  local good = 0
  local function client()
    local c <close> = aio.tcp.connect("127.0.0.1", srv.port)
    local write, read_exactly = c.write, c.read_exactly
    for _ = 1, ROUNDS do
      write(c, msg)
      if read_exactly(c, SIZE) ~= msg then return end
    end
    good = good + 1
  end
  local t0 = aio.now()
  local tasks = {}
  for i = 1, CONNS do tasks[i] = aio.spawn(client) end
  for _, t in ipairs(tasks) do t:await() end
  local secs = aio.now() - t0
  srv:close()
  srv:wait_closed()
  watchdog:cancel()
  local n = ROUNDS * CONNS
  benchlib.result({ peer = "aio", wl = "tcp_echo", n = n, secs = secs, rate = n / secs,
           unit = "msgs/s", ok = good == CONNS, conns = CONNS, size = SIZE,
           mb_s = ("%.1f"):format(2 * n * SIZE / secs / 1e6) })
  return good == CONNS
end)
os.exit(ok and 0 or 1)
