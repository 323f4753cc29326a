--[[
http_server.lua: a small REST API with aio.http.App: routes with
parameters, JSON in and out, a middleware that logs and times every
request, static files, a server-sent-events endpoint streamed with
req:respond, and a graceful shutdown on SIGTERM (requests in flight
finish, for up to 5 s).

Usage: lua5.4 examples/http_server.lua [PORT] [--self-test]
  PORT         port to listen on (default 8080; 0: any free port)
  --self-test  call the endpoints with aio's client, then send SIGTERM to
               this process and let the server shut down
Then try: curl localhost:8080/items, curl -d '{"name":"pen"}' localhost:8080/items,
curl -N localhost:8080/events, or open http://localhost:8080/static/ .
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"

local port = tonumber(arg[1]) or 8080
local self_test = arg[2] == "--self-test" or arg[1] == "--self-test"
if arg[1] == "--self-test" then port = 0 end
local here = arg[0]:match("^(.*/)") or "./"

-- the data: items by id
local items, next_id = {}, 1
local function add(name)
  items[next_id] = { id = next_id, name = name }
  next_id = next_id + 1
  return items[next_id - 1]
end
add("book")
add("lamp")

local app = aio.http.App()

-- middleware: logs and times every request (404s and errors included)
app:use(function(req, next)
  local t0 = aio.now()
  local ok, res = pcall(next, req)
  local status = not ok and (aio.is_error(res) and res.response_status or 500)
    or type(res) == "table" and res.status or 200
  print(("%s %s -> %d (%.0f ms)"):format(req.method, req.target, status, (aio.now() - t0) * 1000))
  if not ok then error(res, 0) end
  return res
end)

app:get("/items", function()
  local list = {}
  for _, item in pairs(items) do list[#list + 1] = item end
  table.sort(list, function(a, b) return a.id < b.id end)
  return { json = list }
end)

app:get("/items/{id}", function(req)
  local item = items[tonumber(req.params.id)]
  if not item then return { status = 404, json = { error = "no such item" } } end
  return { json = item }
end)

app:post("/items", function(req)
  local body = req:json()            -- invalid JSON: the client gets 400
  if type(body) ~= "table" or type(body.name) ~= "string" then
    return { status = 422, json = { error = "a name is needed" } }
  end
  return { status = 201, json = add(body.name) }
end)

app:delete("/items/{id}", function(req)
  local id = tonumber(req.params.id)
  if not items[id] then return { status = 404, json = { error = "no such item" } } end
  items[id] = nil
  return { status = 204 }
end)

-- server-sent events: one event every 100 ms, five of them
app:get("/events", function(req)
  local w <close> = req:respond(200, { ["Content-Type"] = "text/event-stream",
                                       ["Cache-Control"] = "no-cache" })
  for i = 1, 5 do
    w:write(("id: %d\ndata: tick %d at %.2f\n\n"):format(i, i, aio.now()))
    aio.sleep(0.1)
  end
end)

app:static("/static", here .. "support/www")

aio.run(function()
  local server <close> = aio.http.listen(app, { port = port })
  print("listening on " .. server.url)
  aio.signal("SIGTERM", function()
    print("SIGTERM: finishing the requests in flight")
    server:close(5)
  end)

  local tester
  if self_test then
    tester = aio.spawn(function()
      local base = server.url
      print("items: " .. aio.http.get(base .. "/items").body)
      local r = aio.http.post(base .. "/items", { json = { name = "pen" } })
      print("created: " .. r.status .. " " .. r.body)
      print("item 3: " .. aio.http.get(base .. "/items/3").body)
      print("bad JSON: " .. aio.http.post(base .. "/items", { body = "{oops" }).status)
      print("deleted: " .. aio.http.delete(base .. "/items/1").status)
      print("missing: " .. aio.http.get(base .. "/items/1").status)
      local page = aio.http.get(base .. "/static/")
      print("static: " .. page.status .. " " .. page.headers["content-type"])
      local events = aio.http.get(base .. "/events", { stream = true })
      local n = 0
      for chunk in events:chunks() do
        for _ in chunk:gmatch("data: tick") do n = n + 1 end
      end
      print("events received: " .. n)
      -- a request in flight while SIGTERM arrives still gets its answer
      local slow = aio.spawn(aio.http.get, base .. "/events")
      aio.sleep(0.05)
      local pid = io.open("/proc/self/stat"):read("n")
      aio.process.run({ "kill", "-TERM", tostring(pid) })
      print("in flight during SIGTERM: " .. slow:await().status)
    end)
  end

  server:wait()
  print("server stopped")
  if tester then tester:await() end
end)
