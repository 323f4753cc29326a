-- aio.to_thread round trip: one task calls a trivial function on the
-- thread pool N times in a row (after WARM calls that fill the state
-- pool and the function caches) and times each call.
--
-- usage (from the repository root): lua5.4 bench/aio_thread.lua [N] [WARM]
--   defaults: 20000 calls, 2000 warm-up calls
-- Prints: RESULT peer=aio wl=to_thread n=... secs=... rate=... unit=calls/s
--         rss_kb=... ok=... median_us=... p10_us=... p90_us=... p99_us=...

package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local aio = require "aio"
local result = require("benchlib").result

local N = tonumber(arg[1]) or 20000
local WARM = tonumber(arg[2]) or 2000

aio.run(function()
  local to_thread, now = aio.to_thread, aio.now
  local function trivial(x) return x + 1 end
  for i = 1, WARM do assert(to_thread(trivial, i) == i + 1) end
  local lat = {}
  local ok = true
  local t0 = now()
  for i = 1, N do
    local a = now()
    if to_thread(trivial, i) ~= i + 1 then ok = false end
    lat[i] = now() - a
  end
  local secs = now() - t0
  table.sort(lat)
  local function pct(p) return ("%.1f"):format(lat[math.max(1, math.floor(N * p))] * 1e6) end
  result({ peer = "aio", wl = "to_thread", n = N, secs = secs, rate = N / secs,
           unit = "calls/s", ok = ok, median_us = pct(0.5), p10_us = pct(0.1),
           p90_us = pct(0.9), p99_us = pct(0.99) })
end)
