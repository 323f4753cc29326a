--- aio.core.args: the one path for argument errors of the Lua layer: Lua's
-- standard `bad argument #n to 'f' (msg)` (and `usage` errors), blamed on
-- the first caller outside lua/aio/, however deep the check. See LICENSE

local core = require "aio.core"

local type, getmetatable, rawget, pairs = type, getmetatable, rawget, pairs
local error, tostring, tointeger = error, tostring, math.tointeger
local find, fmt, getinfo = string.find, string.format, debug.getinfo

local M = {}

-- Sources of the Lua layer's files start with this (the folder above
-- this file's core/, as "@lua/aio/").
local src = getinfo(1, "S").source
local LIB = src:match("^(.*[/\\])core[/\\]args%.lua$") or src

-- The level, as the caller of this function counts for error(), of the
-- first frame above it that runs a Lua function outside the Lua layer
-- (C frames, such as a pcall, are passed over); nil if there is none.
local function user_level()
  local k = 3
  while true do
    local info = getinfo(k, "S")
    if info == nil then return nil end
    if info.what ~= "C" and find(info.source, LIB, 1, true) ~= 1 then
      return k - 1
    end
    k = k + 1
  end
end

--- How a value is named in "X expected, got Y": its metatable's __name
--- (aio.Event, FILE*), else its type, and "no value" for nil.
---@param v any
---@return string
function M.typename(v)
  if v == nil then return "no value" end
  local mt = getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  if type(name) == "string" then return name end
  return type(v)
end
local typename = M.typename

--- Raises `bad argument #n to 'fname' (msg)` at the user's call.
---@param n integer
---@param fname string
---@param msg string
function M.error(n, fname, msg)
  error(fmt("bad argument #%d to '%s' (%s)", n, fname, msg), user_level() or 0)
end
local argerror = M.error

--- Raises a `usage` error whose message starts with the user's position
--- ("file.lua:12: "), as the C core's usage errors do.
---@param msg string
function M.usage(msg)
  local level = user_level()
  local info = level and getinfo(level, "Sl")
  if info and info.currentline > 0 then
    msg = info.short_src .. ":" .. info.currentline .. ": " .. msg
  end
  error(core.Error("usage", msg), 0)
end

-- Raises for `v`, which is not a `what` ("number", "aio.Lock"): as an
-- argument, "<what> expected, got <its type>"; as an option named
-- `label`, "<label> must be a <what>".
local function expected(v, n, fname, what, label)
  if label then
    argerror(n, fname, label .. (find(what, "^[aeiou]") and " must be an " or " must be a ") .. what)
  end
  argerror(n, fname, what .. " expected, got " .. typename(v))
end

--- Argument `n` must be of Lua type `tname`; returns it.
---@param v any
---@param tname type
---@param n integer
---@param fname string
function M.check(v, tname, n, fname)
  if type(v) ~= tname then expected(v, n, fname, tname) end
  return v
end

--- An optional value inside argument `n` (an option, named by `label` such
--- as "option 'body'"): nil or of type `tname`; returns it.
---@param v any
---@param tname type
---@param n integer
---@param fname string
---@param label string
function M.option(v, tname, n, fname, label)
  if v ~= nil and type(v) ~= tname then expected(v, n, fname, tname, label) end
  return v
end

-- What aio.core.args.opts returns for nil: never written to.
local EMPTY = setmetatable({}, { __newindex = function()
  error("aio.core.args: the empty options table is read-only", 2)
end })

--- Every key of table `t` (argument `n`) must be in `known`; otherwise
--- "unknown <what> 'key'" (`what` defaults to "option").
---@param t table
---@param known table<string, any>
---@param n integer
---@param fname string
---@param what? string
function M.keys(t, known, n, fname, what)
  for k in pairs(t) do
    if not known[k] then
      argerror(n, fname, fmt("unknown %s '%s'", what or "option", tostring(k)))
    end
  end
end

