/*
** client_request.c
** One HTTP request: its easy handle set up from a normalized spec, the
** curl callbacks that buffer the body and watch deadlines, and the two
** suspending calls: engine:request (until the response) and request:read
** (the next chunk of a streamed body). See LICENSE
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <zlib.h>

#include "aio.h"
#include "http.h"

/* Stack slot of the request userdata in engine:request and its
** continuation (after engine, method, url, headers, body, spec). */
#define RIDX 7


#define checkrequest(L, idx) ((HttpRequest *)aio__checkself(L))


static int failed (HttpRequest *r) {
  return r->state == HTTP_DONE &&
         (r->fail != HTTP_F_NONE || r->result != CURLE_OK);
}


/* Gives back what a finished request holds: its easy handle, header list,
** parsed URL and body buffer. */
static void release (HttpRequest *r) {
  if (r->easy != NULL) {
    aio__http_easy_put(r->m, r->easy);
    r->easy = NULL;
  }
  if (r->headers != NULL) {
    curl_slist_free_all(r->headers);
    r->headers = NULL;
  }
  if (r->url != NULL) {
    curl_url_cleanup(r->url);
    r->url = NULL;
  }
  if (r->z != NULL) {
    inflateEnd(r->z);
    free(r->z);
    r->z = NULL;
  }
  aio__buf_free(&r->in);
  aio__buf_free(&r->head);
  r->hdone = 0;
}


/* ---------------------------------------------------------------------
** curl callbacks (no Lua in here)
** ------------------------------------------------------------------- */

/* CURLOPT_WRITEFUNCTION: body bytes. A streamed body pauses the transfer
** while HTTP_HIGH_WATER bytes wait unread; curl hands the same bytes again
** when it is unpaused. A compressed one we decode is kept compressed (its
** max_body counts decoded bytes as they are read). */
static size_t on_write (char *p, size_t size, size_t n, void *ud) {
  HttpRequest *r = (HttpRequest *)ud;
  size_t len = size * n;
  if (r->read_ns > 0) r->last_ns = aio__now(r->m->loop);
  if (r->max_body >= 0 && r->coding == HTTP_C_NONE &&
      r->received + (curl_off_t)len > r->max_body) {
    if (r->fail == HTTP_F_NONE) r->fail = HTTP_F_BODY;
    return 0;
  }
  if (r->stream && aio_buf_avail(&r->in) >= HTTP_HIGH_WATER) {
    r->paused = 1;
    return CURL_WRITEFUNC_PAUSE;
  }
  if (!aio__buf_append(&r->in, p, len)) {
    if (r->fail == HTTP_F_NONE) r->fail = HTTP_F_NOMEM;
    return 0;
  }
  r->received += (curl_off_t)len;
  if (r->stream) {
    r->ready = 1;
    if (r->task != NULL) aio__task_wake(r->m->loop, r->task, AIO_WAKE_OK);
  }
  return len;
}


/* Are the headers that just ended those of the final response (not a 1xx,
** not a redirect curl is about to follow)? */
static int final_headers (HttpRequest *r) {
  long code = 0;
  struct curl_header *h;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
  if (code >= 100 && code < 200) return 0;
  if (r->follow && code >= 300 && code < 400 &&
      curl_easy_header(r->easy, "Location", 0, CURLH_HEADER, -1, &h) ==
      CURLHE_OK)
    return 0;
  return 1;
}


/* Keeps a header line of the latest response block (curl's own header
** API walks its whole list for each header: quadratic). 0: no memory. */
static int keep_header (HttpRequest *r, const char *p, size_t n) {
  if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {   /* a new response block */
    r->head.off = r->head.len = 0;
    r->hdone = 0;
    return 1;
  }
  if (r->hdone) return 1;                        /* trailers: not kept */
  return aio__buf_append(&r->head, p, n);
}


