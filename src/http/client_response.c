/*
** client_response.c
** What a finished (or streaming) request gives Lua: the Response table
** from curl's getinfo and header API, and the aio.Error of a failed
** transfer with its kind; plus URL joining and version facts.
** See LICENSE
*/

#include <string.h>

#include <curl/curl.h>

#include "aio.h"
#include "http.h"


/* Pushes `s` lower-cased (ASCII). */
static void push_lower (lua_State *L, const char *s) {
  size_t i, n = strlen(s);
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, n);
  for (i = 0; i < n; i++) {
    char c = s[i];
    p[i] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
  }
  luaL_pushresultsize(&b, n);
}


static const char *version_name (long v) {
  switch (v) {
    case CURL_HTTP_VERSION_1_0: return "1.0";
    case CURL_HTTP_VERSION_1_1: return "1.1";
    case CURL_HTTP_VERSION_2_0: return "2";
    case CURL_HTTP_VERSION_3: return "3";
    default: return "";
  }
}


/* Sets hdrs[lower(name)] (the name on top, popped) to the value on top
** (popped), joined with ", " to the value it has already. */
static void join_header (lua_State *L, int hdrs) {
  lua_pushvalue(L, -2);                             /* name value name */
  if (lua_rawget(L, hdrs) == LUA_TSTRING) {         /* name value old */
    lua_insert(L, -2);
    lua_pushliteral(L, ", ");
    lua_insert(L, -2);
    lua_concat(L, 3);                               /* name joined */
  }
  else lua_pop(L, 1);
  lua_rawset(L, hdrs);
}


/* The span [*b, *e) without the blanks around it. */
static void trim (const char **b, const char **e) {
  while (*b < *e && (**b == ' ' || **b == '\t')) (*b)++;
  while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t' ||
                     (*e)[-1] == '\r' || (*e)[-1] == '\n')) (*e)--;
}


/*
** Pushes the headers of the final response of `r` (the lines curl handed
** to the header callback, split at the first colon) into the tables at
** `hdrs` (lower-cased name -> value, repeats joined with ", ") and `flat`
** ({name1, value1, name2, ...} as received). A folded line (starting with
** a blank) continues the previous value.
*/
static void push_headers (lua_State *L, HttpRequest *r, int hdrs, int flat) {
  const char *p = aio_buf_head(&r->head), *end = aio_buf_tail(&r->head);
  lua_Integer n = 0;
  if (r->head.data == NULL) return;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol != NULL ? eol + 1 : end;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    const char *vb, *ve = line_end;
    if ((*p == ' ' || *p == '\t') && n > 0) {      /* folded */
      vb = p;
      trim(&vb, &ve);
      lua_rawgeti(L, flat, n);
      lua_pushliteral(L, " ");
      lua_pushlstring(L, vb, (size_t)(ve - vb));
      lua_concat(L, 3);
      lua_rawseti(L, flat, n);
    }
    else if (colon != NULL && colon > p) {
      const char *nb = p, *ne = colon;
      vb = colon + 1;
      trim(&nb, &ne);
      trim(&vb, &ve);
      lua_pushlstring(L, nb, (size_t)(ne - nb));
      lua_rawseti(L, flat, ++n);
      lua_pushlstring(L, vb, (size_t)(ve - vb));
      lua_rawseti(L, flat, ++n);
    }
    p = line_end;
  }
  for (lua_Integer i = 1; i < n; i += 2) {          /* the joined view */
    lua_rawgeti(L, flat, i);
    push_lower(L, lua_tostring(L, -1));
    lua_remove(L, -2);                              /* lname */
    lua_rawgeti(L, flat, i + 1);                    /* lname value */
    join_header(L, hdrs);
  }
}


