-- aio.http server limits under attack and at scale: max_body, timeouts
-- (slowloris), max_connections, 10,000 keep-alive connections, and
-- nothing leaked after connections come and go.
local aio = require "aio"
local core = require "aio.core"
local H = require "helper"
local U = require "support.server_util"
-- test bodies as tasks on a virtual clock, with the suite's real-time limit
local async = require("aio.busted").with { timeout = H.DEADLINE }

local serve = U.serve

describe("aio.http server limits", function()
  it("answers 413 to a Content-Length past max_body before reading it", H.async(function()
    local reads = 0
    local srv <close> = serve(function(req)
      for _ in req:chunks() do reads = reads + 1 end
      return "read"
    end, { max_body = 1000 })
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    -- the client announces 1 MB and sends nothing: the answer comes anyway
    s:write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
    local r = U.read_response(s)
    assert.are.equal(413, r.status)
    assert.are.equal("close", r.headers.connection)
    assert.are.equal(0, reads)
    assert.is_true(U.closes(s))
    -- within the limit it is read
    assert.are.equal("read", aio.http.post(srv.url .. "/", { body = ("a"):rep(1000) }).body)
  end))

  it("answers 413 to a chunked body once it passes max_body", H.async(function()
    local got = 0
    local srv <close> = serve(function(req)
      for chunk in req:chunks() do got = got + #chunk end
      return "read"
    end, { max_body = 100 })
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    s:write("50\r\n" .. ("a"):rep(80) .. "\r\n")
    s:write("50\r\n")                     -- the size alone passes the limit
    local r = U.read_response(s)
    assert.are.equal(413, r.status)
    assert.is_true(got <= 80)
    assert.is_true(U.closes(s))
  end))

  it("lets a handler catch max_body and answer otherwise", H.async(function()
    local srv <close> = serve(function(req)
      local ok, e = pcall(req.body, req)
      assert(not ok and aio.is_error(e, "http") and e.response_status == 413)
      return { status = 400, body = "too big for us" }
    end, { max_body = 10 })
    local r = aio.http.post(srv.url .. "/", { body = ("a"):rep(100) })
    assert.are.equal(400, r.status)
    assert.are.equal("too big for us", r.body)
    assert.are.equal("close", r.headers.connection)
  end))

  it("cuts off a head dribbled a byte at a time at header_timeout (slowloris)", H.async(function()
    local hits = 0
    local srv <close> = serve(function() hits = hits + 1 return "x" end, { header_timeout = 0.3 })
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    local head, t0 = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " .. ("s"):rep(100), aio.now()
    local out = {}
    local reader = aio.spawn(function()
      while true do
        local d = s:read()
        if not d then return end
        out[#out + 1] = d
      end
    end)
    for i = 1, #head do
      if reader:done() then break end
      pcall(s.write, s, head:sub(i, i))
      aio.sleep(0.02)
    end
    pcall(reader.await, reader)
    local secs = aio.now() - t0
    assert.matches("^HTTP/1.1 408 ", table.concat(out))
    assert.is_true(secs >= 0.3 and secs < 2, secs)
    assert.are.equal(0, hits)
  end))

  it("applies header_timeout to a head that follows a request on the connection", H.async(function()
    local srv <close> = serve(function() return "x" end, { header_timeout = 0.3, idle_timeout = 30 })
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHo")
    assert.are.equal("x", U.read_response(s).body)
    local t0 = aio.now()
    local r = U.read_response(s)
    assert.are.equal(408, r.status)
    assert.is_true(aio.now() - t0 < 3)
  end))

  it("closes an idle keep-alive connection at idle_timeout", H.async(function()
    local srv <close> = serve(function() return "x" end, { idle_timeout = 0.2 })
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal("x", U.read_response(s).body)
    local t0 = aio.now()
    assert.is_true(U.closes(s, 3))
    assert.is_true(aio.now() - t0 >= 0.15)
    assert.are.equal(0, srv:stats().connections)
  end))

  it("keeps its idle_timeout on the virtual clock", async(function()
    local srv <close> = serve(function() return "x" end, { idle_timeout = 60 })
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal("x", U.read_response(s).body)
    local t0 = aio.now()
    aio.sleep(59)                     -- nobody waits on I/O: time jumps
    assert.are.equal(1, srv:stats().connections)
    aio.sleep(2)                      -- past the server's deadline
    assert.are.equal(0, srv:stats().connections)
    assert.is_nil(s:read())
    local dt = aio.now() - t0
    assert.is_true(dt >= 61 and dt < 62, "after " .. dt .. " s")
  end))

  it("answers 408 when a body goes silent for body_timeout", H.async(function()
    local err
    local srv <close> = serve(function(req)
      local ok, e = pcall(req.body, req)
      err = e
      if not ok then error(e, 0) end
      return "x"
    end, { body_timeout = 0.2 })
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    local r = U.read_response(s)
    assert.are.equal(408, r.status)
    assert.is_true(aio.is_error(err, "timeout"))
    assert.is_true(U.closes(s))
  end))

  it("pauses accepting at max_connections and resumes", H.async(function()
    local gate = aio.Event()
    local srv <close> = serve(function() gate:wait() return "x" end, { max_connections = 2 })
    local tasks = {}
    for i = 1, 4 do tasks[i] = aio.spawn(aio.http.get, srv.url .. "/", { timeout = 10 }) end
    local t0 = aio.now()
    while srv:stats().in_flight < 2 and aio.now() - t0 < 5 do aio.sleep(0.01) end
    aio.sleep(0.1)
    assert.are.equal(2, srv:stats().connections)
    assert.are.equal(2, srv:stats().in_flight)
    gate:set()
    for i = 1, 4 do assert.are.equal("x", tasks[i]:await().body) end
    assert.is_true(srv:stats().accepted >= 4)
  end))

  it("holds 10,000 idle keep-alive connections in little memory", H.async(function()
    local srv <close> = serve(function() return "hello" end, { max_connections = 20000 })
    if H.SLOW then
      -- under the sanitizers: a few hundred, both ends in this process
      local streams, group = {}, aio.TaskGroup()
      for i = 1, 300 do
        group:spawn(function()
          local s = aio.tcp.connect("127.0.0.1", srv.port)
          s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
          assert(U.read_response(s).body == "hello")
          streams[i] = s
        end)
      end
      group:wait()
      assert.are.equal(300, srv:stats().connections)
      for _, s in ipairs(streams) do s:close() end
    else
      -- the clients in a child process, so that this one holds only the
      -- server's ends: its RSS grows by what the server spends on them
      local N = math.min(10000, H.fd_limit() - 200)   -- ./dev.sh raises the limit
      for _ = 1, 20 do
        local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
        s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        U.read_response(s)
      end
      collectgarbage()
      collectgarbage()
      local before = H.rss_kb()
      local child = aio.spawn(U.run, { "lua5.4", "bench/idle_clients.lua", tostring(srv.port), tostring(N), "30" })
      local t0 = aio.now()
      while srv:stats().connections < N and not child:done() and aio.now() - t0 < 60 do aio.sleep(0.05) end
      assert.are.equal(N, srv:stats().connections, child:done() and tostring(child:result().stderr) or nil)
      aio.sleep(0.2)
      local per = (H.rss_kb() - before) / N
      child:cancel()
      pcall(child.await, child)
      assert.is_true(per <= 4, ("%.2f KiB per idle connection"):format(per))
    end
    local t0 = aio.now()
    while srv:stats().connections > 0 and aio.now() - t0 < 20 do aio.sleep(0.02) end
    assert.are.equal(0, srv:stats().connections)
  end))

  it("leaks nothing after 10,000 connections come and go", H.async(function()
    local N = H.SLOW and 300 or 10000    -- 64 at a time: no fd limit issue
    local srv <close> = serve(function(req)
      if req.path == "/body" then return req:body() end
      return "ok"
    end)
    -- 64 clients, one connection after another: what is alive at once
    -- stays bounded, so memory must come back to where it was
    local function wave(n)
      local group = aio.TaskGroup()
      for w = 1, 64 do
        group:spawn(function()
          for i = w, n, 64 do
            local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
            if i % 3 == 0 then
              s:write("POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
              assert(U.read_response(s).body == "abc")
            elseif i % 3 == 1 then
              s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
              assert(U.read_response(s).body == "ok")
            else
              s:write("GET / HTTP/1.1\r\nHost: x\r\n")   -- leaves mid-head
            end
          end
        end)
      end
      group:wait()
      local t0 = aio.now()
      while srv:stats().connections > 0 and aio.now() - t0 < 10 do aio.sleep(0.01) end
    end
    wave(N // 10)
    collectgarbage()
    collectgarbage()
    local fds, handles, mem, rss = H.fd_count(), core.stats().handles, collectgarbage("count"), H.rss_kb()
    wave(N)
    collectgarbage()
    collectgarbage()
    assert.are.equal(0, srv:stats().connections)
    assert.are.equal(fds, H.fd_count())
    assert.are.equal(handles, core.stats().handles)
    assert.is_true(collectgarbage("count") < mem + 512, ("Lua heap grew from %.0f to %.0f KiB"):format(mem, collectgarbage("count")))
    if not H.SLOW then
      assert.is_true(H.rss_kb() < rss + 8192, ("RSS grew from %d to %d KiB"):format(rss, H.rss_kb()))
    end
  end))
end)
