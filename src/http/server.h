/*
** server.h
** Types shared by the HTTP server's C files: the request parser behind a
** thin interface (server_parser.c), the listening server (server.c) and
** its connections (server_conn.c), requests handed to Lua
** (server_request.c) and responses (server_response.c, server_file.c).
** See LICENSE
*/

/*
** The shape (nginx, H2O, uvicorn + httptools). One connection is one
** reader in C: its read callback feeds the parser, which collects the
** request head in C memory. When the head is complete the connection is
** queued on its server and the server's dispatcher task (a C loop in a
** task of its own, srv:dispatch) makes the request table, once, and
** spawns the handler task with it. The body stays in the kernel (or in
** the connection's input buffer) until the handler asks for it, through
** the parser again. A response is assembled in C and written with one
** uv_write of several buffers (uv_try_write first). One request of a
** connection is served at a time: the next one (pipelined, or after
** keep-alive) is parsed once the handler task has finished and its
** response is complete, so responses go out in order. The header, idle
** and linger timeouts are one TimerCb per connection on the loop's
** deadline queue; body reads wait with the task's own timer.
**
** Lifetimes. A connection (HttpConn) is an IoHandle whose memory starts
** with a Stream (its uv_tcp_t, its input reader), owned by its server
** until the first request gets a Lua object (class aio.HttpConnection),
** which is anchored while the connection is open; request tables refer
** to that object, so the memory outlives the connection as long as a
** request table does. A handler task's end is seen by C through the
** connection's `done` Waiter in the task's awaiters.
**
** Takeover (for WebSocket; req:_takeover() in lua/aio/http/server.lua
** calls core.http_server.takeover, aio__hs_takeover here): a handler may
** take its connection out of HTTP, then writes its own response head
** (101) on it. Parsing stops and the object's metatable becomes
** aio.Stream, so every Stream method works on it: reading restarts on
** demand with the Stream's own callbacks, and bytes that arrived after
** the request head are still in s.in. Its close is the stream's close
** (aio__stream_close, called by the connection's IoType close in every
** state). The server stops tracking it as an HTTP connection (its
** handler is no longer awaited or cancelled by a graceful shutdown, nor
** by a client disconnect) but counts it in stats() until it closes; the
** end of the run closes it like any stream.
*/

#ifndef AIO_HTTP_SERVER_H
#define AIO_HTTP_SERVER_H

#include "aio.h"

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

#define HTTP_SERVER_MT "aio.HttpServer"
#define HTTP_CONN_MT "aio.HttpConnection"
#define HTTP_FILE_MT "aio.HttpFile"

#define HS_MAX_FIELDS 100         /* header fields in a head, at most */
#define HS_HEAD_MAX (80 * 1024)   /* the largest max_header_size:
                                  ** http-parser's own limit */
#define HS_HIGH_WATER 65536       /* buffered input/output before pausing */
#define HS_DRAIN_MAX 65536        /* unread body bytes skipped to keep a
                                  ** connection alive, at most */
#define HS_CHUNK_LINE 1024        /* longest chunk-size line (extensions) */
#define HS_LINGER_NS 2000000000u  /* reading and dropping input after a
                                  ** final response, before closing */


/* ---------------------------------------------------------------------
** The parser interface (server_parser.c): http-parser 2.9.4 in strict
** mode is private to server_parser.c; nothing else sees its types, so
** llhttp can replace it there.
** ------------------------------------------------------------------- */

/* A request head being collected: the target, then each field's name
** and value, in `data`; malloc'd while a head is parsed and served. */
typedef struct HttpField {
  uint32_t name, nlen;           /* offset and length of the name */
  uint32_t value, vlen;          /* of the value (OWS trimmed) */
} HttpField;

typedef struct HttpHead {
  struct HttpHead *next;         /* in a HeadPool while free */
  Buf data;                      /* the bytes of target, names, values */
  uint32_t url_len;              /* the target is data[0, url_len) */
  uint32_t nfields, cap;         /* fields used, allocated */
  HttpField *fields;
} HttpHead;

/* Heads kept for reuse by a server's connections (at most HS_POOL). */
typedef struct HeadPool {
  HttpHead *free;
  uint32_t n;
} HeadPool;

#define HS_POOL 64

/* What aio__hp_feed found. */
enum {
  HP_MORE,      /* everything was used; more input is needed */
  HP_HEAD,      /* a request head is complete (parsing paused) */
  HP_DONE,      /* the message (body included) is complete (paused) */
  HP_ERROR      /* the input is invalid: p->status says what to answer */
};

/* The parser's own state, opaque outside server_parser.c. */
#define HP_IMPL_WORDS 6

