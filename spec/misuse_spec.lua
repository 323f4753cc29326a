-- Misusing the API must never crash the interpreter: every public function,
-- every method and every metamethod of every object type is called with
-- wrong arguments and wrong receivers (nil, a table, a string, a number,
-- another aio object), in every calling context: inside a task, inside a
-- coroutine of a task, in an on_done callback (the loop runs, no task
-- does), outside aio.run, and on objects of a finished run (outside any
-- run and inside a new one). __gc and __close are also called by hand on
-- live objects, which are then used again and left to the end of the
-- run. Each call may return or raise; the process must survive (run under
-- ASan/UBSan in CI) and leave nothing behind. Calls that may suspend run
-- under a short aio.timeout so that one that legitimately waits does not
-- stall the spec.
local aio = require "aio"
local core = require "aio.core"
local H = require "helper"
local U = require "support.server_util"

local dir = H.tmpdir()

-- Values of every kind; strings that are paths point into the scratch dir.
local function garbage()
  local co = coroutine.create(function() end)
  return {
    n = 17,
    nil, true, 0, -1, 1.5, 2^53, math.huge, 0 / 0, "", dir .. "/x",
    {}, {1, "two", {}}, function() end, co, io.stdout,
    aio.Semaphore(1), aio.Queue(1), aio.Event(),
  }
end

