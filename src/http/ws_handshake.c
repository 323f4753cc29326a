/*
** ws_handshake.c
** What the WebSocket opening handshake needs from C: the accept key
** (SHA-1, base64), random client keys, HTTP heads parsed by http-parser,
** and UTF-8 validation.
** See LICENSE
*/

#include <string.h>

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ws.h"

#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


/* ---------------------------------------------------------------------
** Keys
** ------------------------------------------------------------------- */

/* core.ws.accept_key(key) -> base64(SHA-1(key .. GUID)): the
** Sec-WebSocket-Accept answering Sec-WebSocket-Key `key`. */
static int ws_accept_key (lua_State *L) {
  size_t n;
  const char *key = luaL_checklstring(L, 1, &n);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned char out[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  unsigned int mdlen = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  int ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha1(), NULL) == 1 &&
           EVP_DigestUpdate(c, key, n) == 1 &&
           EVP_DigestUpdate(c, GUID, sizeof GUID - 1) == 1 &&
           EVP_DigestFinal_ex(c, md, &mdlen) == 1;
  EVP_MD_CTX_free(c);
  if (!ok) return aio__nomem(L, "computing a WebSocket accept key");
  lua_pushlstring(L, (const char *)out,
                  (size_t)EVP_EncodeBlock(out, md, (int)mdlen));
  return 1;
}


/* core.ws.new_key() -> a Sec-WebSocket-Key: 16 random bytes, base64. */
static int ws_new_key (lua_State *L) {
  unsigned char raw[16], out[25];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return aio__error(L, "io", "no random bytes for a WebSocket key");
  lua_pushlstring(L, (const char *)out,
                  (size_t)EVP_EncodeBlock(out, raw, sizeof raw));
  return 1;
}


/* core.ws.key_ok(key) -> is `key` base64 of 16 bytes (a valid
** Sec-WebSocket-Key)? */
static int ws_key_ok (lua_State *L) {
  size_t n;
  const char *key = luaL_checklstring(L, 1, &n);
  unsigned char raw[24];
  int ok = n == 24 && key[22] == '=' && key[23] == '=' &&
           EVP_DecodeBlock(raw, (const unsigned char *)key, 24) == 18;
  lua_pushboolean(L, ok);
  return 1;
}


/* ---------------------------------------------------------------------
** HTTP heads (http-parser)
** ------------------------------------------------------------------- */

enum { NOTHING, FIELD, VALUE };

/* What the callbacks build: the table at `tbl` with its `headers` at
** `hdr`; the header name and value being read are on top. */
typedef struct Head {
  lua_State *L;
  int tbl, hdr;
  int last;              /* NOTHING, FIELD or VALUE on top */
} Head;


/* headers[lower(name)] = value (repeated names joined with ", "); pops
** both. */
static void commit (Head *h) {
  lua_State *L = h->L;
  size_t n, i;
  const char *name = lua_tolstring(L, -2, &n);
  luaL_Buffer b;
  char *low = luaL_buffinitsize(L, &b, n);
  for (i = 0; i < n; i++)
    low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 :
                    name[i]);
  luaL_pushresultsize(&b, n);
  lua_replace(L, -3);                            /* name value */
  lua_pushvalue(L, -2);
  if (lua_rawget(L, h->hdr) == LUA_TSTRING) {    /* name value old */
    lua_pushliteral(L, ", ");
    lua_pushvalue(L, -3);
    lua_concat(L, 3);
    lua_replace(L, -2);
  }
  else lua_pop(L, 1);
  lua_rawset(L, h->hdr);
  h->last = NOTHING;
}


/* Pushes a piece of a name or value, joined to the previous piece. */
static void piece (Head *h, int kind, const char *at, size_t n) {
  if (h->last == VALUE && kind == FIELD) commit(h);
  lua_pushlstring(h->L, at, n);
  if (h->last == kind) lua_concat(h->L, 2);
  h->last = kind;
}


static int on_field (http_parser *p, const char *at, size_t n) {
  piece((Head *)p->data, FIELD, at, n);
  return 0;
}


static int on_value (http_parser *p, const char *at, size_t n) {
  Head *h = (Head *)p->data;
  if (h->last == FIELD || h->last == VALUE) piece(h, VALUE, at, n);
  return 0;
}


static int on_url (http_parser *p, const char *at, size_t n) {
  Head *h = (Head *)p->data;
  lua_getfield(h->L, h->tbl, "target");
  lua_pushlstring(h->L, at, n);
  if (lua_isstring(h->L, -2)) lua_concat(h->L, 2);
  else lua_remove(h->L, -2);
  lua_setfield(h->L, h->tbl, "target");
  return 0;
}


