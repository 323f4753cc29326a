--- spec/support/ws_peers.lua: the real WebSocket and TLS peers the
-- WebSocket and TLS specs talk to, on 127.0.0.1 and ports the OS picks,
-- started and stopped by PID:
--   * spec/support/ws_fixture.py (Debian's python3-websockets and
--     python3-aiohttp): servers over ws:// and wss://, a raw TLS server
--     telling the SNI and ALPN it saw, and clients run per scenario;
--   * spec/support/ws_node.cjs: node's `ws` from npm, installed once into
--     $PEER_NODE_DIR (~/.cache/aio-peer-node); skipped when npm cannot
--     reach the registry;
--   * a certificate authority and a certificate for localhost/127.0.0.1
--     it signed, made with the openssl CLI.
-- See LICENSE

local H = require "helper"
local S = require "support.http_servers"

local P = {}

local HERE = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local PY = "/usr/bin/python3"
P.FIXTURE = HERE .. "ws_fixture.py"
P.NODE_FIXTURE = HERE .. "ws_node.cjs"

-- The node_modules directory holding `ws`, installed on first use; nil
-- when node or npm is missing or the registry unreachable.
local function node_dir()
  local dir = os.getenv("PEER_NODE_DIR") or ((os.getenv("HOME") or "/tmp") .. "/.cache/aio-peer-node")
  if not os.execute("command -v node >/dev/null 2>&1") then return nil end
  if not S.slurp(dir .. "/node_modules/ws/package.json") then
    S.sh(("mkdir -p '%s' && cd '%s' && timeout 90 npm install --silent --no-audit --no-fund ws "
      .. ">/dev/null 2>&1"):format(dir, dir))
  end
  if not S.slurp(dir .. "/node_modules/ws/package.json") then return nil end
  return dir .. "/node_modules"
end

--- Makes a CA and a certificate it signed for localhost and 127.0.0.1
--- in `dir`: returns the paths of ca.pem, cert.pem, key.pem.
function P.certificates(dir)
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local function f(name) return "'" .. dir .. "/" .. name .. "'" end
  S.write(dir .. "/ext.cnf", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
  for _, cmd in ipairs({
    ("openssl req -x509 %s -keyout %s -out %s -days 2 -subj /CN=aio-test-ca"):format(ec, f("ca.key"), f("ca.pem")),
    ("openssl req %s -keyout %s -out %s -subj /CN=localhost"):format(ec, f("key.pem"), f("srv.csr")),
    ("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -out %s -days 2 -extfile %s")
      :format(f("srv.csr"), f("ca.pem"), f("ca.key"), f("cert.pem"), f("ext.cnf")),
  }) do
    assert(S.sh(cmd .. " >/dev/null 2>&1"), "openssl could not make the certificates: " .. cmd)
  end
  os.execute("chmod 644 " .. f("") .. "*.pem")
  return dir .. "/ca.pem", dir .. "/cert.pem", dir .. "/key.pem"
end


--- Starts the peers; returns an environment: ports (websockets, wss,
--- aiohttp, tls, node or nil), ca (the CA file), node_path (for node
--- clients, or nil), url(kind, path) builders.
function P.start()
  local dir = H.tmpdir()
  os.execute("chmod 755 '" .. dir .. "'")
  local env = { dir = dir, pids = {} }
  local ok, err = pcall(function()
    local ca, cert, key = P.certificates(dir)
    env.ca = ca
    local ready = dir .. "/py.ready"
    env.pids[#env.pids + 1] = S.spawn(("%s '%s' serve '%s' %d '%s' '%s'"):format(
      PY, P.FIXTURE, ready, H.pid(), cert, key), dir .. "/py.log")
    S.wait_until(function() return S.slurp(ready) ~= nil end, 30, "the WebSocket fixture", dir .. "/py.log")
    local ports = require("cjson").decode(S.slurp(ready))
    for k, v in pairs(ports) do env[k] = math.tointeger(v) end
    env.node_path = node_dir()
    if env.node_path then
      local nready = dir .. "/node.ready"
      env.pids[#env.pids + 1] = S.spawn(("NODE_PATH='%s' node '%s' serve '%s' %d"):format(
        env.node_path, P.NODE_FIXTURE, nready, H.pid()), dir .. "/node.log")
      S.wait_until(function() return S.slurp(nready) ~= nil end, 30, "the node ws fixture", dir .. "/node.log")
      env.node = math.tointeger(require("cjson").decode(S.slurp(nready)).node)
    end
  end)
  if not ok then
    P.stop(env)
    error(err, 0)
  end
  --- URL of peer `kind` ("websockets", "aiohttp", "node"; "wss" is the
  --- websockets server over TLS) and `path`.
  function env.url(kind, path)
    return ("%s://127.0.0.1:%d%s"):format(kind == "wss" and "wss" or "ws", env[kind], path)
  end
  return env
end

--- Stops the peers (by PID) and removes their directory.
function P.stop(env)
  S.stop(env)
end

--- Runs a peer client (suspends): `kind` "websockets", "aiohttp" or
--- "node" against `url` for `scenario`; returns its output lines joined
--- with "\n" and its exit code.
function P.client(env, kind, url, scenario)
  local aio = require "aio"
  local argv
  if kind == "node" then
    argv = { "env", "-u", "LD_PRELOAD", "NODE_PATH=" .. env.node_path, "node", P.NODE_FIXTURE,
      "client", url, scenario }
  else
    argv = { "env", "-u", "LD_PRELOAD", PY, P.FIXTURE, "client", kind, url, scenario }
  end
  local r = aio.process.run(argv, { timeout = H.SLOW and 120 or 30 })
  return r.stdout .. r.stderr, r.code
end

return P
