/*
** server_request.c
** What a handler sees of a request: the table made once from the head
** collected in C (method, target, path, headers, ...), the body read on
** demand through the parser (100 Continue, max_body, body_timeout), and
** the header list.
** See LICENSE
*/

#include <stdio.h>
#include <string.h>

#include "server.h"


static int hexval (int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  ch |= 0x20;
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1;
}


/* Pushes `s` percent-decoded ("%2F" -> "/"; a "%" not followed by two hex
** digits stays as it is; "+" stays "+"). */
static void push_decoded (lua_State *L, const char *s, size_t len) {
  luaL_Buffer b;
  size_t i;
  if (memchr(s, '%', len) == NULL) {
    lua_pushlstring(L, s, len);
    return;
  }
  luaL_buffinit(L, &b);
  for (i = 0; i < len; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < len &&
        (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
        (lo = hexval((unsigned char)s[i + 2])) >= 0) {
      luaL_addchar(&b, (char)(hi * 16 + lo));
      i += 2;
    }
    else luaL_addchar(&b, s[i]);
  }
  luaL_pushresult(&b);
}


/* Pushes `s` in lower case. */
static void push_lower (lua_State *L, const char *s, size_t len) {
  char small[64];
  size_t i;
  if (len <= sizeof small) {
    for (i = 0; i < len; i++)
      small[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] | 0x20 : s[i]);
    lua_pushlstring(L, small, len);
  }
  else {
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len);
    for (i = 0; i < len; i++)
      p[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] | 0x20 : s[i]);
    luaL_pushresultsize(&b, len);
  }
}


/* Sets the headers table on top: lower-case names; a repeated field is
** joined with ", " ("; " for cookie). */
static void push_headers (lua_State *L, HttpHead *h) {
  const char *d = h->data.data;
  uint32_t i;
  lua_createtable(L, 0, (int)h->nfields);
  for (i = 0; i < h->nfields; i++) {
    HttpField *f = &h->fields[i];
    push_lower(L, d + f->name, f->nlen);                  /* hdrs name */
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TNIL) {                   /* hdrs name nil */
      lua_pop(L, 1);
      lua_pushlstring(L, d + f->value, f->vlen);
    }
    else {                                                 /* hdrs name old */
      int cookie = f->nlen == 6 && lua_rawlen(L, -2) == 6 &&
                   memcmp(lua_tostring(L, -2), "cookie", 6) == 0;
      lua_pushstring(L, cookie ? "; " : ", ");
      lua_pushlstring(L, d + f->value, f->vlen);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
}


/* Pushes the connection's object (made and anchored at its first request). */
static void push_conn (lua_State *L, HttpConn *c) {
  Loop *loop = c->s.io.loop;
  if (c->anchor == 0) {
    aio__io_push(L, &c->s.io, HTTP_CONN_MT, 1);
    c->anchor = aio__anchor(L, loop, -1);
  }
  else aio__push_anchored(L, loop, c->anchor);
}


/* Pushes the RK_COUNT key strings of the request table, in RK_* order. */
void aio__hs_push_keys (lua_State *L) {
  static const char *const keys[RK_COUNT] = {
    "method", "target", "path", "_q", "headers", "http_version", "_c", "_n"
  };
  int i;
  luaL_checkstack(L, RK_COUNT, NULL);
  for (i = 0; i < RK_COUNT; i++) lua_pushstring(L, keys[i]);
}


/* Sets field `k` (a key at keys + k) of the table at `t` to the value on
** top (popped). */
#define setkey(L, t, keys, k) \
  (lua_pushvalue((L), (keys) + (k)), lua_insert((L), -2), lua_rawset((L), (t)))


/*
** Pushes the request table of the head `c` holds: method, target, path
** (percent-decoded), _q (the raw query, if any), headers, http_version,
** _c (the connection object), _n (the request's number); its metatable is
** the table at `mt`; the key strings are at `keys` (aio__hs_push_keys).
*/
void aio__hs_push_request (lua_State *L, HttpConn *c, int mt, int keys) {
  HttpHead *h = c->hp.head;
  const char *d = h->data.data;
  size_t path, plen, query, qlen;
  int t;
  lua_createtable(L, 0, 10);
  t = lua_gettop(L);
  lua_pushstring(L, aio__hp_method(&c->hp));
  setkey(L, t, keys, RK_METHOD);
  lua_pushlstring(L, d, h->url_len);
  setkey(L, t, keys, RK_TARGET);
  if (aio__hp_split_target(d, h->url_len, &path, &plen, &query, &qlen)) {
    push_decoded(L, d + path, plen);
    if (qlen > 0) {
      lua_pushlstring(L, d + query, qlen);
      setkey(L, t, keys, RK_QUERY);
    }
  }
  else lua_pushlstring(L, d, h->url_len);
  setkey(L, t, keys, RK_PATH);
  push_headers(L, h);
  setkey(L, t, keys, RK_HEADERS);
  if (aio__hp_version(&c->hp) == 10) lua_pushliteral(L, "1.0");
  else lua_pushliteral(L, "1.1");
  setkey(L, t, keys, RK_VERSION);
  push_conn(L, c);
  setkey(L, t, keys, RK_CONN);
  lua_pushinteger(L, (lua_Integer)c->seq);
  setkey(L, t, keys, RK_SEQ);
  lua_pushvalue(L, mt);
  lua_setmetatable(L, t);
  c->is_head = (uint8_t)aio__hp_is_head(&c->hp);
}


/* core.http_server.header_list(conn, n) -> array of {name, value} (also
** .name, .value) in the order received, names as sent. */
static int hs_header_list (lua_State *L) {
  HttpConn *c = aio__hs_conn(L, 1, 2);
  HttpHead *h = c->hp.head;
  uint32_t i;
  if (h == NULL) {
    lua_newtable(L);
    return 1;
  }
  lua_createtable(L, (int)h->nfields, 0);
  for (i = 0; i < h->nfields; i++) {
    HttpField *f = &h->fields[i];
    lua_createtable(L, 2, 2);
    lua_pushlstring(L, h->data.data + f->name, f->nlen);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, 1);
    lua_setfield(L, -2, "name");
    lua_pushlstring(L, h->data.data + f->value, f->vlen);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, 2);
    lua_setfield(L, -2, "value");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}


