/*
** connect.c
** Connecting a stream handle (a uv_tcp_t to an address, a uv_pipe_t to a
** unix socket) with a request its task waits for, and the `connect` error
** of a failed attempt: shared by aio.tcp and the database drivers.
** See LICENSE
*/

#include "io.h"


static void connect_cb (uv_connect_t *c, int status) {
  ConnectReq *q = aio_container_of(c, ConnectReq, c);
  aio__req_done(&q->r, status);
}


/*
** Pushes a connect request (its user value 1 keeps the object at `objidx`
** alive) and starts connecting `h`: a uv_tcp_t to `addr`, or, with `addr`
** NULL, a uv_pipe_t to the unix socket `path`. Returns the request, in
** flight; or NULL with the libuv error in *err (nothing started). Wait
** for it with aio__req_wait; its status is the outcome.
*/
ConnectReq *aio__connect_start (lua_State *L, Loop *loop, uv_stream_t *h,
                                const struct sockaddr *addr,
                                const char *path, int objidx, int *err) {
  ConnectReq *q;
  objidx = lua_absindex(L, objidx);
  q = (ConnectReq *)aio__req_new(L, loop, sizeof(ConnectReq), 1);
  lua_pushvalue(L, objidx);
  lua_setiuservalue(L, -2, 1);
  *err = 0;
  if (addr == NULL) uv_pipe_connect(&q->c, (uv_pipe_t *)h, path, connect_cb);
  else *err = uv_tcp_connect(&q->c, (uv_tcp_t *)h, addr, connect_cb);
  if (*err < 0) return NULL;
  aio__req_start(L, &q->r, -1);
  return q;
}


/*
** Raises `connect` for `err`: "cannot connect to host:port" (or
** "unix:path" when the port is nil), with fields code, address and port.
** The host (or path) is at stack index `idx`, the port after it.
*/
int aio__connect_error (lua_State *L, int err, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_isnil(L, idx + 1))
    lua_pushfstring(L, "unix:%s", lua_tostring(L, idx));
  else aio__push_hostport(L, lua_tostring(L, idx),
                          (int)lua_tointeger(L, idx + 1));
  aio__uv_error_new(L, "connect", err, "cannot connect to %s",
                    lua_tostring(L, -1));
  aio__setfield_str(L, "address", lua_tostring(L, idx));
  lua_pushvalue(L, idx + 1);
  lua_setfield(L, -2, "port");
  return lua_error(L);
}
