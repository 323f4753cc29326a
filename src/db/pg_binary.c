/*
** pg_binary.c
** Results in binary format: which statements may ask for it, and each
** binary value turned into exactly the Lua value its text form decodes
** to (the text form itself, rendered here, for numeric, uuid, "char"
** and the date/time types).
** See LICENSE
*/

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg.h"

#define USECS_PER_DAY INT64_C(86400000000)


/* ---------------------------------------------------------------------
** Which types decode from binary
** ------------------------------------------------------------------- */

/* Binary decoders of the built-in types, and their array types. */
static const struct { Oid type, array; uint8_t bin; } bin_types[] = {
  {PG_BOOL, 1000, PB_BOOL}, {PG_BYTEA, 1001, PB_BYTEA},
  {PG_CHAR, 1002, PB_CHAR}, {PG_NAME, 1003, PB_TEXT},
  {PG_INT8, 1016, PB_INT8}, {PG_INT2, 1005, PB_INT2},
  {PG_INT4, 1007, PB_INT4}, {PG_TEXT, 1009, PB_TEXT},
  {PG_OID, 1028, PB_OID}, {PG_JSON, 199, PB_JSON},
  {PG_FLOAT4, 1021, PB_FLOAT4}, {PG_FLOAT8, 1022, PB_FLOAT8},
  {PG_BPCHAR, 1014, PB_TEXT}, {PG_VARCHAR, 1015, PB_TEXT},
  {PG_NUMERIC, 1231, PB_NUMERIC}, {PG_JSONB, 3807, PB_JSONB},
  {PG_UUID, 2951, PB_UUID}, {PG_DATE, 1182, PB_DATE},
  {PG_TIME, 1183, PB_TIME}, {PG_TIMETZ, 1270, PB_TIMETZ},
  {PG_TIMESTAMP, 1115, PB_TIMESTAMP}, {PG_TIMESTAMPTZ, 1185, PB_TIMESTAMPTZ}
};


/* The binary decoder of `type` (PB_NONE: none); for an array, PB_ARRAY
** and its elements' in *elem. */
int pg__bin_kind (Oid type, int *elem) {
  size_t i;
  for (i = 0; i < sizeof bin_types / sizeof bin_types[0]; i++) {
    if (bin_types[i].type == type) return bin_types[i].bin;
    if (bin_types[i].array == type) {
      *elem = bin_types[i].bin;
      return PB_ARRAY;
    }
  }
  return PB_NONE;
}


static int is_datetime (int b) {
  return b >= PB_DATE && b <= PB_TIMESTAMPTZ;
}


/*
** The result format a prepared statement asks for, from its description
** `d`: PF_TEXT unless every column has a binary decoder; PF_BINARY_DT when
** one is a date/time type, whose text form depends on the session's
** settings (see pg__datetime_ok), PF_BINARY_TZ when one is timestamptz,
** whose text form depends on the time zone too.
*/
int pg__result_format (const PGresult *d) {
  int nf = d != NULL ? PQnfields(d) : 0, j, fmt = PF_BINARY;
  if (nf == 0) return PF_TEXT;
  for (j = 0; j < nf; j++) {
    int elem = PB_NONE, b = pg__bin_kind(PQftype(d, j), &elem);
    if (b == PB_NONE) return PF_TEXT;
    if (b == PB_ARRAY) b = elem;
    if (b == PB_TIMESTAMPTZ) fmt = PF_BINARY_TZ;
    else if (is_datetime(b) && fmt == PF_BINARY) fmt = PF_BINARY_DT;
  }
  return fmt;
}


/* Zones whose offset from UTC is zero at all times. */
static const char *const utc_zones[] = {
  "UTC", "UCT", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich", "Universal",
  "Zulu"
};

/* Reads [+-]h[h][:mm[:ss]] at *pp into seconds (its sign applied).
** Returns 0 if it is not one. */
static int parse_offset (const char **pp, int *secs) {
  const char *p = *pp;
  int sign = 1, h = 0, m = 0, s = 0, n = 0;
  if (*p == '+' || *p == '-') sign = *p++ == '-' ? -1 : 1;
  while (*p >= '0' && *p <= '9' && n < 2) h = h * 10 + (*p++ - '0'), n++;
  if (n == 0 || h > 24) return 0;
  if (*p == ':') {
    if (!(p[1] >= '0' && p[1] <= '5' && p[2] >= '0' && p[2] <= '9')) return 0;
    m = (p[1] - '0') * 10 + (p[2] - '0');
    p += 3;
    if (*p == ':') {
      if (!(p[1] >= '0' && p[1] <= '5' && p[2] >= '0' && p[2] <= '9'))
        return 0;
      s = (p[1] - '0') * 10 + (p[2] - '0');
      p += 3;
    }
  }
  *secs = sign * (h * 3600 + m * 60 + s);
  *pp = p;
  return 1;
}


