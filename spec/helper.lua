--- spec/helper.lua: shared by every spec (loaded by busted through .busted,
-- and required by specs as `local H = require "helper"`).
-- it(name, H.async(fn)) runs the test body as a task under aio.run with a
-- deadline, re-raises its failure with the task's traceback, and fails the
-- test if it leaves tasks running, deadlines armed or libuv handles open.
-- See LICENSE

local aio = require "aio"
local core = require "aio.core"

local H = {}

--- Seconds a test body may take before it fails (AIO_TEST_DEADLINE).
H.DEADLINE = tonumber(os.getenv("AIO_TEST_DEADLINE") or "") or 20

-- Running under a sanitizer or valgrind makes everything slower; valgrind
-- also runs one thread at a time.
H.VALGRIND = os.getenv("AIO_VALGRIND") ~= nil
H.SLOW = os.getenv("AIO_SANITIZE") ~= nil or H.VALGRIND
if H.SLOW then H.DEADLINE = H.DEADLINE * 5 end

local function describe_tasks(list)
  local names = {}
  for i, t in ipairs(list) do names[i] = tostring(t) end
  return table.concat(names, ", ")
end

--- Runs `fn` as the main task of a fresh aio.run under a deadline and
--- checks that nothing is left behind: tasks, armed deadlines (timers:
--- sleeps, timeouts, I/O deadlines; checked when no task is left) and
--- libuv handles. Returns fn's results.
---@param fn function
---@param opts? {timeout?: number, allow_tasks?: boolean}
function H.run(fn, opts)
  opts = opts or {}
  local deadline = opts.timeout or H.DEADLINE
  local traceback
  local function handler(e)
    if type(e) == "string" or (aio.is_error(e) and not aio.is_error(e, "timeout")) then
      traceback = debug.traceback(tostring(e), 2)
    end
    return e
  end
  return aio.run(function()
    local handles = core.stats().handles
    local timers_left
    -- Counted inside the deadline scope, before and after the body, so
    -- that the scope's own deadline is in both counts.
    local function body()
      local timers = core.stats().timers
      local r = table.pack(fn())
      timers_left = core.stats().timers - timers
      return table.unpack(r, 1, r.n)
    end
    local res = table.pack(xpcall(aio.timeout, handler, deadline, body))
    local me = aio.current()
    local left = {}
    for _, t in ipairs(aio.tasks()) do
      if t ~= me then left[#left + 1] = t end
    end
    if not res[1] then
      local e = res[2]
      if aio.is_error(e, "timeout") and e.seconds == deadline then
        error(("test body exceeded its %g s deadline"):format(deadline), 0)
      end
      -- busted's own failures (tables) keep their type; others get the
      -- traceback from inside the task
      if type(e) ~= "table" or aio.is_error(e) then
        error(traceback or tostring(e), 0)
      end
      error(e, 0)
    end
    if #left > 0 and not opts.allow_tasks then
      for _, t in ipairs(left) do t:cancel() end
      error(("test left %d task(s) running: %s"):format(#left, describe_tasks(left)), 0)
    end
    if #left == 0 and timers_left > 0 then
      error(("test left %d timer(s) armed"):format(timers_left), 0)
    end
    local now = core.stats().handles
    if now > handles then
      error(("test left %d libuv handle(s) open"):format(now - handles), 0)
    end
    return table.unpack(res, 2, res.n)
  end)
end

--- Wraps a test body so that it runs as a task (see H.run):
--- `it("does x", H.async(function() ... end))`.
function H.async(fn, opts)
  return function() return H.run(fn, opts) end
end

--- Asserts that calling fn(...) raises an aio error of `kind`; returns it.
function H.raises(kind, fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then
    error(("expected an aio error of kind '%s', but the call returned"):format(kind), 2)
  end
  if not aio.is_error(err, kind) then
    error(("expected an aio error of kind '%s', got: %s"):format(kind, tostring(err)), 2)
  end
  return err
end

--- Runs `fn` and returns (result of fn, seconds it took).
function H.timed(fn, ...)
  local t0 = aio.now()
  local r = fn(...)
  return r, aio.now() - t0
end

--- Number of open file descriptors of this process.
function H.fd_count()
  local lfs = require "lfs"
  local n = 0
  for name in lfs.dir("/proc/self/fd") do
    if name ~= "." and name ~= ".." then n = n + 1 end
  end
  return n
end

--- This process's soft limit of open file descriptors.
function H.fd_limit()
  local f = io.open("/proc/self/limits")
  local s = f and f:read("a") or ""
  if f then f:close() end
  return tonumber(s:match("Max open files%s+(%d+)")) or 1024
end

--- This process's resident memory, in KiB.
function H.rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local kb = tonumber(f:read("a"):match("VmRSS:%s*(%d+)"))
  f:close()
  return kb
end

local pid
--- This process's id.
function H.pid()
  if not pid then
    local f = io.open("/proc/self/stat")
    pid = tonumber(f:read("a"):match("^(%d+)"))
    f:close()
  end
  return pid
end

--- Makes a fresh temporary directory and returns its path.
function H.tmpdir()
  local p = io.popen("mktemp -d /tmp/aio-spec.XXXXXX")
  local dir = p:read("l")
  p:close()
  return dir
end

--- Removes a directory tree made by H.tmpdir.
function H.rmtree(dir)
  assert(dir:match("^/tmp/aio%-spec%."), "refusing to remove " .. dir)
  os.execute("rm -rf '" .. dir .. "'")
end

--- Public functions of table `t` (string keys not starting with "_"), as
--- a sorted array of names.
function H.functions_of(t)
  local names = {}
  for k, v in pairs(t) do
    if type(k) == "string" and not k:match("^_") and type(v) == "function" then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  return names
end

--- The method table of an object: its __index table, or the table a C
--- __index function looks methods up in (one of its upvalues).
function H.method_table(obj)
  local idx = getmetatable(obj).__index
  if type(idx) == "function" then
    for i = 1, 4 do
      local _, v = debug.getupvalue(idx, i)
      if type(v) == "table" then return v end
    end
  end
  return idx
end

-- Every metamethod name Lua consults.
local METAMETHODS = { "__add", "__band", "__bnot", "__bor", "__bxor",
  "__call", "__close", "__concat", "__div", "__eq", "__gc", "__idiv",
  "__index", "__le", "__len", "__lt", "__mod", "__mul", "__newindex",
  "__pairs", "__pow", "__shl", "__shr", "__sub", "__tostring", "__unm" }

--- The metamethods (functions) of an object's metatable, as a sorted
--- array of {name =, fn =}.
function H.metamethods_of(obj)
  local mt, list = getmetatable(obj), {}
  if type(mt) ~= "table" then return list end
  for _, name in ipairs(METAMETHODS) do
    local fn = rawget(mt, name)
    if type(fn) == "function" then list[#list + 1] = { name = name, fn = fn } end
  end
  return list
end

--- Calls every metamethod of every object of `objects` (a table of
--- them) with each wrong receiver: nil, a table, a string, a number, a
--- userdata of Lua's, another aio object (the next one in `objects`, and a
--- stream or file if given as objects.stream, objects.file), each call
--- made as `call(fn, receiver, arg)` (e.g. pcall). Returns the number of
--- calls.
function H.hammer_metamethods(objects, call)
  local names, calls = {}, 0
  for name in pairs(objects) do names[#names + 1] = name end
  table.sort(names, function(a, b) return tostring(a) < tostring(b) end)
  local receivers = { n = 7, nil, {}, "x", 5, io.stdout }
  for k, name in ipairs(names) do
    local obj = objects[name]
    receivers[6] = objects[names[k % #names + 1]]
    receivers[7] = obj ~= objects.stream and objects.stream or objects.file
    for _, m in ipairs(H.metamethods_of(obj)) do
      for i = 1, receivers.n do
        call(m.fn, receivers[i], receivers[(i % receivers.n) + 1])
        calls = calls + 1
      end
    end
  end
  return calls
end

--- Loads every name the aio façade provides lazily (its __index's map),
--- and those of aio.http (the HTTP modules besides the client).
function H.load_all(aio)
  local _, lazy = debug.getupvalue(getmetatable(aio).__index, 1)
  for name in pairs(lazy) do local _ = aio[name] end
  local _, http_lazy = debug.getupvalue(getmetatable(aio.http).__index, 1)
  for name in pairs(http_lazy) do local _ = aio.http[name] end
end

--- The package paths of this process, as environment assignments for a
--- child lua5.4 that must find the same aio.
function H.lua_env()
  return ("LUA_PATH_5_4='%s' LUA_CPATH_5_4='%s'"):format(package.path, package.cpath)
end

--- Runs Lua `code` in a child lua5.4 (with this aio, and the shell
--- assignments `env` if given); returns its combined stdout+stderr and its
--- exit code.
function H.lua_child(code, env)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local p = io.popen((env or "") .. " " .. H.lua_env() .. " lua5.4 " .. path .. " 2>&1 </dev/null")
  local out = p:read("a")
  local _, _, code_ = p:close()
  os.remove(path)
  return out, code_
end

--- Runs Lua `code` in a child lua5.4 and, once it has printed "started"
--- (its aio.run has begun), sends it `count` SIGINTs `gap` seconds apart
--- (the first after `gap`). Returns its combined stdout+stderr, then a
--- line "status=N" (its exit status: 130 when SIGINT ended it), or
--- "alive" if it survived them all (it is killed).
function H.lua_child_sigint(code, count, gap)
  local path, sh, out = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local kills = {}
  for i = 1, count do kills[i] = ("sleep %g; kill -INT $P 2>/dev/null"):format(gap) end
  f = assert(io.open(sh, "w"))
  f:write(("%s lua5.4 %s >%s 2>&1 </dev/null & P=$!\n"):format(H.lua_env(), path, out))
  f:write(("i=0; until grep -q started %s || [ $i -ge 600 ]; do sleep 0.05; i=$((i+1)); done\n")
    :format(out))
  f:write(("%s\nsleep %g\n"):format(table.concat(kills, "\n"), gap * 3))
  f:write("if kill -0 $P 2>/dev/null; then echo alive >>" .. out .. "; kill -9 $P; fi\n")
  f:write(("wait $P; echo \"status=$?\" >>%s\n"):format(out))
  f:close()
  os.execute("sh " .. sh)
  f = assert(io.open(out))
  local text = f:read("a")
  f:close()
  os.remove(path)
  os.remove(sh)
  os.remove(out)
  return text
end

return H
