/*
** server_conn.c
** core.http_server: the listening server and its connections. Each
** connection reads in its own callback into the parser, queues complete
** request heads for the server's dispatcher task, which spawns a handler
** task per request, and moves on to the next request once the handler has
** finished and its response is complete. Timeouts, limits, graceful
** shutdown and takeover live here too.
** See LICENSE
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static const IoType conn_type;
const char aio__hs_conn_key = 0;

/* No request is being served (lingering connections are done). */
#define srv_idle(srv) ((srv)->nconns == (srv)->nlinger && \
                       (srv)->nhandlers == 0 && (srv)->npending == 0)
static void conn_read_on (HttpConn *c);
static void conn_read_off (HttpConn *c);
static void conn_parse_buffered (HttpConn *c);
static void srv_check_idle (HttpServer *srv);
static void srv_accept_held (HttpServer *srv);


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
static void conn_detach (HttpConn *c) {
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
    conn_read_off(c);
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
    else if (c->handler == NULL) conn_detach(c);
    srv_accept_held(srv);
    srv_check_idle(srv);
  }
}


/* The close a file send held up is done (its handle is closing). */
void aio__hs_close_done (HttpConn *c) {
  HttpServer *srv = c->srv;
  if (srv == NULL) return;
  srv->npending--;
  if (c->handler == NULL) conn_detach(c);
  srv_check_idle(srv);
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
    srv_check_idle(c->srv);
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


static void conn_read_off (HttpConn *c) {
  if (c->s.reading) {
    uv_read_stop(&c->s.h.stream);
    c->s.reading = 0;
  }
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
    conn_read_off(c);
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
  if (aio_buf_avail(in) >= HS_HIGH_WATER) conn_read_off(c);
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
  else if (srv != NULL && !c->closing_pending) conn_detach(c);
  if (srv != NULL) srv_check_idle(srv);
}


/* ---------------------------------------------------------------------
** Accepting
** ------------------------------------------------------------------- */

/* Accepts the connection libuv holds. */
static void accept_one (HttpServer *srv) {
  Loop *loop = srv->io.loop;
  HttpConn *c = (HttpConn *)aio__stream_new(loop, srv->scratch,
                                            sizeof(HttpConn), &conn_type);
  int rc;
  srv->held = 0;
  if (c == NULL) {
    srv->accept_err = UV_ENOMEM;
    return;
  }
  rc = uv_accept((uv_stream_t *)&srv->tcp, &c->s.h.stream);
  if (rc < 0) {
    srv->accept_err = rc;
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


/* Is `c` waiting for a request, with no byte of one yet? */
#define conn_idle(c) ((c)->state == HC_HEAD && (c)->hp.head == NULL && \
                      aio_buf_avail(&(c)->s.in.buf) == 0)

/* At max_connections with a connection waiting to be accepted: an idle
** keep-alive connection (one that was served and waits for another
** request) makes room for it. Returns 1 if one was closed. */
static int make_room (HttpServer *srv) {
  Link *l;
  for (l = srv->conns.next; l != &srv->conns; l = l->next) {
    HttpConn *c = aio_container_of(l, HttpConn, link);
    if (aio_conn_live(c) && c->seq > 0 && conn_idle(c)) {
      aio__hs_conn_close(c);           /* accepts the held one */
      return 1;
    }
  }
  return 0;
}


static void connection_cb (uv_stream_t *server, int status) {
  HttpServer *srv = (HttpServer *)server->data;
  if (status < 0) {
    srv->accept_err = status;
    return;
  }
  if (srv->closing ||
      (srv->lim.max_conns > 0 && srv->nconns + srv->ntaken >= srv->lim.max_conns)) {
    srv->held = 1;                      /* libuv stops accepting meanwhile */
    if (!srv->closing) make_room(srv);
    return;
  }
  accept_one(srv);
}


/* A connection closed: takes the one libuv holds if there is room now. */
static void srv_accept_held (HttpServer *srv) {
  if (srv->held && srv->listening && !srv->closing &&
      (srv->lim.max_conns == 0 ||
       srv->nconns + srv->ntaken < srv->lim.max_conns))
    accept_one(srv);
}


/* Wakes srv:wait_idle() once no HTTP connection, no handler and no
** pending close is left. */
static void srv_check_idle (HttpServer *srv) {
  if (srv_idle(srv))
    aio__notify_all(srv->io.loop, &srv->idle_waiters);
}


/* ---------------------------------------------------------------------
** The server object
** ------------------------------------------------------------------- */

#define toserver(L) ((HttpServer *)aio__io_self(L))
#define checkserver(L) ((HttpServer *)aio__io_check(L))


static void stop_listening (HttpServer *srv) {
  srv->listening = 0;
  srv->held = 0;
  if (srv->io.nopen > 0)               /* harmless once it is closing */
    aio__io_close_handle(&srv->io, (uv_handle_t *)&srv->tcp);
}


/* Closes every HTTP connection (their handlers are cancelled). */
static void close_conns (HttpServer *srv) {
  Link *l = srv->conns.next;
  while (l != &srv->conns) {
    HttpConn *c = aio_container_of(l, HttpConn, link);
    l = l->next;
    if (aio_conn_live(c) && c->state != HC_TAKEN) aio__hs_conn_close(c);
  }
}


/* The IoType close: stops listening, closes the HTTP connections, and
** lets go of the others (taken over, or closed with a handler still
** unwinding): they no longer refer to the server. */
static void srv_close (IoHandle *io) {
  HttpServer *srv = (HttpServer *)io;
  srv->closing = 1;
  stop_listening(srv);
  close_conns(srv);
  while (!link_empty(&srv->conns))
    conn_detach(aio_container_of(srv->conns.next, HttpConn, link));
  while (!link_empty(&srv->ready)) link_remove(srv->ready.next);
  srv->nhandlers = srv->npending = srv->nlinger = 0;
  aio__notify_all(io->loop, &srv->dispatcher);
  aio__notify_all(io->loop, &srv->idle_waiters);
}


static void srv_release (IoHandle *io) {
  aio__hp_pool_free(&((HttpServer *)io)->heads);
}


static const IoType server_type = {"server", srv_close, NULL, srv_release};


/* srv:dispatch(spawn, run, Request) (suspends until the server closes):
** the dispatcher task. For each complete request head: makes the request
** table (metatable Request) and spawns run(req) as its handler task. */
static int dispatch_body (lua_State *L, HttpServer *srv);

static int dispatch_k (lua_State *L, int status, lua_KContext ctx) {
  HttpServer *srv = toserver(L);
  Task *t = srv->io.loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  return dispatch_body(L, srv);
}


static int dispatch_body (lua_State *L, HttpServer *srv) {
  while (!link_empty(&srv->ready) && aio_io_live(&srv->io)) {
    HttpConn *c = aio_container_of(srv->ready.next, HttpConn, qlink);
    Task *t;
    link_remove(&c->qlink);
    if (!aio_conn_live(c) || c->state != HC_QUEUED) continue;
    c->seq++;
    lua_pushvalue(L, 2);                           /* ... spawn */
    lua_pushvalue(L, 3);                           /* ... spawn run */
    aio__hs_push_request(L, c, 4, 5);              /* ... spawn run req */
    lua_call(L, 2, 1);                             /* ... task */
    t = aio__totask(L, -1);
    lua_pop(L, 1);
    if (t == NULL) luaL_error(L, "spawn did not return a task");
    c->state = HC_ACTIVE;
    c->handler = t;
    link_push(&t->awaiters, &c->done.link);
    srv->nhandlers++;
    if (c->s.rerr != 0) conn_gone(c);
  }
  if (!aio_io_live(&srv->io)) return 0;
  return aio__io_wait(L, &srv->io, &srv->dispatcher, 0, 0, dispatch_k);
}


static int srv_dispatch (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  HttpServer *srv = toserver(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 4);
  aio__task_enter(L, loop, "server dispatch");
  aio__hs_push_keys(L);                     /* srv spawn run mt keys... */
  return dispatch_body(L, srv);
}


/* srv:shutdown(): the start of a graceful close. Stops accepting, closes
** the connections that wait for a request, and makes every response from
** now on close its connection. */
static int srv_shutdown (lua_State *L) {
  HttpServer *srv = toserver(L);
  Link *l;
  srv->closing = 1;
  stop_listening(srv);
  for (l = srv->conns.next; l != &srv->conns; ) {
    HttpConn *c = aio_container_of(l, HttpConn, link);
    l = l->next;
    if (aio_conn_live(c) && conn_idle(c)) aio__hs_conn_close(c);
  }
  srv_check_idle(srv);
  return 0;
}


/* srv:abort(): closes every HTTP connection, cancelling its handler. */
static int srv_abort (lua_State *L) {
  HttpServer *srv = toserver(L);
  srv->closing = 1;
  stop_listening(srv);
  close_conns(srv);
  return 0;
}


static int idle_k (lua_State *L, int status, lua_KContext ctx) {
  HttpServer *srv = toserver(L);
  Task *t = srv->io.loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  if (!aio_io_live(&srv->io) || srv_idle(srv)) return 0;
  return aio__io_wait(L, &srv->io, &srv->idle_waiters, 0, 0, idle_k);
}


/* srv:wait_idle() (suspends): until no HTTP connection and no handler
** task is left (or the server is closed). */
static int srv_wait_idle (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  HttpServer *srv = toserver(L);
  lua_settop(L, 1);
  aio__task_enter(L, loop, "server:wait");
  if (!aio_io_live(&srv->io) || srv_idle(srv)) return 0;
  return aio__io_wait(L, &srv->io, &srv->idle_waiters, 0, 0, idle_k);
}


/* srv:stats() -> {connections, requests, in_flight, accepted, taken_over,
** accept_errors} */
static int srv_stats (lua_State *L) {
  HttpServer *srv = toserver(L);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)(srv->nconns + srv->ntaken));
  lua_setfield(L, -2, "connections");
  lua_pushinteger(L, (lua_Integer)srv->nrequests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, (lua_Integer)srv->nhandlers);
  lua_setfield(L, -2, "in_flight");
  lua_pushinteger(L, (lua_Integer)srv->naccepted);
  lua_setfield(L, -2, "accepted");
  lua_pushinteger(L, (lua_Integer)srv->ntaken);
  lua_setfield(L, -2, "taken_over");
  return 1;
}


