-- Regression: the façade loads aio.tcp, aio.dns, ... on first use; with
-- no descriptor left, Lua's searchers could not open the module's file
-- and the error said "module 'aio.io.dns' not found". It says what
-- happened now: `io` with code "EMFILE" (and the module).
local H = require "helper"

describe("a name loaded on first use without a descriptor left", function()
  it("raises io EMFILE, not 'module not found'", function()
    local out = H.lua_child([[
      local aio = require "aio"
      local release = require("support.fds")()
      local ok, err = pcall(function() return aio.dns end)
      release()
      print(ok, aio.is_error(err) and err.kind, aio.is_error(err) and err.code,
            aio.is_error(err) and err.module, tostring(err))
      -- and once descriptors are back, it loads
      print(type(aio.dns.resolve))
    ]], "ulimit -n 64;")
    assert.matches("false\tio\tEMFILE\taio.io.dns\t", out)
    assert.not_matches("not found", out)
    assert.matches("\nfunction\n", out)
  end)
end)
