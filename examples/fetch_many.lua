--[[
fetch_many.lua: fetch many URLs with at most a few in flight at a time (an
aio.Semaphore), time each one, and collect the failures with aio.settle
instead of stopping at the first. Without URLs the example starts a local
server where some items are slow, some fail with 500, and some URLs point
at a port where nothing listens.

Usage: lua5.4 examples/fetch_many.lua [N] [IN_FLIGHT] [URL...]
  N          URLs to fetch from the local server (default 100)
  IN_FLIGHT  how many at once (default 10)
  URL...     fetch these instead
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"
local fixture = require "support.fixture_server"

local n = tonumber(arg[1]) or 100
local in_flight = tonumber(arg[2]) or 10

aio.run(function()
  local urls, server = {}, nil
  for i = 3, #arg do urls[#urls + 1] = arg[i] end
  if #urls == 0 then
    server = fixture.start(function(req)
      local id = tonumber(req.path:match("/item/(%d+)")) or 0
      aio.sleep(0.01 + (id % 7) * 0.01)
      if id % 13 == 0 then return 500, {}, "item " .. id .. " is broken" end
      return 200, {["content-type"] = "text/plain"}, ("item %d\n"):format(id):rep(id % 5 + 1)
    end)
    for i = 1, n do
      -- every 25th URL goes to a port where nothing listens
      urls[i] = i % 25 == 0 and ("http://127.0.0.1:9/item/" .. i) or (server.url .. "/item/" .. i)
    end
  end

  local sem = aio.Semaphore(in_flight)
  local running, most = 0, 0
  local jobs = {}
  for i, url in ipairs(urls) do
    jobs[i] = function()
      local permit <close> = sem:acquire()
      running = running + 1
      most = math.max(most, running)
      local t0 = aio.now()
      local ok, resp = pcall(aio.http.get, url, {timeout = 10})
      running = running - 1
      if not ok then error(resp, 0) end
      resp:raise_for_status()
      return {bytes = #resp.body, secs = aio.now() - t0}
    end
  end

  local t0 = aio.now()
  local results = aio.settle(jobs)
  local total = aio.now() - t0

  local fetched, bytes, failures = 0, 0, {}
  for i, r in ipairs(results) do
    if r.ok then
      fetched = fetched + 1
      bytes = bytes + r.value.bytes
    else
      failures[#failures + 1] = ("  %s: %s"):format(urls[i], tostring(r.error))
    end
  end
  print(("%d of %d fetched (%d bytes) in %.2f s, at most %d in flight"):format(
    fetched, #urls, bytes, total, most))
  print(#failures .. " failed:")
  for _, line in ipairs(failures) do print(line) end
  if server then server:close() end
end)