typedef struct HttpParse {
  uint64_t impl[HP_IMPL_WORDS];  /* the C parser (first: see the .c) */
  HttpHead *head;                /* the head being collected, or NULL */
  HeadPool *pool;                /* where heads come from, or NULL */
  Buf *body;                     /* where body bytes go (NULL: dropped) */
  const char *scan;              /* input classified up to here */
  uint64_t clen;                 /* Content-Length, if has_clen */
  uint64_t body_total;           /* body bytes parsed so far */
  uint64_t max_body;             /* 413 past this (chunked; 0: none) */
  uint32_t head_bytes;           /* bytes of the head so far */
  uint32_t max_head;             /* 431 past this */
  uint32_t lex_count;            /* bytes of the current framing line */
  uint64_t chunk_size;           /* size on the current chunk line */
  uint16_t status;               /* HP_ERROR: the status to answer */
  uint8_t phase;                 /* HP_HEAD (collecting), HP_MORE (body),
                                 ** HP_DONE */
  uint8_t last;                  /* the last head callback (url, field,
                                 ** value) */
  uint8_t lex;                   /* state of the framing check */
  uint8_t lex_skip;              /* next input byte was checked already */
  uint8_t has_clen, chunked, has_host, expect_continue;
  const char *reason;            /* HP_ERROR: what was wrong (for logs) */
} HttpParse;

void aio__hp_init (HttpParse *p, uint32_t max_head, HeadPool *pool);
void aio__hp_pool_free (HeadPool *pool);
int aio__hp_feed (HttpParse *p, const char *data, size_t len, size_t *used);
void aio__hp_resume (HttpParse *p);
void aio__hp_next (HttpParse *p);
void aio__hp_free (HttpParse *p);
const char *aio__hp_method (const HttpParse *p);
int aio__hp_is_head (const HttpParse *p);
int aio__hp_version (const HttpParse *p);   /* 10 or 11 */
int aio__hp_keep_alive (const HttpParse *p);
int aio__hp_upgrade (const HttpParse *p);
int aio__hp_has_body (const HttpParse *p);
int aio__hp_split_target (const char *url, size_t len, size_t *path,
                          size_t *plen, size_t *query, size_t *qlen);
int aio__hs_is_tchar (int ch);
int aio__hs_lower_eq (const char *s, size_t len, const char *lower);


/* ---------------------------------------------------------------------
** The server (server.c) and its connections (server_conn.c)
** ------------------------------------------------------------------- */

/* Limits and timeouts of a server (durations in ns; 0: none). */
typedef struct HttpLimits {
  uint64_t header_ns, idle_ns, body_ns;
  double body_secs;              /* body_ns in seconds */
  uint64_t max_body;
  uint32_t max_head;
  uint32_t max_conns;            /* 0: no limit */
} HttpLimits;

typedef struct HttpServer {
  IoHandle io;
  uv_tcp_t tcp;                  /* the listening socket */
  Link conns;                    /* HttpConn.link: open HTTP connections */
  Link ready;                    /* HttpConn.qlink: heads to dispatch */
  Link dispatcher;               /* the task in srv:dispatch */
  Link idle_waiters;             /* tasks in srv:wait_idle */
  char *scratch;                 /* the loop's shared read buffer */
  HeadPool heads;                /* request heads for reuse */
  HttpLimits lim;
  uint32_t nconns;               /* open HTTP connections */
  uint32_t ntaken;               /* taken over, not closed yet */
  uint32_t nhandlers;            /* handler tasks not finished */
  uint32_t nlinger;              /* of nconns, those in HC_LINGER */
  uint32_t npending;             /* closed, the handle's close held up by
                                 ** a file send's request in flight */
  uint64_t naccepted, nrequests;
  uint8_t listening;             /* the listening socket is open */
  uint8_t held;                  /* libuv holds a connection not taken */
  uint8_t closing;               /* shutdown: Connection: close */
  int64_t date_sec;              /* second of `date` */
  char date[40];                 /* "Date: ...\r\n" */
} HttpServer;

/* Where a connection is in its life. */
enum {
  HC_HEAD,       /* reading a request head (idle while none began) */
  HC_QUEUED,     /* its head waits for the dispatcher */
  HC_ACTIVE,     /* a handler task serves its request */
  HC_DRAIN,      /* response done: skipping the rest of the body */
  HC_LINGER,     /* written and shut down: dropping input, then close */
  HC_TAKEN       /* taken over: a plain Stream now */
};

/* The response of the current request. */
enum {
  HR_NONE,       /* nothing sent yet */
  HR_STREAM,     /* head sent, body streaming (writer) */
  HR_FILE,       /* head sent, a file being sent */
  HR_DONE        /* complete (queued for writing) */
};