/*
** The offset of time zone `z` (a TimeZone setting) in seconds west of
** UTC (PostgreSQL's sign), when it is the same at every instant: the UTC
** zones, Etc/GMT±h, and POSIX zones without daylight saving ("UTC+3",
** "<+05:30>-05:30", "+05:30": west of UTC is positive). Returns 0 for any
** other zone.
*/
static int fixed_zone (const char *z, int *west) {
  const char *p = z;
  size_t i;
  if (strncasecmp(p, "Etc/", 4) == 0) p += 4;
  for (i = 0; i < sizeof utc_zones / sizeof utc_zones[0]; i++)
    if (strcasecmp(p, utc_zones[i]) == 0) {
      *west = 0;
      return 1;
    }
  if (p != z) {                             /* Etc/GMT+h: POSIX's sign */
    if (strncasecmp(p, "GMT", 3) != 0 || (p[3] != '+' && p[3] != '-'))
      return 0;
    p += 3;
    return parse_offset(&p, west) && *p == '\0' && *west % 3600 == 0 &&
           *west >= -14 * 3600 && *west <= 12 * 3600;
  }
  if (*p == '<') {                          /* <name>offset */
    p = strchr(p, '>');
    if (p == NULL) return 0;
    p++;
  }
  else if (*p != '+' && *p != '-') {        /* name: 3 letters or more */
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) p++;
    if (p - z < 3) return 0;
  }
  return parse_offset(&p, west) && *p == '\0';
}


/*
** May date/time columns come in binary on `c` now? Only when their text
** form is one rendered here: DateStyle ISO, integer timestamps and, for
** timestamptz (`tz`), a time zone with a fixed offset (kept in c->tzwest).
*/
int pg__datetime_ok (PgConn *c, int tz) {
  const char *ds = PQparameterStatus(c->pg, "DateStyle");
  const char *id = PQparameterStatus(c->pg, "integer_datetimes");
  const char *zone = PQparameterStatus(c->pg, "TimeZone");
  int west;
  if (ds == NULL || strncmp(ds, "ISO", 3) != 0 || (ds[3] != ',' &&
      ds[3] != '\0') || id == NULL || strcmp(id, "on") != 0)
    return 0;
  if (!tz) return 1;
  if (zone == NULL || !fixed_zone(zone, &west)) return 0;
  c->tzwest = west;
  return 1;
}


/* ---------------------------------------------------------------------
** Reading binary values
** ------------------------------------------------------------------- */

static uint32_t be32 (const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 |
         u[3];
}

static uint16_t be16 (const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  return (uint16_t)(u[0] << 8 | u[1]);
}

static int64_t be64 (const char *s) {
  return (int64_t)((uint64_t)be32(s) << 32 | be32(s + 4));
}


/* The significant digits of decimal text `s` ("-1.250e+05", "125e3"),
** without leading or trailing zeros, into `dig` (at least as long as
** `s`); *exp10 is the power of ten of the first. Returns their count. */
static int sig_digits (const char *s, char *dig, int *exp10) {
  int n = 0, point = -1, e = 0;
  if (*s == '-' || *s == '+') s++;
  for (; *s && *s != 'e' && *s != 'E'; s++) {
    if (*s == '.') point = n;
    else if (n > 0 || *s != '0') dig[n++] = *s;
    else if (point >= 0) e--;                /* 0.00ddd */
  }
  if (*s) e += atoi(s + 1);
  *exp10 = e + (point >= 0 ? point : n) - 1;
  while (n > 0 && dig[n - 1] == '0') n--;
  return n;
}


