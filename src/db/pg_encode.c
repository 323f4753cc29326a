/*
** pg_encode.c
** Lua values encoded for PostgreSQL: parameters in the text form of the
** types the server inferred, array literals, and rows in COPY's text
** format.
** See LICENSE
*/

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

#define SLOT 40             /* bytes for one number's text */


/* ---------------------------------------------------------------------
** Encoding
** ------------------------------------------------------------------- */

/* Writes integer `v` in decimal at `buf` (SLOT bytes); returns it. */
static char *fmt_int (char *buf, lua_Integer v) {
  char tmp[24];
  int n = 0, k = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do tmp[n++] = (char)('0' + u % 10); while ((u /= 10) != 0);
  if (v < 0) buf[k++] = '-';
  while (n > 0) buf[k++] = tmp[--n];
  buf[k] = '\0';
  return buf;
}


/* Writes float `d` at `buf` (SLOT bytes): the shortest of 15 to 17
** significant digits that reads back the same, with a '.' whatever the
** locale; NaN and infinities as PostgreSQL spells them. */
static char *fmt_float (char *buf, double d) {
  int prec;
  char *p;
  if (isnan(d)) return strcpy(buf, "NaN");
  if (isinf(d)) return strcpy(buf, d > 0 ? "Infinity" : "-Infinity");
  for (prec = 15; prec <= 17; prec++) {
    snprintf(buf, SLOT, "%.*g", prec, d);
    if (strtod(buf, NULL) == d) break;
  }
  for (p = buf; *p; p++)
    if (!((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' ||
          *p == 'e' || *p == 'E'))
      *p = '.';
  return buf;
}


/* The number at `idx` in text form, written at `buf`. */
static const char *fmt_number (lua_State *L, int idx, char *buf) {
  if (lua_isinteger(L, idx)) return fmt_int(buf, lua_tointeger(L, idx));
  return fmt_float(buf, (double)lua_tonumber(L, idx));
}




static int buf_add (lua_State *L, Buf *b, const char *s, size_t n) {
  if (!aio__buf_append(b, s, n)) luaL_error(L, "out of memory");
  return 0;
}

#define buf_lit(L, b, s) buf_add((L), (b), "" s, sizeof(s) - 1)


/* Appends `s` as a quoted array element (" and \ escaped). */
static void add_quoted (lua_State *L, Buf *b, const char *s, size_t len) {
  size_t i, run = 0;
  buf_lit(L, b, "\"");
  for (i = 0; i < len; i++) {
    if (s[i] == '"' || s[i] == '\\') {
      buf_add(L, b, s + run, i - run);
      buf_lit(L, b, "\\");
      run = i;
    }
  }
  buf_add(L, b, s + run, len - run);
  buf_lit(L, b, "\"");
}


static int encode_array (lua_State *L, Buf *b, int idx, int ekind,
                         int depth);

/* Appends `s` escaped for COPY's text format (\, newline, CR, tab). */
static void add_copy_text (lua_State *L, Buf *b, const char *s, size_t len) {
  size_t i, run = 0;
  for (i = 0; i < len; i++) {
    const char *esc;
    switch (s[i]) {
      case '\\': esc = "\\\\"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      default: continue;
    }
    buf_add(L, b, s + run, i - run);
    buf_add(L, b, esc, 2);
    run = i + 1;
  }
  buf_add(L, b, s + run, len - run);
}


/* Appends `s` (`len` bytes) as bytea's hex form inside a quoted array
** element ("\\x..."). */
static void add_bytea_elem (lua_State *L, Buf *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t i;
  buf_lit(L, b, "\"\\\\x");
  for (i = 0; i < len; i++) {
    char h[2];
    h[0] = hex[(unsigned char)s[i] >> 4];
    h[1] = hex[(unsigned char)s[i] & 15];
    buf_add(L, b, h, 2);
  }
  buf_lit(L, b, "\"");
}


/*
** Appends the value on top (popped): as an element of an array literal of
** kind `ekind` (at nesting `depth`), or with `ekind` < 0 as a field of
** COPY's text format. NULL is nil or cjson.null; tables are JSON (or, in
** an array that is not of JSON, a nested array). Returns 0, or -1 with a
** message pushed.
*/
static int add_value (lua_State *L, Buf *b, int ekind, int depth) {
  int copy = ekind < 0;
  char num[SLOT];
  size_t len;
  const char *s;
  switch (lua_type(L, -1)) {
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, -1) != NULL) goto bad;
      /* FALLTHROUGH */
    case LUA_TNIL:
      if (copy) buf_lit(L, b, "\\N");
      else buf_lit(L, b, "NULL");
      break;
    case LUA_TBOOLEAN:
      s = lua_toboolean(L, -1) ? (copy ? "t" : "true") : (copy ? "f" : "false");
      buf_add(L, b, s, strlen(s));
      break;
    case LUA_TNUMBER:
      s = fmt_number(L, -1, num);
      buf_add(L, b, s, strlen(s));
      break;
    case LUA_TSTRING:
      s = lua_tolstring(L, -1, &len);
      if (copy) add_copy_text(L, b, s, len);
      else if (ekind == PK_BYTEA) add_bytea_elem(L, b, s, len);
      else if (memchr(s, '\0', len) != NULL) {
        lua_pop(L, 1);
        lua_pushliteral(L, "an array element is a string with a zero byte");
        return -1;
      }
      else add_quoted(L, b, s, len);
      break;
    case LUA_TTABLE:
      if (copy || ekind == PK_JSON) {
        if (pg__json_encode(L, -1) != 0) {
          lua_remove(L, -2);
          return -1;
        }
        s = lua_tolstring(L, -1, &len);
        if (copy) add_copy_text(L, b, s, len);
        else add_quoted(L, b, s, len);
        lua_pop(L, 1);
      }
      else if (encode_array(L, b, lua_gettop(L), ekind, depth + 1) != 0) {
        lua_remove(L, -2);
        return -1;
      }
      break;
    default:
    bad:
      lua_pushfstring(L, "%s is a %s", copy ? "a field" : "an array element",
                      luaL_typename(L, -1));
      lua_remove(L, -2);
      return -1;
  }
  lua_pop(L, 1);
  return 0;
}


