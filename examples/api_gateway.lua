--[[
api_gateway.lua: one incoming request needs five backend services. Asked
one after the other they take the sum of their latencies (about 1 s);
asked concurrently with aio.gather, about the slowest one (about 200 ms).
Without a base URL the example starts five local services that answer after
~200 ms each.

Usage: lua5.4 examples/api_gateway.lua [LATENCY] [URL]
  LATENCY  seconds each local service takes (default 0.2)
  URL      base URL of the services (URL/user, URL/orders, ...) instead
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"
local cjson = require "cjson"
local fixture = require "support.fixture_server"

local latency = tonumber(arg[1]) or 0.2
local base = arg[2]

local SERVICES = {"user", "orders", "recommendations", "inventory", "reviews"}

aio.run(function()
  local server
  if not base then
    server = fixture.start(function(req)
      aio.sleep(latency * (0.9 + 0.2 * math.random()))
      return 200, {["content-type"] = "application/json"},
        cjson.encode({service = req.path:sub(2), ok = true})
    end)
    base = server.url
  end
  local session <close> = aio.http.Session{base_url = base, timeout = 5}

  local function call(name)
    return session:get("/" .. name):raise_for_status():json()
  end

  local t0 = aio.now()
  for _, name in ipairs(SERVICES) do call(name) end
  print(("one after the other: %.2f s"):format(aio.now() - t0))

  t0 = aio.now()
  local calls = {}
  for i, name in ipairs(SERVICES) do calls[i] = function() return call(name) end end
  local replies = aio.gather(calls)
  local page = {}
  for i, name in ipairs(SERVICES) do page[name] = replies[i].ok end
  print(("concurrently:        %.2f s"):format(aio.now() - t0))
  print("combined: " .. cjson.encode(page))
  if server then server:close() end
end)
