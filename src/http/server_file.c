/*
** server_file.c
** File responses: opening a file off the loop (and checking that it lies
** under a root directory, symlinks resolved), then sending it with
** sendfile(2) in libuv's pool; when the socket is full, one chunk is read
** and written through the loop, which waits for the client, and sendfile
** takes over again.
** See LICENSE
*/

/*
** Why not uv_fs_sendfile: libuv 1.44 (Debian 12) tries copy_file_range
** first on Linux, which fails with EINVAL for a socket, and then falls
** back to its read/write emulation, which waits for a full socket with a
** blocking poll() inside a pool thread: a few slow clients would hold the
** whole pool (and every file operation behind it). Our pool work calls
** sendfile(2) on the non-blocking socket and comes back at EAGAIN.
*/

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"

#define FILE_CHUNK 65536               /* a read when the socket is full */
#define SENDFILE_MAX (4 * 1024 * 1024) /* bytes one sendfile call moves */

/* An open file waiting to be sent: an I/O object without libuv handles,
** so that the end of the run closes it. */
typedef struct HttpFile {
  IoHandle io;
  int fd;                /* -1 once closed or handed to a send */
} HttpFile;

/* A file being sent on a connection (c->file): malloc'd, freed when done
** and no request of it is in flight. */
typedef struct HttpFileSend {
  uv_fs_t req;           /* a chunk read (the socket was full) */
  uv_work_t work;        /* a sendfile(2) call */
  HttpConn *c;
  char *chunk;           /* the read buffer, or NULL */
  int64_t off;           /* next byte of the file to send */
  int64_t left;          /* bytes still to send */
  ssize_t sent;          /* the sendfile call's result */
  int err;               /* its errno */
  int fd;
  int sock;              /* the connection's socket */
  uint8_t busy;          /* req or work is in flight */
} HttpFileSend;

/* The open request: the work runs in the pool. User value 1: the path. */
typedef struct OpenReq {
  Req r;
  uv_work_t w;
  const char *path;      /* held by user value 1 */
  char *root;            /* malloc'd, or NULL */
  int fd;                /* the result, until handed over */
  int err;               /* errno, or 0 */
  int64_t size;
  double mtime;
  uint8_t started;
} OpenReq;


/* ---------------------------------------------------------------------
** Opening
** ------------------------------------------------------------------- */

static void file_close (IoHandle *io) {
  HttpFile *f = (HttpFile *)io;
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
}


static const IoType file_type = {"file", file_close, NULL, NULL};
static const AioClass file_class;


static void openreq_gc (Req *r) {
  OpenReq *q = (OpenReq *)r;
  if (q->fd >= 0) close(q->fd);
  q->fd = -1;
  free(q->root);
  q->root = NULL;
}


/* In the pool: opens, checks it is a regular file under the root. */
static void open_work (uv_work_t *w) {
  OpenReq *q = aio_container_of(w, OpenReq, w);
  struct stat st;
  int fd = open(q->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    q->err = errno;
    return;
  }
  if (fstat(fd, &st) != 0) q->err = errno;
  else if (S_ISDIR(st.st_mode)) q->err = EISDIR;
  else if (!S_ISREG(st.st_mode)) q->err = EACCES;
  else if (q->root != NULL) {
    char link[64], *real;
    size_t rlen = strlen(q->root);
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    real = realpath(link, NULL);
    if (real == NULL) q->err = errno;
    else {
      if (strncmp(real, q->root, rlen) != 0 ||
          (real[rlen] != '/' && real[rlen] != '\0' && q->root[rlen - 1] != '/'))
        q->err = EXDEV;                     /* outside the root */
      free(real);
    }
  }
  if (q->err != 0) {
    close(fd);
    return;
  }
  q->fd = fd;
  q->size = (int64_t)st.st_size;
  q->mtime = (double)st.st_mtim.tv_sec;
}


static void open_done (uv_work_t *w, int status) {
  OpenReq *q = aio_container_of(w, OpenReq, w);
  aio__req_done(&q->r, status);
}


/* Stack: (path, root, req). */
static int open_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  OpenReq *q = (OpenReq *)lua_touserdata(L, 3);
  Task *t = loop->current;
  HttpFile *f;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) {
    uv_cancel((uv_req_t *)&q->w);
    return aio__wake_raise(L, t);
  }
  if (q->r.status < 0 || q->err != 0) {
    int err = q->r.status < 0 ? q->r.status : uv_translate_sys_error(q->err);
    const char *code = q->err == EXDEV ? "ENOENT" : uv_err_name(err);
    aio__error_new(L, "io", "cannot open %s: %s", lua_tostring(L, 1),
                   q->err == EXDEV ? "outside the served directory"
                                   : uv_strerror(err));
    aio__setfield_str(L, "code", code);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "path");
    return lua_error(L);
  }
  f = (HttpFile *)aio__io_new(loop, sizeof(HttpFile), &file_type);
  if (f == NULL) return aio__nomem(L, "opening a file");
  f->fd = q->fd;
  q->fd = -1;
  aio__io_push(L, &f->io, HTTP_FILE_MT, 0);
  lua_pushinteger(L, (lua_Integer)q->size);
  lua_pushnumber(L, q->mtime);
  return 3;
}


