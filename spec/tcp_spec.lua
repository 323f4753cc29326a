local aio = require "aio"
local core = require "aio.core"
local H = require "helper"
local eventually = require "support.wait"

local tcp = aio.tcp

-- An echo server on 127.0.0.1 and a free port: each line comes back upper-
-- cased; "quit" closes the connection from the server's side.
local function echo_server(opts)
  return tcp.listen("127.0.0.1", 0, function(s)
    while true do
      local line = s:read_line()
      if not line or line == "quit" then return end
      s:write(line:upper(), "\n")
    end
  end, opts)
end

-- The echo server on another address.
local function echo_server_on(host)
  return tcp.listen(host, 0, function(s)
    while true do
      local line = s:read_line()
      if not line then return end
      s:write(line:upper(), "\n")
    end
  end)
end

describe("aio.tcp", function()
  it("echoes lines through a server on port 0", H.async(function()
    local srv <close> = echo_server()
    assert.is_true(srv.port > 0)
    assert.are.equal("127.0.0.1", srv.host)
    local c <close> = tcp.connect("127.0.0.1", srv.port)
    c:write("hello\n")
    assert.are.equal("HELLO", c:read_line())
    c:write("crlf\r\n", "two", "\n")
    assert.are.equal("CRLF", c:read_line())
    assert.are.equal("TWO", c:read_line())
    c:write("quit\n")
    assert.is_nil(c:read_line())
    assert.is_nil(c:read())
  end))

  it("connects to a name and reports both addresses", H.async(function()
    local srv <close> = echo_server()
    local c <close> = tcp.connect("localhost", srv.port)
    local host, port = c:peer_address()
    assert.are.equal("127.0.0.1", host)
    assert.are.equal(srv.port, port)
    local lhost, lport = c:local_address()
    assert.are.equal("127.0.0.1", lhost)
    assert.is_true(lport > 0 and lport ~= srv.port)
    assert.matches("localhost:" .. srv.port, tostring(c))
  end))

  it("reads what is there, exact sizes, and everything to the end", H.async(function()
    local srv <close> = tcp.listen("127.0.0.1", 0, function(s)
      s:write("abcdef")
      aio.sleep(0.02)
      s:write("ghij", "klmnop")
      aio.sleep(0.02)
      s:write("tail")
    end)
    local c <close> = tcp.connect("127.0.0.1", srv.port)
    assert.are.equal("abc", c:read(3))
    assert.are.equal("def", c:read())          -- what is buffered, no wait
    assert.are.equal("ghijklm", c:read_exactly(7))
    assert.are.equal("noptail", c:read("a"))   -- to the end
    assert.is_nil(c:read())
    assert.are.equal("", c:read("a"))
  end))

  it("raises io EOF with the partial data when the stream ends early", H.async(function()
    local srv <close> = tcp.listen("127.0.0.1", 0, function(s) s:write("12345") end)
    local c <close> = tcp.connect("127.0.0.1", srv.port)
    local err = H.raises("io", c.read_exactly, c, 10)
    assert.are.equal("EOF", err.code)
    assert.are.equal("12345", err.partial)
    assert.are.equal(10, err.expected)
  end))

  it("returns a last line without newline, then nil, and limits line length", H.async(function()
    local srv <close> = tcp.listen("127.0.0.1", 0, function(s)
      s:write("a\n", ("x"):rep(100), "\n", "last")
    end)
    local c <close> = tcp.connect("127.0.0.1", srv.port)
    c:set_limit(50)
    assert.are.equal("a", c:read_line())
    local err = H.raises("protocol", c.read_line, c)
    assert.matches("line longer than 50 bytes", err.message)
    c:set_limit(1000)
    assert.are.equal(("x"):rep(100), c:read_line())
    assert.are.equal("last", c:read_line())
    assert.is_nil(c:read_line())
  end))

  it("half-closes with shutdown and still reads the answer", H.async(function()
    local srv <close> = tcp.listen("127.0.0.1", 0, function(s)
      local all = s:read("a")
      s:write(#all, " bytes")
    end)
    local c <close> = tcp.connect("127.0.0.1", srv.port)
    c:write(("q"):rep(100000))
    c:shutdown()
    assert.are.equal("100000 bytes", c:read("a"))
  end))

  it("moves megabytes intact in both directions", H.async(function()
    local srv <close> = tcp.listen("127.0.0.1", 0, function(s)
      while true do
        local chunk = s:read(70000)
        if not chunk then return end
        s:write(chunk)
      end
    end)
    local parts = {}
    for i = 1, 4096 do parts[i] = string.pack("<I4", i * 2654435761 % 4294967296):rep(256) end
    local data = table.concat(parts)                  -- 4 MiB
    local c <close> = tcp.connect("127.0.0.1", srv.port)
    local writer = aio.spawn(function() c:write(data) c:shutdown() end)
    local back = c:read("a")
    writer:await()
    assert.are.equal(#data, #back)
    assert.is_true(data == back)
  end))

  it("applies backpressure: a writer waits while the peer does not read", H.async(function()
    local go_read = false
    local received = 0
    local srv <close> = tcp.listen("127.0.0.1", 0, function(s)
      eventually(function() return go_read end, 10)
      while true do
        local chunk = s:read()
        if not chunk then return end
        received = received + #chunk
      end
    end)
    local c <close> = tcp.connect("127.0.0.1", srv.port)
    local big = ("b"):rep(32 * 1024 * 1024)
    local writer = aio.spawn(function() c:write(big) c:shutdown() end)
    aio.sleep(0.2)
    assert.is_false(writer:done())        -- the kernel buffers are full
    assert.is_true(received == 0)         -- and nobody reads on the other end
    go_read = true
    writer:await()
    eventually(function() return received == #big end, 10)
  end))

  it("serves thousands of concurrent connections and frees them all", H.async(function()
    local N = H.SLOW and 1000 or 2000
    local open, max_open, served = 0, 0, 0
    local srv <close> = tcp.listen("127.0.0.1", 0, function(s)
      open = open + 1
      if open > max_open then max_open = open end
      local msg = s:read_line()
      s:write(msg, "\n")
      assert(s:read() == nil)
      open = open - 1
      served = served + 1
    end, { backlog = 4096 })
    collectgarbage()
    local fds, mem = H.fd_count(), collectgarbage("count")
    local handles = core.stats().handles
    local connected, release = 0, false
    local clients = {}
    for i = 1, N do
      clients[i] = aio.spawn(function()
        local c <close> = tcp.connect("127.0.0.1", srv.port)
        connected = connected + 1
        eventually(function() return release end, 60)
        c:write("client ", i, "\n")
        assert(c:read_line() == "client " .. i)
      end)
    end
    eventually(function() return connected == N and open == N end, 60)
    assert.are.equal(N, max_open)
    assert.is_true(H.fd_count() >= fds + 2 * N)
    release = true
    for _, t in ipairs(clients) do t:await() end
    eventually(function() return served == N end, 30)
    srv:wait_closed()
    clients = nil
    eventually(function() return H.fd_count() == fds end, 5)
    assert.are.equal(handles, core.stats().handles)
    srv:close()
    collectgarbage()
    collectgarbage()
    local grew = collectgarbage("count") - mem
    assert.is_true(grew < 1024, "Lua memory grew by " .. grew .. " kB")
  end))

  it("raises io, not SIGPIPE, when writing to a connection the peer closed", H.async(function()
    local srv <close> = tcp.listen("127.0.0.1", 0, function(s) end)
    local c <close> = tcp.connect("127.0.0.1", srv.port)
    assert.is_nil(c:read())                     -- the peer is gone
    local err
    for _ = 1, 100 do
      local ok, e = pcall(c.write, c, ("x"):rep(65536))
      if not ok then err = e break end
      aio.sleep(0.001)
    end
    assert.is_true(aio.is_error(err, "io"), tostring(err))
    assert.is_true(err.code == "EPIPE" or err.code == "ECONNRESET", err.code)
    assert.matches("cannot write to 127.0.0.1:%d+", err.message)
  end))

  it("wakes a reader with closed when another task closes the stream", H.async(function()
    local srv <close> = echo_server()
    local c = tcp.connect("127.0.0.1", srv.port)
    local reader = aio.spawn(function() return c:read() end)
    aio.sleep(0.01)
    c:close()
    c:close()
    local ok, err = pcall(reader.await, reader)
    assert.is_false(ok)
    assert.is_true(aio.is_error(err, "closed"))
    assert.are.equal("attempt to use a closed stream", H.raises("closed", c.write, c, "x").message)
    H.raises("closed", c.read, c)
    H.raises("closed", c.peer_address, c)
  end))

  it("lets a cancelled read go and the stream be read again", H.async(function()
    local srv <close> = echo_server()
    local c <close> = tcp.connect("127.0.0.1", srv.port)
    local reader = aio.spawn(function() return c:read_line() end)
    aio.sleep(0.01)
    reader:cancel()
    assert.is_false(pcall(reader.await, reader))
    c:write("again\n")
    assert.are.equal("AGAIN", c:read_line())
    local err = H.raises("timeout", aio.timeout, 0.02, c.read, c)
    assert.are.equal(0.02, err.seconds)
    c:write("still\n")
    assert.are.equal("STILL", c:read_line())
  end))

  it("times reads and writes out when the stream has a timeout", H.async(function()
    local done = false
    local srv <close> = tcp.listen("127.0.0.1", 0, function(s)
      s:read_line()
      s:write("late\n")
      eventually(function() return done end, 30)     -- reads no more
    end)
    local c <close> = tcp.connect("127.0.0.1", srv.port)
    assert.are.equal(c, c:set_timeout(0.05))
    local t0 = aio.now()
    local err = H.raises("timeout", c.read_line, c)
    assert.is_true(aio.now() - t0 >= 0.05)
    assert.are.equal("read", err.phase)
    assert.are.equal(0.05, err.seconds)
    assert.matches("reading from 127.0.0.1:%d+ timed out after 0.05 s", err.message)
    c:write("go\n")
    assert.are.equal("late", c:read_line())          -- usable afterwards
    err = H.raises("timeout", c.write, c, ("w"):rep(64 * 1024 * 1024))
    assert.are.equal("write", err.phase)
    c:set_timeout()
    done = true
  end))

  it("raises connect errors with the address", H.async(function()
    local srv = echo_server()
    local port = srv.port
    srv:close()
    local err = H.raises("connect", tcp.connect, "127.0.0.1", port)
    assert.are.equal("ECONNREFUSED", err.code)
    assert.are.equal("127.0.0.1", err.address)
    assert.are.equal(port, err.port)
    assert.matches("cannot connect to 127.0.0.1:%d+: connection refused", err.message)
    err = H.raises("connect", tcp.connect, "localhost", port)
    assert.are.equal("localhost", err.host)
    err = H.raises("dns", tcp.connect, "nonexistent.invalid", 80)
    assert.are.equal("nonexistent.invalid", err.host)
  end))

  it("gives up connecting at the timeout", H.async(function()
    -- a listener whose accept queue is full drops new connection attempts:
    -- connecting then hangs until the timeout
    local dir = H.tmpdir()
    local py = aio.spawn(aio.process.run, { "python3", "-c", [[
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)]], dir .. "/port" })
    eventually(function() return aio.fs.exists(dir .. "/port") end, H.SLOW and 90 or 10)
    local full = tonumber(aio.fs.read_file(dir .. "/port"))
    local held, timed_out = {}, nil
    for _ = 1, 8 do
      local ok, r = pcall(tcp.connect, "127.0.0.1", full, { timeout = 0.2 })
      if not ok then timed_out = r break end
      held[#held + 1] = r
    end
    for _, s in ipairs(held) do s:close() end
    py:cancel()
    pcall(py.await, py)
    H.rmtree(dir)
    assert.is_true(aio.is_error(timed_out, "timeout"), tostring(timed_out))
    assert.are.equal("connect", timed_out.phase)
    assert.are.equal(0.2, timed_out.seconds)
    assert.matches("connecting to 127.0.0.1:%d+ timed out after 0.2 s", timed_out.message)
  end))

  it("stops accepting on close while served connections go on", H.async(function()
    local srv = echo_server()
    local c = tcp.connect("127.0.0.1", srv.port)
    c:write("before\n")
    assert.are.equal("BEFORE", c:read_line())
    srv:close()
    srv:close()
    assert.matches("closed", tostring(srv))
    assert.are.equal("ECONNREFUSED", H.raises("connect", tcp.connect, "127.0.0.1", srv.port).code)
    c:write("after\n")
    assert.are.equal("AFTER", c:read_line())
    c:close()
    srv:wait_closed()
  end))

  it("closes the stream when the handler returns", H.async(function()
    local srv <close> = tcp.listen("127.0.0.1", 0, function(s) s:write("bye") end)
    local c <close> = tcp.connect("127.0.0.1", srv.port)
    assert.are.equal("bye", c:read("a"))
  end))

  it("serves until closed with serve_forever, and closes when cancelled", H.async(function()
    local srv = echo_server()
    local server_task = aio.spawn(srv.serve_forever, srv)
    local c = tcp.connect("127.0.0.1", srv.port)
    c:write("x\n")
    assert.are.equal("X", c:read_line())
    c:close()
    srv:close()
    assert.is_nil(server_task:await())
    srv:wait_closed()
    srv = echo_server()
    server_task = aio.spawn(srv.serve_forever, srv)
    aio.sleep(0.01)
    server_task:cancel()
    assert.is_false(pcall(server_task.await, server_task))
    assert.is_true(srv._closed)
    H.raises("connect", tcp.connect, "127.0.0.1", srv.port)
  end))

  it("reports a failing handler like any failed task", function()
    local out = H.lua_child([[
      local aio = require "aio"
      aio.run(function()
        local srv = aio.tcp.listen("127.0.0.1", 0, function(s) error("handler broke") end)
        local c = aio.tcp.connect("127.0.0.1", srv.port)
        assert(c:read() == nil)
        srv:close()
        print("client done")
      end)
    ]])
    assert.matches("client done", out)
    assert.matches("failed and nobody retrieved its error", out)
    assert.matches("handler broke", out)
  end)

  it("raises io for a port in use", H.async(function()
    local srv <close> = echo_server()
    local err = H.raises("io", tcp.listen, "127.0.0.1", srv.port, function() end)
    assert.are.equal("EADDRINUSE", err.code)
    assert.are.equal(srv.port, err.port)
  end))

  it("refuses streams of a finished run", function()
    local c, port = aio.run(function()
      local srv = echo_server()
      return tcp.connect("127.0.0.1", srv.port), srv.port
    end)
    assert.is_number(port)
    aio.run(function()
      assert.are.equal("attempt to use a closed stream", H.raises("closed", c.read, c).message)
      H.raises("closed", c.write, c, "x")
      assert.is_true(c:close())
    end)
  end)

  it("rejects bad arguments", H.async(function()
    assert.has_error(function() tcp.connect(nil, 80) end, "bad argument #1 to 'connect' (string expected, got no value)")
    assert.has_error(function() tcp.connect("127.0.0.1", 0) end, "bad argument #2 to 'connect' (port must be an integer from 1 to 65535)")
    assert.has_error(function() tcp.connect("127.0.0.1", 80, 5) end, "bad argument #3 to 'connect' (table expected, got number)")
    assert.has_error(function() tcp.listen("127.0.0.1", 70000, print) end, "bad argument #2 to 'listen' (port must be an integer from 0 to 65535)")
    assert.has_error(function() tcp.listen("127.0.0.1", 0, 42) end, "bad argument #3 to 'listen' (function expected, got number)")
    local srv <close> = echo_server()
    local c <close> = tcp.connect("127.0.0.1", srv.port)
    assert.has_error(function() c:read(0) end, "bad argument #1 to 'read' (size must be positive)")
    assert.has_error(function() c:read("l") end)
    assert.has_error(function() c:write({}) end)
    assert.has_error(function() c.read({}) end)
  end))

  it("raises usage outside a task or a running loop", function()
    local err = H.raises("usage", tcp.connect, "127.0.0.1", 1)
    assert.matches("inside a task", err.message)
    err = H.raises("usage", tcp.listen, "127.0.0.1", 0, print)
    assert.matches("aio.tcp.listen needs a running loop", err.message)
  end)

  it("listens on IPv6 and on a name", H.async(function()
    local ok, srv6 = pcall(echo_server_on, "::1")
    if ok then                               -- where IPv6 is available
      local c <close> = tcp.connect("::1", srv6.port)
      c:write("six\n")
      assert.are.equal("SIX", c:read_line())
      assert.matches("%[::1%]:%d+", tostring(c))
      assert.matches("aio.Server %(%[::1%]:%d+%)", tostring(srv6))
      c:close()
      srv6:close()
      srv6:wait_closed()
    else
      assert.is_true(aio.is_error(srv6, "io"), tostring(srv6))
    end
    local srv <close> = echo_server_on("localhost")
    assert.are.equal("127.0.0.1", srv.host)
  end))
  it("shares a port between listeners with reuse_port", H.async(function()
    local a <close> = tcp.listen("127.0.0.1", 0, function(s) s:write("a") end, { reuse_port = true })
    local b <close> = tcp.listen("127.0.0.1", a.port, function(s) s:write("b") end, { reuse_port = true })
    assert.are.equal(a.port, b.port)
    local e = H.raises("io", tcp.listen, "127.0.0.1", a.port, print)
    assert.are.equal("EADDRINUSE", e.code)
    local c <close> = tcp.connect("127.0.0.1", a.port)
    assert.is_truthy(({ a = true, b = true })[c:read(1)])
  end))

  it("blames the caller's line for bad arguments", H.async(function()
    local ok, err = pcall(function() aio.tcp.connect("127.0.0.1") end)
    assert.is_false(ok)
    assert.matches("^spec/tcp_spec.lua:%d+: bad argument #2 to 'connect'", err)
    ok, err = pcall(function() aio.tcp.listen(42, 0, print) end)
    assert.matches("^spec/tcp_spec.lua:%d+: bad argument #1 to 'listen'", err)
  end))
end)