/*
** The Content-Encoding of the final response of a stream we decode:
** gzip (x-gzip) or deflate, with any "identity" around it. Returns 0 for
** anything else (br, zstd, stacked codings: asked for by the caller's own
** Accept-Encoding), which we cannot decode.
*/
static int pick_coding (HttpRequest *r) {
  struct curl_header *h;
  const char *p;
  r->coding = HTTP_C_NONE;
  if (curl_easy_header(r->easy, "Content-Encoding", 0, CURLH_HEADER, -1,
                       &h) != CURLHE_OK)
    return 1;
  if (h->amount > 1) return 0;
  for (p = h->value; *p != '\0'; ) {
    const char *b = p, *e;
    size_t n;
    while (*b == ' ' || *b == '\t' || *b == ',') b++;
    for (e = b; *e != '\0' && *e != ','; e++) {}
    p = e;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
    n = (size_t)(e - b);
    if (n == 0 || (n == 8 && strncasecmp(b, "identity", 8) == 0)) continue;
    if (r->coding != HTTP_C_NONE) return 0;          /* stacked */
    if ((n == 4 && strncasecmp(b, "gzip", 4) == 0) ||
        (n == 6 && strncasecmp(b, "x-gzip", 6) == 0))
      r->coding = HTTP_C_GZIP;
    else if (n == 7 && strncasecmp(b, "deflate", 7) == 0)
      r->coding = HTTP_C_DEFLATE;
    else return 0;
  }
  return 1;
}


/* CURLOPT_HEADERFUNCTION: a header line, kept for the Response; the blank
** line ending a block hands a streamed response over. */
static size_t on_header (char *p, size_t size, size_t n, void *ud) {
  HttpRequest *r = (HttpRequest *)ud;
  size_t len = size * n;
  int blank = len == 0 || p[0] == '\r' || p[0] == '\n';
  if (r->read_ns > 0) r->last_ns = aio__now(r->m->loop);
  if (blank) r->hdone = 1;
  else if (!keep_header(r, p, len)) {
    if (r->fail == HTTP_F_NONE) r->fail = HTTP_F_NOMEM;
    return 0;
  }
  if (r->stream && !r->ready && blank && final_headers(r)) {
    if (r->decode && !pick_coding(r)) {
      if (r->fail == HTTP_F_NONE) r->fail = HTTP_F_CODING;
      return 0;
    }
    r->ready = 1;
    if (r->task != NULL) aio__task_wake(r->m->loop, r->task, AIO_WAKE_OK);
  }
  return len;
}


/* CURLOPT_READFUNCTION: the request body, from the Lua string. */
static size_t on_read (char *buf, size_t size, size_t n, void *ud) {
  HttpRequest *r = (HttpRequest *)ud;
  size_t room = size * n, left = r->body_len - r->body_off;
  if (room > left) room = left;
  memcpy(buf, r->body + r->body_off, room);
  r->body_off += room;
  if (r->read_ns > 0) r->last_ns = aio__now(r->m->loop);
  return room;
}


/* CURLOPT_SEEKFUNCTION: rewinds the body (a resend on a new connection,
** a 307/308 redirect). */
static int on_seek (void *ud, curl_off_t off, int origin) {
  HttpRequest *r = (HttpRequest *)ud;
  if (origin != SEEK_SET || off < 0 || (size_t)off > r->body_len)
    return CURL_SEEKFUNC_CANTSEEK;
  r->body_off = (size_t)off;
  return CURL_SEEKFUNC_OK;
}


/* CURLOPT_PREREQFUNCTION: connected (or reusing a connection); the request
** goes out now, and from here on silence counts against `read`. */
static int on_prereq (void *ud, char *ip, char *lip, int port, int lport) {
  HttpRequest *r = (HttpRequest *)ud;
  (void)ip; (void)lip; (void)port; (void)lport;
  r->sent = 1;
  if (r->connecting) {       /* its place goes to a deferred transfer */
    r->connecting = 0;
    r->m->nconnecting--;
  }
  if (r->read_ns > 0) {
    r->last_ns = aio__now(r->m->loop);
    if (r->idle.timer.slot == 0)
      aio__timer_arm(r->m->loop, &r->idle.timer, r->last_ns + r->read_ns);
  }
  return CURL_PREREQFUNC_OK;
}


