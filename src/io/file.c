/*
** file.c
** aio.fs.open and the File object: buffered reads (sizes, "a", "l",
** "L"), writes, seek and close, every system call on the libuv pool.
** See LICENSE
*/

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "aio.h"

#define FILE_MT "aio.File"
#define CHUNK (64 * 1024)        /* read-ahead for lines and small reads */
#define MAX_IO (1024 * 1024)     /* the most one request reads or writes */

/*
** An open file. Its user value is the path (for errors). Reads go through
** the read-ahead buffer `in`: its unread bytes are those of the file at
** offset `pos`. While open it is a Closable of the run. One operation runs at a time (`locked`, held across its
** requests); others wait in `queue`. A request may outlive the operation
** that started it (a cancelled task): then `inflight` keeps everything
** else off the buffer and the descriptor until its callback, which applies
** its result to the buffer and position itself.
*/
typedef struct File {
  Link queue;            /* tasks waiting for their turn */
  Closable run;          /* in the run's closables while open */
  Loop *loop;
  Reader in;             /* read-ahead */
  int64_t pos;           /* offset of the next byte to read or write */
  int64_t size;          /* the file's size at the last fstat */
  uv_file fd;            /* -1 once closed */
  uv_file defer_fd;      /* to close when the request in flight ends */
  uint8_t readable, writable, append;
  uint8_t locked;        /* an operation is in progress */
  uint8_t inflight;      /* a request on fd is in flight */
  uint8_t eof;           /* a read hit the end of the file (sticky, as
                            stdio's, until a seek or a write) */
  uint8_t regular;       /* fstat saw a regular file: a short read is
                            its end */
  uint8_t stream;        /* not seekable (a pipe...): no offsets */
} File;

enum { OP_READ, OP_WRITE, OP_FSTAT, OP_CLOSE, OP_OPEN };

/* A request on a file. User values: 1 the File, 2 the data written. */
typedef struct FileReq {
  Req r;
  uv_fs_t fs;
  File *f;               /* NULL for OP_OPEN */
  size_t nbytes;         /* bytes it was asked to read or write */
  uint8_t op;
  uint8_t started;       /* uv_fs_req_cleanup is due */
  uint8_t handed;        /* OP_OPEN: the descriptor is someone else's */
} FileReq;

/* ctx of a file method's continuation: flags, and the method's step. */
#define K_LOCKED 1       /* the call holds the file's lock */
#define K_REQ 2          /* the call waits for the request on top */
#define K_SHIFT 2

/* A method body's answer: results, or a request was started (on top). */
#define NEED_IO (-1)

typedef int (*Body) (lua_State *L, File *f, lua_Integer *step);


/* ---------------------------------------------------------------------
** Requests and their callback
** ------------------------------------------------------------------- */

static void filereq_gc (Req *r) {
  FileReq *q = (FileReq *)r;
  if (q->started) uv_fs_req_cleanup(&q->fs);
}


static void bg_close_cb (uv_fs_t *req) {
  uv_fs_req_cleanup(req);
  free(req);
}


/* Closes `fd` without waiting: on the pool while the loop runs, else at
** once (there is no loop to wait for). */
static void close_background (Loop *loop, uv_file fd) {
  uv_fs_t *req;
  if (loop->running && (req = (uv_fs_t *)malloc(sizeof *req)) != NULL) {
    if (uv_fs_close(&loop->uv, req, fd, bg_close_cb) == 0) return;
    free(req);
  }
  close(fd);
}


/* Wakes the first task waiting for its turn, if the file is free. */
static void file_wake_next (File *f) {
  if (f->locked || f->inflight || link_empty(&f->queue)) return;
  aio__task_wake(f->loop, aio_container_of(f->queue.next, Task, wait.link),
                 AIO_WAKE_OK);
}


/* Ends the current operation. */
static void file_unlock (File *f) {
  f->locked = 0;
  file_wake_next(f);
}


