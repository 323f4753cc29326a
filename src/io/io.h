/*
** io.h
** The I/O layer: libuv requests and handles as aio objects, the
** descriptor poller, the byte buffer and the buffered reader, and Stream
** (a byte stream over any uv_stream_t). fs, tcp, dns, threads, processes,
** signals, the HTTP client and the database drivers build on it.
** See LICENSE
*/

#ifndef AIO_IO_H
#define AIO_IO_H

#include "core/core.h"

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif


/* ---------------------------------------------------------------------
** Requests (req.c): one libuv request, waited for by one task
** ------------------------------------------------------------------- */

/*
** A libuv request in a userdata (class aio.IoRequest), which starts with
** Req. The userdata is anchored while libuv owns the request
** (aio__req_start until the callback calls aio__req_done), so the memory
** and whatever its user values keep alive (strings being written, the
** object it works on) stay valid even if the task that started it is
** cancelled or killed. The task waiting for it is linked in `waiters`; a
** task woken by anything else is unlinked, so the callback then only
** records the outcome and the request is collected once nobody refers to
** it.
*/
typedef struct Req {
  Link waiters;                /* the wait link of the task waiting */
  Loop *loop;
  void (*gc) (struct Req *r);  /* frees what the request owns, or NULL */
  uint32_t anchor;             /* anchor slot while in flight, else 0 */
  int status;                  /* outcome: >= 0, or a UV_E* code */
} Req;

void *aio__req_new (lua_State *L, Loop *loop, size_t size, int nuv);
void aio__req_start (lua_State *L, Req *r, int idx);
void aio__req_done (Req *r, int status);
int aio__req_wait (lua_State *L, Task *t, Req *r, lua_KContext ctx,
                   lua_KFunction k);


/* ---------------------------------------------------------------------
** Handles (handle.c): I/O objects that own libuv handles
** ------------------------------------------------------------------- */

struct IoHandle;

/* What kind of I/O object an IoHandle is. */
typedef struct IoType {
  const char *what;      /* "stream": "attempt to use a closed stream" */
  /* Closes its handles (aio__io_close_handle) and wakes its waiters;
  ** called once, by aio__io_close. Never runs Lua. */
  void (*close) (struct IoHandle *io);
  /* A handle's close callback ran (or NULL). Never runs Lua. */
  void (*closed) (struct IoHandle *io, uv_handle_t *h);
  /* Frees what it owns besides itself (or NULL). */
  void (*release) (struct IoHandle *io);
} IoType;

/*
** Memory shared by a Lua object and the libuv handles in it: malloc'd,
** starting with IoHandle, and every handle's `data` points at it. It is
** freed when both the object is gone (its __gc, or it never had one:
** `orphan`) and every handle's close callback has run, whichever comes
** last, so neither libuv nor a stale object ever sees freed memory.
**
** The Lua side is one userdata (IoRef) per object, made by aio__io_push,
** whose class registers aio__io_close_method as `close`/`__close` and
** aio__io__gc as `__gc`: one idempotent close for all three. While it has
** an object the IoHandle is a Closable of the run, so the end of the run
** closes it and an object of a finished run raises `closed`.
*/
typedef struct IoHandle {
  AioHandle ah;             /* ah.on_close: the shared close callback */
  Closable run;             /* in loop->closables while it has an object */
  const IoType *type;
  Loop *loop;
  uint8_t nopen;            /* its handles whose close callback is due */
  uint8_t ncounted;         /* of those, counted in loop->nhandles */
  uint8_t closing;          /* aio__io_close ran: no more use */
  uint8_t orphan;           /* no Lua object refers to it (any more) */
  uint8_t passive;          /* it waits for new work from outside
                               (connections to accept, signals): a task
                               waiting on it does not wait on I/O, so a
                               virtual clock may jump (aio__wait_io) */
} IoHandle;

/* The userdata of an I/O object; user values are the module's own. */
typedef struct IoRef {
  IoHandle *io;
} IoRef;

void *aio__io_new (Loop *loop, size_t size, const IoType *type);
void aio__io_opened (IoHandle *io, uv_handle_t *h);
void aio__io_close_handle (IoHandle *io, uv_handle_t *h);
void aio__io_close (IoHandle *io);
void aio__io_push (lua_State *L, IoHandle *io, const char *cls, int nuv);
IoHandle *aio__io_self (lua_State *L);
IoHandle *aio__io_check (lua_State *L);
int aio__io_close_method (lua_State *L);
int aio__io__gc (lua_State *L);
int aio__io_wait (lua_State *L, IoHandle *io, Link *list, double timeout,
                  lua_KContext ctx, lua_KFunction k);
