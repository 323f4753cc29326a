--[[
rate_limit.lua: pace requests with aio.RateLimiter, e.g. an API that allows
N requests per minute. All requests start at once; the limiter lets them
through at the allowed rate, in the order they asked.

Usage: lua5.4 examples/rate_limit.lua [REQUESTS] [PER_MINUTE] [URL]
  REQUESTS    requests to send (default 12)
  PER_MINUTE  allowed rate (default 600, that is 10 per second)
  URL         send them to this URL instead of a local server
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"
local fixture = require "support.fixture_server"

local requests = tonumber(arg[1]) or 12
local per_minute = tonumber(arg[2]) or 600
local url = arg[3]

aio.run(function()
  local server
  if not url then
    server = fixture.start(function(req)
      return 200, {["content-type"] = "text/plain"}, "pong " .. req.path
    end)
    url = server.url
  end

  -- per_minute tokens per 60 s, no bursts beyond one request
  local limiter = aio.RateLimiter(per_minute, 60, 1)
  local t0 = aio.now()
  local stamps = {}
  local jobs = {}
  for i = 1, requests do
    jobs[i] = function()
      limiter:acquire()
      stamps[i] = aio.now() - t0
      return aio.http.get(("%s/ping/%d"):format(url, i)).status
    end
  end
  local statuses = aio.gather(jobs)
  for i = 1, requests do
    print(("request %2d sent at %5.2f s -> %d"):format(i, stamps[i], statuses[i]))
  end
  local span = stamps[requests] - stamps[1]
  print(("%d requests in %.2f s: %.1f per minute (limit %d)"):format(
    requests, span, span > 0 and (requests - 1) / span * 60 or 0, per_minute))
  if server then server:close() end
end)
