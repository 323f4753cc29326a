#!/bin/sh
# Runs the I/O benchmarks side by side in one session, interleaved, RUNS
# times each (default 5), and prints every RESULT line, then the median
# and range of each peer's rate and the ratio of aio's median to each.
#   sh bench/io_compare.sh [RUNS]       (from the repository root, after make)
# Peers: luv callbacks (lua-luv), Python asyncio streams (python3); the
# to_thread round trip (aio only).
set -u
RUNS=${1:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=0
while [ "$i" -lt "$RUNS" ]; do
  lua5.4 bench/aio_tcp.lua | tee -a "$out"
  lua5.4 bench/luv_tcp.lua | tee -a "$out"
  python3 bench/asyncio_tcp.py asyncio | tee -a "$out"
  lua5.4 bench/aio_thread.lua | tee -a "$out"
  i=$((i + 1))
done
lua5.4 - "$out" <<'LUA'
local rates, med_us = {}, {}
for line in io.lines(arg[1]) do
  local peer, wl = line:match("peer=(%S+) wl=(%S+)")
  local rate = tonumber(line:match(" rate=(%d+)"))
  if peer and rate then
    local key = peer .. " " .. wl
    rates[key] = rates[key] or {}
    table.insert(rates[key], rate)
    local m = tonumber(line:match("median_us=([%d.]+)"))
    if m then med_us[key] = med_us[key] or {}; table.insert(med_us[key], m) end
  end
end
local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end
local keys = {}
for k in pairs(rates) do keys[#keys + 1] = k end
table.sort(keys)
local aio = rates["aio tcp_echo"] and median(rates["aio tcp_echo"])
for _, k in ipairs(keys) do
  local t = rates[k]
  local m = median(t)
  local line = ("%-22s median %8.0f /s  range %.0f-%.0f  (%d runs)"):format(k, m, t[1], t[#t], #t)
  if k:match("tcp_echo$") and aio and not k:match("^aio ") then
    line = line .. ("  aio/%s = %.2f"):format(k:match("^(%S+)"), aio / m)
  end
  if med_us[k] then
    local u = med_us[k]
    line = line .. ("  median round trip %.1f us (runs %.1f-%.1f)"):format(median(u), u[1], u[#u])
  end
  print(line)
end
LUA
