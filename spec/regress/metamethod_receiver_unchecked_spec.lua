-- Regression: metamethods did not check their receiver as methods do.
-- getmetatable(q).__gc({}) segfaulted for Queue, File, Stream and a failed
-- Task (with nil, a table, a string or a number); a Stream's __gc called
-- by hand on a live stream, then the end of the run, was a use after free
-- (plain build: "free(): double free"); a Stream's __gc given another
-- userdata tripped libuv's uv_close assertion. Every metamethod raises a
-- standard `bad argument` for a wrong receiver now.
local aio = require "aio"
local H = require "helper"

describe("metamethods called by hand", function()
  it("raise bad argument for a wrong receiver", H.async(function()
    local dir = H.tmpdir()
    local server <close> = aio.tcp.listen("127.0.0.1", 0, function(s) s:read() end)
    local stream <close> = aio.tcp.connect("127.0.0.1", server.port)
    local file <close> = aio.fs.open(dir .. "/f", "w")
    local failed = aio.spawn(function() error("on purpose") end)
    aio.sleep(0.01)
    failed:error()
    local objects = { queue = aio.Queue(), file = file, stream = stream, failed = failed }
    for name, obj in pairs(objects) do
      local gc = getmetatable(obj).__gc
      if gc ~= nil then
        for _, wrong in ipairs({ {}, "x", 5, io.stdout }) do
          local ok, err = pcall(gc, wrong)
          assert.is_false(ok, name)
          assert.matches("bad argument #1", tostring(err), nil, true)
        end
        local ok, err = pcall(gc)
        assert.is_false(ok, name)
        assert.matches("bad argument #1", tostring(err))
      end
    end
    -- another aio object's userdata
    local ok, err = pcall(getmetatable(stream).__gc, file)
    assert.is_false(ok)
    assert.matches("aio.Stream expected, got aio.File", tostring(err), nil, true)
    H.rmtree(dir)
  end))

  it("leave a stream collected by hand to the end of the run, harmlessly", function()
    aio.run(function()
      local server = aio.tcp.listen("127.0.0.1", 0, function(s) s:read() end)
      local stream = aio.tcp.connect("127.0.0.1", server.port)
      getmetatable(stream).__gc(stream)
      local ok, err = pcall(stream.read, stream)
      assert.is_false(ok)
      assert.is_true(aio.is_error(err, "closed"), tostring(err))
      getmetatable(stream).__gc(stream)     -- again
      server:close()
    end)
    collectgarbage()
    collectgarbage()
    assert.are.equal(1, aio.run(function() return 1 end))
  end)
end)
