/*
** pg_value.c
** PostgreSQL values and Lua values: results (in text form) decoded by
** type, parameters encoded for the types the server inferred, array
** literals both ways, and rows in COPY's text format.
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
#define MAX_DEPTH 6         /* array dimensions (MAXDIM) */
#define SLOT 40             /* bytes for one number's text */

/* Registry keys of cjson.encode and cjson.decode (core.pg.set_json). */
static const char json_encode_key = 0;
static const char json_decode_key = 0;


/* ---------------------------------------------------------------------
** Types
** ------------------------------------------------------------------- */

/* Built-in array types and their element types. */
static const Oid array_types[][2] = {
  {1000, PG_BOOL}, {1001, PG_BYTEA}, {1002, PG_CHAR}, {1003, PG_NAME},
  {1005, PG_INT2}, {1007, PG_INT4}, {1009, PG_TEXT}, {1028, PG_OID},
  {1014, PG_BPCHAR}, {1015, PG_VARCHAR}, {1016, PG_INT8},
  {1021, PG_FLOAT4}, {1022, PG_FLOAT8}, {1231, PG_NUMERIC},
  {199, PG_JSON}, {3807, PG_JSONB},
  /* elements in text form */
  {1182, 1082}, {1183, 1083}, {1115, 1114}, {1185, 1184}, {1187, 1186},
  {1270, 1266}, {2951, 2950}, {1041, 869}, {651, 650}, {1040, 829},
  {775, 774}, {1561, 1560}, {1563, 1562}, {791, 790}, {143, 142},
  {1017, 600}, {3643, 3614}, {3645, 3615}, {4073, 4072}, {2211, 2206},
  {2210, 2205}, {1013, 30}, {1012, 28}, {1011, 27}, {1010, 1033},
  {3905, 3904}, {3907, 3906}, {3911, 3910}, {3913, 3912}, {3927, 3926}
};


/* How values of `type` decode; for an array, *elem is its element type. */
PgKind pg__kind (Oid type, Oid *elem) {
  size_t i;
  switch (type) {
    case PG_INT2: case PG_INT4: case PG_INT8: case PG_OID: return PK_INT;
    case PG_FLOAT4: case PG_FLOAT8: return PK_FLOAT;
    case PG_BOOL: return PK_BOOL;
    case PG_BYTEA: return PK_BYTEA;
    case PG_JSON: case PG_JSONB: return PK_JSON;
    default: break;
  }
  for (i = 0; i < sizeof array_types / sizeof array_types[0]; i++)
    if (array_types[i][0] == type) {
      *elem = array_types[i][1];
      return PK_ARRAY;
    }
  return PK_TEXT;
}


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


/* Pushes json text, decoded with cjson.decode when the connection asks. */
void pg__push_json (lua_State *L, PgConn *c, const char *s, size_t len) {
  if (!c->decode_json ||
      lua_rawgetp(L, LUA_REGISTRYINDEX, &json_decode_key) != LUA_TFUNCTION) {
    if (c->decode_json) lua_pop(L, 1);
    lua_pushlstring(L, s, len);
    return;
  }
  lua_pushlstring(L, s, len);
  lua_call(L, 1, 1);
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
  if (depth > MAX_DEPTH || p >= end || *p != '{') return 0;
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


/* Pushes cjson.encode(value at idx). Returns 0, or -1 with the message
** pushed instead. */
static int json_encode (lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &json_encode_key) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    lua_pushliteral(L, "no JSON encoder (lua-cjson)");
    return -1;
  }
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pushfstring(L, "cannot encode the table as JSON: %s",
                    lua_tostring(L, -1));
    lua_remove(L, -2);
    return -1;
  }
  return 0;
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
        if (json_encode(L, -1) != 0) {
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
  if (depth > MAX_DEPTH) {
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
        else if (json_encode(L, idx) != 0) return i + 1;
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


/* core.pg.set_json(encode, decode): cjson's functions, for tables bound
** as JSON and for decode_json. */
static int l_set_json (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &json_encode_key);
  lua_pushvalue(L, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &json_decode_key);
  return 0;
}


/* Adds set_json to the table on top. */
void pg__open_json (lua_State *L) {
  lua_pushcfunction(L, l_set_json);
  lua_setfield(L, -2, "set_json");
}