/* Applies a request's outcome to its file (even if nobody waits for it
** any more), then completes the request. Never runs Lua. */
static void file_cb (uv_fs_t *req) {
  FileReq *q = aio_container_of(req, FileReq, fs);
  File *f = q->f;
  ssize_t res = req->result;
  if (f != NULL) {
    f->inflight = 0;
    if (q->op == OP_READ) {
      if (res > 0) f->in.buf.len += (size_t)res;
      if (res == 0 || (res > 0 && f->regular && (size_t)res < q->nbytes))
        f->eof = 1;
    }
    else if (q->op == OP_WRITE && res > 0) {
      if (f->append) {
        off_t at = lseek(f->fd >= 0 ? f->fd : f->defer_fd, 0, SEEK_CUR);
        if (at >= 0) f->pos = at;
      }
      else f->pos += res;
    }
    else if (q->op == OP_FSTAT && res == 0) {
      f->size = (int64_t)req->statbuf.st_size;
      f->regular = (req->statbuf.st_mode & S_IFMT) == S_IFREG;
    }
    if (f->defer_fd >= 0) {
      close_background(f->loop, f->defer_fd);
      f->defer_fd = -1;
    }
  }
  aio__req_done(&q->r, (int)res);
  if (f != NULL) file_wake_next(f);
}


/* Pushes a new request of `op` on file `f` (its userdata at index 1). */
static FileReq *filereq_new (lua_State *L, Loop *loop, File *f, int op) {
  FileReq *q = (FileReq *)aio__req_new(L, loop, sizeof(FileReq), 2);
  q->r.gc = filereq_gc;
  q->f = f;
  q->op = (uint8_t)op;
  if (f != NULL) {
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
  }
  return q;
}


/* Pushes an `io` error for the failed `op` on `path` (with code, path). */
static void push_io_error (lua_State *L, int err, const char *op,
                           const char *path) {
  aio__uv_error_new(L, "io", err, "cannot %s '%s'", op, path);
  aio__setfield_str(L, "path", path);
}


/* Raises an `io` error for file `f` (userdata at index 1), releasing the
** operation first. */
static int file_fail (lua_State *L, File *f, int err, const char *op) {
  file_unlock(f);
  lua_getiuservalue(L, 1, 1);
  push_io_error(L, err, op, lua_tostring(L, -1));
  return lua_error(L);
}


/* The request on top was set up by uv_fs_*, which returned `rc`: hands it
** to libuv, or raises. Returns NEED_IO. */
static int file_started (lua_State *L, File *f, FileReq *q, int rc,
                         const char *op) {
  if (rc < 0) return file_fail(L, f, rc, op);
  q->started = 1;
  f->inflight = 1;
  aio__req_start(L, &q->r, -1);
  return NEED_IO;
}


/* ---------------------------------------------------------------------
** Operations: one at a time, possibly over several requests
** ------------------------------------------------------------------- */

#define checkfile(L) ((File *)aio__checkself(L))


/* Raises `closed` if the file cannot be used now. */
static void check_live (lua_State *L, File *f) {
  if (f->fd < 0) aio__closed_error(L, "file");
}