/*
** core.http_server.open_file(path, [root]) (suspends) -> file, size,
** mtime. A regular file, opened in the pool; with `root` (a real path) it
** must lie under it once symlinks are resolved. Raises `io` with `code`
** ("ENOENT", "EISDIR", "EACCES"; a file outside the root is "ENOENT").
*/
static int hs_open_file (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  const char *path = aio__checkpath(L, 1);
  const char *root = lua_isnoneornil(L, 2) ? NULL : aio__checkpath(L, 2);
  Task *t;
  OpenReq *q;
  int rc;
  lua_settop(L, 2);
  t = aio__task_enter(L, loop, "open a file");
  q = (OpenReq *)aio__req_new(L, loop, sizeof(OpenReq), 1);
  q->r.gc = openreq_gc;
  q->fd = -1;
  q->path = path;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 3, 1);
  if (root != NULL) {
    q->root = strdup(root);
    if (q->root == NULL) return aio__nomem(L, "opening a file");
  }
  rc = uv_queue_work(&loop->uv, &q->w, open_work, open_done);
  if (rc < 0) {
    aio__uv_error_new(L, "io", rc, "cannot open %s", path);
    return lua_error(L);
  }
  aio__req_start(L, &q->r, 3);
  return aio__req_wait(L, t, &q->r, 0, open_k);
}


