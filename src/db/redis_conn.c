/*
** redis_conn.c
** A connection to a Redis server (aio.redis.Conn): connecting over TCP or
** a unix socket, one write per scheduler round for every command queued in
** it, and a read callback that feeds hiredis's reader and completes the
** waiting calls in order. Commands themselves are in redis_call.c.
** See LICENSE
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

#define CONN_MT "aio.redis.Conn"
#define KEEP_BUF 65536     /* output capacity kept between rounds */
#define MAX_SPARE 256      /* calls kept for reuse */
#define MSG_PAUSE 4096     /* queued messages that pause reading */

/* ---------------------------------------------------------------------
** Calls: allocated from and returned to the connection
** ------------------------------------------------------------------- */

static void call_drop_replies (RedisCall *call) {
  uint32_t i;
  if (call->one != NULL) freeReplyObject(call->one);
  call->one = NULL;
  if (call->many != NULL) {
    for (i = 0; i < call->got; i++) freeReplyObject(call->many[i]);
    free(call->many);
    call->many = NULL;
  }
}


/*
** Takes a call expecting `want` (>= 1) replies and appends it to the FIFO:
** its replies are the next `want` ones after those of the calls before
** it. NULL if out of memory. Never raises.
*/
RedisCall *aio__redis_call_new (RedisConn *c, uint32_t want) {
  RedisCall *call;
  if (!link_empty(&c->spare)) {
    call = aio_container_of(c->spare.next, RedisCall, link);
    link_remove(&call->link);
    c->nspare--;
  }
  else {
    call = (RedisCall *)calloc(1, sizeof *call);
    if (call == NULL) return NULL;
    link_init(&call->link);
    link_init(&call->waiters);
  }
  if (want > 1) {
    call->many = (redisReply **)malloc(want * sizeof *call->many);
    if (call->many == NULL) {
      link_push(&c->spare, &call->link);
      c->nspare++;
      return NULL;
    }
  }
  call->want = want;
  call->got = 0;
  call->status = 0;
  call->state = CALL_QUEUED;
  link_push(&c->fifo, &call->link);
  c->nfifo++;
  return call;
}


/* Gives back a call that is not in the FIFO and that no task waits for
** (its replies are freed). */
void aio__redis_call_free (RedisConn *c, RedisCall *call) {
  call_drop_replies(call);
  link_remove(&call->link);
  if (c->nspare >= MAX_SPARE) {
    free(call);
    return;
  }
  call->state = CALL_SPARE;
  link_push(&c->spare, &call->link);
  c->nspare++;
}


/* The call at the head of the FIFO got all its replies (or failed with
** `status`): it leaves the FIFO and its task, if any, is woken. */
static void call_finish (RedisConn *c, RedisCall *call, int status) {
  link_remove(&call->link);
  c->nfifo--;
  if (call->state == CALL_ABANDONED) {
    aio__redis_call_free(c, call);
    return;
  }
  call->status = status;
  call->state = CALL_DONE;
  link_push(&c->done, &call->link);
  aio__notify_all(c->io.loop, &call->waiters);
}


static void free_list (Link *list) {
  while (!link_empty(list)) {
    RedisCall *call = aio_container_of(list->next, RedisCall, link);
    link_remove(&call->link);
    call_drop_replies(call);
    free(call);
  }
}


/* ---------------------------------------------------------------------
** Closing and failing
** ------------------------------------------------------------------- */

static void stop_reading (RedisConn *c) {
  if (c->reading) {
    uv_read_stop(aio_redis_stream(c));
    c->reading = 0;
  }
}


/* Closes the connection: the calls in flight fail (with c->err if it was
** lost, else `closed`), tasks waiting for messages wake. What was not
** written yet is dropped. */
static void conn_close (IoHandle *io) {
  RedisConn *c = (RedisConn *)io;
  int status = c->err != 0 ? c->err : AIO_REDIS_CLOSED;
  stop_reading(c);
  link_remove(&c->flush.link);
  aio__io_close_handle(io, aio_redis_handle(c));
  while (!link_empty(&c->fifo))
    call_finish(c, aio_container_of(c->fifo.next, RedisCall, link), status);
  aio__notify_all(io->loop, &c->msg_waiters);
}


