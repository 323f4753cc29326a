-- Misusing the API must never crash the interpreter: every public function
-- and every method of every object type is called with wrong arguments and
-- wrong receivers, inside a task and outside aio.run. Each call may return
-- or raise; the process must survive (run under ASan/UBSan in CI) and leave
-- nothing behind. Calls run under a short aio.timeout so that a call which
-- legitimately waits does not stall the spec.
local aio = require "aio"
local H = require "helper"

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
  for oname, obj in pairs(objects) do add(oname .. ":", H.method_table(obj), obj) end
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
local function stale_request(srv)
  local req, writer
  srv._app:get("/stale", function(r)
    req = r
    writer = r:respond(200)
    writer:write("x")
  end)
  aio.http.get(srv.url .. "/stale")
  return req, writer
end

local function hammer(list, in_task)
  local g = garbage()
  local calls = 0
  for _, c in ipairs(list) do
    if not SKIP[c.name] then
      for i = 1, g.n do
        local args = c.self and {c.self, g[i], g[(i % g.n) + 1]} or {g[i], g[(i % g.n) + 1], g[i]}
        local nargs = c.self and 3 or 3
        local function call() return c.fn(table.unpack(args, 1, nargs)) end
        if in_task then
          pcall(aio.timeout, 0.02, call)
        else
          pcall(call)
        end
        calls = calls + 1
        -- a wrong receiver: the method of one object called on another
        if c.self then
          pcall(c.fn, g[i], g[(i % g.n) + 1])
          calls = calls + 1
        end
      end
    end
  end
  return calls
end

describe("misuse", function()
  it("never crashes: every function and method with wrong arguments", H.async(function()
    local file <close> = aio.fs.open(dir .. "/f", "w")
    local server <close> = aio.tcp.listen("127.0.0.1", 0, function(s) s:read() end)
    local stream <close> = aio.tcp.connect("127.0.0.1", server.port)
    local session <close> = aio.http.Session()
    local registration <close> = aio.signal("SIGUSR2", function() end)
    local group <close> = aio.TaskGroup()
    local app = aio.http.App()
    local http_server <close> = aio.http.listen(app)
    http_server._app = app
    local req, writer = stale_request(http_server)
    local wserver, ws = websocket_pair()
    local _ <close> = wserver
    local objects = {
      task = aio.spawn(function() end), sem = aio.Semaphore(1), lock = aio.Lock(),
      event = aio.Event(), cond = aio.Condition(), queue = aio.Queue(2),
      pqueue = aio.PriorityQueue(), group = group, limiter = aio.RateLimiter(100, 1),
      file = file, stream = stream, server = server, session = session,
      registration = registration, app = app, http_server = http_server, req = req,
      writer = writer, ws = ws,
    }
    local list = callables(objects)
    assert.is_true(#list > 100)
    local calls = hammer(list, true)
    assert.is_true(calls > 2000)
    -- whatever the calls spawned or started is torn down
    for _, t in ipairs(aio.tasks()) do
      if t ~= aio.current() and not t.name:match("^server ") and not t.name:match("^signal ")
        and not t.name:match("^http server ") then
        t:cancel()
      end
    end
    aio.sleep(0.05)
  end, {allow_tasks = true, timeout = 120}))

  it("never crashes outside aio.run, nor with objects of a finished run", function()
    local objects
    aio.run(function()
      local file = aio.fs.open(dir .. "/g", "w")
      local server = aio.tcp.listen("127.0.0.1", 0, function(s) s:read() end)
      local app = aio.http.App()
      local http_server = aio.http.listen(app)
      http_server._app = app
      local req, writer = stale_request(http_server)
      objects = {
        task = aio.spawn(function() end), sem = aio.Semaphore(1), lock = aio.Lock(),
        event = aio.Event(), cond = aio.Condition(), queue = aio.Queue(2),
        limiter = aio.RateLimiter(100, 1), file = file, server = server,
        session = aio.http.Session(), stream = aio.tcp.connect("127.0.0.1", server.port),
        app = app, http_server = http_server, req = req, writer = writer,
      }
      objects.wserver, objects.ws = websocket_pair()
      aio.sleep(0.01)
    end)
    local calls = hammer(callables(objects), false)
    assert.is_true(calls > 1000)
    -- and the loop still works afterwards
    assert.are.equal(42, aio.run(function() aio.sleep(0) return 42 end))
    H.rmtree(dir)
  end)
end)