/* Is the decimal text `d` exactly the double `m`? */
static int same_value (const char *d, double m) {
  char exact[160], a[160], b[160];
  int na, nb, ea, eb;
  snprintf(exact, sizeof exact, "%.120e", m);   /* every digit of it */
  na = sig_digits(d, a, &ea);
  nb = sig_digits(exact, b, &eb);
  return na == nb && ea == eb && memcmp(a, b, (size_t)na) == 0;
}


/*
** Does decimal text `d` read back as float `f` (> 0), lying strictly
** inside the interval of decimals that round to it? PostgreSQL's
** shortest output (Ryu) never picks one on the interval's edge, though
** it reads back as `f` when `f` is even.
*/
static int reads_back (const char *d, float f) {
  float below = nextafterf(f, 0), above = nextafterf(f, HUGE_VALF);
  double x, lo, hi;
  if (strtof(d, NULL) != f) return 0;
  x = strtod(d, NULL);
  lo = ((double)f + (double)below) / 2;                 /* exact */
  hi = isinf(above) ? (double)f + ((double)f - (double)below) / 2
                    : ((double)f + (double)above) / 2;
  return (x != lo || !same_value(d, lo)) && (x != hi || !same_value(d, hi));
}


/*
** The float4 `f` as its text form reads back: PostgreSQL writes the
** shortest decimal that reads back as `f` (the closest of them), which
** Lua reads as a double. The closest decimal of p digits is tried for
** p = 1..9; next to a power of two, where the interval of decimals that
** read back as `f` is wider above than below, so is the next one up.
*/
static double float4_value (float f) {
  char buf[40], up[48];
  float a = fabsf(f);
  uint32_t bits;
  int p;
  memcpy(&bits, &a, 4);
  if (isnan(f) || isinf(f) || f == 0) return (double)f;
  for (p = 1; p <= 9; p++) {
    snprintf(buf, sizeof buf, "%.*e", p - 1, (double)a);
    if (reads_back(buf, a)) break;
    if ((bits & 0x7fffff) == 0) {           /* a power of two */
      long long digits = 0;
      const char *q = buf;
      char *e = strchr(buf, 'e');
      for (; q < e; q++)
        if (*q >= '0' && *q <= '9') digits = digits * 10 + (*q - '0');
      snprintf(up, sizeof up, "%llde%d", digits + 1, atoi(e + 1) - (p - 1));
      if (reads_back(up, a)) {
        memcpy(buf, up, sizeof buf);
        break;
      }
    }
  }
  return f < 0 ? -strtod(buf, NULL) : strtod(buf, NULL);
}


/* Writes `v` (>= 0) in decimal, at least `width` digits; returns the
** end. */
static char *put_uint (char *p, uint64_t v, int width) {
  char tmp[24];
  int n = 0;
  do tmp[n++] = (char)('0' + v % 10); while ((v /= 10) != 0);
  while (n < width) tmp[n++] = '0';
  while (n > 0) *p++ = tmp[--n];
  return p;
}


static const char digit_pairs[] =
  "00010203040506070809101112131415161718192021222324252627282930313233"
  "34353637383940414243444546474849505152535455565758596061626364656667"
  "6869707172737475767778798081828384858687888990919293949596979899";

/* Writes `v` (0..9999) as 4 digits; returns the end. */
static char *put4 (char *p, unsigned v) {
  memcpy(p, digit_pairs + 2 * (v / 100), 2);
  memcpy(p + 2, digit_pairs + 2 * (v % 100), 2);
  return p + 4;
}


/* Writes the offset `west` (seconds west of UTC) as PostgreSQL's ISO
** style does: +hh, +hh:mm or +hh:mm:ss (east of UTC is +). */
static char *put_zone (char *p, int west) {
  int s = west < 0 ? -west : west, m = s / 60, h = m / 60;
  s %= 60;
  m %= 60;
  *p++ = west <= 0 ? '+' : '-';
  p = put_uint(p, (uint64_t)h, 2);
  if (m != 0 || s != 0) {
    *p++ = ':';
    p = put_uint(p, (uint64_t)m, 2);
  }
  if (s != 0) {
    *p++ = ':';
    p = put_uint(p, (uint64_t)s, 2);
  }
  return p;
}


