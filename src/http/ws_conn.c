/*
** ws_conn.c
** A WebSocket connection's machinery (no Lua in here): wslay's event API
** over a Stream's buffers (our own recv/send callbacks), contexts pooled
** so that idle connections hold none, received messages kept until a task
** takes them, frames written once per round, automatic pongs, the
** heartbeat, and the end of the connection. The object is ws_object.c.
** See LICENSE
*/

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "ws.h"

#define LINGER 2.0              /* seconds the TCP close waits for a FIN */

static const char pool_key = 0;


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
    if (!(ws->flags & (WS_SENT | WS_RCVD))) {  /* closing: no record, dropped */
      char head[WS_RECORD] = {0};
      head[0] = (char)a->opcode;
      ws->cur = aio_buf_avail(&ws->ready);
      if (!aio__buf_append(&ws->ready, head, WS_RECORD)) {
        ws->cur = WS_NONE;
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
  if (!(ws->flags & WS_FDATA) || ws->fail || ws->cur == WS_NONE ||
      a->data_length == 0) return;
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
void aio__ws_drop_partial (WebSocket *ws) {
  if (ws->cur != WS_NONE) {
    ws->ready.len = ws->ready.off + ws->cur;
    ws->cur = WS_NONE;
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
      if (ws->fail || ws->cur == WS_NONE) break;
      {
        size_t len = (size_t)ws->msglen;
        memcpy(aio_buf_head(&ws->ready) + ws->cur + 1, &len, sizeof len);
      }
      ws->cur = WS_NONE;
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
WsPool *aio__ws_pool (lua_State *L) {
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
void aio__ws_flush (WebSocket *ws) {
  link_remove(&ws->flush.link);
  if (ws->flags & WS_ENDED) aio__buf_free(&ws->out);
  else if (aio__stream_send(NULL, ws->s, &ws->out, 0, 0) < 0) aio__ws_end(ws);
}


/* The end of a round of tasks: sends what they framed. */
static void on_flush (Loop *loop, Deferred *d) {
  (void)loop;
  aio__ws_flush(aio_container_of(d, WebSocket, flush));
}


/* Frames a message or control frame into `out`: 0, or a wslay error
** (out of memory), and then what `out` held is dropped (it may end in a
** partial frame) and not flushed. */
int aio__ws_frame (WebSocket *ws, uint8_t opcode, const char *p,
                    size_t n) {
  wslay_event_context_ptr ctx = borrow(ws);
  struct wslay_event_msg m;
  int r = WSLAY_ERR_NOMEM;
  if (ctx != NULL) {
    m.opcode = opcode;
    m.msg = (const uint8_t *)p;
    m.msg_length = n;
    r = wslay_event_queue_msg(ctx, &m);
    if (r == 0) r = wslay_event_send(ctx);
    release(ws);
  }
  if (r != 0) {
    aio__buf_free(&ws->out);
    link_remove(&ws->flush.link);
  }
  return r;
}


/*
** Frames a close frame into `out` through a context of its own (thrown
** away after), so that the connection's context stays free to parse the
** peer's frames, and reusable. Marks it sent.
*/
void aio__ws_frame_close (WebSocket *ws, uint16_t code, const char *reason,
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

void aio__ws_finish (WebSocket *ws) {
  Stream *s = ws->s;
  uv_shutdown_t *r;
  Loop *loop = ws->io.loop;
  if (ws->flags & (WS_FINISHING | WS_ENDED)) return;
  ws->flags |= WS_FINISHING;
  aio__ws_drop_partial(ws);
  if (s->tls != NULL) aio__tls_shutdown(s);
  r = (uv_shutdown_t *)malloc(sizeof *r);
  if (r == NULL || uv_shutdown(r, &s->h.stream, shutdown_cb) < 0) {
    free(r);
    aio__ws_end(ws);
    return;
  }
  if (aio__stream_read_start(s) < 0) {
    aio__ws_end(ws);
    return;
  }
  ws->flags &= ~WS_PAUSED;
  aio__timer_arm(loop, &ws->timer.timer, aio__deadline(loop, LINGER));
}


/* The connection is over: closes the stream now (its readers wake).
** Frames sent in this round still go out if the kernel takes them at
** once (a handler that sends and returns). */
void aio__ws_end (WebSocket *ws) {
  Stream *s = ws->s;
  if (ws->flags & WS_ENDED) return;
  ws->flags |= WS_ENDED;
  aio__timer_cancel(ws->io.loop, &ws->timer.timer);
  link_remove(&ws->flush.link);
  if (aio_buf_avail(&ws->out) > 0 && !uv_is_closing(&s->h.handle))
    aio__stream_send(NULL, s, &ws->out, 0, 0);
  aio__buf_free(&ws->out);
  if (ws->ctx != NULL) {
    wslay_event_context_free(ws->ctx);
    ws->ctx = NULL;
  }
  aio__ws_drop_partial(ws);
  s->upper = NULL;
  aio__io_close(&s->io);
}


/* Fails the connection with close `code` (and reason `why`): sends the
** close frame unless one was sent, and closes the TCP connection. */
static void ws_fail (WebSocket *ws, uint16_t code, const char *why) {
  if (ws->fail == 0) ws->fail = code;
  if (ws->reason == NULL && why != NULL) ws->reason = strdup(why);
  if (!(ws->flags & (WS_SENT | WS_ENDED))) {
    aio__ws_frame_close(ws, code, why, why != NULL ? strlen(why) : 0);
    aio__ws_flush(ws);
  }
  aio__ws_finish(ws);
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
  aio__ws_flush(ws);
  if (ws->flags & (WS_RCVD | WS_ENDED) || ws->fail) {
    if (ws->fail) aio__ws_drop_partial(ws);
    if (ws->flags & WS_SENT) aio__ws_finish(ws);
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
    ws->last_rx = aio__now(ws->io.loop);
    if (ws->flags & (WS_RCVD | WS_FINISHING) || ws->fail)
      aio__buf_consume(&s->in.buf, aio_buf_avail(&s->in.buf), 0);
    else parse(ws);
  }
  if (s->rerr != 0) aio__ws_end(ws);
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
  aio__ws_end(aio_container_of(up, WebSocket, up));
}


/* The timer: the linger of the TCP close is over, or a heartbeat is due:
** sends a ping, or ends a connection whose pong did not come. */
static void on_timer (Loop *loop, TimerCb *tc) {
  WebSocket *ws = aio_container_of(tc, WebSocket, timer);
  uint64_t beat = (uint64_t)(ws->heartbeat * AIO_NS), now = aio__now(loop);
  if (ws->flags & WS_ENDED) return;
  if (ws->flags & WS_FINISHING) {
    aio__ws_end(ws);
    return;
  }
  if (ws->flags & (WS_SENT | WS_RCVD) || beat == 0) return;
  if (ws->flags & WS_PING_OUT) {
    if (ws->last_rx + beat / 2 <= now) {       /* silent since the ping */
      char why[64];
      ws->fail = 1006;
      snprintf(why, sizeof why, "no pong within %g s", ws->heartbeat / 2);
      if (ws->reason == NULL) ws->reason = strdup(why);
      aio__ws_end(ws);
      return;
    }
    ws->flags &= ~WS_PING_OUT;                  /* something came */
  }
  if (ws->last_rx + beat > now || (ws->flags & WS_PAUSED)) {
    aio__timer_arm(loop, &ws->timer.timer,
                   (ws->flags & WS_PAUSED ? now : ws->last_rx) + beat);
    return;
  }
  if (aio__ws_frame(ws, WSLAY_PING, NULL, 0) != 0) {
    ws_fail(ws, 1011, fail_reason(1011));
    return;
  }
  aio__ws_flush(ws);
  ws->flags |= WS_PING_OUT;
  aio__timer_arm(loop, &ws->timer.timer, now + beat / 2);
}


/*
** Starts the connection of `ws` (its stream, pool, limits, flags and
** heartbeat set): it reads its stream from now on, parses what is already
** buffered (the peer's first frames), and arms the heartbeat.
*/
void aio__ws_start (WebSocket *ws) {
  Stream *s = ws->s;
  Loop *loop = ws->io.loop;
  ws->cur = SIZE_MAX;
  ws->timer.timer.kind = AIO_TIMER_CALLBACK;
  ws->timer.fire = on_timer;
  ws->up.on_input = on_input;
  ws->up.on_close = on_close;
  link_init(&ws->flush.link);
  ws->flush.run = on_flush;
  ws->last_rx = aio__now(loop);
  s->upper = &ws->up;
  s->in.keep = 0;                 /* no buffer kept while idle */
  if (aio_buf_avail(&s->in.buf) == 0) aio__buf_free(&s->in.buf);
  if (aio__stream_read_start(s) < 0) aio__ws_end(ws);
  else if (aio_buf_avail(&s->in.buf) > 0 || s->rerr != 0) on_input(s, &ws->up);
  if (ws->heartbeat > 0 && !(ws->flags & WS_ENDED))
    aio__timer_arm(loop, &ws->timer.timer,
                   aio__deadline(loop, ws->heartbeat));
}


/* The end of a run: the idle contexts go (memory back to baseline). */
void aio__ws_reset (lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pool_key) == LUA_TUSERDATA)
    pool_drain((WsPool *)lua_touserdata(L, -1));
  lua_pop(L, 1);
}
