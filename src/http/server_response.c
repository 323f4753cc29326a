/*
** server_response.c
** Responses, assembled in C: the status line and headers (with Date
** formatted once per second, Content-Length or chunked framing, and
** Connection as keep-alive allows), written with uv_try_write and then
** one uv_write at a time from the connection's output buffer; whole
** responses, streamed ones (a writer with backpressure) and error
** answers.
** See LICENSE
*/

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server.h"

/* How a head frames the body. */
enum { FRAME_FULL, FRAME_STREAM, FRAME_LENGTH };

/* What the handler's headers held (build_head). */
#define UH_CTYPE 1
#define UH_DATE 2
#define UH_CLOSE 4
#define UH_CLEN 8


/* ---------------------------------------------------------------------
** Writing
** ------------------------------------------------------------------- */

static void write_cb (uv_write_t *req, int status);

/* Hands the output buffer to libuv (one write in flight at a time). */
static void start_write (HttpConn *c) {
  Buf t = c->wout;
  uv_buf_t b;
  int rc;
  c->wout = c->out;
  c->out = t;
  b = uv_buf_init(aio_buf_head(&c->wout), (unsigned)aio_buf_avail(&c->wout));
  rc = uv_write(&c->wreq, &c->s.h.stream, &b, 1, write_cb);
  if (rc < 0) {
    aio__buf_consume(&c->wout, aio_buf_avail(&c->wout), 0);
    aio__hs_conn_close(c);
    return;
  }
  c->writing = 1;
}


static size_t pending (HttpConn *c) {
  return aio_buf_avail(&c->out) + aio_buf_avail(&c->wout);
}


static void write_cb (uv_write_t *req, int status) {
  HttpConn *c = aio_container_of(req, HttpConn, wreq);
  c->writing = 0;
  aio__buf_consume(&c->wout, aio_buf_avail(&c->wout), 0);
  if (status < 0) {
    if (aio_conn_live(c)) {
      c->broken = 1;
      aio__hs_conn_close(c);
    }
    return;
  }
  if (aio_buf_avail(&c->out) > 0) start_write(c);
  if (pending(c) <= HS_HIGH_WATER)
    aio__notify_all(c->s.io.loop, &c->writers);
  if (!c->writing) aio__hs_write_done(c);
}


/*
** Queues `bufs` for the client, in order after what is queued: written
** at once as far as the socket takes it (uv_try_write), the rest copied
** into the output buffer. Returns 0, or a UV_E* code when the
** connection is gone (it is then closed). Never raises.
*/
int aio__hs_send (HttpConn *c, const uv_buf_t *bufs, int n) {
  size_t done = 0;
  int i;
  if (!aio_conn_live(c) || c->broken) return UV_EPIPE;
  if (!c->writing && aio_buf_avail(&c->out) == 0) {
    int rc = uv_try_write(&c->s.h.stream, bufs, (unsigned)n);
    if (rc >= 0) done = (size_t)rc;
    else if (rc != UV_EAGAIN) {
      c->broken = 1;
      aio__hs_conn_close(c);
      return rc;
    }
  }
  for (i = 0; i < n; i++) {
    size_t len = bufs[i].len;
    if (done >= len) {
      done -= len;
      continue;
    }
    if (!aio__buf_append(&c->out, bufs[i].base + done, len - done)) {
      aio__hs_conn_close(c);
      return UV_ENOMEM;
    }
    done = 0;
  }
  if (!c->writing && aio_buf_avail(&c->out) > 0) start_write(c);
  return 0;
}


/* ---------------------------------------------------------------------
** Heads
** ------------------------------------------------------------------- */

static const char *reason (int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}


/* Writes "Date: <IMF-fixdate>\r\n" for `t` into `out` (40 bytes), in
** English whatever the locale. */
static void format_date (char *out, time_t t) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
                                  "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May",
                                     "Jun", "Jul", "Aug", "Sep", "Oct",
                                     "Nov", "Dec"};
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL) {      /* out of range: the epoch */
    t = 0;
    gmtime_r(&t, &tm);
  }
  snprintf(out, 40, "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
           days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
           tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}


