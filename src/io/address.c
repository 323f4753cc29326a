/*
** address.c
** Socket addresses: IP literals parsed, the ends of a TCP connection as
** (host, port), and "host:port" for messages.
** See LICENSE
*/

#include <string.h>

#include "io.h"


/* Parses `host` (an IP literal) and `port` into `ss`; 0 or a UV_E* code. */
int aio__parse_address (const char *host, int port,
                        struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (strchr(host, ':') != NULL)
    return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
  return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}


/* Pushes host, port of the local end of `tcp` (of the other end when
** `peer`) and returns 0; returns a UV_E* code, pushing nothing, if there
** is none. */
int aio__push_address (lua_State *L, uv_tcp_t *tcp, int peer) {
  struct sockaddr_storage ss;
  char host[64];
  int len = (int)sizeof ss, port, rc;
  rc = peer ? uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len)
            : uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &len);
  if (rc != 0) return rc;
  if (ss.ss_family == AF_INET6) {
    rc = uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
    port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  else if (ss.ss_family == AF_INET) {
    rc = uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  }
  else return UV_EAFNOSUPPORT;
  if (rc != 0) return rc;
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 0;
}


/* Pushes "host:port" ("[host]:port" for IPv6). */
void aio__push_hostport (lua_State *L, const char *host, int port) {
  if (strchr(host, ':') != NULL) lua_pushfstring(L, "[%s]:%d", host, port);
  else lua_pushfstring(L, "%s:%d", host, port);
}
