/*
** stream.c
** The Stream object: a byte stream over a uv_stream_t (a TCP connection,
** a pipe) read on demand (only while a task waits for data) and written
** with backpressure.
** See LICENSE
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

#define STREAM_MT "aio.Stream"
#define LINE_LIMIT 65536        /* default longest line for read_line */

/* A write or shutdown. User value 1: the strings being written. */
typedef struct StreamReq {
  Req r;
  union {
    uv_write_t write;
    uv_shutdown_t shutdown;
  } u;
} StreamReq;

/*
** A write of bytes in C memory (TLS records, WebSocket frames): the part
** the kernel did not take at once, in a block of its own. A request (Req)
** when a task may wait for it, else malloc'd (`owned`) and freed by its
** callback.
*/
typedef struct ByteWrite {
  Req r;
  uv_write_t w;
  char *data;            /* malloc'd: the bytes being written */
  uint8_t owned;         /* not a request: frees itself when done */
} ByteWrite;


/* ---------------------------------------------------------------------
** The shared memory and the read callbacks (no Lua in here)
** ------------------------------------------------------------------- */

static void stop_reading (Stream *s) {
  if (s->reading) {
    uv_read_stop(&s->h.stream);
    s->reading = 0;
  }
}


/* Closes the stream: waiting readers raise `closed`. Data the kernel took
** is still delivered; writes still queued are dropped. Over TLS, tries to
** tell the peer first (close_notify). (Also the close of objects that
** embed a Stream, such as an HTTP server's connection.) */
void aio__stream_close (IoHandle *io) {
  Stream *s = (Stream *)io;
  if (s->upper != NULL) s->upper->on_close(s, s->upper);
  if (s->tls != NULL) aio__tls_close(s);
  stop_reading(s);
  aio__io_close_handle(io, &s->h.handle);
  aio__notify_all(io->loop, &s->readers);
}


void aio__stream_release (IoHandle *io) {
  Stream *s = (Stream *)io;
  aio__buf_free(&s->in.buf);
  if (s->tls != NULL) aio__tls_free(s);
}


const IoType aio__stream_type = {"stream", aio__stream_close, NULL,
                                 aio__stream_release};


/*
** Allocates `size` bytes (a Stream, or a struct that starts with one) of
** I/O type `type` with an initialised TCP handle and no object yet (an
** orphan: closing it frees it); NULL if out of memory. Never raises.
*/
Stream *aio__stream_new (Loop *loop, char *scratch, size_t size,
                         const IoType *type) {
  Stream *s = (Stream *)aio__io_new(loop, size, type);
  if (s == NULL) return NULL;
  if (uv_tcp_init(&loop->uv, &s->h.tcp) != 0) {
    free(s);
    return NULL;
  }
  aio__io_opened(&s->io, &s->h.handle);
  s->scratch = scratch;
  s->limit = LINE_LIMIT;
  s->in.keep = AIO_READ_SIZE;
  link_init(&s->readers);
  link_init(&s->pending);
  return s;
}


/* A plain Stream (see aio__stream_new). */
Stream *aio__stream_alloc (Loop *loop, char *scratch) {
  return aio__stream_new(loop, scratch, sizeof(Stream), &aio__stream_type);
}


static void alloc_cb (uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  Stream *s = (Stream *)h->data;
  (void)suggested;
  *buf = uv_buf_init(s->scratch, AIO_READ_SIZE);
}


/* Keeps what arrived (decrypted first over TLS) and wakes the readers;
** with nobody waiting, stops reading (the next read starts it again). A
** protocol reading the stream itself (`upper`) gets it instead. */
static void read_cb (uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  Stream *s = (Stream *)h->data;
  if (nread == 0) return;
  if (s->tls != NULL) {
    nread = aio__tls_input(s, buf->base, nread);
    if (nread == 0) return;                 /* nothing for readers yet */
  }
  else if (nread > 0 &&
           !aio__buf_append(&s->in.buf, buf->base, (size_t)nread))
    nread = UV_ENOBUFS;
  if (nread < 0) {
    s->rerr = (int)nread;
    stop_reading(s);
  }
  if (s->upper != NULL) s->upper->on_input(s, s->upper);
  else if (link_empty(&s->readers)) stop_reading(s);
  else aio__notify_all(s->io.loop, &s->readers);
}