/* ---------------------------------------------------------------------
** Deadlines (fired from the loop's timer heap)
** ------------------------------------------------------------------- */

static void on_total (Loop *loop, TimerCb *tc) {
  (void)loop;
  aio__http_end(aio_container_of(tc, HttpRequest, total), HTTP_F_TOTAL);
}


/* The read deadline: fails the request after `read` seconds of silence
** from the peer; a transfer we paused (slow consumer) is not silent. */
static void on_idle (Loop *loop, TimerCb *tc) {
  HttpRequest *r = aio_container_of(tc, HttpRequest, idle);
  uint64_t now = aio__now(r->m->loop);
  if (r->state != HTTP_ACTIVE) return;
  if (r->paused) r->last_ns = now;
  if (now - r->last_ns >= r->read_ns) aio__http_end(r, HTTP_F_READ);
  else aio__timer_arm(loop, &r->idle.timer, r->last_ns + r->read_ns);
}


/* ---------------------------------------------------------------------
** Setting a request up
** ------------------------------------------------------------------- */

static int spec_bool (lua_State *L, int t, const char *k, int def) {
  int v = def;
  if (lua_getfield(L, t, k) != LUA_TNIL) v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}


/* A number field, or `def` if absent (or false). */
static double spec_num (lua_State *L, int t, const char *k, double def) {
  double v = def;
  if (lua_getfield(L, t, k) == LUA_TNUMBER) v = (double)lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}


/* A string field or NULL; the string stays alive in the spec table. One
** with a zero byte raises `usage` (curl would read it cut short). */
static const char *spec_str (lua_State *L, int t, const char *k) {
  const char *s = NULL;
  if (lua_getfield(L, t, k) == LUA_TSTRING) {
    const char *what = lua_pushfstring(L, "option '%s'", k);
    s = aio__cstring(L, -2, what);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return s;
}


/*
** Parses `url` into r->url (curl then needs not parse it again) and pushes
** its admission key "scheme://host:port". Raises `usage` for a URL curl
** cannot parse or whose scheme is not http or https.
*/
static void parse_url (lua_State *L, HttpRequest *r, const char *url) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL;
  char buf[320];
  CURLUcode rc;
  int web;
  if (u == NULL) aio__nomem(L, "in the HTTP client");
  r->url = u;                                 /* owned by r from here */
  rc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
  if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  if (rc == CURLUE_OK)
    rc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
  web = scheme != NULL && (strcmp(scheme, "http") == 0 ||
                           strcmp(scheme, "https") == 0);
  if (rc == CURLUE_OK && web)
    snprintf(buf, sizeof buf, "%s://%.256s:%s", scheme, host, port);
  else if (rc == CURLUE_OK)
    snprintf(buf, sizeof buf, "%.64s", scheme);
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  if (rc != CURLUE_OK)
    aio__error(L, "usage", "invalid URL '%s': %s", url, curl_url_strerror(rc));
  if (!web)
    aio__error(L, "usage", "only http and https URLs are allowed, not '%s' "
               "(%s)", buf, url);
  lua_pushstring(L, buf);
}


/* Has the caller set header `name` (a line "name:..." or "name;")? */
static int has_header (HttpRequest *r, const char *name) {
  size_t n = strlen(name);
  struct curl_slist *l;
  for (l = r->headers; l != NULL; l = l->next)
    if (strncasecmp(l->data, name, n) == 0 &&
        (l->data[n] == ':' || l->data[n] == ';'))
      return 1;
  return 0;
}


