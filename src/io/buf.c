/*
** buf.c
** The byte buffer every module reads into (sockets, files, pipes, HTTP
** bodies, values copied between threads) and the buffered reader on top of
** it: lines, exact counts and "up to n" for Stream and File.
** See LICENSE
*/

#include <stdlib.h>
#include <string.h>

#include "io.h"

#define BUF_MIN 1024


/*
** Makes room for `n` more bytes after the unread ones: moves them to the
** front if that makes enough room, else grows (at least doubling). Returns
** 0 if out of memory (the buffer is unchanged). Never raises.
*/
int aio__buf_reserve (Buf *b, size_t n) {
  size_t avail = aio_buf_avail(b), cap;
  char *nb;
  if (b->cap - b->len >= n) return 1;
  if (b->off > 0 && b->cap - avail >= n) {
    memmove(b->data, b->data + b->off, avail);
    b->off = 0;
    b->len = avail;
    return 1;
  }
  if (n > SIZE_MAX - avail) return 0;
  cap = b->cap * 2;
  if (cap < avail + n) cap = avail + n;
  if (cap < BUF_MIN) cap = BUF_MIN;
  if (b->off > 0) {                /* compact into the new block */
    nb = (char *)malloc(cap);
    if (nb == NULL) return 0;
    if (avail > 0) memcpy(nb, b->data + b->off, avail);
    free(b->data);
  }
  else {
    nb = (char *)realloc(b->data, cap);
    if (nb == NULL) return 0;
  }
  b->data = nb;
  b->cap = cap;
  b->off = 0;
  b->len = avail;
  return 1;
}


/* Appends `n` bytes; 0 if out of memory. Never raises. */
int aio__buf_append (Buf *b, const void *p, size_t n) {
  if (n == 0) return 1;
  if (!aio__buf_reserve(b, n)) return 0;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 1;
}


/* Consumes `n` unread bytes. Once it is empty, a block larger than `keep`
** bytes is given back (a big read is over). */
void aio__buf_consume (Buf *b, size_t n, size_t keep) {
  b->off += n;
  if (b->off < b->len) return;
  b->off = b->len = 0;
  if (b->cap > keep) aio__buf_free(b);
}


void aio__buf_free (Buf *b) {
  free(b->data);
  b->data = NULL;
  b->off = b->len = b->cap = 0;
}


/* ---------------------------------------------------------------------
** The reader
** ------------------------------------------------------------------- */

/* Pushes the next `n` unread bytes and consumes them. */
void aio__read_take (lua_State *L, Reader *r, size_t n) {
  lua_pushlstring(L, aio_buf_head(&r->buf), n);
  aio__buf_consume(&r->buf, n, r->keep);
  r->scan = 0;
}


/*
** The next line: without its "\n" (and "\r" before it with
** AIO_LINE_CRLF) unless AIO_LINE_KEEP; at the end of the input, what is
** left even without a newline. A line (newline excluded) longer than
** `limit` bytes is AIO_READ_LONG and stays buffered. *taken is set to the
** bytes consumed.
*/
int aio__read_line (lua_State *L, Reader *r, int end, size_t limit,
                    int flags, size_t *taken) {
  Buf *b = &r->buf;
  size_t avail = aio_buf_avail(b);
  char *head = aio_buf_head(b);
  char *nl = avail > r->scan ?
    (char *)memchr(head + r->scan, '\n', avail - r->scan) : NULL;
  if (nl != NULL) {
    size_t len = (size_t)(nl - head), keep = len;
    if (len > limit) return AIO_READ_LONG;
    if (flags & AIO_LINE_KEEP) keep = len + 1;
    else if ((flags & AIO_LINE_CRLF) && len > 0 && nl[-1] == '\r') keep--;
    lua_pushlstring(L, head, keep);
    aio__buf_consume(b, len + 1, r->keep);
    r->scan = 0;
    *taken = len + 1;
    return AIO_READ_OK;
  }
  if (avail > limit) return AIO_READ_LONG;
  if (!end) {
    r->scan = avail;
    return AIO_READ_MORE;
  }
  if (avail == 0) return AIO_READ_END;
  *taken = avail;
  aio__read_take(L, r, avail);
  return AIO_READ_OK;
}


/* Exactly `n` bytes; at the end of the input with fewer, AIO_READ_END
** (they stay buffered). */
int aio__read_exactly (lua_State *L, Reader *r, int end, size_t n) {
  if (aio_buf_avail(&r->buf) >= n) {
    aio__read_take(L, r, n);
    return AIO_READ_OK;
  }
  return end ? AIO_READ_END : AIO_READ_MORE;
}


/* Up to `n` bytes (at least one): what is buffered, or the end. */
int aio__read_upto (lua_State *L, Reader *r, int end, size_t n) {
  size_t avail = aio_buf_avail(&r->buf);
  if (avail > 0) {
    aio__read_take(L, r, n < avail ? n : avail);
    return AIO_READ_OK;
  }
  return end ? AIO_READ_END : AIO_READ_MORE;
}
