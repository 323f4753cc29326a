/*
** io.c
** Plumbing the I/O modules share: libuv requests kept in userdata, handle
** memory shared by a Lua object and libuv, libuv errors as aio errors.
** See LICENSE
*/

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "aio.h"

#define REQ_MT "aio.Req"

/* Registry key of the per-state shared read buffer (a userdata). */
static const char scratch_key = 0;


/* ---------------------------------------------------------------------
** Requests
** ------------------------------------------------------------------- */

static int req_gc (lua_State *L) {
  Req *r = (Req *)lua_touserdata(L, 1);
  if (r->gc != NULL) r->gc(r);
  r->gc = NULL;
  return 0;
}


/*
** Pushes a new request userdata of `size` bytes (starting with Req) with
** `nuv` user values, zeroed. Raises only on memory errors.
*/
void *aio__req_new (lua_State *L, Loop *loop, size_t size, int nuv) {
  Req *r = (Req *)lua_newuserdatauv(L, size, nuv);
  memset(r, 0, size);
  link_init(&r->waiters);
  r->loop = loop;
  if (luaL_newmetatable(L, REQ_MT)) {
    lua_pushcfunction(L, req_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return r;
}


/* The request at stack index `idx` was handed to libuv: keeps it (and its
** user values) alive until its callback calls aio__req_done. */
void aio__req_start (lua_State *L, Req *r, int idx) {
  r->anchor = aio__anchor(L, r->loop, idx);
}


/*
** Called from the request's libuv callback: records `status`, releases
** the anchor and wakes the waiting task, if one still waits. Never runs
** Lua code and never allocates Lua memory.
*/
void aio__req_done (Req *r, int status) {
  Loop *loop = r->loop;
  r->status = status;
  if (r->anchor != 0) {
    aio__unanchor(loop->L, loop, r->anchor);
    r->anchor = 0;
  }
  aio__notify_all(loop, &r->waiters);
}


/* Suspends task `t` until request `r` completes (or something else wakes
** it: `k` must check t->wake). Must be the return expression. */
int aio__req_wait (lua_State *L, Task *t, Req *r, lua_KContext ctx,
                   lua_KFunction k) {
  link_push(&r->waiters, &t->wait.link);
  return aio__suspend(L, t, ctx, k);
}


/* ---------------------------------------------------------------------
** Handles shared by a Lua object and libuv
** ------------------------------------------------------------------- */

static void io_free (IoHandle *io) {
  if (io->release != NULL) io->release(io);
  free(io);
}


/* The close callback of every handle of an IoHandle, whether its object
** or the end of the run closed it. Never runs Lua. */
static void io_on_close (uv_handle_t *h) {
  IoHandle *io = (IoHandle *)h->data;
  if (io->closed != NULL) io->closed(io, h);
  io->nopen--;
  if (io->ncounted > io->nopen) {  /* closed by the run's end, not by us */
    io->ncounted--;
    aio__handle_closed(io->loop);
  }
  if (io->nopen == 0 && io->orphan) io_free(io);
}


/* Allocates a zeroed IoHandle-headed block of `size` bytes; NULL if out of
** memory. Never raises (it is also used from libuv callbacks). */
void *aio__io_new (Loop *loop, size_t size) {
  IoHandle *io = (IoHandle *)calloc(1, size);
  if (io == NULL) return NULL;
  io->ah.on_close = io_on_close;
  io->loop = loop;
  io->gen = loop->generation;
  return io;
}


/* Handle `h` of `io` was initialised: it must be closed before `io` is
** freed, and counts as open. */
void aio__io_opened (IoHandle *io, uv_handle_t *h) {
  h->data = io;
  io->nopen++;
  io->ncounted++;
  aio__handle_opened(io->loop);
}


/* Closes handle `h` of `io` unless it is closing already. */
void aio__io_close (IoHandle *io, uv_handle_t *h) {
  io->closing = 1;
  if (uv_is_closing(h)) return;
  uv_close(h, io_on_close);
  if (io->ncounted > 0) {
    io->ncounted--;
    aio__handle_closed(io->loop);
  }
}


/* Its Lua object is gone (its __gc, after closing the handles). */
void aio__io_orphan (IoHandle *io) {
  io->orphan = 1;
  if (io->nopen == 0) io_free(io);
}


/* Can its object still be used: not closed, and from the running loop? */
int aio__io_live (IoHandle *io) {
  return !io->closing && io->loop->running &&
         io->gen == io->loop->generation;
}


/* The shared read buffer of this state's loop (AIO_READ_SIZE bytes): one
** read callback fills it at a time, and its bytes are copied out at once. */
char *aio__io_scratch (lua_State *L) {
  char *p;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &scratch_key) != LUA_TUSERDATA) {
    lua_pop(L, 1);
    lua_newuserdatauv(L, AIO_READ_SIZE, 0);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &scratch_key);
  }
  p = (char *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return p;
}


