--[[
retry_backoff.lua: call a flaky endpoint with aio.retry: exponential
backoff between attempts, only for errors worth retrying (a 503 or a
connection failure, not a 404). Without a URL the example starts a local
server that answers 503 to the first FAILURES requests, then 200.

Usage: lua5.4 examples/retry_backoff.lua [FAILURES] [URL]
  FAILURES  how many times the local endpoint fails first (default 3)
  URL       call this instead
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"
local fixture = require "support.fixture_server"

local failures = tonumber(arg[1]) or 3
local url = arg[2]

aio.run(function()
  local server
  if not url then
    local calls = 0
    server = fixture.start(function()
      calls = calls + 1
      if calls <= failures then return 503, {}, "busy, try again" end
      return 200, {["content-type"] = "text/plain"}, "finally, an answer"
    end)
    url = server.url .. "/flaky"
  end

  local attempt, t0 = 0, aio.now()
  local body = aio.retry(function()
    attempt = attempt + 1
    print(("attempt %d at %.2f s"):format(attempt, aio.now() - t0))
    return aio.http.get(url):raise_for_status().body
  end, {
    attempts = failures + 2,
    delay = 0.1,            -- 0.1, 0.2, 0.4, ... seconds, with jitter
    factor = 2,
    retry_on = function(err)
      -- server trouble and transport failures are worth another try
      return (aio.is_error(err, "http") and err.status >= 500)
        or aio.is_error(err, "connect") or aio.is_error(err, "timeout")
    end,
  })
  print(("got %q after %d attempts in %.2f s"):format(body, attempt, aio.now() - t0))
  if server then server:close() end
end)
