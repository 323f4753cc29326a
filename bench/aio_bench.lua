-- aio benchmarks for the core workloads, mirroring ../shared/bench/peers
-- (luv_bench.lua): same workloads, same arguments, same RESULT line.
--
-- usage (from the repository root): lua5.4 bench/aio_bench.lua WORKLOAD [N]
--   w1     one task does aio.sleep(0) N times (default 1,000,000)
--   w2     N tasks (default 100,000) each sleep 10 ms; wait for all
--   w3     1 producer -> aio.Queue(128) -> 4 consumers, N items (1,000,000)
--   w3one  the same with aio.Queue(1): a wake-up per item
--   w4     N tasks (default 10,000) x 10 rounds of: acquire Semaphore(100),
--          sleep(0), release
--
-- Finds aio in ./build (after `make`) and ./lua first, else through
-- LUA_PATH/LUA_CPATH (an installed tree). Prints one line:
-- RESULT peer=aio wl=... n=... secs=... rate=... unit=... rss_kb=... ok=...
-- Bounded in time: a watchdog task stops it with status 3 after
-- BENCH_TIMEOUT seconds (default 120).

package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local aio = require "aio"
local benchlib = require "benchlib"

local W = {}

function W.w1(n)
  local sleep = aio.sleep
  local t0 = aio.now()
  for _ = 1, n do sleep(0) end
  local dt = aio.now() - t0
  return dt, n / dt, "yields/s", true
end

-- The tasks are not kept in a table (as the luv peer): the main task
-- awaits the last one spawned, whose deadline is the latest.
function W.w2(n)
  local done = 0
  local sleep = aio.sleep
  local body = function() sleep(0.010); done = done + 1 end
  local t0 = aio.now()
  local last
  for _ = 1, n do last = aio.spawn(body) end
  local t_spawned = aio.now()
  if last then last:await() end
  while done < n do sleep(0.001) end
  local dt = aio.now() - t0
  return dt, dt > 0 and n / dt or 0, "tasks/s", done == n,
    { spawn_secs = string.format("%.4f", t_spawned - t0) }
end

local function queue_bench(n, maxsize)
  local q = aio.Queue(maxsize)
  local NC = 4
  local totals, counts = {}, {}
  local t0 = aio.now()
  local producer = aio.spawn(function()
    for i = 1, n do q:put(i) end
    q:close()
  end)
  local consumers = {}
  for k = 1, NC do
    consumers[k] = aio.spawn(function()
      local s, c = 0, 0
      for item in q:items() do s = s + item; c = c + 1 end
      totals[k], counts[k] = s, c
    end)
  end
  producer:await()
  for k = 1, NC do consumers[k]:await() end
  local dt = aio.now() - t0
  local sum, cnt = 0, 0
  for k = 1, NC do sum = sum + totals[k]; cnt = cnt + counts[k] end
  return dt, n / dt, "items/s", sum == n * (n + 1) // 2 and cnt == n,
    { per_consumer = table.concat(counts, "/") }
end

function W.w3(n) return queue_bench(n, 128) end
function W.w3one(n) return queue_bench(n, 1) end

function W.w4(ntasks)
  local rounds, permits = 10, 100
  local sem = aio.Semaphore(permits)
  local sleep = aio.sleep
  local inside, max_inside, acquired = 0, 0, 0
  local body = function()
    for _ = 1, rounds do
      sem:acquire()
      inside = inside + 1; acquired = acquired + 1
      if inside > max_inside then max_inside = inside end
      sleep(0)
      inside = inside - 1
      sem:release()
    end
  end
  local t0 = aio.now()
  local tasks = {}
  for i = 1, ntasks do tasks[i] = aio.spawn(body) end
  for i = 1, ntasks do tasks[i]:await() end
  local dt = aio.now() - t0
  local total = ntasks * rounds
  return dt, total / dt, "acq/s", acquired == total and max_inside <= permits,
    { acquisitions = total, max_inside = max_inside }
end

local DEFAULTS = { w1 = 1000000, w2 = 100000, w3 = 1000000, w3one = 1000000, w4 = 10000 }

local wl = arg[1]
if not W[wl] then
  io.stderr:write("usage: lua5.4 bench/aio_bench.lua w1|w2|w3|w3one|w4 [N]\n")
  os.exit(2)
end
local n = tonumber(arg[2]) or DEFAULTS[wl]

local dt, rate, unit, ok, extra = aio.run(function()
  local watchdog = benchlib.watchdog()
  local r = table.pack(W[wl](n))
  watchdog:cancel()
  return table.unpack(r, 1, r.n)
end)

local t = { peer = "aio", wl = wl, n = n, secs = dt, rate = rate, unit = unit, ok = ok,
  version = aio._VERSION:gsub(" ", "-") }
for k, v in pairs(extra or {}) do t[k] = v end
benchlib.result(t)
os.exit(ok and 0 or 1)
