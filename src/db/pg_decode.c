/*
** pg_decode.c
** Results decoded: values in text form by type (numbers, booleans,
** bytea, json, array literals), and the collector that turns a result's
** rows into Lua tables as they arrive (text or binary format per column).
** See LICENSE
*/

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg.h"

#define MAX_COLUMNS 1700    /* a SELECT list holds at most 1664 */


/* ---------------------------------------------------------------------
** Decoding text forms
** ------------------------------------------------------------------- */

/* Parses a decimal integer; 0 if it is not one or does not fit. */
static int parse_int (const char *s, size_t len, lua_Integer *out) {
  const char *p = s, *end = s + len;
  uint64_t v = 0;
  int neg = 0;
  if (p < end && (*p == '-' || *p == '+')) neg = *p++ == '-';
  if (p == end) return 0;
  for (; p < end; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (d > 9 || v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  if (neg) {
    if (v > (uint64_t)LUA_MAXINTEGER + 1) return 0;
    *out = v == (uint64_t)LUA_MAXINTEGER + 1 ? LUA_MININTEGER
                                              : -(lua_Integer)v;
  }
  else {
    if (v > (uint64_t)LUA_MAXINTEGER) return 0;
    *out = (lua_Integer)v;
  }
  return 1;
}


static const double pow10s[] = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
  1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/*
** Pushes the float in text form `s` (NUL-terminated). Plain decimals with
** at most 2^53 as digits and 22 decimals are exact in one division (the
** common case, fast); the rest goes through Lua's own conversion.
*/
static void push_float (lua_State *L, const char *s, size_t len) {
  const char *p = s, *end = s + len;
  uint64_t m = 0;
  int neg = 0, dot = 0, frac = 0, digits = 0;
  if (p < end && *p == '-') {
    neg = 1;
    p++;
  }
  for (; p < end; p++) {
    if (*p >= '0' && *p <= '9') {
      if (++digits > 18) goto slow;
      m = m * 10 + (uint64_t)(*p - '0');
      frac += dot;
    }
    else if (*p == '.' && !dot) dot = 1;
    else goto slow;
  }
  if (digits == 0 || m > ((uint64_t)1 << 53) || frac > 22) goto slow;
  lua_pushnumber(L, (lua_Number)(neg ? -((double)m / pow10s[frac])
                                     : (double)m / pow10s[frac]));
  return;
slow:
  if (strcmp(s, "NaN") == 0) lua_pushnumber(L, (lua_Number)NAN);
  else if (strcmp(s, "Infinity") == 0) lua_pushnumber(L, (lua_Number)HUGE_VAL);
  else if (strcmp(s, "-Infinity") == 0)
    lua_pushnumber(L, (lua_Number)-HUGE_VAL);
  else if (lua_stringtonumber(L, s) == 0) lua_pushlstring(L, s, len);
}


static int hexval (int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  ch |= 0x20;
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1;
}


/* Decodes bytea's text form (hex "\x..." or the old escape format) from
** `src` into `dst` (which may be `src`: it never runs ahead). Returns the
** number of bytes. */
static size_t bytea_decode (char *dst, const char *src, size_t len) {
  size_t i, n = 0;
  if (len >= 2 && src[0] == '\\' && src[1] == 'x') {
    for (i = 2; i + 1 < len; i += 2) {
      int hi = hexval((unsigned char)src[i]), lo = hexval((unsigned char)src[i + 1]);
      if (hi < 0 || lo < 0) break;
      dst[n++] = (char)(hi << 4 | lo);
    }
    return n;
  }
  for (i = 0; i < len; i++) {
    if (src[i] == '\\' && i + 1 < len && src[i + 1] == '\\') {
      dst[n++] = '\\';
      i++;
    }
    else if (src[i] == '\\' && i + 3 < len + 0 && src[i + 1] >= '0' &&
             src[i + 1] <= '3') {
      dst[n++] = (char)((src[i + 1] - '0') << 6 | (src[i + 2] - '0') << 3 |
                        (src[i + 3] - '0'));
      i += 3;
    }
    else dst[n++] = src[i];
  }
  return n;
}


/* Pushes a bytea value. `s` is either libpq's memory or the start of
** the connection's scratch buffer (an array element), decoded in place. */
static void push_bytea (lua_State *L, PgConn *c, const char *s, size_t len) {
  char *dst;
  if (s == c->scratch.data) dst = c->scratch.data;
  else {
    c->scratch.len = c->scratch.off = 0;
    if (!aio__buf_reserve(&c->scratch, len + 1)) {
      luaL_error(L, "out of memory decoding bytea");
      return;
    }
    dst = c->scratch.data;
  }
  lua_pushlstring(L, dst, bytea_decode(dst, s, len));
}




/* Pushes the value in text form `s` (NUL-terminated) of kind `kind`. */
static void push_scalar (lua_State *L, PgConn *c, int kind, const char *s,
                         size_t len) {
  lua_Integer i;
  switch (kind) {
    case PK_INT:
      if (parse_int(s, len, &i)) lua_pushinteger(L, i);
      else lua_pushlstring(L, s, len);
      break;
    case PK_FLOAT: push_float(L, s, len); break;
    case PK_BOOL: lua_pushboolean(L, s[0] == 't'); break;
    case PK_BYTEA: push_bytea(L, c, s, len); break;
    case PK_JSON: pg__push_json(L, c, s, len); break;
    default: lua_pushlstring(L, s, len); break;
  }
}


/* Reads one element of an array literal (quoted or not, backslash
** escapes undone) into the scratch buffer, NUL-terminated. Returns 0 if
** the literal ends too soon. */
static int array_item (lua_State *L, PgConn *c, const char **pp,
                       const char *end, int *quoted) {
  Buf *b = &c->scratch;
  const char *p = *pp;
  b->len = b->off = 0;
  *quoted = *p == '"';
  if (*quoted) p++;
  while (p < end) {
    const char *run = p;
    while (p < end && *p != '\\' && *p != '"' &&
           (*quoted || (*p != ',' && *p != '}')))
      p++;
    if (p > run && !aio__buf_append(b, run, (size_t)(p - run)))
      luaL_error(L, "out of memory decoding an array");
    if (p >= end) return 0;
    if (*p == '\\') {
      if (++p >= end) return 0;
      if (!aio__buf_append(b, p, 1))
        luaL_error(L, "out of memory decoding an array");
      p++;
      continue;
    }
    if (*p == '"') {
      if (!*quoted) return 0;
      p++;
    }
    break;
  }
  if (!aio__buf_append(b, "", 1))
    luaL_error(L, "out of memory decoding an array");
  b->len--;
  *pp = p;
  return 1;
}


/* Parses one level `{...}` of an array literal at *pp into a new table
** (pushed). Returns 0 if the literal is malformed. */
static int array_level (lua_State *L, PgConn *c, const char **pp,
                        const char *end, int ekind, int depth) {
  const char *p = *pp;
  lua_Integer n = 0;
  int hasnull = 0;
  if (depth > PG_MAX_DIMS || p >= end || *p != '{') return 0;
  p++;
  luaL_checkstack(L, 4, "array");
  lua_newtable(L);
  if (p < end && *p == '}') {
    *pp = p + 1;
    return 1;
  }
  for (;;) {
    int quoted;
    if (p >= end) return 0;
    if (*p == '{') {
      if (!array_level(L, c, &p, end, ekind, depth + 1)) return 0;
      lua_rawseti(L, -2, ++n);
    }
    else {
      if (!array_item(L, c, &p, end, &quoted)) return 0;
      if (!quoted && c->scratch.len == 4 &&
          strncasecmp(c->scratch.data, "NULL", 4) == 0) {
        n++;
        hasnull = 1;
      }
      else {
        push_scalar(L, c, ekind, c->scratch.data, c->scratch.len);
        lua_rawseti(L, -2, ++n);
      }
    }
    if (p >= end) return 0;
    if (*p == ',') p++;
    else if (*p == '}') {
      p++;
      break;
    }
    else return 0;
  }
  if (hasnull) {                    /* NULL elements are holes: keep n */
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
  }
  *pp = p;
  return 1;
}


/* Pushes array literal `s` as a Lua array of elements of kind `ekind`
** (nested for more dimensions); its text if it does not parse. */
static void push_array (lua_State *L, PgConn *c, const char *s, size_t len,
                        int ekind) {
  const char *p = s, *end = s + len;
  int top = lua_gettop(L);
  if (p < end && *p == '[') {       /* [lower:upper]={...}: bounds dropped */
    p = memchr(p, '=', len);
    p = p != NULL ? p + 1 : end;
  }
  if (array_level(L, c, &p, end, ekind, 1) && p == end) return;
  lua_settop(L, top);
  lua_pushlstring(L, s, len);
}


/*
** The decoding of one column (text or binary format), and what it keeps
** of the last value in it that decoded to a string (the string is in a
** stack slot, see RowsState): a value with the same bytes as the one
** above it is the same Lua string, neither rendered nor hashed again
** (repeated values are common in a column). Rows may come in results of
** their own (single-row mode), so the bytes compared are the string's
** own, or for a string rendered from a binary value, a copy of the value
** (when it is short).
*/
typedef struct Column {
  uint8_t kind, ekind;   /* in text format: PgKind (elements: ekind) */
  uint8_t bin, ebin;     /* in binary format: PgBin (elements: ebin);
                         ** PB_NONE for a column in text format */
  int rawlen;            /* bytes in raw, or -1: nothing to compare */
  const char *raw;       /* the bytes of the last value: its string's, or
                         ** rawcopy */
  unsigned tries, hits;  /* values compared, found the same: a column
                         ** where few are stops comparing */
  char rawcopy[16];
} Column;

/*
** What a result being decoded keeps, in a userdata (class aio.pg.Rows)
** on the stack right above the rows table; then the column names, then
** the last string of each column (see Column):
**   rows, state, name_1 .. name_nf, last_1 .. last_nf
** The state is a to-be-closed slot: an error while the collector is
** paused (see pg__rows_gc) restarts it as the stack unwinds.
*/
typedef struct RowsState {
  int nf;
  uint8_t paused;        /* this decoding stopped the garbage collector */
  uint8_t nopause;       /* do not stop it again */
  int base;              /* KiB in use when it stopped it */
  int mark;              /* KiB in use as the current batch began */
  int own;               /* KiB the batches allocated since it stopped */
  lua_Integer n;         /* rows so far */
  Column col[1];         /* nf of them */
} RowsState;

/* Rows decoded before a result counts as large (see pg__rows_gc). */
#define LARGE_RESULT 256


static void col_kinds (const PGresult *r, int nf, Column *k) {
  int j;
  for (j = 0; j < nf; j++) {
    Oid type = PQftype(r, j), elem = 0;
    int ebin = PB_NONE;
    k[j].kind = (uint8_t)pg__kind(type, &elem);
    k[j].ekind = k[j].kind == PK_ARRAY ? (uint8_t)pg__kind(elem, &elem) : 0;
    if (k[j].ekind == PK_ARRAY) k[j].ekind = PK_TEXT;
    k[j].bin = k[j].ebin = PB_NONE;
    if (PQfformat(r, j) == 1) {
      /* binary is only asked for when every column has a decoder (see
      ** pg__result_format); anything else would be its raw bytes */
      k[j].bin = (uint8_t)pg__bin_kind(type, &ebin);
      k[j].ebin = (uint8_t)ebin;
      if (k[j].bin == PB_NONE) k[j].bin = PB_BYTEA;
    }
    k[j].raw = NULL;
    k[j].rawlen = -1;
    k[j].tries = k[j].hits = 0;
  }
}


/* Pushes value `s` (`len` bytes) of column `k` that decodes to its text
** form: the string at `last` (the column's last one) if the bytes are
** the same, else a new one, which becomes the last. `last` 0: none. */
static void push_text_form (lua_State *L, PgConn *c, const char *s, int len,
                            Column *k, int last) {
  int same = k->bin == PB_NONE || k->bin == PB_TEXT;  /* bytes = text */
  if (last != 0) {
    if (++k->tries > 64 && k->hits < k->tries / 8) last = 0;  /* give up */
    else if (len == k->rawlen && memcmp(s, k->raw, (size_t)len) == 0) {
      k->hits++;
      lua_pushvalue(L, last);
      return;
    }
  }
  if (same) lua_pushlstring(L, s, (size_t)len);
  else {
    char tmp[PG_BIN_TMP];
    size_t n;
    const char *t = pg__bin_text(c, k->bin, s, len, tmp, &n);
    if (t == NULL) {
      pg__push_bin(L, c, k->bin, k->ebin, s, len);  /* raises */
      return;
    }
    lua_pushlstring(L, t, n);
  }
  if (last != 0) {
    lua_pushvalue(L, -1);
    lua_replace(L, last);
    if (same) {
      k->raw = lua_tostring(L, last);
      k->rawlen = len;
    }
    else if ((size_t)len <= sizeof k->rawcopy) {
      memcpy(k->rawcopy, s, (size_t)len);
      k->raw = k->rawcopy;
      k->rawlen = len;
    }
    else k->rawlen = -1;
  }
}


/* Pushes value `s` (`len` bytes, NUL-terminated) of column `k`. `last`:
** the stack index of the column's last string, or 0 to not use it. */
static void push_value (lua_State *L, PgConn *c, const char *s, int len,
                        Column *k, int last) {
  if (k->bin != PB_NONE) {
    if (pg_bin_is_text(k->bin)) push_text_form(L, c, s, len, k, last);
    else pg__push_bin(L, c, k->bin, k->ebin, s, len);
    return;
  }
  switch (k->kind) {
    case PK_TEXT: push_text_form(L, c, s, len, k, last); return;
    case PK_ARRAY: push_array(L, c, s, (size_t)len, k->ekind); return;
    default: push_scalar(L, c, k->kind, s, (size_t)len); return;
  }
}


/*
** Starts decoding rows shaped like result `r` (`nt` expected, 0 if not
** known): pushes the rows table and what decoding keeps (see RowsState)
** and returns the rows table's index. Raises only on memory errors.
*/
int pg__rows_begin (lua_State *L, const PGresult *r, int nt) {
  int nf = PQnfields(r), rows, j;
  RowsState *st;
  if (nf > MAX_COLUMNS) luaL_error(L, "too many columns (%d)", nf);
  luaL_checkstack(L, 2 * nf + 8, "too many columns");
  lua_createtable(L, nt, 2);
  rows = lua_gettop(L);
  st = (RowsState *)lua_newuserdatauv(L, sizeof(RowsState) +
                                      (size_t)(nf > 1 ? nf - 1 : 0) *
                                      sizeof(Column), 0);
  st->nf = nf;
  st->n = 0;
  st->paused = st->nopause = 0;
  luaL_setmetatable(L, PG_ROWS_MT);
  lua_toclose(L, -1);
  col_kinds(r, nf, st->col);
  for (j = 0; j < nf; j++) lua_pushstring(L, PQfname(r, j));
  for (j = 0; j < nf; j++) lua_pushnil(L);
  return rows;
}


/* Appends the rows of `r` (at most `max`) to the rows table at `rows`
** (pg__rows_begin): each a table keyed by column name, NULL columns
** left out. Raises only on memory errors, cjson's (decode_json) and
** malformed binary values. */
void pg__rows_add (lua_State *L, PgConn *c, const PGresult *r, int rows,
                   int max) {
  RowsState *st = (RowsState *)lua_touserdata(L, rows + 1);
  int nt = PQntuples(r), nf = st->nf, names = rows + 2, last = names + nf;
  int i, j;
  if (nt > max) nt = max;
  for (i = 0; i < nt; i++) {
    lua_createtable(L, 0, nf);
    for (j = 0; j < nf; j++) {
      const char *s = PQgetvalue(r, i, j);
      int len = PQgetlength(r, i, j);
      if (len == 0 && PQgetisnull(r, i, j)) continue;
      lua_pushvalue(L, names + j);
      push_value(L, c, s, len, &st->col[j], last + j);
      lua_rawset(L, -3);
    }
    lua_rawseti(L, rows, ++st->n);
  }
}


/*
** The garbage collector and a large result (more than LARGE_RESULT rows).
** Everything a decoding allocates is kept (rows and their values): an
** incremental collector paced by those allocations would mark the
** growing rows table again and again, for nothing. So a large result's
** decoding stops it (PG_GC_PAUSE, called as rows are added) until the
** result is complete (pg__rows_end, or an error unwinding the state);
** meanwhile other tasks run between batches of rows (as the server sends
** them) and what they allocate counts as usual: once it reaches what was
** in use when the decoding stopped the collector (as the collector's own
** pause would), the collector restarts for good (PG_GC_BATCH, at the end
** of each batch). A collector the program stopped is left alone.
*/
void pg__rows_gc (lua_State *L, int rows, int what) {
  RowsState *st = (RowsState *)lua_touserdata(L, rows + 1);
  int kb;
  switch (what) {
    case PG_GC_PAUSE:
      if (st->paused || st->nopause || st->n < LARGE_RESULT ||
          !lua_gc(L, LUA_GCISRUNNING))
        return;
      lua_gc(L, LUA_GCSTOP);
      st->paused = 1;
      st->base = st->mark = lua_gc(L, LUA_GCCOUNT);
      st->own = 0;
      return;
    case PG_GC_BATCH:                  /* a batch begins */
      if (st->paused) st->mark = lua_gc(L, LUA_GCCOUNT);
      return;
    default:                           /* a batch ended */
      if (!st->paused) return;
      kb = lua_gc(L, LUA_GCCOUNT);
      st->own += kb - st->mark;
      st->mark = kb;
      if (kb - st->base - st->own >= st->base) {
        lua_gc(L, LUA_GCRESTART);
        st->paused = 0;
        st->nopause = 1;
      }
      return;
  }
}


/* __close of a decoding's state (an error unwinds it): restarts the
** collector if the decoding paused it. */
static int rows_close (lua_State *L) {
  RowsState *st = (RowsState *)aio__checkself(L);
  if (st->paused) lua_gc(L, LUA_GCRESTART);
  st->paused = 0;
  return 0;
}

static const luaL_Reg rows_meta[] = {
  {"__close", rows_close},
  {NULL, NULL}
};

const AioClass pg__rows_class = {PG_ROWS_MT, NULL, rows_meta};


/* Finishes the rows table at `rows`: `columns` (the names in order) and
** `count` (`count`, or the rows when negative); drops what decoding kept,
** leaving the table on top. */
void pg__rows_end (lua_State *L, int rows, lua_Integer count) {
  RowsState *st = (RowsState *)lua_touserdata(L, rows + 1);
  int j;
  if (st->paused) lua_gc(L, LUA_GCRESTART);
  st->paused = 0;
  lua_createtable(L, st->nf, 0);
  for (j = 0; j < st->nf; j++) {
    lua_pushvalue(L, rows + 2 + j);
    lua_rawseti(L, -2, j + 1);
  }
  lua_setfield(L, rows, "columns");
  lua_pushinteger(L, count >= 0 ? count : st->n);
  lua_setfield(L, rows, "count");
  lua_settop(L, rows);
}


/* The rows affected by the command of `r` (0 when it does not say). */
lua_Integer pg__affected (const PGresult *r) {
  lua_Integer n = 0;
  const char *s = PQcmdTuples((PGresult *)r);
  if (s[0] != '\0' && !parse_int(s, strlen(s), &n)) n = 0;
  return n;
}


/*
** Pushes result `r` (NULL: the query was empty) shaped by `mode` (see
** PgMode) and returns the number of values pushed. Raises only on memory
** errors (and cjson's, with decode_json); `r` stays its caller's.
*/
int pg__decode (lua_State *L, PgConn *c, PGresult *r, int mode) {
  Column k[1];
  int rows, nt, nf;
  switch (mode) {
    case PM_COUNT:
      lua_pushinteger(L, r != NULL ? pg__affected(r) : 0);
      return 1;
    case PM_TAG:
      lua_pushstring(L, r != NULL ? PQcmdStatus(r) : "");
      return 1;
    case PM_COPYEND:
      lua_pushnil(L);
      lua_pushinteger(L, r != NULL ? pg__affected(r) : 0);
      return 2;
    default:
      break;
  }
  nt = r != NULL ? PQntuples(r) : 0;
  nf = r != NULL ? PQnfields(r) : 0;
  if (mode == PM_VALUE) {
    if (nt == 0 || nf == 0 || PQgetisnull(r, 0, 0)) lua_pushnil(L);
    else {
      col_kinds(r, 1, k);
      push_value(L, c, PQgetvalue(r, 0, 0), PQgetlength(r, 0, 0), k, 0);
    }
    return 1;
  }
  if (mode == PM_ONE && nt == 0) {
    lua_pushnil(L);
    return 1;
  }
  if (r == NULL) {                          /* an empty query: no rows */
    lua_createtable(L, 0, 2);
    lua_newtable(L);
    lua_setfield(L, -2, "columns");
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "count");
    return 1;
  }
  rows = pg__rows_begin(L, r, mode == PM_ONE ? 0 : PQntuples(r));
  pg__rows_add(L, c, r, rows, mode == PM_ONE ? 1 : INT_MAX);
  if (mode == PM_ONE) {
    lua_rawgeti(L, rows, 1);
    lua_replace(L, rows);
    lua_settop(L, rows);
    return 1;
  }
  pg__rows_end(L, rows, PQresultStatus(r) == PGRES_TUPLES_OK ? -1
                                                             : pg__affected(r));
  return 1;
}
