/*
** ws_object.c
** The WebSocket object (aio.WebSocket, core.ws.wrap): send with
** backpressure, receive, ping, the closing handshake, the close code and
** reason; and the ws module (core.ws). The connection underneath is
** ws_conn.c.
** See LICENSE
*/

#include <stdlib.h>
#include <string.h>

#include "ws.h"

#define WS_MT "aio.WebSocket"


/* close, __close (from C), __gc, the end of the run: ends the connection
** at once (ws:close() is the handshake). */
static void ws_io_close (IoHandle *io) {
  WebSocket *ws = (WebSocket *)io;
  aio__ws_end(ws);
}


static void ws_io_release (IoHandle *io) {
  WebSocket *ws = (WebSocket *)io;
  aio__buf_free(&ws->ready);
  aio__buf_free(&ws->out);
  free(ws->reason);
}


static const IoType ws_type = {"WebSocket", ws_io_close, NULL,
                               ws_io_release};


#define checkws(L) ((WebSocket *)aio__io_check(L))
#define selfws(L) ((WebSocket *)aio__io_self(L))

/* Has the connection stopped (no more messages will arrive)? */
static int ws_over (WebSocket *ws) {
  return (ws->flags & (WS_SENT | WS_RCVD | WS_ENDED)) || ws->fail;
}


/* The close code: the one we failed the connection with, else the
** peer's, else 1006 once it ended without one; 0 while open. */
static int ws_close_code (WebSocket *ws) {
  if (ws->fail) return ws->fail;
  if (ws->flags & WS_RCVD) return ws->rcode;
  if (ws->flags & WS_ENDED) return 1006;
  return 0;
}


/*
** core.ws.wrap(stream, server, max_message, heartbeat, protocol, name,
** close_timeout) -> WebSocket over `stream` (after the handshake; bytes
** it has buffered are the first frames). `server`: the server end. User
** values: the stream, the protocol, the name for messages.
*/
static int ws_wrap (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Stream *s = (Stream *)((IoRef *)luaL_checkudata(L, 1, "aio.Stream"))->io;
  lua_Integer maxm = luaL_checkinteger(L, 3);
  double beat = luaL_optnumber(L, 4, 0);
  double close_timeout = luaL_optnumber(L, 7, 5);
  WebSocket *ws;
  lua_settop(L, 7);
  if (s == NULL || s->io.closing) return aio__closed_error(L, "stream");
  luaL_argcheck(L, maxm > 0, 3, "max_message must be positive");
  if (s->upper != NULL) return aio__usage(L, "the stream is a WebSocket's");
  ws = (WebSocket *)aio__io_new(loop, sizeof(WebSocket), &ws_type);
  if (ws == NULL) return aio__nomem(L, "making a WebSocket");
  ws->s = s;
  ws->pool = aio__ws_pool(L);
  ws->max_message = (uint64_t)maxm;
  ws->heartbeat = beat > 0 ? beat : 0;
  ws->close_timeout = close_timeout > 0 ? close_timeout : 0;
  ws->flags = lua_toboolean(L, 2) ? WS_SERVER : 0;
  aio__io_push(L, &ws->io, WS_MT, 3);              /* ... ws */
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 5);
  lua_setiuservalue(L, -2, 2);
  lua_pushvalue(L, 6);
  lua_setiuservalue(L, -2, 3);
  aio__ws_start(ws);
  return 1;
}


/* Raises `closed` for a send on a connection that is closing or over. */
static int closed_error (lua_State *L, WebSocket *ws) {
  int code = ws_close_code(ws);
  lua_getiuservalue(L, 1, 3);
  aio__error_new(L, "closed", "the WebSocket %s is closed%s",
                 lua_isstring(L, -1) ? lua_tostring(L, -1) : "",
                 ws->flags & WS_ENDED ? "" : " (closing)");
  if (code != 0) {
    lua_pushinteger(L, code);
    lua_setfield(L, -2, "code");
  }
  return lua_error(L);
}