/* The header list from the array of lines at `idx` (nil: none). */
static void read_headers (lua_State *L, HttpRequest *r, int idx) {
  lua_Integer i, n;
  if (lua_type(L, idx) != LUA_TTABLE) return;
  n = (lua_Integer)lua_rawlen(L, idx);
  for (i = 1; i <= n; i++) {
    struct curl_slist *l;
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, idx, lua_pushfstring(L, "header line %d is not a "
                    "string", (int)i));
    l = curl_slist_append(r->headers, aio__cstring(L, -1, "a header"));
    lua_pop(L, 1);
    if (l == NULL) aio__nomem(L, "adding a header");
    r->headers = l;
  }
}


/*
** Reads the spec table at `sidx` (fields made by lua/aio/http.lua:
** follow, max_redirects, verify, ca_file, user, password, proxy, version,
** decompress, stream, max_body, total, connect, read) into r->opt, and the
** header lines at `hidx`. The spec is kept as user value 6, so its strings
** live as long as the request. Can raise (memory); what it allocated
** belongs to `r` by then.
*/
static void read_spec (lua_State *L, HttpRequest *r, int hidx, int sidx) {
  HttpOpts *o = &r->opt;
  double d;
  lua_pushvalue(L, sidx);
  lua_setiuservalue(L, RIDX, 6);
  o->follow = (uint8_t)spec_bool(L, sidx, "follow", 1);
  o->max_redirects = (long)spec_num(L, sidx, "max_redirects", 10);
  o->verify = (uint8_t)spec_bool(L, sidx, "verify", 1);
  o->ca_file = spec_str(L, sidx, "ca_file");
  o->user = spec_str(L, sidx, "user");
  o->password = spec_str(L, sidx, "password");
  o->proxy = spec_str(L, sidx, "proxy");
  o->version = (long)spec_num(L, sidx, "version", CURL_HTTP_VERSION_1_1);
  o->decompress = (uint8_t)spec_bool(L, sidx, "decompress", 1);
  r->stream = (uint8_t)spec_bool(L, sidx, "stream", 0);
  r->follow = o->follow;
  r->fresh_ok = (o->proxy == NULL || *o->proxy == '\0') &&
                o->version < CURL_HTTP_VERSION_2_0;
  d = spec_num(L, sidx, "max_body", -1);
  if (d >= 0) r->max_body = d > 9.2e18 ? (curl_off_t)9.2e18 : (curl_off_t)d;
  r->secs[0] = spec_num(L, sidx, "total", -1);
  r->secs[1] = spec_num(L, sidx, "connect", -1);
  r->secs[2] = spec_num(L, sidx, "read", -1);
  if (r->secs[2] >= 0) {
    r->read_ns = (uint64_t)(r->secs[2] * AIO_NS);
    if (r->read_ns == 0) r->read_ns = 1;
  }
  read_headers(L, r, hidx);
  r->decode = r->stream && o->decompress;
  if (r->decode && !has_header(r, "Accept-Encoding")) {
    struct curl_slist *l = curl_slist_append(r->headers,
                                             "Accept-Encoding: gzip, deflate");
    if (l == NULL) aio__nomem(L, "adding a header");
    r->headers = l;
  }
}


/* The method and the body (read by our read callback so that curl can
** rewind it). POST and PUT are curl's own (so a 303 turns them into a
** GET); other methods are custom request strings. */
static void set_method (HttpRequest *r) {
  CURL *e = r->easy;
  const char *method = r->method;
  int post = strcmp(method, "POST") == 0, put = strcmp(method, "PUT") == 0;
  if (r->body != NULL || post || put || strcmp(method, "PATCH") == 0) {
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, r);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, r);
    if (put) {
      curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
      return;
    }
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)r->body_len);
    if (!post) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  }
  else if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET") != 0)
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
}


