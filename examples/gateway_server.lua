--[[
gateway_server.lua: the API gateway as a real server. Each request to
/page fans out to five backend services at once (aio.gather) under a
deadline (aio.timeout): the answer comes in about the slowest backend's
time, not the sum, and a backend slower than the deadline gives 504
Gateway Timeout instead of a hanging client.
Without a base URL the example starts five local backends (aio.http
servers too) that answer after ~LATENCY seconds; /page?slow=NAME makes
backend NAME take 10 times longer.

Usage: lua5.4 examples/gateway_server.lua [LATENCY] [DEADLINE] [PORT] [--self-test]
  LATENCY    seconds each local backend takes (default 0.2)
  DEADLINE   seconds the gateway waits for all of them (default 1)
  PORT       port of the gateway (default 8080; 0: any free port)
  --self-test  ask /page twice (normal, then too slow), print, and stop
Then try: curl localhost:8080/page and curl localhost:8080/page?slow=reviews
]]
local aio = require "aio"

local self_test = false
local args = {}
for _, a in ipairs(arg) do
  if a == "--self-test" then self_test = true else args[#args + 1] = a end
end
local latency = tonumber(args[1]) or 0.2
local deadline = tonumber(args[2]) or 1
local port = tonumber(args[3]) or (self_test and 0 or 8080)

local SERVICES = { "user", "orders", "recommendations", "inventory", "reviews" }

aio.run(function()
  -- the five backends: one server, a route per service
  local backends = aio.http.App()
  backends:get("/{service}", function(req)
    local slow = req.query.slow == req.params.service
    aio.sleep(latency * (0.9 + 0.2 * math.random()) * (slow and 10 or 1))
    return { json = { service = req.params.service, ok = true } }
  end)
  local backend <close> = aio.http.listen(backends, { port = 0 })
  local session <close> = aio.http.Session { base_url = backend.url, timeout = 30 }

  local gateway = aio.http.App()
  gateway:get("/page", function(req)
    local query = req.query.slow and { slow = req.query.slow } or nil
    local calls = {}
    for i, name in ipairs(SERVICES) do
      calls[i] = function()
        return session:get("/" .. name, { query = query }):raise_for_status():json()
      end
    end
    local t0 = aio.now()
    local ok, replies = pcall(aio.timeout, deadline, aio.gather, calls)
    if not ok then
      if aio.is_error(replies, "timeout") then
        return { status = 504, json = { error = ("the backends took more than %g s"):format(deadline) } }
      end
      error(replies, 0)                 -- a backend failed: 500, reported
    end
    local page = { took_ms = math.floor((aio.now() - t0) * 1000) }
    for i, name in ipairs(SERVICES) do page[name] = replies[i].ok end
    return { json = page }
  end)
  local server <close> = aio.http.listen(gateway, { port = port })
  print("gateway on " .. server.url .. ", backends on " .. backend.url)
  aio.signal("SIGTERM", function() server:close(5) end)

  if self_test then
    local t0 = aio.now()
    local r = aio.http.get(server.url .. "/page")
    print(("/page: %d in %.2f s: %s"):format(r.status, aio.now() - t0, r.body))
    t0 = aio.now()
    r = aio.http.get(server.url .. "/page?slow=reviews")
    print(("/page?slow=reviews: %d in %.2f s: %s"):format(r.status, aio.now() - t0, r.body))
    return
  end
  server:wait()
end)
