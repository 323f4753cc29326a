/*
** tls.c
** TLS for Streams (OpenSSL): a layer inside the Stream over aio's own
** socket I/O. Ciphertext from the read callback goes to OpenSSL and
** plaintext comes out into the Stream's reader; writes are encrypted and
** sent like any others. Also core.tls.context: an SSL_CTX per
** configuration.
** See LICENSE
*/

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "aio.h"

#define CONTEXT_MT "aio.TlsContext"

/*
** The TLS state of a Stream (Stream.tls). OpenSSL reads ciphertext from
** `in` and writes it to `out` through one BIO of ours (no memory BIOs
** copying twice): the read callback fills `in`, and whatever OpenSSL
** wrote is sent at once. Both are empty (freed) while the stream idles.
*/
struct Tls {
  SSL *ssl;
  Buf in;                /* ciphertext received, not yet taken by OpenSSL */
  Buf out;               /* ciphertext OpenSSL wrote, not yet sent */
  uint8_t handshaking;   /* the handshake has not finished */
  uint8_t eof;           /* the socket ended: no more ciphertext */
  uint8_t failed;        /* a fatal error: no close_notify any more */
  uint8_t shut;          /* close_notify sent */
  char err[200];         /* why it failed (Stream.rerr == AIO_ETLS) */
};

/* An SSL_CTX in a userdata (class aio.TlsContext), freed by __gc; the SSL
** objects made from it hold references of their own. */
typedef struct TlsContext {
  SSL_CTX *ctx;
  int verify;            /* certificates are verified */
} TlsContext;


/* ---------------------------------------------------------------------
** The BIO between OpenSSL and the stream's buffers
** ------------------------------------------------------------------- */

static BIO_METHOD *bio_method;   /* made once per process (bio_once) */
static uv_once_t bio_once = UV_ONCE_INIT;

static int bio_write (BIO *b, const char *p, size_t n, size_t *written) {
  Tls *tls = (Tls *)BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (!aio__buf_append(&tls->out, p, n)) return 0;
  *written = n;
  return 1;
}


static int bio_read (BIO *b, char *p, size_t n, size_t *got) {
  Tls *tls = (Tls *)BIO_get_data(b);
  size_t avail = aio_buf_avail(&tls->in);
  BIO_clear_retry_flags(b);
  if (avail == 0) {
    if (!tls->eof) BIO_set_retry_read(b);
    return 0;
  }
  if (n > avail) n = avail;
  memcpy(p, aio_buf_head(&tls->in), n);
  aio__buf_consume(&tls->in, n, 0);
  *got = n;
  return 1;
}


static long bio_ctrl (BIO *b, int cmd, long num, void *ptr) {
  Tls *tls = (Tls *)BIO_get_data(b);
  (void)num; (void)ptr;
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return (long)aio_buf_avail(&tls->in);
    case BIO_CTRL_EOF: return tls->eof && aio_buf_avail(&tls->in) == 0;
    default: return 0;
  }
}


static int bio_create (BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}


static void make_bio_method (void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                               "aio stream");
  if (m == NULL) return;
  BIO_meth_set_write_ex(m, bio_write);
  BIO_meth_set_read_ex(m, bio_read);
  BIO_meth_set_ctrl(m, bio_ctrl);
  BIO_meth_set_create(m, bio_create);
  bio_method = m;
}


/* The BIO method, made on first use (once, whichever thread's Lua state
** comes first); NULL if out of memory. */
static BIO_METHOD *get_bio_method (void) {
  uv_once(&bio_once, make_bio_method);
  return bio_method;
}


/* ---------------------------------------------------------------------
** Errors
** ------------------------------------------------------------------- */

/* Records why the TLS layer failed (OpenSSL's reason for `e`, the result
** of SSL_get_error) in tls->err and marks it failed. */
static void record_error (Tls *tls, int e) {
  unsigned long code = ERR_peek_last_error();
  const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;
  long vr = tls->ssl != NULL ? SSL_get_verify_result(tls->ssl) : X509_V_OK;
  tls->failed = 1;
  if (vr != X509_V_OK && tls->handshaking)
    snprintf(tls->err, sizeof tls->err, "certificate verify failed: %s",
             X509_verify_cert_error_string(vr));
  else if (reason != NULL)
    snprintf(tls->err, sizeof tls->err, "%s", reason);
  else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN || tls->eof)
    snprintf(tls->err, sizeof tls->err, "the peer closed the connection");
  else snprintf(tls->err, sizeof tls->err, "TLS error %d", e);
  ERR_clear_error();
}


