--- aio.process: run a program and collect its output without blocking
-- the loop. The child leads a process group of its own; cancelling the
-- caller or the timeout kills that group and reaps the child before the
-- call returns: nothing is left running, no zombie. See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"

local crun = core.process.run
local argerror, option, cstring = args.error, args.option, args.cstring

local M = {}

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
  args.check(argv, "table", 1, "run")
  local n = #argv
  if math.type(n) ~= "integer" or n > MAX_ARGS then
    argerror(1, "run", "argv has too many elements (or a bad length)")
  end
  if n <= 0 then argerror(1, "run", "argv is empty: the program is missing") end
  local list = {}
  for i = 1, n do
    list[i] = cstring(argv[i], 1, "run", "argv[" .. i .. "]")
  end
  opts = args.opts(opts, 2, "run")
  local o = {
    input = option(opts.input, "string", 2, "run", "input"),
    cwd = opts.cwd ~= nil and cstring(opts.cwd, 2, "run", "cwd") or nil,
  }
  if option(opts.env, "table", 2, "run", "env") then
    local env = {}
    for k, v in pairs(opts.env) do
      if type(k) ~= "string" or k == "" or k:find("=", 1, true) then
        argerror(2, "run", "env: invalid variable name " .. tostring(k))
      end
      cstring(k, 2, "run", "env name")
      env[k] = v ~= false and cstring(v, 2, "run", "env." .. k) or false
    end
    o.env = env
  end
  for _, f in ipairs({ "stdout", "stderr" }) do
    local m = opts[f]
    if m ~= nil and not modes[m] then
      argerror(2, "run", f .. " must be \"pipe\", \"inherit\" or \"null\"")
    end
    o[f] = m
  end
  if opts.timeout ~= nil then o.timeout = args.duration(opts.timeout, 2, "run", "timeout") end
  return crun(list, o)
end

return M
