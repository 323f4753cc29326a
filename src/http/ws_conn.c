/*
** ws_conn.c
** The WebSocket object: wslay's event API over a Stream's buffers (our
** own recv/send callbacks), contexts pooled so that idle connections hold
** none, received messages kept until a task takes them, sends with
** backpressure, automatic pongs, the heartbeat and the close handshake.
** See LICENSE
*/

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "ws.h"

#define WS_MT "aio.WebSocket"
#define LINGER 2.0              /* seconds the TCP close waits for a FIN */
#define RECORD (1 + sizeof(size_t))   /* kind byte + length of a record */
#define NONE SIZE_MAX

static const char pool_key = 0;

static void ws_end (WebSocket *ws);


/* ---------------------------------------------------------------------
** The pool of wslay contexts and wslay's callbacks (no Lua in here)
** ------------------------------------------------------------------- */

#define role(ws) (((ws)->flags & WS_SERVER) ? 1 : 0)
#define cur_ws(ud) (((WsPool *)(ud))->cur)


/* Gives wslay the bytes the stream received (plaintext), as many as it
** takes; "would block" when they are all taken. */
static ssize_t recv_cb (wslay_event_context_ptr ctx, uint8_t *buf,
                        size_t len, int flags, void *ud) {
  WebSocket *ws = cur_ws(ud);
  Buf *in = &ws->s->in.buf;
  size_t n = aio_buf_avail(in);
  (void)flags;
  if (n == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (n > len) n = len;
  memcpy(buf, aio_buf_head(in), n);
  aio__buf_consume(in, n, 0);
  ws->fed += n;
  return (ssize_t)n;
}


/* Takes every frame byte wslay writes into the connection's output
** buffer. */
static ssize_t send_cb (wslay_event_context_ptr ctx, const uint8_t *data,
                        size_t len, int flags, void *ud) {
  (void)flags;
  if (!aio__buf_append(&cur_ws(ud)->out, data, len)) {
    wslay_event_set_error(ctx, WSLAY_ERR_NOMEM);
    return -1;
  }
  return (ssize_t)len;
}


/* Masking keys (client frames) from OpenSSL's generator, 256 bytes at a
** time. */
static int genmask_cb (wslay_event_context_ptr ctx, uint8_t *buf,
                       size_t len, void *ud) {
  WsPool *p = (WsPool *)ud;
  (void)ctx;
  if (p->rndpos + len > sizeof p->rnd) {
    if (RAND_bytes(p->rnd, (int)sizeof p->rnd) != 1) return -1;
    p->rndpos = 0;
  }
  memcpy(buf, p->rnd + p->rndpos, len);
  p->rndpos += (unsigned)len;
  return 0;
}


/* Stops parsing: the connection fails with `code` (sent once wslay
** returns). */
static void fail_now (wslay_event_context_ptr ctx, WebSocket *ws,
                      uint16_t code) {
  if (ws->fail == 0) ws->fail = code;
  wslay_event_shutdown_read(ctx);
}


/* A frame begins: its size (for the at-rest check), and a new record for
** a new data message. wslay has checked the header (opcode, sequence,
** reserved bits, masking, control frame sizes). */
static void frame_start_cb (wslay_event_context_ptr ctx,
                            const struct wslay_event_on_frame_recv_start_arg *a,
                            void *ud) {
  WebSocket *ws = cur_ws(ud);
  uint64_t len = a->payload_length;
  int data = a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME;
  ws->frame = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) +
              (role(ws) ? 4 : 0) + len;
  ws->flags &= ~WS_FDATA;
  if (data || a->opcode == WSLAY_CONTINUATION_FRAME) {
    ws->flags |= WS_FDATA;
    if (a->fin) ws->flags &= ~WS_IN_MSG;
    else ws->flags |= WS_IN_MSG;
  }
  if (data) {
    ws->msglen = 0;
    if (ws->flags & (WS_SENT | WS_RCVD)) ws->flags |= WS_DROP;  /* closing */
    else {
      char head[RECORD] = {0};
      head[0] = (char)a->opcode;
      ws->cur = aio_buf_avail(&ws->ready);
      if (!aio__buf_append(&ws->ready, head, RECORD)) {
        ws->cur = NONE;
        fail_now(ctx, ws, 1011);
        return;
      }
    }
  }
  else if (a->opcode == WSLAY_CONNECTION_CLOSE && len == 1)
    fail_now(ctx, ws, 1002);             /* a close code needs 2 bytes */
  if ((data || a->opcode == WSLAY_CONTINUATION_FRAME) &&
      ws->msglen + len > ws->max_message)
    fail_now(ctx, ws, 1009);
}


