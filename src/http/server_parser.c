/*
** server_parser.c
** The request parser behind a thin interface: http-parser 2.9.4 (strict
** mode) collects request heads into C memory and hands body bytes over,
** and our own checks reject what it lets through that request smuggling
** relies on. The only file that knows http-parser.
** See LICENSE
*/

/*
** http-parser is used through its API functions and documented fields
** only (method, http_major, http_minor, upgrade, http_errno, and
** content_length inside on_chunk_header), so llhttp can replace it here.
**
** It is lenient where smuggling lives, so this file adds, in the field
** callbacks: names must be tokens (no whitespace before the colon),
** values free of control bytes, one Content-Length of digits only, one
** Transfer-Encoding that is exactly "chunked" and never with
** Content-Length or in HTTP/1.0, at most one Host (required in 1.1), and
** an Expect other than 100-continue answered 417. And a check of the
** framing bytes (everything that is not body data, classified from the
** positions of the body callbacks): lines end in CRLF (no bare LF, no
** bare CR), no line of the head or the trailers starts with whitespace
** (obs-fold), no NUL in the head, chunk-size lines are hex digits then
** CRLF or ";" extensions, and no longer than HS_CHUNK_LINE bytes.
*/

#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "server.h"

#define parser_of(p) ((http_parser *)(void *)(p)->impl)
#define hp_of(hp) ((HttpParse *)(void *)(hp))   /* impl is the first field */

/* http_parser must fit in HttpParse.impl. */
typedef char impl_fits[sizeof(http_parser) <=
                       sizeof(((HttpParse *)0)->impl) ? 1 : -1];

/* HttpParse.last: the head callback seen last. */
enum { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };

/* HttpParse.lex: where the framing check is. */
enum {
  LX_START, LX_START_CR,       /* before the request line (CRLFs allowed) */
  LX_LINE, LX_CR, LX_BOL,      /* in a head line, after CR, at a line start */
  LX_EOH_CR,                   /* CR of the empty line ending the head */
  LX_BODY,                     /* after the head: no framing expected */
  CX_SIZE0, CX_SIZE, CX_EXT,   /* a chunk-size line */
  CX_SIZE_CR, CX_DATA,         /* its CR; chunk data */
  CX_DATA_CR,                  /* the CR after chunk data */
  TX_BOL, TX_LINE, TX_CR,      /* trailer lines */
  TX_EOH_CR,                   /* CR of the empty line ending them */
  LX_DONE                      /* the message ended */
};


static int fail (HttpParse *p, int status, const char *reason) {
  if (p->status == 0) {
    p->status = (uint16_t)status;
    p->reason = reason;
  }
  return 1;
}


/* ---------------------------------------------------------------------
** The framing check
** ------------------------------------------------------------------- */

static int is_hex (int ch) {
  return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}

static int hex_value (int ch) {
  return ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
}