/*
** Pushes the Response of request `r` (userdata at `ridx`): status, ok,
** url (final), http_version, method, headers, _h (flat header list), and
** body (a string) or, streamed, _req (the request, to read the body from).
** Its metatable is the engine's Response metatable (engine user value 1);
** `headers` gets the case-insensitive lookup one (user value 2).
*/
void aio__http_push_response (lua_State *L, HttpRequest *r, int ridx) {
  long code = 0, ver = 0;
  char *eff = NULL;
  int resp;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &ver);
  curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &eff);
  lua_createtable(L, 0, 10);
  resp = lua_gettop(L);
  lua_pushinteger(L, code);
  lua_setfield(L, resp, "status");
  lua_pushboolean(L, code < 400);
  lua_setfield(L, resp, "ok");
  if (eff != NULL) lua_pushstring(L, eff);
  else lua_getiuservalue(L, ridx, 3);
  lua_setfield(L, resp, "url");
  lua_pushstring(L, version_name(ver));
  lua_setfield(L, resp, "http_version");
  lua_getiuservalue(L, ridx, 4);
  lua_setfield(L, resp, "method");
  lua_createtable(L, 0, 8);                          /* resp hdrs */
  lua_createtable(L, 16, 0);                         /* resp hdrs flat */
  push_headers(L, r, resp + 1, resp + 2);
  lua_setfield(L, resp, "_h");
  lua_getiuservalue(L, ridx, 1);                     /* resp hdrs engine */
  lua_getiuservalue(L, -1, 2);                       /* resp hdrs engine hmt */
  lua_setmetatable(L, -3);
  lua_pop(L, 1);
  lua_setfield(L, resp, "headers");
  if (r->stream) {
    lua_pushvalue(L, ridx);
    lua_setfield(L, resp, "_req");
  }
  else {
    if (r->in.data != NULL)
      lua_pushlstring(L, aio_buf_head(&r->in), aio_buf_avail(&r->in));
    else lua_pushliteral(L, "");
    lua_setfield(L, resp, "body");
  }
  lua_getiuservalue(L, ridx, 1);                     /* resp engine */
  lua_getiuservalue(L, -1, 1);                       /* resp engine mt */
  lua_setmetatable(L, resp);
  lua_pop(L, 1);
}


/* ---------------------------------------------------------------------
** Errors
** ------------------------------------------------------------------- */

/* The aio error kind of a curl failure. */
static const char *curl_kind (CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return "dns";
    case CURLE_COULDNT_CONNECT:
    case CURLE_PROXY:
      return "connect";
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      return "tls";
    case CURLE_TOO_MANY_REDIRECTS:
      return "redirect";
    case CURLE_UNSUPPORTED_PROTOCOL:  /* HTTP/0.9, or see push_error */
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_RANGE_ERROR:
    case CURLE_URL_MALFORMAT:         /* a redirect to a malformed URL */
      return "protocol";
    default:
      return "io";      /* send/receive failures, dropped connections */
  }
}


/* Is the URL `r` ended on (a redirect's target) http or https? */
static int web_url (HttpRequest *r) {
  char *eff = NULL;
  if (r->easy == NULL ||
      curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &eff) != CURLE_OK ||
      eff == NULL)
    return 1;
  return strncmp(eff, "http://", 7) == 0 || strncmp(eff, "https://", 8) == 0;
}


/* Pushes the error of failed request `r` (userdata at `ridx`): an
** aio.Error with kind, message "<METHOD> <url>: <what>", url, method, and
** phase/seconds (timeouts) or curl_code (curl's failures). */
void aio__http_push_error (lua_State *L, HttpRequest *r, int ridx) {
  const char *method, *url, *kind = "io", *phase = NULL, *code = NULL;
  double secs = -1;
  int top;
  lua_getiuservalue(L, ridx, 4);
  lua_getiuservalue(L, ridx, 3);
  top = lua_gettop(L);
  method = lua_tostring(L, top - 1);
  url = lua_tostring(L, top);
  switch (r->fail) {
    case HTTP_F_TOTAL:
      kind = "timeout"; phase = "total"; secs = r->secs[0];
      lua_pushfstring(L, "no complete response within %f s (total "
                      "timeout)", secs);
      break;
    case HTTP_F_READ:
      kind = "timeout"; phase = "read"; secs = r->secs[2];
      lua_pushfstring(L, "the server sent nothing for %f s (read timeout)",
                      secs);
      break;
    case HTTP_F_CLOSED:
      kind = "closed";
      lua_pushliteral(L, "the session was closed");
      break;
    case HTTP_F_ABORTED:
      kind = "closed";
      lua_pushliteral(L, "the response was closed");
      break;
    case HTTP_F_BODY:
      kind = "protocol";
      lua_pushfstring(L, "the response body exceeds max_body (%I bytes)",
                      (lua_Integer)r->max_body);
      break;
    case HTTP_F_NOMEM:
      lua_pushliteral(L, "out of memory");
      break;
    case HTTP_F_CODING: {
      struct curl_header *h;
      const char *ce = r->easy != NULL &&
        curl_easy_header(r->easy, "Content-Encoding", 0, CURLH_HEADER, -1,
                         &h) == CURLHE_OK ? h->value : "?";
      kind = "protocol";
      if (r->zmsg != NULL)
        lua_pushfstring(L, "cannot decode the body (Content-Encoding %s): "
                        "%s", ce, r->zmsg);
      else
        lua_pushfstring(L, "cannot decode Content-Encoding '%s' while "
                        "streaming (gzip and deflate can be)", ce);
      break;
    }
    default: {
      const char *detail = r->errbuf[0] ? r->errbuf
                                        : curl_easy_strerror(r->result);
      kind = curl_kind(r->result);
      if (r->result == CURLE_OUT_OF_MEMORY && !r->hdone) {
        /* curl's answer to a header line longer than it takes */
        kind = "protocol";
        lua_pushfstring(L, "a response header line is too long (over %d "
                        "bytes)", CURL_MAX_HTTP_HEADER);
      }
      else if (r->result == CURLE_RECV_ERROR && !r->hdone &&
               strncmp(detail, "Too large response headers", 26) == 0) {
        kind = "protocol";          /* more header bytes than curl takes */
        lua_pushstring(L, detail);
      }
      else if (r->result == CURLE_COULDNT_CONNECT && r->oserr != 0) {
        int err = uv_translate_sys_error(r->oserr);
        code = uv_err_name(err);
        lua_pushfstring(L, "cannot open a socket: %s (%s)", uv_strerror(err),
                        code);
      }
      else if (r->result == CURLE_FILESIZE_EXCEEDED)
        lua_pushfstring(L, "the response body exceeds max_body (%I bytes)",
                        (lua_Integer)r->max_body);
      else if (r->result == CURLE_UNSUPPORTED_PROTOCOL && !web_url(r)) {
        char *eff = NULL;
        curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &eff);
        kind = "redirect";
        lua_pushfstring(L, "refused to follow a redirect to a URL that is "
                        "not http or https (%s): %s", eff, detail);
      }
      else lua_pushstring(L, detail);
      if (r->result == CURLE_OPERATION_TIMEDOUT) {
        phase = "connect";
        secs = r->secs[1] >= 0 ? r->secs[1] : 300;
      }
      break;
    }
  }
  aio__error_new(L, kind, "%s %s: %s", method, url, lua_tostring(L, -1));
  lua_pushvalue(L, top);
  lua_setfield(L, -2, "url");
  lua_pushvalue(L, top - 1);
  lua_setfield(L, -2, "method");
  if (phase != NULL) aio__setfield_str(L, "phase", phase);
  if (code != NULL) aio__setfield_str(L, "code", code);
  if (secs >= 0) aio__setfield_num(L, "seconds", secs);
  if (r->fail == HTTP_F_NONE) {
    lua_pushinteger(L, (lua_Integer)r->result);
    lua_setfield(L, -2, "curl_code");
  }
  lua_replace(L, top - 1);
  lua_settop(L, top - 1);
}


