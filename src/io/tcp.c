/*
** tcp.c
** core.tcp: connecting to an address, and listening sockets that accept
** connections in their libuv callback and hand them to an accepting task.
** See LICENSE
*/

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "aio.h"

#define LISTENER_MT "aio.Listener"
#define MAX_PENDING 1024   /* accepted connections not yet handed out */

/*
** A listening socket. Its callback accepts each connection at once into a
** Stream queued in `pending` (up to MAX_PENDING; beyond that the next one
** is left to libuv, which stops accepting until it is taken: `held`), and
** wakes the task waiting in accept().
*/
typedef struct Listener {
  IoHandle io;
  uv_tcp_t tcp;
  Link waiters;          /* the task waiting in accept() */
  Link pending;          /* accepted Streams not handed out yet */
  Link idle_waiters;     /* tasks in wait_idle() */
  char *scratch;         /* for the Streams */
  unsigned npending;
  unsigned active;       /* connections being served (enter/leave) */
  int err;               /* an accept error to report, or 0 */
  uint8_t held;          /* libuv holds a connection we did not take */
  uint8_t nodelay;       /* set TCP_NODELAY on accepted connections */
} Listener;



static int checkport (lua_State *L, int arg, int min) {
  lua_Integer port = luaL_checkinteger(L, arg);
  luaL_argcheck(L, port >= min && port <= 65535, arg, "port out of range");
  return (int)port;
}


/* ---------------------------------------------------------------------
** Connecting
** ------------------------------------------------------------------- */

/* Stack: (host, port, nodelay, stream, req). */
static int connect_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  Stream *s = (Stream *)ctx;
  ConnectReq *q = (ConnectReq *)lua_touserdata(L, 5);
  Task *t = loop->current;
  (void)status;
  if (t->wake != AIO_WAKE_OK) {
    aio__io_close(&s->io);              /* cancels the connect */
    return aio__wake_raise(L, t);
  }
  if (q->r.status < 0) {
    aio__io_close(&s->io);
    return aio__connect_error(L, q->r.status, 1);
  }
  if (lua_toboolean(L, 3)) uv_tcp_nodelay(&s->h.tcp, 1);
  lua_settop(L, 4);
  return 1;
}


/*
** core.tcp.connect(ip, port, nodelay) (suspends) -> Stream. `ip` is an
** address literal (aio.tcp resolves names first). Raises `connect` with
** code, address and port.
*/
static int tcp_connect (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  const char *host = aio__checkcstring(L, 1, "host");
  int port = checkport(L, 2, 1);
  struct sockaddr_storage ss;
  Task *t;
  Stream *s;
  ConnectReq *q;
  int rc;
  lua_settop(L, 3);
  t = aio__task_enter(L, loop, "aio.tcp.connect");
  rc = aio__parse_address(host, port, &ss);
  if (rc < 0) return aio__connect_error(L, rc, 1);
  s = aio__stream_alloc(loop, aio__io_scratch(L));
  if (s == NULL) return aio__nomem(L, "connecting");
  aio__stream_push(L, s);                           /* host port nd stream */
  aio__push_hostport(L, host, port);
  lua_setiuservalue(L, 4, 1);
  q = aio__connect_start(L, loop, &s->h.stream, (struct sockaddr *)&ss, NULL,
                         4, &rc);
  if (q == NULL) {
    aio__io_close(&s->io);
    return aio__connect_error(L, rc, 1);
  }
  return aio__req_wait(L, t, &q->r, (lua_KContext)s, connect_k);
}


/* ---------------------------------------------------------------------
** Listening
** ------------------------------------------------------------------- */

/* Accepts the connection libuv holds into a queued Stream. */
static void accept_one (Listener *l) {
  Stream *s = aio__stream_alloc(l->io.loop, l->scratch);
  int rc;
  if (s == NULL) {
    l->held = 1;
    l->err = UV_ENOMEM;
    return;
  }
  rc = uv_accept((uv_stream_t *)&l->tcp, &s->h.stream);
  if (rc < 0) {
    aio__io_close(&s->io);
    l->err = rc;
    return;
  }
  if (l->nodelay) uv_tcp_nodelay(&s->h.tcp, 1);
  link_push(&l->pending, &s->pending);
  l->npending++;
}


static void connection_cb (uv_stream_t *server, int status) {
  Listener *l = (Listener *)server->data;
  if (status < 0) l->err = status;
  else if (l->npending >= MAX_PENDING) {
    l->held = 1;
    return;
  }
  else accept_one(l);
  aio__notify_all(l->io.loop, &l->waiters);
}


#define tolistener(L) ((Listener *)aio__io_self(L))
#define checklistener(L) ((Listener *)aio__io_check(L))


