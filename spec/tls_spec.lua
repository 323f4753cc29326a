-- aio.tcp.connect with tls: verification (chain, host name), SNI, ALPN,
-- the Stream API over TLS, failures and cancellation. Against Python's
-- ssl server (spec/support/ws_fixture.py) with a CA made by openssl.
local aio = require "aio"
local H = require "helper"
local P = require "support.ws_peers"

local env

-- Connects to the fixture's TLS line server; returns the stream and the
-- first line ("sni=... alpn=...").
local function connect(host, tls)
  local s = aio.tcp.connect(host, env.tls, { tls = tls })
  return s, s:read_line()
end

describe("aio.tcp.connect with tls", function()
  setup(function() env = P.start() end)
  teardown(function() P.stop(env) end)

  it("verifies the chain with ca_file and the host name, and sends SNI", H.async(function()
    local s <close>, hello = connect("localhost", { ca_file = env.ca })
    assert.are.equal("sni=localhost alpn=None", hello)
    s:write("line one\n", "line two\n")
    assert.are.equal("line one", s:read_line())
    assert.are.equal("line two", s:read_line())
    local info = s:tls_info()
    assert.matches("^TLSv1%.[23]$", info.protocol)
    assert.is_string(info.cipher)
    assert.is_nil(info.alpn)
    assert.matches("localhost:" .. env.tls, tostring(s))
  end))

  it("checks an IP address against the certificate and sends no SNI for it", H.async(function()
    local s <close>, hello = connect("127.0.0.1", { ca_file = env.ca })
    assert.are.equal("sni=None alpn=None", hello)
  end))

  it("refuses a certificate from an unknown CA", H.async(function()
    local err = H.raises("tls", aio.tcp.connect, "localhost", env.tls, { tls = true })
    assert.are.equal("CERTIFICATE_VERIFY_FAILED", err.code)
    assert.is_number(err.verify_code)
    assert.matches("certificate verify failed: unable to get local issuer certificate", err.message)
    assert.are.equal("localhost", err.host)
    assert.are.equal(env.tls, err.port)
  end))

  it("refuses a certificate for another name", H.async(function()
    local err = H.raises("tls", aio.tcp.connect, "127.0.0.1", env.tls,
      { tls = { ca_file = env.ca, server_name = "example.com" } })
    assert.are.equal("CERTIFICATE_VERIFY_FAILED", err.code)
    assert.matches("hostname mismatch", err.message)
  end))

  it("sends server_name as SNI and skips checks with verify = false", H.async(function()
    local s <close>, hello = connect("127.0.0.1", { verify = false, server_name = "example.com" })
    assert.are.equal("sni=example.com alpn=None", hello)
    s:write("ok\n")
    assert.are.equal("ok", s:read_line())
  end))

  it("negotiates ALPN", H.async(function()
    local s <close>, hello = connect("localhost", { ca_file = env.ca, alpn = { "h2", "http/1.1" } })
    assert.are.equal("sni=localhost alpn=h2", hello)
    assert.are.equal("h2", s:tls_info().alpn)
    local s2 <close>, hello2 = connect("localhost", { ca_file = env.ca, alpn = "http/1.1" })
    assert.are.equal("sni=localhost alpn=http/1.1", hello2)
    assert.are.equal("http/1.1", s2:tls_info().alpn)
  end))

  it("moves a megabyte each way with backpressure", H.async(function()
    local s <close> = connect("localhost", { ca_file = env.ca })
    local line = ("0123456789abcdef"):rep(4095) .. "\n"       -- 64 KiB lines
    local writer = aio.spawn(function()
      for _ = 1, 16 do s:write(line) end
    end)
    for _ = 1, 16 do
      assert.are.equal(#line - 1, #s:read_line())
    end
    writer:await()
    local plain <close> = aio.tcp.connect("127.0.0.1", env.tls)
    assert.is_nil(plain:tls_info())
  end))

  it("reads to the end when the server closes", H.async(function()
    local s <close> = connect("localhost", { ca_file = env.ca })
    s:write("last\n")
    assert.are.equal("last", s:read_line())
    s:shutdown()                                 -- the server sees EOF and closes
    assert.is_nil(s:read_line())
    assert.are.equal("", s:read("a"))
  end))

  it("leaks nothing when cancelled in the middle of the handshake", H.async(function()
    connect("localhost", { verify = false }):close()  -- OpenSSL's own files opened
    local fds = H.fd_count()
    local srv <close> = aio.tcp.listen("127.0.0.1", 0, function(s) s:read("a") end)
    local tasks = {}
    for i = 1, 20 do
      tasks[i] = aio.spawn(aio.tcp.connect, "127.0.0.1", srv.port, { tls = { verify = false } })
    end
    aio.sleep(0.1)
    for _, t in ipairs(tasks) do
      assert.is_false(t:done())                  -- waiting for the ServerHello
      t:cancel()
    end
    for _, t in ipairs(tasks) do assert.is_false(pcall(t.await, t)) end
    srv:close()
    srv:wait_closed()
    assert.are.equal(fds, H.fd_count())
  end))

  it("times out a handshake with opts.timeout", H.async(function()
    local srv <close> = aio.tcp.listen("127.0.0.1", 0, function(s) s:read("a") end)
    local err = H.raises("timeout", aio.tcp.connect, "127.0.0.1", srv.port,
      { timeout = 0.1, tls = { verify = false } })
    assert.are.equal("connect", err.phase)
  end))

  it("raises tls when the peer does not speak TLS", H.async(function()
    local srv <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
      s:write("HTTP/1.1 400 Bad Request\r\n\r\n")
    end)
    local err = H.raises("tls", aio.tcp.connect, "127.0.0.1", srv.port, { tls = { verify = false } })
    assert.matches("TLS handshake with 127%.0%.0%.1:%d+ failed", err.message)
  end))

  it("raises tls for a CA file it cannot load", H.async(function()
    local err = H.raises("tls", aio.tcp.connect, "localhost", env.tls,
      { tls = { ca_file = "/nonexistent/ca.pem" } })
    assert.matches("cannot load the CA file /nonexistent/ca.pem", err.message)
  end))

  it("checks its options", H.async(function()
    local function bad(opts, msg)
      local ok, err = pcall(aio.tcp.connect, "localhost", env.tls, { tls = opts })
      assert.is_false(ok)
      assert.matches(msg, err, 1, true)
    end
    bad(5, "tls must be true or a table")
    bad({ bogus = 1 }, "unknown tls option 'bogus'")
    bad({ ca_file = 1 }, "tls.ca_file must be a string")
    bad({ alpn = {} }, "tls.alpn must be a protocol name or an array of them")
    bad({ alpn = { ("x"):rep(256) } }, "tls.alpn must be a protocol name or an array of them")
  end))
end)
