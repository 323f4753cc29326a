/*
** server.c
** core.http_server: the listening server. It accepts connections (up to
** max_connections, making room by closing an idle keep-alive one), runs
** the dispatcher task that spawns a handler task per request head its
** connections queue (server_conn.c), and closes gracefully: stop
** listening, close idle connections, let requests in flight finish.
** See LICENSE
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

/* No request is being served (lingering connections are done). */
#define srv_idle(srv) ((srv)->nconns == (srv)->nlinger && \
                       (srv)->nhandlers == 0 && (srv)->npending == 0)


/* ---------------------------------------------------------------------
** Accepting
** ------------------------------------------------------------------- */

/* At max_connections with a connection waiting to be accepted: an idle
** keep-alive connection (one that was served and waits for another
** request) makes room for it. Returns 1 if one was closed. */
static int make_room (HttpServer *srv) {
  Link *l;
  for (l = srv->conns.next; l != &srv->conns; l = l->next) {
    HttpConn *c = aio_container_of(l, HttpConn, link);
    if (aio_conn_live(c) && c->seq > 0 && aio_conn_idle(c)) {
      aio__hs_conn_close(c);           /* accepts the held one */
      return 1;
    }
  }
  return 0;
}


static void connection_cb (uv_stream_t *server, int status) {
  HttpServer *srv = (HttpServer *)server->data;
  if (status < 0) return;               /* libuv goes on listening */
  if (srv->closing ||
      (srv->lim.max_conns > 0 && srv->nconns + srv->ntaken >= srv->lim.max_conns)) {
    srv->held = 1;                      /* libuv stops accepting meanwhile */
    if (!srv->closing) make_room(srv);
    return;
  }
  aio__hs_conn_accept(srv);
}


/* A connection closed: takes the one libuv holds if there is room now. */
void aio__hs_accept_held (HttpServer *srv) {
  if (srv->held && srv->listening && !srv->closing &&
      (srv->lim.max_conns == 0 ||
       srv->nconns + srv->ntaken < srv->lim.max_conns))
    aio__hs_conn_accept(srv);
}


/* Wakes srv:wait_idle() once no HTTP connection, no handler and no
** pending close is left. */
void aio__hs_check_idle (HttpServer *srv) {
  if (srv_idle(srv))
    aio__notify_all(srv->io.loop, &srv->idle_waiters);
}

/* ---------------------------------------------------------------------
** The server object
** ------------------------------------------------------------------- */

#define toserver(L) ((HttpServer *)aio__io_self(L))
#define checkserver(L) ((HttpServer *)aio__io_check(L))


static void stop_listening (HttpServer *srv) {
  srv->listening = 0;
  srv->held = 0;
  if (srv->io.nopen > 0)               /* harmless once it is closing */
    aio__io_close_handle(&srv->io, (uv_handle_t *)&srv->tcp);
}


/* Closes every HTTP connection (their handlers are cancelled). */
static void close_conns (HttpServer *srv) {
  Link *l = srv->conns.next;
  while (l != &srv->conns) {
    HttpConn *c = aio_container_of(l, HttpConn, link);
    l = l->next;
    if (aio_conn_live(c) && c->state != HC_TAKEN) aio__hs_conn_close(c);
  }
}


/* The IoType close: stops listening, closes the HTTP connections, and
** lets go of the others (taken over, or closed with a handler still
** unwinding): they no longer refer to the server. */
static void srv_close (IoHandle *io) {
  HttpServer *srv = (HttpServer *)io;
  srv->closing = 1;
  stop_listening(srv);
  close_conns(srv);
  while (!link_empty(&srv->conns))
    aio__hs_conn_detach(aio_container_of(srv->conns.next, HttpConn, link));
  while (!link_empty(&srv->ready)) link_remove(srv->ready.next);
  srv->nhandlers = srv->npending = srv->nlinger = 0;
  aio__notify_all(io->loop, &srv->dispatcher);
  aio__notify_all(io->loop, &srv->idle_waiters);
}


static void srv_release (IoHandle *io) {
  aio__hp_pool_free(&((HttpServer *)io)->heads);
}


static const IoType server_type = {"server", srv_close, NULL, srv_release};


/* srv:dispatch(spawn, run, Request) (suspends until the server closes):
** the dispatcher task. For each complete request head: makes the request
** table (metatable Request) and spawns run(req) as its handler task. */
static int dispatch_body (lua_State *L, HttpServer *srv);