/*
** Runs (or goes on with) the operation `body` of the file at index 1: waits
** for its turn, runs the body, waits for each request it starts, and ends
** the operation when the body returns its results. `ctx` carries the K_*
** flags and the body's step across suspensions; `k` is the method's
** continuation, which calls back here.
*/
static int file_drive (lua_State *L, lua_KContext ctx, Body body,
                       lua_KFunction k) {
  Loop *loop = aio_upvalue_loop(L);
  File *f = (File *)lua_touserdata(L, 1);
  Task *t = loop->current;
  lua_Integer step = (lua_Integer)(ctx >> K_SHIFT);
  int n;
  if (ctx & K_REQ) {                      /* a request of ours ended */
    FileReq *q = (FileReq *)lua_touserdata(L, -1);
    if (t->wake != AIO_WAKE_OK) {
      if (q->r.anchor != 0) uv_cancel((uv_req_t *)&q->fs);
      file_unlock(f);
      return aio__wake_raise(L, t);
    }
    if (q->r.status == UV_ESPIPE && !f->stream &&
        (q->op == OP_READ || q->op == OP_WRITE)) {
      f->stream = 1;                      /* a pipe: go on without offsets */
      if (q->op == OP_WRITE) step -= (lua_Integer)q->nbytes;
    }
    else if (q->r.status < 0) {
      int err = q->r.status;
      return file_fail(L, f, err, q->op == OP_READ ? "read" :
                       q->op == OP_WRITE ? "write" : "stat");
    }
    lua_pop(L, 1);
    if (f->fd < 0) {                      /* closed by another task */
      file_unlock(f);
      return aio__closed_error(L, "file");
    }
  }
  else if (!(ctx & K_LOCKED)) {           /* waiting for our turn */
    if (t->wake != AIO_WAKE_NONE && t->wake != AIO_WAKE_OK)
      return aio__wake_raise(L, t);
    if (f->fd < 0) {
      file_wake_next(f);                  /* the next one raises too */
      return aio__closed_error(L, "file");
    }
    if (f->locked || f->inflight) {    /* behind I/O: waits on it too */
      link_push(&f->queue, &t->wait.link);
      aio__wait_io(f->loop, t);
      return aio__suspend(L, t, ctx, k);
    }
    f->locked = 1;
  }
  n = body(L, f, &step);
  if (n == NEED_IO) {
    FileReq *q = (FileReq *)lua_touserdata(L, -1);
    return aio__req_wait(L, t, &q->r, (step << K_SHIFT) | K_LOCKED | K_REQ,
                         k);
  }
  file_unlock(f);
  return n;
}


/* Starts an operation: enters the task, checks the file. */
static int file_start (lua_State *L, Body body, lua_KFunction k,
                       const char *what) {
  Loop *loop = aio_upvalue_loop(L);
  File *f = checkfile(L);
  Task *t = aio__task_enter(L, loop, what);
  check_live(L, f);
  t->wake = AIO_WAKE_NONE;
  return file_drive(L, 0, body, k);
}


/*
** Starts a read into the free space after the buffered bytes, making room
** for `want` more bytes first: exactly that many when `exact` (the size is
** known), else at least CHUNK and at most MAX_IO. Reads up to MAX_IO at a
** time. Returns NEED_IO with the request on top.
*/
static int file_fill (lua_State *L, File *f, size_t want, int exact) {
  Loop *loop = f->loop;
  FileReq *q;
  uv_buf_t buf;
  size_t n;
  int64_t at;
  Buf *b = &f->in.buf;
  if (!exact) want = want < CHUNK ? CHUNK : want > MAX_IO ? MAX_IO : want;
  if (!aio__buf_reserve(b, want)) {
    file_unlock(f);
    return aio__nomem(L, "reading a file");
  }
  n = aio_buf_room(b);
  if (n > MAX_IO) n = MAX_IO;
  at = f->stream ? -1 : f->pos + (int64_t)aio_buf_avail(b);
  q = filereq_new(L, loop, f, OP_READ);
  q->nbytes = n;
  buf = uv_buf_init(aio_buf_tail(b), (unsigned)n);
  return file_started(L, f, q, uv_fs_read(&loop->uv, &q->fs, f->fd, &buf, 1,
                                          at, file_cb), "read");
}


/* Starts an fstat of the file; returns NEED_IO. */
static int file_fstat (lua_State *L, File *f) {
  FileReq *q = filereq_new(L, f->loop, f, OP_FSTAT);
  return file_started(L, f, q, uv_fs_fstat(&f->loop->uv, &q->fs, f->fd,
                                           file_cb), "stat");
}