/* Writes the date `days` after 2000-01-01 (proleptic Gregorian) as
** YYYY-MM-DD (the year of 1 BC is 0 here); sets *bc for years before 1
** AD, written as 1 - year. */
static char *put_date (char *p, int64_t days, int *bc) {
  int64_t z = days + 730425;       /* days since 0000-03-01 */
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;                      /* [0, 146096] */
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);   /* [0, 365] */
  int64_t mp = (5 * doy + 2) / 153;                        /* March = 0 */
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  int64_t y = yoe + era * 400 + (m <= 2);
  *bc = y <= 0;
  p = put_uint(p, (uint64_t)(y > 0 ? y : 1 - y), 4);
  *p++ = '-';
  p = put_uint(p, (uint64_t)m, 2);
  *p++ = '-';
  return put_uint(p, (uint64_t)d, 2);
}


/* Writes a time of day `us` microseconds after midnight as HH:MM:SS,
** with .ffffff when there is a fraction (trailing zeros dropped). */
static char *put_time (char *p, int64_t us) {
  int64_t secs = us / 1000000, frac = us % 1000000;
  p = put_uint(p, (uint64_t)(secs / 3600), 2);
  *p++ = ':';
  p = put_uint(p, (uint64_t)(secs / 60 % 60), 2);
  *p++ = ':';
  p = put_uint(p, (uint64_t)(secs % 60), 2);
  if (frac != 0) {
    int w = 6;
    while (frac % 10 == 0) frac /= 10, w--;
    *p++ = '.';
    p = put_uint(p, (uint64_t)frac, w);
  }
  return p;
}


/* Writes a timestamp `us` microseconds after 2000-01-01 00:00 (local),
** then the zone `west` when `tz`, then " BC" for years before 1 AD. */
static char *put_timestamp (char *p, int64_t us, int tz, int west) {
  int64_t days = us / USECS_PER_DAY, tod = us % USECS_PER_DAY;
  int bc;
  if (tod < 0) {
    tod += USECS_PER_DAY;
    days--;
  }
  p = put_date(p, days, &bc);
  *p++ = ' ';
  p = put_time(p, tod);
  if (tz) p = put_zone(p, west);
  if (bc) {
    memcpy(p, " BC", 3);
    p += 3;
  }
  return p;
}


/*
** Writes numeric's binary form `s` (`len` bytes) as numeric_out does, at
** `tmp` (PG_BIN_TMP bytes) or, if longer, into the connection's scratch
** buffer: NaN, Infinity, -Infinity, or its digits (4 to a base-10000
** digit) with exactly `dscale` decimals. Returns the text (its length in
** *n), or NULL if the value is malformed or memory runs out.
*/
static const char *numeric_text (PgConn *c, const char *s, int len,
                                 char *tmp, size_t *n) {
  int ndigits, weight, sign, dscale, i, k;
  size_t room;
  char *p, *start;
  if (len < 8) return NULL;
  ndigits = be16(s);
  weight = (int16_t)be16(s + 2);
  sign = be16(s + 4);
  dscale = be16(s + 6) & 0x3fff;
  if (len != 8 + 2 * ndigits) return NULL;
  switch (sign) {
    case 0xC000: *n = 3; return "NaN";
    case 0xD000: *n = 8; return "Infinity";
    case 0xF000: *n = 9; return "-Infinity";
    case 0x0000: case 0x4000: break;
    default: return NULL;
  }
  room = (size_t)(weight > 0 ? weight + 1 : 1) * 4 + (size_t)dscale + 8;
  if (room <= PG_BIN_TMP) start = tmp;
  else {
    c->scratch.len = c->scratch.off = 0;
    if (!aio__buf_reserve(&c->scratch, room)) return NULL;
    start = c->scratch.data;
  }
  p = start;
  if (sign == 0x4000) *p++ = '-';
  if (weight < 0) *p++ = '0';
  for (i = 0; i <= weight; i++) {
    unsigned dig = i < ndigits ? be16(s + 8 + 2 * i) : 0;
    if (dig > 9999) return NULL;
    if (i > 0) p = put4(p, dig);
    else if (dig >= 100) {           /* no leading zeros */
      if (dig >= 1000) *p++ = digit_pairs[2 * (dig / 100)];
      memcpy(p, digit_pairs + 2 * (dig / 100) + 1, 1);
      memcpy(p + 1, digit_pairs + 2 * (dig % 100), 2);
      p += 3;
    }
    else {
      if (dig >= 10) *p++ = digit_pairs[2 * dig];
      *p++ = digit_pairs[2 * dig + 1];
    }
  }
  if (dscale > 0) {                  /* the last digit may be cut short */
    *p++ = '.';
    for (k = 0; k < dscale; k += 4) {
      int gi = weight + 1 + k / 4;
      unsigned dig = gi >= 0 && gi < ndigits ? be16(s + 8 + 2 * gi) : 0;
      if (dig > 9999) return NULL;
      put4(p, dig);
      p += dscale - k < 4 ? dscale - k : 4;
    }
  }
  *n = (size_t)(p - start);
  return start;
}