/* The server's "Date: ...\r\n" line, formatted again once per second. */
const char *aio__hs_date (HttpServer *srv) {
  time_t now = time(NULL);
  if ((int64_t)now != srv->date_sec) {
    format_date(srv->date, now);
    srv->date_sec = (int64_t)now;
  }
  return srv->date;
}


/* A head being written: bytes past `cap` are only counted. */
typedef struct HeadOut {
  char *p;
  size_t len, cap;
} HeadOut;

static void put (HeadOut *h, const char *s, size_t n) {
  if (h->len + n <= h->cap && n > 0) memcpy(h->p + h->len, s, n);
  h->len += n;
}

#define puts_(h, s) put((h), (s), strlen(s))
#define putlit(h, s) put((h), (s), sizeof(s) - 1)


/* Writes the decimal digits of `v`. */
static void put_uint (HeadOut *h, uint64_t v) {
  char buf[24], *p = buf + sizeof buf;
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  put(h, p, (size_t)(buf + sizeof buf - p));
}


static int no_body_status (int status) {
  return status < 200 || status == 204 || status == 304;
}


#define name_eq aio__hs_lower_eq


/* Writes one header line; its value is at the top of the stack (a string
** or a number). Raises `usage` for a name that is not a token or a value
** with CR, LF or NUL. */
static void put_field (lua_State *L, HeadOut *h, const char *name,
                       size_t nlen) {
  size_t vlen, i;
  const char *v;
  int t = lua_type(L, -1);
  if (t != LUA_TSTRING && t != LUA_TNUMBER)
    aio__usage(L, "response header '%s': a string or a number expected, "
               "got %s", name, luaL_typename(L, -1));
  v = lua_tolstring(L, -1, &vlen);
  for (i = 0; i < vlen; i++)
    if (v[i] == '\r' || v[i] == '\n' || v[i] == 0)
      aio__usage(L, "response header '%s': the value contains CR, LF or NUL",
                 name);
  put(h, name, nlen);
  putlit(h, ": ");
  put(h, v, vlen);
  putlit(h, "\r\n");
}


/* Writes the handler's headers (table at `hidx`, name -> value or array
** of values), skipping those the server frames itself; returns UH_*
** flags. */
static int put_user_headers (lua_State *L, HeadOut *h, int hidx, int nobody) {
  int flags = 0;
  lua_pushnil(L);
  while (lua_next(L, hidx) != 0) {                  /* ... name value */
    size_t nlen, i;
    const char *name;
    if (lua_type(L, -2) != LUA_TSTRING)
      aio__usage(L, "response header names must be strings, got %s",
                 luaL_typename(L, -2));
    name = lua_tolstring(L, -2, &nlen);
    for (i = 0; i < nlen; i++)
      if (!aio__hs_is_tchar((unsigned char)name[i])) break;
    if (nlen == 0 || i < nlen)
      aio__usage(L, "invalid response header name '%s'", name);
    if (name_eq(name, nlen, "content-length")) {
      flags |= UH_CLEN;
      if (!nobody) { lua_pop(L, 1); continue; }    /* the server frames it */
    }
    else if (name_eq(name, nlen, "transfer-encoding")) {
      lua_pop(L, 1);
      continue;
    }
    else if (name_eq(name, nlen, "connection")) {
      const char *v = lua_tostring(L, -1);
      if (v != NULL && name_eq(v, strlen(v), "close")) flags |= UH_CLOSE;
      lua_pop(L, 1);
      continue;
    }
    else if (name_eq(name, nlen, "content-type")) flags |= UH_CTYPE;
    else if (name_eq(name, nlen, "date")) flags |= UH_DATE;
    if (lua_type(L, -1) == LUA_TTABLE) {            /* repeated field */
      lua_Integer k, n = (lua_Integer)lua_rawlen(L, -1);
      for (k = 1; k <= n; k++) {
        lua_rawgeti(L, -1, k);
        put_field(L, h, name, nlen);
        lua_pop(L, 1);
      }
    }
    else put_field(L, h, name, nlen);
    lua_pop(L, 1);
  }
  return flags;
}