int aio__io_resumed (lua_State *L, IoHandle *io);

#define aio_io_live(io) (!(io)->closing)


/* ---------------------------------------------------------------------
** Descriptor poller (poller.c): a uv_poll_t woken into tasks
** ------------------------------------------------------------------- */

/*
** Watches a descriptor someone else reads and writes (libpq's socket,
** curl's). What libuv reports is kept in `ready` until a waiter takes it;
** `on_event`, when set, is called instead (the HTTP client drives curl
** from it). Closing it only stops watching: the descriptor is its
** owner's, and must still be open (libuv removes it from epoll).
*/
typedef struct Poller {
  IoHandle io;
  uv_poll_t h;
  Link waiters;          /* tasks in aio__poller_wait */
  int fd;
  int want;              /* what is watched for; 0: muted */
  int events;            /* what libuv polls; 0: stopped */
  int ready;             /* events seen, not taken yet */
  int status;            /* an error libuv reported, or 0 */
  void (*on_event) (struct Poller *p, int status, int events);
} Poller;

Poller *aio__poller_new (Loop *loop, int fd, size_t size,
                         const IoType *type, int *err);
int aio__poller_watch (Poller *p, int events);
void aio__poller_close (IoHandle *io);
int aio__poller_wait (lua_State *L, Poller *p, int events, double timeout,
                      lua_KContext ctx, lua_KFunction k);


/* ---------------------------------------------------------------------
** Byte buffer and buffered reader (buf.c)
** ------------------------------------------------------------------- */

/* Bytes: data[off, len) are the unread ones; `cap` is allocated. */
typedef struct Buf {
  char *data;            /* malloc'd, or NULL */
  size_t off, len, cap;
} Buf;

#define aio_buf_avail(b) ((b)->len - (b)->off)
#define aio_buf_head(b) ((b)->data + (b)->off)
#define aio_buf_tail(b) ((b)->data + (b)->len)
#define aio_buf_room(b) ((b)->cap - (b)->len)

int aio__buf_reserve (Buf *b, size_t n);
int aio__buf_append (Buf *b, const void *p, size_t n);
void aio__buf_consume (Buf *b, size_t n, size_t keep);
void aio__buf_free (Buf *b);

/*
** A buffered reader over a Buf that its owner fills (a socket's read
** callback, a file's read request): the formats Stream and File read.
** Each returns AIO_READ_OK with the result pushed, or says what it needs:
** more input (AIO_READ_MORE), or that the input ended with nothing left
** (AIO_READ_END, nothing pushed). `end` tells whether more can come.
*/
typedef struct Reader {
  Buf buf;
  size_t scan;           /* bytes after buf.off known to hold no newline */
  size_t keep;           /* capacity kept when the buffer empties */
} Reader;

enum { AIO_READ_OK, AIO_READ_MORE, AIO_READ_END, AIO_READ_LONG };

#define AIO_LINE_CRLF 1  /* read_line: drop a "\r" before the "\n" */
#define AIO_LINE_KEEP 2  /* read_line: keep the newline ("L") */

int aio__read_line (lua_State *L, Reader *r, int end, size_t limit,
                    int flags, size_t *taken);
int aio__read_exactly (lua_State *L, Reader *r, int end, size_t n);
int aio__read_upto (lua_State *L, Reader *r, int end, size_t n);
void aio__read_take (lua_State *L, Reader *r, size_t n);


/* ---------------------------------------------------------------------
** Streams (stream.c): a byte stream over any uv_stream_t
** ------------------------------------------------------------------- */

struct Stream;
typedef struct Tls Tls;        /* tls.c: TLS over a stream's socket */

/*
** A protocol that reads a stream itself (WebSocket), embedded in its own
** struct: once set, the read callback hands every input (new bytes in
** `in`, or the end or an error in `rerr`) to `on_input` instead of waking
** readers, and reading stays on until the protocol stops it; `on_close`
** tells it the stream is being closed. Neither runs Lua.
*/
typedef struct StreamUpper {
  void (*on_input) (struct Stream *s, struct StreamUpper *up);
  void (*on_close) (struct Stream *s, struct StreamUpper *up);
} StreamUpper;