/* Raises an error of `kind` that the server answers with `status` if the
** handler lets it through (field response_status), and makes the response
** close the connection. */
static int request_fail (lua_State *L, HttpConn *c, const char *kind,
                         int status, const char *msg) {
  c->must_close = 1;
  aio__error_new(L, kind, "%s", msg);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "response_status");
  return lua_error(L);
}


/* Raises what the parser found wrong in the body (413 past max_body,
** else 400). */
static int body_error (lua_State *L, HttpConn *c) {
  int status = c->hp.status;
  return request_fail(L, c, status == 413 ? "http" : "protocol", status,
                      status == 413 ? "request body larger than max_body"
                                    : c->hp.reason);
}


/* Feeds the buffered input to the parser (body bytes go to c->body).
** Returns 0 if the body is invalid (see body_error). */
static int feed_body (HttpConn *c) {
  Buf *in = &c->s.in.buf;
  size_t n;
  int rc = aio__hp_feed(&c->hp, aio_buf_head(in), aio_buf_avail(in), &n);
  aio__buf_consume(in, n, c->s.in.keep);
  if (rc == HP_DONE) c->body_done = 1;
  return rc != HP_ERROR;
}


static int read_body (lua_State *L, HttpConn *c);

static int read_k (lua_State *L, int status, lua_KContext ctx) {
  IoRef *ref = (IoRef *)lua_touserdata(L, 1);
  HttpConn *c = (HttpConn *)ref->io;
  (void)status; (void)ctx;
  if (aio__io_resumed(L, &c->s.io)) {
    char msg[96];
    snprintf(msg, sizeof msg, "no request body data for %g s (body_timeout)",
             c->srv != NULL ? c->srv->lim.body_secs : 0.0);
    request_fail(L, c, "timeout", 408, msg);
  }
  return read_body(L, c);
}


/* read: the next body bytes (what the parser has), nil at the end, or a
** wait for the client. */
static int read_body (lua_State *L, HttpConn *c) {
  Buf *in = &c->s.in.buf;
  for (;;) {
    size_t avail = aio_buf_avail(&c->body);
    if (avail > 0) {
      lua_pushlstring(L, aio_buf_head(&c->body), avail);
      aio__buf_consume(&c->body, avail, 0);
      return 1;
    }
    if (c->body_done) {
      lua_pushnil(L);
      return 1;
    }
    if (aio_buf_avail(in) > 0) {
      c->hp.body = &c->body;
      if (!feed_body(c)) return body_error(L, c);
      aio__hs_read_on(c);
      continue;
    }
    if (c->s.rerr != 0 || c->broken) {
      aio__error_new(L, "io", "the client closed the connection before the "
                     "end of the request body");
      aio__setfield_str(L, "code", "EOF");
      return lua_error(L);
    }
    aio__hs_read_on(c);
    return aio__io_wait(L, &c->s.io, &c->s.readers,
                        c->srv != NULL ? c->srv->lim.body_secs : 0, 0,
                        read_k);
  }
}


/*
** core.http_server.read(conn, n) (suspends) -> the next bytes of the
** request body, nil at its end. The first read checks max_body against
** Content-Length (raising `http` with response_status 413 before reading
** anything) and answers "100 Continue" if the client waits for it.
*/
static int hs_read (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  HttpConn *c = aio__hs_conn(L, 1, 2);
  HttpServer *srv = c->srv;
  lua_settop(L, 2);
  aio__task_enter(L, loop, "request body");
  if (c->body_done || c->hp.phase == HP_DONE) {
    c->body_done = 1;
    return read_body(L, c);
  }
  if (c->hp.body != &c->body) {            /* the first read */
    uint64_t max = srv != NULL ? srv->lim.max_body : 0;
    Buf *in = &c->s.in.buf;
    if (max > 0 && c->hp.has_clen && c->hp.clen > max)
      return request_fail(L, c, "http", 413,
                          "request body larger than max_body");
    c->hp.max_body = max;
    c->hp.body = &c->body;
    aio__hp_resume(&c->hp);
    if (aio_buf_avail(in) > 0 && !feed_body(c))  /* came with the head */
      return body_error(L, c);
    if (c->hp.expect_continue && !c->continued && c->resp == HR_NONE &&
        c->hp.body_total == 0 && aio_buf_avail(in) == 0 && !c->body_done) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
      c->continued = 1;
      aio__hs_send(c, &b, 1);
    }
  }
  return read_body(L, c);
}


static const luaL_Reg request_funcs[] = {
  {"read", hs_read},
  {"header_list", hs_header_list},
  {NULL, NULL}
};


/* Adds the request functions to the table on top. */
void aio__open_http_request (lua_State *L, int loopidx) {
  aio__setfuncs(L, loopidx, request_funcs);
}