/* Appends the Lua array at `idx` as an array literal; `n` (if larger
** than its length) counts trailing NULL elements. Returns 0 or -1 with a
** message pushed. */
static int encode_array (lua_State *L, Buf *b, int idx, int ekind,
                         int depth) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx), i;
  if (depth > PG_MAX_DIMS) {
    lua_pushliteral(L, "arrays nest at most 6 deep");
    return -1;
  }
  luaL_checkstack(L, 6, "array");
  if (lua_getfield(L, idx, "n") == LUA_TNUMBER && lua_isinteger(L, -1) &&
      lua_tointeger(L, -1) > n)
    n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  buf_lit(L, b, "{");
  for (i = 1; i <= n; i++) {
    if (i > 1) buf_lit(L, b, ",");
    lua_rawgeti(L, idx, i);
    if (add_value(L, b, ekind, depth) != 0) return -1;
  }
  buf_lit(L, b, "}");
  return 0;
}


/* Makes sure the parameter arrays hold `n` entries. */
static int params_reserve (PgConn *c, int n) {
  const char **v;
  int *l, *f;
  int cap = c->pcap > 0 ? c->pcap : 8;
  if (n <= c->pcap) return 0;
  while (cap < n) cap *= 2;
  v = (const char **)realloc((void *)c->pvals, (size_t)cap * sizeof *v);
  if (v != NULL) c->pvals = v;
  l = (int *)realloc(c->plens, (size_t)cap * sizeof *l);
  if (l != NULL) c->plens = l;
  f = (int *)realloc(c->pfmts, (size_t)cap * sizeof *f);
  if (f != NULL) c->pfmts = f;
  if (v == NULL || l == NULL || f == NULL) return -1;
  c->pcap = cap;
  return 0;
}