/* Checks the framing bytes [s, e); 0 if they are invalid (p->status set). */
static int lex_bytes (HttpParse *p, const char *s, const char *e) {
  for (; s < e; s++) {
    int ch = (unsigned char)*s;
    switch (p->lex) {
      case LX_START:
        if (ch == '\r') p->lex = LX_START_CR;
        else if (ch == '\n' || ch == ' ' || ch == '\t' || ch == 0)
          return !fail(p, 400, "bad request line");
        else p->lex = LX_LINE;
        break;
      case LX_START_CR:
        if (ch != '\n') return !fail(p, 400, "bare CR");
        p->lex = LX_START;
        break;
      case LX_LINE:
        if (ch == '\r') p->lex = LX_CR;
        else if (ch == '\n') return !fail(p, 400, "bare LF in the head");
        else if (ch == 0) return !fail(p, 400, "NUL in the head");
        break;
      case LX_CR:
        if (ch != '\n') return !fail(p, 400, "bare CR in the head");
        p->lex = LX_BOL;
        break;
      case LX_BOL:
        if (ch == '\r') p->lex = LX_EOH_CR;
        else if (ch == ' ' || ch == '\t')
          return !fail(p, 400, "folded header line (obs-fold)");
        else if (ch == '\n') return !fail(p, 400, "bare LF in the head");
        else if (ch == 0) return !fail(p, 400, "NUL in the head");
        else p->lex = LX_LINE;
        break;
      case LX_EOH_CR:
        if (ch != '\n') return !fail(p, 400, "bare CR in the head");
        p->lex = p->chunked ? CX_SIZE0 : LX_BODY;
        p->lex_count = 0;
        break;
      case CX_SIZE0:
        if (!is_hex(ch)) return !fail(p, 400, "invalid chunk size");
        p->chunk_size = (uint64_t)hex_value(ch);
        p->lex_count = 1;
        p->lex = CX_SIZE;
        break;
      case CX_SIZE:
        if (is_hex(ch)) {
          if (++p->lex_count > 16) return !fail(p, 400, "chunk size too long");
          p->chunk_size = p->chunk_size * 16 + (uint64_t)hex_value(ch);
        }
        else if (ch == ';') p->lex = CX_EXT;
        else if (ch == '\r') p->lex = CX_SIZE_CR;
        else return !fail(p, 400, "invalid chunk size");
        break;
      case CX_EXT:
        if (++p->lex_count > HS_CHUNK_LINE)
          return !fail(p, 400, "chunk extension too long");
        if (ch == '\r') p->lex = CX_SIZE_CR;
        else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
          return !fail(p, 400, "invalid chunk extension");
        break;
      case CX_SIZE_CR:
        if (ch != '\n') return !fail(p, 400, "bare CR in chunk framing");
        p->lex = p->chunk_size == 0 ? TX_BOL : CX_DATA;
        p->lex_count = 0;
        break;
      case CX_DATA:
        if (ch != '\r') return !fail(p, 400, "invalid chunk framing");
        p->lex = CX_DATA_CR;
        break;
      case CX_DATA_CR:
        if (ch != '\n') return !fail(p, 400, "bare CR in chunk framing");
        p->lex = CX_SIZE0;
        break;
      case TX_BOL:
        if (ch == '\r') p->lex = TX_EOH_CR;
        else if (ch == ' ' || ch == '\t' || ch == '\n' || ch == 0)
          return !fail(p, 400, "invalid trailer line");
        else p->lex = TX_LINE;
        break;
      case TX_LINE:
        if (++p->lex_count > p->max_head)
          return !fail(p, 431, "trailers too large");
        if (ch == '\r') p->lex = TX_CR;
        else if (ch == '\n' || ch == 0)
          return !fail(p, 400, "invalid trailer line");
        break;
      case TX_CR:
        if (ch != '\n') return !fail(p, 400, "bare CR in trailers");
        p->lex = TX_BOL;
        break;
      case TX_EOH_CR:
        if (ch != '\n') return !fail(p, 400, "bare CR in trailers");
        p->lex = LX_DONE;
        break;
      default:
        return !fail(p, 400, "unexpected bytes after the message");
    }
  }
  return 1;
}


/* ---------------------------------------------------------------------
** Collecting the head
** ------------------------------------------------------------------- */

