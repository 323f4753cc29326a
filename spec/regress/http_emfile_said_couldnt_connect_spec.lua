-- Regression: when no descriptor was left for a socket, an HTTP request
-- failed with curl's "Couldn't connect to server", while aio.tcp said
-- EMFILE. The HTTP client keeps the reason its socket could not be opened:
-- `connect` with code "EMFILE", as aio.tcp.connect.
local H = require "helper"

describe("the HTTP client out of descriptors", function()
  it("raises connect with code EMFILE", function()
    local out = H.lua_child([[
      local aio = require "aio"
      aio.run(function()
        local server <close> = aio.tcp.listen("127.0.0.1", 0, function(s) s:read() end)
        local get = aio.http.get
        local release = require("support.fds")()
        local ok, err = pcall(get, "http://127.0.0.1:" .. server.port .. "/")
        release()
        print(ok, aio.is_error(err) and err.kind, aio.is_error(err) and err.code, tostring(err))
      end)
    ]], "ulimit -n 64;")
    assert.matches("false\tconnect\tEMFILE\t", out)
    assert.matches("too many open files", out)
  end)
end)
