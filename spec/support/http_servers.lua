--- spec/support/http_servers.lua: the real servers the HTTP specs talk to,
-- on 127.0.0.1 and ports the OS picks, started and stopped by PID:
--   * the Python fixture (spec/support/http_fixture.py, Debian's python3 and
--     python3-aiohttp): status codes, delays, echo, redirects, gzip, chunked
--     and trickling bodies, cookies, auth, misbehaving peers, a proxy;
--   * nginx (Debian's): static files with keep-alive over HTTP, and HTTPS
--     with HTTP/2 and a self-signed certificate made by openssl at start.
-- Children run without LD_PRELOAD (the sanitizer runtime is for us only).
-- See LICENSE

local H = require "helper"

local S = {}

local HERE = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local FIXTURE = HERE .. "http_fixture.py"
local proc = require "support.proc"
local CLEAN_ENV, spawn, slurp, alive, nap = proc.CLEAN_ENV, proc.spawn, proc.slurp,
  proc.alive, proc.nap

local function sh(cmd)
  return os.execute(CLEAN_ENV .. cmd)
end

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- Polls `check()` every 50 ms for up to `secs` seconds.
local function wait_until(check, secs, what, log)
  local tries = math.floor(secs / 0.05)
  for _ = 1, tries do
    if check() then return end
    nap(0.05)
  end
  error(("%s did not start in %g s:\n%s"):format(what, secs, slurp(log) or ""))
end

local PATTERN = ("0123456789abcdef"):rep(64)   -- 1 KiB

--- The first `n` bytes of the fixture's repeating pattern.
function S.pattern(n)
  local reps = n // #PATTERN + 1
  return PATTERN:rep(reps):sub(1, n)
end

local NGINX_CONF = [[
worker_processes 1;
daemon off;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 2048; }
http {
  access_log off;
  sendfile on;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 100000;
  default_type application/octet-stream;
  client_body_temp_path @DIR@/tmp/body;
  proxy_temp_path @DIR@/tmp/proxy;
  fastcgi_temp_path @DIR@/tmp/fastcgi;
  uwsgi_temp_path @DIR@/tmp/uwsgi;
  scgi_temp_path @DIR@/tmp/scgi;
  server {
    listen 127.0.0.1:@HTTP@ backlog=1024;
    root @DIR@/www;
    location / { }
    location = /to-https { return 302 https://127.0.0.1:@HTTPS@/1k.bin; }
  }
  server {
    listen 127.0.0.1:@HTTPS@ ssl http2 backlog=1024;
    ssl_certificate @DIR@/cert.pem;
    ssl_certificate_key @DIR@/key.pem;
    root @DIR@/www;
    location / { }
    location = /to-http-echo { return 302 http://127.0.0.1:@APP@/echo; }
  }
}
]]

local start

--- Starts the fixture and nginx; returns an environment with their ports,
--- URL builders and the CA file (the self-signed certificate). On failure
--- stops what it started and raises.
function S.start()
  local dir = H.tmpdir()
  os.execute("chmod 755 '" .. dir .. "'")
  local env = { dir = dir, pids = {} }
  local ok, err = pcall(start, env)
  if not ok then
    S.stop(env)
    error(err, 0)
  end
  return env
end

function start(env)
  local dir = env.dir

  -- the Python fixture
  local ready = dir .. "/fixture.ready"
  local flog = dir .. "/fixture.log"
  env.pids[#env.pids + 1] = spawn(("/usr/bin/python3 '%s' '%s' %d"):format(
    FIXTURE, ready, H.pid()), flog)
  wait_until(function() return slurp(ready) ~= nil end, 30, "the HTTP fixture", flog)
  local ports = require("cjson").decode(slurp(ready))
  local int = math.tointeger
  env.app, env.app2, env.raw, env.blackhole = int(ports.app), int(ports.app2),
    int(ports.raw), int(ports.blackhole)

  -- certificate, files and nginx
  local nd = dir .. "/nginx"
  assert(os.execute(("mkdir -p '%s/www' '%s/tmp' && chmod 755 '%s' '%s/www'"):format(
    nd, nd, nd, nd)))
  assert(sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
    .. "-nodes -keyout '%s/key.pem' -out '%s/cert.pem' -days 2 -subj /CN=localhost "
    .. "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1"):format(nd, nd)),
    "openssl could not make a certificate")
  env.cert = nd .. "/cert.pem"
  write(nd .. "/www/1k.bin", S.pattern(1024))
  write(nd .. "/www/index.html", "<h1>aio</h1>\n")
  assert(os.execute(("truncate -s 1G '%s/www/big.bin' && truncate -s 64M '%s/www/64m.bin'"
    .. " && chmod 644 '%s'/www/*"):format(nd, nd, nd)))
  env.http, env.https = int(ports.free[1]), int(ports.free[2])
  local conf = NGINX_CONF:gsub("@(%u+)@", { DIR = nd, HTTP = env.http,
    HTTPS = env.https, APP = env.app })
  write(nd .. "/nginx.conf", conf)
  local nlog = nd .. "/out.log"
  env.pids[#env.pids + 1] = spawn(("timeout -k 5 1800 nginx -p '%s' -c '%s/nginx.conf' "
    .. "-e '%s/error.log'"):format(nd, nd, nd), nlog)
  -- nginx writes its pid file once its sockets listen
  wait_until(function() return slurp(nd .. "/nginx.pid") ~= nil end, 30, "nginx",
    nd .. "/error.log")

  --- URL on the fixture's first port.
  function env.url(path) return ("http://127.0.0.1:%d%s"):format(env.app, path) end
  --- URL on the fixture's second port (another host for the limits).
  function env.url2(path) return ("http://127.0.0.1:%d%s"):format(env.app2, path) end
  --- URL on the raw (misbehaving) server.
  function env.raw_url(path) return ("http://127.0.0.1:%d%s"):format(env.raw, path) end
  --- URL on nginx over HTTP.
  function env.nginx(path) return ("http://127.0.0.1:%d%s"):format(env.http, path) end
  --- URL on nginx over HTTPS (HTTP/2 capable).
  function env.nginxs(path) return ("https://127.0.0.1:%d%s"):format(env.https, path) end
  return env
end

--- Stops the servers (by PID) and removes their directory.
function S.stop(env)
  if not env then return end
  for _, pid in ipairs(env.pids) do
    os.execute("kill " .. pid .. " 2>/dev/null")
  end
  for _, pid in ipairs(env.pids) do
    for _ = 1, 100 do
      if not alive(pid) then break end
      nap(0.05)
    end
    if alive(pid) then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
  end
  H.rmtree(env.dir)
end

-- The process helpers, shared with the other peer fixtures
-- (spec/support/ws_peers.lua).
S.spawn, S.sh, S.slurp, S.write, S.alive, S.nap, S.wait_until =
  spawn, sh, slurp, write, alive, nap, wait_until

return S