/*
** The text form of binary value `s` (`len` bytes) of kind `b`, one of
** those decoded as their text form (text, numeric, uuid, "char", the
** date/time types): `s` itself, or written into `tmp` (PG_BIN_TMP bytes)
** or the connection's scratch buffer. Returns it with its length in *n,
** or NULL if the value is malformed (or memory runs out).
*/
const char *pg__bin_text (PgConn *c, int b, const char *s, int len,
                          char *tmp, size_t *n) {
  char *p = tmp;
  int64_t v;
  int i;
  switch (b) {
    case PB_TEXT:
      *n = (size_t)len;
      return s;
    case PB_NUMERIC:
      return numeric_text(c, s, len, tmp, n);
    case PB_CHAR:                      /* charout: high bytes as \ooo */
      if (len != 1) return NULL;
      if ((unsigned char)s[0] >= 0x80) {
        unsigned ch = (unsigned char)s[0];
        *p++ = '\\';
        *p++ = (char)('0' + (ch >> 6));
        *p++ = (char)('0' + (ch >> 3 & 7));
        *p++ = (char)('0' + (ch & 7));
      }
      else if (s[0] != '\0') *p++ = s[0];
      break;
    case PB_UUID:
      if (len != 16) return NULL;
      for (i = 0; i < 16; i++) {
        static const char hex[] = "0123456789abcdef";
        if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
        *p++ = hex[(unsigned char)s[i] >> 4];
        *p++ = hex[(unsigned char)s[i] & 15];
      }
      break;
    case PB_DATE: {
      int32_t d;
      int bc;
      if (len != 4) return NULL;
      d = (int32_t)be32(s);
      if (d == INT32_MIN) { *n = 9; return "-infinity"; }
      if (d == INT32_MAX) { *n = 8; return "infinity"; }
      p = put_date(p, d, &bc);
      if (bc) {
        memcpy(p, " BC", 3);
        p += 3;
      }
      break;
    }
    case PB_TIME:
      if (len != 8) return NULL;
      v = be64(s);
      if (v < 0 || v > USECS_PER_DAY) return NULL;
      p = put_time(p, v);
      break;
    case PB_TIMETZ:
      if (len != 12) return NULL;
      v = be64(s);
      if (v < 0 || v > USECS_PER_DAY) return NULL;
      p = put_time(p, v);
      p = put_zone(p, (int32_t)be32(s + 8));
      break;
    case PB_TIMESTAMP: case PB_TIMESTAMPTZ: {
      int64_t shift = b == PB_TIMESTAMPTZ ? -(int64_t)c->tzwest * 1000000 : 0;
      if (len != 8) return NULL;
      v = be64(s);
      if (v == INT64_MIN) { *n = 9; return "-infinity"; }
      if (v == INT64_MAX) { *n = 8; return "infinity"; }
      if ((shift > 0 && v > INT64_MAX - shift) ||
          (shift < 0 && v < INT64_MIN - shift))
        return NULL;
      p = put_timestamp(p, v + shift, b == PB_TIMESTAMPTZ, c->tzwest);
      break;
    }
    default:
      return NULL;
  }
  *n = (size_t)(p - tmp);
  return tmp;
}


/* Raises `protocol`: the server sent a binary value that does not parse
** (or memory ran out rendering one). */
static int bad_value (lua_State *L) {
  return aio__error(L, "protocol", "query: a malformed value in binary "
                    "format from the server");
}


static void push_array (lua_State *L, PgConn *c, const char *s, int len,
                        int eb);

