/*
** server_conn.c
** A connection of the HTTP server: it reads in its own callback into the
** parser, queues complete request heads for the server's dispatcher task
** (server.c), which spawns a handler task per request, and moves on to
** the next request once the handler has finished and its response is
** complete. Its timeouts, its closing (lingering after an error) and its
** takeover as a plain Stream live here too.
** See LICENSE
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static const IoType conn_type;
static const AioClass conn_class;

static void conn_read_on (HttpConn *c);
static void conn_parse_buffered (HttpConn *c);


/* ---------------------------------------------------------------------
** Timers: one TimerCb per connection (header, idle, drain or linger)
** ------------------------------------------------------------------- */

/* Arms the connection's timer `ns` from now (the loop's clock). Not from
** loop->now: that is the time the last poll returned, and this runs in
** libuv callbacks too, after a poll that may have slept for longer than
** `ns` (a deadline in the past would time the new connection out at
** once). */
static void timer_arm (HttpConn *c, uint64_t ns) {
  Loop *loop = c->s.io.loop;
  aio__timer_cancel(loop, &c->timer.timer);
  if (ns > 0) aio__timer_arm(loop, &c->timer.timer, aio__now(loop) + ns);
}


static void timer_stop (HttpConn *c) {
  aio__timer_cancel(c->s.io.loop, &c->timer.timer);
}


/* The connection's deadline passed: a head that took too long gets 408;
** an idle keep-alive connection, a drain or a linger just ends. */
static void conn_timer (Loop *loop, TimerCb *tc) {
  HttpConn *c = aio_container_of(tc, HttpConn, timer);
  (void)loop;
  if (c->state == HC_HEAD && c->hp.head != NULL)
    aio__hs_error_close(c, 408);
  else
    aio__hs_conn_close(c);
}


/* ---------------------------------------------------------------------
** Closing
** ------------------------------------------------------------------- */

/* The connection stops referring to its server. */
void aio__hs_conn_detach (HttpConn *c) {
  link_remove(&c->link);
  c->srv = NULL;
  c->hp.pool = NULL;
}


/* Closes connection `c` (any state); its handler task, if any, is
** cancelled. Never runs Lua. */
void aio__hs_conn_close (HttpConn *c) {
  aio__io_close(&c->s.io);
}


/* The IoType close: stops everything; a handler still running is
** cancelled (the connection stays in its server's list until the task
** ends, see handler_done). */
static void conn_close (IoHandle *io) {
  HttpConn *c = (HttpConn *)io;
  HttpServer *srv = c->srv;
  Loop *loop = io->loop;
  timer_stop(c);
  link_remove(&c->qlink);
  if (c->file != NULL) aio__hs_file_abandon(c);
  if (c->file != NULL) {           /* the handle closes in its callback */
    c->closing_pending = 1;
    aio__stream_read_stop(&c->s);
    aio__notify_all(loop, &c->s.readers);
  }
  else aio__stream_close(io);      /* as any stream (a taken-over one too) */
  aio__notify_all(loop, &c->writers);
  if (c->handler != NULL && c->state != HC_TAKEN)
    aio__task_cancel(loop->L, loop, c->handler, 0);
  if (c->anchor != 0) {
    aio__unanchor(loop->L, loop, c->anchor);
    c->anchor = 0;
  }
  if (srv != NULL) {
    if (c->counted) {
      c->counted = 0;
      if (c->state == HC_TAKEN) srv->ntaken--;
      else srv->nconns--;
      if (c->state == HC_LINGER) srv->nlinger--;
    }
    if (c->closing_pending) srv->npending++;
    else if (c->handler == NULL) aio__hs_conn_detach(c);
    aio__hs_accept_held(srv);
    aio__hs_check_idle(srv);
  }
}


/* The close a file send held up is done (its handle is closing). */
void aio__hs_close_done (HttpConn *c) {
  HttpServer *srv = c->srv;
  if (srv == NULL) return;
  srv->npending--;
  if (c->handler == NULL) aio__hs_conn_detach(c);
  aio__hs_check_idle(srv);
}


static void conn_release (IoHandle *io) {
  HttpConn *c = (HttpConn *)io;
  link_remove(&c->done.link);
  link_remove(&c->link);
  aio__hp_free(&c->hp);
  aio__buf_free(&c->body);
  aio__buf_free(&c->out);
  aio__buf_free(&c->wout);
  aio__stream_release(io);
}