/* Payload of a data frame (control frames are buffered by wslay). */
static void frame_chunk_cb (wslay_event_context_ptr ctx,
                            const struct wslay_event_on_frame_recv_chunk_arg *a,
                            void *ud) {
  WebSocket *ws = cur_ws(ud);
  if (!(ws->flags & WS_FDATA) || ws->fail || ws->cur == NONE ||
      (ws->flags & WS_DROP) || a->data_length == 0) return;
  if (!aio__buf_append(&ws->ready, a->data, a->data_length))
    fail_now(ctx, ws, 1011);
  else ws->msglen += a->data_length;
}


static void frame_end_cb (wslay_event_context_ptr ctx, void *ud) {
  WebSocket *ws = cur_ws(ud);
  (void)ctx;
  ws->framed += ws->frame;
}


/* Drops the message still arriving, if any. */
static void drop_partial (WebSocket *ws) {
  if (ws->cur != NONE) {
    ws->ready.len = ws->ready.off + ws->cur;
    ws->cur = NONE;
    if (aio_buf_avail(&ws->ready) == 0) aio__buf_consume(&ws->ready, 0, 0);
  }
}


/* A whole message: a data message is complete in its record; a pong
** answers the heartbeat; a close frame ends the reading (wslay has queued
** our echo). */
static void msg_cb (wslay_event_context_ptr ctx,
                    const struct wslay_event_on_msg_recv_arg *a, void *ud) {
  WebSocket *ws = cur_ws(ud);
  (void)ctx;
  switch (a->opcode) {
    case WSLAY_TEXT_FRAME: case WSLAY_BINARY_FRAME:
      ws->flags &= ~WS_DROP;
      if (ws->fail || ws->cur == NONE) break;
      {
        size_t len = (size_t)ws->msglen;
        memcpy(aio_buf_head(&ws->ready) + ws->cur + 1, &len, sizeof len);
      }
      ws->cur = NONE;
      ws->nready++;
      break;
    case WSLAY_PONG:
      ws->flags &= ~WS_PING_OUT;
      break;
    case WSLAY_CONNECTION_CLOSE:
      if (ws->fail) break;
      ws->flags |= WS_RCVD;
      ws->rcode = a->status_code != 0 ? a->status_code : 1005;
      if (a->msg_length > 2 && ws->reason == NULL &&
          (ws->reason = (char *)malloc(a->msg_length - 1)) != NULL) {
        memcpy(ws->reason, a->msg + 2, a->msg_length - 2);
        ws->reason[a->msg_length - 2] = '\0';
      }
      break;
    default: break;
  }
}


static const struct wslay_event_callbacks callbacks = {
  recv_cb, send_cb, genmask_cb, frame_start_cb, frame_chunk_cb,
  frame_end_cb, msg_cb
};


/* A new context for `role` (1: server); NULL if out of memory. */
static wslay_event_context_ptr ctx_new (WsPool *p, int server) {
  wslay_event_context_ptr ctx;
  int r = server ? wslay_event_context_server_init(&ctx, &callbacks, p) :
                   wslay_event_context_client_init(&ctx, &callbacks, p);
  if (r != 0) return NULL;
  wslay_event_config_set_no_buffering(ctx, 1);
  return ctx;
}