/* Why the stream's TLS layer failed (for an AIO_ETLS error). */
const char *aio__tls_error (Stream *s) {
  return s->tls != NULL && s->tls->err[0] ? s->tls->err : "TLS failure";
}


/* ---------------------------------------------------------------------
** Input, output, closing (no Lua in here)
** ------------------------------------------------------------------- */

/* Sends what OpenSSL wrote (handshake records, alerts, key updates)
** without waiting: 0 or a libuv error. */
static int flush_out (Stream *s) {
  return aio__stream_write_raw(NULL, s, &s->tls->out, 0, 0);
}


/*
** Decrypts what OpenSSL can into the stream's reader (through the loop's
** scratch buffer, free while no read callback is filling it). Returns the
** plaintext bytes added, or a negative code: UV_EOF (close_notify),
** UV_ENOBUFS, AIO_ETLS (tls->err says why).
*/
static int decrypt (Stream *s) {
  Tls *tls = s->tls;
  int total = 0;
  for (;;) {
    size_t got = 0;
    int r, e;
    ERR_clear_error();
    r = SSL_read_ex(tls->ssl, s->scratch, AIO_READ_SIZE, &got);
    if (r == 1) {
      if (!aio__buf_append(&s->in.buf, s->scratch, got)) return UV_ENOBUFS;
      total += (int)got;
      continue;
    }
    e = SSL_get_error(tls->ssl, r);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) {              /* close_notify */
      flush_out(s);
      return total > 0 ? total : UV_EOF;
    }
    record_error(tls, e);
    flush_out(s);                                  /* the alert */
    return AIO_ETLS;
  }
  if (aio_buf_avail(&tls->out) > 0) {
    int rc = flush_out(s);
    if (rc < 0) return rc;
  }
  return total;
}


/*
** The read callback's input on a TLS stream: `n` ciphertext bytes at
** `data`, or the socket's end or error (n < 0). Returns > 0 when readers
** have something new (plaintext; while handshaking, ciphertext for the
** handshake), 0 when not, or a negative code for Stream.rerr.
*/
int aio__tls_input (Stream *s, const char *data, ssize_t n) {
  Tls *tls = s->tls;
  if (n < 0) {
    tls->eof = 1;
    return (int)n;
  }
  if (!aio__buf_append(&tls->in, data, (size_t)n)) return UV_ENOBUFS;
  if (tls->handshaking) return 1;
  if (tls->failed) return AIO_ETLS;
  return decrypt(s);
}


/*
** Encrypts `n` plaintext bytes into tls->out and sets *out to it (what is
** to be sent). Returns 0, or AIO_ETLS.
*/
int aio__tls_encrypt (Stream *s, const char *p, size_t n, Buf **out) {
  Tls *tls = s->tls;
  *out = &tls->out;
  if (tls->failed || tls->shut) {
    if (!tls->failed)
      snprintf(tls->err, sizeof tls->err, "the TLS session was shut down");
    return AIO_ETLS;
  }
  while (n > 0) {
    size_t done = 0;
    ERR_clear_error();
    if (SSL_write_ex(tls->ssl, p, n, &done) != 1) {
      record_error(tls, SSL_get_error(tls->ssl, 0));
      return AIO_ETLS;
    }
    p += done;
    n -= done;
  }
  return 0;
}


/* Sends close_notify (once, if the session is up): nothing more will be
** written. */
void aio__tls_shutdown (Stream *s) {
  Tls *tls = s->tls;
  if (tls->handshaking || tls->failed || tls->shut) return;
  tls->shut = 1;
  ERR_clear_error();
  SSL_shutdown(tls->ssl);
  ERR_clear_error();
  flush_out(s);
}


/* The stream is being closed: says goodbye if it can. */
void aio__tls_close (Stream *s) {
  aio__tls_shutdown(s);
  aio__buf_free(&s->tls->in);
}


/* Frees the TLS state (the stream's memory is going). */
void aio__tls_free (Stream *s) {
  Tls *tls = s->tls;
  s->tls = NULL;
  SSL_free(tls->ssl);
  aio__buf_free(&tls->in);
  aio__buf_free(&tls->out);
  free(tls);
}


/* ---------------------------------------------------------------------
** The handshake: stream:_starttls(context, server_name, check_host)
** ------------------------------------------------------------------- */

