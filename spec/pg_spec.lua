-- aio.pg against a real PostgreSQL 15 (spec/support/pg_server.lua, one
-- server for this file): connecting, the type mapping both ways, errors,
-- the statement cache, transactions, LISTEN/NOTIFY and COPY.
local aio = require "aio"
local H = require "helper"
local PG = require "examples.support.pg_server"
local eventually = require "support.wait"

if not PG.available() then
  describe("aio.pg", function()
    pending("PostgreSQL is not installed (" .. PG.BIN .. ")")
  end)
  return
end

local pg = aio.pg

describe("aio.pg", function()
  local env
  setup(function() env = PG.start() end)
  teardown(function() PG.stop(env) end)

  local function connect(opts)
    return pg.connect(env.dsn, opts)
  end

  describe("connect", function()
    it("connects with a URI and with a key=value string", H.async(function()
      local c1 <close> = connect()
      assert.are.equal(1, c1:query_value("SELECT 1"))
      local c2 <close> = pg.connect(("host=127.0.0.1 port=%d user=app dbname=postgres"):format(env.port))
      assert.are.equal("app", c2:query_value("SELECT current_user"))
      assert.is_true(c2:server_version() >= 150000)
      assert.are.equal(c2:pid(), c2:query_value("SELECT pg_backend_pid()"))
      assert.matches("^aio.pg.Connection %(pid %d+%)$", tostring(c2))
    end))

    it("resolves host names (through aio.dns, off the loop)", H.async(function()
      local c <close> = pg.connect(("postgresql://app@localhost:%d/postgres"):format(env.port))
      assert.are.equal(2, c:query_value("SELECT 1 + 1"))
      assert.are.equal("127.0.0.1/32", c:query_value("SELECT inet_server_addr()::text"))
    end))

    it("raises connect when nothing listens", H.async(function()
      local srv = aio.tcp.listen("127.0.0.1", 0, function() end)
      local port = srv.port
      srv:close()
      local e = H.raises("connect", pg.connect, ("postgresql://app@127.0.0.1:%d/postgres"):format(port))
      assert.matches("cannot connect to PostgreSQL", e.message)
      assert.matches("refused", e.message)
    end))

    it("raises connect for a host name that does not resolve", H.async(function()
      local e = H.raises("connect", pg.connect, "postgresql://app@no-such-host.invalid:5432/postgres")
      assert.are.equal("no-such-host.invalid", e.host)
    end))

    it("raises db 28P01 for a wrong password and connects with the right one", H.async(function()
      local e = H.raises("db", pg.connect, ("postgresql://pwuser:wrong@127.0.0.1:%d/postgres"):format(env.port))
      assert.are.equal("28P01", e.sqlstate)
      assert.matches('password authentication failed for user "pwuser"', e.message)
      local c <close> = pg.connect(env.pw_dsn)
      assert.are.equal("pwuser", c:query_value("SELECT current_user"))
    end))

    it("raises db 3D000 for a database that does not exist", H.async(function()
      local e = H.raises("db", pg.connect, ("postgresql://app@127.0.0.1:%d/nope"):format(env.port))
      assert.are.equal("3D000", e.sqlstate)
    end))

    it("times out a server that never answers", H.async(function()
      local srv <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
        while s:read() do end
      end)
      local t0 = aio.now()
      local e = H.raises("timeout", pg.connect,
        ("postgresql://app@127.0.0.1:%d/postgres"):format(srv.port), {connect_timeout = 0.2})
      assert.are.equal("connect", e.phase)
      assert.is_true(aio.now() - t0 < 5)
    end))

    it("rejects bad arguments", H.async(function()
      assert.has_error(function() pg.connect(42) end, "bad argument #1 to 'connect' (string expected, got number)")
      assert.has_error(function() pg.connect("host=x port") end)
      assert.has_error(function() pg.connect(env.dsn, {statement_cache = -1}) end,
        "bad argument #2 to 'connect' (option 'statement_cache' must not be negative)")
      assert.has_error(function() pg.connect(env.dsn, {cache = 1}) end,
        "bad argument #2 to 'connect' (unknown option 'cache')")
    end))

    it("closes, and a closed connection raises closed", H.async(function()
      local c = connect()
      assert.is_false(c:closed())
      c:close()
      c:close()
      assert.is_true(c:closed())
      H.raises("closed", c.query, c, "SELECT 1")
      assert.are.equal("aio.pg.Connection (closed)", tostring(c))
    end))

    it("closes what a run left open when the run ends", function()
      local c = aio.run(function() return connect() end)
      H.raises("closed", c.query, c, "SELECT 1")
    end)

    it("lets several tasks share one connection, one query at a time", H.async(function()
      local c <close> = connect()
      local got = {}
      local tasks = {}
      for i = 1, 50 do
        tasks[i] = function() got[i] = c:query_value("SELECT $1::int * 2", i) end
      end
      aio.gather(tasks)
      for i = 1, 50 do assert.are.equal(2 * i, got[i]) end
    end))
  end)

  describe("values", function()
    it("decodes integers, floats, booleans, text and NULL", H.async(function()
      local conn <close> = connect()
      local r = conn:query_one([[SELECT 1::int2 AS a, '-2147483648'::int4 AS b,
        9223372036854775807::int8 AS c, 4000000000::oid AS d, 1.5::float4 AS e,
        0.1::float8 AS f, 'NaN'::float8 AS g, '-Infinity'::float8 AS h,
        true AS i, false AS j, 'héllo'::text AS k, 'v'::varchar AS l,
        'n'::name AS m, NULL::int AS n, ''::text AS o, 'x'::char(3) AS p]])
      assert.are.equal(1, r.a)
      assert.are.equal(-2147483648, r.b)
      assert.are.equal(math.maxinteger, r.c)
      assert.are.equal(4000000000, r.d)
      assert.are.equal(1.5, r.e)
      assert.are.equal(0.1, r.f)
      assert.is_true(r.g ~= r.g)
      assert.are.equal(-math.huge, r.h)
      assert.are.equal(true, r.i)
      assert.are.equal(false, r.j)
      assert.are.equal("héllo", r.k)
      assert.are.equal("v", r.l)
      assert.are.equal("n", r.m)
      assert.is_nil(r.n)
      assert.are.equal("", r.o)
      assert.are.equal("x  ", r.p)
      assert.are.equal("integer", math.type(r.a))
      assert.are.equal("integer", math.type(r.c))
      assert.are.equal("float", math.type(r.f))
      assert.are.equal(-9223372036854775807 - 1, conn:query_value("SELECT (-9223372036854775807 - 1)::int8"))
      assert.are.equal(1e300, conn:query_value("SELECT 1e300::float8"))
      assert.are.equal(123.456, conn:query_value("SELECT 123.456::float8"))
      assert.are.equal(-0.000123, conn:query_value("SELECT -0.000123::float8"))
    end))

    it("gives numeric and other types in their text form", H.async(function()
      local conn <close> = connect()
      local r = conn:query_one([[SELECT 12345678901234567890.123::numeric AS n,
        '2024-02-29'::date AS d, '1 day 2 hours'::interval AS i,
        '00000000-0000-0000-0000-000000000001'::uuid AS u, '10.0.0.1'::inet AS a,
        '2024-01-02 03:04:05+00'::timestamptz AS t]])
      assert.are.equal("12345678901234567890.123", r.n)
      assert.are.equal("2024-02-29", r.d)
      assert.are.equal("1 day 02:00:00", r.i)
      assert.are.equal("00000000-0000-0000-0000-000000000001", r.u)
      assert.are.equal("10.0.0.1", r.a)
      assert.matches("^2024%-01%-02 03:04:05", r.t)
    end))

    it("binds parameters of every kind", H.async(function()
      local conn <close> = connect()
      local r = conn:query_one([[SELECT $1::int AS a, $2::int8 AS b, $3::float8 AS c,
        $4::bool AS d, $5::text AS e, $6::numeric AS f, $7::int AS g, $8::float8 AS h,
        $9::float8 AS i, $10::text AS j]],
        42, math.mininteger, 0.1, true, "it's \"quoted\"", 0.1, nil, math.huge, 1 / 3, 7)
      assert.are.equal(42, r.a)
      assert.are.equal(math.mininteger, r.b)
      assert.are.equal(0.1, r.c)
      assert.are.equal(true, r.d)
      assert.are.equal("it's \"quoted\"", r.e)
      assert.are.equal("0.1", r.f)
      assert.is_nil(r.g)
      assert.are.equal(math.huge, r.h)
      assert.are.equal(1 / 3, r.i)
      assert.are.equal("7", r.j)
      assert.are.equal(false, conn:query_value("SELECT $1::bool", false))
      -- parameters are bound, never spliced into the SQL
      assert.are.equal("1; DROP TABLE x", conn:query_value("SELECT $1::text", "1; DROP TABLE x"))
    end))

    it("keeps bytea binary-safe both ways", H.async(function()
      local conn <close> = connect()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      local bytes = table.concat(all):rep(4)
      assert.are.equal(bytes, conn:query_value("SELECT $1::bytea", bytes))
      assert.are.equal("\0\1\255", conn:query_value([[SELECT '\x0001ff'::bytea]]))
      assert.are.equal("", conn:query_value("SELECT ''::bytea"))
      assert.are.equal(#bytes, conn:query_value("SELECT length($1::bytea)", bytes))
      conn:execute("SET bytea_output = 'escape'")
      assert.are.equal("a\\b\0\255", conn:query_value([[SELECT 'a\\b\000\377'::bytea]]))
    end))

    it("sends large parameters without blocking the loop", H.async(function()
      local conn <close> = connect()
      local big = ("0123456789abcdef"):rep(1024 * 1024)       -- 16 MiB
      local ticks = 0
      local ticker = aio.spawn(function()
        while true do aio.sleep(0); ticks = ticks + 1 end
      end)
      assert.are.equal(#big, conn:query_value("SELECT length($1::bytea)", big))
      assert.are.equal(big, conn:query_value("SELECT $1::bytea", big))
      ticker:cancel()
      pcall(ticker.await, ticker)
      assert.is_true(ticks > 0)
    end))

    it("rejects a zero byte in a text parameter", H.async(function()
      local conn <close> = connect()
      assert.has_error(function() conn:query_value("SELECT $1::text", "a\0b") end,
        "bad argument #2 to 'query_value' (parameter $1: a string with a zero byte; only bytea parameters take any bytes)")
      assert.are.equal(1, conn:query_value("SELECT 1"))
    end))

    it("maps json and jsonb", H.async(function()
      local conn <close> = connect()
      assert.are.equal('{"a": 1}', conn:query_value([[SELECT '{"a":1}'::jsonb]]))
      assert.are.equal('[1,2]', conn:query_value([[SELECT '[1,2]'::json]]))
      local v = conn:query_value("SELECT $1::jsonb", {name = "x", list = {1, 2, 3}})
      assert.are.same({name = "x", list = {1, 2, 3}}, require("cjson").decode(v))
      assert.are.equal('"s"', conn:query_value("SELECT $1::jsonb", '"s"'))
      local j <close> = connect({decode_json = true})
      assert.are.same({a = {1, 2}, b = "c"}, j:query_value([[SELECT '{"a":[1,2],"b":"c"}'::jsonb]]))
      assert.are.same({{x = 1}, {y = 2}}, j:query_value([=[SELECT ARRAY['{"x":1}'::jsonb, '{"y":2}']]=]))
    end))

    it("raises a json value cjson cannot decode, and hands the turn on", H.async(function()
      local j <close> = connect({decode_json = true})
      local deep = ("["):rep(1100) .. ("]"):rep(1100)     -- deeper than cjson decodes
      local bad = aio.spawn(function() return j:query_value("SELECT $1::json", deep) end)
      local next = aio.spawn(function() return j:query_value("SELECT 1") end)
      local ok, err = pcall(bad.await, bad)
      assert.is_false(ok)
      assert.matches("nested", tostring(err))
      assert.are.equal(1, next:await())
      assert.are.equal(2, j:query_value("SELECT 2"))
    end))

    it("maps arrays both ways", H.async(function()
      local conn <close> = connect()
      local r = conn:query_one([[SELECT '{1,2,3}'::int[] AS i, '{}'::int[] AS e,
        '{{1,2},{3,4}}'::int[] AS m, ARRAY['a b', 'c"d', 'e\f', NULL, 'NULL'] AS t,
        '{1.5,NULL}'::float8[] AS f, '{t,f}'::bool[] AS b, '{1.25}'::numeric[] AS n,
        '[0:1]={7,8}'::int[] AS lb, ARRAY['\x00ff'::bytea] AS by,
        ARRAY['2024-01-01'::date] AS d]])
      assert.are.same({1, 2, 3}, r.i)
      assert.are.same({}, r.e)
      assert.are.same({{1, 2}, {3, 4}}, r.m)
      assert.are.same({"a b", 'c"d', "e\\f", nil, "NULL", n = 5}, r.t)
      assert.are.same({1.5, nil, n = 2}, r.f)
      assert.are.same({true, false}, r.b)
      assert.are.same({"1.25"}, r.n)
      assert.are.same({7, 8}, r.lb)
      assert.are.same({"\0\255"}, r.by)
      assert.are.same({"2024-01-01"}, r.d)
      -- Lua arrays as array parameters
      assert.are.same({1, 2, 3}, conn:query_value("SELECT $1::int[]", {1, 2, 3}))
      assert.are.same({"a,b", 'q"', "\\", "{x}"},
        conn:query_value("SELECT $1::text[]", {"a,b", 'q"', "\\", "{x}"}))
      assert.are.same({{1, 2}, {3, 4}}, conn:query_value("SELECT $1::int[]", {{1, 2}, {3, 4}}))
      assert.are.same({1, nil, 3, n = 3}, conn:query_value("SELECT $1::int[]", {1, pg.null, 3}))
      assert.are.same({}, conn:query_value("SELECT $1::text[]", {}))
      assert.are.same({"\0\1\255"}, conn:query_value("SELECT $1::bytea[]", {"\0\1\255"}))
      assert.are.equal(3, conn:query_value("SELECT cardinality($1::int[])", {n = 3, 1}))
      assert.are.equal(6, conn:query_value("SELECT sum(x) FROM unnest($1::int[]) x", {1, 2, 3}))
    end))

    it("returns rows with columns and count", H.async(function()
      local conn <close> = connect()
      local rows = conn:query("SELECT i AS id, 'n' || i AS name FROM generate_series(1, 3) i")
      assert.are.equal(3, #rows)
      assert.are.equal(3, rows.count)
      assert.are.same({"id", "name"}, rows.columns)
      assert.are.same({id = 2, name = "n2"}, rows[2])
      local none = conn:query("SELECT 1 AS x WHERE false")
      assert.are.equal(0, #none)
      assert.are.same({"x"}, none.columns)
      assert.are.equal(0, none.count)
      assert.is_nil(conn:query_one("SELECT 1 WHERE false"))
      assert.is_nil(conn:query_value("SELECT 1 WHERE false"))
      assert.are.same({a = 1}, conn:query_one("SELECT 1 AS a UNION ALL SELECT 2"))
      local same = conn:query("SELECT $1::int AS v FROM generate_series(1, 3)", 5)
      assert.are.same({{v = 5}, {v = 5}, {v = 5}}, {same[1], same[2], same[3]})
      local dup = conn:query_one("SELECT 'x' AS a, 'y' AS b, 'x' AS c")
      assert.are.same({a = "x", b = "y", c = "x"}, dup)
    end))

    it("counts affected rows and runs several statements without parameters", H.async(function()
      local conn <close> = connect()
      assert.are.equal(0, conn:execute([[CREATE TEMP TABLE t (id int PRIMARY KEY, v text);
        INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')]]) and 0)
      assert.are.equal(2, conn:execute("UPDATE t SET v = v || '!' WHERE id >= $1", 2))
      assert.are.equal(1, conn:execute("DELETE FROM t WHERE id = $1", 1))
      local rows = conn:query("INSERT INTO t VALUES ($1, $2) RETURNING id, v", 9, "z")
      assert.are.same({{id = 9, v = "z"}}, {rows[1]})
      assert.are.equal(3, conn:query_value("SELECT count(*) FROM t"))
      local last = conn:query("SELECT 1 AS a; SELECT 2 AS b, 3 AS c")
      assert.are.same({"b", "c"}, last.columns)
      assert.are.same({b = 2, c = 3}, last[1])
      -- again: remembered as several statements, sent the simple way
      assert.are.same({b = 2, c = 3}, conn:query("SELECT 1 AS a; SELECT 2 AS b, 3 AS c")[1])
      assert.are.equal("text", conn._c:result_format("SELECT 1 AS a; SELECT 2 AS b, 3 AS c"))
      assert.are.equal(0, #conn:query(""))
      -- a syntax error raises once, as it is (not retried into another)
      local ok, err = pcall(conn.query, conn, "SELEC 1")
      assert.is_false(ok)
      assert.are.equal("42601", err.sqlstate)
      assert.are.equal(1, err.position)
      -- in a transaction, SQL not prepared yet goes the simple way: several
      -- statements do not abort it
      local tx <close> = conn:transaction()
      assert.are.same({d = 4}, conn:query("SELECT 3 AS c; SELECT 4 AS d")[1])
      assert.are.equal(9, conn:query_value("SELECT max(id) FROM t"))
      tx:commit()
    end))

    it("returns 100,000 rows", H.async(function()
      local conn <close> = connect()
      local rows = conn:query([[SELECT i, 'row ' || i AS t, i * 0.5 AS f, i % 2 = 0 AS b,
        now() AS ts FROM generate_series(1, 100000) i]])
      assert.are.equal(100000, #rows)
      assert.are.same({"i", "t", "f", "b", "ts"}, rows.columns)
      local r = rows[77777]
      assert.are.equal(77777, r.i)
      assert.are.equal("row 77777", r.t)
      assert.are.equal("38888.5", r.f)
      assert.are.equal(false, r.b)
      assert.are.equal(rows[1].ts, r.ts)
    end))
  end)

  describe("errors", function()
    it("raise db with sqlstate, message and position", H.async(function()
      local conn <close> = connect()
      local e = H.raises("db", conn.query, conn, "SELECT * FROM nowhere")
      assert.are.equal("42P01", e.sqlstate)
      assert.are.equal('relation "nowhere" does not exist', e.message)
      assert.are.equal(15, e.position)
      assert.are.equal("ERROR", e.severity)
      assert.are.equal("SELECT * FROM nowhere", e.query)
      assert.are.equal('db: relation "nowhere" does not exist', tostring(e))
      e = H.raises("db", conn.query, conn, "SELEC 1")
      assert.are.equal("42601", e.sqlstate)
      e = H.raises("db", conn.query_value, conn, "SELECT 1 / $1::int", 0)
      assert.are.equal("22012", e.sqlstate)
      -- the connection goes on
      assert.are.equal(3, conn:query_value("SELECT $1::int + 1", 2))
    end))

    it("carry detail, hint, table and constraint", H.async(function()
      local conn <close> = connect()
      conn:execute("CREATE TEMP TABLE u (id int PRIMARY KEY)")
      conn:execute("INSERT INTO u VALUES ($1)", 1)
      local e = H.raises("db", conn.execute, conn, "INSERT INTO u VALUES ($1)", 1)
      assert.are.equal("23505", e.sqlstate)
      assert.are.equal("Key (id)=(1) already exists.", e.detail)
      assert.are.equal("u", e.table)
      assert.are.equal("u_pkey", e.constraint)
      e = H.raises("db", conn.query, conn, "SELECT 1 + 'x'::int")
      assert.are.equal("22P02", e.sqlstate)
      e = H.raises("db", conn.query, conn, "SELECT lenght('x')")
      assert.matches("No function matches", e.hint)
      e = H.raises("db", conn.execute, conn, "DO $$ BEGIN RAISE EXCEPTION 'boom' USING DETAIL = 'd', HINT = 'h'; END $$")
      assert.are.equal("P0001", e.sqlstate)
      assert.are.equal("boom", e.message)
      assert.are.equal("d", e.detail)
      assert.are.equal("h", e.hint)
      assert.matches("PL/pgSQL", e.where)
    end))

    it("say when the parameter count is wrong", H.async(function()
      local conn <close> = connect()
      local e = H.raises("usage", conn.query, conn, "SELECT $1::int + $2::int", 1)
      assert.matches("the statement has 2 parameters, 1 given", e.message)
      assert.are.equal(3, conn:query_value("SELECT $1::int + $2::int", 1, 2))
    end))

    it("reject bad arguments", H.async(function()
      local conn <close> = connect()
      assert.has_error(function() conn:query(42) end, "bad argument #1 to 'query' (string expected, got number)")
      assert.has_error(function() conn:query("SELECT $1", function() end) end,
        "bad argument #2 to 'query' (parameter $1: nil, boolean, number, string or table expected, got function)")
      assert.has_error(function() conn:query_value("SELECT $1::jsonb", {f = print}) end)
      assert.has_error(function() conn.query({}, "SELECT 1") end,
        "bad argument #1 to 'query' (aio.pg.Connection expected, got table)")
      H.raises("usage", conn.query, conn, "COPY (SELECT 1) TO STDOUT")
      assert.are.equal(1, conn:query_value("SELECT 1"))
    end))

    it("suspend only inside a task", function()
      local conn = aio.run(function() return connect() end)
      local ok, e = pcall(conn.query, conn, "SELECT 1")
      assert.is_false(ok)
    end)
  end)

  describe("statement cache", function()
    it("prepares a statement once per connection", H.async(function()
      local conn <close> = connect()
      for i = 1, 5 do assert.are.equal(i + 1, conn:query_value("SELECT $1::int + 1", i)) end
      assert.are.equal(1, conn:query_value(
        "SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::int + 1'"))
    end))

    it("keeps at most statement_cache statements, least recently used out", H.async(function()
      local conn <close> = connect({statement_cache = 3})
      conn:query_value("SELECT $1::int + 1", 1)
      conn:query_value("SELECT $1::int + 2", 1)
      conn:query_value("SELECT $1::int + 1", 1)                 -- used again
      conn:query_value("SELECT $1::int + 3", 1)
      conn:query_value("SELECT $1::int + 4", 1)                 -- + 2 goes
      -- this query is prepared too: + 1 goes
      local names = conn:query("SELECT statement FROM pg_prepared_statements "
        .. "WHERE statement LIKE 'SELECT $1::int%' ORDER BY statement")
      assert.are.equal(3, conn:query_value("SELECT count(*) FROM pg_prepared_statements"))
      assert.are.equal(2, #names)
      assert.are.equal("SELECT $1::int + 3", names[1].statement)
      assert.are.equal("SELECT $1::int + 4", names[2].statement)
    end))

    it("works without a cache", H.async(function()
      local conn <close> = connect({statement_cache = 0})
      for i = 1, 3 do assert.are.equal(i * 3, conn:query_value("SELECT $1::int * 3", i)) end
      assert.are.equal(0, conn:query_value("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%$1%'"))
    end))

    it("prepares again when the result type changed", H.async(function()
      local conn <close> = connect()
      conn:execute("CREATE TEMP TABLE w (a int)")
      conn:execute("INSERT INTO w VALUES (1)")
      assert.are.same({a = 1}, conn:query_one("SELECT * FROM w WHERE $1::bool", true))
      conn:execute("ALTER TABLE w ADD COLUMN b text DEFAULT 'x'")
      assert.are.same({a = 1, b = "x"}, conn:query_one("SELECT * FROM w WHERE $1::bool", true))
      conn:execute("DEALLOCATE ALL")
      assert.are.same({a = 1, b = "x"}, conn:query_one("SELECT * FROM w WHERE $1::bool", true))
    end))
  end)

  describe("transactions", function()
    local function count(conn) return conn:query_value("SELECT count(*) FROM tx") end

    it("commit, and roll back unless committed", H.async(function()
      local conn <close> = connect()
      conn:execute("CREATE TEMP TABLE tx (v int)")
      do
        local tx <close> = conn:transaction()
        conn:execute("INSERT INTO tx VALUES ($1)", 1)
        assert.are.equal("intrans", conn:transaction_status())
        tx:commit()
      end
      assert.are.equal("idle", conn:transaction_status())
      do
        local tx <close> = conn:transaction()
        conn:execute("INSERT INTO tx VALUES ($1)", 2)
      end
      assert.are.equal(1, count(conn))
      local ok = pcall(function()
        local tx <close> = conn:transaction()
        conn:execute("INSERT INTO tx VALUES ($1)", 3)
        error("oops")
      end)
      assert.is_false(ok)
      assert.are.equal(1, count(conn))
      assert.are.equal("idle", conn:transaction_status())
    end))

    it("nest as savepoints", H.async(function()
      local conn <close> = connect()
      conn:execute("CREATE TEMP TABLE tx (v int)")
      local outer <close> = conn:transaction()
      conn:execute("INSERT INTO tx VALUES (1)")
      do
        local inner <close> = conn:transaction()
        conn:execute("INSERT INTO tx VALUES (2)")
        H.raises("db", conn.execute, conn, "INSERT INTO tx VALUES ('x')")
      end                                          -- rolled back to the savepoint
      do
        local inner <close> = conn:transaction()
        conn:execute("INSERT INTO tx VALUES (3)")
        inner:commit()
      end
      outer:commit()
      local rows = conn:query("SELECT v FROM tx ORDER BY v")
      assert.are.same({{v = 1}, {v = 3}}, {rows[1], rows[2]})
      H.raises("usage", outer.commit, outer)
    end))

    it("refuses to end an outer transaction before the inner one", H.async(function()
      local conn <close> = connect()
      local outer <close> = conn:transaction()
      local inner <close> = conn:transaction()
      H.raises("usage", outer.commit, outer)
      inner:rollback()
      outer:rollback()
    end))

    it("raise when a failed transaction is committed", H.async(function()
      local conn <close> = connect()
      local tx <close> = conn:transaction()
      H.raises("db", conn.query, conn, "SELECT 1 / 0")
      local e = H.raises("db", conn.query, conn, "SELECT 1")
      assert.are.equal("25P02", e.sqlstate)
      e = H.raises("db", tx.commit, tx)
      assert.are.equal("25P02", e.sqlstate)
      assert.are.equal("idle", conn:transaction_status())
    end))

    it("take isolation and read-only options", H.async(function()
      local conn <close> = connect()
      do
        local tx <close> = conn:transaction({isolation = "serializable", readonly = true})
        assert.are.equal("serializable", conn:query_value("SHOW transaction_isolation"))
        local e = H.raises("db", conn.execute, conn, "CREATE TEMP TABLE ro (a int)")
        assert.are.equal("25006", e.sqlstate)
      end
      do
        local tx <close> = conn:transaction({isolation = "repeatable read"})
        assert.are.equal("repeatable read", conn:query_value("SHOW transaction_isolation"))
        H.raises("usage", conn.transaction, conn, {readonly = true})
        tx:commit()
      end
      assert.has_error(function() conn:transaction({isolation = "chaos"}) end)
    end))

    it("roll back when the task is cancelled", H.async(function()
      local conn <close> = connect()
      conn:execute("CREATE TEMP TABLE tx (v int)")
      local t = aio.spawn(function()
        local tx <close> = conn:transaction()
        conn:execute("INSERT INTO tx VALUES (1)")
        conn:query("SELECT pg_sleep(10)")
      end)
      aio.sleep(0.1)
      t:cancel()
      assert.has_error(function() t:await() end)
      assert.are.equal("idle", conn:transaction_status())
      assert.are.equal(0, count(conn))
    end))
  end)

  describe("LISTEN/NOTIFY", function()
    it("delivers notifications to a listening connection", H.async(function()
      local listener <close> = connect()
      local sender <close> = connect()
      listener:listen("news")
      listener:listen("Other Channel")
      -- a zero byte would have cut the name short (regress/nul_bytes_truncated)
      H.raises("usage", listener.listen, listener, "news\0evil")
      local got = {}
      local reader = aio.spawn(function()
        for n in listener:notifications() do
          got[#got + 1] = n
          if #got == 3 then return end
        end
      end)
      aio.sleep(0.05)
      sender:notify("news", "one")
      sender:execute("NOTIFY news, 'two'")
      sender:notify("Other Channel")
      reader:await()
      assert.are.equal("news", got[1].channel)
      assert.are.equal("one", got[1].payload)
      assert.are.equal(sender:pid(), got[1].pid)
      assert.are.equal("two", got[2].payload)
      assert.are.equal("Other Channel", got[3].channel)
      assert.are.equal("", got[3].payload)
    end))

    it("lets the connection run queries while a task waits", H.async(function()
      local listener <close> = connect()
      local sender <close> = connect()
      listener:listen("q")
      local n
      local reader = aio.spawn(function() n = listener:notifications()() end)
      aio.sleep(0.02)
      for i = 1, 20 do assert.are.equal(i, listener:query_value("SELECT $1::int", i)) end
      sender:notify("q", "while busy")
      reader:await()
      assert.are.equal("while busy", n.payload)
    end))

    it("delivers what arrived during a query", H.async(function()
      local listener <close> = connect()
      local sender <close> = connect()
      listener:listen("during")
      local t = aio.spawn(function() return listener:query_value("SELECT pg_sleep(0.2)") end)
      aio.sleep(0.05)
      sender:notify("during", "x")
      t:await()
      local n = listener:notifications({timeout = 2})()
      assert.are.equal("x", n.payload)
    end))

    it("ends the iteration on timeout and on close", H.async(function()
      local conn = connect()
      conn:listen("quiet")
      local t0 = aio.now()
      assert.is_nil(conn:notifications({timeout = 0.05})())
      assert.is_true(aio.now() - t0 >= 0.04)
      local reader = aio.spawn(function()
        local k = 0
        for _ in conn:notifications() do k = k + 1 end
        return k
      end)
      aio.sleep(0.02)
      conn:close()
      assert.are.equal(0, reader:await())
      H.raises("closed", conn.unlisten, conn)
    end))

    it("stops delivering after unlisten", H.async(function()
      local conn <close> = connect()
      local sender <close> = connect()
      conn:listen("a")
      conn:unlisten("a")
      sender:notify("a", "lost")
      assert.is_nil(conn:notifications({timeout = 0.1})())
    end))
  end)

  describe("the API", function()
    local function methods(obj)
      local names = {}
      for k, v in pairs(H.method_table(obj)) do
        if type(v) == "function" and not k:match("^_") then names[#names + 1] = k end
      end
      table.sort(names)
      return names
    end

    it("has a README heading for every method", H.async(function()
      local f = assert(io.open("README.md"))
      local readme = f:read("a")
      f:close()
      local conn <close> = connect()
      local pool <close> = pg.Pool{dsn = env.dsn}
      local tx <close> = conn:transaction()
      local missing = {}
      for _, o in ipairs({{"conn:", conn}, {"pool:", pool}, {"tx:", tx}}) do
        for _, m in ipairs(methods(o[2])) do
          if not readme:find("\n#### " .. o[1] .. m .. "(", 1, true) then
            missing[#missing + 1] = o[1] .. m
          end
        end
      end
      assert.are.same({}, missing)
    end))

    it("survives every method called with wrong arguments and receivers", H.async(function()
      local conn <close> = connect()
      local pool <close> = pg.Pool{dsn = env.dsn, max = 2}
      local tx = conn:transaction()
      local junk = {n = 7, nil, true, -1.5, "", "SELECT 1", {1, {}}, print}
      local calls = 0
      for _, o in ipairs({conn, pool, tx}) do
        for _, m in ipairs(methods(o)) do
          local fn = o[m]
          if m == "acquire" then fn = function() end end   -- takes no argument; leases would pile up
          for i = 1, junk.n do
            for j = 1, junk.n do
              pcall(aio.timeout, 0.02, fn, o, junk[i], junk[j])
              pcall(fn, junk[i], junk[j])
              calls = calls + 2
            end
          end
        end
      end
      assert.is_true(calls > 500)
      -- metamethods with wrong receivers (see misuse_spec), the C
      -- connection object's too
      local spare <close> = connect()
      local meta = H.hammer_metamethods({ conn, pool, tx, spare._c }, function(f, ...)
        return pcall(aio.timeout, 0.05, f, ...)
      end)
      assert.is_true(meta > 20)
      local fresh <close> = connect()
      assert.are.equal(1, fresh:query_value("SELECT 1"))
    end))
  end)

  describe("COPY", function()
    it("copies 100,000 rows in and out", H.async(function()
      local conn <close> = connect()
      conn:execute("CREATE TEMP TABLE big (id int, name text, score float8, ok bool, note text)")
      local rows = {}
      for i = 1, 100000 do
        rows[i] = {i, "name\t" .. i, i / 4, i % 3 == 0, "a\\b\nc"}
        if i % 10 == 0 then rows[i][5] = nil end
      end
      assert.are.equal(100000, conn:copy_in("COPY big FROM STDIN", rows))
      assert.are.equal(100000, conn:query_value("SELECT count(*) FROM big"))
      assert.are.same({id = 12, name = "name\t12", score = 3.0, ok = true, note = "a\\b\nc"},
        conn:query_one("SELECT * FROM big WHERE id = 12"))
      assert.are.equal(10000, conn:query_value("SELECT count(*) FROM big WHERE note IS NULL"))
      local n, first = 0, nil
      for line in conn:copy_out("COPY big TO STDOUT") do
        n = n + 1
        first = first or line
      end
      assert.are.equal(100000, n)
      assert.are.equal("1\tname\\t1\t0.25\tf\ta\\\\b\\nc\n", first)
      assert.are.equal(100000, conn:query_value("SELECT count(*) FROM big"))
    end))

    it("copies from an iterator and from a string", H.async(function()
      local conn <close> = connect()
      conn:execute("CREATE TEMP TABLE c2 (a int, b jsonb)")
      local i = 0
      local n = conn:copy_in("COPY c2 FROM STDIN", function()
        i = i + 1
        if i <= 3000 then return {i, {k = i}} end
      end)
      assert.are.equal(3000, n)
      assert.are.equal('{"k": 7}', conn:query_value("SELECT b::text FROM c2 WHERE a = 7"))
      assert.are.equal(2, conn:copy_in("COPY c2 (a) FROM STDIN WITH (FORMAT csv)", "5001\n5002\n"))
      assert.are.equal(3002, conn:query_value("SELECT count(*) FROM c2"))
    end))

    it("fails the COPY when the source fails, and the connection goes on", H.async(function()
      local conn <close> = connect()
      conn:execute("CREATE TEMP TABLE c3 (a int)")
      local ok, e = pcall(conn.copy_in, conn, "COPY c3 FROM STDIN", function() error("source broke") end)
      assert.is_false(ok)
      assert.matches("source broke", tostring(e))
      assert.are.equal(0, conn:query_value("SELECT count(*) FROM c3"))
      e = H.raises("db", conn.copy_in, conn, "COPY c3 FROM STDIN", {{"not a number"}})
      assert.are.equal("22P02", e.sqlstate)
      assert.has_error(function() conn:copy_in("COPY c3 FROM STDIN", {print}) end)
      assert.are.equal(1, conn:query_value("SELECT 1"))
      H.raises("db", conn.copy_in, conn, "COPY nowhere FROM STDIN", {})
      H.raises("usage", conn._c.copy_put, conn._c, {})
    end))

    it("cancels a COPY TO STDOUT left early", H.async(function()
      local conn <close> = connect()
      local n = 0
      -- generate_series in the select list streams (in FROM it is materialized first)
      for _ in conn:copy_out("COPY (SELECT generate_series(1, 100000000)) TO STDOUT") do
        n = n + 1
        if n == 10 then break end
      end
      assert.are.equal(10, n)
      assert.are.equal(2, conn:query_value("SELECT 2"))
    end))
  end)
end)
