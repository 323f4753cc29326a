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
  uint32_t gen;          /* the run nsigint counts for */
} SigState;

typedef struct Watcher {
  IoHandle io;
  uv_signal_t h;
  Link waiters;          /* the task in wait() */
  SigState *st;
  unsigned pending;      /* deliveries not collected yet */
  uint8_t sigint;        /* counted in st->nsigint */
} Watcher;

typedef struct WatcherRef {
  Watcher *w;
} WatcherRef;


static void signal_cb (uv_signal_t *h, int signum) {
  Watcher *w = (Watcher *)h->data;
  (void)signum;
  w->pending++;
  aio__notify_all(w->io.loop, &w->waiters);
}


static Watcher *towatcher (lua_State *L) {
  return ((WatcherRef *)luaL_checkudata(L, 1, WATCHER_MT))->w;
}


static int wait_body (lua_State *L, Watcher *w);

static int wait_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  Task *t = loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  return wait_body(L, towatcher(L));
}


static int wait_body (lua_State *L, Watcher *w) {
  Task *t = w->io.loop->current;
  if (!aio__io_live(&w->io)) return aio__closed_error(L, "signal watcher");
  if (w->pending > 0) {
    lua_pushinteger(L, (lua_Integer)w->pending);
    w->pending = 0;
    return 1;
  }
  link_push(&w->waiters, &t->wait.link);
  return aio__suspend(L, t, 0, wait_k);
}


/* watcher:wait() (suspends) -> how many deliveries since the last call
** (at least 1). Raises `closed` once the watcher is closed. */
static int watcher_wait (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Watcher *w = towatcher(L);
  lua_settop(L, 1);
  aio__task_enter(L, loop, "signal wait");
  return wait_body(L, w);
}


/* Closes `w` (idempotent), giving SIGINT back to the loop if it was the
** last SIGINT watcher of the run. */
static void watcher_close_mem (Watcher *w) {
  Loop *loop = w->io.loop;
  int signum = w->h.signum;
  if (w->io.closing) return;
  if (w->sigint && w->st->gen == loop->generation && loop->running &&
      --w->st->nsigint == 0 && w->st->saved != NULL)  /* before: no gap */
    uv_signal_start(&loop->sigint, w->st->saved, SIGINT);
  w->sigint = 0;
  aio__io_close(&w->io, (uv_handle_t *)&w->h);
  if (signum == SIGPIPE) aio__ignore_sigpipe();   /* libuv reset it */
  aio__notify_all(loop, &w->waiters);
}


static int watcher_close (lua_State *L) {
  watcher_close_mem(towatcher(L));
  return 0;
}


static int watcher_gc (lua_State *L) {
  Watcher *w = ((WatcherRef *)lua_touserdata(L, 1))->w;
  if (w == NULL) return 0;
  watcher_close_mem(w);
  aio__io_orphan(&w->io);
  return 0;
}


/*
** core.signal.watch(name) -> a watcher of signal `name` ("SIGTERM" or
** "TERM"). Raises a `usage` error for unknown signals and for those that
** cannot be handled (SIGKILL, SIGSTOP, and the faults SIGSEGV, SIGBUS,
** SIGFPE, SIGILL).
*/
static int l_watch (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  const char *name = luaL_checkstring(L, 1);
  int signum = aio__signum(name);
  WatcherRef *ref;
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
  lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key);
  st = (SigState *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  ref = (WatcherRef *)lua_newuserdatauv(L, sizeof(WatcherRef), 0);
  ref->w = NULL;
  w = (Watcher *)aio__io_new(loop, sizeof(Watcher));
  if (w == NULL) return luaL_error(L, "not enough memory");
  uv_signal_init(&loop->uv, &w->h);
  aio__io_opened(&w->io, (uv_handle_t *)&w->h);
  link_init(&w->waiters);
  w->st = st;
  ref->w = w;
  luaL_setmetatable(L, WATCHER_MT);
  rc = uv_signal_start(&w->h, signal_cb, signum);
  if (rc < 0) {
    watcher_close_mem(w);
    aio__uv_error_new(L, "io", rc, "cannot watch %s", aio__signame(signum));
    return lua_error(L);
  }
  if (signum == SIGINT) {
    if (st->gen != loop->generation) {
      st->gen = loop->generation;
      st->nsigint = 0;
    }
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
  int signum = aio__signum(luaL_checkstring(L, 1));
  if (signum == 0) lua_pushnil(L);
  else lua_pushstring(L, aio__signame(signum));
  return 1;
}


static const luaL_Reg watcher_methods[] = {
  {"wait", watcher_wait},
  {"close", watcher_close},
  {NULL, NULL}
};


static const luaL_Reg signal_funcs[] = {
  {"watch", l_watch},
  {"name", l_name},
  {NULL, NULL}
};


/* core.signal = {watch, name}. */
void aio__open_signal (lua_State *L) {
  int core = lua_gettop(L);
  SigState *st = (SigState *)lua_newuserdatauv(L, sizeof(SigState), 0);
  memset(st, 0, sizeof *st);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &state_key);
  luaL_newmetatable(L, WATCHER_MT);
  lua_newtable(L);
  aio__setfuncs(L, core - 1, watcher_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, watcher_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_newtable(L);
  aio__setfuncs(L, core - 1, signal_funcs);
  lua_setfield(L, core, "signal");
}