/* A context at rest for `ws`'s role, from the pool if it has one. */
static wslay_event_context_ptr ctx_take (WsPool *p, int server) {
  if (p->nidle[server] > 0) return p->idle[server][--p->nidle[server]];
  return ctx_new(p, server);
}


/* The context `ws` works with (its own, or one borrowed from the pool);
** NULL if out of memory. The pool's callbacks work for `ws` from now. */
static wslay_event_context_ptr borrow (WebSocket *ws) {
  WsPool *p = ws->pool;
  if (ws->ctx == NULL) {
    ws->ctx = ctx_take(p, role(ws));
    if (ws->ctx == NULL) return NULL;
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->max_message);
    ws->fed = ws->framed = 0;
  }
  p->cur = ws;
  return ws->ctx;
}


/*
** Gives `ws`'s context back to the pool if it is at rest: every byte
** given to it was in whole frames, no message is half received, nothing
** is queued to send. A context that stopped reading or writing (a close)
** is freed; one in the middle of something stays with `ws`.
*/
static void release (WebSocket *ws) {
  wslay_event_context_ptr ctx = ws->ctx;
  WsPool *p = ws->pool;
  int r = role(ws);
  if (ctx == NULL) return;
  if (!wslay_event_get_read_enabled(ctx) ||
      !wslay_event_get_write_enabled(ctx)) {
    wslay_event_context_free(ctx);
    ws->ctx = NULL;
  }
  else if (ws->fed == ws->framed && !(ws->flags & WS_IN_MSG) &&
           wslay_event_get_queued_msg_count(ctx) == 0) {
    if (p->nidle[r] < WS_POOL_MAX) p->idle[r][p->nidle[r]++] = ctx;
    else wslay_event_context_free(ctx);
    ws->ctx = NULL;
  }
}


/* Frees the idle contexts (the end of a run). */
static void pool_drain (WsPool *p) {
  int r;
  for (r = 0; r < 2; r++)
    while (p->nidle[r] > 0) wslay_event_context_free(p->idle[r][--p->nidle[r]]);
}


/* The pool of this Lua state (made on first use). */
static WsPool *get_pool (lua_State *L) {
  WsPool *p;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pool_key) == LUA_TUSERDATA) {
    p = (WsPool *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return p;
  }
  lua_pop(L, 1);
  p = (WsPool *)lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  p->rndpos = sizeof p->rnd;
  lua_rawsetp(L, LUA_REGISTRYINDEX, &pool_key);
  return p;
}


/* ---------------------------------------------------------------------
** Sending frames and the life of the connection (no Lua in here)
** ------------------------------------------------------------------- */

/* Sends the frames not sent yet without waiting; a connection that
** cannot be written any more is over. */
static void flush_nowait (WebSocket *ws) {
  link_remove(&ws->flush.link);
  if (ws->flags & WS_ENDED) aio__buf_free(&ws->out);
  else if (aio__stream_send(NULL, ws->s, &ws->out, 0, 0) < 0) ws_end(ws);
}


/* The end of a round of tasks: sends what they framed. */
static void on_flush (Loop *loop, Deferred *d) {
  (void)loop;
  flush_nowait(aio_container_of(d, WebSocket, flush));
}


/* Frames a message or control frame into `out`: 0 or a wslay error. */
static int frame_msg (WebSocket *ws, uint8_t opcode, const char *p,
                      size_t n) {
  wslay_event_context_ptr ctx = borrow(ws);
  struct wslay_event_msg m;
  int r;
  if (ctx == NULL) return WSLAY_ERR_NOMEM;
  m.opcode = opcode;
  m.msg = (const uint8_t *)p;
  m.msg_length = n;
  r = wslay_event_queue_msg(ctx, &m);
  if (r == 0) r = wslay_event_send(ctx);
  release(ws);
  return r;
}


