-- server:close([grace]): stop accepting, close idle connections, let the
-- requests in flight finish (with Connection: close) for `grace` seconds,
-- then cancel what is left; server:wait(); nothing accepted is lost.
local aio = require "aio"
local H = require "helper"
local U = require "support.server_util"

local serve = U.serve

describe("aio.http server:close", function()
  it("lets requests in flight finish within the grace, with Connection: close", H.async(function()
    local started = aio.Event()
    local srv = serve(function()
      started:set()
      aio.sleep(0.2)
      return "finished"
    end)
    local idle = aio.tcp.connect("127.0.0.1", srv.port)        -- never sends
    local busy = aio.tcp.connect("127.0.0.1", srv.port)
    busy:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    started:wait()
    local closer = aio.spawn(srv.close, srv, 5)
    aio.sleep(0.05)
    assert.is_true(U.closes(idle, 2), "the idle connection stays open")
    local e = H.raises("connect", aio.tcp.connect, "127.0.0.1", srv.port)
    assert.are.equal("ECONNREFUSED", e.code)
    local r = U.read_response(busy)
    assert.are.equal("finished", r.body)
    assert.are.equal("close", r.headers.connection)
    assert.is_true(U.closes(busy))
    local _, secs = H.timed(closer.await, closer)
    assert.is_true(secs < 1)
    idle:close()
    busy:close()
  end))

  it("cancels the handlers still running when the grace is over", H.async(function()
    local started, err = aio.Event(), nil
    local srv = serve(function()
      started:set()
      local ok, e = pcall(aio.sleep, 30)
      err = e
      if not ok then error(e, 0) end
    end)
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    started:wait()
    local _, secs = H.timed(srv.close, srv, 0.2)
    assert.is_true(secs >= 0.15 and secs < 3, secs)
    assert.is_true(aio.is_error(err, "cancelled"))
    assert.are.equal("", s:read("a"))
    assert.are.equal(0, srv:stats().in_flight)
  end))

  it("serves a request whose head was arriving when the close began", H.async(function()
    local srv = serve(function(req) return "got " .. req.path end)
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET /late HTTP/1.1\r\nHost:")
    aio.sleep(0.05)
    local closer = aio.spawn(srv.close, srv, 5)
    aio.sleep(0.05)
    s:write(" x\r\n\r\n")
    local r = U.read_response(s)
    assert.are.equal("got /late", r.body)
    assert.are.equal("close", r.headers.connection)
    closer:await()
  end))

  it("wakes server:wait() and is harmless when repeated", H.async(function()
    local srv = serve(function() return "x" end)
    local waiter = aio.spawn(srv.wait, srv)
    aio.sleep(0.01)
    assert.is_false(waiter:done())
    local a = aio.spawn(srv.close, srv, 1)
    local b = aio.spawn(srv.close, srv)
    a:await()
    b:await()
    waiter:await()
    srv:close()
    assert.matches("closed", tostring(srv))
  end))

  it("closes with <close>, and at the end of aio.run", function()
    local port
    H.run(function()
      local srv <close> = serve(function() return "x" end)
      port = srv.port
      assert.are.equal("x", aio.http.get(srv.url .. "/").body)
    end)
    H.run(function()
      H.raises("connect", aio.tcp.connect, "127.0.0.1", port)
    end)
    aio.run(function()
      local srv = serve(function() aio.sleep(30) end)
      port = srv.port
      aio.spawn(aio.http.get, srv.url .. "/")
      aio.sleep(0.05)
    end)
    H.run(function()
      H.raises("connect", aio.tcp.connect, "127.0.0.1", port)
    end)
  end)

  it("loses no accepted request under load", H.async(function()
    local seen, answered, failed = {}, {}, {}
    local srv = serve(function(req)
      local id = req.query.id
      seen[#seen + 1] = id
      aio.sleep(math.random() * 0.05)
      return id
    end)
    local stop = false
    local function client(w)
      local n = 0
      while not stop do
        n = n + 1
        local id = w .. "-" .. n
        local ok, s = pcall(aio.tcp.connect, "127.0.0.1", srv.port)
        if not ok then return end                  -- not listening any more
        local ok2, r = pcall(function()
          s:write("GET /?id=" .. id .. " HTTP/1.1\r\nHost: x\r\n\r\n")
          return U.read_response(s)
        end)
        s:close()
        if ok2 and r and r.status == 200 then answered[r.body] = true
        else failed[#failed + 1] = id end
      end
    end
    local group = aio.TaskGroup()
    for w = 1, 32 do group:spawn(client, w) end
    aio.sleep(0.3)
    srv:close(5)
    stop = true
    group:wait()
    assert.is_true(#seen > 50, #seen)
    for _, id in ipairs(seen) do
      assert.is_true(answered[id] ~= nil, "request " .. id .. " reached a handler but got no answer")
    end
    assert.are.equal(#seen, srv:stats().requests)
  end))

  it("gives the requests in flight a grace given to listen, on <close>", H.async(function()
    local srv = serve(function() aio.sleep(0.1) return "done" end, { grace = 5 })
    local t = aio.spawn(aio.http.get, srv.url .. "/")
    while srv:stats().in_flight == 0 do aio.sleep(0.01) end
    do local _ <close> = srv end
    assert.are.equal("done", t:await().body)
  end))
end)