/*
** A byte stream (a TCP connection, a pipe) behind an aio.Stream object.
** Reading is on (uv_read_start) only while a task waits for data, plus at
** most one read with nobody waiting, which is kept in `in` and stops it.
** Over TLS (`tls`), `in` holds plaintext and writes are encrypted first;
** the API is the same.
*/
typedef struct Stream {
  IoHandle io;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  Link readers;          /* tasks waiting for data or for the close */
  Link pending;          /* in a server's queue of accepted connections */
  char *scratch;         /* the loop's shared read buffer (AIO_READ_SIZE) */
  Reader in;             /* received, not yet read */
  size_t limit;          /* longest line read_line accepts */
  double timeout;        /* seconds a read or write may wait; 0: no limit */
  Tls *tls;              /* TLS over the socket, or NULL */
  StreamUpper *upper;    /* the protocol reading it, or NULL */
  int rerr;              /* 0, UV_EOF, or the error that ended reading */
  uint8_t reading;       /* uv_read_start is on */
} Stream;

#define AIO_READ_SIZE 65536
#define AIO_ETLS (-0x7e00)   /* Stream.rerr: the TLS layer failed (tls.c) */

extern const IoType aio__stream_type;
Stream *aio__stream_new (Loop *loop, char *scratch, size_t size,
                         const IoType *type);
Stream *aio__stream_alloc (Loop *loop, char *scratch);
void aio__stream_close (IoHandle *io);
void aio__stream_release (IoHandle *io);
void aio__stream_push (lua_State *L, Stream *s);
void aio__open_stream (lua_State *L);
char *aio__io_scratch (lua_State *L);
int aio__stream_read_start (Stream *s);
void aio__stream_read_stop (Stream *s);
int aio__stream_wait (lua_State *L, Stream *s, lua_KContext ctx,
                      lua_KFunction k);
int aio__stream_write_raw (lua_State *L, Stream *s, Buf *b, size_t keep,
                           size_t wait_above);
int aio__stream_send (lua_State *L, Stream *s, Buf *b, size_t keep,
                      size_t wait_above);

/* tls.c: the TLS layer of a Stream (see Stream.tls) */
int aio__tls_input (Stream *s, const char *data, ssize_t n);
int aio__tls_encrypt (Stream *s, const char *p, size_t n, Buf **out);
void aio__tls_close (Stream *s);
void aio__tls_shutdown (Stream *s);
void aio__tls_free (Stream *s);
const char *aio__tls_error (Stream *s);
int aio__tls_start (lua_State *L);
int aio__tls_info (lua_State *L);


/* ---------------------------------------------------------------------
** Connecting (connect.c): TCP and unix sockets
** ------------------------------------------------------------------- */

/* A connect request; user value 1 keeps the object being connected. */
typedef struct ConnectReq {
  Req r;
  uv_connect_t c;
} ConnectReq;

ConnectReq *aio__connect_start (lua_State *L, Loop *loop, uv_stream_t *h,
                                const struct sockaddr *addr,
                                const char *path, int objidx, int *err);
int aio__connect_error (lua_State *L, int err, int idx);


/* ---------------------------------------------------------------------
** Shared by the modules
** ------------------------------------------------------------------- */

/* file.c: the File class and fs.open, into the core.fs table at fsidx */
void aio__open_file (lua_State *L, int fsidx);

/* thread_copy.c: values copied between Lua states as bytes. */
int aio__copy_out (lua_State *L, int first, int n, Buf *b, char *err,
                   size_t errlen);
int aio__copy_in (lua_State *L, const char *data, size_t len);

/* tcp.c */
void aio__tcp_listen_on (lua_State *L, IoHandle *io, uv_tcp_t *tcp,
                         const struct sockaddr_storage *ss, int backlog,
                         int reuse_port, uv_connection_cb cb,
                         const char *cls);

/* address.c */
int aio__parse_address (const char *host, int port,
                        struct sockaddr_storage *ss);
int aio__push_address (lua_State *L, uv_tcp_t *tcp, int peer);
void aio__push_hostport (lua_State *L, const char *host, int port);
const char *aio__checkpath (lua_State *L, int arg);

/* signame.c */
const char *aio__signame (int signum);
int aio__signum (const char *name);
void aio__ignore_sigpipe (void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