/* Pushes "host:port" of the local end of `tcp` (of the other end when
** `peer`). */
static void push_sockname (lua_State *L, uv_tcp_t *tcp, int peer) {
  if (aio__push_address(L, tcp, peer) != 0) {
    lua_pushliteral(L, "(disconnected)");
    return;
  }
  aio__push_hostport(L, lua_tostring(L, -2), (int)lua_tointeger(L, -1));
  lua_replace(L, -3);
  lua_pop(L, 1);
}


static int accept_body (lua_State *L, Listener *l);

static int accept_k (lua_State *L, int status, lua_KContext ctx) {
  Listener *l = tolistener(L);
  (void)status; (void)ctx;
  aio__io_resumed(L, &l->io);
  return accept_body(L, l);
}


/* Hands out a queued connection, reports an accept error, or waits. */
static int accept_body (lua_State *L, Listener *l) {
  if (link_empty(&l->pending) && l->held) {
    l->held = 0;
    accept_one(l);
  }
  if (!link_empty(&l->pending)) {
    Stream *s = aio_container_of(l->pending.next, Stream, pending);
    link_remove(&s->pending);
    l->npending--;
    if (l->held && l->npending < MAX_PENDING) {
      l->held = 0;
      accept_one(l);
    }
    aio__stream_push(L, s);
    push_sockname(L, &s->h.tcp, 1);
    lua_setiuservalue(L, -2, 1);
    return 1;
  }
  if (l->err != 0) {
    int err = l->err;
    l->err = 0;
    push_sockname(L, &l->tcp, 0);
    aio__uv_error_new(L, "io", err, "cannot accept a connection on %s",
                      lua_tostring(L, -1));
    return lua_error(L);
  }
  return aio__io_wait(L, &l->io, &l->waiters, 0, 0, accept_k);
}


/* listener:accept() (suspends) -> the next connection as a Stream. Raises
** `closed` once the listener is closed, `io` for a failed accept. */
static int listener_accept (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Listener *l = checklistener(L);
  lua_settop(L, 1);
  aio__task_enter(L, loop, "server accept");
  return accept_body(L, l);
}


/* Closes the listener and the connections not handed out; accept()
** raises `closed`. */
static void listener_close (IoHandle *io) {
  Listener *l = (Listener *)io;
  if (io->nopen > 0) aio__io_close_handle(io, (uv_handle_t *)&l->tcp);
  while (!link_empty(&l->pending)) {
    Stream *s = aio_container_of(l->pending.next, Stream, pending);
    link_remove(&s->pending);
    aio__io_close(&s->io);
  }
  l->npending = 0;
  aio__notify_all(io->loop, &l->waiters);
}


static const IoType listener_type = {"server", listener_close, NULL, NULL};


/* listener:enter() / listener:leave(): a connection's handler starts /
** ends (also once the listener is closed). */
static int listener_enter (lua_State *L) {
  tolistener(L)->active++;
  return 0;
}


static int listener_leave (lua_State *L) {
  Listener *l = tolistener(L);
  if (l->active > 0 && --l->active == 0)
    aio__notify_all(l->io.loop, &l->idle_waiters);
  return 0;
}


static int idle_k (lua_State *L, int status, lua_KContext ctx) {
  Listener *l = tolistener(L);
  Task *t = l->io.loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  if (l->active == 0) return 0;
  return aio__io_wait(L, &l->io, &l->idle_waiters, 0, 0, idle_k);
}


/* listener:wait_idle() (suspends): until no connection is being served
** (also once it is closed). */
static int listener_wait_idle (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Listener *l = tolistener(L);
  lua_settop(L, 1);
  aio__task_enter(L, loop, "server:wait_closed");
  if (l->active == 0) return 0;
  return aio__io_wait(L, &l->io, &l->idle_waiters, 0, 0, idle_k);
}


/* listener:address() -> host, port it listens on. */
static int listener_address (lua_State *L) {
  Listener *l = checklistener(L);
  int rc = aio__push_address(L, &l->tcp, 0);
  if (rc == 0) return 2;
  aio__uv_error_new(L, "io", rc, "cannot get the address of a server");
  return lua_error(L);
}


/* Initialises `tcp` as a socket of `family` to listen on; with
** `reuse_port` the socket is made now and gets SO_REUSEPORT before any
** bind (libuv has no flag for it). 0 or a UV_E* code; *inited tells
** whether the handle was initialised (it must be closed then). */
static int init_listener (uv_loop_t *uv, uv_tcp_t *tcp, int family,
                          int reuse_port, int *inited) {
  uv_os_fd_t fd;
  int rc, on = 1;
  *inited = 0;
  if (!reuse_port) {
    rc = uv_tcp_init(uv, tcp);
    *inited = rc == 0;
    return rc;
  }
  rc = uv_tcp_init_ex(uv, tcp, (unsigned)family);
  if (rc != 0) return rc;
  *inited = 1;
  rc = uv_fileno((uv_handle_t *)tcp, &fd);
  if (rc != 0) return rc;
#ifdef SO_REUSEPORT
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
    return uv_translate_sys_error(errno);
  return 0;
#else
  (void)on;
  return UV_ENOTSUP;
#endif
}


