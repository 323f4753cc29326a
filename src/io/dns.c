/*
** dns.c
** core.dns.resolve: getaddrinfo on the libuv pool; address literals are
** answered at once.
** See LICENSE
*/

#include <netdb.h>
#include <string.h>

#include "aio.h"

typedef struct DnsReq {
  Req r;
  uv_getaddrinfo_t gai;
  struct addrinfo *res;  /* the answer, freed with the request */
} DnsReq;


static void dnsreq_gc (Req *r) {
  DnsReq *q = (DnsReq *)r;
  if (q->res != NULL) uv_freeaddrinfo(q->res);
  q->res = NULL;
}


static void gai_cb (uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  DnsReq *q = aio_container_of(req, DnsReq, gai);
  q->res = res;
  aio__req_done(&q->r, status);
}


/* Pushes the addresses of `res` as an array of strings, each once, in
** the resolver's order. */
static void push_addresses (lua_State *L, struct addrinfo *res) {
  struct addrinfo *ai;
  lua_Integer n = 0;
  lua_newtable(L);                              /* list */
  lua_newtable(L);                              /* list seen */
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    char buf[64];
    int rc;
    if (ai->ai_family == AF_INET)
      rc = uv_ip4_name((struct sockaddr_in *)ai->ai_addr, buf, sizeof buf);
    else if (ai->ai_family == AF_INET6)
      rc = uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, buf, sizeof buf);
    else continue;
    if (rc != 0) continue;
    lua_pushstring(L, buf);
    if (lua_rawget(L, -2) == LUA_TNIL) {
      lua_pushstring(L, buf);
      lua_pushboolean(L, 1);
      lua_rawset(L, -4);
      lua_pushstring(L, buf);
      lua_rawseti(L, -4, ++n);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}


/* Stack: (host, family, req). */
static int resolve_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  DnsReq *q = (DnsReq *)lua_touserdata(L, 3);
  Task *t = loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) {
    if (q->r.anchor != 0) uv_cancel((uv_req_t *)&q->gai);
    return aio__wake_raise(L, t);
  }
  if (q->r.status < 0) {
    aio__uv_error_new(L, "dns", q->r.status, "cannot resolve '%s'",
                      lua_tostring(L, 1));
    aio__setfield_str(L, "host", lua_tostring(L, 1));
    return lua_error(L);
  }
  push_addresses(L, q->res);
  if (lua_rawlen(L, -1) == 0) {
    aio__error_new(L, "dns", "cannot resolve '%s': no address",
                   lua_tostring(L, 1));
    aio__setfield_str(L, "host", lua_tostring(L, 1));
    aio__setfield_str(L, "code", "EAI_NODATA");
    return lua_error(L);
  }
  return 1;
}


/*
** core.dns.resolve(host, [family]) (suspends) -> array of address strings
** (IPv4 and IPv6, or only `family` "inet" / "inet6"), in the resolver's
** order, without repeats. Raises `dns` with code ("EAI_NONAME", ...) and
** host.
*/
static int dns_resolve (lua_State *L) {
  static const char *const families[] = {"any", "inet", "inet6", NULL};
  static const int fam[] = {AF_UNSPEC, AF_INET, AF_INET6};
  Loop *loop = aio_upvalue_loop(L);
  size_t len;
  const char *host = luaL_checklstring(L, 1, &len);
  int family = fam[luaL_checkoption(L, 2, "any", families)];
  unsigned char addr[16];
  struct addrinfo hints;
  Task *t;
  DnsReq *q;
  int rc;
  aio__cstring(L, 1, "host name");
  luaL_argcheck(L, len > 0, 1, "invalid host name");
  lua_settop(L, 2);
  t = aio__task_enter(L, loop, "aio.dns.resolve");
  if ((family != AF_INET6 && uv_inet_pton(AF_INET, host, addr) == 0) ||
      (family != AF_INET && uv_inet_pton(AF_INET6, host, addr) == 0)) {
    lua_createtable(L, 1, 0);           /* a literal: itself */
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    return 1;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  q = (DnsReq *)aio__req_new(L, loop, sizeof(DnsReq), 0);
  q->r.gc = dnsreq_gc;
  rc = uv_getaddrinfo(&loop->uv, &q->gai, gai_cb, host, NULL, &hints);
  if (rc < 0) {
    q->r.status = rc;
    aio__uv_error_new(L, "dns", rc, "cannot resolve '%s'", host);
    aio__setfield_str(L, "host", host);
    return lua_error(L);
  }
  aio__req_start(L, &q->r, 3);
  return aio__req_wait(L, t, &q->r, 0, resolve_k);
}


static const luaL_Reg dns_funcs[] = {
  {"resolve", dns_resolve},
  {NULL, NULL}
};


/* core.dns = {resolve}. */
static void open_dns (lua_State *L) {
  int core = lua_gettop(L);
  lua_newtable(L);
  aio__setfuncs(L, core - 1, dns_funcs);
  lua_setfield(L, core, "dns");
}


const AioModule aio__module_dns = {"dns", open_dns, NULL};
