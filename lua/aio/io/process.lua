--- aio.process: run a program and collect its output without blocking
-- the loop. The child leads a process group of its own; cancelling the
-- caller or the timeout kills that group and reaps the child before the
-- call returns: nothing is left running, no zombie. See LICENSE

local core = require "aio.core"

local crun = core.process.run

local M = {}

local function argerror(n, msg)
  error(("bad argument #%d to 'run' (%s)"):format(n, msg), 3)
end

local modes = { pipe = true, inherit = true, null = true }

-- The most arguments a program gets (as the C core checks).
local MAX_ARGS = 65536

--- Runs a program to its end (suspends) and returns
--- `{code = exit status, signal = name or nil, stdout = s, stderr = s}`;
--- a child killed by a signal has `code` = -signal number and `signal`
--- = its name ("SIGKILL"). A non-zero status is not an error.
--- argv: {program, args...} (the program is looked up in PATH; no shell).
--- opts.input: string written to its stdin (otherwise stdin is
--- /dev/null); opts.cwd; opts.env: variables set (string) or removed
--- (false) on top of this process's environment; opts.stdout,
--- opts.stderr: "pipe" (captured, the default), "inherit" or "null";
--- opts.timeout: seconds, after which the child is killed and reaped and
--- `timeout` raised (with `stdout`, `stderr` so far).
--- Raises `io` (code, path) when the program cannot be started.
---@param argv string[]
---@param opts? {input?: string, cwd?: string, env?: table<string, string|false>, stdout?: "pipe"|"inherit"|"null", stderr?: "pipe"|"inherit"|"null", timeout?: number}
---@return {code: integer, signal?: string, stdout?: string, stderr?: string}
function M.run(argv, opts)
  if type(argv) ~= "table" then
    argerror(1, "table expected, got " .. (argv == nil and "no value" or type(argv)))
  end
  local n = #argv
  if math.type(n) ~= "integer" or n > MAX_ARGS then
    argerror(1, "argv has too many elements (or a bad length)")
  end
  if n <= 0 then argerror(1, "argv is empty: the program is missing") end
  local args = {}
  for i = 1, n do
    local a = argv[i]
    if type(a) == "number" then a = tostring(a) end
    if type(a) ~= "string" or a:find("\0", 1, true) then
      argerror(1, "argv[" .. i .. "] must be a string without zero bytes")
    end
    args[i] = a
  end
  if opts ~= nil and type(opts) ~= "table" then
    argerror(2, "table expected, got " .. type(opts))
  end
  opts = opts or {}
  local o = {}
  if opts.input ~= nil then
    if type(opts.input) ~= "string" then argerror(2, "input must be a string") end
    o.input = opts.input
  end
  if opts.cwd ~= nil then
    if type(opts.cwd) ~= "string" then argerror(2, "cwd must be a string") end
    o.cwd = opts.cwd
  end
  if opts.env ~= nil then
    if type(opts.env) ~= "table" then argerror(2, "env must be a table") end
    local env = {}
    for k, v in pairs(opts.env) do
      if type(k) ~= "string" or k == "" or k:find("[=%z]") then
        argerror(2, "env: invalid variable name " .. tostring(k))
      end
      if type(v) == "number" then v = tostring(v) end
      if v ~= false and (type(v) ~= "string" or v:find("\0", 1, true)) then
        argerror(2, "env." .. k .. " must be a string or false")
      end
      env[k] = v
    end
    o.env = env
  end
  for _, f in ipairs({ "stdout", "stderr" }) do
    local m = opts[f]
    if m ~= nil and not modes[m] then
      argerror(2, f .. " must be \"pipe\", \"inherit\" or \"null\"")
    end
    o[f] = m
  end
  if opts.timeout ~= nil then
    local t = opts.timeout
    if type(t) ~= "number" or t ~= t then argerror(2, "timeout must be a number") end
    o.timeout = t
  end
  return crun(args, o)
end

return M