static void conn_release (IoHandle *io) {
  RedisConn *c = (RedisConn *)io;
  uint32_t i;
  if (c->reader != NULL) redisReaderFree(c->reader);
  aio__buf_free(&c->out);
  aio__buf_free(&c->wbuf);
  free_list(&c->fifo);
  free_list(&c->done);
  free_list(&c->spare);
  for (i = 0; i < c->mcount; i++)
    freeReplyObject(c->msgs[(c->mhead + i) % c->mcap]);
  free(c->msgs);
}


static const IoType conn_type = {"redis connection", conn_close, NULL,
                                 conn_release};


/* The connection is lost (`err`: UV_EOF, a socket error, UV_EPROTO for a
** reply the reader or the FIFO cannot accept): it closes, and its calls
** in flight fail with `io`. */
static void conn_fail (RedisConn *c, int err) {
  if (c->io.closing) return;
  c->err = err;
  aio__io_close(&c->io);
}


/* ---------------------------------------------------------------------
** Writing: one deferred flush per round
** ------------------------------------------------------------------- */

static void flush_run (Loop *loop, Deferred *d);

static void write_cb (uv_write_t *w, int status) {
  RedisConn *c = aio_container_of(w, RedisConn, wreq);
  c->writing = 0;
  if (status < 0) {
    conn_fail(c, status);
    return;
  }
  aio__buf_consume(&c->wbuf, aio_buf_avail(&c->wbuf), KEEP_BUF);
  if (aio_buf_avail(&c->out) > 0) flush_run(c->io.loop, &c->flush);
}


/*
** Writes what the round's commands appended to `out`: at once if the
** kernel takes it all (the common case), else the rest with uv_write from
** `wbuf`, while later commands collect in `out` for the next flush.
*/
static void flush_run (Loop *loop, Deferred *d) {
  RedisConn *c = aio_container_of(d, RedisConn, flush);
  uv_buf_t b;
  Buf tmp;
  int rc;
  (void)loop;
  if (c->io.closing || c->writing || aio_buf_avail(&c->out) == 0) return;
  b = uv_buf_init(aio_buf_head(&c->out), (unsigned)aio_buf_avail(&c->out));
  rc = uv_try_write(aio_redis_stream(c), &b, 1);
  if (rc == UV_EAGAIN) rc = 0;
  if (rc < 0) {
    conn_fail(c, rc);
    return;
  }
  aio__buf_consume(&c->out, (size_t)rc, KEEP_BUF);
  if (aio_buf_avail(&c->out) == 0) return;
  tmp = c->wbuf;                       /* wbuf is empty: swap the buffers */
  c->wbuf = c->out;
  c->out = tmp;
  b = uv_buf_init(aio_buf_head(&c->wbuf), (unsigned)aio_buf_avail(&c->wbuf));
  rc = uv_write(&c->wreq, aio_redis_stream(c), &b, 1, write_cb);
  if (rc < 0) {
    conn_fail(c, rc);
    return;
  }
  c->writing = 1;
}


/* ---------------------------------------------------------------------
** Reading: replies to calls, messages to the queue
** ------------------------------------------------------------------- */

static void alloc_cb (uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  RedisConn *c = (RedisConn *)h->data;
  (void)suggested;
  *buf = uv_buf_init(c->scratch, AIO_READ_SIZE);
}


static void read_cb (uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);

static void start_reading (RedisConn *c) {
  int rc;
  if (c->reading || c->io.closing) return;
  rc = uv_read_start(aio_redis_stream(c), alloc_cb, read_cb);
  if (rc < 0) conn_fail(c, rc);
  else c->reading = 1;
}


/* Is `r` a pub/sub message (not the reply to a command)? */
static int is_message (const redisReply *r) {
  const redisReply *k;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) return 0;
  k = r->element[0];
  if (k->type != REDIS_REPLY_STRING) return 0;
  if (k->len == 7) return memcmp(k->str, "message", 7) == 0;
  return k->len == 8 && (memcmp(k->str, "pmessage", 8) == 0 ||
                         memcmp(k->str, "smessage", 8) == 0);
}


