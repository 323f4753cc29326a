--[[
pg_pool.lua: one PostgreSQL pool shared by a thousand tasks, a transaction
that moves money between two accounts (or, when it cannot, nothing at all),
and LISTEN/NOTIFY between two tasks. Every task writes plain sequential
code; a task waiting for the database lets the others run.

Usage: lua5.4 examples/pg_pool.lua [DSN] [N]
  DSN  a PostgreSQL connection string or URI (postgresql://user@host:5432/db);
       without one (or with "") the example starts a throwaway server, which
       needs PostgreSQL 15 installed (Debian's postgresql package)
  N    tasks sharing the pool's 10 connections (default 1000)
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"

local dsn, n = arg[1], tonumber(arg[2]) or 1000
local PG, server
if dsn == nil or dsn == "" then
  PG = require "support.pg_server"
  if not PG.available() then
    print("PostgreSQL is not installed here: give a DSN, e.g. postgresql://me@127.0.0.1/mydb")
    os.exit(0)
  end
  server = PG.start()
  dsn = server.dsn
end

-- Moves `amount` from one account to another in one transaction: both
-- updates happen, or (on any error) neither does.
local function transfer(pool, from, to, amount)
  local conn <close> = pool:acquire()
  local tx <close> = conn:transaction()        -- rolled back unless committed
  conn:execute("UPDATE accounts SET balance = balance - $2 WHERE name = $1", from, amount)
  conn:execute("UPDATE accounts SET balance = balance + $2 WHERE name = $1", to, amount)
  tx:commit()
end

local function balances(pool)
  local parts = {}
  for _, row in ipairs(pool:query("SELECT name, balance FROM accounts ORDER BY name")) do
    parts[#parts + 1] = ("%s %d"):format(row.name, row.balance)
  end
  return table.concat(parts, ", ")
end

local ok, err = pcall(aio.run, function()
  local pool <close> = aio.pg.Pool{dsn = dsn, max = 10}

  -- 1. A thousand tasks, ten connections: each waits its turn, first come,
  --    first served, and never blocks the others.
  local t0 = aio.now()
  local tasks = {}
  for i = 1, n do
    tasks[i] = function() return pool:query_value("SELECT $1::int * $1::int", i) end
  end
  local squares = aio.gather(tasks)
  print(("1. %d tasks ran %d queries on %d connections in %.2f s; the last square is %d")
    :format(n, #squares, pool:stats().size, aio.now() - t0, squares[n]))

  -- 2. A transaction: all or nothing.
  pool:execute([[CREATE TABLE IF NOT EXISTS accounts (
    name text PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0))]])
  pool:execute("TRUNCATE accounts")
  pool:execute("INSERT INTO accounts VALUES ('alice', 100), ('bob', 0)")
  transfer(pool, "alice", "bob", 30)
  print("2. after moving 30: " .. balances(pool))
  local moved, e = pcall(transfer, pool, "alice", "bob", 500)
  assert(not moved and aio.is_error(e, "db"))
  print(("   moving 500 failed (%s, sqlstate %s), so nothing moved: %s")
    :format(e.message, e.sqlstate, balances(pool)))

  -- 3. LISTEN/NOTIFY: a task waits for jobs another one announces.
  local ready = aio.Event()
  local listener = aio.spawn(function()
    local conn <close> = pool:acquire()
    conn:listen("jobs")
    ready:set()
    for note in conn:notifications() do
      print("3. the listener got: " .. note.payload)
      if note.payload == "stop" then break end
    end
  end)
  ready:wait()
  for _, job in ipairs({"resize image", "send mail", "stop"}) do
    pool:execute("SELECT pg_notify('jobs', $1)", job)
  end
  listener:await()
  pool:execute("DROP TABLE accounts")
end)

if server then PG.stop(server) end
if not ok then error(err, 0) end