/* Starts reading unless it is on: 0 or a libuv error. */
int aio__stream_read_start (Stream *s) {
  if (!s->reading) {
    int rc = uv_read_start(&s->h.stream, alloc_cb, read_cb);
    if (rc < 0) return rc;
    s->reading = 1;
  }
  return 0;
}


void aio__stream_read_stop (Stream *s) {
  stop_reading(s);
}


/* ---------------------------------------------------------------------
** The object
** ------------------------------------------------------------------- */

/* Pushes a new Stream object for `s`, which it now owns. User value 1:
** its name "host:port" for messages. */
void aio__stream_push (lua_State *L, Stream *s) {
  aio__io_push(L, &s->io, STREAM_MT, 1);
}


/* Pushes the stream's name ("host:port"). */
static const char *stream_name (lua_State *L) {
  if (lua_getiuservalue(L, 1, 1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "stream");
  }
  return lua_tostring(L, -1);
}


/* Raises `timeout` for a read or write (`phase`) that waited longer than
** the stream's timeout. */
static int stream_timeout (lua_State *L, Stream *s, const char *phase) {
  const char *name = stream_name(L);
  char secs[32];
  snprintf(secs, sizeof secs, "%g", s->timeout);
  aio__error_new(L, "timeout", "%s %s timed out after %s s",
                 phase[0] == 'r' ? "reading from" : "writing to", name, secs);
  aio__setfield_str(L, "phase", phase);
  aio__setfield_str(L, "peer", name);
  aio__setfield_num(L, "seconds", s->timeout);
  return lua_error(L);
}


/* Raises the `io` error `err` of operation `op` ("read from", "write
** to") with fields code and peer; AIO_ETLS raises `tls` with the TLS
** layer's reason. */
static int stream_fail (lua_State *L, Stream *s, int err, const char *op) {
  const char *name = stream_name(L);
  if (err == AIO_ETLS)
    aio__error_new(L, "tls", "cannot %s %s: %s", op, name, aio__tls_error(s));
  else aio__uv_error_new(L, "io", err, "cannot %s %s", op, name);
  aio__setfield_str(L, "peer", name);
  return lua_error(L);
}


/*
** Suspends the running task until data, the end of the stream or an
** error arrives (starting reading if it is off), or the stream's timeout
** passes. `k` starts with aio__io_resumed. Must be the return expression.
*/
int aio__stream_wait (lua_State *L, Stream *s, lua_KContext ctx,
                      lua_KFunction k) {
  int rc = aio__stream_read_start(s);
  if (rc < 0) return stream_fail(L, s, rc, "read from");
  return aio__io_wait(L, &s->io, &s->readers, s->timeout, ctx, k);
}


/* Common start of a read continuation: raises what interrupted the wait
** (the stream's timeout included), or `closed` if the stream was closed
** meanwhile. */
static Stream *resumed (lua_State *L) {
  Stream *s = (Stream *)aio__io_self(L);
  if (aio__io_resumed(L, &s->io)) stream_timeout(L, s, "read");
  return s;
}


/* Has the stream ended (its readers may take what is left)? */
#define at_end(s) ((s)->rerr == UV_EOF)

/* What a reader's answer `rc` means for a stream: AIO_READ_OK has pushed
** its result, AIO_READ_END pushes nil, AIO_READ_MORE waits for data or
** raises the error that ended reading. */
static int read_result (lua_State *L, Stream *s, int rc, lua_KContext ctx,
                        lua_KFunction k) {
  if (rc == AIO_READ_MORE) {
    if (s->rerr != 0) return stream_fail(L, s, s->rerr, "read from");
    return aio__stream_wait(L, s, ctx, k);
  }
  if (rc == AIO_READ_END) lua_pushnil(L);
  return 1;
}


