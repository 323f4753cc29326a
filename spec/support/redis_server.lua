--- spec/support/redis_server.lua: real redis-server processes for the
-- Redis specs, on 127.0.0.1, a free port and a unix socket in a temporary
-- directory, without persistence; started and stopped by PID (Debian's
-- redis-server). The children run without LD_PRELOAD (the sanitizer
-- runtime is for us only). See LICENSE

local H = require "helper"

local S = {}

local proc = require "support.proc"
local slurp, alive, nap = proc.slurp, proc.alive, proc.nap

local BIN = "/usr/bin/redis-server"

--- Is redis-server installed? (Specs skip when it is not.)
function S.available()
  local f = io.open(BIN)
  if f then f:close() end
  return f ~= nil
end

--- A TCP port nobody listens on now.
function S.free_port()
  local aio = require "aio"
  local function pick()
    local server = aio.tcp.listen("127.0.0.1", 0, function() end)
    local port = server.port
    server:close()
    return port
  end
  if aio.current() then return pick() end
  return aio.run(pick)
end

-- Starts redis-server for `srv` (its port, dir, options) and waits until
-- it accepts connections.
local function launch(srv)
  local log, pidfile = srv.dir .. "/redis.log", srv.dir .. "/redis.pid"
  local argv = { BIN, "--port", srv.port, "--bind", "127.0.0.1", "--save", "''",
    "--appendonly", "no", "--dir", srv.dir, "--unixsocket", srv.socket,
    "--unixsocketperm", "700", "--logfile", log, "--pidfile", pidfile,
    "--daemonize", "no", "--enable-debug-command", "yes" }
  if srv.password then argv[#argv + 1] = "--requirepass " .. srv.password end
  for _, u in ipairs(srv.users or {}) do
    argv[#argv + 1] = ("--user %s on '>%s' '~*' '&*' '+@all'"):format(u[1], u[2])
  end
  os.remove(log)
  os.remove(pidfile)
  -- under `timeout`, so that a server outlives a crashed spec run by 30
  -- minutes at most; srv.pid is the server's own (for SIGKILL)
  local wrapper = proc.spawn("timeout -k 5 1800 " .. table.concat(argv, " "), "/dev/null")
  for _ = 1, 200 do
    local text = slurp(log) or ""
    srv.pid = tonumber(slurp(pidfile) or "")
    if srv.pid and text:find("Ready to accept connections", 1, true) then return end
    if not alive(wrapper) then break end
    nap(0.025)
  end
  error("redis-server did not start:\n" .. (slurp(log) or ""))
end

--- Starts a redis-server; returns it: {port=, socket=, url=, unix_url=,
--- pid=}. opts.password (requirepass), opts.users ({{name, password}}:
--- ACL users with every right).
---@param opts? {password?: string, users?: table}
function S.start(opts)
  opts = opts or {}
  local srv = { dir = H.tmpdir(), port = S.free_port(), password = opts.password,
    users = opts.users }
  os.execute("chmod 755 '" .. srv.dir .. "'")
  srv.socket = srv.dir .. "/redis.sock"
  srv.url = ("redis://127.0.0.1:%d"):format(srv.port)
  srv.unix_url = "unix:" .. srv.socket
  launch(srv)
  return srv
end

--- Kills the server (SIGKILL: no goodbye to its clients) and waits for it
--- to be gone.
function S.kill(srv)
  os.execute("kill -9 " .. srv.pid .. " 2>/dev/null")
  for _ = 1, 200 do
    if not alive(srv.pid) then return end
    nap(0.01)
  end
end

--- Starts the server again, on the same port and socket, empty.
function S.restart(srv)
  launch(srv)
end

--- Stops the server (by PID) and removes its directory.
function S.stop(srv)
  if not srv then return end
  os.execute("kill " .. srv.pid .. " 2>/dev/null")
  for _ = 1, 200 do
    if not alive(srv.pid) then break end
    nap(0.01)
  end
  if alive(srv.pid) then os.execute("kill -9 " .. srv.pid .. " 2>/dev/null") end
  H.rmtree(srv.dir)
end

return S
