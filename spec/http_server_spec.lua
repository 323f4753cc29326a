-- aio.http.App and aio.http.listen: routing, requests, responses,
-- HTTP/1.1 behaviour, handlers as tasks; driven by aio's own client,
-- curl, Python's aiohttp client and raw TCP.
local aio = require "aio"
local H = require "helper"
local U = require "support.server_util"
local cjson = require "cjson"

local serve = U.serve

describe("aio.http.listen", function()
  it("serves a plain handler function", H.async(function()
    local srv <close> = serve(function(req) return "hi " .. req.method .. " " .. req.path end)
    local r = aio.http.get(srv.url .. "/x/y")
    assert.are.equal(200, r.status)
    assert.are.equal("hi GET /x/y", r.body)
    assert.are.equal("text/plain; charset=utf-8", r.headers["content-type"])
    assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", r.headers.date)
    assert.is_number(srv.port)
    assert.are.equal("127.0.0.1", srv.host)
  end))

  it("routes by method and pattern, with params, query and 404/405", H.async(function()
    local app = aio.http.App()
    app:get("/users/{id}", function(req)
      return { json = { id = tonumber(req.params.id), q = req.query } }
    end)
    app:post("/users", function(req) return { status = 201, json = req:json() } end)
    app:get("/files/{path...}", function(req) return req.params.path end)
    app:route("*", "/any", function(req) return req.method end)
    app:put("/users/{id}", function(req) return "put " .. req.params.id end)
    local srv <close> = serve(app)
    local r = aio.http.get(srv.url .. "/users/42?a=1&a=2&b=x%20y&c")
    assert.are.equal(200, r.status)
    assert.are.same({ id = 42, q = { a = { "1", "2" }, b = "x y", c = "" } }, r:json())
    assert.are.equal("application/json", r.headers["content-type"])
    r = aio.http.post(srv.url .. "/users", { json = { name = "ada" } })
    assert.are.equal(201, r.status)
    assert.are.same({ name = "ada" }, r:json())
    assert.are.equal("a/b/c.txt", aio.http.get(srv.url .. "/files/a/b/c.txt").body)
    assert.are.equal("", aio.http.get(srv.url .. "/files/").body)
    assert.are.equal("DELETE", aio.http.delete(srv.url .. "/any").body)
    assert.are.equal("put 7", aio.http.put(srv.url .. "/users/7").body)
    r = aio.http.get(srv.url .. "/nope")
    assert.are.equal(404, r.status)
    r = aio.http.delete(srv.url .. "/users/7")
    assert.are.equal(405, r.status)
    assert.are.equal("GET, HEAD, PUT", r.headers.allow)
    r = aio.http.post(srv.url .. "/users/x/y")
    assert.are.equal(404, r.status)
  end))

  it("decodes the path and keeps the raw target", H.async(function()
    local srv <close> = serve(function(req) return { json = { path = req.path, target = req.target } } end)
    local r = aio.http.get(srv.url .. "/a%20b/%E2%82%AC?x=%41")
    assert.are.same({ path = "/a b/\226\130\172", target = "/a%20b/%E2%82%AC?x=%41" }, r:json())
  end))

  it("accepts absolute-form targets", H.async(function()
    local srv <close> = serve(function(req) return req.path .. "|" .. tostring(req.query.q) .. "|" .. req.target end)
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET http://example/abs/p%41th?q=1 HTTP/1.1\r\nHost: example\r\n\r\n")
    assert.are.equal("/abs/pAth|1|http://example/abs/p%41th?q=1", U.read_response(s).body)
  end))

  it("answers HEAD with the GET route's headers and no body", H.async(function()
    local app = aio.http.App()
    app:get("/", function() return "hello world" end)
    local srv <close> = serve(app)
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local r = U.read_response(s, true)
    assert.are.equal(200, r.status)
    assert.are.equal("11", r.headers["content-length"])
    r = U.read_response(s)                  -- the HEAD response had no body
    assert.are.equal("hello world", r.body)
  end))

  it("gives handlers the request fields", H.async(function()
    local seen
    local srv <close> = serve(function(req)
      seen = {
        method = req.method, version = req.http_version, host = req.headers.host,
        multi = req.headers["x-multi"], remote = req.remote_address,
        list = req:header_list(), params = req.params,
      }
      return ""
    end)
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET /p HTTP/1.1\r\nHost: example\r\nX-Multi: a\r\nX-MULTI: b\r\n\r\n")
    assert.are.equal(200, U.read_response(s).status)
    assert.are.equal("GET", seen.method)
    assert.are.equal("1.1", seen.version)
    assert.are.equal("example", seen.host)
    assert.are.equal("a, b", seen.multi)
    assert.are.equal("127.0.0.1", seen.remote)
    assert.are.same({}, seen.params)
    assert.are.same({ "Host", "example", name = "Host", value = "example" }, seen.list[1])
    assert.are.same({ "X-MULTI", "b", name = "X-MULTI", value = "b" }, seen.list[3])
  end))

  it("reads request bodies: whole, in chunks, JSON, forms", H.async(function()
    local app = aio.http.App()
    app:post("/body", function(req) return req:body() .. "|" .. req:body() end)
    app:post("/chunks", function(req)
      local n, parts = 0, {}
      for chunk in req:chunks() do n = n + 1; parts[n] = chunk end
      return { json = { size = #table.concat(parts) } }
    end)
    app:post("/form", function(req) return { json = req:form() } end)
    app:post("/json", function(req) return { json = req:json() } end)
    local srv <close> = serve(app)
    assert.are.equal("abc|abc", aio.http.post(srv.url .. "/body", { body = "abc" }).body)
    local big = ("x"):rep(300000)
    assert.are.same({ size = 300000 }, aio.http.post(srv.url .. "/chunks", { body = big }):json())
    assert.are.same({ a = "1 2", b = { "x", "y" } },
      aio.http.post(srv.url .. "/form", { form = { a = "1 2", b = { "x", "y" } } }):json())
    local r = aio.http.post(srv.url .. "/json", { body = "{not json", headers = { ["content-type"] = "application/json" } })
    assert.are.equal(400, r.status)
    assert.matches("invalid JSON", r.body)
  end))

  it("reads chunked request bodies (aiohttp client)", H.async(function()
    local srv <close> = serve(function(req) return { json = { n = #req:body(), te = req.headers["transfer-encoding"] } } end)
    local out = U.aiohttp({ base = srv.url, requests = {
      { method = "POST", path = "/", body = ("abcdefghij"):rep(100), chunked = true },
    } })
    assert.are.equal(200, out[1].status, out[1].error)
    assert.are.same({ n = 1000, te = "chunked" }, out[1].json)
  end))

  it("serves Python's aiohttp client on one keep-alive session, concurrently", H.async(function()
    local app = aio.http.App()
    app:get("/n/{n}", function(req)
      aio.sleep(0.01)
      return { json = { n = tonumber(req.params.n) } }
    end)
    app:post("/echo", function(req) return { status = 201, headers = { ["X-Echo"] = "1" }, body = req:body() } end)
    local srv <close> = serve(app)
    local reqs = {}
    for i = 1, 40 do reqs[i] = { path = "/n/" .. i } end
    reqs[41] = { method = "POST", path = "/echo", body = "payload" }
    local out = U.aiohttp({ base = srv.url, requests = reqs, concurrency = 8 })
    for i = 1, 40 do assert.are.same({ n = i }, out[i].json, out[i].error) end
    assert.are.equal(201, out[41].status)
    assert.are.equal("payload", out[41].body)
    assert.are.equal("1", out[41].headers["x-echo"])
    assert.is_true(srv:stats().accepted <= 8)
  end))

  it("answers curl, with 100-continue for a large upload", H.async(function()
    local dir = H.tmpdir()
    local f = assert(io.open(dir .. "/up.bin", "wb"))
    f:write(("u"):rep(2 * 1024 * 1024 + 5))
    f:close()
    local srv <close> = serve(function(req)
      return { json = { n = #req:body(), expect = req.headers.expect } }
    end, { max_body = 4 * 1024 * 1024 })
    local out = U.curl({ "-H", "Content-Type: application/octet-stream", "--data-binary", "@" .. dir .. "/up.bin",
      "-w", "\n%{http_code} %{time_total}", srv.url .. "/up" })
    H.rmtree(dir)
    local body, code, secs = out:match("^(.-)\n(%d+) ([%d.]+)$")
    assert.are.equal("200", code, out)
    assert.are.same({ n = 2 * 1024 * 1024 + 5, expect = "100-continue" }, cjson.decode(body))
    assert.is_true(tonumber(secs) < 0.9, "curl waited for its 1 s expect timeout: " .. secs)
  end))

  it("keeps connections alive and answers pipelined requests in order", H.async(function()
    local app = aio.http.App()
    app:get("/slow", function() aio.sleep(0.05) return "slow" end)
    app:get("/fast", function() return "fast" end)
    app:post("/echo", function(req) return req:body() end)
    local srv <close> = serve(app)
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" ..
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" ..
            "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n" ..
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n" ..
            "GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local bodies = {}
    for i = 1, 5 do bodies[i] = U.read_response(s).body end
    assert.are.same({ "slow", "abc", "fast", "de", "fast" }, bodies)
    assert.is_true(U.closes(s))
    assert.are.equal(1, srv:stats().accepted)
    assert.are.equal(5, srv:stats().requests)
  end))

  it("skips an unread body to keep the connection alive", H.async(function()
    local srv <close> = serve(function() return "ignored the body" end)
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789" ..
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local r1, r2 = U.read_response(s), U.read_response(s)
    assert.are.equal("ignored the body", r1.body)
    assert.is_nil(r1.headers.connection)
    assert.are.equal(200, r2.status)
  end))

  it("serves HTTP/1.0 clients, with and without keep-alive", H.async(function()
    local srv <close> = serve(function(req) return "v" .. req.http_version end)
    local out = U.raw(srv.port, "GET / HTTP/1.0\r\n\r\n")
    assert.matches("^HTTP/1.1 200 OK\r\n", out)
    assert.matches("Connection: close\r\n", out)
    assert.matches("\r\n\r\nv1.0$", out)
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    local r = U.read_response(s)
    assert.are.equal("keep-alive", r.headers.connection)
    s:write("GET / HTTP/1.0\r\n\r\n")
    assert.are.equal("v1.0", U.read_response(s).body)
    assert.is_true(U.closes(s))
  end))

  it("streams responses with req:respond, chunked for 1.1 and raw for 1.0", H.async(function()
    local app = aio.http.App()
    app:get("/events", function(req)
      local w = req:respond(200, { ["Content-Type"] = "text/event-stream" })
      for i = 1, 3 do
        w:write("data: " .. i .. "\n\n")
        aio.sleep(0.01)
      end
      w:close()
    end)
    app:get("/open", function(req)
      local w = req:respond()
      w:write("left "):write("open")
    end)
    local srv <close> = serve(app)
    local resp = aio.http.get(srv.url .. "/events", { stream = true })
    assert.are.equal("text/event-stream", resp.headers["content-type"])
    local got = {}
    for chunk in resp:chunks() do got[#got + 1] = chunk end
    resp:close()
    assert.are.equal("data: 1\n\ndata: 2\n\ndata: 3\n\n", table.concat(got))
    local r = aio.http.get(srv.url .. "/open")
    assert.are.equal("left open", r.body)
    assert.are.equal("application/octet-stream", r.headers["content-type"])
    local out = U.raw(srv.port, "GET /events HTTP/1.0\r\n\r\n")
    assert.matches("Connection: close\r\n", out)
    assert.not_matches("chunked", out)
    assert.matches("\r\n\r\ndata: 1\n\ndata: 2\n\ndata: 3\n\n$", out)
  end))

  it("applies backpressure to a streamed response", H.async(function()
    local wrote, done = 0, false
    local srv <close> = serve(function(req)
      local w <close> = req:respond(200)
      local chunk = ("z"):rep(65536)
      for _ = 1, 64 do
        w:write(chunk)
        wrote = wrote + 1
      end
      done = true
    end)
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    aio.sleep(0.2)
    assert.is_true(wrote < 64, "4 MiB went out to a client that reads nothing")
    assert.is_false(done)
    local total = 0
    assert.matches("^HTTP/1.1 200", s:read_line())
    repeat local line = s:read_line() until line == ""
    while total < 64 * 65536 do
      local size = tonumber(s:read_line(), 16)
      total = total + #s:read_exactly(size)
      s:read_line()
    end
    assert.are.equal(64 * 65536, total)
    assert.is_true(done)
  end))

  it("turns handler errors into 500 and reports them on stderr", H.async(function()
    local app = aio.http.App()
    app:get("/boom", function() error("kaboom") end)
    app:get("/nil", function() end)
    app:get("/bad-header", function() return { headers = { ["X-Evil"] = "a\r\nSet-Cookie: x" }, body = "" } end)
    app:get("/teapot", function() error(aio.Error("http", "short and stout", { response_status = 418 })) end)
    local srv <close> = serve(app)
    local lines = {}
    local real = io.stderr
    io.stderr = { write = function(_, ...) for _, s in ipairs({ ... }) do lines[#lines + 1] = s end end, flush = function() end }
    local ok, err = pcall(function()
      local r = aio.http.get(srv.url .. "/boom")
      assert.are.equal(500, r.status)
      assert.not_matches("kaboom", r.body)
      assert.are.equal(500, aio.http.get(srv.url .. "/nil").status)
      assert.are.equal(500, aio.http.get(srv.url .. "/bad-header").status)
      r = aio.http.get(srv.url .. "/teapot")
      assert.are.equal(418, r.status)
      assert.are.equal("short and stout\n", r.body)
    end)
    io.stderr = real
    assert(ok, err)
    local text = table.concat(lines)
    assert.matches("handler of GET /boom failed: .*kaboom.*stack traceback", text)
    assert.matches("GET /nil failed: usage: the handler returned no response", text)
    assert.matches("GET /bad%-header failed: usage: .*response header 'X%-Evil': the value contains CR, LF or NUL", text)
    assert.not_matches("teapot", text)
  end))

  it("runs middleware outermost first, around 404s too", H.async(function()
    local app = aio.http.App()
    local log = {}
    app:use(function(req, next)
      log[#log + 1] = "a>" .. req.path
      local res = next(req)
      log[#log + 1] = "a<"
      if type(res) == "string" then res = { body = res } end
      res.headers = res.headers or {}
      res.headers["X-Mw"] = "a"
      return res
    end)
    app:use(function(req, next)
      if req.headers.authorization ~= "yes" then return { status = 401, body = "no" } end
      return next(req)
    end)
    app:get("/", function() log[#log + 1] = "h" return "ok" end)
    local srv <close> = serve(app)
    local r = aio.http.get(srv.url .. "/", { headers = { authorization = "yes" } })
    assert.are.equal("ok", r.body)
    assert.are.equal("a", r.headers["x-mw"])
    assert.are.equal(401, aio.http.get(srv.url .. "/").status)
    r = aio.http.get(srv.url .. "/missing", { headers = { authorization = "yes" } })
    assert.are.equal(404, r.status)
    assert.are.equal("a", r.headers["x-mw"])
    assert.are.same({ "a>/", "h", "a<", "a>/", "a<", "a>/missing", "a<" }, log)
  end))

  it("sends headers from tables, repeated ones from arrays", H.async(function()
    local srv <close> = serve(function()
      return { status = 202, headers = { ["Set-Cookie"] = { "a=1", "b=2" }, ["X-Num"] = 5,
        ["Content-Type"] = "text/html" }, body = "<p>" }
    end)
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local r = U.read_response(s)
    assert.are.equal(202, r.status)
    assert.are.equal("a=1, b=2", r.headers["set-cookie"])
    assert.are.equal("5", r.headers["x-num"])
    assert.are.equal("text/html", r.headers["content-type"])
    assert.are.equal("<p>", r.body)
    assert.matches("Set%-Cookie: a=1\r\nSet%-Cookie: b=2\r\n", r.raw_head)
  end))

  it("cancels the handler of a client that disconnects", H.async(function()
    local started, err = aio.Event(), nil
    local srv <close> = serve(function()
      started:set()
      local ok, e = pcall(aio.sleep, 10)
      err = e
      if not ok then error(e, 0) end
      return "late"
    end)
    local s = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    started:wait()
    s:close()
    local t0 = aio.now()
    while err == nil and aio.now() - t0 < 5 do aio.sleep(0.01) end
    assert.is_true(aio.is_error(err, "cancelled"), tostring(err))
    while srv:stats().in_flight > 0 do aio.sleep(0.01) end
  end))

  it("hands a connection over as a Stream with req:_takeover()", H.async(function()
    local srv <close> = serve(function(req)
      local s = req:_takeover()
      s:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
      while true do
        local line = s:read_line()
        if line == nil or line == "bye" then break end
        s:write(line:upper(), "\n")
      end
      s:close()
    end)
    local c <close> = aio.tcp.connect("127.0.0.1", srv.port)
    -- the first line arrives with the head: it must stay buffered for the stream
    c:write("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nearly\n")
    local r = U.read_response(c, true)
    assert.are.equal(101, r.status)
    assert.are.equal("EARLY", c:read_line())
    assert.are.equal(1, srv:stats().taken_over)
    assert.are.equal(0, srv:stats().in_flight)
    c:write("again\n")
    assert.are.equal("AGAIN", c:read_line())
    c:write("bye\n")
    assert.is_nil(c:read())
    while srv:stats().connections > 0 do aio.sleep(0.01) end
  end))

  it("closes req._ws when a handler that took over ends (the WebSocket hook)", H.async(function()
    local closed = {}
    local app = aio.http.App()
    local function taker(how)
      return function(req)
        local s = req:_takeover()
        rawset(req, "_ws", { close = function() closed[how] = true; s:close() end })
        if how == "fails" then error("after takeover") end
        if how == "waits" then aio.sleep(30) end
        return "ignored"
      end
    end
    app:get("/returns", taker("returns"))
    app:get("/fails", taker("fails"))
    app:get("/waits", taker("waits"))
    local srv = serve(app)
    local real = io.stderr
    local text = {}
    io.stderr = { write = function(_, ...) for _, v in ipairs({ ... }) do text[#text + 1] = v end end, flush = function() end }
    local waiting = aio.tcp.connect("127.0.0.1", srv.port)
    local ok, err = pcall(function()
      for _, how in ipairs({ "returns", "fails" }) do
        local c <close> = aio.tcp.connect("127.0.0.1", srv.port)
        c:write("GET /" .. how .. " HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.is_nil(c:read())
      end
      assert.is_true(closed.returns and closed.fails)
      waiting:write("GET /waits HTTP/1.1\r\nHost: x\r\n\r\n")
      while srv:stats().taken_over == 0 do aio.sleep(0.01) end
    end)
    io.stderr = real
    assert(ok, err)
    assert.matches("GET /fails failed: .*after takeover", table.concat(text))
    srv:close()                      -- neither waits for /waits nor cancels it
    assert.is_nil(closed.waits)
    local handler
    for _, t in ipairs(aio.tasks()) do if t ~= aio.current() then handler = t end end
    handler:cancel()                 -- as the end of the run would
    pcall(handler.await, handler)
    assert.is_true(closed.waits)
    assert.is_nil(waiting:read())
    waiting:close()
  end))

  it("raises usage for requests that are over and bad results", H.async(function()
    local kept
    local srv <close> = serve(function(req) kept = req return "x" end)
    aio.http.get(srv.url .. "/")
    H.raises("usage", kept.body, kept)
    H.raises("usage", kept.respond, kept, 200)
    assert.has_error(function() aio.http.App():get("nope", function() end) end)
    assert.has_error(function() aio.http.App():get("/{a...}/b", function() end) end)
    assert.has_error(function() aio.http.listen(42) end)
    assert.has_error(function() aio.http.listen(function() end, { port = "x" }) end)
    assert.has_error(function() aio.http.listen(function() end, { bogus = 1 }) end,
      "bad argument #2 to 'listen' (unknown option 'bogus')")
  end))

  it("raises io for an address in use", H.async(function()
    local a <close> = serve(function() return "" end)
    local e = H.raises("io", aio.http.listen, function() return "" end, { port = a.port })
    assert.are.equal("EADDRINUSE", e.code)
  end))

  it("counts connections, requests and handlers in flight", H.async(function()
    local gate = aio.Event()
    local srv <close> = serve(function() gate:wait() return "ok" end)
    local t = aio.spawn(aio.http.get, srv.url .. "/")
    while srv:stats().in_flight == 0 do aio.sleep(0.01) end
    local st = srv:stats()
    assert.are.equal(1, st.connections)
    assert.are.equal(1, st.in_flight)
    assert.are.equal(0, st.requests)
    gate:set()
    assert.are.equal("ok", t:await().body)
    assert.are.equal(1, srv:stats().requests)
    assert.matches("^aio.http.Server %(127.0.0.1:%d+%)$", tostring(srv))
  end))

  it("listens on IPv6 and with reuse_port", H.async(function()
    local a <close> = serve(function() return "one" end, { reuse_port = true })
    local b <close> = serve(function() return "two" end, { reuse_port = true, port = a.port })
    assert.are.equal(a.port, b.port)
    local seen = {}
    for _ = 1, 20 do seen[aio.http.get(a.url .. "/").body] = true end
    assert.is_true(seen.one or seen.two)
    local v6 <close> = serve(function() return "six" end, { host = "::1" })
    assert.are.equal("six", aio.http.get("http://[::1]:" .. v6.port .. "/").body)
  end))
end)