/*
** Makes `tcp`, a handle of the new I/O object `io`, a listening socket on
** `ss` (the address literal and port at stack 1, 2, for messages) and
** pushes the object (class `cls`): the handle is initialised (with
** SO_REUSEPORT set before the bind when `reuse_port`: several processes
** may listen on one port and the kernel spreads connections), bound, and
** listens with `cb`. On failure closes the object and raises `io` (code
** "EADDRINUSE", ..., address, port). Used by aio.tcp and the HTTP server.
*/
void aio__tcp_listen_on (lua_State *L, IoHandle *io, uv_tcp_t *tcp,
                         const struct sockaddr_storage *ss, int backlog,
                         int reuse_port, uv_connection_cb cb,
                         const char *cls) {
  int inited;
  int rc = init_listener(&io->loop->uv, tcp, ss->ss_family, reuse_port,
                         &inited);
  if (inited) aio__io_opened(io, (uv_handle_t *)tcp);
  aio__io_push(L, io, cls, 0);
  if (rc == 0) rc = uv_tcp_bind(tcp, (const struct sockaddr *)ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)tcp, backlog, cb);
  if (rc < 0) {
    aio__io_close(io);
    aio__push_hostport(L, lua_tostring(L, 1), (int)lua_tointeger(L, 2));
    aio__uv_error_new(L, "io", rc, "cannot listen on %s",
                      lua_tostring(L, -1));
    aio__setfield_str(L, "address", lua_tostring(L, 1));
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "port");
    lua_error(L);
  }
}


/*
** core.tcp.listen(ip, port, backlog, nodelay, reuse_port) -> Listener,
** listening on an address literal (port 0: the system picks one). Raises
** `io` (code "EADDRINUSE", ...).
*/
static int tcp_listen (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  const char *host = aio__checkcstring(L, 1, "host");
  int port = checkport(L, 2, 0);
  int backlog = (int)luaL_optinteger(L, 3, 1024);
  struct sockaddr_storage ss;
  Listener *l;
  lua_settop(L, 5);
  aio__check_running(L, loop, "aio.tcp.listen");
  if (aio__parse_address(host, port, &ss) < 0)
    luaL_argerror(L, 1, "not an IP address");
  l = (Listener *)aio__io_new(loop, sizeof(Listener), &listener_type);
  if (l == NULL) return aio__nomem(L, "listening");
  l->io.passive = 1;              /* accepting waits for work, not on I/O */
  link_init(&l->waiters);
  link_init(&l->pending);
  link_init(&l->idle_waiters);
  l->scratch = aio__io_scratch(L);
  l->nodelay = (uint8_t)lua_toboolean(L, 4);
  aio__tcp_listen_on(L, &l->io, &l->tcp, &ss, backlog, lua_toboolean(L, 5),
                     connection_cb, LISTENER_MT);
  return 1;
}


static int listener__tostring (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  Listener *l = (Listener *)ref->io;
  if (l != NULL && aio_io_live(&l->io)) {
    push_sockname(L, &l->tcp, 0);
    lua_pushfstring(L, "aio.Listener (%s)", lua_tostring(L, -1));
  }
  else lua_pushliteral(L, "aio.Listener (closed)");
  return 1;
}


static const luaL_Reg listener_methods[] = {
  {"accept", listener_accept},
  {"close", aio__io_close_method},
  {"address", listener_address},
  {"enter", listener_enter},
  {"leave", listener_leave},
  {"wait_idle", listener_wait_idle},
  {NULL, NULL}
};


static const luaL_Reg tcp_funcs[] = {
  {"connect", tcp_connect},
  {"listen", tcp_listen},
  {NULL, NULL}
};


static const luaL_Reg listener_meta[] = {
  {"__gc", aio__io__gc},
  {"__close", aio__io_close_method},
  {"__tostring", listener__tostring},
  {NULL, NULL}
};


static const AioClass listener_class = {LISTENER_MT, listener_methods,
                                        listener_meta};


/* core.tcp = {connect, listen}; the Listener and Stream classes. */
static void open_tcp (lua_State *L) {
  int core = lua_gettop(L);
  aio__ignore_sigpipe();
  aio__open_stream(L);
  aio__class_open(L, core - 1, &listener_class);
  lua_pop(L, 1);
  lua_newtable(L);
  aio__setfuncs(L, core - 1, tcp_funcs);
  lua_setfield(L, core, "tcp");
}


const AioModule aio__module_tcp = {"tcp", open_tcp, NULL};
