--[[
support/redis_server.lua: a throwaway redis-server for the Redis examples,
so that they run offline: no persistence, listening only on a unix socket
in a temporary directory, stopped (by PID) when the example ends.

  local url, server = require("support.redis_server").url(arg[1])
  if not url then return end             -- no URL given and no redis-server
  ...                                    -- url: unix:/tmp/aio-redis.XXXXXX/redis.sock
  if server then server:stop() end
]]

local M = {}

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local Server = {}
Server.__index = Server

--- Stops the server and removes its directory (also at garbage collection).
function Server:stop()
  if not self.pid then return end
  os.execute(("kill %d 2>/dev/null; sleep 0.05; rm -rf '%s'"):format(self.pid, self.dir))
  self.pid = nil
end

Server.__gc = Server.stop
Server.__close = Server.stop

--- Starts redis-server and waits until it accepts connections; returns the
--- server ({url=, stop=}) or nil if redis-server is not installed.
function M.start()
  local bin = sh("command -v redis-server 2>/dev/null"):match("%S+")
  if not bin then return nil end
  local dir = sh("mktemp -d /tmp/aio-redis.XXXXXX"):match("%S+")
  local sock = dir .. "/redis.sock"
  local pid = tonumber(sh(("env -u LD_PRELOAD '%s' --port 0 --unixsocket '%s' --save '' "
    .. "--appendonly no --dir '%s' >'%s/log' 2>&1 & echo $!"):format(bin, sock, dir, dir)))
  local server = setmetatable({ pid = pid, dir = dir, url = "unix:" .. sock }, Server)
  for _ = 1, 150 do
    local f = io.open(dir .. "/log")
    local log = f and f:read("a") or ""
    if f then f:close() end
    if log:lower():find("ready to accept connections", 1, true) then return server end
    os.execute("sleep 0.02")
  end
  server:stop()
  error("redis-server did not start")
end

--- The Redis URL an example uses: `given` if there is one, else that of a
--- new throwaway server (returned too, to stop). Without redis-server it
--- says so and returns nil.
function M.url(given)
  if given then return given end
  local server = M.start()
  if not server then
    print("redis-server is not installed: nothing to show (apt-get install redis-server)")
    return nil
  end
  return server.url, server
end

return M
