-- aio.pg benchmark W9, mirroring ../shared/bench/peers/server/pg_asyncpg.py:
-- the same workloads, arguments and RESULT lines.
--
-- usage (from the repository root):
--   lua5.4 bench/aio_pg.lua PORT [N [TASKS]]
--   w9      N queries `SELECT $1::int + 1` (default 50,000) from TASKS tasks
--           (default 64) through a Pool of 10 connections; every answer
--           is checked
--   w9rows  100,000 rows of (int, text, float, bool, timestamptz) in one
--           query on one connection of the pool, decoded into Lua tables
--
-- Connects as `app` to database `postgres` on 127.0.0.1:PORT (as the peer
-- does). Finds aio in ./build and ./lua first (after `make`). Prints:
-- RESULT peer=aio wl=w9 n=... secs=... rate=... unit=queries/s ...
-- RESULT peer=aio wl=w9rows n=... secs=... rate=... unit=rows/s ...
-- Bounded in time: exits with status 3 after BENCH_TIMEOUT seconds (120).

package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local aio = require "aio"
local benchlib = require "benchlib"
local result = benchlib.result

local port = tonumber(arg[1] or "")
if not port then
  io.stderr:write("usage: lua5.4 bench/aio_pg.lua PORT [N [TASKS]]\n")
  os.exit(2)
end
local N = tonumber(arg[2] or "") or 50000
local C = tonumber(arg[3] or "") or 64
local ROWS_SQL = "SELECT i, 'row ' || i AS t, i * 0.5 AS f, i % 2 = 0 AS b, now() AS ts "
  .. "FROM generate_series(1, 100000) i"

aio.run(function()
  local watchdog = benchlib.watchdog()
  local pool <close> = aio.pg.Pool{
    dsn = ("postgresql://app@127.0.0.1:%d/postgres"):format(port), min = 10, max = 10,
  }
  -- open the 10 connections first, as asyncpg's create_pool does
  local warm = {}
  for i = 1, 10 do warm[i] = function() return pool:query_value("SELECT 1") end end
  aio.gather(warm)

  local per = N // C
  local good = 0
  local function worker()
    for j = 0, per - 1 do
      if pool:query_value("SELECT $1::int + 1", j) == j + 1 then good = good + 1 end
    end
  end
  local tasks = {}
  for i = 1, C do tasks[i] = worker end
  local t0 = aio.now()
  aio.gather(tasks)
  local secs = aio.now() - t0
  result{ peer = "aio", wl = "w9", n = per * C, secs = secs, rate = per * C / secs,
    unit = "queries/s", ok = good == per * C }

  local conn <close> = pool:acquire()
  t0 = aio.now()
  local rows = conn:query(ROWS_SQL)
  secs = aio.now() - t0
  local r = rows[100000]
  local ok = #rows == 100000 and r.i == 100000 and r.t == "row 100000" and r.f == "50000.0"
    and r.b == true and type(r.ts) == "string"
  result{ peer = "aio", wl = "w9rows", n = #rows, secs = secs, rate = #rows / secs,
    unit = "rows/s", ok = ok }
  watchdog:cancel()
end)
