-- aio.http.ws_connect and the server end of WebSocket: messages, close
-- paths, heartbeat, backpressure, cancellation; against Python's
-- websockets and aiohttp and node's ws (spec/support/ws_peers.lua), and
-- raw frames for the protocol errors (spec/support/ws_frames.lua).
local aio = require "aio"
local H = require "helper"
local P = require "support.ws_peers"
local F = require "support.ws_frames"
local websocket = require "aio.http.websocket"
local eventually = require "support.wait"

local env

-- The peers with a /frag path and ping support.
local SERVERS = { "websockets", "aiohttp", "node" }

-- Runs `fn(kind)` for each peer server that is up (node may be missing).
local function each_server(fn)
  for _, kind in ipairs(SERVERS) do
    if env[kind] then fn(kind) end
  end
end

-- An aio WebSocket server running handler(ws) for each connection: with
-- `kind` "http", aio.http.listen and req:websocket(opts); with "tcp" (or
-- nil), aio.tcp.listen and websocket.accept(stream, opts). The WebSocket
-- is closed when the handler returns; closing the server (<close>) waits
-- for every handler.
local function ws_server(handler, opts, kind)
  local srv = { running = 0, done = aio.Event() }
  local function serve(ws)
    srv.running = srv.running + 1
    local _ <close> = setmetatable({}, { __close = function()
      srv.running = srv.running - 1
      srv.done:set()
    end })
    local _ <close> = ws
    handler(ws)
  end
  if kind == "http" then
    srv.server = aio.http.listen(function(req) serve(req:websocket(opts)) end, { port = 0 })
  else
    srv.server = aio.tcp.listen("127.0.0.1", 0, function(s)
      local ok, ws = pcall(websocket.accept, s, opts)
      if ok then return serve(ws) end
      if not (aio.is_error(ws, "protocol") or aio.is_error(ws, "closed")) then error(ws, 0) end
    end)
  end
  srv.port = srv.server.port
  return setmetatable(srv, { __close = function(self)
    self.server:close()
    while self.running > 0 do
      self.done:clear()
      self.done:wait()
    end
  end })
end

-- What the fixture's last /last connection saw of our close ("code|reason").
local function report()
  local r <close> = aio.http.ws_connect(env.url("websockets", "/report"))
  return r:receive()
end

local function echo_handler(ws)
  for data, kind in ws:messages() do
    if kind == "text" then ws:send(data) else ws:send_binary(data) end
  end
end