/* May the connection stay open after this response? */
static int keep_alive (HttpConn *c, int flags) {
  HttpServer *srv = c->srv;
  if (srv == NULL || srv->closing || c->broken || c->must_close) return 0;
  if ((flags & UH_CLOSE) || !aio__hp_keep_alive(&c->hp) ||
      aio__hp_upgrade(&c->hp))
    return 0;
  if (c->body_done) return 1;
  if (c->hp.expect_continue && !c->continued) return 0;
  if (c->hp.chunked) return 0;           /* its rest is of unknown size */
  return c->hp.clen - c->hp.body_total <= HS_DRAIN_MAX;
}


/*
** Writes the head of a response into `h`: status line, the handler's
** headers (table at `hidx`, 0: none), Content-Type from `ctidx` (0: none)
** unless given, the framing (FRAME_FULL and FRAME_LENGTH: Content-Length
** `clen`; FRAME_STREAM: chunked, or the end of the connection for an
** HTTP/1.0 client), Date, Connection. Sets c->keep and c->chunked_out.
*/
static void build_head (lua_State *L, HttpConn *c, int status, int hidx,
                        int ctidx, int frame, uint64_t clen, HeadOut *h) {
  char line[40];
  int nobody = no_body_status(status), flags = 0;
  int v10 = aio__hp_version(&c->hp) == 10;
  if (status == 200) putlit(h, "HTTP/1.1 200 OK");
  else {
    putlit(h, "HTTP/1.1 ");
    put_uint(h, (uint64_t)status);
    putlit(h, " ");
    puts_(h, reason(status));
  }
  putlit(h, "\r\n");
  if (hidx != 0) flags = put_user_headers(L, h, hidx, nobody);
  if (!(flags & UH_CTYPE) && ctidx != 0 && !nobody) {
    size_t len;
    const char *ct = lua_tolstring(L, ctidx, &len);
    putlit(h, "Content-Type: ");
    put(h, ct, len);
    putlit(h, "\r\n");
  }
  c->chunked_out = 0;
  c->keep = (uint8_t)keep_alive(c, flags);
  if (!nobody) {
    if (frame == FRAME_STREAM) {
      if (v10) c->keep = 0;            /* the body ends with the connection */
      else {
        putlit(h, "Transfer-Encoding: chunked\r\n");
        c->chunked_out = !c->is_head;
      }
    }
    else {
      putlit(h, "Content-Length: ");
      put_uint(h, clen);
      putlit(h, "\r\n");
    }
  }
  if (!(flags & UH_DATE)) {
    if (c->srv != NULL) puts_(h, aio__hs_date(c->srv));
    else {
      format_date(line, time(NULL));
      puts_(h, line);
    }
  }
  if (!c->keep) putlit(h, "Connection: close\r\n");
  else if (v10) putlit(h, "Connection: keep-alive\r\n");
  putlit(h, "\r\n");
}


/*
** Builds the head (see build_head) and queues it followed by `body` (n
** bytes, or nothing). The head is written into a stack buffer, or into a
** userdata when it is large (built twice: the first pass measures).
*/
static void send_head (lua_State *L, HttpConn *c, int status, int hidx,
                       int ctidx, int frame, uint64_t clen,
                       const char *body, size_t n) {
  char stack[1024];
  HeadOut h;
  uv_buf_t bufs[2];
  h.p = stack;
  h.len = 0;
  h.cap = sizeof stack;
  build_head(L, c, status, hidx, ctidx, frame, clen, &h);
  if (h.len > h.cap) {
    h.cap = h.len;
    h.p = (char *)lua_newuserdatauv(L, h.cap, 0);
    h.len = 0;
    build_head(L, c, status, hidx, ctidx, frame, clen, &h);
  }
  bufs[0] = uv_buf_init(h.p, (unsigned)h.len);
  bufs[1] = uv_buf_init((char *)body, (unsigned)n);
  aio__hs_send(c, bufs, n > 0 ? 2 : 1);
}


static int check_status (lua_State *L, int arg) {
  lua_Integer s = luaL_checkinteger(L, arg);
  luaL_argcheck(L, s >= 100 && s <= 999, arg, "status must be 100 to 999");
  return (int)s;
}


