-- aio.http streaming (stream = true): chunks, backpressure that keeps
-- memory bounded, read_all, close, failures and timeouts mid-body.
local aio = require "aio"
local H = require "helper"
local S = require "support.http_servers"

local env

local KiB, MiB = 1024, 1024 * 1024
-- The most a chunk can hold: the pause threshold plus one write from curl.
local MAX_CHUNK = 256 * KiB + 16 * KiB

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

describe("aio.http streaming", function()
  setup(function() env = S.start() end)
  teardown(function() S.stop(env) end)

  it("hands the response over at its headers and the body in chunks", H.async(function()
    local t0 = aio.now()
    local r = aio.http.get(env.url("/trickle?n=5&delay=0.1&size=10"), { stream = true })
    local at_headers = aio.now() - t0
    assert.are.equal(200, r.status)
    assert.are.equal("chunked", r.headers["transfer-encoding"])
    assert.is_nil(r.body)
    assert.is_true(at_headers < 0.3, "response came after " .. at_headers)
    local chunks = {}
    for chunk in r:chunks() do chunks[#chunks + 1] = chunk end
    assert.are.equal(S.pattern(10):rep(5), table.concat(chunks))
    assert.is_true(#chunks >= 3, "only " .. #chunks .. " chunks")
    assert.is_true(aio.now() - t0 >= 0.35)
  end))

  it("pauses the transfer while the consumer is behind", H.async(function()
    local r <close> = aio.http.get(env.nginx("/64m.bin"), { stream = true })
    assert.are.equal(tostring(64 * MiB), r.headers["content-length"])
    local total, biggest, n = 0, 0, 0
    for chunk in r:chunks() do
      n = n + 1
      total = total + #chunk
      if #chunk > biggest then biggest = #chunk end
      if n <= 3 then aio.sleep(0.1) end   -- fall behind: curl must pause
    end
    assert.are.equal(64 * MiB, total)
    assert.is_true(biggest > 128 * KiB, "never buffered much: " .. biggest)
    assert.is_true(biggest <= MAX_CHUNK, "buffered " .. biggest .. " bytes")
  end))

  it("keeps memory bounded while streaming 1 GiB", H.async(function()
    local r <close> = aio.http.get(env.nginx("/big.bin"), { stream = true })
    local start, peak = rss_kb(), 0
    local total, n = 0, 0
    for chunk in r:chunks() do
      total = total + #chunk
      n = n + 1
      if n % 64 == 0 then
        local now = rss_kb()
        if now > peak then peak = now end
      end
    end
    assert.are.equal(1024 * MiB, total)
    -- sanitizers hold freed memory back (ASan's quarantine is 256 MiB)
    local bound = (H.SLOW and 400 or 64) * 1024
    assert.is_true(peak - start < bound, ("RSS grew by %d KiB"):format(peak - start))
  end, { timeout = 120 }))

  it("does not count a paused transfer as silence", H.async(function()
    local r <close> = aio.http.get(env.nginx("/64m.bin"), { stream = true, timeout = { read = 0.2 } })
    local first = r:chunks()()
    assert.is_string(first)
    aio.sleep(0.6)
    local total = #first
    for chunk in r:chunks() do total = total + #chunk end
    assert.are.equal(64 * MiB, total)
  end))

  it("reads the rest with read_all, text and json", H.async(function()
    local r = aio.http.get(env.url("/chunked?n=4&size=1000"), { stream = true })
    local first = r:chunks()()
    local rest = r:read_all()
    assert.are.equal(S.pattern(1000):rep(4), first .. rest)
    assert.are.equal(rest, r.body)
    assert.are.equal(rest, r:text())
    local j = aio.http.get(env.url("/gzip"), { stream = true })
    assert.is_true(j:json().gzipped)
  end))

  it("aborts an unfinished transfer on close(); later reads raise closed", H.async(function()
    local s <close> = aio.http.Session { max_connections = 1 }
    local r = s:get(env.nginx("/big.bin"), { stream = true })
    assert.is_string(r:chunks()())
    r:close()
    local err = H.raises("closed", r.read_all, r)
    assert.are.equal(env.nginx("/big.bin"), err.url)
    r:close()
    assert.are.equal(0, s:stats().active)
    assert.are.equal(200, s:get(env.url("/echo")).status)
  end))

  it("closes a streamed response with <close>", H.async(function()
    local s <close> = aio.http.Session()
    do
      local r <close> = s:get(env.nginx("/big.bin"), { stream = true })
      assert.is_string(r:chunks()())
      assert.are.equal(1, s:stats().active)
    end
    assert.are.equal(0, s:stats().active)
  end))

  it("aborts a streamed response dropped without close once it is collected", H.async(function()
    local s <close> = aio.http.Session { max_connections = 1 }
    s:get(env.nginx("/big.bin"), { stream = true })
    aio.sleep(0.05)
    assert.are.equal(1, s:stats().active)
    collectgarbage()
    collectgarbage()
    assert.are.equal(0, s:stats().active)
    assert.are.equal(200, s:get(env.url("/echo")).status)
  end))

  it("yields the body once from chunks() of a response that was not streamed", H.async(function()
    local r = aio.http.get(env.url("/bytes/100"))
    local got = {}
    for chunk in r:chunks() do got[#got + 1] = chunk end
    assert.are.same({ S.pattern(100) }, got)
    r:close()
    for _ in aio.http.get(env.url("/status/204")):chunks() do error("no chunk expected") end
  end))

  it("raises io mid-stream when the connection drops", H.async(function()
    local r = aio.http.get(env.raw_url("/partial"), { stream = true })
    assert.are.equal(200, r.status)
    local got = ""
    local err = H.raises("io", function()
      for chunk in r:chunks() do got = got .. chunk end
    end)
    assert.are.equal(("x"):rep(10), got)
    assert.are.equal(env.raw_url("/partial"), err.url)
    H.raises("io", r.read_all, r)
  end))

  it("raises timeout with phase read when the body stops coming", H.async(function()
    local r = aio.http.get(env.raw_url("/headers-then-hang"), { stream = true, timeout = { read = 0.2 } })
    assert.are.equal(("y"):rep(10), r:chunks()())
    local err = H.raises("timeout", r.read_all, r)
    assert.are.equal("read", err.phase)
  end))

  it("applies max_body to a streamed body", H.async(function()
    local r = aio.http.get(env.url("/chunked?n=10&size=1000"), { stream = true, max_body = 2500 })
    local total = 0
    local err = H.raises("protocol", function()
      for chunk in r:chunks() do total = total + #chunk end
    end)
    assert.is_true(total <= 2500)
    assert.matches("max_body", err.message)
  end))

  it("aborts the transfer when the reading task is cancelled", H.async(function()
    local s <close> = aio.http.Session()
    local r = s:get(env.url("/trickle?n=50&delay=0.1"), { stream = true })
    local reader = aio.spawn(function()
      for _ in r:chunks() do end
    end)
    aio.sleep(0.15)
    assert.are.equal(1, s:stats().active)
    reader:cancel()
    H.raises("cancelled", reader.await, reader)
    assert.are.equal(0, s:stats().active)
    assert.are.equal(0, s:stats().watched)
  end))

  it("lets one task at a time wait on a streamed body", H.async(function()
    local r <close> = aio.http.get(env.url("/trickle?n=3&delay=0.2"), { stream = true })
    local first = aio.spawn(function() return r:read_all() end)
    aio.sleep(0.05)
    local err = H.raises("usage", r.read_all, r)
    assert.matches("another task is already reading", err.message)
    assert.are.equal(S.pattern(10):rep(3), first:await())
  end))

  it("streams over HTTP/2", H.async(function()
    local r <close> = aio.http.get(env.nginxs("/64m.bin"), { stream = true, ca_file = env.cert,
      http_version = "2" })
    assert.are.equal("2", r.http_version)
    local total = 0
    for chunk in r:chunks() do total = total + #chunk end
    assert.are.equal(64 * MiB, total)
  end))
end)