/* Queues a pub/sub message and wakes the readers; 0 if out of memory. */
static int queue_message (RedisConn *c, redisReply *r) {
  if (c->mcount == c->mcap) {
    uint32_t i, cap = c->mcap ? c->mcap * 2 : 64;
    redisReply **m = (redisReply **)malloc(cap * sizeof *m);
    if (m == NULL) return 0;
    for (i = 0; i < c->mcount; i++) m[i] = c->msgs[(c->mhead + i) % c->mcap];
    free(c->msgs);
    c->msgs = m;
    c->mcap = cap;
    c->mhead = 0;
  }
  c->msgs[(c->mhead + c->mcount) % c->mcap] = r;
  c->mcount++;
  if (c->mcount >= MSG_PAUSE && c->nfifo == 0) stop_reading(c);
  aio__notify_all(c->io.loop, &c->msg_waiters);
  return 1;
}


/* Takes the oldest queued message into *r (1), or says there is none (0).
** Reading resumes once the queue is below its bound again. */
int aio__redis_message_take (RedisConn *c, redisReply **r) {
  if (c->mcount == 0) return 0;
  *r = c->msgs[c->mhead];
  c->mhead = (c->mhead + 1) % c->mcap;
  c->mcount--;
  if (c->mcount < MSG_PAUSE) start_reading(c);
  return 1;
}


/* Fails the connection for a protocol error described by `msg`. */
static void protocol_fail (RedisConn *c, const char *msg) {
  snprintf(c->errmsg, sizeof c->errmsg, "%s", msg);
  conn_fail(c, UV_EPROTO);
}


/* Hands reply `r` to the call at the head of the FIFO (or the message
** queue). Returns 0 if the connection failed. */
static int dispatch (RedisConn *c, redisReply *r) {
  RedisCall *call;
  if (c->pubsub && is_message(r)) {
    if (queue_message(c, r)) return 1;
    freeReplyObject(r);
    conn_fail(c, UV_ENOMEM);
    return 0;
  }
  if (link_empty(&c->fifo)) {
    freeReplyObject(r);
    protocol_fail(c, "the server sent a reply to no command");
    return 0;
  }
  call = aio_container_of(c->fifo.next, RedisCall, link);
  if (call->want == 1) call->one = r;   /* a tombstone's too: freed later */
  else call->many[call->got] = r;
  if (++call->got == call->want) call_finish(c, call, 0);
  return 1;
}


static void read_cb (uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  RedisConn *c = (RedisConn *)h->data;
  if (nread == 0) return;
  if (nread < 0) {
    conn_fail(c, (int)nread);
    return;
  }
  if (redisReaderFeed(c->reader, buf->base, (size_t)nread) != REDIS_OK) {
    conn_fail(c, UV_ENOMEM);
    return;
  }
  for (;;) {
    void *r = NULL;
    if (redisReaderGetReply(c->reader, &r) != REDIS_OK) {
      protocol_fail(c, c->reader->errstr);
      return;
    }
    if (r == NULL || !dispatch(c, (redisReply *)r)) return;
  }
}


/* A call was appended to the FIFO and its command to `out`: the flush is
** queued for the end of the round, and reading is on. */
void aio__redis_sent (RedisConn *c) {
  aio__defer(c->io.loop, &c->flush);
  start_reading(c);
}


/* ---------------------------------------------------------------------
** The object and its errors
** ------------------------------------------------------------------- */

/* Pushes the connection's name ("host:port", "unix:/path"); the receiver
** is at index 1. */
static const char *conn_name (lua_State *L) {
  if (lua_getiuservalue(L, 1, 1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "redis");
  }
  return lua_tostring(L, -1);
}


/*
** Raises the `io` error of a lost connection (the receiver is at index 1):
** code ("EOF", "ECONNRESET", "EPROTO", ...) and address.
*/
int aio__redis_lost_error (lua_State *L, RedisConn *c) {
  const char *name = conn_name(L);
  if (c->err == UV_EOF)
    aio__error_new(L, "io", "connection to %s lost: the server closed it",
                   name);
  else if (c->err == UV_EPROTO)
    aio__error_new(L, "io", "connection to %s lost: protocol error: %s",
                   name, c->errmsg);
  else
    aio__uv_error_new(L, "io", c->err, "connection to %s lost", name);
  aio__setfield_str(L, "code", uv_err_name(c->err));
  aio__setfield_str(L, "address", name);
  return lua_error(L);
}