static int on_headers_complete (http_parser *p) {
  Head *h = (Head *)p->data;
  if (h->last == VALUE) commit(h);
  else if (h->last == FIELD) lua_pop(h->L, 1);
  h->last = NOTHING;
  return 0;
}


/*
** core.ws.parse_head(head, "request"|"response") -> {method=, target= |
** status=, http_version=, upgrade=, headers={lower-case name = value}},
** or nil and http-parser's reason. `head` is a whole head, up to and
** including its empty line.
*/
static int ws_parse_head (lua_State *L) {
  static const char *const kinds[] = {"request", "response", NULL};
  size_t len, done;
  const char *data = luaL_checklstring(L, 1, &len);
  int response = luaL_checkoption(L, 2, NULL, kinds);
  http_parser p;
  http_parser_settings set;
  Head h;
  lua_settop(L, 2);
  lua_createtable(L, 0, 6);                      /* head */
  lua_createtable(L, 0, 8);                      /* head headers */
  lua_pushvalue(L, -1);
  lua_setfield(L, 3, "headers");
  h.L = L;
  h.tbl = 3;
  h.hdr = 4;
  h.last = NOTHING;
  http_parser_settings_init(&set);
  set.on_url = on_url;
  set.on_header_field = on_field;
  set.on_header_value = on_value;
  set.on_headers_complete = on_headers_complete;
  http_parser_init(&p, response ? HTTP_RESPONSE : HTTP_REQUEST);
  p.data = &h;
  done = http_parser_execute(&p, &set, data, len);
  if (HTTP_PARSER_ERRNO(&p) != HPE_OK || (done != len && !p.upgrade)) {
    lua_pushnil(L);
    lua_pushstring(L, HTTP_PARSER_ERRNO(&p) != HPE_OK ?
                   http_errno_description(HTTP_PARSER_ERRNO(&p)) :
                   "data after the head");
    return 2;
  }
  lua_settop(L, 3);
  lua_pushfstring(L, "%d.%d", (int)p.http_major, (int)p.http_minor);
  lua_setfield(L, 3, "http_version");
  lua_pushboolean(L, p.upgrade);
  lua_setfield(L, 3, "upgrade");
  if (response) {
    lua_pushinteger(L, (lua_Integer)p.status_code);
    lua_setfield(L, 3, "status");
  }
  else {
    lua_pushstring(L, http_method_str((enum http_method)p.method));
    lua_setfield(L, 3, "method");
  }
  return 1;
}


/* ---------------------------------------------------------------------
** UTF-8
** ------------------------------------------------------------------- */

#define cont(c) (((c) & 0xC0) == 0x80)

/* Is p[0..n) well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
** nothing past U+10FFFF)? */
int aio__utf8_valid (const char *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p, *e = s + n;
  while (s < e) {
    unsigned c = *s;
    if (c < 0x80) {
      uint64_t w;
      s++;
      while (e - s >= 8) {                       /* ASCII, 8 at a time */
        memcpy(&w, s, 8);
        if (w & UINT64_C(0x8080808080808080)) break;
        s += 8;
      }
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      if (e - s < 2 || !cont(s[1])) return 0;
      s += 2;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
      unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
      if (e - s < 3 || s[1] < lo || s[1] > hi || !cont(s[2])) return 0;
      s += 3;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
      unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
      if (e - s < 4 || s[1] < lo || s[1] > hi || !cont(s[2]) || !cont(s[3]))
        return 0;
      s += 4;
    }
    else return 0;
  }
  return 1;
}


/* core.ws.utf8_valid(s) -> boolean. */
static int ws_utf8_valid (lua_State *L) {
  size_t n;
  const char *p = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, aio__utf8_valid(p, n));
  return 1;
}


static const luaL_Reg handshake_funcs[] = {
  {"accept_key", ws_accept_key},
  {"new_key", ws_new_key},
  {"key_ok", ws_key_ok},
  {"parse_head", ws_parse_head},
  {"utf8_valid", ws_utf8_valid},
  {NULL, NULL}
};


/* Adds the handshake functions to the core.ws table at `wsidx` (the loop
** is at wsidx-2). */
void aio__open_ws_handshake (lua_State *L, int wsidx) {
  lua_pushvalue(L, wsidx);
  aio__setfuncs(L, wsidx - 2, handshake_funcs);
  lua_pop(L, 1);
}