/* Is `ch` a tchar of RFC 9110 (a byte a token, such as a field name, may
** have)? */
int aio__hs_is_tchar (int ch) {
  static const char extra[] = "!#$%&'*+-.^_`|~";
  if ((ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z'))
    return 1;
  return ch != 0 && strchr(extra, ch) != NULL;
}


/* Do the `len` bytes at `s` equal `lower` (lower case), ignoring case? */
int aio__hs_lower_eq (const char *s, size_t len, const char *lower) {
  size_t i;
  if (strlen(lower) != len) return 0;
  for (i = 0; i < len; i++)
    if ((s[i] >= 'A' && s[i] <= 'Z' ? s[i] | 0x20 : s[i]) != lower[i])
      return 0;
  return 1;
}


static int head_append (HttpParse *p, const char *at, size_t len) {
  if (!aio__buf_append(&p->head->data, at, len))
    return fail(p, 503, "out of memory");
  return 0;
}


static HttpField *last_field (HttpParse *p) {
  return &p->head->fields[p->head->nfields - 1];
}


#define name_is(p, f, lower) \
  aio__hs_lower_eq((p)->head->data.data + (f)->name, (f)->nlen, (lower))
#define value_is(p, f, lower) \
  aio__hs_lower_eq((p)->head->data.data + (f)->value, (f)->vlen, (lower))


/* The last field is complete: trims its value and checks the fields
** that decide the framing. Returns non-zero to stop the parser. */
static int field_done (HttpParse *p) {
  HttpField *f = last_field(p);
  const char *v = p->head->data.data;
  while (f->vlen > 0 && (v[f->value] == ' ' || v[f->value] == '\t')) {
    f->value++;
    f->vlen--;
  }
  while (f->vlen > 0 && (v[f->value + f->vlen - 1] == ' ' ||
                         v[f->value + f->vlen - 1] == '\t'))
    f->vlen--;
  if (name_is(p, f, "content-length")) {
    uint32_t i;
    uint64_t n = 0;
    if (p->has_clen) return fail(p, 400, "duplicate Content-Length");
    if (f->vlen == 0 || f->vlen > 15)
      return fail(p, 400, "invalid Content-Length");
    for (i = 0; i < f->vlen; i++) {
      int ch = v[f->value + i];
      if (ch < '0' || ch > '9') return fail(p, 400, "invalid Content-Length");
      n = n * 10 + (uint64_t)(ch - '0');
    }
    p->has_clen = 1;
    p->clen = n;
  }
  else if (name_is(p, f, "transfer-encoding")) {
    if (p->chunked) return fail(p, 400, "duplicate Transfer-Encoding");
    if (!value_is(p, f, "chunked"))
      return fail(p, 400, "unsupported Transfer-Encoding");
    p->chunked = 1;
  }
  else if (name_is(p, f, "host")) {
    if (p->has_host) return fail(p, 400, "duplicate Host");
    p->has_host = 1;
  }
  else if (name_is(p, f, "expect")) {
    if (!value_is(p, f, "100-continue"))
      return fail(p, 417, "unsupported expectation");
    p->expect_continue = 1;
  }
  return 0;
}


static int on_message_begin (http_parser *hp) {
  HttpParse *p = hp_of(hp);
  if (p->head == NULL) {
    HeadPool *pool = p->pool;
    if (pool != NULL && pool->free != NULL) {
      p->head = pool->free;
      pool->free = p->head->next;
      pool->n--;
      p->head->next = NULL;
    }
    else {
      p->head = (HttpHead *)calloc(1, sizeof(HttpHead));
      if (p->head == NULL) return fail(p, 503, "out of memory");
    }
  }
  p->phase = HP_HEAD;
  p->last = CB_NONE;
  return 0;
}


static int on_url (http_parser *hp, const char *at, size_t len) {
  HttpParse *p = hp_of(hp);
  p->last = CB_URL;
  p->head->url_len += (uint32_t)len;
  return head_append(p, at, len);
}


static int on_header_field (http_parser *hp, const char *at, size_t len) {
  HttpParse *p = hp_of(hp);
  HttpHead *h = p->head;
  size_t i;
  if (p->phase != HP_HEAD) return 0;     /* trailers: checked by lex only */
  if (p->last == CB_VALUE && field_done(p)) return 1;
  if (p->last != CB_FIELD) {             /* a new field begins */
    HttpField *f;
    if (h->nfields == HS_MAX_FIELDS)
      return fail(p, 431, "too many header fields");
    if (h->nfields == h->cap) {
      uint32_t cap = h->cap ? h->cap * 2 : 16;
      HttpField *nf = (HttpField *)realloc(h->fields, cap * sizeof *nf);
      if (nf == NULL) return fail(p, 503, "out of memory");
      h->fields = nf;
      h->cap = cap;
    }
    f = &h->fields[h->nfields++];
    f->name = (uint32_t)h->data.len;
    f->nlen = 0;
    f->value = f->vlen = 0;
    p->last = CB_FIELD;
  }
  for (i = 0; i < len; i++)
    if (!aio__hs_is_tchar((unsigned char)at[i]))
      return fail(p, 400, "invalid header field name");
  last_field(p)->nlen += (uint32_t)len;
  return head_append(p, at, len);
}


static int on_header_value (http_parser *hp, const char *at, size_t len) {
  HttpParse *p = hp_of(hp);
  size_t i;
  if (p->phase != HP_HEAD) return 0;     /* trailers: checked by lex only */
  if (p->last != CB_VALUE) {
    last_field(p)->value = (uint32_t)p->head->data.len;
    p->last = CB_VALUE;
  }
  for (i = 0; i < len; i++) {
    int ch = (unsigned char)at[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
      return fail(p, 400, "invalid byte in a header value");
  }
  last_field(p)->vlen += (uint32_t)len;
  return head_append(p, at, len);
}


static int on_headers_complete (http_parser *hp) {
  HttpParse *p = hp_of(hp);
  if (p->phase != HP_HEAD) return 0;     /* not called for trailers */
  if (p->last == CB_FIELD) {              /* a last field with no value */
    last_field(p)->value = (uint32_t)p->head->data.len;
    p->last = CB_VALUE;
  }
  if (p->last == CB_VALUE && field_done(p)) return 1;
  p->last = CB_NONE;
  if (hp->http_major != 1 || hp->http_minor > 1)
    return fail(p, 505, "unsupported HTTP version");
  if (p->has_clen && p->chunked)
    return fail(p, 400, "Content-Length with Transfer-Encoding");
  if (p->chunked && hp->http_minor == 0)
    return fail(p, 400, "Transfer-Encoding in HTTP/1.0");
  if (!p->has_host && hp->http_minor == 1)
    return fail(p, 400, "no Host header");
  if (p->expect_continue && hp->http_minor == 0) p->expect_continue = 0;
  p->phase = HP_MORE;
  http_parser_pause(hp, 1);
  return 0;
}


/* ---------------------------------------------------------------------
** The body
** ------------------------------------------------------------------- */

static int on_body (http_parser *hp, const char *at, size_t len) {
  HttpParse *p = hp_of(hp);
  if (!lex_bytes(p, p->scan, at)) return 1;
  if (p->lex != CX_DATA && p->lex != LX_BODY)
    return fail(p, 400, "body data out of place");
  p->scan = at + len;
  p->body_total += len;
  if (p->max_body > 0 && p->body_total > p->max_body)
    return fail(p, 413, "body larger than max_body");
  if (p->body != NULL && !aio__buf_append(p->body, at, len))
    return fail(p, 503, "out of memory");
  return 0;
}


static int on_chunk_header (http_parser *hp) {
  HttpParse *p = hp_of(hp);
  /* documented: the chunk's length is in content_length here */
  if (p->max_body > 0 && hp->content_length > p->max_body - p->body_total)
    return fail(p, 413, "body larger than max_body");
  return 0;
}


static int on_message_complete (http_parser *hp) {
  HttpParse *p = hp_of(hp);
  p->phase = HP_DONE;
  http_parser_pause(hp, 1);
  return 0;
}


static const http_parser_settings settings = {
  on_message_begin, on_url, NULL, on_header_field, on_header_value,
  on_headers_complete, on_body, on_message_complete, on_chunk_header, NULL
};


/* ---------------------------------------------------------------------
** The interface
** ------------------------------------------------------------------- */

/* Starts parsing requests; heads of more than `max_head` bytes are 431.
** Heads come from (and go back to) `pool` if not NULL. */
void aio__hp_init (HttpParse *p, uint32_t max_head, HeadPool *pool) {
  memset(p, 0, sizeof *p);
  http_parser_init(parser_of(p), HTTP_REQUEST);
  p->max_head = max_head;
  p->pool = pool;
  p->phase = HP_HEAD;
  p->lex = LX_START;
}


static void head_free (HttpHead *h) {
  aio__buf_free(&h->data);
  free(h->fields);
  free(h);
}


/* Frees the head being collected (back to the pool if it is small). */
void aio__hp_free (HttpParse *p) {
  HttpHead *h = p->head;
  HeadPool *pool = p->pool;
  if (h == NULL) return;
  p->head = NULL;
  if (pool != NULL && pool->n < HS_POOL && h->data.cap <= 8192 &&
      h->cap <= 32) {
    h->data.off = h->data.len = 0;
    h->url_len = h->nfields = 0;
    h->next = pool->free;
    pool->free = h;
    pool->n++;
  }
  else head_free(h);
}


/* Frees the heads of a pool. */
void aio__hp_pool_free (HeadPool *pool) {
  while (pool->free != NULL) {
    HttpHead *h = pool->free;
    pool->free = h->next;
    head_free(h);
  }
  pool->n = 0;
}


/*
** Parses input `data`: sets *used to the bytes it took and returns
** HP_MORE, HP_HEAD (a head is complete: see p->head; call aio__hp_resume
** before feeding the body), HP_DONE (the message ended: call aio__hp_next
** before the next one) or HP_ERROR (p->status, p->reason). While a body
** is parsed its bytes are appended to p->body (dropped if NULL). Never
** raises.
*/
int aio__hp_feed (HttpParse *p, const char *data, size_t len, size_t *used) {
  http_parser *hp = parser_of(p);
  int head = p->phase == HP_HEAD;
  enum http_errno err;
  size_t n, skip = 0;
  *used = 0;
  if (p->status != 0) return HP_ERROR;
  if (len == 0) return p->phase == HP_DONE ? HP_DONE : HP_MORE;
  if (p->lex_skip) {                 /* checked at the end of the head */
    p->lex_skip = 0;
    skip = 1;
  }
  p->scan = data + skip;
  n = http_parser_execute(hp, &settings, data, len);
  err = HTTP_PARSER_ERRNO(hp);
  if (p->status == 0 && err != HPE_OK && err != HPE_PAUSED) {
    if (err == HPE_HEADER_OVERFLOW) fail(p, 431, "head too large");
    else if (err == HPE_INVALID_VERSION) fail(p, 505, "invalid version");
    else fail(p, 400, http_errno_description(err));
  }
  if (p->status == 0 && p->scan < data + n) lex_bytes(p, p->scan, data + n);
  if (head && p->status == 0) {
    if (p->phase != HP_HEAD && n < len) {
      /* the head ended at the LF data[n], which the parser keeps for the
      ** next call: check it now */
      lex_bytes(p, data + n, data + n + 1);
      p->lex_skip = 1;
      n++;
      p->head_bytes += (uint32_t)n;
      n--;
    }
    else p->head_bytes += (uint32_t)(n > UINT32_MAX - p->head_bytes ?
                                     UINT32_MAX - p->head_bytes : n);
    if (p->head_bytes > p->max_head) fail(p, 431, "head too large");
  }
  *used = n;
  if (p->status != 0) return HP_ERROR;
  if (head && p->phase != HP_HEAD) return HP_HEAD;
  if (p->phase == HP_DONE) return HP_DONE;
  return HP_MORE;
}


/* After HP_HEAD: lets the parser go on into the body. */
void aio__hp_resume (HttpParse *p) {
  http_parser_pause(parser_of(p), 0);
}


/* After HP_DONE: gets ready for the next request on the connection. */
void aio__hp_next (HttpParse *p) {
  aio__hp_free(p);
  http_parser_pause(parser_of(p), 0);
  p->clen = p->body_total = p->chunk_size = 0;
  p->head_bytes = p->lex_count = 0;
  p->has_clen = p->chunked = p->has_host = p->expect_continue = 0;
  p->phase = HP_HEAD;
  p->last = CB_NONE;
  p->lex = LX_START;
  p->lex_skip = 0;
  p->max_body = 0;
}


const char *aio__hp_method (const HttpParse *p) {
  return http_method_str((enum http_method)
                         ((const http_parser *)(const void *)p->impl)->method);
}


int aio__hp_is_head (const HttpParse *p) {
  return ((const http_parser *)(const void *)p->impl)->method == HTTP_HEAD;
}


/* 10 for HTTP/1.0, 11 for HTTP/1.1. */
int aio__hp_version (const HttpParse *p) {
  const http_parser *hp = (const http_parser *)(const void *)p->impl;
  return hp->http_major * 10 + hp->http_minor;
}


/* Does the client want the connection kept (its version and Connection
** header)? */
int aio__hp_keep_alive (const HttpParse *p) {
  return http_should_keep_alive((const http_parser *)(const void *)p->impl);
}


/* Does the request ask to leave HTTP (Upgrade, or CONNECT)? */
int aio__hp_upgrade (const HttpParse *p) {
  const http_parser *hp = (const http_parser *)(const void *)p->impl;
  return hp->upgrade || hp->method == HTTP_CONNECT;
}


/* Does the request have a body (chunked, or a Content-Length above 0)? */
int aio__hp_has_body (const HttpParse *p) {
  return p->chunked || (p->has_clen && p->clen > 0);
}


/*
** Splits a request target into its path and query (offsets into `url`):
** origin form "/p?q", absolute form "http://h/p?q", "*". Returns 0 for a
** target that has no path (authority form).
*/
int aio__hp_split_target (const char *url, size_t len, size_t *path,
                          size_t *plen, size_t *query, size_t *qlen) {
  struct http_parser_url u;
  *query = *qlen = 0;
  if (len > 0 && (url[0] == '/' || url[0] == '*')) {
    const char *q = (const char *)memchr(url, '?', len);
    const char *h = (const char *)memchr(url, '#', len);
    size_t end = q ? (size_t)(q - url) : (h ? (size_t)(h - url) : len);
    *path = 0;
    *plen = end;
    if (q != NULL) {
      *query = end + 1;
      *qlen = (h != NULL && h > q ? (size_t)(h - url) : len) - *query;
    }
    return 1;
  }
  http_parser_url_init(&u);
  if (http_parser_parse_url(url, len, 0, &u) != 0) return 0;
  if (u.field_set & (1 << UF_PATH)) {
    *path = u.field_data[UF_PATH].off;
    *plen = u.field_data[UF_PATH].len;
  }
  else {
    *path = 0;
    *plen = 0;
  }
  if (u.field_set & (1 << UF_QUERY)) {
    *query = u.field_data[UF_QUERY].off;
    *qlen = u.field_data[UF_QUERY].len;
  }
  return 1;
}