static const IoType conn_type = {"connection", conn_close, NULL,
                                 conn_release};


/* After the final response is queued: shuts the sending side down once
** the output is written, and reads and drops what the client still sends
** for a while (HS_LINGER_NS), so that closing does not reset the
** connection under a response the client has not read yet. */
static void shutdown_cb (uv_shutdown_t *req, int status) {
  HttpConn *c = aio_container_of(req, HttpConn, sreq);
  if (status < 0 && aio_conn_live(c)) aio__hs_conn_close(c);
}


static void linger_shutdown (HttpConn *c) {
  if (c->shut || !aio_conn_live(c)) return;
  c->shut = 1;
  if (c->s.rerr != 0 ||
      uv_shutdown(&c->sreq, &c->s.h.stream, shutdown_cb) != 0)
    aio__hs_conn_close(c);
}


static void conn_linger (HttpConn *c) {
  if (!aio_conn_live(c) || c->state == HC_LINGER) return;
  c->state = HC_LINGER;
  if (c->srv != NULL && c->counted) {
    c->srv->nlinger++;
    aio__hs_check_idle(c->srv);
  }
  link_remove(&c->qlink);
  aio__buf_consume(&c->s.in.buf, aio_buf_avail(&c->s.in.buf), 0);
  timer_arm(c, HS_LINGER_NS);
  conn_read_on(c);
  if (aio_conn_live(c) && !c->writing && aio_buf_avail(&c->out) == 0)
    linger_shutdown(c);
}


/* Everything queued for the client was written. */
void aio__hs_write_done (HttpConn *c) {
  if (c->state == HC_LINGER) linger_shutdown(c);
  else if (c->file != NULL) aio__hs_file_kick(c);
}


/* Answers `status` (a request that cannot be served: 400, 408, 413,
** 431, ...) and closes the connection once it is written. */
void aio__hs_error_close (HttpConn *c, int status) {
  if (!aio_conn_live(c)) return;
  c->keep = 0;
  if (c->resp == HR_NONE && !c->broken && aio__hs_send_error(c, status) == 0)
    conn_linger(c);
  else
    aio__hs_conn_close(c);
}


/* ---------------------------------------------------------------------
** Reading
** ------------------------------------------------------------------- */

static void alloc_cb (uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  HttpConn *c = (HttpConn *)h->data;
  (void)suggested;
  *buf = uv_buf_init(c->s.scratch, AIO_READ_SIZE);
}


/* The client is gone (EOF or an error) while a request is being served:
** its handler is cancelled; a head waiting for the dispatcher is dropped. */
static void conn_gone (HttpConn *c) {
  c->broken = 1;
  aio__notify_all(c->s.io.loop, &c->s.readers);
  aio__notify_all(c->s.io.loop, &c->writers);
  if (c->state == HC_QUEUED) aio__hs_conn_close(c);
  else if (c->handler != NULL)
    aio__task_cancel(c->s.io.loop->L, c->s.io.loop, c->handler, 0);
}


/*
** Feeds request heads from `data` while the connection waits for one;
** returns the bytes used (the rest is the body or the next request, for
** later). Moves the connection on: to HC_QUEUED with a complete head, or
** closing with an error response.
*/
static size_t conn_parse (HttpConn *c, const char *data, size_t len) {
  size_t used = 0, n;
  HttpServer *srv = c->srv;
  while (c->state == HC_HEAD && aio_conn_live(c)) {
    int rc;
    if (c->hp.phase == HP_DONE) aio__hp_next(&c->hp);
    c->hp.body = NULL;
    rc = aio__hp_feed(&c->hp, data + used, len - used, &n);
    used += n;
    if (rc == HP_ERROR) {
      aio__hs_error_close(c, c->hp.status);
      return len;
    }
    if (rc == HP_MORE) break;
    if (rc == HP_DONE) continue;       /* the end of a bodyless request */
    /* HP_HEAD: a request head is complete */
    c->body_done = 0;
    if (!aio__hp_has_body(&c->hp)) {   /* take its end now */
      aio__hp_resume(&c->hp);
      rc = aio__hp_feed(&c->hp, data + used, len - used, &n);
      used += n;
      if (rc == HP_ERROR) {
        aio__hs_error_close(c, c->hp.status);
        return len;
      }
      c->body_done = rc == HP_DONE;
    }
    timer_stop(c);
    c->state = HC_QUEUED;
    c->resp = HR_NONE;
    c->continued = 0;
    c->must_close = 0;
    c->drained = 0;
    link_push(&srv->ready, &c->qlink);
    aio__notify_all(c->s.io.loop, &srv->dispatcher);
  }
  return used;
}