static int dispatch_k (lua_State *L, int status, lua_KContext ctx) {
  HttpServer *srv = toserver(L);
  Task *t = srv->io.loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  return dispatch_body(L, srv);
}


static int dispatch_body (lua_State *L, HttpServer *srv) {
  while (!link_empty(&srv->ready) && aio_io_live(&srv->io)) {
    HttpConn *c = aio_container_of(srv->ready.next, HttpConn, qlink);
    Task *t;
    link_remove(&c->qlink);
    if (!aio_conn_live(c) || c->state != HC_QUEUED) continue;
    c->seq++;
    lua_pushvalue(L, 2);                           /* ... spawn */
    lua_pushvalue(L, 3);                           /* ... spawn run */
    aio__hs_push_request(L, c, 4, 5);              /* ... spawn run req */
    lua_call(L, 2, 1);                             /* ... task */
    t = aio__totask(L, -1);
    lua_pop(L, 1);
    if (t == NULL) luaL_error(L, "spawn did not return a task");
    aio__hs_conn_dispatched(c, t);
  }
  if (!aio_io_live(&srv->io)) return 0;
  return aio__io_wait(L, &srv->io, &srv->dispatcher, 0, 0, dispatch_k);
}


static int srv_dispatch (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  HttpServer *srv = toserver(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 4);
  aio__task_enter(L, loop, "server dispatch");
  aio__hs_push_keys(L);                     /* srv spawn run mt keys... */
  return dispatch_body(L, srv);
}


/* srv:shutdown(): the start of a graceful close. Stops accepting, closes
** the connections that wait for a request, and makes every response from
** now on close its connection. */
static int srv_shutdown (lua_State *L) {
  HttpServer *srv = toserver(L);
  Link *l;
  srv->closing = 1;
  stop_listening(srv);
  for (l = srv->conns.next; l != &srv->conns; ) {
    HttpConn *c = aio_container_of(l, HttpConn, link);
    l = l->next;
    if (aio_conn_live(c) && aio_conn_idle(c)) aio__hs_conn_close(c);
  }
  aio__hs_check_idle(srv);
  return 0;
}


/* srv:abort(): closes every HTTP connection, cancelling its handler. */
static int srv_abort (lua_State *L) {
  HttpServer *srv = toserver(L);
  srv->closing = 1;
  stop_listening(srv);
  close_conns(srv);
  return 0;
}


static int idle_k (lua_State *L, int status, lua_KContext ctx) {
  HttpServer *srv = toserver(L);
  Task *t = srv->io.loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  if (!aio_io_live(&srv->io) || srv_idle(srv)) return 0;
  return aio__io_wait(L, &srv->io, &srv->idle_waiters, 0, 0, idle_k);
}


/* srv:wait_idle() (suspends): until no HTTP connection and no handler
** task is left (or the server is closed). */
static int srv_wait_idle (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  HttpServer *srv = toserver(L);
  lua_settop(L, 1);
  aio__task_enter(L, loop, "server:wait");
  if (!aio_io_live(&srv->io) || srv_idle(srv)) return 0;
  return aio__io_wait(L, &srv->io, &srv->idle_waiters, 0, 0, idle_k);
}


/* srv:stats() -> {connections, requests, in_flight, accepted,
** taken_over} */
static int srv_stats (lua_State *L) {
  HttpServer *srv = toserver(L);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)(srv->nconns + srv->ntaken));
  lua_setfield(L, -2, "connections");
  lua_pushinteger(L, (lua_Integer)srv->nrequests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, (lua_Integer)srv->nhandlers);
  lua_setfield(L, -2, "in_flight");
  lua_pushinteger(L, (lua_Integer)srv->naccepted);
  lua_setfield(L, -2, "accepted");
  lua_pushinteger(L, (lua_Integer)srv->ntaken);
  lua_setfield(L, -2, "taken_over");
  return 1;
}


/* srv:address() -> host, port it listens on. */
static int srv_address (lua_State *L) {
  HttpServer *srv = checkserver(L);
  int rc = srv->listening ? aio__push_address(L, &srv->tcp, 0) : UV_EBADF;
  if (rc == 0) return 2;
  aio__uv_error_new(L, "io", rc, "cannot get the address of a server");
  return lua_error(L);
}


/* Reads a duration option (seconds) of table `opts` as ns; 0 if absent. */
static uint64_t opt_ns (lua_State *L, int opts, const char *k) {
  double d;
  lua_getfield(L, opts, k);
  d = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
  lua_pop(L, 1);
  if (!(d > 0)) return 0;
  if (d > 1e9) d = 1e9;
  return (uint64_t)(d * AIO_NS);
}