static int opt_table (lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return 0;
  luaL_checktype(L, arg, LUA_TTABLE);
  return arg;
}


static int opt_string (lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return 0;
  luaL_checktype(L, arg, LUA_TSTRING);
  return arg;
}


static void check_fresh (lua_State *L, HttpConn *c) {
  if (c->resp != HR_NONE)
    aio__usage(L, "a response was already sent for this request");
}


/*
** core.http_server.respond(conn, n, status, headers, body, ctype): sends a
** whole response (no body for HEAD, 1xx, 204, 304). Does not suspend: what
** the socket does not take at once is buffered. Does nothing once the
** client is gone.
*/
static int hs_respond (lua_State *L) {
  HttpConn *c = aio__hs_conn_or_null(L, 1, 2);
  int status = check_status(L, 3);
  int hidx = opt_table(L, 4), ctidx = opt_string(L, 6);
  size_t blen = 0;
  const char *body = NULL;
  if (!lua_isnoneornil(L, 5)) body = luaL_checklstring(L, 5, &blen);
  if (c == NULL || c->broken) return 0;  /* the client is gone */
  check_fresh(L, c);
  send_head(L, c, status, hidx, ctidx, FRAME_FULL, blen, body,
            (c->is_head || no_body_status(status)) ? 0 : blen);
  c->resp = HR_DONE;
  return 0;
}


/* core.http_server.stream(conn, n, status, headers, ctype): sends the head
** of a streamed response (chunked; for an HTTP/1.0 client the body ends
** with the connection). */
static int hs_stream (lua_State *L) {
  HttpConn *c = aio__hs_conn(L, 1, 2);
  int status = check_status(L, 3);
  int hidx = opt_table(L, 4), ctidx = opt_string(L, 5);
  check_fresh(L, c);
  send_head(L, c, status, hidx, ctidx, FRAME_STREAM, 0, NULL, 0);
  c->resp = no_body_status(status) ? HR_DONE : HR_STREAM;
  return 0;
}


static HttpConn *stream_conn (lua_State *L) {
  HttpConn *c = aio__hs_conn(L, 1, 2);
  if (c->resp != HR_STREAM) aio__usage(L, "the response writer is closed");
  return c;
}


/* Raises `io` (code EPIPE): the client went away while a response was
** written. */
int aio__hs_gone (lua_State *L) {
  aio__error_new(L, "io", "the client closed the connection");
  aio__setfield_str(L, "code", "EPIPE");
  return lua_error(L);
}


static int drain_k (lua_State *L, int status, lua_KContext ctx) {
  IoRef *ref = (IoRef *)lua_touserdata(L, 1);
  HttpConn *c = (HttpConn *)ref->io;
  Task *t = c->s.io.loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  if (!aio_conn_live(c) || c->broken) {
    aio__checkpoint(L, t);               /* a cancellation comes first */
    return aio__hs_gone(L);
  }
  if (pending(c) > HS_HIGH_WATER)
    return aio__io_wait(L, &c->s.io, &c->writers, 0, 0, drain_k);
  return 0;
}


/* core.http_server.write(conn, n, data) (suspends while more than
** HS_HIGH_WATER bytes wait for the client): a chunk of a streamed body.
** Raises `io` once the client is gone. */
static int hs_write (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  HttpConn *c = stream_conn(L);
  size_t len;
  const char *data = luaL_checklstring(L, 3, &len);
  lua_settop(L, 3);
  aio__task_enter(L, loop, "response writer:write");
  if (c->broken) return aio__hs_gone(L);
  if (len > 0 && !c->is_head) {
    if (c->chunked_out) {
      char size[24];
      uv_buf_t bufs[3];
      snprintf(size, sizeof size, "%zx\r\n", len);
      bufs[0] = uv_buf_init(size, (unsigned)strlen(size));
      bufs[1] = uv_buf_init((char *)data, (unsigned)len);
      bufs[2] = uv_buf_init((char *)"\r\n", 2);
      aio__hs_send(c, bufs, 3);
    }
    else {
      uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
      aio__hs_send(c, &b, 1);
    }
  }
  if (!aio_conn_live(c) || c->broken) return aio__hs_gone(L);
  if (pending(c) > HS_HIGH_WATER)
    return aio__io_wait(L, &c->s.io, &c->writers, 0, 0, drain_k);
  return 0;
}