/* ---------------------------------------------------------------------
** Addresses
** ------------------------------------------------------------------- */

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


/* ---------------------------------------------------------------------
** Errors, exit hooks, signal names
** ------------------------------------------------------------------- */

/*
** Pushes an error of `kind` whose message is the formatted text followed
** by libuv's description of `err` and its name, with field code = the name
** ("ENOENT", "ECONNREFUSED", "EAI_NONAME", ...).
*/
void aio__uv_error_new (lua_State *L, const char *kind, int err,
                        const char *fmt, ...) {
  va_list ap;
  lua_createtable(L, 0, 6);
  aio__setfield_str(L, "kind", kind);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_pushfstring(L, ": %s (%s)", uv_strerror(err), uv_err_name(err));
  lua_concat(L, 2);
  lua_setfield(L, -2, "message");
  aio__setfield_str(L, "code", uv_err_name(err));
  luaL_setmetatable(L, "aio.Error");
}


/* Raises `closed`: "attempt to use a closed <what>". */
int aio__closed_error (lua_State *L, const char *what) {
  return aio__error(L, "closed", "attempt to use a closed %s", what);
}


/* Registers the function at `idx` to run once when this run ends (after
** the tasks unwound, before the handles are closed). */
void aio__at_exit (lua_State *L, Loop *loop, int idx) {
  idx = lua_absindex(L, idx);
  (void)loop;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_exithooks);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
}


static const struct { const char *name; int num; } signals[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT},
  {"SIGILL", SIGILL}, {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},
  {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE}, {"SIGKILL", SIGKILL},
  {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
  {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
  {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},
  {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU},
  {"SIGURG", SIGURG}, {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
  {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH},
  {"SIGIO", SIGIO}, {"SIGSYS", SIGSYS},
  {NULL, 0}
};


/* SIGPIPE's handler: nothing. */
static void on_sigpipe (int sig) { (void)sig; }


/*
** Writing to a connection or pipe whose reader is gone must fail with
** EPIPE instead of killing the process: unless the program chose a
** disposition for SIGPIPE, give it a handler that does nothing. (Unlike
** SIG_IGN, a handler does not pass on to the programs aio.process starts.)
*/
void aio__ignore_sigpipe (void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
      !(sa.sa_flags & SA_SIGINFO)) {
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
  }
}


/* "SIGTERM" for 15; NULL for an unknown number. */
const char *aio__signame (int signum) {
  int i;
  for (i = 0; signals[i].name != NULL; i++)
    if (signals[i].num == signum) return signals[i].name;
  return NULL;
}


/* 15 for "SIGTERM" (or "TERM"); 0 for an unknown name. */
int aio__signum (const char *name) {
  int i;
  for (i = 0; signals[i].name != NULL; i++)
    if (strcmp(signals[i].name, name) == 0 ||
        strcmp(signals[i].name + 3, name) == 0)
      return signals[i].num;
  return 0;
}