--- Argument `n` is an options table or nil (an empty table is returned
--- for nil, not to be written to); with `known`, unknown keys raise.
---@param v any
---@param n integer
---@param fname string
---@param known? table<string, any>
---@return table
function M.opts(v, n, fname, known)
  if v == nil then return EMPTY end
  if type(v) ~= "table" then
    argerror(n, fname, "table expected, got " .. typename(v))
  end
  if known then M.keys(v, known, n, fname) end
  return v
end

-- A number, not NaN: "number expected" for an argument, "<label> must be
-- a number" for an option; NaN is "<label or nan> is NaN".
local function number(v, n, fname, label, nan)
  if type(v) ~= "number" then expected(v, n, fname, "number", label) end
  if v ~= v then argerror(n, fname, (label or nan) .. " is NaN") end
  return v
end

--- A number that is not NaN (argument `n`, or an option named `label`).
---@param v any
---@param n integer
---@param fname string
---@param label? string
---@return number
function M.number(v, n, fname, label)
  return number(v, n, fname, label, "number")
end

--- A duration in seconds: a number, not NaN; negative means 0.
---@param v any
---@param n integer
---@param fname string
---@param label? string
---@return number
function M.duration(v, n, fname, label)
  v = number(v, n, fname, label, "duration")
  return v < 0 and 0 or v
end

--- An integer (a float with an exact integer value is converted), at least
--- `min` if given; nil stays nil. Argument `n`, or an option `label`.
---@param v any
---@param n integer
---@param fname string
---@param label? string
---@param min? integer
---@return integer|nil
function M.count(v, n, fname, label, min)
  if v == nil then return nil end
  local i = type(v) == "number" and tointeger(v)
  if not i then
    if type(v) == "number" and not label then
      argerror(n, fname, "number has no integer representation")
    end
    expected(v, n, fname, "integer", label)
  end
  if min and i < min then
    local what = min == 0 and "must not be negative" or "must be at least " .. min
    argerror(n, fname, label and label .. " " .. what or what)
  end
  return i
end

-- A string for a C API, which reads it only up to its first zero byte:
-- one that holds a zero byte is refused with `usage`, not cut short.
local function whole(v, what)
  if find(v, "\0", 1, true) then
    M.usage(what .. " contains a zero byte (refused: it would be cut short there)")
  end
  return v
end

--- A string inside argument `n` for a C API (a number is turned into a
--- string); `label` names it ("argv[2]"). Another type is a bad argument;
--- a zero byte in it raises `usage`. Returns the string.
---@param v any
---@param n integer
---@param fname string
---@param label string
---@return string
function M.cstring(v, n, fname, label)
  if type(v) == "number" then return tostring(v) end
  if type(v) ~= "string" then
    argerror(n, fname, label .. " must be a string without zero bytes")
  end
  return whole(v, label)
end

--- Argument `n` as a string for a C API (a path, a host name): another
--- type is a bad argument, a zero byte in it raises `usage` (`label`
--- names it in that message: "path"). Returns the string.
---@param v any
---@param n integer
---@param fname string
---@param label string
---@return string
function M.carg(v, n, fname, label)
  if type(v) ~= "string" then
    argerror(n, fname, "string expected, got " .. typename(v))
  end
  return whole(v, label)
end

--- Can `v` be called (a function, or a value whose metatable has __call)?
---@param v any
---@return boolean
function M.is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end
local is_callable = M.is_callable

--- Argument `n` (or an option `label`) must be callable; returns it.
---@param v any
---@param n integer
---@param fname string
---@param label? string
function M.callable(v, n, fname, label)
  if not is_callable(v) then expected(v, n, fname, "function", label) end
  return v
end

--- Argument `n` must be an object whose metatable is `class` (whose
--- __name names it in the message); returns it.
---@param v any
---@param class table
---@param n integer
---@param fname string
function M.object(v, class, n, fname)
  if getmetatable(v) ~= class then expected(v, n, fname, rawget(class, "__name")) end
  return v
end
local object = M.object

--- The receiver of method `fname` must be an object of `class`: a wrong
--- one raises `bad argument #1 to 'fname' (aio.X expected, got ...)`.
---@param self any
---@param class table
---@param fname string
function M.self(self, class, fname)
  if getmetatable(self) ~= class then object(self, class, 1, fname) end
  return self
end

return M