/* core.http_server.realpath(path) -> the path with symlinks resolved, or
** nil and a message. Blocks: for set-up (app:static), not for requests. */
static int hs_realpath (lua_State *L) {
  const char *path = aio__checkpath(L, 1);
  char *real = realpath(path, NULL);
  if (real == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  lua_pushstring(L, real);
  free(real);
  return 1;
}


/* ---------------------------------------------------------------------
** Sending
** ------------------------------------------------------------------- */

/* The file is sent (or the send is over): frees it and wakes the
** handler. */
static void send_end (HttpConn *c, int ok) {
  HttpFileSend *f = c->file;
  if (f == NULL) return;
  if (f->fd >= 0) close(f->fd);
  free(f->chunk);
  free(f);
  c->file = NULL;
  if (ok) c->resp = HR_DONE;
  aio__notify_all(c->s.io.loop, &c->writers);
}


/* A request of the send came back on a connection that was closed
** meanwhile: finishes the close (see conn_close). Returns 1 if so. */
static int send_orphaned (HttpConn *c) {
  if (aio_conn_live(c)) return 0;
  send_end(c, 0);
  if (c->closing_pending) {
    c->closing_pending = 0;
    aio__io_close_handle(&c->s.io, &c->s.h.handle);
    aio__hs_close_done(c);
  }
  return 1;
}


static void read_cb (uv_fs_t *req) {
  HttpFileSend *f = aio_container_of(req, HttpFileSend, req);
  HttpConn *c = f->c;
  ssize_t r = req->result;
  uv_buf_t b;
  uv_fs_req_cleanup(req);
  f->busy = 0;
  if (send_orphaned(c)) return;
  if (r <= 0) {                          /* the file shrank, or failed */
    aio__hs_conn_close(c);
    return;
  }
  if (r > f->left) r = (ssize_t)f->left;
  f->off += r;
  f->left -= r;
  b = uv_buf_init(f->chunk, (unsigned)r);
  if (aio__hs_send(c, &b, 1) != 0) return;
  if (!c->writing && aio_buf_avail(&c->out) == 0) aio__hs_file_kick(c);
}


/* In the pool: sends what the socket takes now. */
static void sendfile_work (uv_work_t *w) {
  HttpFileSend *f = aio_container_of(w, HttpFileSend, work);
  off_t off = (off_t)f->off;
  size_t len = (size_t)(f->left < SENDFILE_MAX ? f->left : SENDFILE_MAX);
  f->sent = sendfile(f->sock, f->fd, &off, len);
  f->err = f->sent < 0 ? errno : 0;
}


static void sendfile_done (uv_work_t *w, int status) {
  HttpFileSend *f = aio_container_of(w, HttpFileSend, work);
  HttpConn *c = f->c;
  f->busy = 0;
  if (send_orphaned(c)) return;
  if (status == 0 && f->sent > 0) {
    f->off += f->sent;
    f->left -= f->sent;
    aio__hs_file_kick(c);
  }
  else if (status == 0 && f->sent < 0 &&
           (f->err == EAGAIN || f->err == EWOULDBLOCK)) {
    /* the socket is full: read a chunk and let the loop wait for it */
    uv_buf_t b;
    if (f->chunk == NULL && (f->chunk = (char *)malloc(FILE_CHUNK)) == NULL) {
      aio__hs_conn_close(c);
      return;
    }
    b = uv_buf_init(f->chunk, (unsigned)(f->left < FILE_CHUNK ? f->left
                                                             : FILE_CHUNK));
    if (uv_fs_read(&c->s.io.loop->uv, &f->req, f->fd, &b, 1, f->off,
                   read_cb) != 0) {
      aio__hs_conn_close(c);
      return;
    }
    f->busy = 1;
  }
  else aio__hs_conn_close(c);            /* the client is gone, or the file
                                         ** ended early */
}


/* The output is written: sends the next part of the file (or ends). */
void aio__hs_file_kick (HttpConn *c) {
  HttpFileSend *f = c->file;
  uv_os_fd_t sock;
  if (f == NULL || f->busy || !aio_conn_live(c)) return;
  if (f->left <= 0) {
    send_end(c, 1);
    return;
  }
  if (uv_fileno((uv_handle_t *)&c->s.h.tcp, &sock) != 0) {
    aio__hs_conn_close(c);
    return;
  }
  f->sock = sock;                        /* before the pool thread reads it */
  if (uv_queue_work(&c->s.io.loop->uv, &f->work, sendfile_work,
                    sendfile_done) != 0) {
    aio__hs_conn_close(c);
    return;
  }
  f->busy = 1;
}


/* The connection is closing: a send with a request in flight ends in its
** callback (c->file stays); otherwise it ends now. */
void aio__hs_file_abandon (HttpConn *c) {
  if (c->file != NULL && !c->file->busy) send_end(c, 0);
}


static int send_k (lua_State *L, int status, lua_KContext ctx) {
  IoRef *ref = (IoRef *)lua_touserdata(L, 1);
  HttpConn *c = (HttpConn *)ref->io;
  Task *t = c->s.io.loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  if (c->resp == HR_DONE) return 0;
  if (!aio_conn_live(c) || c->broken || c->file == NULL) {
    aio__checkpoint(L, t);               /* a cancellation comes first */
    return aio__hs_gone(L);
  }
  return aio__io_wait(L, &c->s.io, &c->writers, 0, 0, send_k);
}


/*
** core.http_server.send_file(conn, n, status, headers, file, offset,
** length, ctype) (suspends until sent): the head (Content-Length:
** length), then `length` bytes of the file from `offset` (none for HEAD).
** Takes the file's descriptor (the file object is closed).
*/
static int hs_send_file (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  HttpConn *c = aio__hs_conn(L, 1, 2);
  lua_Integer status = luaL_checkinteger(L, 3);
  HttpFile *file = (HttpFile *)((IoRef *)aio__checkobj(L, 5,
                                                      &file_class))->io;
  lua_Integer off = luaL_checkinteger(L, 6), len = luaL_checkinteger(L, 7);
  int hidx = lua_isnoneornil(L, 4) ? 0 : 4;
  int ctidx = lua_isnoneornil(L, 8) ? 0 : 8;
  HttpFileSend *f;
  if (hidx) luaL_checktype(L, 4, LUA_TTABLE);
  if (ctidx) luaL_checktype(L, 8, LUA_TSTRING);
  luaL_argcheck(L, status >= 200 && status <= 999, 3, "invalid status");
  luaL_argcheck(L, off >= 0 && len >= 0, 6, "invalid range");
  if (file == NULL || file->fd < 0) return aio__closed_error(L, "file");
  if (c->resp != HR_NONE)
    aio__usage(L, "a response was already sent for this request");
  aio__task_enter(L, loop, "send a file");
  aio__hs_check_head(L, c, (int)status, hidx, ctidx);
  f = (HttpFileSend *)calloc(1, sizeof *f);
  if (f == NULL) return aio__nomem(L, "sending a file");
  f->c = c;
  f->fd = file->fd;
  f->off = off;
  f->left = len;
  file->fd = -1;
  aio__io_close(&file->io);
  c->file = f;
  c->resp = HR_FILE;
  aio__hs_send_file_head(L, c, (int)status, hidx, ctidx, (uint64_t)len);
  if (c->is_head || len == 0) {
    send_end(c, 1);
    return 0;
  }
  if (!c->writing && aio_buf_avail(&c->out) == 0) aio__hs_file_kick(c);
  lua_settop(L, 1);
  if (c->resp == HR_DONE) return 0;
  if (!aio_conn_live(c) || c->broken || c->file == NULL)
    return aio__hs_gone(L);
  return aio__io_wait(L, &c->s.io, &c->writers, 0, 0, send_k);
}


static const luaL_Reg file_funcs[] = {
  {"open_file", hs_open_file},
  {"realpath", hs_realpath},
  {"send_file", hs_send_file},
  {NULL, NULL}
};

static const luaL_Reg file_meta[] = {
  {"__gc", aio__io__gc},
  {"__close", aio__io_close_method},
  {NULL, NULL}
};

static const luaL_Reg file_methods[] = {
  {"close", aio__io_close_method},
  {NULL, NULL}
};

static const AioClass file_class = {HTTP_FILE_MT, file_methods, file_meta};


void aio__open_http_file (lua_State *L, int loopidx) {
  aio__class_open(L, loopidx, &file_class);
  lua_pop(L, 1);
  aio__setfuncs(L, loopidx, file_funcs);
}
