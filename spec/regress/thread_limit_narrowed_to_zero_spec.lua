-- Regression: aio.to_thread's limit was stored in an unsigned int without
-- a range check: limit(2^32) became 0, and every later to_thread waited
-- for ever (then raised a deadlock). Values past the range are refused.
local aio = require "aio"
local H = require "helper"

describe("the to_thread limit", function()
  it("refuses values it cannot hold", H.async(function()
    local thread = require "aio.io.thread"
    local before = thread.limit()
    assert.has_error(function() thread.limit(2 ^ 32) end)
    assert.has_error(function() thread.limit(math.maxinteger) end)
    assert.are.equal(before, thread.limit())
    assert.are.equal(3, aio.to_thread(function(a, b) return a + b end, 1, 2))
  end))
end)