/* read: the stack is (stream, n|"a"|nil). */
static int read_body (lua_State *L, Stream *s, lua_KFunction k) {
  if (lua_type(L, 2) == LUA_TSTRING) {           /* "a": up to the end */
    if (!at_end(s)) return read_result(L, s, AIO_READ_MORE, 0, k);
    aio__read_take(L, &s->in, aio_buf_avail(&s->in.buf));
    return 1;
  }
  return read_result(L, s, aio__read_upto(L, &s->in, at_end(s),
                     lua_isnoneornil(L, 2) ? SIZE_MAX :
                     (size_t)lua_tointeger(L, 2)), 0, k);
}


static int read_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return read_body(L, resumed(L), read_k);
}


/*
** stream:read([n]) (suspends) -> up to n bytes (default: whatever is
** there), waiting for at least one; nil at the end of the stream.
** stream:read("a") -> everything up to the end ("" if nothing).
*/
static int stream_read (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Stream *s = (Stream *)aio__io_check(L);
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *fmt = lua_tostring(L, 2);
    luaL_argcheck(L, fmt[0] == 'a' && fmt[1] == '\0', 2,
                  "invalid format (\"a\" or a size expected)");
  }
  else if (!lua_isnoneornil(L, 2)) {
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n > 0, 2, "size must be positive");
  }
  lua_settop(L, 2);
  aio__task_enter(L, loop, "stream:read");
  return read_body(L, s, read_k);
}


/* read_line: the stack is (stream). */
static int line_body (lua_State *L, Stream *s, lua_KFunction k) {
  size_t taken;
  int rc = aio__read_line(L, &s->in, at_end(s), s->limit, AIO_LINE_CRLF,
                          &taken);
  if (rc == AIO_READ_LONG) {                      /* left in the buffer */
    const char *name = stream_name(L);
    aio__error_new(L, "protocol", "line longer than %d bytes from %s",
                   (int)s->limit, name);
    aio__setfield_num(L, "limit", (lua_Number)s->limit);
    return lua_error(L);
  }
  return read_result(L, s, rc, 0, k);
}


static int line_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return line_body(L, resumed(L), line_k);
}


/*
** stream:read_line() (suspends) -> the next line without its "\n" (or
** "\r\n"); the last line even without one; nil at the end. A line longer
** than the stream's limit (64 KiB) raises `protocol` and stays buffered.
*/
static int stream_read_line (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Stream *s = (Stream *)aio__io_check(L);
  lua_settop(L, 1);
  aio__task_enter(L, loop, "stream:read_line");
  return line_body(L, s, line_k);
}


/* read_exactly: the stack is (stream, n). */
static int exact_body (lua_State *L, Stream *s, lua_KFunction k) {
  size_t n = (size_t)lua_tointeger(L, 2);
  int rc = aio__read_exactly(L, &s->in, at_end(s), n);
  size_t avail = aio_buf_avail(&s->in.buf);
  if (rc != AIO_READ_END) return read_result(L, s, rc, 0, k);
  {
    const char *name = stream_name(L);
    aio__error_new(L, "io", "%s closed the connection after %d of %d bytes",
                   name, (int)avail, (int)n);
    aio__setfield_str(L, "code", "EOF");
    lua_pushlstring(L, aio_buf_head(&s->in.buf), avail);
    lua_setfield(L, -2, "partial");
    aio__setfield_num(L, "expected", (lua_Number)n);
    return lua_error(L);
  }
}


static int exact_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return exact_body(L, resumed(L), exact_k);
}


/* stream:read_exactly(n) (suspends) -> exactly n bytes; raises `io` with
** code "EOF" and `partial` if the stream ends first. */
static int stream_read_exactly (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Stream *s = (Stream *)aio__io_check(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0, 2, "size must not be negative");
  lua_settop(L, 2);
  aio__task_enter(L, loop, "stream:read_exactly");
  return exact_body(L, s, exact_k);
}


/* ---------------------------------------------------------------------
** Writing and shutting down
** ------------------------------------------------------------------- */

static void write_cb (uv_write_t *w, int status) {
  StreamReq *q = aio_container_of(w, StreamReq, u.write);
  aio__req_done(&q->r, status);
}