/* core.http_server.finish(conn, n): ends a streamed body. */
static int hs_finish (lua_State *L) {
  HttpConn *c = aio__hs_conn(L, 1, 2);
  if (c->resp != HR_STREAM) return 0;
  c->resp = HR_DONE;
  if (c->chunked_out) {
    uv_buf_t b = uv_buf_init((char *)"0\r\n\r\n", 5);
    aio__hs_send(c, &b, 1);
  }
  return 0;
}


/* core.http_server.response_state(conn, n) -> "none", "streaming",
** "file", "done", or "closed" once the connection or the request is over.
** Never raises. */
static int hs_response_state (lua_State *L) {
  static const char *const names[] = {"none", "streaming", "file", "done"};
  IoRef *ref = aio__hs_test_conn(L, 1);
  HttpConn *c = ref != NULL ? (HttpConn *)ref->io : NULL;
  if (c == NULL || !aio_conn_live(c) || c->state != HC_ACTIVE ||
      c->seq != (uint32_t)lua_tointeger(L, 2) || c->broken)
    lua_pushliteral(L, "closed");
  else
    lua_pushstring(L, names[c->resp]);
  return 1;
}


/* core.http_server.http_date(t) -> the IMF-fixdate of epoch seconds `t`
** ("Sun, 06 Nov 1994 08:49:37 GMT"), in English whatever the locale. */
static int hs_http_date (lua_State *L) {
  char line[40];
  lua_Number n = luaL_checknumber(L, 1);
  time_t t = n >= 0 && n < 253402300800.0 ? (time_t)n : 0;  /* years 1970-9999 */
  format_date(line, t);
  lua_pushlstring(L, line + 6, strlen(line) - 8);
  return 1;
}


/*
** Queues an answer of `status` from the server itself (the request could
** not be served: 400, 408, 413, 431, 505, ...) with Connection: close.
** Returns 0, or a UV_E* code. Never raises.
*/
int aio__hs_send_error (HttpConn *c, int status) {
  char head[256], date[40];
  const char *r = reason(status);
  uv_buf_t b;
  int n;
  if (c->srv != NULL) memcpy(date, aio__hs_date(c->srv), sizeof date);
  else format_date(date, time(NULL));
  n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; "
               "charset=utf-8\r\nContent-Length: %d\r\n%sConnection: close"
               "\r\n\r\n%s\n", status, r, (int)strlen(r) + 1, date, r);
  c->resp = HR_DONE;
  c->keep = 0;
  b = uv_buf_init(head, (unsigned)n);
  return aio__hs_send(c, &b, 1);
}


/* Checks the handler's headers of a response (raises `usage` as sending
** would) without sending anything. */
void aio__hs_check_head (lua_State *L, HttpConn *c, int status, int hidx,
                         int ctidx) {
  HeadOut h;
  uint8_t keep = c->keep, chunked = c->chunked_out;
  h.p = NULL;
  h.len = h.cap = 0;
  build_head(L, c, status, hidx, ctidx, FRAME_LENGTH, 0, &h);
  c->keep = keep;
  c->chunked_out = chunked;
}


/* Builds and sends the head of a response whose body of `clen` bytes the
** caller sends itself (a file): used by server_file.c. */
void aio__hs_send_file_head (lua_State *L, HttpConn *c, int status, int hidx,
                             int ctidx, uint64_t clen) {
  send_head(L, c, status, hidx, ctidx, FRAME_LENGTH, clen, NULL, 0);
}


static const luaL_Reg response_funcs[] = {
  {"respond", hs_respond},
  {"stream", hs_stream},
  {"write", hs_write},
  {"finish", hs_finish},
  {"response_state", hs_response_state},
  {"http_date", hs_http_date},
  {NULL, NULL}
};


void aio__open_http_response (lua_State *L, int loopidx) {
  aio__setfuncs(L, loopidx, response_funcs);
}