/* Raises `tls` for a failed handshake; the stack is (stream, ...). */
static int handshake_fail (lua_State *L, Stream *s, int uverr) {
  Tls *tls = s->tls;
  long vr = SSL_get_verify_result(tls->ssl);
  lua_getiuservalue(L, 1, 1);
  if (uverr != 0 && uverr != UV_EOF)
    aio__uv_error_new(L, "tls", uverr, "TLS handshake with %s failed: ",
                      lua_tostring(L, -1));
  else {
    aio__error_new(L, "tls", "TLS handshake with %s failed: %s",
                   lua_tostring(L, -1), tls->err[0] ? tls->err :
                   "the peer closed the connection");
    if (vr != X509_V_OK) {
      aio__setfield_str(L, "code", "CERTIFICATE_VERIFY_FAILED");
      lua_pushinteger(L, (lua_Integer)vr);
      lua_setfield(L, -2, "verify_code");
      aio__setfield_str(L, "verify_message",
                        X509_verify_cert_error_string(vr));
    }
  }
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "peer");
  return lua_error(L);
}


static int handshake (lua_State *L, Stream *s);

static int handshake_k (lua_State *L, int status, lua_KContext ctx) {
  Stream *s = (Stream *)aio__io_self(L);
  (void)status; (void)ctx;
  if (aio__io_resumed(L, &s->io)) {
    lua_getiuservalue(L, 1, 1);
    aio__error_new(L, "timeout", "TLS handshake with %s timed out",
                   lua_tostring(L, -1));
    aio__setfield_str(L, "phase", "connect");
    return lua_error(L);
  }
  return handshake(L, s);
}


/* One step of the handshake: finishes, waits for the peer, or raises. */
static int handshake (lua_State *L, Stream *s) {
  Tls *tls = s->tls;
  int r, e, rc;
  ERR_clear_error();
  r = SSL_do_handshake(tls->ssl);
  e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(tls->ssl, r);
  if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) record_error(tls, e);
  rc = flush_out(s);                     /* our flight, or an alert */
  if (rc < 0 && !tls->failed) return handshake_fail(L, s, rc);
  if (e == SSL_ERROR_NONE) {
    tls->handshaking = 0;
    if (aio_buf_avail(&tls->in) > 0) {   /* data that came along */
      rc = decrypt(s);
      if (rc < 0) s->rerr = rc;
    }
    lua_settop(L, 1);
    return 1;
  }
  if (e != SSL_ERROR_WANT_READ) return handshake_fail(L, s, 0);
  if (s->rerr != 0) {                    /* the socket ended or failed */
    tls->failed = 1;
    return handshake_fail(L, s, s->rerr);
  }
  return aio__stream_wait(L, s, 0, handshake_k);
}


/* Is `name` an IP address literal? */
static int is_ip (const char *name) {
  struct sockaddr_storage ss;
  return aio__parse_address(name, 1, &ss) == 0;
}


/*
** stream:_starttls(context, server_name, check_host) (suspends) -> the
** stream, now over TLS as a client. `server_name` (a host name: SNI and
** the name the certificate must match; or an IP address, matched without
** SNI) may be nil; `check_host` asks for the name check (the context
** verifies the chain). Raises `tls` (fields peer, code, verify_code,
** verify_message), `timeout`, or the cancellation: the caller closes the
** stream then.
*/
int aio__tls_start (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Stream *s = (Stream *)aio__io_check(L);
  TlsContext *c = (TlsContext *)luaL_checkudata(L, 2, CONTEXT_MT);
  const char *name = luaL_optstring(L, 3, NULL);
  int check = lua_toboolean(L, 4);
  BIO_METHOD *m = get_bio_method();
  Tls *tls;
  BIO *bio;
  lua_settop(L, 4);
  aio__task_enter(L, loop, "aio.tcp.connect");
  if (s->tls != NULL) return aio__usage(L, "the stream is over TLS already");
  if (m == NULL || (tls = (Tls *)calloc(1, sizeof *tls)) == NULL)
    return aio__nomem(L, "starting TLS");
  tls->handshaking = 1;
  tls->ssl = SSL_new(c->ctx);
  bio = BIO_new(m);
  if (tls->ssl == NULL || bio == NULL) {
    BIO_free(bio);
    SSL_free(tls->ssl);
    free(tls);
    return aio__nomem(L, "starting TLS");
  }
  BIO_set_data(bio, tls);
  SSL_set_bio(tls->ssl, bio, bio);
  s->tls = tls;                        /* the stream frees it from now on */
  if (name != NULL) {
    int ip = is_ip(name), ok = 1;
    if (!ip) ok = SSL_set_tlsext_host_name(tls->ssl, name) == 1;
    if (ok && check && c->verify) {
      X509_VERIFY_PARAM *p = SSL_get0_param(tls->ssl);
      X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(p, name) == 1 :
                SSL_set1_host(tls->ssl, name) == 1;
    }
    if (!ok) {
      ERR_clear_error();
      return luaL_argerror(L, 3, "invalid server name");
    }
  }
  SSL_set_connect_state(tls->ssl);
  return handshake(L, s);
}


