-- Helpers of the I/O benchmarks (bench/aio_tcp.lua, aio_thread.lua,
-- luv_tcp.lua, aio_redis.lua): the peak memory, a watchdog, and the RESULT
-- line they print, in the format of ../shared/bench (RESULT peer=... wl=...
-- n=... secs=... rate=... unit=... rss_kb=... ok=..., then other fields
-- sorted). See LICENSE

local M = {}

--- Peak resident set size of this process in KiB (VmHWM).
function M.peak_rss_kb()
  local f = io.open("/proc/self/status", "r")
  if not f then return -1 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)")) or -1
end

--- In a task: a watchdog task that ends the process (status 3) after
--- `secs` seconds (BENCH_TIMEOUT, 120 by default); cancel it when done.
function M.watchdog(secs)
  local aio = require "aio"
  secs = secs or tonumber(os.getenv("BENCH_TIMEOUT") or "120")
  return aio.spawn(function()
    aio.sleep(secs)
    io.stderr:write("timeout\n")
    os.exit(3)
  end)
end

--- Prints the RESULT line of `t` (secs and rate formatted, ok 0/1).
function M.result(t)
  local order = { "peer", "wl", "n", "secs", "rate", "unit", "rss_kb", "ok" }
  t.rss_kb = M.peak_rss_kb()
  if type(t.secs) == "number" then t.secs = ("%.4f"):format(t.secs) end
  if type(t.rate) == "number" then t.rate = ("%.0f"):format(t.rate) end
  if type(t.ok) == "boolean" then t.ok = t.ok and 1 or 0 end
  local parts, seen = {}, {}
  for _, k in ipairs(order) do
    parts[#parts + 1] = k .. "=" .. tostring(t[k])
    seen[k] = true
  end
  local rest = {}
  for k in pairs(t) do if not seen[k] then rest[#rest + 1] = k end end
  table.sort(rest)
  for _, k in ipairs(rest) do parts[#parts + 1] = k .. "=" .. tostring(t[k]) end
  io.stdout:write("RESULT ", table.concat(parts, " "), "\n")
  io.stdout:flush()
end

return M