/*
** Frames a close frame into `out` through a context of its own (thrown
** away after), so that the connection's context stays free to parse the
** peer's frames, and reusable. Marks it sent.
*/
static void frame_close (WebSocket *ws, uint16_t code, const char *reason,
                         size_t n) {
  WsPool *p = ws->pool;
  wslay_event_context_ptr c = ctx_take(p, role(ws));
  ws->flags |= WS_SENT;
  ws->scode = code;
  if (c == NULL) return;
  p->cur = ws;
  if (wslay_event_queue_close(c, code, (const uint8_t *)reason, n) == 0)
    wslay_event_send(c);
  wslay_event_context_free(c);
}


/*
** The WebSocket closing handshake is over (or failed): closes the TCP
** connection gracefully. Sends our FIN after what is queued (over TLS,
** close_notify first) and keeps reading (and dropping) until the peer's
** FIN or LINGER seconds, so that unread input never turns our close
** frame into a reset.
*/
static void shutdown_cb (uv_shutdown_t *r, int status) {
  (void)status;
  free(r);
}

static void ws_finish (WebSocket *ws) {
  Stream *s = ws->s;
  uv_shutdown_t *r;
  Loop *loop = ws->io.loop;
  if (ws->flags & (WS_FINISHING | WS_ENDED)) return;
  ws->flags |= WS_FINISHING;
  drop_partial(ws);
  if (s->io.closing) {
    ws_end(ws);
    return;
  }
  if (s->tls != NULL) aio__tls_shutdown(s);
  r = (uv_shutdown_t *)malloc(sizeof *r);
  if (r == NULL || uv_shutdown(r, &s->h.stream, shutdown_cb) < 0) {
    free(r);
    ws_end(ws);
    return;
  }
  if (aio__stream_read_start(s) < 0) {
    ws_end(ws);
    return;
  }
  ws->flags &= ~WS_PAUSED;
  aio__timer_arm(loop, &ws->timer.timer, aio__deadline(loop, LINGER));
}


/* The connection is over: closes the stream now (its readers wake). */
static void ws_end (WebSocket *ws) {
  Stream *s = ws->s;
  if (ws->flags & WS_ENDED) return;
  ws->flags |= WS_ENDED;
  aio__timer_cancel(ws->io.loop, &ws->timer.timer);
  link_remove(&ws->flush.link);
  aio__buf_free(&ws->out);
  if (ws->ctx != NULL) {
    wslay_event_context_free(ws->ctx);
    ws->ctx = NULL;
  }
  drop_partial(ws);
  s->upper = NULL;
  aio__io_close(&s->io);
}


/* Fails the connection with close `code` (and reason `why`): sends the
** close frame unless one was sent, and closes the TCP connection. */
static void ws_fail (WebSocket *ws, uint16_t code, const char *why) {
  if (ws->fail == 0) ws->fail = code;
  if (ws->reason == NULL && why != NULL) ws->reason = strdup(why);
  if (!(ws->flags & (WS_SENT | WS_ENDED))) {
    frame_close(ws, code, why, why != NULL ? strlen(why) : 0);
    flush_nowait(ws);
  }
  ws_finish(ws);
}


static const char *fail_reason (uint16_t code) {
  switch (code) {
    case 1002: return "protocol error";
    case 1009: return "message too big";
    case 1011: return "internal error";
    default: return NULL;
  }
}


