-- aio.pg results in binary format against a real PostgreSQL 15: every
-- type with a binary decoder gives exactly the value its text form
-- decodes to, over random values and edge cases, under the settings that
-- change text forms (TimeZone, DateStyle); binary is asked for only when
-- that holds.
local aio = require "aio"
local H = require "helper"
local PG = require "examples.support.pg_server"

if not PG.available() then
  describe("aio.pg binary results", function()
    pending("PostgreSQL is not installed (" .. PG.BIN .. ")")
  end)
  return
end

local pg = aio.pg
local N = H.SLOW and 60 or 400         -- random values per type

-- Are `a` and `b` the same Lua value (NaN equals NaN, -0 is not 0,
-- integers are not floats, tables compared deeply)?
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false end
    if a ~= a then return b ~= b end
    return a == b and (a ~= 0 or 1 / a == 1 / b)
  end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function show(v)
  if type(v) == "table" then
    local parts = {}
    for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. show(x) end
    table.sort(parts)
    return "{" .. table.concat(parts, ",") .. "}"
  end
  if type(v) == "number" then return ("%s %.17g"):format(math.type(v), v) end
  return ("%q"):format(v)
end

-- Random values, as literals of each type's text input. -----------------
local rnd = math.random

local function pick(list) return list[rnd(#list)] end

local function rnd_float8()
  local v = string.unpack("<d", string.pack("<i8", rnd(math.mininteger, math.maxinteger)))
  if v ~= v then return "NaN" end
  if v == math.huge then return "Infinity" end
  if v == -math.huge then return "-Infinity" end
  return ("%.17g"):format(v)
end

local function rnd_float4()
  local v = string.unpack("<f", string.pack("<i4", rnd(-2147483648, 2147483647)))
  if v ~= v then return "NaN" end
  if v == math.huge then return "Infinity" end
  if v == -math.huge then return "-Infinity" end
  return ("%.9g"):format(v)
end

local function digits(n, first_nonzero)
  local t = {}
  for i = 1, n do t[i] = tostring(i == 1 and first_nonzero and rnd(1, 9) or rnd(0, 9)) end
  return table.concat(t)
end

local function rnd_numeric()
  local r = rnd(10)
  local sign = rnd(2) == 1 and "-" or ""
  if r == 1 then                          -- tiny: many zeros after the point
    return sign .. "0." .. ("0"):rep(rnd(0, 40)) .. digits(rnd(1, 12))
  elseif r == 2 then                      -- huge
    return sign .. digits(rnd(20, 200), true)
  elseif r == 3 then                      -- exponent forms
    return sign .. digits(rnd(1, 5), true) .. "e" .. rnd(-60, 60)
  end
  local int = rnd(4) == 1 and "0" or digits(rnd(1, 18), true)
  local frac = rnd(3) == 1 and "" or "." .. digits(rnd(1, 20))
  return sign .. int .. frac
end

local function rnd_text(max)
  local t = {}
  local pieces = {"a", "Z", "0", " ", ",", "{", "}", '"', "\\", "'", "NULL", "é", "日本", "\t", "\n", "x y"}
  for i = 1, rnd(0, max or 12) do t[i] = pick(pieces) end
  return table.concat(t)
end

local function rnd_bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(rnd(0, 255)) end
  return table.concat(t)
end

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function year_text(y)           -- astronomical year -> text, BC
  if y <= 0 then return ("%04d"):format(1 - y), " BC" end
  return ("%04d"):format(y), ""
end

local function rnd_time()
  local us = rnd(0, 86400 * 1000000 - 1)
  if rnd(4) == 1 then us = us - us % 1000000 end
  if rnd(4) == 1 then us = us - us % 1000 end
  local s = us // 1000000
  return ("%02d:%02d:%02d.%06d"):format(s // 3600, s // 60 % 60, s % 60, us % 1000000)
end

local function rnd_date(ymin, ymax)
  local y, bc = year_text(rnd(ymin, ymax))
  return ("%s-%02d-%02d%s"):format(y, rnd(1, 12), rnd(1, 28), bc)
end

local function rnd_timestamp(tz)
  local y, bc = year_text(rnd(-4711, 294274))
  return ("%s-%02d-%02d %s%s%s"):format(y, rnd(1, 12), rnd(1, 28), rnd_time(), tz or "", bc)
end

local function rnd_offset()
  local s = rnd(0, 15 * 3600 + 59 * 60 + 59)
  if rnd(3) > 1 then s = s - s % 60 end
  if rnd(2) == 1 then s = s - s % 3600 end
  return ("%s%02d:%02d:%02d"):format(rnd(2) == 1 and "-" or "+", s // 3600, s // 60 % 60, s % 60)
end

local function uuid()
  return hex(rnd_bytes(16)):gsub("^(........)(....)(....)(....)", "%1-%2-%3-%4-")
end

local JSON = {'{"a": [1, 2.5e10, -0.0, null, true], "b": "x\\"y\\u00e9\\n"}', '[]', '"日本"',
  '1e400', '{"k": {"deep": [[[{}]]]}}', '-0', '12345678901234567890123'}

-- Each type: its SQL type, literals (edge cases first, then random).
local TYPES = {
  {"int2", {"-32768", "32767", "0", "-1"}, function() return tostring(rnd(-32768, 32767)) end},
  {"int4", {"-2147483648", "2147483647", "0"}, function() return tostring(rnd(-2147483648, 2147483647)) end},
  {"int8", {"-9223372036854775808", "9223372036854775807", "0"},
    function() return tostring(rnd(math.mininteger, math.maxinteger)) end},
  {"oid", {"0", "4294967295", "1"}, function() return tostring(rnd(0, 4294967295)) end},
  {"float8", {"NaN", "Infinity", "-Infinity", "0", "-0", "5e-324", "1.7976931348623157e308",
    "0.1", "-2.2250738585072014e-308", "1e22", "1e23", "123456789012345678"}, rnd_float8},
  {"float4", (function()
    local t = {"NaN", "Infinity", "-Infinity", "0", "-0", "1.4e-45", "3.4028235e38", "0.1",
      "1.17549435e-38", "16777216", "16777217"}
    for e = -149, 127, 3 do t[#t + 1] = ("%.9g"):format(2.0 ^ e) end   -- powers of two
    return t
  end)(), rnd_float4},
  {"numeric", {"NaN", "Infinity", "-Infinity", "0", "0.000", "-1.5", "0.00001", "1e-300",
    "9.99e300", "-" .. ("9"):rep(1000), "0." .. ("0"):rep(1000) .. "1", "10000", "1000000.0000",
    "0.1000", "12345.6789", "-0.0001"}, rnd_numeric},
  {"numeric(12,3)", {"0", "-1", "123456789.123"}, function()
    return ("%s%d.%03d"):format(rnd(2) == 1 and "-" or "", rnd(0, 999999999), rnd(0, 999)) end},
  {"bool", {"t", "f"}, function() return rnd(2) == 1 and "t" or "f" end},
  {"text", {"", " ", "NULL"}, rnd_text},
  {"varchar(20)", {"", "x"}, function() return rnd_text(5) end},
  {"name", {"", "pg_catalog"}, function() return rnd_text(4) end},
  {"char(12)", {"", "x", "  a  "}, function() return rnd_text(3) end},
  {'"char"', {}, nil},                 -- every byte: filled from SQL below
  {"bytea", {"\\x", "\\x00", "\\xff00"}, function() return "\\x" .. hex(rnd_bytes(rnd(0, 40))) end},
  {"json", JSON, nil},
  {"jsonb", JSON, nil},
  {"uuid", {"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"}, uuid},
  {"date", {"infinity", "-infinity", "4713-01-01 BC", "5874897-12-31", "0001-01-01", "0001-12-31 BC",
    "2000-02-29", "1900-03-01", "0001-02-29 BC", "0005-02-29 BC", "2000-01-01", "1999-12-31"},
    function() return rnd_date(-4712, 5874896) end},
  {"time", {"00:00:00", "24:00:00", "23:59:59.999999", "12:00:00.5"}, rnd_time},
  {"timetz", {"00:00:00+00", "24:00:00-15:59:59", "12:00:00+15:59:59", "12:00:00-00:00:10",
    "01:02:03.04+05:30"}, function() return rnd_time() .. rnd_offset() end},
  {"timestamp", {"infinity", "-infinity", "4713-01-01 00:00:00 BC", "294276-12-31 23:59:59.999999",
    "2000-01-01 00:00:00", "1999-12-31 23:59:59.999999", "0001-01-01 00:00:00",
    "0001-12-31 23:59:59.5 BC", "1970-01-01 00:00:00.000001"}, rnd_timestamp},
  {"timestamptz", {"infinity", "-infinity", "4712-01-02 00:00:00+00 BC",
    "294275-12-30 23:59:59.999999+00", "2000-01-01 00:00:00+00", "1999-12-31 23:59:59.999999+00",
    "0001-01-01 00:00:00+00", "0001-12-31 23:59:59.5+00 BC"},
    function() return rnd_timestamp("+00") end},
}

-- Arrays: SQL producing a column `v`, one row each.
local ARRAYS = {
  "ARRAY[1, NULL, -2147483648]::int4[]", "'{}'::int4[]", "'[2:3]={7,8}'::int4[]",
  "'{{1,2},{3,4}}'::int8[]", "'{{{1}},{{NULL}}}'::int2[]", "ARRAY[0, 4294967295]::oid[]",
  [[ARRAY['a', NULL, 'NULL', '', 'x,y', '{z}', 'q"u', 'b\s', 'é']::text[] ]],
  "ARRAY['x', NULL]::varchar[]", "ARRAY['a ', 'b']::char(3)[]", "ARRAY['n']::name[]",
  "ARRAY['NaN', 'Infinity', '-Infinity', '-0', '0.1', NULL]::float8[]",
  "ARRAY['NaN', '-0', '0.1', '1e-45', NULL]::float4[]",
  "ARRAY['NaN', '-1.50', '0.0001', '1e-30', NULL, 'Infinity']::numeric[]",
  "ARRAY[true, NULL, false]", [[ARRAY['\x00ff'::bytea, NULL, '\x'::bytea, '\x5c22'] ]],
  "ARRAY['2000-01-01', 'infinity', '0044-03-15 BC', NULL]::date[]",
  "ARRAY['24:00', '00:00:00.25']::time[]", "ARRAY['12:00+05:30', '12:00-00:00:10']::timetz[]",
  "ARRAY['2000-01-01 00:00', '-infinity', '0001-01-01 00:00 BC']::timestamp[]",
  "ARRAY['2000-01-01 00:00+00', 'infinity', NULL]::timestamptz[]",
  "ARRAY[gen_random_uuid(), NULL]", [[ARRAY['{"a": [1, "x"]}'::json, NULL, '"s"'] ]],
  [[ARRAY['{"b": 1, "a": [true]}'::jsonb, 'null'] ]], [[ARRAY['a', 'é', NULL]::"char"[] ]],
  "array_fill(7, ARRAY[2, 3], ARRAY[-1, 5])",
}

-- Zones with a fixed offset (binary), and others (text).
local FIXED = {"UTC", "Etc/UTC", "GMT", "Zulu", "Etc/GMT-14", "Etc/GMT+12", "UTC+3", "EST5",
  "<+0530>-05:30", "+05:30", "xyz-3", "<-07>+07"}
local OTHER = {"Europe/Paris", "America/St_Johns", "Asia/Kolkata", "EST5EDT"}

describe("aio.pg binary results", function()
  local env
  setup(function()
    env = PG.start()
    math.randomseed(20240614)
    local stmts = {}
    for i, t in ipairs(TYPES) do
      stmts[#stmts + 1] = ("CREATE TABLE bt%d (i serial PRIMARY KEY, v %s);"):format(i, t[1])
    end
    assert(PG.psql(env, table.concat(stmts, "\n")))
    aio.run(function()
      local conn <close> = pg.connect(env.dsn)
      for i, t in ipairs(TYPES) do
        local rows = {{nil}}                          -- a NULL first
        for _, lit in ipairs(t[2]) do rows[#rows + 1] = {lit} end
        for _ = 1, t[3] and N or 0 do rows[#rows + 1] = {t[3]()} end
        conn:copy_in(("COPY bt%d (v) FROM STDIN"):format(i), rows)
        if t[1] == '"char"' then
          conn:execute(("INSERT INTO bt%d (v) SELECT n::\"char\" FROM generate_series(-128, 127) n"):format(i))
        end
      end
    end)
  end)
  teardown(function() PG.stop(env) end)

  -- Runs `sql` on `bin` (prepared: binary when it can) and on `text` (the
  -- simple protocol: text), and checks both give the same rows.
  local function compare(bin, text, sql, expect_format, what)
    local b = bin:query(sql)
    local t = text:query(sql)
    assert.are.equal(expect_format, bin._c:result_format(sql), what .. ": result format")
    assert.are.equal(#t, #b, what .. ": rows")
    assert.is_true(#t > 0)
    for i = 1, #t do
      if not same(t[i], b[i]) then
        error(("%s, row %d: text form gives %s, binary gives %s"):format(what, i,
          show(t[i]), show(b[i])), 0)
      end
    end
    return #t
  end

  -- Runs `sql` on both connections (a SET).
  local function on_both(bin, text, sql)
    for _, c in ipairs({bin, text}) do c:execute(sql) end
  end

  -- A test body run as a task with two connections: `bin` (binary
  -- results where it can) and `text` (no statement cache: text).
  local function with_pair(opts, body)
    return H.async(function()
      local bin <close> = pg.connect(env.dsn, opts)
      local text <close> = pg.connect(env.dsn, {statement_cache = 0, decode_json = opts and opts.decode_json})
      body(bin, text)
    end)
  end

  it("decodes every type to the value of its text form", with_pair(nil, function(bin, text)
    local n, random = 0, 0
    for i, t in ipairs(TYPES) do
      n = n + compare(bin, text, ("SELECT i, v FROM bt%d ORDER BY i"):format(i), "binary", t[1])
      if t[3] then random = random + N end
    end
    assert.is_true(n > random + #TYPES)             -- a NULL and edge cases each
    for i, sql in ipairs(ARRAYS) do
      -- uuids are random per execution: the same row set twice
      if sql:find("gen_random_uuid", 1, true) then
        sql = "ARRAY['00000000-0000-0000-0000-00000000000a'::uuid, NULL]"
      end
      compare(bin, text, "SELECT " .. sql .. " AS v", "binary", "array " .. i)
    end
    -- several columns of different types at once, and query_one/value
    local sql = "SELECT a.v AS a, b.v AS b, c.v AS c FROM bt7 a JOIN bt1 b USING (i) JOIN bt19 c USING (i) ORDER BY i"
    compare(bin, text, sql, "binary", "mixed")
    assert.is_true(same(text:query_one(sql), bin:query_one(sql)))
    assert.is_true(same(text:query_value("SELECT v FROM bt5 WHERE i = 3"),
      bin:query_value("SELECT v FROM bt5 WHERE i = 3")))
  end))

  it("decodes json to Lua values from binary as from text", with_pair({decode_json = true}, function(bin, text)
    compare(bin, text, "SELECT i, v FROM bt16 WHERE v::text <> '1e400' ORDER BY i", "binary", "json")
    compare(bin, text, "SELECT i, v FROM bt17 WHERE v::text <> '1e400' ORDER BY i", "binary", "jsonb")
  end))

  it("follows the session's time zone, in binary only when its offset is fixed", with_pair(nil, function(bin, text)
    local ts = "SELECT i, v FROM bt23 ORDER BY i"
    local arr = "SELECT ARRAY['2000-06-01 12:00+00', '1900-01-01 00:00+00']::timestamptz[] AS v"
    local function set(zone) on_both(bin, text, "SET TimeZone = " .. bin:quote_literal(zone)) end
    for _, zone in ipairs(FIXED) do
      set(zone)
      compare(bin, text, ts, "binary", zone)
      compare(bin, text, arr, "binary", zone .. " array")
    end
    for _, zone in ipairs(OTHER) do
      set(zone)
      compare(bin, text, ts, "text", zone)
    end
    -- SET TIME ZONE with a number or an interval: POSIX zones of its own
    on_both(bin, text, "SET TIME ZONE -7")
    compare(bin, text, ts, "binary", "SET TIME ZONE -7")
    on_both(bin, text, "SET TIME ZONE INTERVAL '+05:45' HOUR TO MINUTE")
    compare(bin, text, ts, "binary", "SET TIME ZONE INTERVAL '+05:45'")
    -- types without a time zone do not depend on it
    set("America/St_Johns")
    compare(bin, text, "SELECT i, v FROM bt22 ORDER BY i", "binary", "timestamp")
    compare(bin, text, "SELECT i, v FROM bt19 ORDER BY i", "binary", "date")
  end))

  it("uses text when the date style is not ISO", with_pair(nil, function(bin, text)
    local function set(style) on_both(bin, text, "SET DateStyle = " .. bin:quote_literal(style)) end
    set("ISO, DMY")
    compare(bin, text, "SELECT i, v FROM bt19 ORDER BY i", "binary", "ISO, DMY")
    for _, style in ipairs({"SQL, DMY", "German", "Postgres, MDY"}) do
      set(style)
      for _, i in ipairs({19, 22, 23}) do
        compare(bin, text, ("SELECT i, v FROM bt%d ORDER BY i"):format(i), "text", style)
      end
      -- other types stay binary
      compare(bin, text, "SELECT i, v FROM bt7 ORDER BY i", "binary", style .. " numeric")
    end
  end))

  it("uses text for a statement with a column it cannot decode from binary", with_pair(nil, function(bin, text)
    compare(bin, text, "SELECT i, v, v::text::interval AS iv FROM (SELECT i, '1 day' AS v FROM bt1) s ORDER BY i",
      "text", "interval")
    compare(bin, text, "SELECT '(1,2)'::point AS p, 42 AS n", "text", "point")
    compare(bin, text, "SELECT ARRAY['1 day'::interval] AS a", "text", "interval[]")
    -- and for one that may change settings while it runs
    local sql = "SELECT set_config('TimeZone', 'UTC', false) AS z, 1 AS n"
    compare(bin, text, sql, "text", "set_config")
  end))
end)
