--[[
http_server.lua: a small REST API with aio.http.App: routes with
parameters, JSON in and out, a middleware that logs and times every
request, static files, a server-sent-events endpoint streamed with
req:respond, database endpoints that query PostgreSQL through an
aio.pg pool shared by every request, and a graceful shutdown on SIGTERM
(requests in flight finish, for up to 5 s).

Usage: lua5.4 examples/http_server.lua [PORT] [--db=DSN] [--self-test]
  PORT         port to listen on (default 8080; 0: any free port)
  --db=DSN     the PostgreSQL database of the /db endpoints (a libpq
               connection string or URI, postgresql://user@host:5432/db);
               default: $DATABASE_URL. Without one, /db answers 503.
  --self-test  call the endpoints with aio's client, then send SIGTERM to
               this process and let the server shut down
Then try: curl localhost:8080/items, curl -d '{"name":"pen"}' localhost:8080/items,
curl -N localhost:8080/events, curl 'localhost:8080/db/squares?upto=5',
or open http://localhost:8080/static/ .
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"

local port, self_test, dsn = nil, false, os.getenv("DATABASE_URL")
for _, a in ipairs(arg) do
  if a == "--self-test" then self_test = true
  elseif a:match("^%-%-db=") then dsn = a:sub(6)
  elseif not port and math.tointeger(tonumber(a)) then port = math.tointeger(tonumber(a))
  else io.stderr:write("usage: lua5.4 examples/http_server.lua [PORT] [--db=DSN] [--self-test]\n") os.exit(2)
  end
end
port = port or (self_test and 0 or 8080)
if dsn == "" then dsn = nil end
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

-- the database: one pool of connections for every request (opened in
-- aio.run below); without a DSN the /db endpoints say so
local pool
local NO_DB = { status = 503, json = { error = "no database configured: "
  .. "start with --db=DSN or set DATABASE_URL" } }

-- squares computed by PostgreSQL: /db/squares?upto=N (N from 1 to 1000),
-- the parameter bound ($1), never spliced into the SQL
app:get("/db/squares", function(req)
  if not pool then return NO_DB end
  local upto = math.tointeger(tonumber(req.query.upto or "10"))
  if not upto or upto < 1 or upto > 1000 then
    return { status = 422, json = { error = "upto must be an integer from 1 to 1000" } }
  end
  local rows = pool:query("SELECT n, n * n AS square FROM generate_series(1, $1::int) n", upto)
  local list = {}
  for i, r in ipairs(rows) do list[i] = { n = r.n, square = r.square } end
  return { json = list }
end)

-- the server's clock and version, and how busy the pool is
app:get("/db/status", function()
  if not pool then return NO_DB end
  local row = pool:query_one("SELECT now()::text AS now, current_setting('server_version') AS version")
  return { json = { now = row.now, version = row.version, pool = pool:stats() } }
end)

aio.run(function()
  local db <close> = dsn and aio.pg.Pool{ dsn = dsn, max = 10 }
  pool = db
  local server <close> = aio.http.listen(app, { port = port })
  print("listening on " .. server.url)
  print(pool and "database: a pool of up to 10 connections" or "database: none configured")
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
      local squares = aio.http.get(base .. "/db/squares?upto=4")
      print("db squares: " .. squares.status .. " " .. squares.body)
      if pool then
        print("db bad upto: " .. aio.http.get(base .. "/db/squares?upto=x").status)
        local status = aio.http.get(base .. "/db/status")
        print("db status: " .. status.status .. " " .. status.body)
        -- 20 requests at once share the pool's connections
        local many = {}
        for i = 1, 20 do
          many[i] = function() return aio.http.get(base .. "/db/squares?upto=" .. i).status end
        end
        local ok = 0
        for _, code in ipairs(aio.gather(many)) do if code == 200 then ok = ok + 1 end end
        print(("db concurrent: %d of 20 answered 200"):format(ok))
      end
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
