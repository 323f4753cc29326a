--[[
health_check.lua: the "500-second problem". A thousand endpoints that each
take 500 ms to answer would take 500 s checked one after the other; checked
concurrently they take about half a second. Without a URL the example starts
a local server (support/fixture_server.lua, in the same loop) whose every
endpoint answers after 500 ms.

Usage: lua5.4 examples/health_check.lua [N] [URL]
  N    endpoints to check (default 1000); with the local server this needs
       about 2*N file descriptors (ulimit -n)
  URL  check URL/health/1 .. URL/health/N instead of the local server
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"
local fixture = require "support.fixture_server"

local n = tonumber(arg[1]) or 1000
local base = arg[2]

aio.run(function()
  local server
  if not base then
    server = fixture.start(function()
      aio.sleep(0.5)                         -- every endpoint is slow
      return 200, {["content-type"] = "application/json"}, '{"status":"up"}'
    end)
    base = server.url
  end

  -- one session: all N in flight at once (the default limit is 100)
  local session <close> = aio.http.Session{max_connections = n, timeout = 30}
  local checks = {}
  for i = 1, n do
    checks[i] = function()
      return session:get(("%s/health/%d"):format(base, i)):raise_for_status().status
    end
  end

  local t0 = aio.now()
  local results = aio.settle(checks)
  local elapsed = aio.now() - t0

  local up, first_error = 0, nil
  for _, r in ipairs(results) do
    if r.ok then up = up + 1 else first_error = first_error or r.error end
  end
  print(("%d endpoints checked in %.2f s: %d up, %d down (one after the other: about %.0f s)")
    :format(n, elapsed, up, n - up, n * 0.5))
  if first_error then print("first failure: " .. tostring(first_error)) end
  if server then server:close() end
end)
