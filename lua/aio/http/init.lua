--- aio.http: HTTP for aio. The client (aio.http.client) is this table;
-- the names of the other HTTP modules are loaded on first use through the
-- table `lazy` below (a new HTTP module adds its names there).
-- See LICENSE

local core = require "aio.core"
local http = require "aio.http.client"

-- name -> module that exports it (e.g. App = "aio.http.server")
local lazy = {
  App = "aio.http.server", listen = "aio.http.server",
  ws_connect = "aio.http.websocket",
}

return setmetatable(http, {
  __index = function(t, name)
    local modname = lazy[name]
    if modname == nil then return nil end
    local value = core.load(modname)[name]
    rawset(t, name, value)
    return value
  end,
})
