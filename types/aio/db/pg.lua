---@meta aio.db.pg

-- LuaLS definitions for aio.pg (`require "aio.db.pg"` is the same table).
-- Nothing here runs; the implementation is lua/aio/db/pg.lua and
-- src/db/pg_*.c.

---@class aio
---@field pg aio.pg

---PostgreSQL on libpq's non-blocking API, driven by the aio loop. Results
---decode by type (int2/4/8, oid -> integer; float4/8 -> float; numeric ->
---string; bool -> boolean; text -> string; bytea -> raw bytes; json/jsonb
----> string or, with decode_json, a Lua value; arrays -> Lua arrays;
---anything else -> its text form; NULL -> nil).
---@class aio.pg
---@field null lightuserdata a NULL element for array parameters (cjson.null)
local pg = {}

---A value bound to a parameter ($1, $2, ...): nil is NULL; a table is an
---array for an array parameter, else JSON; a string goes into bytea as
---raw bytes.
---@alias aio.pg.Param nil|boolean|number|string|table|lightuserdata

---A row: column name -> value (NULL columns are absent).
---@alias aio.pg.Row table<string, any>

---What conn:query returns: the rows, with their column names and count.
---@class aio.pg.Rows: aio.pg.Row[]
---@field columns string[] the column names, in order
---@field count integer the rows (for a command without rows: the rows it affected)