/* Parses what the input buffer holds, in states that consume it. */
static void conn_parse_buffered (HttpConn *c) {
  Buf *in = &c->s.in.buf;
  size_t n;
  if (aio_buf_avail(in) == 0) return;
  n = conn_parse(c, aio_buf_head(in), aio_buf_avail(in));
  if (aio_conn_live(c)) aio__buf_consume(in, n, c->s.in.keep);
}


/* In HC_DRAIN: skips body bytes; at the end of the message the connection
** goes back to reading heads. Returns 0 while more input is needed. */
static int conn_drain (HttpConn *c) {
  Buf *in = &c->s.in.buf;
  size_t n;
  int rc;
  c->hp.body = NULL;
  rc = aio__hp_feed(&c->hp, aio_buf_head(in), aio_buf_avail(in), &n);
  aio__buf_consume(in, n, c->s.in.keep);
  c->drained += n;
  if (rc == HP_ERROR || c->drained > HS_DRAIN_MAX + 64) {
    aio__hs_conn_close(c);
    return 1;
  }
  if (rc != HP_DONE) return 0;
  aio__hp_next(&c->hp);
  c->state = HC_HEAD;
  if (c->srv == NULL || c->srv->closing) {
    aio__hs_conn_close(c);
    return 1;
  }
  timer_arm(c, c->srv->lim.idle_ns);
  return 1;
}


static void read_cb (uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  HttpConn *c = (HttpConn *)h->data;
  Buf *in = &c->s.in.buf;
  if (nread == 0) return;
  if (nread < 0) {
    c->s.rerr = (int)nread;
    aio__stream_read_stop(&c->s);
    switch (c->state) {
      case HC_QUEUED: case HC_ACTIVE: conn_gone(c); break;
      default: aio__hs_conn_close(c); break;
    }
    return;
  }
  switch (c->state) {
    case HC_HEAD: {
      int fresh = c->hp.head == NULL;
      if (aio_buf_avail(in) == 0) {      /* parse straight from the read */
        size_t n = conn_parse(c, buf->base, (size_t)nread);
        if (n < (size_t)nread && aio_conn_live(c) &&
            !aio__buf_append(in, buf->base + n, (size_t)nread - n))
          aio__hs_conn_close(c);
      }
      else if (!aio__buf_append(in, buf->base, (size_t)nread))
        aio__hs_conn_close(c);
      else conn_parse_buffered(c);
      if (!aio_conn_live(c)) return;
      if (c->state == HC_HEAD && c->hp.head != NULL && fresh && c->srv)
        timer_arm(c, c->srv->lim.header_ns);   /* a head has begun */
      break;
    }
    case HC_LINGER:
      return;                            /* dropped */
    default:
      if (!aio__buf_append(in, buf->base, (size_t)nread)) {
        aio__hs_conn_close(c);
        return;
      }
      if (c->state == HC_DRAIN) {
        if (conn_drain(c)) {
          conn_parse_buffered(c);
          if (!aio_conn_live(c)) return;
        }
      }
      else aio__notify_all(c->s.io.loop, &c->s.readers);
      break;
  }
  if (aio_buf_avail(in) >= HS_HIGH_WATER) aio__stream_read_stop(&c->s);
}


/* Reading is on unless the input buffer is full (backpressure) or the
** connection is done with reading. */
static void conn_read_on (HttpConn *c) {
  if (c->s.reading || !aio_conn_live(c) || c->s.rerr != 0 ||
      c->state == HC_TAKEN)
    return;
  if (c->state != HC_LINGER && aio_buf_avail(&c->s.in.buf) >= HS_HIGH_WATER)
    return;
  if (uv_read_start(&c->s.h.stream, alloc_cb, read_cb) == 0)
    c->s.reading = 1;
  else
    aio__hs_conn_close(c);
}


void aio__hs_read_on (HttpConn *c) { conn_read_on(c); }