/* stream:tls_info() -> {protocol=, cipher=, alpn=} for a TLS stream, nil
** for a plain one. */
int aio__tls_info (lua_State *L) {
  Stream *s = (Stream *)aio__io_check(L);
  const unsigned char *alpn = NULL;
  unsigned int alen = 0;
  if (s->tls == NULL || s->tls->handshaking) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 3);
  aio__setfield_str(L, "protocol", SSL_get_version(s->tls->ssl));
  aio__setfield_str(L, "cipher", SSL_get_cipher_name(s->tls->ssl));
  SSL_get0_alpn_selected(s->tls->ssl, &alpn, &alen);
  if (alen > 0) {
    lua_pushlstring(L, (const char *)alpn, alen);
    lua_setfield(L, -2, "alpn");
  }
  return 1;
}


/* ---------------------------------------------------------------------
** core.tls.context(verify, ca_file, alpn)
** ------------------------------------------------------------------- */

/* Raises `tls` for a context that cannot be set up (an unreadable CA
** file, ...), with OpenSSL's reason. */
static int context_fail (lua_State *L, const char *what) {
  unsigned long code = ERR_peek_last_error();
  const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;
  ERR_clear_error();
  return aio__error(L, "tls", "%s: %s", what,
                    reason != NULL ? reason : "OpenSSL error");
}


/*
** core.tls.context(verify, ca_file, alpn) -> a client context: verifies
** certificate chains when `verify` (against `ca_file` if given, else the
** system store), offers the protocols of the array `alpn` (or nil).
** TLS 1.2 at least; OpenSSL's buffers are released while a connection
** idles. Raises `tls` if the CA file cannot be loaded.
*/
static int tls_context (lua_State *L) {
  int verify = lua_toboolean(L, 1);
  const char *ca_file = luaL_optstring(L, 2, NULL);
  TlsContext *c;
  lua_settop(L, 3);
  c = (TlsContext *)lua_newuserdatauv(L, sizeof *c, 0);
  c->ctx = NULL;
  c->verify = verify;
  luaL_setmetatable(L, CONTEXT_MT);
  c->ctx = SSL_CTX_new(TLS_client_method());
  if (c->ctx == NULL) return aio__nomem(L, "making a TLS context");
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS);
  /* a peer that closes without close_notify ends the stream (like curl);
  ** protocols above have their own framing */
  SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (verify) {
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file != NULL) {
      if (SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1) {
        lua_pushfstring(L, "cannot load the CA file %s", ca_file);
        return context_fail(L, lua_tostring(L, -1));
      }
    }
    else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1)
      return context_fail(L, "cannot load the system's certificates");
  }
  else SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
  if (lua_istable(L, 3)) {                     /* ALPN: length-prefixed */
    unsigned char wire[1024];
    size_t used = 0;
    lua_Integer i, n = luaL_len(L, 3);
    for (i = 1; i <= n; i++) {
      size_t len;
      const char *p;
      lua_geti(L, 3, i);
      p = lua_tolstring(L, -1, &len);
      if (p == NULL || len == 0 || len > 255 || used + len + 1 > sizeof wire)
        return luaL_argerror(L, 3, "invalid ALPN protocol names");
      wire[used++] = (unsigned char)len;
      memcpy(wire + used, p, len);
      used += len;
      lua_pop(L, 1);
    }
    if (used > 0 && SSL_CTX_set_alpn_protos(c->ctx, wire, (unsigned)used) != 0)
      return context_fail(L, "cannot set ALPN");
  }
  lua_settop(L, 4);
  return 1;
}


static int context__gc (lua_State *L) {
  TlsContext *c = (TlsContext *)aio__checkself(L);
  SSL_CTX_free(c->ctx);
  c->ctx = NULL;
  return 0;
}


static const luaL_Reg context_meta[] = {
  {"__gc", context__gc},
  {NULL, NULL}
};

static const AioClass context_class = {CONTEXT_MT, NULL, context_meta};


static const luaL_Reg tls_funcs[] = {
  {"context", tls_context},
  {NULL, NULL}
};


/* core.tls = {context}; the TlsContext class. */
static void open_tls (lua_State *L) {
  int core = lua_gettop(L);
  aio__class_open(L, core - 1, &context_class);
  lua_pop(L, 1);
  lua_newtable(L);
  aio__setfuncs(L, core - 1, tls_funcs);
  lua_setfield(L, core, "tls");
}


const AioModule aio__module_tls = {"tls", open_tls, NULL};