static void shutdown_cb (uv_shutdown_t *w, int status) {
  StreamReq *q = aio_container_of(w, StreamReq, u.shutdown);
  aio__req_done(&q->r, status);
}


/* Continuation of write and shutdown: the request is on top. */
static int req_k (lua_State *L, int status, lua_KContext ctx) {
  Stream *s = (Stream *)aio__io_self(L);
  Req *q = (Req *)lua_touserdata(L, -1);
  Task *t = s->io.loop->current;
  (void)status;
  if (t->wake == AIO_WAKE_TIMER) return stream_timeout(L, s, "write");
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  if (q->status == UV_ECANCELED) return aio__closed_error(L, "stream");
  if (q->status < 0)
    return stream_fail(L, s, q->status, ctx ? "shut down" : "write to");
  lua_settop(L, 1);
  return 1;
}


static void bytes_cb (uv_write_t *w, int status) {
  ByteWrite *q = aio_container_of(w, ByteWrite, w);
  free(q->data);                      /* libuv is done with the bytes */
  q->data = NULL;
  if (q->owned) free(q);
  else aio__req_done(&q->r, status);
}


static void bytes_gc (Req *r) {
  ByteWrite *q = (ByteWrite *)r;
  free(q->data);
  q->data = NULL;
}


/*
** Writes the unread bytes of `b` to the socket as they are, after what is
** queued, and leaves `b` empty (its block kept if not larger than `keep`
** bytes and all was sent, else freed or handed to the write). What the
** kernel takes at once is sent; the rest is queued. If then more than
** `wait_above` bytes are queued and `L` is given, a request is pushed for
** the task to wait on (aio__req_wait; its outcome in Req.status) and 1
** returned; else the write frees itself when done and 0 is returned (as
** when all was sent). A libuv error is returned as is. Never runs Lua;
** with `L`, raises only on memory errors.
*/
int aio__stream_write_raw (lua_State *L, Stream *s, Buf *b, size_t keep,
                           size_t wait_above) {
  size_t n = aio_buf_avail(b), done = 0, queued;
  ByteWrite *q;
  uv_buf_t ub;
  int rc;
  if (n == 0) {
    aio__buf_consume(b, 0, keep);
    return 0;
  }
  if (uv_stream_get_write_queue_size(&s->h.stream) == 0) {
    ub = uv_buf_init(aio_buf_head(b), (unsigned)n);
    rc = uv_try_write(&s->h.stream, &ub, 1);
    if (rc > 0) done = (size_t)rc;
    else if (rc < 0 && rc != UV_EAGAIN) {
      aio__buf_free(b);
      return rc;
    }
  }
  if (done == n) {
    aio__buf_consume(b, n, keep);
    return 0;
  }
  queued = uv_stream_get_write_queue_size(&s->h.stream) + (n - done);
  if (queued <= wait_above) L = NULL;
  if (L != NULL)
    q = (ByteWrite *)aio__req_new(L, s->io.loop, sizeof(ByteWrite), 0);
  else if ((q = (ByteWrite *)calloc(1, sizeof *q)) == NULL) {
    aio__buf_free(b);
    return UV_ENOMEM;
  }
  q->owned = L == NULL;
  q->data = b->data;                         /* the block goes with it */
  ub = uv_buf_init(aio_buf_head(b) + done, (unsigned)(n - done));
  b->data = NULL;
  b->off = b->len = b->cap = 0;
  rc = uv_write(&q->w, &s->h.stream, &ub, 1, bytes_cb);
  if (rc < 0) {
    free(q->data);
    q->data = NULL;
    if (q->owned) free(q);
    else lua_pop(L, 1);
    return rc;
  }
  if (L == NULL) return 0;
  q->r.gc = bytes_gc;
  aio__req_start(L, &q->r, -1);
  return 1;
}