/* ---------------------------------------------------------------------
** The end of a request
** ------------------------------------------------------------------- */

/*
** The handler task has finished and the response is complete: the
** connection goes on with the next request (skipping what is left of the
** body), or closes.
*/
void aio__hs_request_end (HttpConn *c) {
  HttpServer *srv = c->srv;
  if (!aio_conn_live(c) || c->state == HC_TAKEN) return;
  if (c->resp != HR_DONE || c->broken) {
    aio__hs_conn_close(c);
    return;
  }
  if (srv != NULL) srv->nrequests++;
  if (!c->keep || srv == NULL || srv->closing) {
    conn_linger(c);
    return;
  }
  c->resp = HR_NONE;                   /* what comes next is a new request */
  if (c->body_done) {
    aio__hp_next(&c->hp);              /* the head goes back to the pool */
    c->state = HC_HEAD;
    timer_arm(c, srv->lim.idle_ns);
    if (srv->held && aio_buf_avail(&c->s.in.buf) == 0) {
      aio__hs_conn_close(c);           /* room for a waiting connection */
      return;
    }
  }
  else {
    aio__hp_resume(&c->hp);
    c->hp.max_body = 0;
    c->state = HC_DRAIN;
    timer_arm(c, srv->lim.body_ns ? srv->lim.body_ns : srv->lim.idle_ns);
    if (!conn_drain(c)) {
      conn_read_on(c);
      return;
    }
  }
  if (!aio_conn_live(c)) return;
  conn_parse_buffered(c);
  if (aio_conn_live(c) && c->state == HC_HEAD && c->hp.head != NULL &&
      c->srv != NULL)
    timer_arm(c, c->srv->lim.header_ns);   /* the next head has begun */
  conn_read_on(c);
}


/* The handler task of the connection finished (a Waiter in the task's
** awaiters: runs from the scheduler, never runs Lua). */
static void handler_done (Loop *loop, Waiter *w) {
  HttpConn *c = aio_container_of(w, HttpConn, done);
  HttpServer *srv = c->srv;
  (void)loop;
  c->handler = NULL;
  if (srv != NULL) srv->nhandlers--;
  if (aio_conn_live(c)) aio__hs_request_end(c);
  else if (srv != NULL && !c->closing_pending) aio__hs_conn_detach(c);
  if (srv != NULL) aio__hs_check_idle(srv);
}


/* The handler task `t` of the request queued on `c` has been spawned. */
void aio__hs_conn_dispatched (HttpConn *c, Task *t) {
  c->state = HC_ACTIVE;
  c->handler = t;
  link_push(&t->awaiters, &c->done.link);
  c->srv->nhandlers++;
  if (c->s.rerr != 0) conn_gone(c);
}


/* Accepts the connection libuv holds for `srv` (dropped if uv_accept
** fails, still held if there is no memory for it). */
void aio__hs_conn_accept (HttpServer *srv) {
  Loop *loop = srv->io.loop;
  HttpConn *c = (HttpConn *)aio__stream_new(loop, srv->scratch,
                                            sizeof(HttpConn), &conn_type);
  int rc;
  if (c == NULL) {                     /* libuv keeps holding it (and stops */
    srv->held = 1;                     /* accepting): retried at the next close */
    return;
  }
  srv->held = 0;
  rc = uv_accept((uv_stream_t *)&srv->tcp, &c->s.h.stream);
  if (rc < 0) {
    aio__io_close(&c->s.io);
    return;
  }
  uv_tcp_nodelay(&c->s.h.tcp, 1);
  c->s.in.keep = 0;                    /* an idle connection keeps no buffer */
  c->srv = srv;
  link_init(&c->qlink);
  link_init(&c->writers);
  link_init(&c->done.link);
  c->done.notify = handler_done;
  c->timer.timer.kind = AIO_TIMER_CALLBACK;
  c->timer.fire = conn_timer;
  aio__hp_init(&c->hp, srv->lim.max_head, &srv->heads);
  c->state = HC_HEAD;
  c->counted = 1;
  link_push(&srv->conns, &c->link);
  srv->nconns++;
  srv->naccepted++;
  timer_arm(c, srv->lim.header_ns);
  conn_read_on(c);
}


/* ---------------------------------------------------------------------
** Connections seen from Lua
** ------------------------------------------------------------------- */