/* Milliseconds for curl from seconds (> 0 ms: curl reads 0 as "none"). */
static long to_ms (double secs) {
  double ms = secs * 1000.0;
  if (ms < 1) return 1;
  if (ms > 2147483647.0) return 2147483647L;
  return (long)ms;
}


/*
** Gives request `r` an easy handle set up from what read_spec stored: done
** at admission, so that waiting requests hold no curl handle. Never runs
** Lua; returns 0 when out of memory.
*/
int aio__http_setup (HttpRequest *r) {
  HttpMulti *m = r->m;
  HttpOpts *o = &r->opt;
  CURL *e;
  if (r->easy == NULL && (r->easy = aio__http_easy_get(m)) == NULL) return 0;
  e = r->easy;
  curl_easy_setopt(e, CURLOPT_CURLU, r->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, r);
  aio__http_socket_opts(r);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, (long)o->follow);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, o->max_redirects);
  if (!o->verify) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (o->ca_file != NULL) curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
  if (o->user != NULL) {
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(e, CURLOPT_USERNAME, o->user);
    curl_easy_setopt(e, CURLOPT_PASSWORD, o->password);
  }
  /* "" also ignores the *_proxy environment variables */
  curl_easy_setopt(e, CURLOPT_PROXY, o->proxy != NULL ? o->proxy : "");
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, o->version);
  if (o->version >= CURL_HTTP_VERSION_2_0)   /* multiplex, not a new conn */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  if (r->decode)    /* we inflate as it is read: raw bytes from curl */
    curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
  else if (o->decompress) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  if (r->stream)    /* likely a big body: fewer reads (curl's default 16K) */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 65536L);
  if (r->max_body >= 0)
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, r->max_body);
  if (r->secs[1] >= 0)
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, to_ms(r->secs[1]));
  if (m->share != NULL) {   /* the jar, and "no file" turns the engine on */
    curl_easy_setopt(e, CURLOPT_SHARE, m->share);
    curl_easy_setopt(e, CURLOPT_COOKIEFILE, "");
  }
  if (r->headers != NULL) curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  set_method(r);
  return 1;
}


/* A new request userdata of engine `m` (stack index 1), born finished:
** its __gc is harmless until it is set up. */
static HttpRequest *new_request (lua_State *L, HttpMulti *m) {
  HttpRequest *r = (HttpRequest *)lua_newuserdatauv(L, sizeof *r, 6);
  memset(r, 0, sizeof *r);
  link_init(&r->link);
  r->m = m;
  r->state = HTTP_NEW;
  r->max_body = -1;
  r->total.timer.kind = AIO_TIMER_CALLBACK;
  r->total.fire = on_total;
  r->idle.timer.kind = AIO_TIMER_CALLBACK;
  r->idle.fire = on_idle;
  luaL_setmetatable(L, HTTP_REQUEST_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return r;
}


/* Records (or forgets, t == NULL) the task waiting on `r`; the request
** keeps it alive (user value 5) so the pointer stays valid. */
static void set_waiter (lua_State *L, HttpRequest *r, int ridx, Task *t) {
  Loop *loop = r->m->loop;
  r->task = t;
  if (t != NULL) aio__push_anchored(L, loop, t->anchor);
  else lua_pushnil(L);
  lua_setiuservalue(L, ridx, 5);
}


/* ---------------------------------------------------------------------
** engine:request(method, url, headers, body, spec) (suspends)
** ------------------------------------------------------------------- */

static int request_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  HttpRequest *r = (HttpRequest *)lua_touserdata(L, RIDX);
  Task *t = loop->current;
  (void)status; (void)ctx;
  lua_settop(L, RIDX);
  set_waiter(L, r, RIDX, NULL);
  if (t->wake != AIO_WAKE_OK && t->wake != AIO_WAKE_NONE) {
    aio__http_end(r, HTTP_F_ABORTED);   /* cancelled: abort the transfer */
    release(r);
    return aio__wake_raise(L, t);
  }
  if (r->state != HTTP_DONE && !(r->stream && r->ready)) {
    set_waiter(L, r, RIDX, t);          /* not for us: wait on */
    aio__wait_io(loop, t);
    return aio__suspend(L, t, 0, request_k);
  }
  if (failed(r) && !(r->stream && r->ready)) {
    aio__http_push_error(L, r, RIDX);
    release(r);
    return lua_error(L);
  }
  if (aio__cancel_pending(t)) {         /* the cancellation wins */
    aio__http_end(r, HTTP_F_ABORTED);
    release(r);
    aio__checkpoint(L, t);
  }
  aio__http_push_response(L, r, RIDX);
  if (!r->stream) release(r);
  return 1;
}


