-- aio.http.Session: base URL, defaults, pooling and limits, retries,
-- cookies, closing, cancellation (nothing leaks), the default session.
local aio = require "aio"
local core = require "aio.core"
local H = require "helper"
local S = require "support.http_servers"
-- test bodies as tasks on a virtual clock, with the suite's real-time limit
local async = require("aio.busted").with { timeout = H.DEADLINE }

local env

local function echo(r)
  local j = r:json()
  local h = {}
  for _, pair in ipairs(j.headers) do h[pair[1]:lower()] = pair[2] end
  j.h = h
  return j
end

local function track_stats(tag)
  return aio.http.get(env.url("/track-stats/" .. tag)):json()
end

describe("aio.http.Session", function()
  setup(function() env = S.start() end)
  teardown(function() S.stop(env) end)

  describe("options", function()
    it("resolves paths against base_url as a browser resolves links", H.async(function()
      local s <close> = aio.http.Session { base_url = env.url("/echo/api/") }
      assert.are.equal("/echo/api/users", s:get("users"):json().path)
      assert.are.equal("/echo", s:get("/echo"):json().path)
      assert.are.equal("/echo/api/x", s:get("x", { query = { a = 1 } }):json().path)
      assert.are.equal(200, s:get(env.nginx("/1k.bin")).status)
    end))

    it("needs base_url for relative paths", H.async(function()
      local err = H.raises("usage", aio.http.get, "/relative")
      assert.matches("not an absolute URL", err.message)
      H.raises("usage", aio.http.Session, { base_url = "ftp://127.0.0.1/" })
    end))

    it("merges session and request headers; the request wins, names case-insensitive", H.async(function()
      local s <close> = aio.http.Session { headers = { ["X-Session"] = "s", ["X-Both"] = "session" },
        user_agent = "agent/2" }
      local j = echo(s:get(env.url("/echo"), { headers = { ["x-both"] = "request", ["X-Req"] = "r" } }))
      assert.are.equal("s", j.h["x-session"])
      assert.are.equal("request", j.h["x-both"])
      assert.are.equal("r", j.h["x-req"])
      assert.are.equal("agent/2", j.h["user-agent"])
      assert.are.equal("session", echo(s:get(env.url("/echo"))).h["x-both"])
      assert.is_nil(echo(s:get(env.url("/echo"), { headers = { ["X-Both"] = false } })).h["x-both"])
    end))

    it("applies the session timeout; a request's timeout overrides it field by field", H.async(function()
      local s <close> = aio.http.Session { timeout = { total = 0.2, read = 5 } }
      local err = H.raises("timeout", s.get, s, env.url("/delay/3"))
      assert.are.equal("total", err.phase)
      assert.are.equal(200, s:get(env.url("/delay/0.3"), { timeout = 2 }).status)
      local r = H.raises("timeout", s.get, s, env.raw_url("/hang"), { timeout = { total = 5, read = 0.2 } })
      assert.are.equal("read", r.phase)
      assert.are.equal(200, s:get(env.url("/delay/0.3"), { timeout = false }).status)
    end))

    it("takes request defaults: auth, verify, ca_file, http_version, max_body", H.async(function()
      local s <close> = aio.http.Session { ca_file = env.cert, http_version = "2",
        auth = { "alice", "s3cret" }, max_body = 100 }
      assert.are.equal("2", s:get(env.nginxs("/index.html")).http_version)
      assert.are.equal(200, s:get(env.url("/basic-auth/alice/s3cret")).status)
      H.raises("protocol", s.get, s, env.nginxs("/1k.bin"))
      assert.are.equal(1024, #s:get(env.nginxs("/1k.bin"), { max_body = 2000 }).body)
      assert.are.equal(1024, #s:get(env.nginxs("/1k.bin"), { max_body = false }).body)
      assert.are.equal(401, s:get(env.url("/basic-auth/alice/s3cret"), { auth = false }).status)
    end))
  end)

  describe("pooling", function()
    it("reuses connections across requests of a session, not across sessions", H.async(function()
      local s <close> = aio.http.Session()
      local port = s:get(env.url("/peer")):json().port
      for _ = 1, 5 do assert.are.equal(port, s:get(env.url("/peer")):json().port) end
      local other <close> = aio.http.Session()
      assert.are_not.equal(port, other:get(env.url("/peer")):json().port)
    end))

    it("keeps one kept-alive connection to nginx for sequential requests", H.async(function()
      local s <close> = aio.http.Session()
      for _ = 1, 10 do assert.are.equal(S.pattern(1024), s:get(env.nginx("/1k.bin")).body) end
      local st = s:stats()
      assert.are.equal(1, st.polls)      -- one socket, muted while idle
      assert.are.equal(0, st.watched)
      assert.are.equal(0, st.active)
    end))

    it("keeps at most max_connections requests in flight; the rest wait in order and succeed", H.async(function()
      local s <close> = aio.http.Session { max_connections = 2 }
      local tasks = {}
      for i = 1, 10 do
        tasks[i] = aio.spawn(function()
          return s:get(env.url(("/track/limit?delay=0.05&id=%d"):format(i))).status
        end)
      end
      aio.sleep(0.02)
      local st = s:stats()
      assert.are.equal(2, st.active)
      assert.are.equal(8, st.waiting)
      for i = 1, 10 do assert.are.equal(200, tasks[i]:await()) end
      local stats = track_stats("limit")
      assert.are.equal(2, stats.max)
      assert.are.same({ "1", "2", "3", "4", "5", "6", "7", "8", "9", "10" }, stats.order)
      assert.are.equal(0, s:stats().waiting)
    end))

    it("limits each host to max_per_host while other hosts proceed", H.async(function()
      local s <close> = aio.http.Session { max_per_host = 1, max_connections = 10 }
      local tasks = {}
      for i = 1, 6 do
        local url = (i % 2 == 0 and env.url2 or env.url)("/track/perhost?delay=0.05&id=" .. i)
        tasks[i] = aio.spawn(function() return s:get(url).status end)
      end
      aio.sleep(0.02)
      assert.are.equal(2, s:stats().active)
      for i = 1, 6 do assert.are.equal(200, tasks[i]:await()) end
      local stats = track_stats("perhost")
      assert.are.equal(2, stats.max)
      for _, h in pairs(stats.hosts) do assert.are.equal(1, h.max) end
      assert.are.same({ "1", "2", "3", "4", "5", "6" }, stats.order)
    end))

    it("admits more requests than connections with max_connections = 0", H.async(function()
      local s <close> = aio.http.Session { max_connections = 0 }
      local tasks = {}
      -- each request stays open until all 300 are surely in (valgrind and
      -- sanitizers slow the start of the later ones down)
      local url = env.url("/track/unlimited?delay=" .. (H.SLOW and 2 or 0.3))
      for i = 1, 300 do
        tasks[i] = aio.spawn(function() return s:get(url).status end)
      end
      for i = 1, 300 do assert.are.equal(200, tasks[i]:await()) end
      assert.are.equal(300, track_stats("unlimited").max)
    end))
  end)

  describe("retries", function()
    it("retries idempotent requests on the statuses listed", H.async(function()
      local s <close> = aio.http.Session { retries = { attempts = 3, statuses = { 503 }, delay = 0.01 } }
      local r = s:get(env.url("/flaky/get1?fail=2"))
      assert.are.equal(200, r.status)
      assert.are.equal("ok after 3", r.body)
      local last = s:get(env.url("/flaky/get2?fail=5"))
      assert.are.equal(503, last.status)
      assert.are.equal(3, aio.http.get(env.url("/flaky/get2?count=1")):json().hits)
    end))

    -- on a virtual clock (aio.busted): an hour and more of back-off passes
    -- at once, while the requests themselves take real time
    it("backs off on the virtual clock between attempts", async(function()
      local s <close> = aio.http.Session { retries = { attempts = 4, statuses = { 503 },
        delay = 600, factor = 2, max_delay = 3600 } }
      local r = s:get(env.url("/flaky/vclock?fail=3"))
      assert.are.equal(200, r.status)
      assert.are.equal("ok after 4", r.body)
      local t = aio.now()            -- 600 + 1200 + 2400 s of back-off
      assert.is_true(t >= 4200 and t < 4230, "at " .. t)
    end, {timeout = 20}))

    it("times a request out in real time on the virtual clock (I/O keeps real time)", async(function()
      local s <close> = aio.http.Session()
      local real0 = aio.testing.real_now()
      local err = H.raises("timeout", s.get, s, env.url("/delay/3"), { timeout = 0.3 })
      assert.are.equal("total", err.phase)
      local t, real = aio.now(), aio.testing.real_now() - real0
      assert.is_true(t >= 0.3 and t < 2.5, "at " .. t)
      assert.is_true(real >= 0.25 and real < 2.5, "took " .. real .. " s")
    end, {timeout = 20}))

    it("never retries POST or PATCH", H.async(function()
      local s <close> = aio.http.Session { retries = { attempts = 3, statuses = { 503 }, delay = 0.01 } }
      assert.are.equal(503, s:post(env.url("/flaky/post1?fail=2")).status)
      assert.are.equal(1, aio.http.get(env.url("/flaky/post1?count=1")):json().hits)
      assert.are.equal(200, s:put(env.url("/flaky/put1?fail=1")).status)
    end))

    it("retries transport failures with backoff and raises the last error", H.async(function()
      local err, dt = H.timed(H.raises, "connect", aio.http.get, "http://127.0.0.1:1/",
        { retries = { attempts = 3, delay = 0.05, factor = 2 } })
      assert.are.equal("http://127.0.0.1:1/", err.url)
      assert.is_true(dt >= 0.14, "retried too fast: " .. dt)
      H.raises("protocol", aio.http.get, env.raw_url("/garbage"), { retries = { attempts = 3, delay = 10 } })
    end))
  end)

  describe("cookies", function()
    it("keeps a jar per session when cookies = true", H.async(function()
      local s <close> = aio.http.Session { cookies = true }
      s:get(env.url("/cookies/set?flavour=oat"))
      assert.are.same({ flavour = "oat" }, s:get(env.url("/cookies")):json())
      assert.are.same({ flavour = "oat", chip = "dark" },
        s:get(env.url("/cookies/set-and-redirect?chip=dark")):json())
      local other <close> = aio.http.Session { cookies = true }
      assert.are.same({}, other:get(env.url("/cookies")):json())
    end))

    it("keeps no cookies by default", H.async(function()
      aio.http.get(env.url("/cookies/set?flavour=oat"))
      assert.are.same({}, aio.http.get(env.url("/cookies")):json())
    end))
  end)

  describe("closing", function()
    it("aborts requests in flight with closed, and refuses new ones", H.async(function()
      local s = aio.http.Session()
      local errs = {}
      local tasks = {}
      for i = 1, 3 do
        tasks[i] = aio.spawn(function()
          local ok, err = pcall(s.get, s, env.url("/delay/5"))
          errs[i] = not ok and err
        end)
      end
      aio.sleep(0.1)
      local t0 = aio.now()
      s:close()
      for i = 1, 3 do tasks[i]:await() end
      assert.is_true(aio.now() - t0 < 1)
      for i = 1, 3 do
        assert.is_true(aio.is_error(errs[i], "closed"), tostring(errs[i]))
        assert.are.equal(env.url("/delay/5"), errs[i].url)
        assert.are.equal("GET", errs[i].method)
      end
      assert.is_true(s:closed())
      H.raises("closed", s.get, s, env.url("/echo"))
      s:close()
    end))

    it("closes with <close>", H.async(function()
      local kept
      do
        local s <close> = aio.http.Session()
        assert.are.equal(200, s:get(env.url("/echo")).status)
        kept = s
      end
      assert.is_true(kept:closed())
      assert.are.equal(0, kept:stats().polls)
    end))

    it("closes the default session and its connections when aio.run returns", function()
      local before = H.fd_count()
      local s1 = aio.run(function()
        assert.are.equal(200, aio.http.get(env.url("/echo")).status)
        assert.is_true(H.fd_count() > before)
        return aio.http.session()
      end)
      assert.are.equal(before, H.fd_count())
      assert.is_true(s1:closed())
      aio.run(function()
        assert.are_not.equal(s1, aio.http.session())
        assert.are.equal(200, aio.http.get(env.url("/echo")).status)
        H.raises("closed", s1.get, s1, env.url("/echo"))
      end)
      assert.are.equal(before, H.fd_count())
    end)

    it("closes sessions of a run when it ends; using one later raises closed", function()
      local s = aio.http.Session()
      aio.run(function() assert.are.equal(200, s:get(env.url("/echo")).status) end)
      assert.is_true(s:closed())
      aio.run(function() H.raises("closed", s.get, s, env.url("/echo")) end)
    end)
  end)

  describe("cancellation", function()
    it("aborts 200 in-flight requests and leaks no fd, handle or slot", H.async(function()
      local before = H.fd_count()
      local handles = core.stats().handles
      local s = aio.http.Session()
      local tasks = {}
      for i = 1, 200 do
        tasks[i] = aio.spawn(function() return s:get(env.url("/delay/30")) end)
      end
      for _ = 1, 200 do
        if s:stats().watched == 100 then break end
        aio.sleep(0.01)
      end
      local st = s:stats()
      assert.are.equal(100, st.active)
      assert.are.equal(100, st.waiting)
      assert.are.equal(100, st.watched)
      assert.are.equal(100, st.easy)    -- waiting requests hold no curl handle
      assert.is_true(H.fd_count() >= before + 100)
      for i = 1, 200 do tasks[i]:cancel() end
      for i = 1, 200 do
        H.raises("cancelled", tasks[i].await, tasks[i])
      end
      st = s:stats()
      assert.are.equal(0, st.active)
      assert.are.equal(0, st.waiting)
      assert.are.equal(0, st.watched)
      assert.are.equal(0, st.polls)
      assert.are.equal(0, st.hosts)
      assert.are.equal(64, st.easy)     -- kept for reuse, the rest freed
      assert.are.equal(handles, core.stats().handles)
      assert.is_true(H.fd_count() <= before + 2, "fds " .. H.fd_count() .. " vs " .. before)
      s:close()
      assert.are.equal(before, H.fd_count())
      assert.are.equal(0, s:stats().easy)
    end))

    it("aborts requests that are still connecting and forgets their sockets", H.async(function()
      local before = H.fd_count()
      local s = aio.http.Session()
      local url = ("http://127.0.0.1:%d/"):format(env.blackhole)
      local tasks = {}
      for i = 1, 20 do tasks[i] = aio.spawn(function() return s:get(url) end) end
      for _ = 1, 100 do
        if s:stats().watched == 20 then break end
        aio.sleep(0.01)
      end
      assert.are.equal(20, s:stats().watched)
      for i = 1, 20 do tasks[i]:cancel() end
      for i = 1, 20 do H.raises("cancelled", tasks[i].await, tasks[i]) end
      local st = s:stats()
      assert.are.equal(0, st.polls)
      assert.are.equal(0, st.active)
      s:close()
      assert.are.equal(before, H.fd_count())
    end))

    it("aborts a request when aio.timeout expires around it", H.async(function()
      local s <close> = aio.http.Session()
      local err = H.raises("timeout", aio.timeout, 0.1, s.get, s, env.url("/delay/5"))
      assert.are.equal(0.1, err.seconds)
      assert.are.equal(0, s:stats().active)
      assert.are.equal(0, s:stats().polls)
    end))

    it("gives a cancelled request's slot to the next waiter", H.async(function()
      local s <close> = aio.http.Session { max_connections = 1 }
      local slow = aio.spawn(function() return s:get(env.url("/delay/30")) end)
      local fast = aio.spawn(function() return s:get(env.url("/echo")).status end)
      aio.sleep(0.05)
      assert.are.equal(1, s:stats().waiting)
      slow:cancel()
      local status, dt = H.timed(fast.await, fast)
      assert.are.equal(200, status)
      assert.is_true(dt < 2)
      H.raises("cancelled", slow.await, slow)
    end))

    it("cancels a queued request without sending it", H.async(function()
      local s <close> = aio.http.Session { max_connections = 1 }
      local first = aio.spawn(function() return s:get(env.url("/track/queued?delay=0.2&id=first")) end)
      local queued = aio.spawn(function() return s:get(env.url("/track/queued?delay=0&id=second")) end)
      aio.sleep(0.05)
      queued:cancel()
      H.raises("cancelled", queued.await, queued)
      assert.are.equal(200, first:await().status)
      assert.are.same({ "first" }, track_stats("queued").order)
    end))
  end)
end)