/* Parses what the stream received: messages into `ready`; pongs, our
** close echo or wslay's failure close are sent. */
static void parse (WebSocket *ws) {
  wslay_event_context_ptr ctx = borrow(ws);
  int r;
  if (ctx == NULL) {
    ws_fail(ws, 1011, fail_reason(1011));
    return;
  }
  r = wslay_event_recv(ctx);
  if (r != 0 && ws->fail == 0)
    ws->fail = r == WSLAY_ERR_NOMEM ? 1011 : 1002;
  if (ws->fail) {                          /* ours, or a malformed frame */
    wslay_event_context_free(ctx);
    ws->ctx = NULL;
    ws_fail(ws, ws->fail, fail_reason(ws->fail));
    return;
  }
  if (!(ws->flags & WS_SENT)) {
    wslay_event_send(ctx);                 /* pongs, close echo */
    if (wslay_event_get_close_sent(ctx)) {
      ws->flags |= WS_SENT;
      ws->scode = wslay_event_get_status_code_sent(ctx);
    }
  }
  if (!wslay_event_get_read_enabled(ctx) && !(ws->flags & WS_RCVD))
    ws->fail = (ws->flags & WS_SENT) && ws->scode >= 1000 &&
               ws->scode != 1006 ? ws->scode : 1002;   /* found by wslay */
  release(ws);
  flush_nowait(ws);
  if (ws->flags & (WS_RCVD | WS_ENDED) || ws->fail) {
    if (ws->fail) drop_partial(ws);
    if (ws->flags & WS_SENT) ws_finish(ws);
  }
}


/* The stream's input (Stream.upper): parses it, ends the connection at
** the end of the stream, pauses reading while too much is not taken, and
** wakes the tasks waiting when anything changed. */
static void on_input (Stream *s, StreamUpper *up) {
  WebSocket *ws = aio_container_of(up, WebSocket, up);
  size_t nready = ws->nready;
  uint16_t flags = ws->flags;
  if (aio_buf_avail(&s->in.buf) > 0) {
    ws->last_rx = (uint64_t)uv_now(&ws->io.loop->uv) * 1000000;  /* cheap */
    if (ws->flags & (WS_RCVD | WS_FINISHING) || ws->fail)
      aio__buf_consume(&s->in.buf, aio_buf_avail(&s->in.buf), 0);
    else parse(ws);
  }
  if (s->rerr != 0) ws_end(ws);
  else if (ws->nready > 0 && aio_buf_avail(&ws->ready) >= WS_READY_HIGH &&
           !(ws->flags & WS_FINISHING)) {
    aio__stream_read_stop(s);
    ws->flags |= WS_PAUSED;
  }
  if (ws->nready != nready || ws->flags != flags)
    aio__notify_all(ws->io.loop, &s->readers);
}


/* The stream is being closed (by its owner, or the end of the run): the
** connection is over. */
static void on_close (Stream *s, StreamUpper *up) {
  (void)s;
  ws_end(aio_container_of(up, WebSocket, up));
}


/* The timer: the linger of the TCP close is over, or a heartbeat is due:
** sends a ping, or ends a connection whose pong did not come. */
static void on_timer (Loop *loop, TimerCb *tc) {
  WebSocket *ws = aio_container_of(tc, WebSocket, timer);
  uint64_t beat = (uint64_t)(ws->heartbeat * AIO_NS), now = aio__hrtime();
  if (ws->flags & WS_ENDED) return;
  if ((ws->flags & WS_FINISHING) || ws->s->io.closing) {
    ws_end(ws);
    return;
  }
  if (ws->flags & (WS_SENT | WS_RCVD) || beat == 0) return;
  if (ws->flags & WS_PING_OUT) {
    if (ws->last_rx + beat / 2 <= now) {       /* silent since the ping */
      char why[64];
      ws->fail = 1006;
      snprintf(why, sizeof why, "no pong within %g s", ws->heartbeat / 2);
      if (ws->reason == NULL) ws->reason = strdup(why);
      ws_end(ws);
      return;
    }
    ws->flags &= ~WS_PING_OUT;                  /* something came */
  }
  if (ws->last_rx + beat > now || (ws->flags & WS_PAUSED)) {
    aio__timer_arm(loop, &ws->timer.timer,
                   (ws->flags & WS_PAUSED ? now : ws->last_rx) + beat);
    return;
  }
  if (frame_msg(ws, WSLAY_PING, NULL, 0) != 0) {
    ws_fail(ws, 1011, fail_reason(1011));
    return;
  }
  flush_nowait(ws);
  ws->flags |= WS_PING_OUT;
  aio__timer_arm(loop, &ws->timer.timer, now + beat / 2);
}


