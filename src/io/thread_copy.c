/*
** thread_copy.c
** Copying values between Lua states through a byte buffer: nil, booleans,
** numbers, strings and tables of those (no cycles, no metatables).
** See LICENSE
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aio.h"

#define MAX_DEPTH 100     /* deepest table nesting copied */

/* Tags of the encoding; a table is its pairs then T_END. */
enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STR, T_TABLE, T_END };

typedef struct Writer {
  Buf *b;
  lua_State *L;
  const void *path[MAX_DEPTH];   /* the tables being copied, outermost first */
  int depth;
  char *err;                     /* message on failure */
  size_t errlen;
} Writer;


static int put (Writer *w, const void *p, size_t n) {
  if (!aio__buf_append(w->b, p, n)) {
    snprintf(w->err, w->errlen, "not enough memory");
    return 0;
  }
  return 1;
}


static int put_tag (Writer *w, int tag) {
  unsigned char c = (unsigned char)tag;
  return put(w, &c, 1);
}


static int write_value (Writer *w, int idx);

static int write_table (Writer *w, int idx) {
  lua_State *L = w->L;
  const void *p = lua_topointer(L, idx);
  int i;
  for (i = 0; i < w->depth; i++) {
    if (w->path[i] == p) {
      snprintf(w->err, w->errlen, "a table contains itself (a cycle)");
      return 0;
    }
  }
  if (w->depth == MAX_DEPTH) {
    snprintf(w->err, w->errlen, "tables nested more than %d deep",
             MAX_DEPTH);
    return 0;
  }
  if (!lua_checkstack(L, 4)) {
    snprintf(w->err, w->errlen, "stack overflow");
    return 0;
  }
  w->path[w->depth++] = p;
  if (!put_tag(w, T_TABLE)) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {                    /* key value */
    if (!write_value(w, lua_gettop(L) - 1) ||
        !write_value(w, lua_gettop(L))) {
      lua_pop(L, 2);
      return 0;
    }
    lua_pop(L, 1);
  }
  w->depth--;
  return put_tag(w, T_END);
}


static int write_value (Writer *w, int idx) {
  lua_State *L = w->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return put_tag(w, T_NIL);
    case LUA_TBOOLEAN:
      return put_tag(w, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer v = lua_tointeger(L, idx);
        return put_tag(w, T_INT) && put(w, &v, sizeof v);
      }
      else {
        lua_Number v = lua_tonumber(L, idx);
        return put_tag(w, T_FLOAT) && put(w, &v, sizeof v);
      }
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      return put_tag(w, T_STR) && put(w, &len, sizeof len) &&
             put(w, s, len);
    }
    case LUA_TTABLE:
      return write_table(w, lua_absindex(L, idx));
    default:
      snprintf(w->err, w->errlen, "cannot copy a %s",
               lua_typename(L, lua_type(L, idx)));
      return 0;
  }
}


/*
** Appends the encoding of the `n` values at `first`.. of L to `b`.
** Returns 1, or 0 with a message in err[errlen] (the buffer then holds
** garbage). Never raises and never allocates Lua memory, so a worker
** thread may call it on its own state.
*/
int aio__copy_out (lua_State *L, int first, int n, Buf *b, char *err,
                   size_t errlen) {
  Writer w;
  int i;
  w.b = b;
  w.L = L;
  w.depth = 0;
  w.err = err;
  w.errlen = errlen;
  first = lua_absindex(L, first);
  if (!put(&w, &n, sizeof n)) return 0;
  for (i = 0; i < n; i++) {
    if (!write_value(&w, first + i)) return 0;
  }
  return 1;
}


typedef struct CopyReader {
  const char *p, *end;
} CopyReader;


static int read_value (lua_State *L, CopyReader *r);

/* Pushes the value encoded at r->p; returns 0 at T_END (pushes nothing). */
static int read_value (lua_State *L, CopyReader *r) {
  int tag = (unsigned char)*r->p++;
  luaL_checkstack(L, 4, "tables nested too deep");
  switch (tag) {
    case T_NIL: lua_pushnil(L); return 1;
    case T_FALSE: lua_pushboolean(L, 0); return 1;
    case T_TRUE: lua_pushboolean(L, 1); return 1;
    case T_INT: {
      lua_Integer v;
      memcpy(&v, r->p, sizeof v);
      r->p += sizeof v;
      lua_pushinteger(L, v);
      return 1;
    }
    case T_FLOAT: {
      lua_Number v;
      memcpy(&v, r->p, sizeof v);
      r->p += sizeof v;
      lua_pushnumber(L, v);
      return 1;
    }
    case T_STR: {
      size_t len;
      memcpy(&len, r->p, sizeof len);
      r->p += sizeof len;
      lua_pushlstring(L, r->p, len);
      r->p += len;
      return 1;
    }
    case T_TABLE:
      lua_newtable(L);
      while (read_value(L, r)) {
        read_value(L, r);
        lua_rawset(L, -3);
      }
      return 1;
    default:
      return 0;
  }
}


/* Pushes the values encoded in `data` (made by aio__copy_out); returns
** how many. Raises only on memory errors. */
int aio__copy_in (lua_State *L, const char *data, size_t len) {
  CopyReader r;
  int n, i;
  memcpy(&n, data, sizeof n);
  r.p = data + sizeof n;
  r.end = data + len;
  luaL_checkstack(L, n + 4, "too many values");
  for (i = 0; i < n; i++) read_value(L, &r);
  return n;
}