/* The connection object at `idx` (not one taken over), or NULL. */
IoRef *aio__hs_test_conn (lua_State *L, int idx) {
  return (IoRef *)aio__toobj(L, idx, &conn_class);
}


/*
** The connection of a request: argument `idx` is its connection object,
** `seqidx` the request's number. Raises `usage` if that request is over
** (or the connection was taken over), `closed` if the connection is
** (aio__hs_conn_or_null returns NULL instead).
*/
HttpConn *aio__hs_conn_or_null (lua_State *L, int idx, int seqidx) {
  IoRef *ref = aio__hs_test_conn(L, idx);
  HttpConn *c;
  if (ref == NULL) {
    if (luaL_testudata(L, idx, "aio.Stream") != NULL)
      aio__usage(L, "the connection was taken over");
    luaL_typeerror(L, idx, "request");
  }
  c = (HttpConn *)ref->io;
  if (c == NULL || c->seq != (uint32_t)luaL_checkinteger(L, seqidx) ||
      (c->state != HC_ACTIVE && aio_conn_live(c)))
    aio__usage(L, "the request is finished (its handler has returned)");
  return aio_conn_live(c) ? c : NULL;
}


HttpConn *aio__hs_conn (lua_State *L, int idx, int seqidx) {
  HttpConn *c = aio__hs_conn_or_null(L, idx, seqidx);
  if (c == NULL) aio__error(L, "closed", "the client closed the connection");
  return c;
}


/* core.http_server.peer(conn) -> host, port of the client. */
static int hs_peer (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkobj(L, 1, &conn_class);
  HttpConn *c = (HttpConn *)ref->io;
  if (c == NULL || !aio_conn_live(c) ||
      aio__push_address(L, &c->s.h.tcp, 1) != 0) {
    lua_pushnil(L);
    return 1;
  }
  return 2;
}


/* Hands connection `c` over as a plain Stream (see server.h). */
void aio__hs_takeover (HttpConn *c) {
  HttpServer *srv = c->srv;
  aio__stream_read_stop(&c->s);
  timer_stop(c);
  aio__hp_free(&c->hp);
  aio__buf_free(&c->body);
  if (c->handler != NULL) {
    link_remove(&c->done.link);
    c->handler = NULL;
    if (srv != NULL) srv->nhandlers--;
  }
  if (srv != NULL && c->counted) {
    srv->nconns--;
    srv->ntaken++;
  }
  c->state = HC_TAKEN;
  c->resp = HR_DONE;
  c->s.in.keep = AIO_READ_SIZE;
  if (srv != NULL) aio__hs_check_idle(srv);
}


/* core.http_server.takeover(conn, seq) -> the connection object, now an
** aio.Stream. */
static int hs_takeover (lua_State *L) {
  HttpConn *c = aio__hs_conn(L, 1, 2);
  if (c->file != NULL || c->resp == HR_STREAM)
    aio__usage(L, "cannot take over a connection while a response is sent");
  aio__hs_takeover(c);
  lua_settop(L, 1);
  if (aio__push_address(L, &c->s.h.tcp, 1) == 0) {
    aio__push_hostport(L, lua_tostring(L, -2), (int)lua_tointeger(L, -1));
    lua_setiuservalue(L, 1, 1);
    lua_settop(L, 1);
  }
  luaL_setmetatable(L, "aio.Stream");
  return 1;
}


static int conn__tostring (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  HttpConn *c = (HttpConn *)ref->io;
  lua_pushfstring(L, "aio.HttpConnection (%s)",
                  c != NULL && aio_conn_live(c) ? "open" : "closed");
  return 1;
}


static const luaL_Reg conn_meta[] = {
  {"__gc", aio__io__gc},
  {"__tostring", conn__tostring},
  {NULL, NULL}
};

static const AioClass conn_class = {HTTP_CONN_MT, NULL, conn_meta};


static const luaL_Reg conn_funcs[] = {
  {"peer", hs_peer},
  {"takeover", hs_takeover},
  {NULL, NULL}
};


/* Opens the connection class and adds peer and takeover to the table on
** top; `loopidx` is the index of the loop userdata. */
void aio__open_http_conn (lua_State *L, int loopidx) {
  aio__class_open(L, loopidx, &conn_class);
  lua_pop(L, 1);
  aio__setfuncs(L, loopidx, conn_funcs);
}
