-- aio.http: requests and responses, redirects, content, TLS and HTTP/2,
-- failures, safety. Against real servers (spec/support/http_servers.lua).
local aio = require "aio"
local H = require "helper"
local S = require "support.http_servers"
local cjson = require "cjson"

local env

local function echo(r)
  local j = r:json()
  local h = {}
  for _, pair in ipairs(j.headers) do h[pair[1]:lower()] = pair[2] end
  j.h = h
  return j
end

describe("aio.http", function()
  setup(function() env = S.start() end)
  teardown(function() S.stop(env) end)

  describe("requests", function()
    it("GETs a static file from nginx", H.async(function()
      local r = aio.http.get(env.nginx("/1k.bin"))
      assert.are.equal(200, r.status)
      assert.is_true(r.ok)
      assert.are.equal(S.pattern(1024), r.body)
      assert.are.equal("1.1", r.http_version)
      assert.are.equal(env.nginx("/1k.bin"), r.url)
      assert.are.equal("GET", r.method)
      assert.are.equal("1024", r.headers["content-length"])
      assert.are.equal("application/octet-stream", r.headers["content-type"])
      assert.are.equal(r.body, r:text())
      assert.matches("^aio.http.Response%(200 http", tostring(r))
    end))

    it("sends each method with its verb", H.async(function()
      local url = env.url("/echo")
      assert.are.equal("GET", aio.http.get(url):json().method)
      assert.are.equal("POST", aio.http.post(url):json().method)
      assert.are.equal("PUT", aio.http.put(url):json().method)
      assert.are.equal("PATCH", aio.http.patch(url):json().method)
      assert.are.equal("DELETE", aio.http.delete(url):json().method)
      assert.are.equal("OPTIONS", aio.http.request("options", url):json().method)
      local head = aio.http.head(url)
      assert.are.equal(200, head.status)
      assert.are.equal("", head.body)
      assert.are.equal("HEAD", head.method)
    end))

    it("lower-cases header names and joins repeated headers with ', '", H.async(function()
      local r = aio.http.get(env.url("/multi-header"))
      assert.are.equal("one, two", r.headers["x-multi"])
      assert.are.equal("a=1, b=2", r.headers["set-cookie"])
      assert.are.equal("one, two", r.headers["X-Multi"])
      assert.is_nil(rawget(r.headers, "X-Multi"))
      assert.is_nil(r.headers["X-Missing"])
      local seen = {}
      for _, h in ipairs(r:header_list()) do
        if h[1]:lower() == "x-multi" or h.name:lower() == "set-cookie" then
          seen[#seen + 1] = h.name .. "=" .. h[2]
          assert.are.equal(h[2], h.value)
        end
      end
      assert.are.same({ "X-Multi=one", "X-Multi=two", "Set-Cookie=a=1", "Set-Cookie=b=2" }, seen)
    end))

    it("encodes query tables, arrays as repeated keys, after an existing query", H.async(function()
      local r = aio.http.get(env.url("/echo?x=1"), { query = {
        a = "b c", z = { 1, 2 }, ["k&="] = "v/?", n = 1.5 } })
      local j = echo(r)
      assert.are.equal("x=1&a=b+c&k%26%3D=v%2F%3F&n=1.5&z=1&z=2", j.query_string)
      assert.are.same({ "1", "2" }, j.query.z)
      assert.are.same({ "v/?" }, j.query["k&="])
    end))

    it("sends the default User-Agent and the request's headers", H.async(function()
      local j = echo(aio.http.get(env.url("/echo"), { headers = {
        ["X-Test"] = "yes", ["X-Num"] = 42, ["X-Empty"] = "" } }))
      assert.are.equal("lua-aio (libcurl/" .. aio.http.curl_version .. ")", j.h["user-agent"])
      assert.are.equal("yes", j.h["x-test"])
      assert.are.equal("42", j.h["x-num"])
      assert.are.equal("", j.h["x-empty"])
      local custom = echo(aio.http.get(env.url("/echo"), { headers = { ["user-agent"] = "me/1" } }))
      assert.are.equal("me/1", custom.h["user-agent"])
    end))

    it("sends a string body as application/octet-stream", H.async(function()
      local body = "binary\0data\255"
      local j = echo(aio.http.post(env.url("/echo"), { body = body }))
      assert.are.equal(#body, j.body_len)
      assert.are.equal((body:gsub(".", function(c) return ("%02x"):format(c:byte()) end)), j.body_hex)
      assert.are.equal("application/octet-stream", j.h["content-type"])
      assert.are.equal(tostring(#body), j.h["content-length"])
      assert.is_nil(j.h["expect"])
      local typed = echo(aio.http.put(env.url("/echo"), { body = "<a/>",
        headers = { ["Content-Type"] = "text/xml" } }))
      assert.are.equal("text/xml", typed.h["content-type"])
      assert.are.equal("<a/>", typed.body)
    end))

    it("sends Content-Length: 0 and no Content-Type for POST without a body", H.async(function()
      local j = echo(aio.http.post(env.url("/echo")))
      assert.are.equal("0", j.h["content-length"])
      assert.is_nil(j.h["content-type"])
      assert.are.equal(0, j.body_len)
    end))

    it("sends a large body whole", H.async(function()
      local body = S.pattern(3 * 1024 * 1024 + 7)
      local j = echo(aio.http.put(env.url("/echo"), { body = body }))
      assert.are.equal(#body, j.body_len)
      assert.is_true(j.body == body)
    end))

    it("encodes json bodies with lua-cjson and decodes json responses", H.async(function()
      local value = { name = "aio", list = { 1, 2, 3 }, nested = { ok = true } }
      local j = echo(aio.http.post(env.url("/echo"), { json = value }))
      assert.are.equal("application/json", j.h["content-type"])
      assert.are.same(value, cjson.decode(j.body))
    end))

    it("encodes forms as application/x-www-form-urlencoded", H.async(function()
      local j = echo(aio.http.post(env.url("/echo"), { form = { q = "a b&c", tag = { "x", "y" } } }))
      assert.are.equal("application/x-www-form-urlencoded", j.h["content-type"])
      assert.are.equal("q=a+b%26c&tag=x&tag=y", j.body)
    end))

    it("refuses more than one of body, json and form", H.async(function()
      local err = H.raises("usage", aio.http.post, env.url("/echo"), { body = "x", json = {} })
      assert.matches("only one of the options body, json and form", err.message)
    end))

    it("raises protocol from json() for invalid JSON, with url and method", H.async(function()
      local r = aio.http.get(env.url("/json-invalid"))
      local err = H.raises("protocol", r.json, r)
      assert.are.equal(env.url("/json-invalid"), err.url)
      assert.are.equal("GET", err.method)
      assert.matches("not valid JSON", err.message)
    end))

    it("returns 4xx and 5xx as responses; raise_for_status raises http", H.async(function()
      local r = aio.http.get(env.url("/status/404"))
      assert.are.equal(404, r.status)
      assert.is_false(r.ok)
      assert.are.equal("status 404", r.body)
      local err = H.raises("http", r.raise_for_status, r)
      assert.are.equal(404, err.status)
      assert.are.equal(env.url("/status/404"), err.url)
      assert.are.equal(r, err.response)
      assert.are.equal("http: 404 Not Found (GET " .. env.url("/status/404") .. ")", tostring(err))
      local e503 = H.raises("http", function() aio.http.get(env.url("/status/503")):raise_for_status() end)
      assert.are.equal(503, e503.status)
      local ok = aio.http.get(env.url("/status/204"))
      assert.are.equal(ok, ok:raise_for_status())
      assert.are.equal(204, ok.status)
    end))
  end)

  describe("redirects", function()
    it("follows them and reports the final URL", H.async(function()
      local r = aio.http.get(env.url("/redirect/3"))
      assert.are.equal(200, r.status)
      assert.are.equal("redirected", r.body)
      assert.are.equal(env.url("/redirect/0"), r.url)
    end))

    it("raises redirect past max_redirects, with url and method", H.async(function()
      local err = H.raises("redirect", aio.http.get, env.url("/redirect/3"), { max_redirects = 2 })
      assert.are.equal(env.url("/redirect/3"), err.url)
      assert.are.equal("GET", err.method)
      assert.is_nil(aio.http.get(env.url("/redirect/2"), { max_redirects = 2 }).headers.location)
    end))

    it("returns the 3xx itself with follow_redirects = false", H.async(function()
      local r = aio.http.get(env.url("/redirect/1"), { follow_redirects = false })
      assert.are.equal(302, r.status)
      assert.are.equal("/redirect/0", r.headers.location)
      assert.are.equal(env.url("/redirect/1"), r.url)
    end))

    it("turns POST and PUT into GET on 303, keeps method and body on 307", H.async(function()
      local to = env.url("/redirect-to?status=303&url=/echo")
      local j = echo(aio.http.post(to, { body = "data" }))
      assert.are.equal("GET", j.method)
      assert.are.equal(0, j.body_len)
      assert.are.equal("GET", echo(aio.http.put(to, { body = "data" })).method)
      local k = echo(aio.http.post(env.url("/redirect-to?status=307&url=/echo"), { body = "data" }))
      assert.are.equal("POST", k.method)
      assert.are.equal("data", k.body)
      local p = echo(aio.http.put(env.url("/redirect-to?status=308&url=/echo"), { body = "again" }))
      assert.are.equal("PUT", p.method)
      assert.are.equal("again", p.body)
    end))

    it("refuses to follow a redirect to a scheme other than http and https", H.async(function()
      for _, target in ipairs({ "file:///etc/passwd", "gopher://127.0.0.1:1/x", "ftp://127.0.0.1/" }) do
        local url = env.url("/redirect-to?url=" .. target)
        local err = H.raises("redirect", aio.http.get, url)
        assert.are.equal(url, err.url)
        assert.matches("not http or https", err.message)
        assert.is_nil(err.message:find("root:", 1, true))
      end
    end))

    it("drops Authorization on an https -> http redirect", H.async(function()
      local r = aio.http.get(env.nginxs("/to-http-echo"), { ca_file = env.cert,
        auth = { "user", "secret" } })
      local j = echo(r)
      assert.are.equal(env.url("/echo"), r.url)
      assert.is_nil(j.h["authorization"])
      local r2 = aio.http.get(env.nginxs("/to-http-echo"), { ca_file = env.cert,
        headers = { Authorization = "Bearer token" } })
      assert.is_nil(echo(r2).h["authorization"])
    end))

    it("drops credentials on a redirect to another port", H.async(function()
      local to = env.url("/redirect-to?url=" .. env.url2("/echo"))
      local j = echo(aio.http.get(to, { auth = { "user", "secret" },
        headers = { Cookie = "session=1" } }))
      assert.are.equal(env.app2 and ("127.0.0.1:" .. env.app2), j.host)
      assert.is_nil(j.h["authorization"])
      assert.is_nil(j.h["cookie"])
    end))

    it("keeps Authorization on a same-origin redirect", H.async(function()
      local j = echo(aio.http.get(env.url("/redirect-to?url=/echo"), { auth = { "user", "secret" } }))
      assert.are.equal("Basic dXNlcjpzZWNyZXQ=", j.h["authorization"])
    end))
  end)

  describe("content", function()
    it("decompresses gzip and deflate, and says which encodings it takes", H.async(function()
      local r = aio.http.get(env.url("/gzip"))
      assert.are.equal("gzip", r.headers["content-encoding"])
      assert.is_true(r:json().gzipped)
      assert.is_true(aio.http.get(env.url("/deflate")):json().deflated)
      local ae = aio.http.get(env.url("/accept-encoding")).body
      assert.matches("gzip", ae)
      assert.matches("deflate", ae)
    end))

    it("leaves bodies encoded with decompress = false", H.async(function()
      local r = aio.http.get(env.url("/gzip"), { decompress = false })
      assert.are.equal("\31\139", r.body:sub(1, 2))
      assert.are.equal("<none>", aio.http.get(env.url("/accept-encoding"), { decompress = false }).body)
    end))

    it("reads chunked bodies", H.async(function()
      local r = aio.http.get(env.url("/chunked?n=7&size=300"))
      assert.are.equal("chunked", r.headers["transfer-encoding"])
      assert.are.equal(S.pattern(300):rep(7), r.body)
    end))

    it("raises protocol for a body past max_body", H.async(function()
      local err = H.raises("protocol", aio.http.get, env.url("/bytes/5000"), { max_body = 1000 })
      assert.matches("max_body %(1000 bytes%)", err.message)
      assert.are.equal(env.url("/bytes/5000"), err.url)
      local chunked = H.raises("protocol", aio.http.get, env.url("/chunked?n=10&size=1000"),
        { max_body = 5000 })
      assert.matches("max_body", chunked.message)
      assert.are.equal(5000, #aio.http.get(env.url("/bytes/5000"), { max_body = 5000 }).body)
    end))

    it("raises protocol for a corrupt compressed body", H.async(function()
      local err = H.raises("protocol", aio.http.get, env.url("/bad-gzip"))
      assert.are.equal(env.url("/bad-gzip"), err.url)
    end))
  end)

  describe("TLS and HTTP/2", function()
    it("verifies certificates by default: a self-signed one raises tls", H.async(function()
      local err = H.raises("tls", aio.http.get, env.nginxs("/1k.bin"))
      assert.are.equal(env.nginxs("/1k.bin"), err.url)
      assert.are.equal("GET", err.method)
      assert.matches("certificate", err.message)
    end))

    it("trusts the certificate given as ca_file", H.async(function()
      local r = aio.http.get(env.nginxs("/1k.bin"), { ca_file = env.cert })
      assert.are.equal(S.pattern(1024), r.body)
      assert.are.equal("1.1", r.http_version)
    end))

    it("skips verification with verify = false", H.async(function()
      assert.are.equal(200, aio.http.get(env.nginxs("/1k.bin"), { verify = false }).status)
    end))

    it("raises tls for a missing ca_file", H.async(function()
      H.raises("tls", aio.http.get, env.nginxs("/1k.bin"), { ca_file = env.dir .. "/missing.pem" })
    end))

    it("speaks HTTP/2 over TLS when asked (ALPN), multiplexing on one connection", H.async(function()
      local s <close> = aio.http.Session { ca_file = env.cert, http_version = "2" }
      local tasks = {}
      for i = 1, 20 do
        tasks[i] = aio.spawn(function() return s:get(env.nginxs("/1k.bin")) end)
      end
      for i = 1, 20 do
        local r = tasks[i]:await()
        assert.are.equal("2", r.http_version)
        assert.are.equal(S.pattern(1024), r.body)
        assert.are.equal("1024", r.headers["content-length"])
      end
      assert.are.equal(1, s:stats().polls)
    end))

    it("falls back to HTTP/1.1 where HTTP/2 is not offered", H.async(function()
      local r = aio.http.get(env.nginx("/1k.bin"), { http_version = "2" })
      assert.are.equal("1.1", r.http_version)
      assert.are.equal(200, r.status)
    end))
  end)

  describe("failures", function()
    it("raises connect when nothing listens, with url, method and curl_code", H.async(function()
      local url = "http://127.0.0.1:1/nothing"
      local err = H.raises("connect", aio.http.post, url, { body = "x" })
      assert.are.equal(url, err.url)
      assert.are.equal("POST", err.method)
      assert.are.equal(7, err.curl_code)
      assert.matches("^connect: POST http://127.0.0.1:1/nothing: ", tostring(err))
    end))

    it("raises dns for a name that does not resolve", H.async(function()
      local err = H.raises("dns", aio.http.get, "http://nonexistent.invalid/", { timeout = { connect = 10 } })
      assert.are.equal("http://nonexistent.invalid/", err.url)
      assert.matches("resolve", err.message)
    end))

    it("raises timeout with phase connect when connecting hangs", H.async(function()
      local url = ("http://127.0.0.1:%d/"):format(env.blackhole)
      local err, dt = H.timed(H.raises, "timeout", aio.http.get, url, { timeout = { connect = 0.2 } })
      assert.are.equal("connect", err.phase)
      assert.are.equal(0.2, err.seconds)
      assert.are.equal(url, err.url)
      assert.is_true(dt >= 0.15 and dt < 5, "took " .. dt)
    end))

    it("raises timeout with phase read after the longest silence", H.async(function()
      local url = env.raw_url("/hang")
      local err, dt = H.timed(H.raises, "timeout", aio.http.get, url, { timeout = { read = 0.2 } })
      assert.are.equal("read", err.phase)
      assert.are.equal(0.2, err.seconds)
      assert.are.equal("GET", err.method)
      assert.is_true(dt >= 0.15 and dt < 5, "took " .. dt)
    end))

    it("counts silence for read, not the whole transfer", H.async(function()
      local r = aio.http.get(env.url("/trickle?n=6&delay=0.1&size=10"), { timeout = { read = 0.4 } })
      assert.are.equal(60, #r.body)
    end))

    it("raises timeout with phase total when the whole request takes too long", H.async(function()
      local url = env.url("/delay/5")
      local err, dt = H.timed(H.raises, "timeout", aio.http.get, url, { timeout = 0.2 })
      assert.are.equal("total", err.phase)
      assert.are.equal(0.2, err.seconds)
      assert.is_true(dt < 4, "took " .. dt)
      local t = H.raises("timeout", aio.http.get, env.url("/trickle?n=10&delay=0.1"),
        { timeout = { total = 0.3, read = 5 } })
      assert.are.equal("total", t.phase)
    end))

    it("raises io when the server closes without answering or mid-body", H.async(function()
      local e1 = H.raises("io", aio.http.get, env.raw_url("/nothing"))
      assert.matches("Empty reply", e1.message)
      assert.are.equal(env.raw_url("/nothing"), e1.url)
      local e2 = H.raises("io", aio.http.get, env.raw_url("/partial"))
      assert.matches("990 bytes remaining", e2.message)
    end))

    it("raises protocol for a reply that is not HTTP", H.async(function()
      local err = H.raises("protocol", aio.http.get, env.raw_url("/garbage"))
      assert.are.equal(env.raw_url("/garbage"), err.url)
    end))
  end)

  describe("safety", function()
    it("allows only http and https URLs", H.async(function()
      for _, url in ipairs({ "file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1:70/",
                             "dict://127.0.0.1/", "javascript:alert(1)" }) do
        local err = H.raises("usage", aio.http.get, url)
        assert.matches("only http and https URLs are allowed", err.message)
      end
      assert.are.equal(200, aio.http.get((env.nginx("/1k.bin"):gsub("^http", "HTTP"))).status)
    end))

    it("refuses CR and LF in header names and values with usage", H.async(function()
      local url = env.url("/echo")
      local e1 = H.raises("usage", aio.http.get, url, { headers = { ["X-A"] = "a\r\nInjected: 1" } })
      assert.matches("CR, LF or NUL", e1.message)
      H.raises("usage", aio.http.get, url, { headers = { ["X-A"] = "a\nb" } })
      H.raises("usage", aio.http.get, url, { headers = { ["X-A"] = "a\rb" } })
      H.raises("usage", aio.http.get, url, { headers = { ["X-A\r\nInjected"] = "1" } })
      H.raises("usage", aio.http.get, url, { headers = { ["X-A: b"] = "1" } })
      H.raises("usage", aio.http.Session, { headers = { ["X-A"] = "a\r\nb" } })
    end))

    it("refuses malformed URLs with usage", H.async(function()
      H.raises("usage", aio.http.get, "http://exa mple.com/")
      H.raises("usage", aio.http.get, "http://127.0.0.1:99999/")
      H.raises("usage", aio.http.get, "http://127.0.0.1/\r\nInjected: 1")
    end))
  end)

  describe("auth and proxies", function()
    it("sends basic auth", H.async(function()
      local url = env.url("/basic-auth/alice/s3cret")
      assert.are.equal(401, aio.http.get(url).status)
      local r = aio.http.get(url, { auth = { "alice", "s3cret" } })
      assert.are.equal(200, r.status)
      assert.are.same({ authenticated = true, user = "alice" }, r:json())
      assert.are.equal(200, aio.http.get(url, { auth = { user = "alice", password = "s3cret" } }).status)
      assert.are.equal(401, aio.http.get(url, { auth = { "alice", "wrong" } }).status)
    end))

    it("sends requests through an HTTP proxy", H.async(function()
      local r = aio.http.get("http://example.invalid/path?q=1", { proxy = env.raw_url("/") })
      assert.are.equal("proxied GET http://example.invalid/path?q=1", r.body)
    end))
  end)

  describe("arguments", function()
    it("raises standard argument errors for wrong types and unknown options", H.async(function()
      assert.has_error(function() aio.http.get(42) end,
        "bad argument #1 to 'get' (string expected, got number)")
      assert.has_error(function() aio.http.get(env.url("/"), "x") end,
        "bad argument #2 to 'get' (table expected, got string)")
      assert.has_error(function() aio.http.get(env.url("/"), { tiemout = 1 }) end,
        "bad argument #2 to 'get' (unknown option 'tiemout')")
      assert.has_error(function() aio.http.request("GET", env.url("/"), { timeout = "1" }) end,
        "bad argument #3 to 'request' (option 'timeout' must be a number or a table {total=, connect=, read=})")
      assert.has_error(function() aio.http.get(env.url("/"), { timeout = 0 / 0 }) end,
        "bad argument #2 to 'get' (option 'timeout' is NaN)")
      assert.has_error(function() aio.http.request("BAD METHOD", env.url("/")) end,
        "bad argument #1 to 'request' (method must be an HTTP token like \"GET\")")
      assert.has_error(function() aio.http.get(env.url("/"), { http_version = "3" }) end)
      assert.has_error(function() aio.http.Session { max_connections = -1 } end,
        "bad argument #1 to 'Session' (option 'max_connections' must not be negative)")
      assert.has_error(function() aio.http.Session { nope = true } end,
        "bad argument #1 to 'Session' (unknown option 'nope')")
    end))

    it("raises usage outside a task", function()
      local ok, err = pcall(function() return aio.http.get("http://127.0.0.1:1/") end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(err, "usage"))
      assert.matches("must be called inside a task", err.message)
      assert.matches("http_spec.lua:%d+:", err.message)
    end)
  end)
end)