/* Pushes the next `n` buffered bytes and consumes them. */
static void take (lua_State *L, File *f, size_t n) {
  aio__read_take(L, &f->in, n);
  f->pos += (int64_t)n;
}


/* Drops the read-ahead (before writes and seeks). */
static void drop_buffer (File *f) {
  f->in.buf.off = f->in.buf.len = 0;
  f->in.scan = 0;
  f->eof = 0;
}


/*
** read(...): the stack is (file, nfmt, formats..., results so far...).
** `step` is twice the index of the format being read, plus 1 once "a" has
** the file's size.
*/
static int read_body (lua_State *L, File *f, lua_Integer *step) {
  int nfmt = (int)lua_tointeger(L, 2);
  for (;;) {
    int i = (int)(*step >> 1);
    int fidx = i + 3;
    size_t avail = aio_buf_avail(&f->in.buf);
    if (i >= nfmt) return nfmt;
    if (lua_type(L, fidx) == LUA_TNUMBER) {
      size_t n = (size_t)lua_tointeger(L, fidx);
      if (avail < n + (n == 0) && !f->eof)
        return file_fill(L, f, (n == 0 ? 1 : n) - avail, 0);
      if (avail == 0 && (n > 0 || f->eof)) lua_pushnil(L);
      else take(L, f, avail < n ? avail : n);
    }
    else {
      const char *fmt = lua_tostring(L, fidx);
      if (*fmt == '*') fmt++;
      if (*fmt == 'a') {
        if (!f->eof) {
          int64_t rest;
          if (!(*step & 1)) {
            *step |= 1;
            return file_fstat(L, f);
          }
          rest = f->size - f->pos - (int64_t)avail;
          if (rest > 0)                  /* the size is known: room for */
            return file_fill(L, f, (size_t)rest + 1, 1);    /* it + 1 */
          if (aio_buf_room(&f->in.buf) > 0)  /* confirm the end in the room */
            return file_fill(L, f, 1, 1);
          return file_fill(L, f, CHUNK, 0);     /* /proc files: size 0 */
        }
        take(L, f, avail);
      }
      else {                            /* "l" or "L" */
        size_t taken = 0;
        int rc = aio__read_line(L, &f->in, f->eof, SIZE_MAX,
                                *fmt == 'L' ? AIO_LINE_KEEP : 0, &taken);
        f->pos += (int64_t)taken;
        if (rc == AIO_READ_MORE) return file_fill(L, f, CHUNK, 0);
        if (rc == AIO_READ_END) lua_pushnil(L);
      }
    }
    if (lua_isnil(L, -1))          /* as io.read: nothing after a nil */
      return lua_gettop(L) - (nfmt + 2);
    *step = (lua_Integer)(i + 1) << 1;
  }
}


static int read_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return file_drive(L, ctx, read_body, read_k);
}


/*
** file:read(...) (suspends) -> one value per format, as io.read: a number
** of bytes (nil at the end of the file; 0 tests for it), "a" (the rest,
** "" at the end), "l" (a line without its newline, nil at the end), "L"
** (with it). Default "l".
*/
static int file_read (lua_State *L) {
  int i, n;
  checkfile(L);
  if (lua_gettop(L) == 1) lua_pushliteral(L, "l");
  n = lua_gettop(L) - 1;
  for (i = 2; i <= n + 1; i++) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      lua_Integer sz = luaL_checkinteger(L, i);
      luaL_argcheck(L, sz >= 0, i, "negative size");
    }
    else {
      const char *fmt = luaL_checkstring(L, i);
      if (*fmt == '*') fmt++;
      if (*fmt != 'a' && *fmt != 'l' && *fmt != 'L')
        luaL_argerror(L, i, "invalid format");
    }
  }
  luaL_checkstack(L, n + 8, "too many formats");
  lua_pushinteger(L, n);
  lua_insert(L, 2);                     /* file n formats... */
  return file_start(L, read_body, read_k, "file:read");
}


