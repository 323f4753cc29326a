-- Regression: a streamed, decompressed response (stream = true with the
-- default decompress) let curl inflate a whole read at once while the
-- transfer was paused for a slow consumer: a compression bomb (1 GiB of
-- zeros, 1 MB gzipped) grew curl's pause buffer to its 64 MB cap and
-- failed with `io: Out of memory` (or took seconds and 143 MB) instead of
-- stopping at max_body. aio inflates streamed bodies itself now, as they
-- are read: memory stays bounded by the window, max_body counts decoded
-- bytes.
local aio = require "aio"
local H = require "helper"
local S = require "support.http_servers"

describe("a streamed, decompressed response", function()
  local env
  setup(function() env = S.start() end)
  teardown(function() S.stop(env) end)

  it("stops a compression bomb at max_body of decoded bytes, in bounded memory", function()
    -- in a process of its own, to measure its peak memory
    local out = H.lua_child(([[
      local aio = require "aio"
      local function peak()
        local f = io.open("/proc/self/status")
        local kb = tonumber(f:read("a"):match("VmHWM:%%s*(%%d+)"))
        f:close()
        return kb
      end
      aio.run(function()
        local warm <close> = aio.http.get("%s", { stream = true })
        local before = peak()
        local r <close> = aio.http.get("%s", { stream = true, max_body = 2e6 })
        local got, biggest = 0, 0
        local ok, err = pcall(function()
          for chunk in r:chunks() do
            got = got + #chunk
            biggest = math.max(biggest, #chunk)
          end
        end)
        print("kind", aio.is_error(err, "protocol") and "protocol" or tostring(err))
        print("got", got, "biggest", biggest, "grew", peak() - before)
      end)
    ]]):format(env.url("/gzip"), env.url("/gzip-zeros/" .. 1024 * 1024 * 1024)))
    assert.matches("kind\tprotocol", out)
    local got, biggest, grew = out:match("got\t(%d+)\tbiggest\t(%d+)\tgrew\t(%-?%d+)")
    assert(got, out)
    assert.is_true(tonumber(got) <= 2e6, "handed out more than max_body")
    assert.is_true(tonumber(biggest) <= 256 * 1024, "a chunk of " .. biggest .. " bytes")
    -- the window is 256 KiB; curl's own inflating grew it by ~130 MB
    assert.is_true(tonumber(grew) < 32 * 1024, "memory grew by " .. grew .. " KiB")
  end)

  it("hands out exactly max_body decoded bytes", H.async(function()
    local url = env.url("/gzip-zeros/100000")
    local r <close> = aio.http.get(url, { stream = true, max_body = 100000 })
    assert.are.equal(100000, #r:read_all())
    local r2 <close> = aio.http.get(url, { stream = true, max_body = 99999 })
    H.raises("protocol", r2.read_all, r2)
  end))

  it("decodes gzip and deflate as it streams", H.async(function()
    local g <close> = aio.http.get(env.url("/gzip"), { stream = true })
    assert.is_true(g:json().gzipped)
    local d <close> = aio.http.get(env.url("/deflate"), { stream = true })
    assert.is_true(d:json().deflated)
    local bad <close> = aio.http.get(env.url("/bad-gzip"), { stream = true })
    local err = H.raises("protocol", bad.read_all, bad)
    assert.matches("cannot decode", err.message)
  end))
end)