/* srv:address() -> host, port it listens on. */
static int srv_address (lua_State *L) {
  HttpServer *srv = checkserver(L);
  int rc = srv->listening ? aio__push_address(L, &srv->tcp, 0) : UV_EBADF;
  if (rc == 0) return 2;
  aio__uv_error_new(L, "io", rc, "cannot get the address of a server");
  return lua_error(L);
}


/* Reads a duration option (seconds) of table `opts` as ns; 0 if absent. */
static uint64_t opt_ns (lua_State *L, int opts, const char *k) {
  double d;
  lua_getfield(L, opts, k);
  d = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
  lua_pop(L, 1);
  if (!(d > 0)) return 0;
  if (d > 1e9) d = 1e9;
  return (uint64_t)(d * AIO_NS);
}


static lua_Integer opt_int (lua_State *L, int opts, const char *k,
                            lua_Integer dflt) {
  lua_Integer v;
  lua_getfield(L, opts, k);
  v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : dflt;
  lua_pop(L, 1);
  return v;
}


/*
** core.http_server.listen(ip, port, opts) -> server, listening on an
** address literal. opts (checked by the Lua layer): backlog, reuse_port,
** max_connections, max_header_size, max_body, header_timeout,
** idle_timeout, body_timeout. Raises `io` (code "EADDRINUSE", ...).
*/
static int hs_listen (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  struct sockaddr_storage ss;
  HttpServer *srv;
  lua_Integer backlog, maxhead;
  int reuse;
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  aio__check_running(L, loop, "aio.http.listen");
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
  if (aio__parse_address(host, (int)port, &ss) < 0)
    luaL_argerror(L, 1, "not an IP address");
  srv = (HttpServer *)aio__io_new(loop, sizeof(HttpServer), &server_type);
  if (srv == NULL) return aio__nomem(L, "listening");
  srv->io.passive = 1;      /* the dispatcher waits for new requests */
  link_init(&srv->conns);
  link_init(&srv->ready);
  link_init(&srv->dispatcher);
  link_init(&srv->idle_waiters);
  srv->scratch = aio__io_scratch(L);
  backlog = opt_int(L, 3, "backlog", 1024);
  maxhead = opt_int(L, 3, "max_header_size", 8192);
  if (maxhead < 256) maxhead = 256;
  if (maxhead > HS_HEAD_MAX) maxhead = HS_HEAD_MAX;
  srv->lim.max_head = (uint32_t)maxhead;
  srv->lim.max_body = (uint64_t)opt_int(L, 3, "max_body", 1024 * 1024);
  srv->lim.max_conns = (uint32_t)opt_int(L, 3, "max_connections", 0);
  srv->lim.header_ns = opt_ns(L, 3, "header_timeout");
  srv->lim.idle_ns = opt_ns(L, 3, "idle_timeout");
  srv->lim.body_ns = opt_ns(L, 3, "body_timeout");
  srv->lim.body_secs = (double)srv->lim.body_ns / AIO_NS;
  lua_getfield(L, 3, "reuse_port");
  reuse = lua_toboolean(L, -1);
  lua_pop(L, 1);
  aio__tcp_listen_on(L, &srv->io, &srv->tcp, &ss, (int)backlog, reuse,
                     connection_cb, HTTP_SERVER_MT);
  srv->listening = 1;
  return 1;
}


