-- aio.redis against a real redis-server (spec/support/redis_server.lua):
-- connecting, replies, errors, commands by name, pipelines, transactions,
-- pub/sub, blocking commands, closing and misuse. Faults and load are in
-- redis_faults_spec.lua.
local aio = require "aio"
local H = require "helper"
local S = require "support.redis_server"
-- test bodies as tasks on a virtual clock, with the suite's real-time limit
local async = require("aio.busted").with { timeout = H.DEADLINE }

local describe_redis = S.available() and describe or pending

describe_redis("aio.redis", function()
  local srv

  setup(function()
    srv = S.start({ users = { { "alice", "s3cret" } } })
  end)

  teardown(function() S.stop(srv) end)

  local function connect(opts, url)
    return aio.redis.connect(url or srv.url, opts)
  end

  describe("connect", function()
    it("connects over TCP and over a unix socket", H.async(function()
      local r <close> = connect()
      assert.are.equal("PONG", r:ping())
      local u <close> = aio.redis.connect(srv.unix_url)
      assert.are.equal("PONG", u:ping())
      local u2 <close> = aio.redis.connect("unix://" .. srv.socket)
      assert.are.equal("hi", u2:echo("hi"))
      assert.matches("aio.redis.Client %(127.0.0.1:%d+%)", tostring(r))
    end))

    it("selects the database of the URL, the query or opts.db", H.async(function()
      local r0 <close> = connect()
      local r2 <close> = connect(nil, srv.url .. "/2")
      local r3 <close> = aio.redis.connect(srv.unix_url .. "?db=3")
      local r4 <close> = connect({ db = 4 })
      r0:flushall()
      r2:set("where", "two")
      r3:set("where", "three")
      r4:set("where", "four")
      assert.is_nil(r0:get("where"))
      assert.are.equal("two", r2:get("where"))
      assert.are.equal("three", r3:get("where"))
      assert.are.equal("four", r4:get("where"))
      assert.matches("/2%)$", tostring(r2))
    end))

    it("authenticates an ACL user from the URL or the options", H.async(function()
      local r <close> = connect(nil, ("redis://alice:s3cret@127.0.0.1:%d"):format(srv.port))
      assert.are.equal("alice", r:acl_whoami())
      local o <close> = connect({ username = "alice", password = "s3cret" })
      assert.are.equal("alice", o:acl_whoami())
      local e = H.raises("redis", connect, nil, ("redis://alice:wrong@127.0.0.1:%d"):format(srv.port))
      assert.are.equal("WRONGPASS", e.prefix)
      assert.are.equal("AUTH", e.command)
    end))

    it("authenticates with a password alone (requirepass)", H.async(function()
      local locked = S.start({ password = "p@ss" })
      local ok, err = pcall(function()
        local r <close> = aio.redis.connect(("redis://:p%%40ss@127.0.0.1:%d"):format(locked.port))
        assert.are.equal("PONG", r:ping())
        local n <close> = aio.redis.connect(locked.url)
        assert.are.equal("NOAUTH", H.raises("redis", n.get, n, "k").prefix)
        local w = H.raises("redis", aio.redis.connect, locked.url, { password = "nope" })
        assert.are.equal("WRONGPASS", w.prefix)
        local named <close> = aio.redis.connect(locked.url, { password = "p@ss", name = "worker-7" })
        assert.are.equal("worker-7", named:client_getname())
      end)
      S.stop(locked)
      assert(ok, err)
    end))

    it("raises connect, dns and argument errors", H.async(function()
      local e = H.raises("connect", aio.redis.connect, ("redis://127.0.0.1:%d"):format(S.free_port()))
      assert.are.equal("ECONNREFUSED", e.code)
      H.raises("connect", aio.redis.connect, "unix:/nonexistent/redis.sock")
      e = H.raises("connect", aio.redis.connect, "redis://[::1]:1")
      assert.are.equal("::1", e.address)
      H.raises("dns", aio.redis.connect, "redis://no-such-host.invalid:6379")
      for _, bad in ipairs({ "http://x", "redis://h:99999", "redis://h/x", "redis://user@h",
        "unix:", "redis://h?foo=1", "rediss://h" }) do
        assert.has_error(function() aio.redis.connect(bad) end)
      end
      assert.has_error(function() aio.redis.connect(42) end,
        "bad argument #1 to 'connect' (string expected, got number)")
      assert.has_error(function() aio.redis.connect(srv.url, { tmeout = 1 }) end,
        "bad argument #2 to 'connect' (unknown option 'tmeout')")
    end))

    it("gives up connecting after connect_timeout", H.async(function()
      -- a server that accepts and never answers AUTH
      local silent <close> = aio.tcp.listen("127.0.0.1", 0, function(s) s:read("a") end)
      local t0 = aio.now()
      local e = H.raises("timeout", aio.redis.connect,
        ("redis://:pw@127.0.0.1:%d"):format(silent.port), { connect_timeout = 0.1 })
      assert.are.equal("connect", e.phase)
      assert.is_true(aio.now() - t0 < 5)
    end))
  end)

  describe("replies", function()
    local function fresh()
      local c = connect()
      c:flushall()
      return c
    end

    it("maps status, bulk, nil, integer and array replies", H.async(function()
      local r <close> = fresh()
      assert.are.equal("OK", r:set("s", "v"))
      assert.are.equal("v", r:get("s"))
      assert.is_nil(r:get("missing"))
      assert.are.equal(1, r:exists("s"))
      assert.are.equal(math.mininteger, r:incrby("i", math.mininteger))
      assert.is_true(math.type(r:incr("j")) == "integer")
      local list = r:mget("s", "missing", "s", "missing")
      assert.are.same({ "v", nil, "v", n = 4 }, list)
      assert.are.equal(4, list.n)
      assert.are.same({ n = 0 }, r:lrange("nothing", 0, -1))
      r:rpush("l", "a", "b")
      assert.are.same({ "a", "b", n = 2 }, r:lrange("l", 0, -1))
    end))

    it("keeps nested arrays, nil elements and errors inside arrays", H.async(function()
      local r <close> = fresh()
      local v = r:eval([[return {1, {2, 'x', false}, false, redis.error_reply('MINE oops'), 'z'}]], 0)
      assert.are.equal(5, v.n)
      assert.are.equal(1, v[1])
      assert.are.same({ 2, "x", nil, n = 3 }, v[2])
      assert.is_nil(v[3])
      assert.is_true(aio.is_error(v[4], "redis"))
      assert.are.equal("MINE", v[4].prefix)
      assert.are.equal("z", v[5])
    end))

    it("is binary safe and carries large values", H.async(function()
      local r <close> = fresh()
      local bin = "a\0b\r\nc\255"
      r:set(bin, bin)
      assert.are.equal(bin, r:get(bin))
      local big = ("0123456789abcdef"):rep(1024 * 256)   -- 4 MiB
      r:set("big", big)
      assert.are.equal(#big, r:strlen("big"))
      assert.are.equal(big, r:get("big"))
    end))

    it("sends numbers exactly", H.async(function()
      local r <close> = fresh()
      r:set("f", 0)
      assert.are.equal("0.1", r:incrbyfloat("f", 0.1))
      r:set("third", 1 / 3)
      assert.are.equal(1 / 3, tonumber(r:get("third")))
      r:set("tenth", 0.1)
      assert.are.equal("0.1", r:get("tenth"))
      r:set("tiny", 2 ^ -1074)
      assert.are.equal(2 ^ -1074, tonumber(r:get("tiny")))
      r:zadd("z", 1 / 3, "third", math.huge, "top")
      assert.are.equal(1 / 3, tonumber(r:zscore("z", "third")))
      assert.are.equal("inf", r:zscore("z", "top"))
      assert.are.equal(math.maxinteger, r:incrby("n", math.maxinteger))
    end))

    it("raises error replies as redis errors with their prefix", H.async(function()
      local r <close> = fresh()
      r:set("str", "x")
      local e = H.raises("redis", r.lpush, r, "str", 1)
      assert.are.equal("WRONGTYPE", e.prefix)
      assert.are.equal("LPUSH", e.command)
      assert.matches("^WRONGTYPE Operation against a key", e.message)
      assert.matches("^redis: WRONGTYPE", tostring(e))
      e = H.raises("redis", r.call, r, "NOSUCHCOMMAND", 1)
      assert.are.equal("ERR", e.prefix)
      e = H.raises("redis", r.eval, r, "error('boom')", 0)
      assert.are.equal("ERR", e.prefix)
      -- the client goes on
      assert.are.equal("x", r:get("str"))
    end))

    it("rejects arguments that are not strings or numbers", H.async(function()
      local r <close> = fresh()
      assert.has_error(function() r:set("k", nil) end,
        "bad argument #3 to 'set' (string or number expected, got nil)")
      assert.has_error(function() r:get({}) end,
        "bad argument #2 to 'get' (string or number expected, got table)")
      assert.has_error(function() r:set("k", true) end)
      assert.has_error(function() r:set("k", 0 / 0) end,
        "bad argument #3 to 'set' (number is NaN)")
      assert.has_error(function() r.get(42, "k") end,
        "bad argument #1 to 'get' (aio.redis.Client expected, got number)")
      assert.are.equal("PONG", r:ping())
    end))
  end)

  describe("commands", function()
    it("has a method for every command, and call(name, ...)", H.async(function()
      local r <close> = connect()
      r:flushall()
      assert.are.equal("OK", r:call("SET", "a", "1"))
      assert.are.equal("1", r:call("get", "a"))
      assert.are.equal("maxclients", r:call("CONFIG GET", "maxclients")[1])
      assert.are.equal("maxclients", r:config_get("maxclients")[1])
      assert.are.equal("maxclients", r:call("config", "get", "maxclients")[1])
      assert.is_true(r:call("MEMORY USAGE", "a") > 0)
      assert.are.equal("ERR", H.raises("redis", r.call, r, "JSON.GET", "a").prefix)
      -- methods are made once and shared
      assert.are.equal(r.hset, r.hset)
      assert.is_nil(r._nothing)
      r:hset("h", "f1", "v1", "f2", 2)
      assert.are.same({ "f1", "v1", "f2", "2", n = 4 }, r:hgetall("h"))
    end))

    it("takes SET's options as a table", H.async(function()
      local r <close> = connect()
      r:flushall()
      assert.are.equal("OK", r:set("k", "v", { ex = 100 }))
      local ttl = r:ttl("k")
      assert.is_true(ttl > 90 and ttl <= 100)
      assert.is_nil(r:set("k", "w", { nx = true }))
      assert.are.equal("v", r:set("k", "w", { xx = true, get = true }))
      assert.are.equal("OK", r:set("k2", "v", { px = 5000, keepttl = false }))
      assert.is_true(r:pttl("k2") > 0)
      assert.has_error(function() r:set("k", "v", { ttl = 1 }) end,
        "bad argument #4 to 'set' (unknown option 'ttl')")
      assert.are.equal("OK", r:set("k3", "v", "EX", 10))
    end))

    it("refuses commands that would break the shared connection", H.async(function()
      local r <close> = connect()
      for _, name in ipairs({ "multi", "exec", "watch", "select", "monitor", "unsubscribe",
        "client_reply", "hello" }) do
        local e = H.raises("usage", r[name], r, "x")
        assert.matches("cannot be used here", e.message)
      end
      assert.are.equal("PONG", r:ping())
    end))
  end)

  describe("pipelines", function()
    it("sends a batch and returns the replies in order", H.async(function()
      local r <close> = connect()
      r:flushall()
      local p = r:pipeline()
      assert.are.equal(p, p:set("a", 1):incr("a"):get("a"):get("missing"):config_get("port"))
      assert.are.equal(5, p:size())
      local replies = p:execute()
      assert.are.equal(5, replies.n)
      assert.are.equal("OK", replies[1])
      assert.are.equal(2, replies[2])
      assert.are.equal("2", replies[3])
      assert.is_nil(replies[4])
      assert.are.equal(tostring(srv.port), replies[5][2])
      assert.are.equal(0, p:size())
      assert.are.same({ n = 0 }, p:execute())
      p:set("b", "x", { ex = 60 })
      assert.are.same({ "OK", n = 1 }, p:execute())
    end))

    it("raises the first error reply with all the replies", H.async(function()
      local r <close> = connect()
      r:flushall()
      r:set("s", "x")
      local p = r:pipeline()
      p:incr("n"):lpush("s", 1):incr("n")
      local e = H.raises("redis", p.execute, p)
      assert.are.equal("WRONGTYPE", e.prefix)
      assert.are.equal(2, e.index)
      assert.are.equal("LPUSH", e.command)
      assert.are.equal(1, e.replies[1])
      assert.are.equal(2, e.replies[3])
      assert.are.equal("2", r:get("n"))
    end))

    it("checks arguments when queued and refuses blocking commands", H.async(function()
      local r <close> = connect()
      local p = r:pipeline()
      assert.has_error(function() p:set("k", nil) end,
        "bad argument #3 to 'set' (string or number expected, got nil)")
      H.raises("usage", p.blpop, p, "q", 0)
      H.raises("usage", p.multi, p)
      assert.are.equal(0, p:size())
    end))
  end)

  describe("transactions", function()
    it("runs the queued commands atomically with MULTI/EXEC", H.async(function()
      local r <close> = connect()
      r:flushall()
      local res = r:transaction(function(tx)
        assert.are.equal(tx, tx:set("a", 1))
        tx:incr("a"):get("a")
      end)
      assert.are.same({ "OK", 2, "2", n = 3 }, res)
      assert.are.same({ n = 0 }, r:transaction(function() end))
    end))

    it("re-runs fn when a watched key changes, and gives up after the retries", H.async(function()
      local r <close> = connect()
      local other <close> = connect()
      r:flushall()
      r:set("counter", 10)
      local runs = 0
      local res = r:transaction(function(tx)
        runs = runs + 1
        local v = tonumber(tx:get("counter"))
        if runs == 1 then other:incr("counter") end   -- a conflicting write
        tx:multi()
        tx:set("counter", v + 1)
      end, { watch = "counter" })
      assert.are.equal(2, runs)
      assert.are.same({ "OK", n = 1 }, res)
      assert.are.equal("12", r:get("counter"))
      -- always conflicting: raises after 1 + retries attempts
      runs = 0
      local e = H.raises("redis", r.transaction, r, function(tx)
        runs = runs + 1
        other:incr("counter")
        tx:multi():incr("counter")
      end, { watch = { "counter", "other" }, retries = 2 })
      assert.are.equal("WATCH", e.prefix)
      assert.are.equal(3, runs)
      assert.are.equal("15", r:get("counter"))
    end))

    it("raises EXECABORT for a refused command and the error of a failed one", H.async(function()
      local r <close> = connect()
      r:flushall()
      r:set("s", "x")
      local e = H.raises("redis", r.transaction, r, function(tx)
        tx:set("a", 1)
        tx:call_me_maybe()
      end)
      assert.are.equal("EXECABORT", e.prefix)
      assert.are.equal("ERR", e.cause.prefix)
      assert.are.equal(2, e.index)
      assert.is_nil(r:get("a"))
      e = H.raises("redis", r.transaction, r, function(tx)
        tx:set("a", 1):lpush("s", 1):set("b", 2)
      end)
      assert.are.equal("WRONGTYPE", e.prefix)
      assert.are.equal(2, e.index)
      assert.are.equal("OK", e.replies[3])
      assert.are.equal("2", r:get("b"))            -- no rollback in Redis
    end))

    it("abandons the transaction when fn raises, and ends tx with fn", H.async(function()
      local r <close> = connect()
      r:flushall()
      local kept
      local ok, err = pcall(r.transaction, r, function(tx)
        kept = tx
        tx:set("a", 1)
        error("changed my mind")
      end)
      assert.is_false(ok)
      assert.matches("changed my mind", err)
      assert.is_nil(r:get("a"))
      H.raises("usage", kept.get, kept, "a")
      ok = pcall(r.transaction, r, function(tx) tx:get("a") error("no") end, { watch = "a" })
      assert.is_false(ok)
      assert.are.equal("PONG", r:ping())
      assert.has_error(function() r:transaction(function() end, { watch = {} }) end)
      assert.has_error(function() r:transaction("fn") end)
    end))
  end)

  describe("pub/sub", function()
    it("delivers messages in order until unsubscribed", H.async(function()
      local r <close> = connect()
      local sub <close> = r:subscribe("news", "sport")
      assert.are.same({ "news", "sport" }, (sub:subscriptions()))
      local publisher = aio.spawn(function()
        for i = 1, 100 do r:publish(i % 2 == 0 and "news" or "sport", "m" .. i) end
        r:publish("other", "never")
      end)
      local got = {}
      for msg in sub:messages() do
        assert.are.equal("message", msg.kind)
        got[#got + 1] = msg.data
        assert.are.equal(#got % 2 == 0 and "news" or "sport", msg.channel)
        if #got == 100 then sub:unsubscribe() end
      end
      publisher:await()
      assert.are.equal(100, #got)
      for i = 1, 100 do assert.are.equal("m" .. i, got[i]) end
      assert.is_nil(sub:receive())
      -- subscribing again reopens it
      sub:subscribe("late")
      local late = aio.spawn(function() return r:publish("late", "hi") end)
      assert.are.equal("hi", sub:receive().data)
      assert.are.equal(1, late:await())
    end))

    -- on a virtual clock (aio.busted): a subscriber waiting for messages
    -- does not hold the clock; a command waiting for its reply does
    it("lets a virtual clock jump while subscribers wait", async(function()
      local r <close> = connect()
      local sub <close> = r:subscribe("ticks")
      -- the publisher sleeps again only once the subscriber has the
      -- message: PUBLISH's reply and the delivery come on two
      -- connections, in no set order
      local seen = aio.Queue()
      local publisher = aio.spawn(function()
        for i = 1, 3 do
          aio.sleep(3600)
          r:publish("ticks", "hour " .. i)
          seen:get()
        end
      end)
      local got = {}
      for msg in sub:messages() do
        got[#got + 1] = ("%s@%d"):format(msg.data, aio.now() // 3600)
        seen:put(true)
        if #got == 3 then sub:unsubscribe() end
      end
      publisher:await()
      assert.are.same({ "hour 1@1", "hour 2@2", "hour 3@3" }, got)
      local t0 = aio.now()
      r:call("DEBUG", "SLEEP", "0.2")       -- the reply comes in real time
      assert.is_true(aio.now() - t0 >= 0.2)
    end, { timeout = 20 }))

    it("matches patterns and subscribes to more on the way", H.async(function()
      local r <close> = connect()
      local sub <close> = r:psubscribe("user.*")
      sub:subscribe("plain")
      assert.are.equal(2, r:publish("user.1", "x") + r:publish("plain", "y"))
      local m1, m2 = sub:receive(), sub:receive()
      assert.are.same({ kind = "pmessage", pattern = "user.*", channel = "user.1", data = "x" }, m1)
      assert.are.same({ kind = "message", channel = "plain", data = "y" }, m2)
      sub:punsubscribe("user.*")
      assert.are.equal(0, r:publish("user.2", "z"))
      sub:unsubscribe("plain")
      assert.is_nil(sub:receive())
    end))

    it("ends messages() in a waiting task when closed", H.async(function()
      local r <close> = connect()
      local sub = r:subscribe("quiet")
      local t = aio.spawn(function()
        local n = 0
        for _ in sub:messages() do n = n + 1 end
        return n
      end)
      aio.sleep(0.02)
      sub:close()
      sub:close()
      assert.are.equal(0, t:await())
      H.raises("closed", sub.subscribe, sub, "x")
      assert.matches("closed", tostring(sub))
    end))

    it("keeps up with a flood of messages", H.async(function()
      local r <close> = connect()
      local sub <close> = r:subscribe("flood")
      local N = H.SLOW and 2000 or 20000
      local pub = aio.spawn(function()
        local p = r:pipeline()
        for i = 1, N do
          p:publish("flood", i)
          if i % 1000 == 0 then p:execute() end
        end
        p:execute()
      end)
      local n = 0
      for msg in sub:messages() do
        n = n + 1
        assert.are.equal(tostring(n), msg.data)
        if n == N then break end
      end
      pub:await()
      assert.are.equal(N, n)
    end))
  end)

  describe("blocking commands", function()
    it("run on connections of their own and do not hold up others", H.async(function()
      local r <close> = connect()
      r:flushall()
      local popped = aio.spawn(function() return r:blpop("jobs", 5) end)
      local brpop = aio.spawn(function() return r:brpop("other", 5) end)
      aio.sleep(0.02)
      local t0 = aio.now()
      for i = 1, 200 do r:set("k", i) end
      assert.are.equal("200", r:get("k"))
      assert.is_true(aio.now() - t0 < 2)
      assert.is_false(popped:done())
      r:rpush("jobs", "job-1")
      assert.are.same({ "jobs", "job-1", n = 2 }, popped:await())
      r:lpush("other", "o")
      assert.are.same({ "other", "o", n = 2 }, brpop:await())
      assert.is_nil(r:blpop("empty", 0.01))
      r:xadd("stream", "*", "f", "v")
      local s = r:xread("COUNT", 1, "BLOCK", 10, "STREAMS", "stream", "0")
      assert.are.equal("stream", s[1][1])
    end))

    it("closes the connection of a cancelled blocking command", H.async(function()
      local r <close> = connect()
      r:flushall()
      local t = aio.spawn(function() return r:blpop("never", 0) end)
      aio.sleep(0.02)
      assert.matches("cmd=blpop", r:client_list())
      t:cancel()
      assert.is_true(aio.is_error(select(2, pcall(t.await, t)), "cancelled"))
      aio.sleep(0.05)
      assert.not_matches("cmd=blpop", r:client_list())
      -- nothing was popped by a vanished waiter
      r:rpush("never", "kept")
      assert.are.equal(1, r:llen("never"))
    end))
  end)

  describe("closing", function()
    it("fails commands in flight with closed, and later ones too", H.async(function()
      local r = connect()
      local other <close> = connect()
      other:client_pause(300, "ALL")
      local t = aio.spawn(function() return r:get("k") end)
      local b = aio.spawn(function() return r:blpop("nothing", 5) end)
      aio.sleep(0.02)
      r:close()
      r:close()
      assert.is_true(aio.is_error(select(2, pcall(t.await, t)), "closed"))
      assert.is_true(aio.is_error(select(2, pcall(b.await, b)), "closed"))
      H.raises("closed", r.get, r, "k")
      local p = r:pipeline():get("k")
      H.raises("closed", p.execute, p)
      assert.is_true(r:closed())
      assert.matches("closed", tostring(r))
      other:client_unpause()
    end))

    it("is closed by the end of the run that made it", function()
      local r = aio.run(function() return connect() end)
      H.run(function()
        assert.is_true(r:closed())
        H.raises("closed", r.blpop, r, "q", 1)
        H.raises("closed", r.subscribe, r, "c")
        H.raises("closed", r.ping, r)
      end)
    end)
  end)

  describe("misuse", function()
    it("never crashes with wrong arguments or receivers", H.async(function()
      local r <close> = connect()
      local sub <close> = r:subscribe("m")
      local spare <close> = connect()
      local objects = { r, r:pipeline(), sub, spare._conn }
      local junk = { n = 9, nil, true, 0, 1.5, 0 / 0, "", {}, function() end, aio.Event() }
      local calls = 0
      for _, obj in ipairs(objects) do
        for _, name in ipairs(H.functions_of(H.method_table(obj))) do
          local f = obj[name]
          for i = 1, junk.n do
            pcall(aio.timeout, 0.05, f, obj, junk[i], junk[(i % junk.n) + 1])
            pcall(aio.timeout, 0.05, f, junk[i])
            calls = calls + 2
          end
        end
      end
      for _, f in ipairs({ r.get, r.set, r.call, r.blpop, r.transaction }) do
        for i = 1, junk.n do pcall(aio.timeout, 0.05, f, junk[i], junk[i]) end
      end
      -- metamethods with wrong receivers (see misuse_spec)
      calls = calls + H.hammer_metamethods(objects, function(f, ...)
        return pcall(aio.timeout, 0.05, f, ...)
      end)
      assert.is_true(calls > 100)
      local fresh <close> = connect()
      assert.are.equal("PONG", fresh:ping())
    end, { allow_tasks = true }))
  end)

  describe("the README", function()
    it("has a heading for every function and method", H.async(function()
      local f = assert(io.open("README.md"))
      local readme = f:read("a")
      f:close()
      local missing = {}
      local function need(names, prefix)
        for _, name in ipairs(names) do
          if not readme:find("\n#### " .. prefix .. name .. "(", 1, true) then
            missing[#missing + 1] = prefix .. name
          end
        end
      end
      need(H.functions_of(aio.redis), "aio.redis.")
      local r <close> = connect()
      local sub <close> = r:subscribe("doc")
      need(H.functions_of(H.method_table(r)), "client:")
      need(H.functions_of(H.method_table(r:pipeline())), "pipeline:")
      need(H.functions_of(H.method_table(sub)), "sub:")
      r:transaction(function(tx) need(H.functions_of(H.method_table(tx)), "tx:") end)
      assert.are.same({}, missing)
    end))
  end)
end)
