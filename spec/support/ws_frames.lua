--- spec/support/ws_frames.lua: raw WebSocket frames for the conformance
-- specs (the Autobahn test-suite's case groups, ported): frames no
-- library would send (bad opcodes, reserved bits, unmasked client
-- frames, oversize or fragmented control frames, non-minimal lengths,
-- bad close payloads), written and read as bytes over aio.tcp.
-- See LICENSE

local F = {}

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="   -- RFC 6455's sample key
local MASK = "\x37\xfa\x21\x3d"

F.TEXT, F.BINARY, F.CONT, F.CLOSE, F.PING, F.PONG = 1, 2, 0, 8, 9, 10

local function masked(payload, key)
  local out = {}
  for i = 1, #payload do
    out[i] = string.char(payload:byte(i) ~ key:byte((i - 1) % 4 + 1))
  end
  return table.concat(out)
end

--- One frame: opcode, payload; o.fin (true), o.rsv (0..7, RSV1 = 4),
--- o.mask (true: a client frame), o.len16 / o.len64 (use a longer length
--- encoding than needed).
function F.frame(opcode, payload, o)
  o = o or {}
  payload = payload or ""
  local fin = o.fin == false and 0 or 0x80
  local b1 = fin | ((o.rsv or 0) << 4) | opcode
  local mask = o.mask == false and 0 or 0x80
  local n, len = #payload, nil
  if n < 126 and not o.len16 and not o.len64 then len = string.char(mask | n)
  elseif n < 65536 and not o.len64 then len = string.char(mask | 126) .. string.pack(">I2", n)
  else len = string.char(mask | 127) .. string.pack(">I8", n) end
  if mask == 0 then return string.char(b1) .. len .. payload end
  return string.char(b1) .. len .. MASK .. masked(payload, MASK)
end

--- A close frame payload: code (2 bytes) and reason.
function F.close_payload(code, reason)
  return string.pack(">I2", code) .. (reason or "")
end

--- Reads one frame from `s`: fin, opcode, payload (unmasked) or nil at
--- the end of the stream.
function F.read(s)
  local ok, head = pcall(s.read_exactly, s, 2)
  if not ok then return nil end
  local b1, b2 = head:byte(1, 2)
  local n = b2 & 0x7f
  if n == 126 then n = string.unpack(">I2", s:read_exactly(2))
  elseif n == 127 then n = string.unpack(">I8", s:read_exactly(8)) end
  local key = (b2 & 0x80) ~= 0 and s:read_exactly(4) or nil
  local payload = n > 0 and s:read_exactly(n) or ""
  if key then payload = masked(payload, key) end
  return (b1 & 0x80) ~= 0, b1 & 0x0f, payload
end

--- Reads frames until a close frame: its code (nil if none) and reason,
--- or nil, "eof" if the stream ended first. Pongs and messages seen
--- before are returned as a third value (array of {opcode, payload}).
function F.read_close(s)
  local seen = {}
  while true do
    local _, op, payload = F.read(s)
    if not op then return nil, "eof", seen end
    if op == F.CLOSE then
      if #payload >= 2 then return string.unpack(">I2", payload), payload:sub(3), seen end
      return nil, "", seen
    end
    seen[#seen + 1] = { op, payload }
  end
end

--- The opening handshake of a client over a raw stream: returns the
--- status line and the head.
function F.handshake(s, path, extra)
  s:write("GET ", path or "/", " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n",
    "Connection: Upgrade\r\nSec-WebSocket-Key: ", KEY, "\r\nSec-WebSocket-Version: 13\r\n",
    extra or "", "\r\n")
  local lines = {}
  while true do
    local line = s:read_line()
    if not line or line == "" then break end
    lines[#lines + 1] = line
  end
  return lines[1], table.concat(lines, "\n")
end

--- The server side of a handshake over a raw stream (answers any
--- request with 101 and the right accept key).
function F.accept(s)
  local key
  while true do
    local line = s:read_line()
    if not line or line == "" then break end
    key = key or line:match("^[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey:%s*(%S+)")
  end
  local accept = require("aio.core").ws.accept_key(key)
  s:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    "Sec-WebSocket-Accept: ", accept, "\r\n\r\n")
end

return F