/*
** write(...): the stack is (file, strings...); `step` counts the bytes
** written so far. Each request writes up to MAX_IO bytes of up to 64
** strings, which its user value 2 keeps alive.
*/
static int write_body (lua_State *L, File *f, lua_Integer *step) {
  uv_buf_t bufs[64];
  int top = lua_gettop(L), i, nb = 0, first = 0, last = 0;
  size_t skip = (size_t)*step, total = 0;
  FileReq *q;
  if (*step == 0) drop_buffer(f);
  for (i = 2; i <= top && nb < 64 && total < MAX_IO; i++) {
    size_t len;
    const char *s = lua_tolstring(L, i, &len);
    if (skip >= len) { skip -= len; continue; }
    len -= skip;
    if (len > MAX_IO - total) len = MAX_IO - total;
    bufs[nb++] = uv_buf_init((char *)s + skip, (unsigned)len);
    skip = 0;
    total += len;
    if (first == 0) first = i;
    last = i;
  }
  if (nb == 0) {
    lua_settop(L, 1);
    return 1;
  }
  *step += (lua_Integer)total;
  q = filereq_new(L, f->loop, f, OP_WRITE);        /* ... req */
  q->nbytes = total;
  if (first == last) lua_pushvalue(L, first);
  else {
    lua_createtable(L, last - first + 1, 0);
    for (i = first; i <= last; i++) {
      lua_pushvalue(L, i);
      lua_rawseti(L, -2, i - first + 1);
    }
  }
  lua_setiuservalue(L, -2, 2);
  return file_started(L, f, q, uv_fs_write(&f->loop->uv, &q->fs, f->fd, bufs,
                                           (unsigned)nb,
                                           f->append || f->stream ? -1 : f->pos,
                                           file_cb), "write");
}


static int write_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return file_drive(L, ctx, write_body, write_k);
}


/* file:write(...) (suspends) -> the file. Writes strings and numbers in
** order; returns once the system took them all. */
static int file_write (lua_State *L) {
  int i, n = lua_gettop(L);
  checkfile(L);
  for (i = 2; i <= n; i++) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      luaL_tolstring(L, i, NULL);
      lua_replace(L, i);
    }
    else luaL_checktype(L, i, LUA_TSTRING);
  }
  return file_start(L, write_body, write_k, "file:write");
}


/* seek: the stack is (file, whence, offset); step 1 once fstat is done. */
static int seek_body (lua_State *L, File *f, lua_Integer *step) {
  const char *whence = lua_tostring(L, 2);
  lua_Integer off = lua_tointeger(L, 3);
  int64_t base = f->pos;
  if (f->stream) return file_fail(L, f, UV_ESPIPE, "seek in");
  if (whence[0] == 'e') {
    if (*step == 0) {
      *step = 1;
      return file_fstat(L, f);
    }
    base = f->size;
  }
  else if (whence[0] == 's') base = 0;
  if ((off < 0 && base + off < 0) || (off > 0 && base > INT64_MAX - off))
    return file_fail(L, f, UV_EINVAL, "seek in");
  drop_buffer(f);
  f->pos = base + off;
  lua_pushinteger(L, (lua_Integer)f->pos);
  return 1;
}


static int seek_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return file_drive(L, ctx, seek_body, seek_k);
}


/* file:seek([whence="cur"], [offset=0]) (suspends) -> the new position,
** counted from the start of the file. whence: "set", "cur" or "end". */
static int file_seek (lua_State *L) {
  static const char *const names[] = {"set", "cur", "end", NULL};
  checkfile(L);
  luaL_checkoption(L, 2, "cur", names);
  luaL_optinteger(L, 3, 0);
  lua_settop(L, 3);
  if (lua_isnil(L, 2)) {
    lua_pushliteral(L, "cur");
    lua_replace(L, 2);
  }
  if (lua_isnil(L, 3)) {
    lua_pushinteger(L, 0);
    lua_replace(L, 3);
  }
  return file_start(L, seek_body, seek_k, "file:seek");
}