/*
** Encodes the `n` values at `first`.. for statement `s` into c->pvals /
** plens / pfmts: nil (or cjson.null) -> NULL; booleans, numbers in text
** form; strings as they are (binary format into bytea, so any bytes go
** through); tables -> an array literal for an array parameter, else JSON.
** Strings it makes are pushed on the stack, which must keep them until
** they are sent. Returns 0, or the number of the bad parameter with a
** message pushed.
*/
int pg__encode_params (lua_State *L, PgConn *c, int first, int n,
                       const PgStmt *s) {
  int i;
  char *slots;
  luaL_checkstack(L, n + 4, "too many parameters");
  c->scratch.len = c->scratch.off = 0;
  if (params_reserve(c, n) != 0 ||
      !aio__buf_reserve(&c->scratch, (size_t)n * SLOT)) {
    lua_pushliteral(L, "out of memory");
    return 1;
  }
  slots = c->scratch.data;
  for (i = 0; i < n; i++) {
    int idx = first + i;
    Oid elem = 0;
    PgKind kind = pg__kind(s->types[i], &elem);
    size_t len;
    const char *str;
    c->plens[i] = 0;
    c->pfmts[i] = 0;
    switch (lua_type(L, idx)) {
      case LUA_TBOOLEAN:
        c->pvals[i] = lua_toboolean(L, idx) ? "true" : "false";
        break;
      case LUA_TNUMBER:
        c->pvals[i] = fmt_number(L, idx, slots + (size_t)i * SLOT);
        break;
      case LUA_TSTRING:
        str = lua_tolstring(L, idx, &len);
        c->pvals[i] = str;
        if (kind == PK_BYTEA) {
          c->plens[i] = (int)len;
          c->pfmts[i] = 1;
        }
        else if (memchr(str, '\0', len) != NULL) {
          lua_pushliteral(L, "a string with a zero byte; only bytea "
                          "parameters take any bytes");
          return i + 1;
        }
        break;
      case LUA_TTABLE:
        if (kind == PK_ARRAY) {
          Buf *b = &c->abuf;
          b->len = b->off = 0;
          if (encode_array(L, b, idx, pg__kind(elem, &elem), 1) != 0)
            return i + 1;
          lua_pushlstring(L, b->data, b->len);
        }
        else if (pg__json_encode(L, idx) != 0) return i + 1;
        c->pvals[i] = lua_tostring(L, -1);
        break;
      default:                            /* nil, cjson.null */
        c->pvals[i] = NULL;
        break;
    }
  }
  return 0;
}


/*
** Encodes rows from..to of the array at `tidx` into c->abuf in COPY's
** text format, stopping after about 64 KiB: a row is an array of `ncols`
** fields (nil -> NULL) or a string of raw COPY data. Returns the index of
** the next row, or 0 with a message pushed for a bad row.
*/
lua_Integer pg__encode_copy_rows (lua_State *L, PgConn *c, int tidx,
                                  lua_Integer from, lua_Integer to,
                                  int ncols) {
  Buf *b = &c->abuf;
  lua_Integer i;
  b->len = b->off = 0;
  for (i = from; i <= to && b->len < 65536; i++) {
    int t = lua_rawgeti(L, tidx, i), j;
    if (t == LUA_TSTRING) {
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      buf_add(L, b, s, len);
    }
    else if (t == LUA_TTABLE) {
      int row = lua_gettop(L);
      for (j = 1; j <= ncols; j++) {
        if (j > 1) buf_lit(L, b, "\t");
        lua_rawgeti(L, row, j);
        if (add_value(L, b, -1, 0) != 0) {
          lua_pushfstring(L, "row %I, column %d: %s", i, j,
                          lua_tostring(L, -1));
          return 0;
        }
      }
      buf_lit(L, b, "\n");
    }
    else {
      lua_pushfstring(L, "row %I is a %s (a table or a string expected)", i,
                      luaL_typename(L, -1));
      return 0;
    }
    lua_pop(L, 1);
  }
  return i;
}
