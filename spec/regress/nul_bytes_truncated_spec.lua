-- Regression: strings that reach C were cut at their first zero byte:
-- aio.http.get("http://host/echo\0/../../admin") requested /echo, auth
-- {"user", "pass\0word"} sent "user:pass". Every string that reaches a C
-- API (URL, header, auth, proxy, CA file, path, argv, env, cwd, host,
-- signal name, a redis URL or socket path, a PostgreSQL connection
-- string) and holds a zero byte raises
-- `usage` now, in the Lua layer and in the C core alike.
local aio = require "aio"
local core = require "aio.core"
local H = require "helper"
local U = require "support.server_util"

describe("a string with a zero byte", function()
  it("is refused by the HTTP client, and nothing is sent", H.async(function()
    local requests = 0
    local server <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
      requests = requests + 1
      U.read_head(s)
      s:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    end)
    local base = ("http://127.0.0.1:%d"):format(server.port)
    local ok, e = pcall(aio.http.get, base .. "/echo\0/../../admin")
    assert.is_false(ok)
    assert.is_true(aio.is_error(e, "usage"), tostring(e))
    assert.matches("zero byte", e.message)
    assert.matches("nul_bytes_truncated_spec.lua:%d+:", e.message)   -- the caller's line
    H.raises("usage", aio.http.get, base .. "/\0", { timeout = 5 })
    H.raises("usage", aio.http.request, "GET", base .. "/\0")
    H.raises("usage", aio.http.get, base .. "/", { auth = { "user", "pass\0word" } })
    H.raises("usage", aio.http.get, base .. "/", { auth = { "us\0er", "pass" } })
    H.raises("usage", aio.http.get, base .. "/", { headers = { ["X-A"] = "a\0b" } })
    H.raises("usage", aio.http.get, base .. "/", { proxy = "http://127.0.0.1:1\0" })
    H.raises("usage", aio.http.get, base .. "/", { ca_file = "/etc/ssl\0/x" })
    H.raises("usage", aio.http.Session, { base_url = base .. "/\0" })
    local s <close> = aio.http.Session()
    H.raises("usage", s.get, s, base .. "/\0")
    aio.sleep(0.05)
    assert.are.equal(0, requests)
    assert.are.equal("ok", aio.http.get(base .. "/").body)       -- the server works
  end))

  it("is refused by the C core's HTTP engine too", H.async(function()
    local server <close> = U.ok_server()
    local url = ("http://127.0.0.1:%d/"):format(server.port)
    local session <close> = aio.http.Session()
    session:get(url)                     -- its engine is made on first use
    local eng = session._eng
    H.raises("usage", eng.request, eng, "GET", url .. "\0x", nil, nil, {})
    H.raises("usage", eng.request, eng, "G\0ET", url, nil, nil, {})
    H.raises("usage", eng.request, eng, "GET", url, { "X-A: a\0b" }, nil, {})
    H.raises("usage", eng.request, eng, "GET", url, nil, nil, { user = "u", password = "p\0w" })
    H.raises("usage", eng.request, eng, "GET", url, nil, nil, { proxy = "http://x\0" })
  end))

  it("is refused for paths, argv, env, cwd, hosts and signal names", H.async(function()
    local dir = H.tmpdir()
    H.raises("usage", aio.fs.write_file, dir .. "/a\0b", "x")
    H.raises("usage", aio.fs.open, dir .. "/a\0b")
    H.raises("usage", aio.fs.stat, dir .. "\0")
    H.raises("usage", aio.fs.rename, dir .. "/a", dir .. "/b\0")
    H.raises("usage", aio.fs.list, dir .. "\0")
    H.raises("usage", aio.process.run, { "echo", "a\0b" })
    H.raises("usage", aio.process.run, { "echo" }, { env = { X = "a\0b" } })
    H.raises("usage", aio.process.run, { "echo" }, { env = { ["X\0Y"] = "a" } })
    H.raises("usage", aio.process.run, { "pwd" }, { cwd = dir .. "\0/x" })
    H.raises("usage", aio.tcp.connect, "127.0.0.1\0evil", 80)
    H.raises("usage", aio.tcp.listen, "127.0.0.1\0", 0, function() end)
    H.raises("usage", aio.dns.resolve, "localhost\0.evil")
    H.raises("usage", aio.signal, "SIGUSR1\0", function() end)
    H.raises("usage", aio.redis.connect, "redis://127.0.0.1\0.evil:6379/")
    H.raises("usage", aio.redis.connect, "unix:/tmp/a%00b")   -- decoded by the URL
    H.raises("usage", aio.pg.connect, "host=127.0.0.1\0 host=evil")
    H.raises("usage", aio.pg.Pool, { dsn = "host=127.0.0.1\0 host=evil" })
    H.raises("usage", core.pg.conninfo, "host=a\0b")
    -- the C core, called directly
    H.raises("usage", core.process.run, { "echo", "a\0b" }, {})
    H.raises("usage", core.process.run, { "pwd" }, { cwd = "/\0x" })
    H.raises("usage", core.fs.open, dir .. "/a\0b")
    H.raises("usage", core.fs.stat, dir .. "\0")
    H.rmtree(dir)
  end))
end)