/*
** engine:request(method, url, headers, body, spec) (suspends) -> Response.
** headers: array of "Name: value" lines or nil; body: string or nil;
** spec: the normalized options (see read_spec). Raises `usage` for a bad
** URL, `closed` if the engine is closed, and the transfer's failure.
*/
int aio__http_request (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  HttpMulti *m = (HttpMulti *)aio__checkself(L);
  const char *method = aio__checkcstring(L, 2, "the HTTP method");
  const char *url = aio__checkcstring(L, 3, "the URL");
  HttpRequest *r;
  Task *t;
  if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
  if (!lua_isnoneornil(L, 5)) luaL_checktype(L, 5, LUA_TSTRING);
  luaL_checktype(L, 6, LUA_TTABLE);
  lua_settop(L, 6);
  aio__http_check_open(L, m, 3, 2);
  t = aio__task_enter(L, loop, "aio.http.request");
  r = new_request(L, m);                             /* ... r */
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, RIDX, 3);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, RIDX, 4);
  r->method = method;
  if (lua_type(L, 5) == LUA_TSTRING) {
    lua_pushvalue(L, 5);
    lua_setiuservalue(L, RIDX, 2);
    r->body = lua_tolstring(L, 5, &r->body_len);
  }
  parse_url(L, r, url);                              /* ... r key */
  read_spec(L, r, 4, 6);
  r->host = aio__http_host(m, lua_tostring(L, -1));
  if (r->host == NULL) aio__nomem(L, "in the HTTP client");
  lua_pop(L, 1);                                     /* ... r */
  if (r->secs[0] >= 0)
    aio__timer_arm(loop, &r->total.timer, aio__deadline(loop, r->secs[0]));
  set_waiter(L, r, RIDX, t);
  aio__http_submit(r);
  if (r->state == HTTP_DONE) {          /* refused at once: no wake came */
    t->wake = AIO_WAKE_OK;
    return request_k(L, LUA_OK, 0);
  }
  aio__wait_io(loop, t);
  return aio__suspend(L, t, 0, request_k);
}


/* ---------------------------------------------------------------------
** The request of a streamed response: read, close
** ------------------------------------------------------------------- */

static int read_k (lua_State *L, int status, lua_KContext ctx);


/* Resumes a transfer our write callback paused (the consumer caught up);
** curl may hand the held bytes over right away. */
static void unpause (HttpRequest *r) {
  if (!r->paused || aio_buf_avail(&r->in) >= HTTP_HIGH_WATER) return;
  r->paused = 0;
  if (r->read_ns > 0) r->last_ns = aio__now(r->m->loop);
  if (r->state == HTTP_ACTIVE) {
    curl_easy_pause(r->easy, CURLPAUSE_CONT);
    aio__http_checked(r->m);
  }
}


/* Ends a streamed body that cannot be decoded (`why`, static) or grew
** past max_body decoded; returns -1. */
static int decode_fail (HttpRequest *r, int fail, const char *why) {
  if (r->fail == HTTP_F_NONE) r->zmsg = why;
  aio__http_end(r, fail);
  r->in.off = r->in.len = 0;
  return -1;
}