-- Every public callable: module functions, and methods of live objects
-- (with the object they belong to).
local function callables(objects)
  local list = {}
  local function add(prefix, t, self)
    for _, k in ipairs(H.functions_of(t)) do
      list[#list + 1] = {name = prefix .. k, fn = t[k], self = self}
    end
  end
  H.load_all(aio)
  add("aio.", aio)
  for _, m in ipairs({"http", "fs", "tcp", "dns", "process", "redis", "pg"}) do add("aio." .. m .. ".", aio[m]) end
  for oname, obj in pairs(objects) do
    local methods = H.method_table(obj)
    if type(methods) == "table" then add(oname .. ":", methods, obj) end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

-- A WebSocket server end that echoes, on aio.tcp.listen, and a client of it.
local function websocket_pair()
  local server = aio.tcp.listen("127.0.0.1", 0, function(s)
    local ws <close> = require("aio.http.websocket").accept(s)
    for data in ws:messages() do ws:send(data) end
  end)
  return server, aio.http.ws_connect("ws://127.0.0.1:" .. server.port .. "/")
end

-- Functions that would do lasting harm with valid-looking garbage.
local SKIP = {
  ["aio.run"] = true,           -- exercised by run_spec, nests loops here
  ["aio.set_debug"] = true,     -- would turn debug output on for the suite
  ["aio.workers"] = true,       -- forks: never inside busted (workers_spec)
}

-- A finished request of an HTTP server, and its response writer: their
-- methods must refuse politely.
local function stale_request(srv, app)
  local req, writer
  app:get("/stale", function(r)
    req = r
    writer = r:respond(200)
    writer:write("x")
  end)
  aio.http.get(srv.url .. "/stale")
  return req, writer
end

-- How a call is made in each context: "task" (under a short timeout),
-- "coroutine" (in a coroutine.wrap inside the task, the suspension
-- passing through it), "plain" (outside any task).
local function caller(context)
  if context == "task" then
    return function(f, ...) return pcall(aio.timeout, 0.002, f, ...) end
  elseif context == "coroutine" then
    return function(f, ...)
      local args = table.pack(...)
      return pcall(aio.timeout, 0.002, coroutine.wrap(function()
        return f(table.unpack(args, 1, args.n))
      end))
    end
  end
  return pcall
end

local function hammer(list, context)
  local call, g, calls = caller(context), garbage(), 0
  for _, c in ipairs(list) do
    if not SKIP[c.name] then
      for i = 1, g.n do
        if c.self then
          call(c.fn, c.self, g[i], g[(i % g.n) + 1])
          -- a wrong receiver: the method of one object called on another
          call(c.fn, g[i], g[(i % g.n) + 1])
          calls = calls + 2
        else
          call(c.fn, g[i], g[(i % g.n) + 1], g[i])
          calls = calls + 1
        end
      end
    end
  end
  return calls
end

local function hammer_meta(objects, context)
  return H.hammer_metamethods(objects, caller(context))
end

-- __gc and __close by hand on the objects themselves, then every method
-- again on what is left of them.
local function collect_by_hand(objects, context)
  local call, calls = caller(context), 0
  for _, obj in pairs(objects) do
    for _, m in ipairs(H.metamethods_of(obj)) do
      if m.name == "__close" or m.name == "__gc" then
        call(m.fn, obj)             -- a server's __close waits for handlers
        calls = calls + 1
      end
    end
  end
  return calls + hammer(callables(objects), context)
end

-- Objects of every type (the HTTP server's too) made in the running task.
local function make_objects()
  local server = aio.tcp.listen("127.0.0.1", 0, function(s) s:read() end)
  local http_server = aio.tcp.listen("127.0.0.1", 0, function(s)
    U.read_head(s)
    s:write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    s:read()
  end)
  local session = aio.http.Session()
  local response = session:get(("http://127.0.0.1:%d/"):format(http_server.port), { stream = true })
  local failed = aio.spawn(function() error("failed on purpose") end)
  local app = aio.http.App()
  local web = aio.http.listen(app)
  local req, writer = stale_request(web, app)
  local ws_server, ws = websocket_pair()
  local objects = {
    task = aio.spawn(function() end), failed = failed, sem = aio.Semaphore(1),
    bsem = aio.BoundedSemaphore(1), lock = aio.Lock(), event = aio.Event(),
    cond = aio.Condition(), queue = aio.Queue(2), pqueue = aio.PriorityQueue(),
    lifo = aio.LifoQueue(), group = aio.TaskGroup(), limiter = aio.RateLimiter(100, 1),
    file = aio.fs.open(dir .. "/f", "w"), server = server, http_server = http_server,
    stream = aio.tcp.connect("127.0.0.1", server.port), session = session,
    response = response, request = response._req, engine = session._eng,
    registration = aio.signal("SIGUSR2", function() end),
    permit = aio.Semaphore(1):acquire(), error = aio.Error("io", "an error"),
    scope = core.scope_open(), app = app, web = web, req = req, writer = writer,
    ws_server = ws_server, ws = ws,
  }
  aio.sleep(0.01)
  failed:error()                       -- retrieved: not reported
  core.scope_close(objects.scope)
  return objects
end

-- Cancels what the calls spawned or started (servers, signal handlers).
local function tear_down()
  for _, t in ipairs(aio.tasks()) do
    if t ~= aio.current() then t:cancel() end
  end
  aio.sleep(0.05)
end

describe("misuse", function()
  it("never crashes: every function, method and metamethod in a task", H.async(function()
    local objects = make_objects()
    local list = callables(objects)
    assert.is_true(#list > 100)
    assert.is_true(hammer(list, "task") > 2000)
    assert.is_true(hammer_meta(objects, "task") > 100)
    tear_down()
  end, {allow_tasks = true, timeout = 120}))

  it("never crashes in a coroutine of a task, nor in an on_done callback", H.async(function()
    local objects = make_objects()
    local list = callables(objects)
    assert.is_true(hammer(list, "coroutine") > 2000)
    assert.is_true(hammer_meta(objects, "coroutine") > 100)
    local calls = 0
    local done = aio.Event()
    aio.spawn(function() end):on_done(function()
      calls = hammer(list, "plain") + hammer_meta(objects, "plain")
      done:set()
    end)
    done:wait()
    assert.is_true(calls > 2000)
    tear_down()
  end, {allow_tasks = true, timeout = 120}))

  it("never crashes when objects are collected by hand, then used", H.async(function()
    local objects = make_objects()
    assert.is_true(collect_by_hand(objects, "task") > 1000)
    tear_down()
  end, {allow_tasks = true, timeout = 120}))

  it("never crashes outside aio.run, nor with objects of a finished run", function()
    local objects, list
    aio.run(function()
      objects = make_objects()
      list = callables(objects)
    end)
    assert.is_true(hammer(list, "plain") > 1000)
    assert.is_true(hammer_meta(objects, "plain") > 100)
    -- the objects of that run, used inside a new one
    aio.run(function()
      assert.is_true(hammer(list, "task") > 1000)
      assert.is_true(hammer_meta(objects, "task") > 100)
      tear_down()
    end)
    assert.is_true(collect_by_hand(objects, "plain") > 1000)
    collectgarbage()
    collectgarbage()
    -- and the loop still works afterwards
    assert.are.equal(42, aio.run(function() aio.sleep(0) return 42 end))
    H.rmtree(dir)
  end)
end)