/*
** As aio__stream_write_raw for the bytes of a protocol above the stream:
** over TLS they are encrypted first (and `b` emptied). May also return
** AIO_ETLS.
*/
int aio__stream_send (lua_State *L, Stream *s, Buf *b, size_t keep,
                      size_t wait_above) {
  Buf *out;
  int rc;
  if (s->tls == NULL) return aio__stream_write_raw(L, s, b, keep, wait_above);
  rc = aio__tls_encrypt(s, aio_buf_head(b), aio_buf_avail(b), &out);
  aio__buf_consume(b, aio_buf_avail(b), keep);
  if (rc < 0) return rc;
  return aio__stream_write_raw(L, s, out, 0, wait_above);
}


/* stream:write over TLS: the stack is (stream, strings...). */
static int tls_write (lua_State *L, Stream *s, Task *t, int n) {
  Buf *out = NULL;
  int i, rc = 0;
  for (i = 2; i <= n + 1 && rc == 0; i++) {
    size_t len;
    const char *p = lua_tolstring(L, i, &len);
    if (len > 0) rc = aio__tls_encrypt(s, p, len, &out);
  }
  if (rc == 0 && out != NULL) rc = aio__stream_write_raw(L, s, out, 0, 0);
  if (rc < 0) return stream_fail(L, s, rc, "write to");
  if (rc == 0) {
    lua_settop(L, 1);
    return 1;
  }
  if (s->timeout > 0)
    aio__timer_arm(s->io.loop, &t->timer, aio__deadline(s->io.loop,
                                                        s->timeout));
  return aio__req_wait(L, t, (Req *)lua_touserdata(L, -1), 0, req_k);
}


/*
** stream:write(...) (suspends) -> the stream. Writes the strings (and
** numbers) in order; returns when the kernel took all of them, which is
** at once while it keeps up (backpressure otherwise). If the task is
** cancelled meanwhile, what is queued is still sent.
*/
static int stream_write (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Stream *s = (Stream *)aio__io_check(L);
  uv_buf_t stack_bufs[16], *bufs = stack_bufs;
  int i, n = lua_gettop(L) - 1, nb = 0, first = 0, rc = 0;
  size_t total = 0, done = 0;
  Task *t;
  StreamReq *q;
  for (i = 2; i <= n + 1; i++) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      luaL_tolstring(L, i, NULL);
      lua_replace(L, i);
    }
    else luaL_checktype(L, i, LUA_TSTRING);
  }
  t = aio__task_enter(L, loop, "stream:write");
  if (s->tls != NULL) return tls_write(L, s, t, n);
  if (n > 16)                                       /* args... bufs */
    bufs = (uv_buf_t *)lua_newuserdatauv(L, (size_t)n * sizeof *bufs, 0);
  for (i = 2; i <= n + 1; i++) {
    size_t len;
    const char *p = lua_tolstring(L, i, &len);
    if (len == 0) continue;
    bufs[nb++] = uv_buf_init((char *)p, (unsigned)len);
    total += len;
  }
  if (nb > 0 && uv_stream_get_write_queue_size(&s->h.stream) == 0) {
    rc = uv_try_write(&s->h.stream, bufs, (unsigned)nb);
    if (rc > 0) done = (size_t)rc;
    else if (rc < 0 && rc != UV_EAGAIN)
      return stream_fail(L, s, rc, "write to");
  }
  if (done == total) {
    lua_settop(L, 1);
    return 1;
  }
  while (done >= bufs[first].len) done -= bufs[first++].len;
  bufs[first].base += done;                    /* skip what was sent */
  bufs[first].len -= (unsigned)done;
  q = (StreamReq *)aio__req_new(L, loop, sizeof(StreamReq), 1);
  lua_createtable(L, n, 0);                    /* ... q strings */
  for (i = 2; i <= n + 1; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setiuservalue(L, -2, 1);
  rc = uv_write(&q->u.write, &s->h.stream, bufs + first,
                (unsigned)(nb - first), write_cb);
  if (rc < 0) return stream_fail(L, s, rc, "write to");
  aio__req_start(L, &q->r, -1);
  if (s->timeout > 0)
    aio__timer_arm(loop, &t->timer, aio__deadline(loop, s->timeout));
  return aio__req_wait(L, t, &q->r, 0, req_k);
}


