--- examples/support/pg_server.lua: a throwaway PostgreSQL 15 for the
-- examples and the specs: initdb into a temporary directory, `postgres` on
-- a free port of 127.0.0.1 with fsync off, run as the `postgres` user when
-- we are root (initdb refuses root), stopped by PID with `pg_ctl -m
-- immediate`. Roles: `app` (superuser, trusted) and `pwuser` (password
-- "secret", SCRAM), both allowed on the `postgres` database. Call start()
-- and stop() outside aio.run (they use a loop of their own briefly).
--
--   local PG = require "support.pg_server"       -- from examples/
--   local PG = require "examples.support.pg_server"  -- from spec/
--   local env = PG.start()     -- env.dsn, env.port, env.pid, env.dir
--   ...
--   PG.stop(env)
-- See LICENSE

local S = {}

S.BIN = os.getenv("AIO_PG_BIN") or "/usr/lib/postgresql/15/bin"

-- Children run without the sanitizer runtime (it is for our process).
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "

local function sh(cmd)
  local p = io.popen(CLEAN_ENV .. cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

-- Reads file `path` (nil if there is none), or writes `data` into it.
local function file(path, data)
  local f = io.open(path, data and "wb" or "rb")
  if not f then return nil end
  local r = data and f:write(data) or f:read("a")
  f:close()
  return r
end

local function is_root()
  local p = io.popen("id -u")
  local uid = p:read("l")
  p:close()
  return uid == "0"
end

--- Is PostgreSQL installed (initdb and postgres found)?
function S.available()
  return file(S.BIN .. "/initdb") ~= nil and file(S.BIN .. "/postgres") ~= nil
end

-- A port nobody listens on now.
local function free_port()
  local aio = require "aio"
  return aio.run(function()
    local srv = aio.tcp.listen("127.0.0.1", 0, function() end)
    local port = srv.port
    srv:close()
    return port
  end)
end

local HBA = [[
local   all  all                     trust
host    all  pwuser  127.0.0.1/32    scram-sha-256
host    all  all     127.0.0.1/32    trust
]]

-- Runs `cmd` (a PostgreSQL program and its arguments) as the server's user.
local function as_pg(env, cmd)
  return sh(env.prefix .. S.BIN .. "/" .. cmd)
end

--- Starts a server (a few hundred ms); returns its environment:
--- dsn (as `app`), port, pid, dir, data. Raises if it cannot.
function S.start()
  local p = io.popen("mktemp -d /tmp/aio-spec.XXXXXX")
  local dir = p:read("l")
  p:close()
  local env = { dir = dir, data = dir .. "/data", root = is_root() }
  env.prefix = env.root and "runuser -u postgres -- " or ""
  os.execute("chmod 755 '" .. dir .. "'")
  if env.root then os.execute("chown postgres '" .. dir .. "'") end
  local ok, out = as_pg(env, ("initdb -D '%s' -U app -A trust -E UTF8 --locale=C --no-sync --no-instructions")
    :format(env.data))
  if not ok then
    S.stop(env)
    error("initdb failed:\n" .. out)
  end
  local hba = dir .. "/pg_hba.conf"
  file(hba, HBA)
  os.execute("chmod 644 '" .. hba .. "'")
  for _ = 1, 5 do
    env.port = free_port()
    ok, out = as_pg(env, ("pg_ctl -D '%s' -l '%s/log' -w -t 60 -o \"-p %d -k '%s' "
      .. "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
      .. "-c full_page_writes=off -c max_connections=300 -c hba_file='%s' "
      .. "-c password_encryption=scram-sha-256\" start")
      :format(env.data, dir, env.port, dir, hba))
    if ok then break end
  end
  if not ok then
    local log = file(dir .. "/log") or ""
    S.stop(env)
    error("postgres did not start:\n" .. out .. log)
  end
  env.pid = tonumber((file(env.data .. "/postmaster.pid") or ""):match("^(%d+)"))
  env.dsn = ("postgresql://app@127.0.0.1:%d/postgres"):format(env.port)
  env.pw_dsn = ("postgresql://pwuser:secret@127.0.0.1:%d/postgres"):format(env.port)
  ok, out = S.psql(env, "CREATE ROLE pwuser LOGIN PASSWORD 'secret'")
  if not ok then
    S.stop(env)
    error("psql failed:\n" .. out)
  end
  return env
end

--- Runs `sql` through psql as `app`; returns ok, output (unaligned, no
--- headers).
function S.psql(env, sql)
  local path = env.dir .. "/q.sql"
  file(path, sql)
  os.execute("chmod 644 '" .. path .. "'")
  return sh(("%s/psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p %d -U app -d postgres -f '%s'")
    :format(S.BIN, env.port, path))
end

--- Restarts the server the way an administrator would (fast shutdown:
--- connections are ended, then it starts again); waits until it accepts
--- connections.
function S.restart(env)
  local ok, out = as_pg(env, ("pg_ctl -D '%s' -l '%s/log' -w -t 60 -m fast restart")
    :format(env.data, env.dir))
  assert(ok, "pg_ctl restart failed:\n" .. out)
  env.pid = tonumber((file(env.data .. "/postmaster.pid") or ""):match("^(%d+)"))
end

--- The argv and options for aio.process.run of a fast restart (from a
--- task: the loop goes on while the server restarts). Read env.pid again
--- afterwards with S.read_pid.
function S.restart_command(env)
  local argv = {}
  if env.root then argv = {"runuser", "-u", "postgres", "--"} end
  for _, a in ipairs({S.BIN .. "/pg_ctl", "-D", env.data, "-l", env.dir .. "/log", "-w",
                      "-t", "60", "-m", "fast", "restart"}) do
    argv[#argv + 1] = a
  end
  return argv, {env = {LD_PRELOAD = false, ASAN_OPTIONS = false, UBSAN_OPTIONS = false}}
end

--- The postmaster's PID now.
function S.read_pid(env)
  env.pid = tonumber((file(env.data .. "/postmaster.pid") or ""):match("^(%d+)"))
  return env.pid
end

--- Stops the server at once (immediate shutdown) and removes its
--- directory.
function S.stop(env)
  if not env then return end
  if file(env.data .. "/postmaster.pid") then
    as_pg(env, ("pg_ctl -D '%s' -m immediate -w -t 30 stop"):format(env.data))
  end
  local comm = env.pid and file("/proc/" .. env.pid .. "/comm")
  if comm and comm:match("^postgres") then          -- still there: by PID
    os.execute("kill -9 " .. env.pid .. " 2>/dev/null")
  end
  assert(env.dir:match("^/tmp/aio%-spec%."), "refusing to remove " .. env.dir)
  os.execute("rm -rf '" .. env.dir .. "'")
end

return S