/*
** Pushes the Lua value of binary value `s` (`len` bytes) of kind `b`
** (array elements of kind `eb`): the same value its text form decodes
** to. Raises `protocol` for a malformed value.
*/
void pg__push_bin (lua_State *L, PgConn *c, int b, int eb, const char *s,
                   int len) {
  char tmp[PG_BIN_TMP];
  const char *t;
  size_t n;
  switch (b) {
    case PB_INT2:
      if (len != 2) break;
      lua_pushinteger(L, (int16_t)be16(s));
      return;
    case PB_INT4:
      if (len != 4) break;
      lua_pushinteger(L, (int32_t)be32(s));
      return;
    case PB_OID:
      if (len != 4) break;
      lua_pushinteger(L, (lua_Integer)be32(s));
      return;
    case PB_INT8:
      if (len != 8) break;
      lua_pushinteger(L, (lua_Integer)be64(s));
      return;
    case PB_FLOAT4: {
      uint32_t u;
      float f;
      if (len != 4) break;
      u = be32(s);
      memcpy(&f, &u, 4);
      lua_pushnumber(L, (lua_Number)float4_value(f));
      return;
    }
    case PB_FLOAT8: {
      uint64_t u;
      double d;
      if (len != 8) break;
      u = (uint64_t)be64(s);
      memcpy(&d, &u, 8);
      lua_pushnumber(L, (lua_Number)d);
      return;
    }
    case PB_BOOL:
      if (len != 1) break;
      lua_pushboolean(L, s[0] != 0);
      return;
    case PB_BYTEA:
      lua_pushlstring(L, s, (size_t)len);
      return;
    case PB_JSON:
      pg__push_json(L, c, s, (size_t)len);
      return;
    case PB_JSONB:
      if (len < 1 || s[0] != 1) break;
      pg__push_json(L, c, s + 1, (size_t)len - 1);
      return;
    case PB_ARRAY:
      push_array(L, c, s, len, eb);
      return;
    default:
      t = pg__bin_text(c, b, s, len, tmp, &n);
      if (t == NULL) break;
      lua_pushlstring(L, t, n);
      return;
  }
  bad_value(L);
}


/* Array decoding: where the elements are read from. */
typedef struct ArrayReader {
  const char *p, *end;
  int eb;                          /* the elements' kind */
  int ndim;
  int32_t dims[PG_MAX_DIMS];
} ArrayReader;


/* Pushes level `level` of the array at r->p as a Lua table (nested for
** more dimensions; NULL elements are holes, the level's length in `n`).
** Returns 0 if the array ends too soon. */
static int array_level (lua_State *L, PgConn *c, ArrayReader *r,
                        int level) {
  int32_t i, n = r->dims[level];
  int hasnull = 0;
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    if (level + 1 < r->ndim) {
      if (!array_level(L, c, r, level + 1)) return 0;
      lua_rawseti(L, -2, i);
      continue;
    }
    if (r->end - r->p < 4) return 0;
    {
      int32_t elen = (int32_t)be32(r->p);
      r->p += 4;
      if (elen == -1) {
        hasnull = 1;
        continue;
      }
      if (elen < 0 || r->end - r->p < elen) return 0;
      pg__push_bin(L, c, r->eb, PB_NONE, r->p, elen);
      r->p += elen;
      lua_rawseti(L, -2, i);
    }
  }
  if (hasnull) {
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
  }
  return 1;
}


/* Pushes array_send's form `s` as the Lua array its text form decodes
** to (lower bounds dropped). Raises `protocol` if it is malformed. */
static void push_array (lua_State *L, PgConn *c, const char *s, int len,
                        int eb) {
  ArrayReader r;
  int i;
  int64_t total = 1;
  r.p = s;
  r.end = s + len;
  r.eb = eb;
  if (len < 12) bad_value(L);
  r.ndim = (int)be32(s);
  r.p += 12;                      /* ndim, flags, element type */
  if (r.ndim < 0 || r.ndim > PG_MAX_DIMS || r.end - r.p < 8 * r.ndim)
    bad_value(L);
  for (i = 0; i < r.ndim; i++) {
    r.dims[i] = (int32_t)be32(r.p);
    r.p += 8;                     /* length, lower bound */
    total *= r.dims[i] > 0 ? r.dims[i] : 0;
    if (r.dims[i] < 0 || total > (r.end - r.p) / 4 + 1)
      bad_value(L);
  }
  luaL_checkstack(L, r.ndim + 4, "array");
  if (r.ndim == 0) {
    lua_newtable(L);
    return;
  }
  if (!array_level(L, c, &r, 0) || r.p != r.end) bad_value(L);
}