/* Raises `closed`: "<METHOD> <url>: <what>", with url and method. */
int aio__http_closed (lua_State *L, const char *what, const char *method,
                      const char *url) {
  if (method == NULL) method = "?";
  if (url == NULL) url = "?";
  aio__error_new(L, "closed", "%s %s: %s", method, url, what);
  aio__setfield_str(L, "url", url);
  aio__setfield_str(L, "method", method);
  return lua_error(L);
}


/* ---------------------------------------------------------------------
** URL joining and version facts
** ------------------------------------------------------------------- */

/*
** core.http_urljoin(base, ref) -> URL: `ref` resolved against `base` as a
** browser resolves a link (RFC 3986, by curl's URL parser). Raises `usage`
** if either cannot be parsed.
*/
static int l_urljoin (lua_State *L) {
  const char *base = luaL_checkstring(L, 1);
  const char *ref = luaL_checkstring(L, 2);
  CURLU *u = curl_url();
  char *out = NULL;
  CURLUcode rc;
  if (u == NULL) return aio__nomem(L, "in the HTTP client");
  rc = curl_url_set(u, CURLUPART_URL, base, CURLU_NON_SUPPORT_SCHEME);
  if (rc == CURLUE_OK)
    rc = curl_url_set(u, CURLUPART_URL, ref, CURLU_NON_SUPPORT_SCHEME);
  if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_URL, &out, 0);
  curl_url_cleanup(u);
  if (rc != CURLUE_OK)
    return aio__usage(L, "cannot join '%s' to base URL '%s': %s", ref, base,
                      curl_url_strerror(rc));
  lua_pushstring(L, out);
  curl_free(out);
  return 1;
}


/* Sets core.http_urljoin, core.http_curl_version and core.http_versions
** (http_version option values -> curl constants) in the core table, which
** is just above the loop (at `loopidx`). */
void aio__http_open_response (lua_State *L, int loopidx) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  int core = loopidx + 1;
  lua_pushcfunction(L, l_urljoin);
  lua_setfield(L, core, "http_urljoin");
  lua_pushstring(L, v->version);
  lua_setfield(L, core, "http_curl_version");
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, CURL_HTTP_VERSION_1_0);
  lua_setfield(L, -2, "1.0");
  lua_pushinteger(L, CURL_HTTP_VERSION_1_1);
  lua_setfield(L, -2, "1.1");
  lua_pushinteger(L, CURL_HTTP_VERSION_2_0);
  lua_setfield(L, -2, "2");
  lua_pushinteger(L, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
  lua_setfield(L, -2, "2-prior-knowledge");
  lua_setfield(L, core, "http_versions");
}
