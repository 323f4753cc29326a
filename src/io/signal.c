/*
** signal.c
** core.signal: a libuv signal watcher whose deliveries are counted in C
** and collected by a task (which runs the handlers).
** See LICENSE
*/

#include <signal.h>
#include <string.h>

#include "aio.h"

#define WATCHER_MT "aio.SignalWatcher"

/* Registry key of the SigState of this state. */
static const char state_key = 0;

/* While a SIGINT watcher is open, the loop's own SIGINT handling (cancel
** the main task) is off; it comes back when the last one closes. */
typedef struct SigState {
  uv_signal_cb saved;    /* the loop's SIGINT callback */
  unsigned nsigint;      /* open SIGINT watchers of this run */
} SigState;

typedef struct Watcher {
  IoHandle io;
  uv_signal_t h;
  Link waiters;          /* the task in wait() */
  SigState *st;
  unsigned pending;      /* deliveries not collected yet */
  uint8_t sigint;        /* counted in st->nsigint */
} Watcher;



static void signal_cb (uv_signal_t *h, int signum) {
  Watcher *w = (Watcher *)h->data;
  (void)signum;
  w->pending++;
  aio__notify_all(w->io.loop, &w->waiters);
}


static int wait_body (lua_State *L, Watcher *w);

static int wait_k (lua_State *L, int status, lua_KContext ctx) {
  Watcher *w = (Watcher *)aio__io_self(L);
  (void)status; (void)ctx;
  aio__io_resumed(L, &w->io);
  return wait_body(L, w);
}


static int wait_body (lua_State *L, Watcher *w) {
  if (w->pending > 0) {
    lua_pushinteger(L, (lua_Integer)w->pending);
    w->pending = 0;
    return 1;
  }
  return aio__io_wait(L, &w->io, &w->waiters, 0, 0, wait_k);
}


/* watcher:wait() (suspends) -> how many deliveries since the last call
** (at least 1). Raises `closed` once the watcher is closed. */
static int watcher_wait (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Watcher *w = (Watcher *)aio__io_check(L);
  lua_settop(L, 1);
  aio__task_enter(L, loop, "signal wait");
  return wait_body(L, w);
}


/* Closes the watcher, giving SIGINT back to the loop if it was the last
** SIGINT watcher of the run. */
static void watcher_close (IoHandle *io) {
  Watcher *w = (Watcher *)io;
  Loop *loop = io->loop;
  int signum = w->h.signum;
  if (w->sigint && loop->running &&
      --w->st->nsigint == 0 && w->st->saved != NULL)  /* before: no gap */
    uv_signal_start(&loop->sigint, w->st->saved, SIGINT);
  w->sigint = 0;
  aio__io_close_handle(io, (uv_handle_t *)&w->h);
  if (signum == SIGPIPE) aio__ignore_sigpipe();   /* libuv reset it */
  aio__notify_all(loop, &w->waiters);
}


static const IoType watcher_type = {"signal watcher", watcher_close, NULL,
                                    NULL};


static SigState *sigstate (lua_State *L) {
  SigState *st;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key);
  st = (SigState *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return st;
}


/*
** core.signal.watch(name) -> a watcher of signal `name` ("SIGTERM" or
** "TERM"). Raises a `usage` error for unknown signals and for those that
** cannot be handled (SIGKILL, SIGSTOP, and the faults SIGSEGV, SIGBUS,
** SIGFPE, SIGILL).
*/
static int l_watch (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  const char *name = aio__checkcstring(L, 1, "signal name");
  int signum = aio__signum(name);
  Watcher *w;
  SigState *st;
  int rc;
  aio__check_running(L, loop, "aio.signal");
  if (signum == 0)
    return aio__usage(L, "aio.signal: unknown signal '%s'", name);
  if (signum == SIGKILL || signum == SIGSTOP || signum == SIGSEGV ||
      signum == SIGBUS || signum == SIGFPE || signum == SIGILL)
    return aio__usage(L, "aio.signal: %s cannot be handled",
                      aio__signame(signum));
  st = sigstate(L);
  w = (Watcher *)aio__io_new(loop, sizeof(Watcher), &watcher_type);
  if (w == NULL) return aio__nomem(L, "watching a signal");
  w->io.passive = 1;            /* a signal is new work, not I/O */
  uv_signal_init(&loop->uv, &w->h);
  aio__io_opened(&w->io, (uv_handle_t *)&w->h);
  link_init(&w->waiters);
  w->st = st;
  aio__io_push(L, &w->io, WATCHER_MT, 0);
  rc = uv_signal_start(&w->h, signal_cb, signum);
  if (rc < 0) {
    aio__io_close(&w->io);
    aio__uv_error_new(L, "io", rc, "cannot watch %s", aio__signame(signum));
    return lua_error(L);
  }
  if (signum == SIGINT && loop->owns_sigint) {
    if (st->nsigint++ == 0) {
      st->saved = loop->sigint.signal_cb;
      uv_signal_stop(&loop->sigint);
    }
    w->sigint = 1;
  }
  return 1;
}


/* core.signal.name(name) -> the canonical name ("SIGTERM") or nil. */
static int l_name (lua_State *L) {
  int signum = aio__signum(aio__checkcstring(L, 1, "signal name"));
  if (signum == 0) lua_pushnil(L);
  else lua_pushstring(L, aio__signame(signum));
  return 1;
}


static const luaL_Reg watcher_methods[] = {
  {"wait", watcher_wait},
  {"close", aio__io_close_method},
  {NULL, NULL}
};


static const luaL_Reg watcher_meta[] = {
  {"__gc", aio__io__gc},
  {"__close", aio__io_close_method},
  {NULL, NULL}
};


static const AioClass watcher_class = {WATCHER_MT, watcher_methods,
                                       watcher_meta};


static const luaL_Reg signal_funcs[] = {
  {"watch", l_watch},
  {"name", l_name},
  {NULL, NULL}
};


/* core.signal = {watch, name}. */
static void open_signal (lua_State *L) {
  int core = lua_gettop(L);
  SigState *st = (SigState *)lua_newuserdatauv(L, sizeof(SigState), 0);
  memset(st, 0, sizeof *st);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &state_key);
  aio__class_open(L, core - 1, &watcher_class);
  lua_pop(L, 1);
  lua_newtable(L);
  aio__setfuncs(L, core - 1, signal_funcs);
  lua_setfield(L, core, "signal");
}


/* The end of a run (its watchers are closed): no SIGINT watcher is left. */
static void close_signal (lua_State *L, Loop *loop) {
  SigState *st = sigstate(L);
  (void)loop;
  st->nsigint = 0;
  st->saved = NULL;
}


const AioModule aio__module_signal = {"signal", open_signal, close_signal};