-- the peers, started once for the whole file
describe("WebSocket", function()
  setup(function() env = P.start() end)
  teardown(function() P.stop(env) end)

  describe("aio.http.ws_connect", function()

    it("exchanges text and binary messages with every peer", H.async(function()
      each_server(function(kind)
        local ws <close> = aio.http.ws_connect(env.url(kind, "/echo"))
        ws:send("héllo wörld")
        local data, k = ws:receive()
        assert.are.equal("héllo wörld", data, kind)
        assert.are.equal("text", k)
        ws:send_binary("\0\1\2\255")
        data, k = ws:receive()
        assert.are.equal("\0\1\2\255", data, kind)
        assert.are.equal("binary", k)
        ws:send("")
        assert.are.equal("", ws:receive())
        local big = ("0123456789abcdef"):rep(20000)     -- 320 KB, 16-bit+ lengths
        ws:send_binary(big)
        assert.is_true(ws:receive() == big, kind)
      end)
    end))

    it("reassembles fragmented messages", H.async(function()
      for _, kind in ipairs({ "websockets", "node" }) do
        if env[kind] then
          local ws <close> = aio.http.ws_connect(env.url(kind, "/frag"))
          local data, k = ws:receive()
          assert.are.equal("abcdef", data, kind)
          assert.are.equal("text", k)
          ws:send("after")
          assert.are.equal("after", ws:receive())
        end
      end
    end))

    it("answers the server's pings", H.async(function()
      for _, kind in ipairs({ "websockets", "node" }) do
        if env[kind] then
          local ws <close> = aio.http.ws_connect(env.url(kind, "/ping"))
          assert.matches("^pong ", ws:receive(), kind)
          ws:ping("mine")                     -- answered, nothing to see
          ws:send("still")
          assert.are.equal("still", ws:receive())
        end
      end
    end))

    it("negotiates a subprotocol and sends extra headers", H.async(function()
      for _, kind in ipairs({ "websockets", "aiohttp" }) do
        local ws <close> = aio.http.ws_connect(env.url(kind, "/info"),
          { protocols = { "nope", "superchat", "chat" }, headers = { ["X-Test"] = "yes" } })
        assert.is_truthy(ws.protocol == "chat" or ws.protocol == "superchat", kind)
        assert.are.equal(ws.protocol .. "|yes", ws:receive())      -- what the server chose
      end
      local ws <close> = aio.http.ws_connect(env.url("websockets", "/info"))
      assert.is_nil(ws.protocol)
      assert.are.equal("None|None", ws:receive())
    end))

    it("closes with a code and reason the server sees", H.async(function()
      for _, kind in ipairs({ "websockets", "aiohttp" }) do
        local ws = aio.http.ws_connect(env.url(kind, "/last"))
        ws:send("x")
        assert.are.equal("x", ws:receive())
        ws:close(4000, "see you")
        -- the code of the server's close frame: aiohttp answers with 1000
        assert.are.equal(kind == "aiohttp" and 1000 or 4000, ws.close_code, kind)
        assert.is_true(ws.closed)
        assert.is_nil(ws:receive())
        local err = H.raises("closed", ws.send, ws, "late")
        assert.are.equal(ws.close_code, err.code)
        ws:close()                                  -- harmless again
        local want = kind == "websockets" and "4000|see you" or "4000|None"
        eventually(function() return report() == want end)
      end
    end))

    it("closes with 1000 when a <close> variable goes out of scope", H.async(function()
      do
        local ws <close> = aio.http.ws_connect(env.url("websockets", "/last"))
        ws:send("x")
        ws:receive()
      end
      eventually(function() return report() == "1000|" end)
    end))

    it("reports the server's close code and reason", H.async(function()
      each_server(function(kind)
        local ws = aio.http.ws_connect(env.url(kind, "/close/4321/going-away"))
        assert.is_nil(ws:receive(), kind)
        assert.is_nil(ws:receive())
        assert.are.equal(4321, ws.close_code, kind)
        assert.are.equal("going-away", ws.close_reason, kind)
        H.raises("closed", ws.send, ws, "x")
        ws:close()
      end)
    end))

    it("returns nil and close code 1006 when the server drops the connection", H.async(function()
      local ws = aio.http.ws_connect(env.url("websockets", "/drop"))
      assert.is_nil(ws:receive())
      assert.are.equal(1006, ws.close_code)
      H.raises("closed", ws.send, ws, "x")
      ws:close()
    end))

    it("closes with 1009 a message over max_message", H.async(function()
      local ws = aio.http.ws_connect(env.url("websockets", "/big/5000"), { max_message = 4096 })
      assert.is_nil(ws:receive())
      assert.are.equal(1009, ws.close_code)
      ws:close()
      ws = aio.http.ws_connect(env.url("websockets", "/big/4096"), { max_message = 4096 })
      assert.are.equal(4096, #ws:receive())
      ws:close()
    end))

    it("iterates over messages until the close", H.async(function()
      local ws <close> = aio.http.ws_connect(env.url("websockets", "/echo"))
      for i = 1, 3 do ws:send("m" .. i) end
      local got = {}
      for data, kind in ws:messages() do
        got[#got + 1] = data .. ":" .. kind
        if #got == 3 then ws:close() end
      end
      assert.are.same({ "m1:text", "m2:text", "m3:text" }, got)
    end))

    it("connects over wss:// with the CA given and refuses without it", H.async(function()
      local ws <close> = aio.http.ws_connect(env.url("wss", "/echo"), { ca_file = env.ca })
      ws:send("secure")
      assert.are.equal("secure", ws:receive())
      local info = ws:_stream():tls_info()
      assert.is_string(info.protocol)
      local err = H.raises("tls", aio.http.ws_connect, env.url("wss", "/echo"))
      assert.are.equal("CERTIFICATE_VERIFY_FAILED", err.code)
      assert.are.equal(env.url("wss", "/echo"), err.url)
      local plain <close> = aio.http.ws_connect(env.url("wss", "/echo"), { verify = false })
      plain:send("unverified")
      assert.are.equal("unverified", plain:receive())
    end))

    it("raises http for a refused handshake and protocol for a wrong one", H.async(function()
      local answers = {
        ["/403"] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        ["/200"] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ["/badkey"] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
          .. "Connection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n",
        ["/proto"] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
          .. "Connection: Upgrade\r\nSec-WebSocket-Accept: @\r\nSec-WebSocket-Protocol: evil\r\n\r\n",
      }
      local srv <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
        local path = s:read_line():match("^GET (%S+)")
        local key
        while true do
          local line = s:read_line()
          if line == "" then break end
          key = key or line:match("^Sec%-WebSocket%-Key: (%S+)")
        end
        s:write((answers[path]:gsub("@", require("aio.core").ws.accept_key(key))))
        s:read()
      end)
      local base = "ws://127.0.0.1:" .. srv.port
      local err = H.raises("http", aio.http.ws_connect, base .. "/403")
      assert.are.equal(403, err.status)
      assert.are.equal(base .. "/403", err.url)
      H.raises("protocol", aio.http.ws_connect, base .. "/200")
      err = H.raises("protocol", aio.http.ws_connect, base .. "/badkey")
      assert.matches("Sec%-WebSocket%-Accept", err.message)
      err = H.raises("protocol", aio.http.ws_connect, base .. "/proto", { protocols = "chat" })
      assert.matches("not offered", err.message)
    end))

    it("times out a handshake the server never answers", H.async(function()
      local srv <close> = aio.tcp.listen("127.0.0.1", 0, function(s) s:read("a") end)
      local err = H.raises("timeout", aio.http.ws_connect, "ws://127.0.0.1:" .. srv.port .. "/",
        { timeout = 0.2 })
      assert.are.equal("connect", err.phase)
      assert.matches("timed out after 0.2 s", err.message)
    end))

    it("closes with 1006 when heartbeat pings go unanswered", H.async(function()
      local srv <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
        F.accept(s)
        s:read("a")                                 -- reads, never answers: no pong
      end)
      local ws = aio.http.ws_connect("ws://127.0.0.1:" .. srv.port .. "/", { heartbeat = 0.1 })
      local t0 = aio.now()
      assert.is_nil(ws:receive())
      assert.is_true(aio.now() - t0 < 3)
      assert.are.equal(1006, ws.close_code)
      assert.matches("no pong", ws.close_reason)
      ws:close()
    end))

    it("keeps a connection alive with heartbeat while the peer answers", H.async(function()
      local ws <close> = aio.http.ws_connect(env.url("websockets", "/echo"), { heartbeat = 0.05 })
      aio.sleep(0.4)                               -- several pings and pongs
      assert.is_false(ws.closed)
      ws:send("alive")
      assert.are.equal("alive", ws:receive())
    end))

    it("leaves the connection usable when a receiving task is cancelled", H.async(function()
      local ws <close> = aio.http.ws_connect(env.url("websockets", "/echo"))
      local t = aio.spawn(function() return ws:receive() end)
      aio.sleep(0.05)
      t:cancel()
      assert.is_true(aio.is_error(t:error(), "cancelled") or pcall(t.await, t) == false)
      ws:send("next")
      assert.are.equal("next", ws:receive())
    end))

    it("suspends senders while the peer does not read (backpressure)", H.async(function()
      local reading = aio.Event()
      local peer <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
        F.accept(s)
        reading:wait()                              -- the kernel buffers fill up
        s:read("a")                                 -- then everything is taken
      end)
      local ws = aio.http.ws_connect("ws://127.0.0.1:" .. peer.port .. "/")
      local mib = ("z"):rep(1024 * 1024)
      local sent = 0
      local sender = aio.spawn(function()
        while sent < 64 do
          ws:send_binary(mib)
          sent = sent + 1
        end
      end)
      aio.sleep(0.3)
      assert.is_false(sender:done())                -- waiting, not buffering 64 MiB
      assert.is_true(sent >= 1 and sent < 64)
      reading:set()
      sender:await()
      assert.are.equal(64, sent)
      ws:close(1000, "", 0.1)
    end))

    it("raises closed in a sender waiting on a peer that goes away", H.async(function()
      local gone = aio.Event()
      local peer <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
        F.accept(s)
        gone:wait()                                 -- never reads, then closes
      end)
      local ws = aio.http.ws_connect("ws://127.0.0.1:" .. peer.port .. "/")
      local sender = aio.spawn(function()
        local mib = ("z"):rep(1024 * 1024)
        while true do ws:send_binary(mib) end
      end)
      aio.sleep(0.2)
      assert.is_false(sender:done())
      gone:set()
      local ok, err = pcall(sender.await, sender)
      assert.is_false(ok)
      assert.is_true(aio.is_error(err, "closed"), tostring(err))
      assert.is_nil(ws:receive())
      ws:close()
    end))

    it("wakes a receiver with nil when another task closes", H.async(function()
      local ws = aio.http.ws_connect(env.url("websockets", "/echo"))
      local receiver = aio.spawn(function() return ws:receive() end)
      aio.sleep(0.02)
      ws:close(1001, "away")
      assert.is_nil(receiver:await())
      assert.are.equal(1001, ws.close_code)       -- echoed by the server
    end))

    it("gives up the close handshake after the timeout: code 1006", H.async(function()
      local peer <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
        F.accept(s)
        s:read("a")                                 -- never answers the close
      end)
      local ws = aio.http.ws_connect("ws://127.0.0.1:" .. peer.port .. "/")
      local t0 = aio.now()
      ws:close(1000, "", 0.2)
      assert.is_true(aio.now() - t0 >= 0.15 and aio.now() - t0 < 3)
      assert.are.equal(1006, ws.close_code)
      assert.is_true(ws.closed)
    end))

    it("closes at once when the closing task is cancelled", H.async(function()
      local peer <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
        F.accept(s)
        s:read("a")
      end)
      local ws = aio.http.ws_connect("ws://127.0.0.1:" .. peer.port .. "/")
      local closer = aio.spawn(ws.close, ws, 1000, "", 10)
      aio.sleep(0.05)
      closer:cancel()
      assert.is_false(pcall(closer.await, closer))
      assert.are.equal(1006, ws.close_code)
      assert.is_nil(ws:receive())
    end))

    it("checks its arguments", H.async(function()
      local ok, e = pcall(aio.http.ws_connect, "http://x/")
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'ws_connect' %(a ws:// or wss:// URL expected%)", e)
      ok, e = pcall(aio.http.ws_connect, "ws://x/", { bogus = 1 })
      assert.matches("unknown option 'bogus'", e)
      ok, e = pcall(aio.http.ws_connect, "ws://x/", { max_message = -1 })
      assert.matches("max_message", e)
      local ws <close> = aio.http.ws_connect(env.url("websockets", "/echo"))
      ok, e = pcall(ws.send, ws, "\xff\xfe")
      assert.is_false(ok)
      assert.matches("invalid UTF%-8", e)
      ok, e = pcall(ws.close, ws, 1005)
      assert.matches("invalid close code", e)
      ok, e = pcall(ws.ping, ws, ("p"):rep(126))
      assert.matches("125 bytes", e)
      ok, e = pcall(ws.send, {}, "x")
      assert.matches("aio.WebSocket expected", e)
      ws:send_binary("\xff\xfe")                    -- bytes are fine as binary
      assert.are.equal("\xff\xfe", ws:receive())
    end))
  end)

  for _, kind in ipairs({ "http", "tcp" }) do
  describe(kind == "http" and "req:websocket (aio.http.listen)" or "aio.http.websocket.accept (aio.tcp.listen)", function()

    it("serves every peer's client: echo, fragments, pings, close", H.async(function()
      local srv <close> = ws_server(echo_handler, { protocols = { "chat" } }, kind)
      local url = "ws://127.0.0.1:" .. srv.port .. "/"
      local clients = { "websockets", "aiohttp" }
      if env.node_path then clients[#clients + 1] = "node" end
      for _, kind in ipairs(clients) do
        local out = P.client(env, kind, url, "echo")
        assert.matches("protocol chat", out, 1, true)
        assert.matches("text héllo", out, 1, true)
        assert.matches("binary %S+ 0001ff", out)
        assert.matches("big 300000", out, 1, true)
        if kind ~= "aiohttp" then assert.matches("fragmented fragment", out, 1, true) end
        if kind == "websockets" then assert.matches("pong ok", out, 1, true) end
        if kind == "node" then assert.matches("pong p1", out, 1, true) end
        if kind ~= "aiohttp" then assert.matches("closed 1000 done", out, 1, true) end
      end
    end))

    it("sees the client's close code, and closes with its own", H.async(function()
      local seen = {}
      local srv <close> = ws_server(function(ws)
        for data in ws:messages() do
          if data == "close me" then ws:close(4002, "server bye") end
        end
        seen[#seen + 1] = ws.close_code .. " " .. ws.close_reason
      end, { protocols = { "chat" } }, kind)
      local url = "ws://127.0.0.1:" .. srv.port .. "/"
      local clients = { "websockets", "aiohttp" }
      if env.node_path then clients[#clients + 1] = "node" end
      for _, kind in ipairs(clients) do
        local out = P.client(env, kind, url, "server_close")
        assert.matches("closed 4002", out, 1, true)
        if kind ~= "aiohttp" then assert.matches("closed 4002 server bye", out, 1, true) end
        out = P.client(env, kind, url, "close")
        assert.matches("closed 4001", out, 1, true)
      end
      eventually(function() return #seen == 2 * #clients end)
      assert.are.equal("4002 server bye", seen[1])
      assert.are.equal("4001 client bye", seen[2])
    end))

    it("closes with 1007 on invalid UTF-8 from a client", H.async(function()
      local srv <close> = ws_server(echo_handler, nil, kind)
      local out = P.client(env, "websockets", "ws://127.0.0.1:" .. srv.port .. "/", "bad_utf8")
      assert.matches("closed 1007", out, 1, true)
    end))

    it("answers 400 to a request that is not a valid upgrade", H.async(function()
      local srv <close> = ws_server(echo_handler, nil, kind)
      local cases = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          .. "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GARBAGE\r\n\r\n",
      }
      for _, req in ipairs(cases) do
        local c <close> = aio.tcp.connect("127.0.0.1", srv.port)
        c:write(req)
        assert.are.equal("HTTP/1.1 400 Bad Request", c:read_line())
      end
    end))

    it("answers 101 with the accept key of RFC 6455's example", H.async(function()
      local srv <close> = ws_server(echo_handler, { protocols = { "b", "a" } }, kind)
      local c <close> = aio.tcp.connect("127.0.0.1", srv.port)
      local status, head = F.handshake(c, "/", "Sec-WebSocket-Protocol: a, b\r\n")
      assert.are.equal("HTTP/1.1 101 Switching Protocols", status)
      assert.matches("Sec%-WebSocket%-Accept: s3pPLMBiTxaQ9kYGzzhZRbK%+xOo=", head)
      assert.matches("Sec%-WebSocket%-Protocol: a\n", head .. "\n")  -- the client's order
      c:write(F.frame(F.TEXT, "hi"))
      local fin, op, payload = F.read(c)
      assert.is_true(fin)
      assert.are.equal(F.TEXT, op)
      assert.are.equal("hi", payload)
    end))
  end)
  end

  describe("aio.http.websocket.accept (aio.tcp.listen)", function()
    it("still sends what a handler sent just before its connection is closed", H.async(function()
      local srv <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
        local ws = websocket.accept(s)
        ws:send("last words")                       -- then the stream is closed
      end)
      local ws = aio.http.ws_connect("ws://127.0.0.1:" .. srv.port .. "/")
      assert.are.equal("last words", ws:receive())
      assert.is_nil(ws:receive())
      assert.are.equal(1006, ws.close_code)
      ws:close()
    end))
  end)

  -- The Autobahn test-suite's case groups, ported: raw frames against the
  -- aio server end (echo), and the close code it answers with.
  describe("aio.http.websocket conformance (Autobahn case groups)", function()
    local srv

    -- Sends `frames` (strings) on a fresh connection; returns the close code
    -- and reason the server answers with, and the frames seen before.
    local function exchange(frames)
      local c <close> = aio.tcp.connect("127.0.0.1", srv.port)
      F.handshake(c)
      for _, f in ipairs(frames) do c:write(f) end
      return F.read_close(c)
    end

    -- Sends `frames`, reads the `n` frames answering them (as
    -- {opcode, payload}), then closes cleanly (1000 echoed).
    local function answers(frames, n)
      local c <close> = aio.tcp.connect("127.0.0.1", srv.port)
      F.handshake(c)
      for _, f in ipairs(frames) do c:write(f) end
      local seen = {}
      for i = 1, n do
        local _, op, payload = F.read(c)
        seen[i] = { op, payload }
      end
      c:write(F.frame(F.CLOSE, F.close_payload(1000)))
      local code, _, more = F.read_close(c)
      assert.are.equal(1000, code)
      assert.are.same({}, more)
      return seen
    end

    local function close(code) return F.frame(F.CLOSE, F.close_payload(code or 1000)) end

    -- Runs `fn` with the echo server up.
    local function with_server(fn)
      return H.async(function()
        srv = ws_server(echo_handler, { max_message = 70000 })
        local _ <close> = srv
        fn()
      end)
    end

    it("1.x echoes text and binary of every length class", with_server(function()
      for _, n in ipairs({ 0, 125, 126, 127, 128, 65535, 65536 }) do
        for _, op in ipairs({ F.TEXT, F.BINARY }) do
          local payload = ("*"):rep(n)
          assert.are.same({ { op, payload } }, answers({ F.frame(op, payload) }, 1))
        end
      end
    end))

    it("2.x answers pings with their payload and fails oversize ones", with_server(function()
      assert.are.same({ { F.PONG, "hello" } }, answers({ F.frame(F.PING, "hello") }, 1))
      assert.are.same({ { F.PONG, ("\xfe"):rep(125) } }, answers({ F.frame(F.PING, ("\xfe"):rep(125)) }, 1))
      assert.are.equal(1002, exchange({ F.frame(F.PING, ("x"):rep(126)) }))
      -- a ping delivered byte by byte
      local c <close> = aio.tcp.connect("127.0.0.1", srv.port)
      F.handshake(c)
      local f = F.frame(F.PING, "bytewise")
      for i = 1, #f do c:write(f:sub(i, i)) aio.sleep(0.001) end
      local _, op, payload = F.read(c)
      assert.are.equal(F.PONG, op)
      assert.are.equal("bytewise", payload)
      -- unsolicited pongs are ignored
      assert.are.same({ { F.TEXT, "t" } }, answers({ F.frame(F.PONG, "u"), F.frame(F.TEXT, "t") }, 1))
    end))

    it("3.x fails frames with reserved bits set", with_server(function()
      for rsv = 1, 7 do
        assert.are.equal(1002, exchange({ F.frame(F.TEXT, "x", { rsv = rsv }) }), "rsv " .. rsv)
      end
      assert.are.equal(1002, exchange({ F.frame(F.PING, "", { rsv = 4 }) }))
    end))

    it("4.x fails reserved opcodes", with_server(function()
      for _, op in ipairs({ 3, 4, 5, 6, 7, 11, 12, 13, 14, 15 }) do
        assert.are.equal(1002, exchange({ F.frame(op, "x") }), "opcode " .. op)
      end
    end))

    it("5.x reassembles fragments around control frames and fails bad sequences", with_server(function()
      assert.are.same({ { F.PONG, "mid" }, { F.TEXT, "fragmented" } }, answers({
        F.frame(F.TEXT, "frag", { fin = false }), F.frame(F.PING, "mid"),
        F.frame(F.CONT, "men", { fin = false }), F.frame(F.CONT, "ted") }, 2))
      -- fragments of size zero
      assert.are.same({ { F.BINARY, "z" } }, answers({ F.frame(F.BINARY, "", { fin = false }),
        F.frame(F.CONT, "", { fin = false }), F.frame(F.CONT, "z") }, 1))
      assert.are.equal(1002, exchange({ F.frame(F.PING, "x", { fin = false }) }))   -- fragmented control
      assert.are.equal(1002, exchange({ F.frame(F.CONT, "x") }))                    -- nothing to continue
      assert.are.equal(1002, exchange({ F.frame(F.TEXT, "a", { fin = false }), F.frame(F.TEXT, "b") }))
    end))

    it("6.x fails invalid UTF-8 with 1007, also split across fragments", with_server(function()
      local bad = { "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff", "\xce\xba\xe1\xbd\xb9\xcf",
        "\xe0\x80\x80" }
      for _, b in ipairs(bad) do
        assert.are.equal(1007, exchange({ F.frame(F.TEXT, "ok" .. b) }), ("%q"):format(b))
      end
      -- valid text split inside a character, and invalid text split
      assert.are.same({ { F.TEXT, "\xce\xba\xe1\xbd\xb9" } }, answers({ F.frame(F.TEXT, "\xce", { fin = false }),
        F.frame(F.CONT, "\xba\xe1\xbd", { fin = false }), F.frame(F.CONT, "\xb9") }, 1))
      assert.are.equal(1007, exchange({ F.frame(F.TEXT, "\xce", { fin = false }),
        F.frame(F.CONT, "\xff", { fin = true }) }))
      assert.are.equal(1007, exchange({ F.frame(F.TEXT, "ab\xe1\xbd", { fin = false }), F.frame(F.CONT, "") }))
    end))

    it("7.x echoes valid close codes and fails bad close payloads", with_server(function()
      for _, code in ipairs({ 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999 }) do
        assert.are.equal(code, exchange({ close(code) }), "code " .. code)
      end
      for _, code in ipairs({ 0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535 }) do
        assert.are.equal(1002, exchange({ close(code) }), "code " .. code)
      end
      assert.are.equal(1002, exchange({ F.frame(F.CLOSE, "\x03") }))                 -- 1 byte
      assert.are.equal(1007, exchange({ F.frame(F.CLOSE, F.close_payload(1000, "\xff")) }))
      local code, reason = exchange({ F.frame(F.CLOSE, F.close_payload(1000, ("r"):rep(123))) })
      assert.are.equal(1000, code)
      assert.are.equal(("r"):rep(123), reason)
      assert.are.equal(nil, exchange({ F.frame(F.CLOSE, "") }))                     -- echoed empty
      -- nothing after the close is answered
      local c, _, seen = exchange({ close(), F.frame(F.TEXT, "late"), F.frame(F.PING, "late") })
      assert.are.equal(1000, c)
      assert.are.same({}, seen)
    end))

    it("9.x fails messages over max_message with 1009, whole or fragmented", with_server(function()
      local seen = answers({ F.frame(F.BINARY, ("m"):rep(70000)) }, 1)
      assert.are.equal(70000, #seen[1][2])
      assert.are.equal(1009, exchange({ F.frame(F.BINARY, ("m"):rep(70001)) }))
      assert.are.equal(1009, exchange({ F.frame(F.TEXT, ("m"):rep(40000), { fin = false }),
        F.frame(F.CONT, ("m"):rep(40000)) }))
    end))

    it("fails unmasked client frames and non-minimal lengths with 1002", with_server(function()
      assert.are.equal(1002, exchange({ F.frame(F.TEXT, "x", { mask = false }) }))
      assert.are.equal(1002, exchange({ F.frame(F.TEXT, "x", { len16 = true }) }))
      assert.are.equal(1002, exchange({ F.frame(F.BINARY, ("x"):rep(200), { len64 = true }) }))
    end))

    it("fails masked frames from a server on the client end", H.async(function()
      local code
      local peer <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
        F.accept(s)
        s:write(F.frame(F.TEXT, "masked", { mask = true }))
        code = F.read_close(s)
      end)
      local ws = aio.http.ws_connect("ws://127.0.0.1:" .. peer.port .. "/")
      assert.is_nil(ws:receive())
      assert.are.equal(1002, ws.close_code)
      eventually(function() return code ~= nil end)
      assert.are.equal(1002, code)
      ws:close()
    end))
  end)
end)
