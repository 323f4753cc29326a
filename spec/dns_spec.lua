local aio = require "aio"
local H = require "helper"
local F = require "support.fifo"

local dns = aio.dns

describe("aio.dns", function()
  it("resolves localhost through the system resolver", H.async(function()
    local addrs = dns.resolve("localhost")
    assert.is_true(#addrs >= 1)
    local seen = {}
    for _, a in ipairs(addrs) do
      assert.is_nil(seen[a])                        -- each address once
      seen[a] = true
    end
    assert.is_true(seen["127.0.0.1"] or seen["::1"])
    assert.are.same({ "127.0.0.1" }, dns.resolve("localhost", { family = "inet" }))
  end))

  it("answers address literals at once, as themselves", H.async(function()
    assert.are.same({ "127.0.0.1" }, dns.resolve("127.0.0.1"))
    assert.are.same({ "::1" }, dns.resolve("::1"))
    assert.are.same({ "10.1.2.3" }, dns.resolve("10.1.2.3", { family = "inet" }))
  end))

  it("raises dns with code and host for unknown names", H.async(function()
    local err = H.raises("dns", dns.resolve, "nonexistent.invalid")
    assert.are.equal("nonexistent.invalid", err.host)
    assert.is_string(err.code)
    assert.matches("^EAI_", err.code)
    assert.matches("cannot resolve 'nonexistent.invalid'", err.message)
    err = H.raises("dns", dns.resolve, "127.0.0.1", { family = "inet6" })
    assert.are.equal("127.0.0.1", err.host)
  end))

  it("resolves many names concurrently", H.async(function()
    local tasks = {}
    for i = 1, 50 do
      tasks[i] = aio.spawn(dns.resolve, i % 2 == 0 and "localhost" or "127.0.0." .. i)
    end
    for i, t in ipairs(tasks) do
      local r = t:await()
      if i % 2 == 0 then assert.is_true(#r >= 1)
      else assert.are.same({ "127.0.0." .. i }, r) end
    end
  end))

  it("drops a lookup still queued when its task is cancelled", H.async(function()
    local dir = H.tmpdir()
    local release = F.hold_pool(dir, require("aio.io.thread").pool_size)
    local t = aio.spawn(dns.resolve, "localhost")
    aio.sleep(0.02)
    assert.is_false(t:done())                       -- queued behind the pool
    t:cancel()
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(aio.is_error(err, "cancelled"))
    release()
    H.rmtree(dir)
  end))

  it("rejects bad arguments", H.async(function()
    assert.has_error(function() dns.resolve() end, "bad argument #1 to 'resolve' (string expected, got no value)")
    assert.has_error(function() dns.resolve("x", { family = "ipx" }) end,
      "bad argument #2 to 'resolve' (family must be \"inet\", \"inet6\" or \"any\")")
    assert.has_error(function() dns.resolve("") end)
  end))

  it("raises usage outside a task", function()
    H.raises("usage", dns.resolve, "localhost")
  end)
end)
