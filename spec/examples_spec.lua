-- Runs every example (with small sizes) and checks what it prints, so the
-- examples never rot.
local H = require "helper"

-- `env`: shell assignments to run it with (none if nil)
local function run(script, args, env)
  local p = io.popen((env or "") .. " " .. H.lua_env() .. " lua5.4 examples/" .. script .. " "
    .. (args or "") .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  assert(ok, ("examples/%s exited with %s:\n%s"):format(script, tostring(code), out))
  return out
end

-- Every example file has a spec here.
local covered = {}
local function example(name) covered[name] = true return name end

describe("examples", function()
  it("concurrent_sleep.lua shows gather taking one wait, not three", function()
    local out = run(example("concurrent_sleep.lua"), "0.1")
    local seq = tonumber(out:match("sequential: ([%d.]+) s"))
    local gat = tonumber(out:match("gather:%s+([%d.]+) s"))
    assert.is_true(seq >= 0.3, out)
    assert.is_true(gat >= 0.1 and gat < seq, out)
    assert.matches("a done, b done, c done", out)
  end)

  it("producer_consumer.lua handles every item once", function()
    local out = run(example("producer_consumer.lua"), "12 3 2")
    assert.matches("12 items handled by 3 consumers", out)
    for i = 1, 12 do assert.matches("handled item%-" .. i .. "\n", out) end
  end)

  it("worker_pool.lua finishes every job", function()
    local out = run(example("worker_pool.lua"), "8 2")
    assert.matches("8 jobs in [%d.]+ s with 2 workers", out)
  end)

  it("timeouts_and_cancel.lua shows timeout, clean-up and shield", function()
    local out = run(example("timeouts_and_cancel.lua"), "0.05")
    assert.matches("1%. timeout:%s+false%s+timeout: timed out after 0.05 s", out)
    assert.matches("2%. resource closed", out)
    assert.matches("cancelled: task cancelled: no longer needed", out)
    assert.matches("3%. state saved despite the cancellation", out)
    assert.matches("4%. gather under a 0.05 s deadline: timeout", out)
  end)

  it("task_group.lua fans out and cancels siblings on failure", function()
    local out = run(example("task_group.lua"), "4 2")
    assert.matches("squares: 1 4 9 16", out)
    assert.matches("group raised: child 2 failed; 3 siblings were cancelled", out)
  end)

  it("debug_mode.lua warns about the task that blocks the loop", function()
    local out = run(example("debug_mode.lua"), "0.15")
    assert.matches("task 'cpu%-hog' ran 0%.%d+ s without suspending", out)
    assert.matches("spawned at examples/debug_mode.lua", out)
  end)

  it("health_check.lua checks endpoints concurrently", function()
    local out = run(example("health_check.lua"), "50")
    local secs = tonumber(out:match("50 endpoints checked in ([%d.]+) s: 50 up, 0 down"))
    assert.is_not_nil(secs, out)
    assert.is_true(secs >= 0.5 and secs < 5, out)
  end)

  it("fetch_many.lua keeps a few in flight and collects the failures", function()
    local out = run(example("fetch_many.lua"), "30 4")
    assert.matches("27 of 30 fetched %(%d+ bytes%) in [%d.]+ s, at most 4 in flight", out)
    assert.matches("3 failed:", out)
    assert.matches("item/13: http: 500", out)
    assert.matches("item/25: connect:", out)
  end)

  it("retry_backoff.lua retries until the flaky endpoint answers", function()
    local out = run(example("retry_backoff.lua"), "2")
    assert.matches("attempt 3 at", out)
    assert.matches('got "finally, an answer" after 3 attempts', out)
  end)

  it("virtual_clock.lua polls for hours in no time, at exact times", function()
    local out = run(example("virtual_clock.lua"), "6")
    assert.matches("01:45  round   8 up again after 180 s of retries\n", out)
    assert.matches("03:45  round  16 up again after 180 s of retries\n", out)
    assert.matches("6 hours: 24 rounds, 3 needed retries", out)
  end)

  it("rate_limit.lua paces the requests", function()
    local out = run(example("rate_limit.lua"), "5 1200")
    assert.matches("request  5 sent at", out)
    local span = tonumber(out:match("5 requests in ([%d.]+) s"))
    assert.is_true(span >= 0.19, out)      -- 4 gaps of 0.05 s
  end)

  it("api_gateway.lua calls five services at once", function()
    local out = run(example("api_gateway.lua"), "0.05")
    local seq = tonumber(out:match("one after the other: ([%d.]+) s"))
    local conc = tonumber(out:match("concurrently:%s+([%d.]+) s"))
    assert.is_true(seq >= 0.2 and conc < seq, out)
    assert.matches('"orders":true', out)
  end)

  it("paginate.lua reads every page through a generator", function()
    local out = run(example("paginate.lua"), "23 5")
    assert.matches('23 items from 5 pages; the last is "item 23"', out)
  end)

  it("download.lua streams a large body to a file", function()
    local out = run(example("download.lua"), "8")
    assert.matches("downloaded 8388608 bytes to a temporary file", out)
  end)

  it("crawler.lua crawls the local site once per page, retrying flaky ones", function()
    local out = run(example("crawler.lua"), "60")
    assert.matches("done: 60 pages saved, 2 failed, 62 URLs seen", out)
    assert.matches("failed http://127%.0%.0%.1:%d+/page/%d+: http: 404", out)
  end)

  it("crawler.lua stops gracefully on SIGINT", function()
    local path = os.tmpname()
    local f = io.open(path, "w")
    f:write(("%s lua5.4 examples/crawler.lua 3000 '' '' 0.05 & P=$!\nsleep %g\nkill -INT $P\nwait $P\n")
      :format(H.lua_env(), H.SLOW and 3 or 0.6))
    f:close()
    local p = io.popen("sh " .. path .. " 2>&1")
    local out = p:read("a")
    p:close()
    os.remove(path)
    assert.matches("SIGINT: finishing the pages in hand", out)
    local saved = tonumber(out:match("interrupted: (%d+) pages saved"))
    assert.is_true(saved ~= nil and saved > 0 and saved < 3000, out)
  end)

  it("to_thread.lua keeps the ticker ticking while a thread computes", function()
    local out = run(example("to_thread.lua"), "200000")
    assert.matches("in a thread: 17984 primes below 200000", out)
    assert.matches("inline:%s+17984 primes below 200000 in [%d.]+ s; the ticker ticked 0 times", out)
  end)

  it("tcp_echo.lua echoes for every client", function()
    local out = run(example("tcp_echo.lua"), "4")
    for i = 1, 4 do assert.matches("echo: hello from client " .. i, out) end
  end)

  it("subprocess.lua sorts, and kills a child at its timeout", function()
    local out = run(example("subprocess.lua"), "0.1")
    assert.matches("apple\nfig\npear", out)
    assert.matches("timeout: process 'sleep' timed out after 0.1 s and was killed", out)
  end)

  it("files.lua writes, appends and reads lines", function()
    local dir = H.tmpdir()
    local out = run(example("files.lua"), dir)
    H.rmtree(dir)
    assert.matches("read: first line\nread: second line", out)
    assert.matches("notes.txt is 23 bytes", out)
  end)
  it("http_server.lua serves its REST API and stops gracefully on SIGTERM", function()
    local out = run(example("http_server.lua"), "0 --self-test", "DATABASE_URL=")
    assert.matches("listening on http://127%.0%.0%.1:%d+", out)
    assert.matches("database: none configured", out)
    assert.matches('db squares: 503 {"error":"no database configured: start with %-%-db=DSN or set DATABASE_URL"}', out)
    assert.matches('items: %[{"[a-z]+":', out)
    assert.matches("created: 201 {", out)
    assert.matches("bad JSON: 400", out)
    assert.matches("POST /items %-> 400", out)
    assert.matches("deleted: 204", out)
    assert.matches("missing: 404", out)
    assert.matches("static: 200 text/html", out)
    assert.matches("events received: 5", out)
    assert.matches("SIGTERM: finishing the requests in flight", out)
    assert.matches("in flight during SIGTERM: 200", out)
    assert.matches("server stopped", out)
  end)

  it("http_server.lua answers its /db endpoints from PostgreSQL through a pool", function()
    local PG = require "examples.support.pg_server"
    if not PG.available() then return end
    local env = PG.start()
    local ok, out = pcall(run, "http_server.lua", "--self-test --db=" .. env.dsn, "DATABASE_URL=")
    local ok2, out2 = pcall(run, "http_server.lua", "0 --self-test", "DATABASE_URL='" .. env.dsn .. "'")
    PG.stop(env)
    assert(ok, out)
    assert(ok2, out2)
    assert.matches("database: a pool of up to 10 connections", out)
    assert.matches('db squares: 200 %[{"[a-z]+":1,"[a-z]+":1},', out)
    assert.matches('db squares: 200 %[.*{"[a-z]+":%d+,"[a-z]+":%d+}%]\n', out)
    assert.matches('"square":16', out, 1, true)
    assert.matches("db bad upto: 422", out)
    assert.matches('db status: 200 {.*"version":"15', out)
    assert.matches('"in_use":0', out, 1, true)
    assert.matches("db concurrent: 20 of 20 answered 200", out)
    assert.matches("GET /db/squares%?upto=20 %-> 200", out)
    assert.matches("server stopped", out)
    -- the DSN from the environment
    assert.matches("db concurrent: 20 of 20 answered 200", out2)
  end)

  it("gateway_server.lua answers in the slowest backend's time, 504 past its deadline", function()
    -- backends answer after `latency`, the gateway gives up at 5 times
    -- that; valgrind slows everything down about as much, so it gets
    -- latencies 5 times longer
    local latency = H.VALGRIND and 0.5 or 0.1
    local deadline = 5 * latency
    local out = run(example("gateway_server.lua"), ("%g %g 0 --self-test"):format(latency, deadline))
    local secs = tonumber(out:match("/page: 200 in ([%d.]+) s"))
    assert.is_not_nil(secs, out)
    assert.is_true(secs >= 0.9 * latency and secs < 0.9 * deadline, out)
    assert.matches('"reviews":true', out)
    local slow = tonumber(out:match("/page%?slow=reviews: 504 in ([%d.]+) s"))
    assert.is_true(slow ~= nil and slow >= 0.9 * deadline and slow < 1.9 * deadline, out)
  end)

  -- the Redis examples start a redis-server of their own, or say that
  -- there is none
  local NO_REDIS = "redis%-server is not installed"

  it("redis_queue.lua shares jobs among worker processes", function()
    local out = run(example("redis_queue.lua"), "12 3")
    if out:match(NO_REDIS) then return end
    assert.matches("12 jobs done in [%d.]+ s by 3 worker processes", out)
    for n = 1, 12 do assert.matches("job " .. n .. " %-> " .. n * n .. " %(worker %d%)", out) end
  end)

  it("redis_cache.lua answers from the cache and stops a stampede", function()
    local out = run(example("redis_cache.lua"), "5 0.1")
    if out:match(NO_REDIS) then return end
    assert.matches("cold cache: 5 items in [%d.]+ s, 5 backend calls", out)
    assert.matches("warm cache: 5 items in [%d.]+ s, 0 backend calls", out)
    assert.matches("50 concurrent lookups of one cold item: 1 backend call", out)
    assert.matches("ttl of a cached item: %d+ s", out)
  end)

  it("pg_pool.lua shares a pool, moves money in a transaction, listens", function()
    local out = run(example("pg_pool.lua"), "'' 300")
    if out:match("PostgreSQL is not installed") then return end
    assert.matches("1%. 300 tasks ran 300 queries on 10 connections in [%d.]+ s; the last square is 90000", out)
    assert.matches("2%. after moving 30: alice 70, bob 30", out)
    assert.matches("moving 500 failed %(.-check constraint.-, sqlstate 23514%), so nothing moved: alice 70, bob 30", out)
    assert.matches("3%. the listener got: resize image\n3%. the listener got: send mail\n3%. the listener got: stop", out)
  end)

  it("ws_echo.lua echoes text and binary and closes cleanly", function()
    local out = run(example("ws_echo.lua"), "2")
    assert.matches("client: hello 1 %(text%)\nclient: hello 2 %(text%)", out)
    assert.matches("client: 3 bytes back %(binary%)", out)
    assert.matches('server: the client closed with 1000 "done"', out)
    assert.matches("client: closed with 1000", out)
  end)

  it("chat_server.lua relays within rooms and closes every chat on SIGTERM", function()
    local out = run(example("chat_server.lua"), "--self-test")
    assert.matches("alice sees: %* bob joined lua", out)
    assert.matches("alice sees: bob: hi alice", out)
    assert.matches("carol sees: %* carol joined python | carol: anyone%?", out)
    assert.matches("SIGTERM: closing every chat", out)
    for _, name in ipairs({ "alice", "bob", "carol" }) do
      assert.matches(name .. ": told, closed 1001 server shutdown", out)
    end
    assert.matches("chat server stopped", out)
  end)

  it("chat_client.lua chats through chat_server.lua", function()
    local log = os.tmpname()
    local p = io.popen(H.lua_env() .. " lua5.4 examples/chat_server.lua 0 > " .. log .. " 2>&1 & echo $!")
    local pid = p:read("l")
    p:close()
    local function server_log()
      local f = io.open(log)
      local text = f and f:read("a") or ""
      if f then f:close() end
      return text
    end
    local function wait_for(pattern)
      for _ = 1, 400 do
        local found = server_log():match(pattern)
        if found then return found end
        os.execute("sleep 0.05")
      end
    end
    local port = wait_for("ws://127%.0%.0%.1:(%d+)/")
    local url = "ws://127.0.0.1:" .. tostring(port) .. "/rooms/lua"
    local ok, out = pcall(run, example("chat_client.lua"), url .. " alice hello 'bye now'")
    os.execute("kill -TERM " .. pid)
    wait_for("chat server stopped")
    local slog = server_log()
    os.remove(log)
    assert(ok, out)
    assert.matches("%* alice joined lua\nalice: hello\nalice: bye now\n%(closed: 1000 bye%)", out)
    assert.matches("SIGTERM: closing every chat\nchat server stopped", slog)
  end)

  -- last: the tests above have marked what they ran
  it("cover every file in examples/", function()
    for name in io.popen("ls examples/*.lua"):lines() do
      assert.is_true(covered[name:match("[^/]+$")] ~= nil, name .. " has no spec in spec/examples_spec.lua")
    end
  end)

end)
