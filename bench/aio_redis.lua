-- W10 for aio.redis (../shared/bench/peers/run-server.sh): N commands, a SET
-- then a GET of a 32-byte value, alternating, from TASKS tasks sharing one
-- client (automatic pipelining: one connection, one write per round).
-- The same workload as ../shared/bench/peers/server/redis_py.py.
--
-- usage (from the repository root): lua5.4 bench/aio_redis.lua PORT [N] [TASKS]
--   defaults: 200000 commands, 50 tasks
-- Prints: RESULT peer=aio wl=w10 n=... secs=... rate=... unit=ops/s rss_kb=...
--         ok=... tasks=...
-- Bounded in time: exits with status 3 after BENCH_TIMEOUT seconds (120).

package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local aio = require "aio"
local benchlib = require "benchlib"

local PORT = assert(tonumber(arg[1]), "usage: aio_redis.lua PORT [N] [TASKS]")
local N = tonumber(arg[2]) or 200000
local TASKS = tonumber(arg[3]) or 50

aio.run(function()
  local watchdog = benchlib.watchdog()
  local r <close> = aio.redis.connect(("redis://127.0.0.1:%d"):format(PORT))
  local value = ("x"):rep(32)
  local per = N // TASKS // 2
  local good = 0
  local function worker(i)
    local key = "k" .. i
    local set, get = r.set, r.get
    for _ = 1, per do
      set(r, key, value)
      if get(r, key) == value then good = good + 1 end
    end
  end
  local tasks = {}
  for i = 1, TASKS do tasks[i] = function() return worker(i) end end
  local t0 = aio.now()
  aio.gather(tasks)
  local secs = aio.now() - t0
  local n = per * 2 * TASKS
  watchdog:cancel()
  benchlib.result({ peer = "aio", wl = "w10", n = n, secs = secs, rate = n / secs,
    unit = "ops/s", ok = good == per * TASKS, tasks = TASKS })
end)