/* Continuation of a send that waits for the peer (backpressure): the
** write request is on top. */
static int send_k (lua_State *L, int status, lua_KContext ctx) {
  WebSocket *ws = selfws(L);
  Req *q = (Req *)lua_touserdata(L, -1);
  Task *t = ws->io.loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  if (q->status < 0) {
    aio__ws_end(ws);
    return closed_error(L, ws);
  }
  return 0;
}


/*
** send and send_binary: frames `data` (argument 2) as one message, sent
** at the end of the round of tasks. While more than WS_WRITE_HIGH bytes
** wait for the peer, it is sent now and the task waits until the kernel
** took it all (backpressure).
*/
static int send_common (lua_State *L, uint8_t opcode, const char *what) {
  Loop *loop = aio_upvalue_loop(L);
  WebSocket *ws = checkws(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  Task *t;
  int rc;
  lua_settop(L, 2);
  t = aio__task_enter(L, loop, what);
  if (opcode == WSLAY_TEXT_FRAME && !aio__utf8_valid(data, len))
    return luaL_argerror(L, 2, "invalid UTF-8 (send_binary sends bytes)");
  if (ws_over(ws)) return closed_error(L, ws);
  if (aio__ws_frame(ws, opcode, data, len) != 0)
    return aio__nomem(L, "sending a WebSocket message");
  if (uv_stream_get_write_queue_size(&ws->s->h.stream) +
      aio_buf_avail(&ws->out) <= WS_WRITE_HIGH) {
    aio__defer(loop, &ws->flush);
    return 0;
  }
  link_remove(&ws->flush.link);
  rc = aio__stream_send(L, ws->s, &ws->out, 0, WS_WRITE_HIGH);
  if (rc < 0) {
    aio__ws_end(ws);
    return closed_error(L, ws);
  }
  if (rc == 0) return 0;
  return aio__req_wait(L, t, (Req *)lua_touserdata(L, -1), 0, send_k);
}


/* ws:send(text) (suspends while the peer is slower): one text message;
** `text` must be UTF-8. Raises `closed` once the connection closes. */
static int ws_send (lua_State *L) {
  return send_common(L, WSLAY_TEXT_FRAME, "ws:send");
}


/* ws:send_binary(data) (suspends while the peer is slower). */
static int ws_send_binary (lua_State *L) {
  return send_common(L, WSLAY_BINARY_FRAME, "ws:send_binary");
}


/* Takes the first complete message: pushes data, kind. */
static int pop_message (lua_State *L, WebSocket *ws) {
  char *head = aio_buf_head(&ws->ready);
  size_t len;
  memcpy(&len, head + 1, sizeof len);
  lua_pushlstring(L, head + WS_RECORD, len);
  if (head[0] == WSLAY_TEXT_FRAME) lua_pushliteral(L, "text");
  else lua_pushliteral(L, "binary");
  aio__buf_consume(&ws->ready, WS_RECORD + len, 0);
  if (ws->cur != WS_NONE) ws->cur -= WS_RECORD + len;
  ws->nready--;
  if ((ws->flags & WS_PAUSED) &&
      aio_buf_avail(&ws->ready) < WS_READY_HIGH / 2) {
    ws->flags &= ~WS_PAUSED;
    if (aio__stream_read_start(ws->s) < 0) aio__ws_end(ws);
  }
  return 2;
}


static int receive_k (lua_State *L, int status, lua_KContext ctx);

static int receive_body (lua_State *L, WebSocket *ws) {
  if (ws->nready > 0) return pop_message(L, ws);
  if (ws_over(ws)) {
    lua_pushnil(L);
    return 1;
  }
  return aio__io_wait(L, &ws->io, &ws->s->readers, 0, 0, receive_k);
}


static int receive_k (lua_State *L, int status, lua_KContext ctx) {
  WebSocket *ws = selfws(L);
  Task *t = ws->io.loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  if (ws->io.closing) {
    lua_pushnil(L);
    return 1;
  }
  return receive_body(L, ws);
}


/* ws:receive() (suspends) -> data, "text"|"binary"; nil once the
** connection is closed (or closing) and every message was taken. A
** cancelled receive takes nothing. */
static int ws_receive (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  WebSocket *ws = selfws(L);
  lua_settop(L, 1);
  aio__task_enter(L, loop, "ws:receive");
  if (ws->io.closing) {
    lua_pushnil(L);
    return 1;
  }
  return receive_body(L, ws);
}


/* ws:ping([data]): sends a ping (up to 125 bytes); the pong is
** answered by the peer and counts for the heartbeat. */
static int ws_ping (lua_State *L) {
  WebSocket *ws = checkws(L);
  size_t len = 0;
  const char *data = luaL_optlstring(L, 2, "", &len);
  luaL_argcheck(L, len <= 125, 2, "a ping carries at most 125 bytes");
  if (ws_over(ws)) return closed_error(L, ws);
  if (aio__ws_frame(ws, WSLAY_PING, data, len) != 0)
    return aio__nomem(L, "sending a WebSocket ping");
  aio__ws_flush(ws);
  return 0;
}


/* May a close frame carry `code`? */
static int sendable_code (lua_Integer code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}


static int close_k (lua_State *L, int status, lua_KContext ctx) {
  WebSocket *ws = selfws(L);
  Loop *loop = ws->io.loop;
  Task *t = loop->current;
  (void)status;
  if (t->wake == AIO_WAKE_OK && !(ws->flags & WS_ENDED)) { /* wait on */
    aio__timer_arm(loop, &t->timer, (uint64_t)ctx);
    return aio__io_wait(L, &ws->io, &ws->s->readers, 0, ctx, close_k);
  }
  aio__ws_end(ws);              /* done, timed out, or cancelled: it is over */
  if (t->wake != AIO_WAKE_OK && t->wake != AIO_WAKE_TIMER)
    return aio__wake_raise(L, t);
  return 0;
}


/*
** ws:close([code=1000, reason="", timeout]) (suspends): the closing
** handshake. Sends the close frame (once), waits for the peer's and the
** end of the TCP connection for up to `timeout` seconds (the
** WebSocket's close_timeout by default), then (or if cancelled) closes
** it at once. Returns at once when it is over already; outside a task
** (or where it cannot wait) it only closes the connection.
*/
static int ws_close (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  WebSocket *ws = selfws(L);
  lua_Integer code = luaL_optinteger(L, 2, 1000);
  size_t n = 0;
  const char *reason = luaL_optlstring(L, 3, "", &n);
  double secs = luaL_optnumber(L, 4, ws->close_timeout);
  uint64_t deadline;
  Task *t = loop->current;
  luaL_argcheck(L, sendable_code(code), 2, "invalid close code");
  luaL_argcheck(L, n <= 123 && aio__utf8_valid(reason, n), 3,
                "the reason must be UTF-8 of at most 123 bytes");
  lua_settop(L, 4);
  if (ws->flags & WS_ENDED) return 0;
  if (t == NULL || !lua_isyieldable(L)) {
    aio__ws_end(ws);
    return 0;
  }
  if (!(ws->flags & WS_SENT) && !ws->fail) {
    aio__ws_frame_close(ws, (uint16_t)code, reason, n);
    aio__ws_flush(ws);
    aio__ws_drop_partial(ws);
  }
  if (ws->flags & (WS_RCVD) || ws->fail) aio__ws_finish(ws);
  if (aio__cancel_pending(t)) aio__ws_end(ws);      /* the wait would raise */
  t = aio__task_enter(L, loop, "ws:close");
  if (ws->flags & WS_ENDED) return 0;
  deadline = aio__deadline(loop, secs < 0 ? 0 : secs);
  aio__timer_arm(loop, &t->timer, deadline);  /* the peer's close, until */
  return aio__io_wait(L, &ws->io, &ws->s->readers, 0,
                      (lua_KContext)deadline, close_k);
}


/* __close: close() with the default code. */
static int ws__close (lua_State *L) {
  selfws(L);
  lua_settop(L, 1);
  return ws_close(L);
}


/* __index: the methods (upvalue 3), then the fields close_code,
** close_reason, protocol, closed. */
static int ws__index (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  WebSocket *ws = (WebSocket *)ref->io;
  const char *k;
  lua_pushvalue(L, 2);                          /* a method: the usual case */
  if (lua_rawget(L, lua_upvalueindex(3)) != LUA_TNIL) return 1;
  k = lua_tostring(L, 2);
  if (k != NULL && ws != NULL) {
    if (strcmp(k, "close_code") == 0) {
      int code = ws_close_code(ws);
      if (code != 0) lua_pushinteger(L, code);
      else lua_pushnil(L);
      return 1;
    }
    if (strcmp(k, "close_reason") == 0) {
      if (ws_close_code(ws) == 0) lua_pushnil(L);
      else lua_pushstring(L, ws->reason != NULL ? ws->reason : "");
      return 1;
    }
    if (strcmp(k, "protocol") == 0) {
      lua_getiuservalue(L, 1, 2);
      return 1;
    }
    if (strcmp(k, "closed") == 0) {
      lua_pushboolean(L, ws_over(ws));
      return 1;
    }
  }
  return 1;                                     /* nil */
}


static int ws__tostring (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  WebSocket *ws = (WebSocket *)ref->io;
  lua_getiuservalue(L, 1, 3);
  lua_pushfstring(L, "aio.WebSocket (%s%s)",
                  lua_isstring(L, -1) ? lua_tostring(L, -1) : "?",
                  ws == NULL || ws_over(ws) ? ", closed" :
                  "");
  return 1;
}


/* ws:_stream() -> the stream underneath (for tests and the server). */
static int ws_stream (lua_State *L) {
  selfws(L);
  lua_getiuservalue(L, 1, 1);
  return 1;
}


static const luaL_Reg ws_methods[] = {
  {"send", ws_send},
  {"send_binary", ws_send_binary},
  {"receive", ws_receive},
  {"ping", ws_ping},
  {"close", ws_close},
  {"_abort", aio__io_close_method},
  {"_stream", ws_stream},
  {NULL, NULL}
};


static const luaL_Reg ws_meta[] = {
  {"__index", ws__index},
  {"__gc", aio__io__gc},
  {"__close", ws__close},
  {"__tostring", ws__tostring},
  {NULL, NULL}
};


static const AioClass ws_class = {WS_MT, ws_methods, ws_meta};


static const luaL_Reg conn_funcs[] = {
  {"wrap", ws_wrap},
  {NULL, NULL}
};


/* Adds wrap to the core.ws table at `wsidx`, and core.WebSocket (the
** methods table, which the Lua layer completes). The loop is at wsidx-2,
** the core table at wsidx-1. */
static void open_object (lua_State *L, int wsidx) {
  aio__class_open(L, wsidx - 2, &ws_class);
  lua_getfield(L, -1, "__index");
  lua_getupvalue(L, -1, 3);                 /* the methods table */
  lua_setfield(L, wsidx - 1, "WebSocket");
  lua_pop(L, 2);
  lua_pushvalue(L, wsidx);
  aio__setfuncs(L, wsidx - 2, conn_funcs);
  lua_pop(L, 1);
}


/* core.ws = {wrap, accept_key, new_key, key_ok, parse_head, utf8_valid};
** core.WebSocket: the methods. */
static void open_ws (lua_State *L) {
  int core = lua_gettop(L);
  lua_newtable(L);
  open_object(L, core + 1);
  aio__open_ws_handshake(L, core + 1);
  lua_setfield(L, core, "ws");
}


static void close_ws (lua_State *L, Loop *loop) {
  (void)loop;
  aio__ws_reset(L);
}


const AioModule aio__module_ws = {"ws", open_ws, close_ws};