/* The receiver (argument 1), open, closed or lost. */
RedisConn *aio__redis_self (lua_State *L) {
  return (RedisConn *)aio__io_self(L);
}


/* The receiver, which must be usable: raises `io` if it was lost, `closed`
** if it was closed. */
RedisConn *aio__redis_check (lua_State *L) {
  RedisConn *c = aio__redis_self(L);
  if (c->err != 0) aio__redis_lost_error(L, c);
  if (c->io.closing) aio__closed_error(L, c->io.type->what);
  return c;
}


/* conn:alive() -> true while it is open (the fast check before a command). */
static int conn_alive (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  lua_pushboolean(L, ref->io != NULL && !ref->io->closing);
  return 1;
}


/* conn:state() -> "open", "lost" (the server or the network dropped it)
** or "closed" (by close() or the end of the run). */
static int conn_state (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  RedisConn *c = (RedisConn *)ref->io;
  if (c == NULL) lua_pushliteral(L, "closed");
  else if (c->err != 0) lua_pushliteral(L, "lost");
  else lua_pushstring(L, c->io.closing ? "closed" : "open");
  return 1;
}


/* conn:set_timeout(seconds): how long a call waits for its replies (0: no
** limit); raises `timeout` beyond. */
static int conn_set_timeout (lua_State *L) {
  RedisConn *c = aio__redis_self(L);
  c->timeout = aio__checkduration(L, 2);
  return 0;
}


/* conn:set_pubsub(): from now on, pub/sub messages go to the message
** queue (conn:message()) instead of answering calls. Waiting for a
** message is waiting for new work, not on I/O: a virtual clock may jump
** (replies to its SUBSCRIBE and other calls still count). */
static int conn_set_pubsub (lua_State *L) {
  RedisConn *c = aio__redis_self(L);
  c->pubsub = 1;
  c->io.passive = 1;
  return 0;
}


/* conn:pending() -> calls waiting for replies (abandoned ones included). */
static int conn_pending (lua_State *L) {
  lua_pushinteger(L, aio__redis_self(L)->nfifo);
  return 1;
}


static int conn__tostring (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  const char *name = conn_name(L);
  const char *state = ref->io == NULL || ref->io->closing ? ", closed" : "";
  lua_pushfstring(L, "aio.redis.Conn (%s%s)", name, state);
  return 1;
}


/* ---------------------------------------------------------------------
** Connecting
** ------------------------------------------------------------------- */

/* Stack: (host, port, name, conn, req). */
static int connect_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  RedisConn *c = (RedisConn *)ctx;
  ConnectReq *q = (ConnectReq *)lua_touserdata(L, 5);
  Task *t = loop->current;
  (void)status;
  if (t->wake != AIO_WAKE_OK) {
    aio__io_close(&c->io);              /* cancels the connect */
    return aio__wake_raise(L, t);
  }
  if (q->r.status < 0 || c->io.closing) {
    aio__io_close(&c->io);
    return aio__connect_error(L, q->r.status < 0 ? q->r.status : UV_ECANCELED,
                              1);
  }
  if (c->h.tcp.type == UV_TCP) uv_tcp_nodelay(&c->h.tcp, 1);
  c->connected = 1;
  start_reading(c);
  lua_settop(L, 4);
  return 1;
}


