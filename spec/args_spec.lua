-- aio.core.args: argument errors of the Lua layer. Every method written
-- in Lua, called on a wrong receiver, raises a standard `bad argument #1`
-- naming its class; argument and usage errors blame the caller's line,
-- however deep inside the library the check is made.
local aio = require "aio"
local H = require "helper"
local U = require "support.server_util"

local SRC = "spec/args_spec.lua"

-- The Lua functions of an object's metatable and of its method table, as
-- a sorted array of {name, fn}.
local function lua_methods(obj)
  local seen, list = {}, {}
  local function add(t)
    if type(t) ~= "table" then return end
    for k, v in pairs(t) do
      if type(k) == "string" and type(v) == "function" and not seen[k]
         and debug.getinfo(v, "S").what == "Lua" then
        seen[k] = true
        list[#list + 1] = {k, v}
      end
    end
  end
  add(getmetatable(obj))
  add(H.method_table(obj))
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

local function escape(s) return (s:gsub("%p", "%%%0")) end

-- Calls `fn` (a closure written on the caller's line, which the error
-- must blame) and returns that line and the error.
local function fails(fn)
  local line = debug.getinfo(2, "l").currentline
  local ok, err = pcall(fn)
  assert.is_false(ok, "the call returned")
  return line, err
end

-- Asserts that `err` is `bad argument #n to 'fname' (msg)` raised at
-- `line` of this file.
local function blames(line, err, n, fname, msg)
  assert.are.equal("string", type(err), tostring(err))
  assert.are.equal(("%s:%d: bad argument #%d to '%s' (%s)"):format(SRC, line, n, fname, msg), err)
end

describe("aio.core.args", function()
  it("raises bad argument #1 when a Lua method gets a wrong receiver", H.async(function()
    local dir = H.tmpdir()
    local file <close> = aio.fs.open(dir .. "/f", "w")
    local server <close> = U.ok_server()
    local session <close> = aio.http.Session()
    local response <close> = session:get(("http://127.0.0.1:%d/"):format(server.port))
    local registration <close> = aio.signal("SIGUSR2", function() end)
    local group <close> = aio.TaskGroup()
    local objects = {
      server = server, session = session, response = response, group = group,
      event = aio.Event(), cond = aio.Condition(), limiter = aio.RateLimiter(1, 1),
      registration = registration, file = file,
    }
    local checked = 0
    for oname, obj in pairs(objects) do
      local class = getmetatable(obj).__name
      local other = oname == "event" and objects.cond or objects.event
      local wrong = {
        {nil, "no value"}, {42, "number"}, {{}, "table"},
        {aio.Semaphore(1), "aio.Semaphore"}, {other, getmetatable(other).__name},
      }
      local methods = lua_methods(obj)
      assert.is_true(#methods > 0, oname .. " has no Lua methods")
      for _, m in ipairs(methods) do
        local key, fn = m[1], m[2]
        for _, w in ipairs(wrong) do
          local ok, err = pcall(fn, w[1])
          local where = oname .. "." .. key .. "(" .. w[2] .. ")"
          assert.is_false(ok, where .. " returned")
          assert.are.equal("string", type(err), where .. ": " .. tostring(err))
          local name, msg = err:match("^" .. escape(SRC) .. ":%d+: bad argument #1 to '([%w_]+)' %((.*)%)$")
          assert.is_truthy(name, where .. ": " .. err)
          if not key:match("^__") then assert.are.equal(key, name, where) end
          assert.are.equal(class .. " expected, got " .. w[2], msg, where)
          checked = checked + 1
        end
      end
    end
    assert.is_true(checked >= 5 * 40, "only " .. checked .. " calls checked")
    file:close()
    H.rmtree(dir)
  end))

  it("blames the caller's line for argument errors made deep inside", H.async(function()
    local dir = H.tmpdir()
    local cond = aio.Condition()
    local group <close> = aio.TaskGroup()
    local l, e
    l, e = fails(function() aio.fs.write_file(dir .. "/x", {}) end)
    blames(l, e, 2, "write_file", "string expected, got table")
    l, e = fails(function() aio.http.get("http://127.0.0.1:1/", {max_redirects = -1}) end)
    blames(l, e, 2, "get", "option 'max_redirects' must not be negative")
    l, e = fails(function() aio.http.Session({retries = {attempts = 0}}) end)
    blames(l, e, 1, "Session", "option 'retries.attempts' must be at least 1")
    l, e = fails(function() aio.http.request("GET", "http://127.0.0.1:1/", {timeout = {total = 0 / 0}}) end)
    blames(l, e, 3, "request", "option 'timeout.total' is NaN")
    l, e = fails(function() aio.process.run({"echo", {}}) end)
    blames(l, e, 1, "run", "argv[2] must be a string without zero bytes")
    l, e = fails(function() aio.retry(function() end, {delay = -1}) end)
    blames(l, e, 2, "retry", "opts.delay must be at least 0")
    l, e = fails(function() aio.RateLimiter(0, 1) end)
    blames(l, e, 1, "RateLimiter", "rate must be a positive finite number")
    l, e = fails(function() aio.wait({}, {timeout = "soon"}) end)
    blames(l, e, 2, "wait", "timeout must be a number")
    l, e = fails(function() aio.tcp.connect("127.0.0.1", 0) end)
    blames(l, e, 2, "connect", "port must be an integer from 1 to 65535")
    l, e = fails(function() aio.Condition(aio.Semaphore(1)) end)
    blames(l, e, 1, "Condition", "aio.Lock expected, got aio.Semaphore")
    l, e = fails(function() group:spawn(42) end)
    blames(l, e, 1, "spawn", "function expected, got number")
    l, e = fails(function() cond:notify("all") end)
    blames(l, e, 1, "notify", "integer expected, got string")
    H.rmtree(dir)
  end))

  it("puts the caller's position in usage errors", H.async(function()
    local l, e = fails(function() aio.first() end)
    assert.is_true(aio.is_error(e, "usage"))
    assert.are.equal(("%s:%d: aio.first needs at least one function or task"):format(SRC, l), e.message)
    l, e = fails(function() aio.signal("SIGNOPE", print) end)
    assert.are.equal(("%s:%d: aio.signal: unknown signal 'SIGNOPE'"):format(SRC, l), e.message)
  end))
end)