/*
** Inflates the next chunk (HTTP_CHUNK bytes at most, into the loop's
** scratch buffer) of a compressed streamed body from the bytes in r->in,
** and pushes it: returns 1. 0: it needs more input (nothing pushed); -1:
** the body cannot be decoded or went past max_body (the request failed).
*/
static int decode_chunk (lua_State *L, HttpRequest *r) {
  z_stream *z = r->z;
  char *out;
  size_t avail = aio_buf_avail(&r->in), produced;
  uInt take = avail > UINT32_MAX ? UINT32_MAX : (uInt)avail;
  int rc;
  if (r->coding == HTTP_C_END && avail > 0) {
    const unsigned char *h = (const unsigned char *)aio_buf_head(&r->in);
    if (z != NULL && avail >= 2 && h[0] == 0x1f && h[1] == 0x8b)
      inflateReset(z);                    /* another gzip member follows */
    else if (avail >= 2 || z == NULL || h[0] != 0x1f)
      return decode_fail(r, HTTP_F_CODING, "data after the end of the "
                         "compressed body");
    else return 0;                        /* one byte: can't tell yet */
    r->coding = HTTP_C_GZIP;
  }
  if (r->coding == HTTP_C_END) return 0;
  if (z == NULL) {
    /* "deflate" is zlib's format, but some servers send raw deflate:
    ** told apart by zlib's two-byte header */
    const unsigned char *h = (const unsigned char *)aio_buf_head(&r->in);
    int bits = 15 + 32;                   /* gzip or zlib, detected */
    if (r->coding == HTTP_C_DEFLATE) {
      if (avail < 2) return 0;
      bits = ((h[0] & 0x0f) == 8 && (h[0] * 256 + h[1]) % 31 == 0) ? 15 : -15;
    }
    z = (z_stream *)calloc(1, sizeof *z);
    if (z == NULL) return decode_fail(r, HTTP_F_NOMEM, NULL);
    if (inflateInit2(z, bits) != Z_OK) {
      free(z);
      return decode_fail(r, HTTP_F_NOMEM, NULL);
    }
    r->z = z;
  }
  if (avail == 0) return 0;
  z->next_in = (Bytef *)aio_buf_head(&r->in);
  z->avail_in = take;
  out = aio__io_scratch(L);
  z->next_out = (Bytef *)out;
  z->avail_out = HTTP_CHUNK;
  rc = inflate(z, Z_NO_FLUSH);
  produced = HTTP_CHUNK - z->avail_out;
  r->in.off += take - z->avail_in;
  if (r->in.off == r->in.len) r->in.off = r->in.len = 0;
  if (rc == Z_STREAM_END) r->coding = HTTP_C_END;
  else if (rc != Z_OK && rc != Z_BUF_ERROR)
    return decode_fail(r, rc == Z_MEM_ERROR ? HTTP_F_NOMEM : HTTP_F_CODING,
                       z->msg != NULL ? z->msg : "invalid compressed data");
  r->decoded += (curl_off_t)produced;
  if (r->max_body >= 0 && r->decoded > r->max_body)
    return decode_fail(r, HTTP_F_BODY, NULL);
  if (produced == 0) return 0;
  lua_pushlstring(L, out, produced);
  return 1;
}


/* Takes the next chunk of a streamed body that was received (see
** decode_chunk for the returns). */
static int take_chunk (lua_State *L, HttpRequest *r) {
  if (r->coding != HTTP_C_NONE) return decode_chunk(L, r);
  if (aio_buf_avail(&r->in) == 0) return 0;
  lua_pushlstring(L, aio_buf_head(&r->in), aio_buf_avail(&r->in));
  r->in.off = r->in.len = 0;
  return 1;
}