/* Allocates a connection (an orphan until pushed) with an initialised TCP
** or pipe handle; NULL if out of memory. */
static RedisConn *conn_alloc (Loop *loop, char *scratch, int is_unix) {
  RedisConn *c = (RedisConn *)aio__io_new(loop, sizeof(RedisConn),
                                          &conn_type);
  int rc;
  if (c == NULL) return NULL;
  c->reader = redisReaderCreate();
  if (c->reader == NULL) {
    free(c);
    return NULL;
  }
  c->reader->maxbuf = AIO_READ_SIZE;
  rc = is_unix ? uv_pipe_init(&loop->uv, &c->h.pipe, 0)
               : uv_tcp_init(&loop->uv, &c->h.tcp);
  if (rc != 0) {
    redisReaderFree(c->reader);
    free(c);
    return NULL;
  }
  aio__io_opened(&c->io, aio_redis_handle(c));
  c->scratch = scratch;
  c->flush.run = flush_run;
  link_init(&c->flush.link);
  link_init(&c->fifo);
  link_init(&c->done);
  link_init(&c->spare);
  link_init(&c->msg_waiters);
  return c;
}


/*
** core.redis.connect(ip, port, [name]) or core.redis.connect(path, nil,
** [name]) (suspends) -> Conn: a TCP connection to an address literal
** (aio.redis resolves names first), or a unix socket connection. `name`
** (default "ip:port" or "unix:path") is used in messages. Raises
** `connect` with code, address and port.
*/
static int redis_connect (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  const char *host = aio__checkcstring(L, 1, "host");
  int is_unix = lua_isnoneornil(L, 2);
  struct sockaddr_storage ss;
  RedisConn *c;
  ConnectReq *q;
  Task *t;
  int rc = 0;
  if (!is_unix) {
    lua_Integer port = luaL_checkinteger(L, 2);
    luaL_argcheck(L, port >= 1 && port <= 65535, 2, "port out of range");
  }
  luaL_optstring(L, 3, NULL);
  lua_settop(L, 3);
  t = aio__task_enter(L, loop, "aio.redis.connect");
  if (!is_unix) {
    rc = aio__parse_address(host, (int)lua_tointeger(L, 2), &ss);
    if (rc < 0) return aio__connect_error(L, rc, 1);
  }
  c = conn_alloc(loop, aio__io_scratch(L), is_unix);
  if (c == NULL) return aio__nomem(L, "connecting");
  aio__io_push(L, &c->io, CONN_MT, 1);         /* host port name conn */
  if (!lua_isnil(L, 3)) lua_pushvalue(L, 3);
  else if (is_unix) lua_pushfstring(L, "unix:%s", host);
  else aio__push_hostport(L, host, (int)lua_tointeger(L, 2));
  lua_setiuservalue(L, 4, 1);
  q = aio__connect_start(L, loop, aio_redis_stream(c),
                         is_unix ? NULL : (struct sockaddr *)&ss, host, 4,
                         &rc);
  if (q == NULL) {
    aio__io_close(&c->io);
    return aio__connect_error(L, rc, 1);
  }
  return aio__req_wait(L, t, &q->r, (lua_KContext)c, connect_k);
}


/* ---------------------------------------------------------------------
** The class and the module
** ------------------------------------------------------------------- */

static const luaL_Reg conn_methods[] = {
  {"command", aio__redis_command},
  {"commands", aio__redis_commands},
  {"message", aio__redis_message},
  {"alive", conn_alive},
  {"state", conn_state},
  {"set_timeout", conn_set_timeout},
  {"set_pubsub", conn_set_pubsub},
  {"pending", conn_pending},
  {"close", aio__io_close_method},
  {NULL, NULL}
};


static const luaL_Reg conn_meta[] = {
  {"__close", aio__io_close_method},
  {"__gc", aio__io__gc},
  {"__tostring", conn__tostring},
  {NULL, NULL}
};


const AioClass aio__redis_conn_class = {CONN_MT, conn_methods, conn_meta};


static const luaL_Reg redis_funcs[] = {
  {"connect", redis_connect},
  {NULL, NULL}
};


/* core.redis = {connect, Conn = <the methods>}. */
static void open_redis (lua_State *L) {
  int core = lua_gettop(L);
  aio__ignore_sigpipe();
  lua_newtable(L);
  aio__setfuncs(L, core - 1, redis_funcs);
  aio__class_open(L, core - 1, &aio__redis_conn_class);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "Conn");
  lua_pop(L, 1);
  lua_setfield(L, core, "redis");
}


const AioModule aio__module_redis = {"redis", open_redis, NULL};