---Options of aio.pg.connect (and of a Pool's connections).
---@class aio.pg.ConnectOptions
---@field decode_json? boolean decode json/jsonb results into Lua values (false)
---@field statement_cache? integer prepared statements kept per connection (256; 0: none)
---@field connect_timeout? number seconds to connect (the DSN's connect_timeout, else 30)

---Options of aio.pg.Pool.
---@class aio.pg.PoolOptions: aio.pg.ConnectOptions
---@field dsn string a libpq connection string or URI
---@field min? integer connections kept open even when idle (0)
---@field max? integer connections open at most (10)
---@field acquire_timeout? number seconds a task waits for a connection (none)
---@field max_idle? number|false seconds before an idle connection beyond `min` is closed (300)
---@field max_lifetime? number seconds a connection is used at most (none)
---@field reset? "auto"|"always"|false what is undone on release: "auto" (the session when it may have changed), "always" (asyncpg's), false (only an open transaction)

---Options of conn:transaction (outermost transactions only).
---@class aio.pg.TransactionOptions
---@field isolation? "serializable"|"repeatable read"|"read committed"|"read uncommitted"
---@field readonly? boolean
---@field deferrable? boolean

---A notification from LISTEN/NOTIFY.
---@class aio.pg.Notification
---@field channel string
---@field payload string
---@field pid integer the server process of the sender

---A connection (from aio.pg.connect, or a pool's: closing it gives it
---back). Tasks may share it: operations take turns, first come, first
---served.
---@class aio.pg.Connection
local Connection = {}

---Runs `sql` with `...` bound to $1, $2, ... and returns its rows.
---(suspends)
---@async
---@param sql string
---@param ... aio.pg.Param
---@return aio.pg.Rows
function Connection:query(sql, ...) end

---The first row, or nil. (suspends)
---@async
---@param sql string
---@param ... aio.pg.Param
---@return aio.pg.Row?
function Connection:query_one(sql, ...) end

---The first column of the first row, or nil. (suspends)
---@async
---@param sql string
---@param ... aio.pg.Param
---@return any
function Connection:query_value(sql, ...) end

---Runs `sql` and returns the rows it affected. Without parameters the
---string may hold several statements. (suspends)
---@async
---@param sql string
---@param ... aio.pg.Param
---@return integer
function Connection:execute(sql, ...) end

---Starts a transaction (a savepoint inside another one). (suspends)
---@async
---@param opts? aio.pg.TransactionOptions
---@return aio.pg.Transaction
---@nodiscard
function Connection:transaction(opts) end

---LISTEN on `channel`. (suspends)
---@async
---@param channel string
function Connection:listen(channel) end

---UNLISTEN `channel`, or every channel. (suspends)
---@async
---@param channel? string
function Connection:unlisten(channel) end

---Sends a notification. (suspends)
---@async
---@param channel string
---@param payload? string
function Connection:notify(channel, payload) end

---An iterator over the notifications of the channels listened to; each
---step suspends until one arrives. It ends when the connection is closed
---or after `opts.timeout` seconds without one.
---@param opts? {timeout?: number}
---@return async fun(): aio.pg.Notification?
function Connection:notifications(opts) end

---`COPY ... FROM STDIN` of `rows` (an array of rows, a function returning
---one per call until nil, or a string of COPY data); returns the rows
---copied. (suspends)
---@async
---@param sql string
---@param rows (aio.pg.Param[]|string)[]|(fun(): (aio.pg.Param[]|string)?)|string
---@return integer
function Connection:copy_in(sql, rows) end

---Starts `COPY ... TO STDOUT` and returns an iterator over its rows (lines
---as the server sent them); leaving the loop early cancels it. (suspends)
---@async
---@param sql string
---@return async fun(): string?
function Connection:copy_out(sql) end

---`name` quoted as an SQL identifier.
---@param name string
---@return string
function Connection:quote_identifier(name) end

---`s` quoted as an SQL string literal.
---@param s string
---@return string
function Connection:quote_literal(s) end

---The server process serving the connection.
---@return integer
function Connection:pid() end

---The server version as an integer (150004 for 15.4).
---@return integer
function Connection:server_version() end

---@return "idle"|"intrans"|"inerror"|"active"|"unknown"
function Connection:transaction_status() end

---@return boolean
function Connection:closed() end

---Closes the connection; a pool's goes back to its pool.
function Connection:close() end

---To-be-closed: close().
function Connection:__close() end

---A transaction (or a savepoint): rolled back when closed unless committed.
---@class aio.pg.Transaction
---@field depth integer 1 for the outermost
local Transaction = {}

---Commits (or releases the savepoint); raises `db` 25P02 if the server
---rolled it back because a statement in it failed. (suspends)
---@async
function Transaction:commit() end

---Rolls back (to the savepoint). (suspends)
---@async
function Transaction:rollback() end

---To-be-closed: rolls back unless committed. (suspends)
---@async
function Transaction:__close() end

---A pool of connections shared by every task.
---@class aio.pg.Pool
---@field dsn string
---@field min integer
---@field max integer
local Pool = {}

---A connection for the calling task (suspends while all `max` are in use,
---first come, first served); closing it gives it back. (suspends)
---@async
---@return aio.pg.Connection
---@nodiscard
function Pool:acquire() end

---conn:query on a connection of the pool. (suspends)
---@async
---@param sql string
---@param ... aio.pg.Param
---@return aio.pg.Rows
function Pool:query(sql, ...) end

---conn:query_one on a connection of the pool. (suspends)
---@async
---@param sql string
---@param ... aio.pg.Param
---@return aio.pg.Row?
function Pool:query_one(sql, ...) end

---conn:query_value on a connection of the pool. (suspends)
---@async
---@param sql string
---@param ... aio.pg.Param
---@return any
function Pool:query_value(sql, ...) end

---conn:execute on a connection of the pool. (suspends)
---@async
---@param sql string
---@param ... aio.pg.Param
---@return integer
function Pool:execute(sql, ...) end

---@return {size: integer, idle: integer, in_use: integer, recovering: integer, connecting: integer, waiting: integer, min: integer, max: integer, closed: boolean}
function Pool:stats() end

---Closes idle connections now and the others when given back; waiting
---tasks raise `closed`. In a task, waits for the pool's own tasks.
---(suspends in a task)
---@async
function Pool:close() end

---To-be-closed: close().
---@async
function Pool:__close() end

---Connects to PostgreSQL (a libpq connection string or URI). Raises
---`connect`, `db` (what the server refuses: 28P01 for a wrong password) or
---`timeout`. (suspends)
---@async
---@param dsn string
---@param opts? aio.pg.ConnectOptions
---@return aio.pg.Connection
---@nodiscard
function pg.connect(dsn, opts) end

---A pool of connections to `opts.dsn`; connections open on demand.
---@param opts aio.pg.PoolOptions
---@return aio.pg.Pool
---@nodiscard
function pg.Pool(opts) end

return pg