/* ---------------------------------------------------------------------
** Closing
** ------------------------------------------------------------------- */

/* Takes the descriptor from `f` (now closed for its users) and closes it
** in the background, after the request in flight if there is one.
** Returns the descriptor if the caller must close it itself (when
** `mine`), else -1. */
static uv_file file_detach (File *f, int mine) {
  uv_file fd = f->fd;
  if (fd < 0) return -1;
  f->fd = -1;
  aio__closable_remove(&f->run);
  file_wake_next(f);    /* waiters see it closed */
  if (f->inflight) f->defer_fd = fd;
  else if (mine) return fd;
  else close_background(f->loop, fd);
  return -1;
}


static int close_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  FileReq *q = (FileReq *)lua_touserdata(L, -1);
  Task *t = loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  if (q->r.status < 0) {
    lua_getiuservalue(L, 1, 1);
    push_io_error(L, q->r.status, "close", lua_tostring(L, -1));
    return lua_error(L);
  }
  lua_pushboolean(L, 1);
  return 1;
}


/*
** file:close() -> true. Also __close and __gc; closing twice is harmless.
** In a task it waits for the system's close and raises `io` if it failed;
** elsewhere, or while the task is being cancelled, it closes in the
** background. Waiting users of the file raise `closed`.
*/
static int file_close (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  File *f = checkfile(L);
  Task *t = loop->current;
  int wait = t != NULL && lua_isyieldable(L) && !aio__cancel_pending(t);
  uv_file fd = file_detach(f, wait);
  lua_settop(L, 1);
  if (fd >= 0) {
    FileReq *q = filereq_new(L, loop, NULL, OP_CLOSE);
    int rc = uv_fs_close(&loop->uv, &q->fs, fd, file_cb);
    if (rc < 0) close(fd);
    else {
      q->started = 1;
      aio__req_start(L, &q->r, -1);
      return aio__req_wait(L, t, &q->r, 0, close_k);
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}


static int file__gc (lua_State *L) {
  File *f = checkfile(L);
  file_detach(f, 0);
  aio__buf_free(&f->in.buf);
  return 0;
}


static int file__tostring (lua_State *L) {
  File *f = checkfile(L);
  lua_getiuservalue(L, 1, 1);
  if (f->fd < 0) lua_pushfstring(L, "aio.File (closed, %s)",
                                 lua_tostring(L, -1));
  else lua_pushfstring(L, "aio.File (%s)", lua_tostring(L, -1));
  return 1;
}


/* The end of the run closes a file left open. */
static void file_run_close (Closable *c) {
  file_detach(aio_container_of(c, File, run), 0);
}


/* ---------------------------------------------------------------------
** Opening
** ------------------------------------------------------------------- */

/* Parses an io.open mode ("r", "w", "a", "r+", "w+", "a+", "b" ignored,
** "x" for exclusive creation) into open flags; -1 if invalid. */
static int parse_mode (const char *m, File *f) {
  int flags;
  switch (*m++) {
    case 'r': flags = 0; f->readable = 1; break;
    case 'w': flags = O_CREAT | O_TRUNC; f->writable = 1; break;
    case 'a': flags = O_CREAT | O_APPEND; f->writable = f->append = 1; break;
    default: return -1;
  }
  for (; *m != '\0'; m++) {
    if (*m == '+') f->readable = f->writable = 1;
    else if (*m == 'x' && (flags & O_CREAT)) flags |= O_EXCL;
    else if (*m != 'b') return -1;
  }
  return flags | (f->readable && f->writable ? O_RDWR :
                  f->writable ? O_WRONLY : O_RDONLY);
}


static void openreq_gc (Req *r) {
  FileReq *q = (FileReq *)r;
  if (q->started && q->r.anchor == 0 && q->fs.result >= 0 && !q->handed)
    close((uv_file)q->fs.result);       /* opened, never handed over */
  filereq_gc(r);
}


/* The callback of an open whose task stopped waiting: closes the file. */
static void open_abandoned_cb (uv_fs_t *req) {
  FileReq *q = aio_container_of(req, FileReq, fs);
  if (req->result >= 0) {
    close_background(q->r.loop, (uv_file)req->result);
    q->handed = 1;
  }
  aio__req_done(&q->r, (int)req->result);
}


/* Stack: (path, mode, file, req). */
static int open_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  FileReq *q = (FileReq *)lua_touserdata(L, 4);
  File *f = (File *)lua_touserdata(L, 3);
  Task *t = loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) {
    if (q->r.anchor != 0) {
      q->fs.cb = open_abandoned_cb;
      uv_cancel((uv_req_t *)&q->fs);
    }
    else if (q->fs.result >= 0) {
      close_background(loop, (uv_file)q->fs.result);
      q->handed = 1;
    }
    return aio__wake_raise(L, t);
  }
  if (q->r.status < 0) {
    push_io_error(L, q->r.status, "open", lua_tostring(L, 1));
    return lua_error(L);
  }
  f->fd = (uv_file)q->fs.result;
  q->handed = 1;
  aio__closable_add(loop, &f->run, file_run_close);
  lua_settop(L, 3);
  return 1;
}


