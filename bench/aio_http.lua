-- aio.http benchmarks W5 and W6, mirroring ../shared/bench/peers
-- (luahttp_bench.lua, aiohttp_bench.py): same workloads, same arguments,
-- same RESULT line.
--
-- usage (from the repository root):
--   lua5.4 bench/aio_http.lua w5 URL [N [CONC [LEN]]]
--   lua5.4 bench/aio_http.lua w6 URL [N [LEN]]
--   w5  N GETs (default 20,000) of URL by CONC tasks (default 64) sharing one
--       aio.http.Session whose pool keeps at most CONC connections; every
--       response must be 200 with a LEN-byte body (default 1024)
--   w6  N GETs (default 1,000) started at once, one task each, one Session
--       without a connection limit (max_connections = 0); every response
--       must be 200 with a LEN-byte body (default 2)
--
-- URL must point at 127.0.0.1. Finds aio in ./build and ./lua first (after
-- `make`), else through LUA_PATH/LUA_CPATH. Prints one line:
-- RESULT peer=aio wl=... n=... secs=... rate=... unit=req/s rss_kb=... ok=...
-- Bounded in time: a watchdog task exits with status 3 after BENCH_TIMEOUT
-- seconds (default 120).

package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local aio = require "aio"
local benchlib = require "benchlib"
local result = benchlib.result

local wl, url = arg[1], arg[2]
if (wl ~= "w5" and wl ~= "w6") or not url then
  io.stderr:write("usage: lua5.4 bench/aio_http.lua w5|w6 http://127.0.0.1:PORT/PATH [N ...]\n")
  os.exit(2)
end
if not url:match("^http://127%.0%.0%.1:%d+/") then
  io.stderr:write("URL must be http://127.0.0.1:PORT/PATH\n")
  os.exit(2)
end

local good, bad = 0, {}
local function count_bad(k)
  k = tostring(k):gsub("%s+", "_")
  bad[k] = (bad[k] or 0) + 1
end

local function get(session, length)
  local ok, r = pcall(session.get, session, url)
  if not ok then
    count_bad(aio.is_error(r) and r.kind or r)
  elseif r.status == 200 and #r.body == length then
    good = good + 1
  else
    count_bad("status" .. r.status .. "/len" .. #r.body)
  end
end

local W = {}

function W.w5(n, conc, length)
  local session = aio.http.Session { max_connections = conc }
  local next_i = 0
  local function worker()
    while next_i < n do
      next_i = next_i + 1
      get(session, length)
    end
  end
  local t0 = aio.now()
  local tasks = {}
  for i = 1, conc do tasks[i] = aio.spawn(worker) end
  for i = 1, conc do tasks[i]:await() end
  local dt = aio.now() - t0
  session:close()
  return dt, { conc = conc }
end

function W.w6(n, length)
  local session = aio.http.Session { max_connections = 0 }
  local lat_max = 0
  local function one()
    local t = aio.now()
    get(session, length)
    local l = aio.now() - t
    if l > lat_max then lat_max = l end
  end
  local t0 = aio.now()
  local tasks = {}
  for i = 1, n do tasks[i] = aio.spawn(one) end
  for i = 1, n do tasks[i]:await() end
  local dt = aio.now() - t0
  session:close()
  return dt, { lat_max = string.format("%.3f", lat_max) }
end

local n, dt, extra
aio.run(function()
  local watchdog = benchlib.watchdog()
  if wl == "w5" then
    n = tonumber(arg[3]) or 20000
    dt, extra = W.w5(n, tonumber(arg[4]) or 64, tonumber(arg[5]) or 1024)
  else
    n = tonumber(arg[3]) or 1000
    dt, extra = W.w6(n, tonumber(arg[4]) or 2)
  end
  watchdog:cancel()
end)

local errs = {}
for k, v in pairs(bad) do errs[#errs + 1] = k .. ":" .. v end
table.sort(errs)
local t = { peer = "aio", wl = wl, n = n, secs = dt, rate = good / dt, unit = "req/s",
  ok = good == n, good = good, errors = #errs > 0 and table.concat(errs, ",") or "none",
  version = aio._VERSION:gsub(" ", "-") .. "+libcurl-" .. aio.http.curl_version }
for k, v in pairs(extra) do t[k] = v end
result(t)
os.exit(good == n and 0 or 1)