/* stream:shutdown() (suspends) -> the stream. Sends the end of the stream
** (after what is queued) and keeps reading possible: a half close. */
static int stream_shutdown (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Stream *s = (Stream *)aio__io_check(L);
  Task *t;
  StreamReq *q;
  int rc;
  lua_settop(L, 1);
  t = aio__task_enter(L, loop, "stream:shutdown");
  if (s->tls != NULL) aio__tls_shutdown(s);      /* close_notify first */
  q = (StreamReq *)aio__req_new(L, loop, sizeof(StreamReq), 1);
  rc = uv_shutdown(&q->u.shutdown, &s->h.stream, shutdown_cb);
  if (rc < 0) return stream_fail(L, s, rc, "shut down");
  aio__req_start(L, &q->r, -1);
  return aio__req_wait(L, t, &q->r, 1, req_k);
}


/* ---------------------------------------------------------------------
** Addresses, settings
** ------------------------------------------------------------------- */

/* peer_address and local_address: host, port of one end (TCP only). */
static int push_end (lua_State *L, int peer) {
  Stream *s = (Stream *)aio__io_check(L);
  int rc = s->h.handle.type == UV_TCP ?
    aio__push_address(L, &s->h.tcp, peer) : UV_EAFNOSUPPORT;
  return rc == 0 ? 2 : stream_fail(L, s, rc, "get the address of");
}


/* stream:peer_address() -> host, port of the other end. */
static int stream_peer_address (lua_State *L) { return push_end(L, 1); }

/* stream:local_address() -> host, port of this end. */
static int stream_local_address (lua_State *L) { return push_end(L, 0); }


/* stream:set_limit(bytes): the longest line read_line accepts. */
static int stream_set_limit (lua_State *L) {
  Stream *s = (Stream *)aio__io_self(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n > 0, 2, "limit must be positive");
  s->limit = (size_t)n;
  lua_settop(L, 1);
  return 1;
}


/* stream:set_timeout([seconds]) -> the stream. Each later read or write
** that waits longer raises `timeout` (phase "read" or "write"); nil or 0:
** no limit. A write that timed out stays queued. */
static int stream_set_timeout (lua_State *L) {
  Stream *s = (Stream *)aio__io_self(L);
  s->timeout = lua_isnoneornil(L, 2) ? 0 : aio__checkduration(L, 2);
  lua_settop(L, 1);
  return 1;
}


/* stream:_set_name(name): the "host:port" used in messages. */
static int stream_set_name (lua_State *L) {
  aio__io_self(L);
  luaL_checkstring(L, 2);
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, 1);
  return 0;
}


static int stream__tostring (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  const char *name = stream_name(L);
  lua_pushfstring(L, "aio.Stream (%s%s)", name,
                  ref->io != NULL && aio_io_live(ref->io) ? "" : ", closed");
  return 1;
}


static const luaL_Reg stream_methods[] = {
  {"read", stream_read},
  {"read_line", stream_read_line},
  {"read_exactly", stream_read_exactly},
  {"write", stream_write},
  {"shutdown", stream_shutdown},
  {"close", aio__io_close_method},
  {"peer_address", stream_peer_address},
  {"local_address", stream_local_address},
  {"set_limit", stream_set_limit},
  {"set_timeout", stream_set_timeout},
  {"_set_name", stream_set_name},
  {"_starttls", aio__tls_start},
  {"tls_info", aio__tls_info},
  {NULL, NULL}
};


static const luaL_Reg stream_meta[] = {
  {"__close", aio__io_close_method},
  {"__gc", aio__io__gc},
  {"__tostring", stream__tostring},
  {NULL, NULL}
};


static const AioClass stream_class = {STREAM_MT, stream_methods,
                                      stream_meta};


/* Creates the Stream class (core.Stream is its methods table). The loop
** is at -2, the core table on top. */
void aio__open_stream (lua_State *L) {
  int core = lua_gettop(L);
  aio__class_open(L, core - 1, &stream_class);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, core, "Stream");
  lua_pop(L, 1);
}