struct HttpFileSend;

typedef struct HttpConn {
  Stream s;                      /* first: the IoHandle, tcp handle, input */
  HttpServer *srv;               /* its server (the server outlives it) */
  Link link;                     /* in srv->conns (HTTP connections) */
  Link qlink;                    /* in srv->ready while HC_QUEUED */
  TimerCb timer;                 /* header, idle or linger deadline */
  HttpParse hp;
  Buf body;                      /* body bytes parsed, not handed out */
  Buf out;                       /* output not handed to libuv yet */
  Buf wout;                      /* output of the write in flight */
  Link writers;                  /* tasks waiting for output to drain */
  Waiter done;                   /* in the handler task's awaiters */
  uv_write_t wreq;               /* the write in flight */
  uv_shutdown_t sreq;            /* the shutdown before lingering */
  struct HttpFileSend *file;     /* a file being sent, or NULL */
  Task *handler;                 /* the handler task, or NULL */
  uint32_t seq;                  /* number of the current request */
  uint32_t anchor;               /* anchor slot of its object, or 0 */
  uint64_t drained;              /* body bytes skipped by HC_DRAIN */
  uint8_t state;                 /* HC_* */
  uint8_t resp;                  /* HR_* */
  uint8_t writing;               /* wreq is in flight */
  uint8_t keep;                  /* the response keeps the connection */
  uint8_t chunked_out;           /* the streamed body is chunked */
  uint8_t body_done;             /* the request body was read to its end */
  uint8_t continued;             /* 100 Continue was sent */
  uint8_t is_head;               /* a HEAD request: no body is sent */
  uint8_t broken;                /* the client is gone */
  uint8_t must_close;            /* the response must close it (a body
                                 ** error, a timeout) */
  uint8_t closing_pending;       /* close the handle once the file
                                 ** send's request returns */
  uint8_t counted;               /* counted in srv->nconns (ntaken) */
  uint8_t shut;                  /* uv_shutdown was called */
} HttpConn;

#define aio_conn_live(c) (aio_io_live(&(c)->s.io))

/* Is `c` waiting for a request, with no byte of one yet? */
#define aio_conn_idle(c) ((c)->state == HC_HEAD && (c)->hp.head == NULL && \
                          aio_buf_avail(&(c)->s.in.buf) == 0)

/* server.c */
void aio__hs_check_idle (HttpServer *srv);
void aio__hs_accept_held (HttpServer *srv);

/* server_conn.c */
void aio__hs_conn_accept (HttpServer *srv);
void aio__hs_conn_dispatched (HttpConn *c, Task *t);
void aio__hs_conn_detach (HttpConn *c);
void aio__open_http_conn (lua_State *L, int loopidx);
HttpConn *aio__hs_conn (lua_State *L, int idx, int seqidx);
HttpConn *aio__hs_conn_or_null (lua_State *L, int idx, int seqidx);
void aio__hs_request_end (HttpConn *c);
void aio__hs_conn_close (HttpConn *c);
void aio__hs_error_close (HttpConn *c, int status);
void aio__hs_read_on (HttpConn *c);
void aio__hs_takeover (HttpConn *c);
void aio__hs_close_done (HttpConn *c);

IoRef *aio__hs_test_conn (lua_State *L, int idx);

/* server_request.c: the request table and the body */
enum {                           /* the keys srv:dispatch keeps on its stack */
  RK_METHOD, RK_TARGET, RK_PATH, RK_QUERY, RK_HEADERS, RK_VERSION, RK_CONN,
  RK_SEQ, RK_COUNT
};
void aio__hs_push_keys (lua_State *L);
void aio__hs_push_request (lua_State *L, HttpConn *c, int mt, int keys);
void aio__open_http_request (lua_State *L, int loopidx);

void aio__hs_write_done (HttpConn *c);

/* server_response.c */
const char *aio__hs_date (HttpServer *srv);
int aio__hs_send (HttpConn *c, const uv_buf_t *bufs, int n);
int aio__hs_send_error (HttpConn *c, int status);
int aio__hs_gone (lua_State *L);
void aio__hs_send_file_head (lua_State *L, HttpConn *c, int status,
                             int hidx, int ctidx, uint64_t clen);
void aio__hs_check_head (lua_State *L, HttpConn *c, int status, int hidx,
                         int ctidx);
void aio__open_http_response (lua_State *L, int loopidx);

/* server_file.c */
void aio__hs_file_kick (HttpConn *c);
void aio__hs_file_abandon (HttpConn *c);
void aio__open_http_file (lua_State *L, int loopidx);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