static int srv__tostring (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  HttpServer *srv = (HttpServer *)ref->io;
  if (srv != NULL && aio_io_live(&srv->io) && srv->listening &&
      aio__push_address(L, &srv->tcp, 0) == 0) {
    aio__push_hostport(L, lua_tostring(L, -2), (int)lua_tointeger(L, -1));
    lua_pushfstring(L, "aio.HttpServer (%s)", lua_tostring(L, -1));
  }
  else lua_pushliteral(L, "aio.HttpServer (closed)");
  return 1;
}


static const luaL_Reg server_methods[] = {
  {"dispatch", srv_dispatch},
  {"shutdown", srv_shutdown},
  {"abort", srv_abort},
  {"wait_idle", srv_wait_idle},
  {"stats", srv_stats},
  {"address", srv_address},
  {"close", aio__io_close_method},
  {NULL, NULL}
};

static const luaL_Reg server_meta[] = {
  {"__gc", aio__io__gc},
  {"__close", aio__io_close_method},
  {"__tostring", srv__tostring},
  {NULL, NULL}
};

static const AioClass server_class = {HTTP_SERVER_MT, server_methods,
                                      server_meta};


/* ---------------------------------------------------------------------
** Connections seen from Lua
** ------------------------------------------------------------------- */

/*
** The connection of a request: argument `idx` is its connection object,
** `seqidx` the request's number. Raises `usage` if that request is over
** (or the connection was taken over), `closed` if the connection is
** (aio__hs_conn_or_null returns NULL instead).
*/
/* The connection object at `idx`, or NULL. */
IoRef *aio__hs_test_conn (lua_State *L, int idx) {
  IoRef *ref = (IoRef *)lua_touserdata(L, idx);
  int ok;
  if (ref == NULL || !lua_getmetatable(L, idx)) return NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__hs_conn_key);
  ok = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return ok ? ref : NULL;
}


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
  IoRef *ref = (IoRef *)luaL_checkudata(L, 1, HTTP_CONN_MT);
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
  conn_read_off(c);
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
  if (srv != NULL) srv_check_idle(srv);
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


static const luaL_Reg hs_funcs[] = {
  {"listen", hs_listen},
  {"peer", hs_peer},
  {"takeover", hs_takeover},
  {NULL, NULL}
};


/* core.http_server = {listen, peer, takeover, request and response
** functions}; the classes. */
static void open_http_server (lua_State *L) {
  int core = lua_gettop(L);
  aio__class_open(L, core - 1, &server_class);
  lua_pop(L, 1);
  aio__class_open(L, core - 1, &conn_class);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &aio__hs_conn_key);
  lua_newtable(L);
  aio__setfuncs(L, core - 1, hs_funcs);
  aio__open_http_request(L, core - 1);
  aio__open_http_response(L, core - 1);
  aio__open_http_file(L, core - 1);
  lua_setfield(L, core, "http_server");
}


const AioModule aio__module_http_server = {"http_server", open_http_server,
                                           NULL};
