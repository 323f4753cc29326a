-- app:static and {file = path} responses: sendfile, content types,
-- Last-Modified / If-Modified-Since, Range, and no path ever leaving the
-- served directory.
local aio = require "aio"
local H = require "helper"
local U = require "support.server_util"

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function fixture()
  local dir = H.tmpdir()
  os.execute("mkdir -p '" .. dir .. "/www/sub' '" .. dir .. "/www/docs' '" .. dir .. "/secret'")
  write(dir .. "/www/index.html", "<h1>home</h1>")
  write(dir .. "/www/a.css", "body{}")
  write(dir .. "/www/data.json", '{"a":1}')
  write(dir .. "/www/sub/b.txt", "0123456789")
  write(dir .. "/www/docs/index.html", "docs")
  write(dir .. "/www/noext", "raw")
  write(dir .. "/www/sp ace.txt", "spaced")
  write(dir .. "/secret/key.txt", "TOP SECRET")
  os.execute("ln -s '" .. dir .. "/secret/key.txt' '" .. dir .. "/www/link-out.txt'")
  os.execute("ln -s '" .. dir .. "/secret' '" .. dir .. "/www/dir-out'")
  os.execute("ln -s sub/b.txt '" .. dir .. "/www/link-in.txt'")
  return dir
end