/*
** fs.open(path, [mode="r"]) (suspends) -> File. Modes as io.open ("r",
** "w", "a", "r+", "w+", "a+"; "b" is accepted and ignored; "x" after "w"
** or "a" fails if the file exists). Raises `io` with code and path.
*/
static int fs_open (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  const char *path = aio__checkpath(L, 1);
  const char *mode = lua_isnoneornil(L, 2) ? "r" :
                     aio__checkcstring(L, 2, "mode");
  Task *t;
  File *f;
  FileReq *q;
  int flags, rc;
  lua_settop(L, 2);
  t = aio__task_enter(L, loop, "aio.fs.open");
  f = (File *)lua_newuserdatauv(L, sizeof(File), 1);   /* path mode file */
  memset(f, 0, sizeof *f);
  f->fd = f->defer_fd = -1;
  link_init(&f->queue);
  link_init(&f->run.link);
  f->in.keep = 4 * CHUNK;
  f->loop = loop;
  luaL_setmetatable(L, FILE_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 3, 1);
  flags = parse_mode(mode, f);
  if (flags < 0) luaL_argerror(L, 2, "invalid mode");
  q = filereq_new(L, loop, NULL, OP_OPEN);             /* path mode file q */
  q->r.gc = openreq_gc;
  rc = uv_fs_open(&loop->uv, &q->fs, path, flags, 0666, file_cb);
  if (rc < 0) {
    push_io_error(L, rc, "open", path);
    return lua_error(L);
  }
  q->started = 1;
  aio__req_start(L, &q->r, -1);
  return aio__req_wait(L, t, &q->r, 0, open_k);
}


static const luaL_Reg file_methods[] = {
  {"read", file_read},
  {"write", file_write},
  {"seek", file_seek},
  {"close", file_close},
  {NULL, NULL}
};


static const luaL_Reg file_meta[] = {
  {"__close", file_close},
  {"__gc", file__gc},
  {"__tostring", file__tostring},
  {NULL, NULL}
};


static const AioClass file_class = {FILE_MT, file_methods, file_meta};


/* Creates the File class and sets open and File (the methods table,
** which aio.fs extends) in the core.fs table at `fsidx`. */
void aio__open_file (lua_State *L, int fsidx) {
  int loopidx = fsidx - 2;      /* loop, core, fs */
  aio__class_open(L, loopidx, &file_class);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, fsidx, "File");
  lua_pop(L, 1);
  lua_pushvalue(L, loopidx);
  lua_pushcclosure(L, fs_open, 1);
  lua_setfield(L, fsidx, "open");
}