static lua_Integer opt_int (lua_State *L, int opts, const char *k,
                            lua_Integer dflt) {
  lua_Integer v;
  lua_getfield(L, opts, k);
  v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : dflt;
  lua_pop(L, 1);
  return v;
}


/*
** core.http_server.listen(ip, port, opts) -> server, listening on an
** address literal. opts (checked by the Lua layer): backlog, reuse_port,
** max_connections, max_header_size, max_body, header_timeout,
** idle_timeout, body_timeout. Raises `io` (code "EADDRINUSE", ...).
*/
static int hs_listen (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  struct sockaddr_storage ss;
  HttpServer *srv;
  lua_Integer backlog, maxhead;
  int reuse;
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  aio__check_running(L, loop, "aio.http.listen");
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
  if (aio__parse_address(host, (int)port, &ss) < 0)
    luaL_argerror(L, 1, "not an IP address");
  srv = (HttpServer *)aio__io_new(loop, sizeof(HttpServer), &server_type);
  if (srv == NULL) return aio__nomem(L, "listening");
  srv->io.passive = 1;      /* the dispatcher waits for new requests */
  link_init(&srv->conns);
  link_init(&srv->ready);
  link_init(&srv->dispatcher);
  link_init(&srv->idle_waiters);
  srv->scratch = aio__io_scratch(L);
  backlog = opt_int(L, 3, "backlog", 1024);
  maxhead = opt_int(L, 3, "max_header_size", 8192);
  if (maxhead < 256) maxhead = 256;
  if (maxhead > HS_HEAD_MAX) maxhead = HS_HEAD_MAX;
  srv->lim.max_head = (uint32_t)maxhead;
  srv->lim.max_body = (uint64_t)opt_int(L, 3, "max_body", 1024 * 1024);
  srv->lim.max_conns = (uint32_t)opt_int(L, 3, "max_connections", 0);
  srv->lim.header_ns = opt_ns(L, 3, "header_timeout");
  srv->lim.idle_ns = opt_ns(L, 3, "idle_timeout");
  srv->lim.body_ns = opt_ns(L, 3, "body_timeout");
  srv->lim.body_secs = (double)srv->lim.body_ns / AIO_NS;
  lua_getfield(L, 3, "reuse_port");
  reuse = lua_toboolean(L, -1);
  lua_pop(L, 1);
  aio__tcp_listen_on(L, &srv->io, &srv->tcp, &ss, (int)backlog, reuse,
                     connection_cb, HTTP_SERVER_MT);
  srv->listening = 1;
  return 1;
}


static int srv__tostring (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  HttpServer *srv = (HttpServer *)ref->io;
  if (srv != NULL && aio_io_live(&srv->io) && srv->listening &&
      aio__push_address(L, &srv->tcp, 0) == 0) {
    aio__push_hostport(L, lua_tostring(L, -2), (int)lua_tointeger(L, -1));
    lua_pushfstring(L, "aio.HttpServer (%s)", lua_tostring(L, -1));
  }
  else lua_pushliteral(L, "aio.HttpServer (closed)");
  return 1;
}


static const luaL_Reg server_methods[] = {
  {"dispatch", srv_dispatch},
  {"shutdown", srv_shutdown},
  {"abort", srv_abort},
  {"wait_idle", srv_wait_idle},
  {"stats", srv_stats},
  {"address", srv_address},
  {"close", aio__io_close_method},
  {NULL, NULL}
};

static const luaL_Reg server_meta[] = {
  {"__gc", aio__io__gc},
  {"__close", aio__io_close_method},
  {"__tostring", srv__tostring},
  {NULL, NULL}
};

static const AioClass server_class = {HTTP_SERVER_MT, server_methods,
                                      server_meta};


static const luaL_Reg hs_funcs[] = {
  {"listen", hs_listen},
  {NULL, NULL}
};


/* core.http_server = {listen, peer, takeover, request and response
** functions}; the classes. */
static void open_http_server (lua_State *L) {
  int core = lua_gettop(L);
  aio__class_open(L, core - 1, &server_class);
  lua_pop(L, 1);
  lua_newtable(L);
  aio__setfuncs(L, core - 1, hs_funcs);
  aio__open_http_conn(L, core - 1);
  aio__open_http_request(L, core - 1);
  aio__open_http_response(L, core - 1);
  aio__open_http_file(L, core - 1);
  lua_setfield(L, core, "http_server");
}


const AioModule aio__module_http_server = {"http_server", open_http_server,
                                           NULL};