describe("aio.http static files", function()
  local dir
  before_each(function() dir = fixture() end)
  after_each(function() H.rmtree(dir) end)

  local function server(extra)
    local app = aio.http.App()
    app:static("/static", dir .. "/www")
    if extra then extra(app) end
    return aio.http.listen(app, { port = 0 })
  end

  it("serves files with their content type and Last-Modified", H.async(function()
    local srv <close> = server()
    local r = aio.http.get(srv.url .. "/static/a.css")
    assert.are.equal(200, r.status)
    assert.are.equal("body{}", r.body)
    assert.are.equal("text/css; charset=utf-8", r.headers["content-type"])
    assert.are.equal("bytes", r.headers["accept-ranges"])
    assert.matches("GMT$", r.headers["last-modified"])
    assert.are.equal("application/json", aio.http.get(srv.url .. "/static/data.json").headers["content-type"])
    assert.are.equal("application/octet-stream", aio.http.get(srv.url .. "/static/noext").headers["content-type"])
    assert.are.equal("0123456789", aio.http.get(srv.url .. "/static/sub/b.txt").body)
    assert.are.equal("spaced", aio.http.get(srv.url .. "/static/sp%20ace.txt").body)
    assert.are.equal("0123456789", aio.http.get(srv.url .. "/static/link-in.txt").body)
  end))

  it("serves index.html for directories and redirects the bare prefix", H.async(function()
    local srv <close> = server()
    assert.are.equal("<h1>home</h1>", aio.http.get(srv.url .. "/static/").body)
    assert.are.equal("docs", aio.http.get(srv.url .. "/static/docs").body)
    local r = aio.http.get(srv.url .. "/static", { follow_redirects = false })
    assert.are.equal(308, r.status)
    assert.are.equal("/static/", r.headers.location)
    assert.are.equal(404, aio.http.get(srv.url .. "/static/sub/").status)
  end))

  it("never serves a path outside the directory", H.async(function()
    local srv <close> = server()
    local paths = {
      "/static/../secret/key.txt", "/static/sub/../../secret/key.txt",
      "/static/%2e%2e/secret/key.txt", "/static/%2E%2E/%2e%2E/secret/key.txt",
      "/static/sub/%2e%2e%2f%2e%2e%2fsecret%2fkey.txt", "/static/..%2fsecret/key.txt",
      "/static/link-out.txt", "/static/dir-out/key.txt", "/static//etc/passwd",
      "/static/%2fetc%2fpasswd",
    }
    for _, p in ipairs(paths) do
      local out = U.raw(srv.port, "GET " .. p .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.not_matches("TOP SECRET", out, p)
      assert.not_matches("root:", out, p)
      local status = tonumber(out:match("^HTTP/1%.1 (%d+)"))
      assert.is_true(status == 404 or status == 400, p .. " -> " .. out)
    end
    assert.are.equal(400, aio.http.get(srv.url .. "/static/a.css%00.txt").status)
    assert.are.equal(404, aio.http.get(srv.url .. "/static/missing.txt").status)
  end))

  it("answers 304 to If-Modified-Since", H.async(function()
    local srv <close> = server()
    local r = aio.http.get(srv.url .. "/static/a.css")
    local lm = r.headers["last-modified"]
    r = aio.http.get(srv.url .. "/static/a.css", { headers = { ["If-Modified-Since"] = lm } })
    assert.are.equal(304, r.status)
    assert.are.equal("", r.body)
    r = aio.http.get(srv.url .. "/static/a.css", { headers = { ["If-Modified-Since"] = "Sat, 01 Jan 2000 00:00:00 GMT" } })
    assert.are.equal(200, r.status)
    r = aio.http.get(srv.url .. "/static/a.css", { headers = { ["If-Modified-Since"] = "garbage" } })
    assert.are.equal(200, r.status)
  end))

  it("answers Range requests with 206 and 416", H.async(function()
    local srv <close> = server()
    local url = srv.url .. "/static/sub/b.txt"
    local r = aio.http.get(url, { headers = { Range = "bytes=2-5" } })
    assert.are.equal(206, r.status)
    assert.are.equal("2345", r.body)
    assert.are.equal("bytes 2-5/10", r.headers["content-range"])
    r = aio.http.get(url, { headers = { Range = "bytes=7-" } })
    assert.are.equal("789", r.body)
    r = aio.http.get(url, { headers = { Range = "bytes=-3" } })
    assert.are.equal("789", r.body)
    r = aio.http.get(url, { headers = { Range = "bytes=5-100" } })
    assert.are.equal("56789", r.body)
    r = aio.http.get(url, { headers = { Range = "bytes=20-30" } })
    assert.are.equal(416, r.status)
    assert.are.equal("bytes */10", r.headers["content-range"])
    r = aio.http.get(url, { headers = { Range = "bytes=0-1,4-5" } })
    assert.are.equal(200, r.status)                 -- several ranges: the whole file
    assert.are.equal("0123456789", r.body)
    local out = U.curl({ "-r", "3-4", url })
    assert.are.equal("34", out)
  end))

  it("answers HEAD with the length and no body", H.async(function()
    local srv <close> = server()
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("HEAD /static/sub/b.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /static/a.css HTTP/1.1\r\nHost: x\r\n\r\n")
    local r = U.read_response(s, true)
    assert.are.equal("10", r.headers["content-length"])
    assert.are.equal("body{}", U.read_response(s).body)
  end))

  it("sends large files with sendfile, also to a slow reader", H.async(function()
    local size = 8 * 1024 * 1024 + 123
    local block = {}
    for i = 0, 255 do block[#block + 1] = string.char(i) end
    block = table.concat(block):rep(4096)
    local f = assert(io.open(dir .. "/www/big.bin", "wb"))
    local left = size
    while left > 0 do
      local n = math.min(left, #block)
      f:write(block:sub(1, n))
      left = left - n
    end
    f:close()
    local srv <close> = server(function(app)
      app:get("/download", function() return { file = dir .. "/www/big.bin", headers = { ["X-Kind"] = "big" } } end)
    end)
    local out = U.curl({ "-o", dir .. "/got.bin", "-w", "%{http_code} %{size_download}", srv.url .. "/static/big.bin" })
    assert.are.equal("200 " .. size, out)
    assert.is_true(os.execute("cmp -s '" .. dir .. "/www/big.bin' '" .. dir .. "/got.bin'"))
    -- a reader that takes its time: sendfile meets a full socket
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write("GET /download HTTP/1.1\r\nHost: x\r\n\r\n")
    local head = {}
    repeat local line = s:read_line() head[#head + 1] = line until line == ""
    assert.matches("X%-Kind: big", table.concat(head, "\n"))
    aio.sleep(0.2)
    local got = 0
    while got < size do
      local chunk = s:read(math.min(65536, size - got))
      got = got + #chunk
      if got < 1024 * 1024 then aio.sleep(0.001) end
    end
    assert.are.equal(size, got)
    s:write("GET /static/a.css HTTP/1.1\r\nHost: x\r\n\r\n")    -- still alive
    assert.are.equal("body{}", U.read_response(s).body)
  end))

  it("answers 404 for a {file=} that does not exist and keeps headers", H.async(function()
    local srv <close> = server(function(app)
      app:get("/f", function() return { file = dir .. "/nope" } end)
      app:get("/g", function() return { status = 201, file = dir .. "/www/a.css", headers = { ["Cache-Control"] = "no-store" } } end)
    end)
    assert.are.equal(404, aio.http.get(srv.url .. "/f").status)
    local r = aio.http.get(srv.url .. "/g")
    assert.are.equal(201, r.status)
    assert.are.equal("no-store", r.headers["cache-control"])
    assert.are.equal("body{}", r.body)
  end))

  it("raises io for a directory that does not exist", function()
    assert.is_true(aio.is_error(select(2, pcall(aio.http.App().static, aio.http.App(), "/x", "/nonexistent/dir")), "io"))
  end)
end)