/* ---------------------------------------------------------------------
** The object
** ------------------------------------------------------------------- */

/* close, __close (from C), __gc, the end of the run: ends the connection
** at once (ws:close() is the handshake). */
static void ws_io_close (IoHandle *io) {
  WebSocket *ws = (WebSocket *)io;
  ws_end(ws);
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
  if (ws->s->io.closing) ws_end(ws);
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
  ws->pool = get_pool(L);
  ws->cur = NONE;
  ws->max_message = (uint64_t)maxm;
  ws->heartbeat = beat > 0 ? beat : 0;
  ws->close_timeout = close_timeout > 0 ? close_timeout : 0;
  ws->flags = lua_toboolean(L, 2) ? WS_SERVER : 0;
  ws->timer.timer.kind = AIO_TIMER_CALLBACK;
  ws->timer.fire = on_timer;
  ws->up.on_input = on_input;
  ws->up.on_close = on_close;
  link_init(&ws->flush.link);
  ws->flush.run = on_flush;
  ws->last_rx = aio__hrtime();
  aio__io_push(L, &ws->io, WS_MT, 3);              /* ... ws */
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 5);
  lua_setiuservalue(L, -2, 2);
  lua_pushvalue(L, 6);
  lua_setiuservalue(L, -2, 3);
  s->upper = &ws->up;
  s->in.keep = 0;                 /* no buffer kept while idle */
  if (aio__stream_read_start(s) < 0) ws_end(ws);
  else if (aio_buf_avail(&s->in.buf) > 0 || s->rerr != 0) on_input(s, &ws->up);
  if (ws->heartbeat > 0 && !(ws->flags & WS_ENDED))
    aio__timer_arm(loop, &ws->timer.timer,
                   aio__deadline(loop, ws->heartbeat));
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
    ws_end(ws);
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
  if (frame_msg(ws, opcode, data, len) != 0) {
    aio__buf_free(&ws->out);
    link_remove(&ws->flush.link);
    return aio__nomem(L, "sending a WebSocket message");
  }
  if (uv_stream_get_write_queue_size(&ws->s->h.stream) +
      aio_buf_avail(&ws->out) <= WS_WRITE_HIGH) {
    aio__defer(loop, &ws->flush);
    return 0;
  }
  link_remove(&ws->flush.link);
  rc = aio__stream_send(L, ws->s, &ws->out, 0, WS_WRITE_HIGH);
  if (rc < 0) {
    ws_end(ws);
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
  lua_pushlstring(L, head + RECORD, len);
  if (head[0] == WSLAY_TEXT_FRAME) lua_pushliteral(L, "text");
  else lua_pushliteral(L, "binary");
  aio__buf_consume(&ws->ready, RECORD + len, 0);
  if (ws->cur != NONE) ws->cur -= RECORD + len;
  ws->nready--;
  if ((ws->flags & WS_PAUSED) &&
      aio_buf_avail(&ws->ready) < WS_READY_HIGH / 2) {
    ws->flags &= ~WS_PAUSED;
    if (aio__stream_read_start(ws->s) < 0) ws_end(ws);
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
  if (frame_msg(ws, WSLAY_PING, data, len) != 0) {
    aio__buf_free(&ws->out);
    link_remove(&ws->flush.link);
    return aio__nomem(L, "sending a WebSocket ping");
  }
  flush_nowait(ws);
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
  if (t->wake == AIO_WAKE_OK && !(ws->flags & WS_ENDED) &&
      !ws->s->io.closing && !ws->io.closing) {  /* not yet: wait on */
    link_push(&ws->s->readers, &t->wait.link);
    aio__timer_arm(loop, &t->timer, (uint64_t)ctx);
    return aio__suspend(L, t, ctx, close_k);
  }
  ws_end(ws);              /* done, timed out, or cancelled: it is over */
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
  if (ws->io.closing || (ws->flags & WS_ENDED)) return 0;
  if (ws->s->io.closing || t == NULL || !lua_isyieldable(L)) {
    ws_end(ws);
    return 0;
  }
  if (!(ws->flags & WS_SENT) && !ws->fail) {
    frame_close(ws, (uint16_t)code, reason, n);
    flush_nowait(ws);
    drop_partial(ws);
  }
  if (ws->flags & (WS_RCVD) || ws->fail) ws_finish(ws);
  if (aio__cancel_pending(t)) ws_end(ws);      /* the wait would raise */
  t = aio__task_enter(L, loop, "ws:close");
  if (ws->flags & WS_ENDED) return 0;
  deadline = aio__deadline(loop, secs < 0 ? 0 : secs);
  link_push(&ws->s->readers, &t->wait.link);
  aio__timer_arm(loop, &t->timer, deadline);
  return aio__suspend(L, t, (lua_KContext)deadline, close_k);
}


/* __close: close() with the default code. */
static int ws__close (lua_State *L) {
  selfws(L);
  lua_settop(L, 1);
  return ws_close(L);
}


/* __index: the fields close_code, close_reason, protocol, closed; then
** the methods (upvalue 3). */
static int ws__index (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  WebSocket *ws = (WebSocket *)ref->io;
  const char *k = lua_tostring(L, 2);
  if (k != NULL && ws != NULL) {
    if (strcmp(k, "close_code") == 0) {
      int code = ws_close_code(ws);
      if (code == 0 && ws->io.closing) code = 1006;
      if (code != 0) lua_pushinteger(L, code);
      else lua_pushnil(L);
      return 1;
    }
    if (strcmp(k, "close_reason") == 0) {
      if (ws_close_code(ws) == 0 && !ws->io.closing) lua_pushnil(L);
      else lua_pushstring(L, ws->reason != NULL ? ws->reason : "");
      return 1;
    }
    if (strcmp(k, "protocol") == 0) {
      lua_getiuservalue(L, 1, 2);
      return 1;
    }
    if (strcmp(k, "closed") == 0) {
      lua_pushboolean(L, ws->io.closing || ws_over(ws));
      return 1;
    }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(3));
  return 1;
}


static int ws__tostring (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  WebSocket *ws = (WebSocket *)ref->io;
  lua_getiuservalue(L, 1, 3);
  lua_pushfstring(L, "aio.WebSocket (%s%s)",
                  lua_isstring(L, -1) ? lua_tostring(L, -1) : "?",
                  ws == NULL || ws->io.closing || ws_over(ws) ? ", closed" :
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
void aio__open_ws_conn (lua_State *L, int wsidx) {
  aio__class_open(L, wsidx - 2, &ws_class);
  lua_getfield(L, -1, "__index");
  lua_getupvalue(L, -1, 3);                 /* the methods table */
  lua_setfield(L, wsidx - 1, "WebSocket");
  lua_pop(L, 2);
  lua_pushvalue(L, wsidx);
  aio__setfuncs(L, wsidx - 2, conn_funcs);
  lua_pop(L, 1);
}


/* The end of a run: the idle contexts go (memory back to baseline). */
void aio__ws_reset (lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pool_key) == LUA_TUSERDATA)
    pool_drain((WsPool *)lua_touserdata(L, -1));
  lua_pop(L, 1);
}


/* core.ws = {wrap, accept_key, new_key, key_ok, parse_head, utf8_valid};
** core.WebSocket: the methods. */
static void open_ws (lua_State *L) {
  int core = lua_gettop(L);
  lua_newtable(L);
  aio__open_ws_conn(L, core + 1);
  aio__open_ws_handshake(L, core + 1);
  lua_setfield(L, core, "ws");
}


static void close_ws (lua_State *L, Loop *loop) {
  (void)loop;
  aio__ws_reset(L);
}


const AioModule aio__module_ws = {"ws", open_ws, close_ws};