/* The next chunk, nil at the end, the transfer's error, or a wait. */
static int read_step (lua_State *L, HttpRequest *r) {
  Task *t;
  size_t left;
  int rc;
  if (r->closed) {
    lua_getiuservalue(L, 1, 4);
    lua_getiuservalue(L, 1, 3);
    return aio__http_closed(L, "the response is closed",
                            lua_tostring(L, -2), lua_tostring(L, -1));
  }
  rc = take_chunk(L, r);
  if (rc > 0) {
    unpause(r);
    return 1;
  }
  if (rc < 0 || r->state == HTTP_DONE) {
    if (failed(r)) {
      aio__http_push_error(L, r, 1);
      release(r);
      return lua_error(L);
    }
    release(r);
    lua_pushnil(L);
    return 1;
  }
  t = aio__task_enter(L, r->m->loop, "response:chunks()");
  if (r->task != NULL && r->task != t)
    return aio__usage(L, "another task is already reading this response");
  left = aio_buf_avail(&r->in);           /* too little to decode yet */
  unpause(r);                             /* curl may hand more at once */
  if (aio_buf_avail(&r->in) > left || r->state == HTTP_DONE)
    return read_step(L, r);
  set_waiter(L, r, 1, t);
  aio__wait_io(r->m->loop, t);
  return aio__suspend(L, t, 0, read_k);
}


static int read_k (lua_State *L, int status, lua_KContext ctx) {
  HttpRequest *r = (HttpRequest *)lua_touserdata(L, 1);
  Task *t = r->m->loop->current;
  (void)status; (void)ctx;
  lua_settop(L, 1);
  set_waiter(L, r, 1, NULL);
  if (t->wake != AIO_WAKE_OK && t->wake != AIO_WAKE_NONE) {
    aio__http_end(r, HTTP_F_ABORTED);
    release(r);
    return aio__wake_raise(L, t);
  }
  return read_step(L, r);
}


/* request:read() (suspends) -> the next chunk of the body, or nil at its
** end. Raises the transfer's failure, and `closed` after close(). */
static int req_read (lua_State *L) {
  HttpRequest *r = checkrequest(L, 1);
  lua_settop(L, 1);
  return read_step(L, r);
}


/* request:close(): aborts the transfer if it is not finished (its
** connection is closed, its slot freed). Idempotent. */
static int req_close (lua_State *L) {
  HttpRequest *r = checkrequest(L, 1);
  if (r->state != HTTP_DONE || aio_buf_avail(&r->in) > 0) r->closed = 1;
  if (r->state != HTTP_DONE) aio__http_end(r, HTTP_F_ABORTED);
  if (r->task == NULL) release(r);
  return 0;
}


/* request:done() -> true once the body was read to its end (or failed). */
static int req_done (lua_State *L) {
  HttpRequest *r = checkrequest(L, 1);
  lua_pushboolean(L, r->state == HTTP_DONE && aio_buf_avail(&r->in) == 0);
  return 1;
}


/* request:buffered() -> body bytes received and not read yet. */
static int req_buffered (lua_State *L) {
  HttpRequest *r = checkrequest(L, 1);
  lua_pushinteger(L, (lua_Integer)aio_buf_avail(&r->in));
  return 1;
}


static int req__gc (lua_State *L) {
  HttpRequest *r = checkrequest(L, 1);
  if (r->m == NULL) return 0;
  if (r->state != HTTP_DONE) aio__http_end(r, HTTP_F_ABORTED);
  r->task = NULL;
  release(r);
  r->m = NULL;
  return 0;
}


static const luaL_Reg req_methods[] = {
  {"read", req_read},
  {"close", req_close},
  {"done", req_done},
  {"buffered", req_buffered},
  {NULL, NULL}
};


static const luaL_Reg req_meta[] = {
  {"__gc", req__gc},
  {NULL, NULL}
};


static const AioClass req_class = {HTTP_REQUEST_MT, req_methods, req_meta};


/* Registers the request class. */
void aio__http_open_request (lua_State *L, int loopidx) {
  aio__class_open(L, loopidx, &req_class);
  lua_pop(L, 1);
}
