/*
** loop.c
** The loop's life: aio.run (start, main task, shutdown, cleanup), SIGINT,
** anchors, and the module entry point luaopen_aio_core.
** See LICENSE
*/

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aio.h"

const char aio__key_loop = 0;
const char aio__key_anchors = 0;
const char aio__key_callbacks = 0;
const char aio__key_detached = 0;
const char aio__key_exithooks = 0;
const char aio__key_unseen = 0;

/* SIGINT disposition before aio.run, restored after it; libuv's handler,
** which sigint_guard calls. */
static struct sigaction saved_sigint, uv_sigint;

/* SIGINTs delivered, and how many of them the loop has seen. */
static volatile sig_atomic_t sigints_raw, sigints_seen;

/* The loop whose aio.run handles SIGINT (for the signal handler): the
** first run of the process that is going on (another Lua state may run a
** loop in another thread at the same time; it leaves SIGINT alone). */
static Loop *sigint_loop;


/* A hook that raises `interrupted` in the task that blocks the loop. */
static void interrupt_hook (lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  aio__error(L, "interrupted", "interrupted by SIGINT while blocking the "
             "loop");
}


/*
** The process's SIGINT handler during aio.run: passes the signal to
** libuv, whose watcher cancels the main task when the loop polls. If more
** SIGINTs come before the loop saw the first (a task blocks the loop and
** never suspends): the second raises `interrupted` inside that task (a
** hook, as the standalone interpreter does); the third gives up on a clean
** stop and hands the signal to the disposition from before aio.run (the
** default, terminate, if it was ignored: libuv made the process answer
** SIGINT anyway).
*/
static void sigint_guard (int signum, siginfo_t *info, void *ctx) {
  int pending = ++sigints_raw - sigints_seen;
  Loop *loop = __atomic_load_n(&sigint_loop, __ATOMIC_ACQUIRE);
  if (pending == 2 && loop != NULL && loop->current != NULL &&
      loop->current->co != NULL)
    lua_sethook(loop->current->co, interrupt_hook,
                LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  else if (pending >= 3) {
    struct sigaction fallback = saved_sigint;
    if (!(fallback.sa_flags & SA_SIGINFO) && fallback.sa_handler == SIG_IGN)
      fallback.sa_handler = SIG_DFL;
    sigaction(SIGINT, &fallback, NULL);
    raise(SIGINT);
    return;
  }
  if (uv_sigint.sa_flags & SA_SIGINFO) uv_sigint.sa_sigaction(signum, info, ctx);
  else if (uv_sigint.sa_handler != SIG_IGN && uv_sigint.sa_handler != SIG_DFL)
    uv_sigint.sa_handler(signum);
}


Loop *aio__loop (lua_State *L) {
  Loop *loop;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_loop);
  loop = (Loop *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return loop;
}


uint64_t aio__hrtime (void) {
  return uv_hrtime();
}


void aio__check_running (lua_State *L, Loop *loop, const char *what) {
  if (!loop->running)
    aio__usage(L, "%s needs a running loop: call it inside aio.run", what);
}


void aio__handle_opened (Loop *loop) { loop->nhandles++; }
void aio__handle_closed (Loop *loop) { loop->nhandles--; }


void aio__setfuncs (lua_State *L, int loopidx, const luaL_Reg *l) {
  for (; l->name != NULL; l++) {
    lua_pushvalue(L, loopidx);
    lua_pushcclosure(L, l->func, 1);
    lua_setfield(L, -2, l->name);
  }
}


void aio__setmethods (lua_State *L, int loopidx, int mtidx,
                      const luaL_Reg *l) {
  for (; l->name != NULL; l++) {
    lua_pushvalue(L, loopidx);
    lua_pushvalue(L, mtidx);
    lua_pushcclosure(L, l->func, 2);
    lua_setfield(L, -2, l->name);
  }
}


/* Argument 1 of a method registered by aio__setmethods: the userdata if
** its metatable is the method's own, else a standard argument error. */
void *aio__checkself (lua_State *L, const char *tname) {
  void *p = lua_touserdata(L, 1);
  if (p != NULL && lua_getmetatable(L, 1)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(2));
    lua_pop(L, 1);
    if (same) return p;
  }
  luaL_typeerror(L, 1, tname);
  return NULL;
}


/* ---------------------------------------------------------------------
** Object type checks
** ------------------------------------------------------------------- */

/* The userdata at `idx` if its metatable carries `mark`, else NULL. */
void *aio__testobj (lua_State *L, int idx, const void *mark) {
  void *p = lua_touserdata(L, idx);
  if (p == NULL || !lua_getmetatable(L, idx)) return NULL;
  if (lua_rawgetp(L, -1, mark) != LUA_TBOOLEAN) p = NULL;
  lua_pop(L, 2);
  return p;
}


/* As aio__testobj, raising a standard argument error naming `tname`. */
void *aio__checkobj (lua_State *L, int idx, const void *mark,
                     const char *tname) {
  void *p = aio__testobj(L, idx, mark);
  if (p == NULL) luaL_typeerror(L, idx, tname);
  return p;
}


/* Puts `mark` into the metatable on top. */
void aio__markmeta (lua_State *L, const void *mark) {
  lua_pushboolean(L, 1);
  lua_rawsetp(L, -2, mark);
}


/* ---------------------------------------------------------------------
** Anchors: an array table keeps objects reachable while C code holds raw
** pointers to them; freed slots are reused.
** ------------------------------------------------------------------- */

/* Anchors the value at `idx`; returns its slot (> 0). */
uint32_t aio__anchor (lua_State *L, Loop *loop, int idx) {
  uint32_t slot;
  idx = lua_absindex(L, idx);
  if (loop->nfree > 0) slot = loop->free_slots[--loop->nfree];
  else slot = ++loop->nslots;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_anchors);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
  return slot;
}


void aio__unanchor (lua_State *L, Loop *loop, uint32_t slot) {
  if (slot == 0) return;
  if (loop->nfree == loop->free_cap) {
    uint32_t cap = loop->free_cap ? loop->free_cap * 2 : 256;
    uint32_t *f = realloc(loop->free_slots, cap * sizeof *f);
    if (f == NULL) {  /* keep the slot occupied rather than lose track */
      return;
    }
    loop->free_slots = f;
    loop->free_cap = cap;
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_anchors);
  lua_pushnil(L);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
  loop->free_slots[loop->nfree++] = slot;
}


/* Pushes the value anchored in `slot` (nil if none). */
void aio__push_anchored (lua_State *L, Loop *loop, uint32_t slot) {
  (void)loop;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_anchors);
  lua_rawgeti(L, -1, slot);
  lua_remove(L, -2);
}


/* ---------------------------------------------------------------------
** aio.run
** ------------------------------------------------------------------- */

static void on_sigint (uv_signal_t *h, int signum) {
  Loop *loop = aio_container_of(h, Loop, sigint);
  (void)signum;
  sigints_seen = sigints_raw;
  loop->interrupted++;
  if (loop->main != NULL && !aio_task_done(loop->main))
    aio__task_cancel(loop->L, loop, loop->main, 0);
}


/* Sets the loop up for a run. Raises if libuv cannot start. */
static void run_begin (lua_State *L, Loop *loop) {
  int rc = uv_loop_init(&loop->uv);
  if (rc != 0) aio__error(L, "io", "cannot start the libuv loop: %s",
                          uv_strerror(rc));
  loop->core_handle.on_close = NULL;
  uv_timer_init(&loop->uv, &loop->timer);
  loop->timer.data = &loop->core_handle;
  loop->owns_sigint = 0;
  {
    Loop *none = NULL;
    if (__atomic_compare_exchange_n(&sigint_loop, &none, loop, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      loop->owns_sigint = 1;
      sigaction(SIGINT, NULL, &saved_sigint);
      uv_signal_init(&loop->uv, &loop->sigint);
      loop->sigint.data = &loop->core_handle;
      uv_signal_start(&loop->sigint, on_sigint, SIGINT);
      uv_unref((uv_handle_t *)&loop->sigint);
      sigints_raw = sigints_seen = 0;
      if (sigaction(SIGINT, NULL, &uv_sigint) == 0) {
        struct sigaction guard = uv_sigint;
        guard.sa_sigaction = sigint_guard;
        guard.sa_flags |= SA_SIGINFO;
        sigaction(SIGINT, &guard, NULL);
      }
    }
  }
  loop->running = 1;
  loop->stopping = 0;
  loop->interrupted = 0;
  loop->generation++;
  loop->L = L;
  loop->armed = 0;
  loop->now = aio__hrtime();
  loop->since_poll = 0;
}


/* Cancels every task not done (during shutdown). */
static void cancel_all (lua_State *L, Loop *loop, int kill) {
  uint32_t i;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_anchors);
  for (i = 1; i <= loop->nslots; i++) {
    Task *t;
    lua_rawgeti(L, -1, i);
    t = aio__totask(L, -1);
    if (t != NULL && !aio_task_done(t)) {
      if (!kill) aio__task_cancel(L, loop, t, 0);
      else if (t->co != NULL && t != loop->current) {
        aio__error_new(L, "interrupted", "task killed: aio.run was "
                       "interrupted again while shutting down");
        if (t->flags & AIO_TF_INREADY) t->state = AIO_TASK_WAITING;
        aio__task_disarm(loop, t);
        aio__task_kill(loop, t);
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}


/* Calls the run-exit hooks (registered with core.at_exit), each once and
** protected; returns how many there were. */
static int run_exit_hooks (lua_State *L) {
  int i, n;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_exithooks);
  n = (int)lua_rawlen(L, -1);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &aio__key_exithooks);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
      fprintf(stderr, "aio: a clean-up hook failed at the end of aio.run: "
              "%s\n", luaL_tolstring(L, -1, NULL));
      fflush(stderr);
      lua_pop(L, 2);
    }
  }
  lua_pop(L, 1);
  return n;
}


static void walk_close (uv_handle_t *h, void *arg) {
  AioHandle *ah = (AioHandle *)h->data;
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, ah != NULL ? ah->on_close : NULL);
}


/* Closes every libuv handle still open, waits for requests still in
** flight (thread-pool work cannot be interrupted), then closes the loop. */
static void close_loop (Loop *loop) {
  do {
    uv_walk(&loop->uv, walk_close, NULL);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
  } while (uv_loop_close(&loop->uv) == UV_EBUSY);
  aio__timers_reset(loop);
  loop->armed = 0;
  loop->rcount = 0;
  loop->rhead = 0;
  if (loop->owns_sigint) {
    loop->owns_sigint = 0;
    sigaction(SIGINT, &saved_sigint, NULL);
    __atomic_store_n(&sigint_loop, NULL, __ATOMIC_RELEASE);
  }
}


/*
** The end of a run: cancels every task still alive and lets them unwind
** (again for tasks spawned meanwhile), runs the exit hooks (which close
** what modules opened), closes every handle and reports errors nobody
** retrieved. A second SIGINT meanwhile kills what is left.
*/
static void run_end (lua_State *L, Loop *loop) {
  loop->stopping = 1;
  for (;;) {
    cancel_all(L, loop, 0);
    if (aio__run_loop(L, loop, NULL)) cancel_all(L, loop, 1);
    if (run_exit_hooks(L) == 0 && loop->ntasks == 0 &&
        loop->ncallbacks == 0)
      break;
  }
  close_loop(loop);
  loop->running = 0;
  loop->current = NULL;
  loop->main = NULL;
  loop->ndetached = 0;
  aio__new_weak_table(L, &aio__key_detached);
  aio__report_unretrieved(L);
}


/*
** The protected body of aio.run: stack is (spawn, fn, args...). Leaves
** the main task on top.
*/
static int run_body (lua_State *L) {
  Loop *loop = (Loop *)lua_touserdata(L, lua_upvalueindex(1));
  Task *t;
  lua_call(L, lua_gettop(L) - 1, 1);                  /* task */
  t = aio__checktask(L, -1);
  loop->main = t;
  aio__run_loop(L, loop, t);
  t->flags &= ~AIO_TF_UNSEEN;   /* aio.run re-raises it */
  return 1;
}


/*
** aio.run(fn, ...) -> fn's results. Runs fn as the main task on a new
** loop, then cleans up (see run_end) and returns its results or re-raises
** its error; `interrupted` if SIGINT stopped it.
*/
static int l_run (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  int n = lua_gettop(L), status;
  if (lua_type(L, 1) != LUA_TFUNCTION && !luaL_getmetafield(L, 1, "__call"))
    luaL_typeerror(L, 1, "function");
  lua_settop(L, n);
  if (loop->running)
    aio__usage(L, "aio.run cannot be called while a loop is running (use "
               "aio.spawn, or call the function directly)");
  run_begin(L, loop);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, run_body, 1);
  lua_insert(L, 1);                                   /* body fn args... */
  lua_getfield(L, lua_upvalueindex(2), "spawn");
  lua_insert(L, 2);                                   /* body spawn fn ... */
  status = lua_pcall(L, n + 1, 1, 0);                 /* task | err */
  run_end(L, loop);
  if (status != LUA_OK) return lua_error(L);
  if (loop->interrupted)
    return aio__error(L, "interrupted", "interrupted by SIGINT");
  return aio__task_results(L, -1);
}


/* ---------------------------------------------------------------------
** Small core functions
** ------------------------------------------------------------------- */

static int l_set_debug (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  loop->debug = lua_toboolean(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) loop->slow = lua_tonumber(L, 2);
  return 0;
}


static int l_get_debug (lua_State *L) {
  lua_pushboolean(L, aio_upvalue_loop(L)->debug);
  return 1;
}


/* core.stats() -> {tasks, ready, timers, handles, running, generation} */
static int l_stats (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, loop->ntasks); lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, loop->rcount); lua_setfield(L, -2, "ready");
  lua_pushinteger(L, aio__timer_count(loop));
  lua_setfield(L, -2, "timers");
  lua_pushinteger(L, loop->nhandles); lua_setfield(L, -2, "handles");
  lua_pushboolean(L, loop->running); lua_setfield(L, -2, "running");
  lua_pushinteger(L, loop->generation); lua_setfield(L, -2, "generation");
  return 1;
}


/* core.at_exit(fn): fn() is called once when the current run ends. */
static int l_at_exit (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  aio__check_running(L, loop, "at_exit");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_exithooks);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}


static int loop_gc (lua_State *L) {
  Loop *loop = (Loop *)lua_touserdata(L, 1);
  if (loop->running) {   /* the state closes inside aio.run (os.exit) */
    uv_walk(&loop->uv, walk_close, NULL);
    uv_run(&loop->uv, UV_RUN_NOWAIT);
    uv_loop_close(&loop->uv);
    loop->running = 0;
  }
  free(loop->ready);
  free(loop->heap);
  aio__timers_free(loop);
  free(loop->free_slots);
  loop->ready = NULL;
  loop->heap = NULL;
  loop->free_slots = NULL;
  return 0;
}


/* Stores a new weak-keyed table in the registry under `key`. */
void aio__new_weak_table (lua_State *L, const char *key) {
  lua_newtable(L);
  lua_newtable(L);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}


static const luaL_Reg loop_funcs[] = {
  {"set_debug", l_set_debug},
  {"get_debug", l_get_debug},
  {"stats", l_stats},
  {"at_exit", l_at_exit},
  {NULL, NULL}
};


AIO_EXPORT int luaopen_aio_core (lua_State *L);

int luaopen_aio_core (lua_State *L) {
  Loop *loop;
  const char *dbg = getenv("AIO_DEBUG");
  int loopidx, core;
  loop = (Loop *)lua_newuserdatauv(L, sizeof(Loop), 0);
  memset(loop, 0, sizeof *loop);
  loop->slow = 0.1;
  loop->debug = dbg != NULL && *dbg != '\0' && strcmp(dbg, "0") != 0;
  loopidx = lua_gettop(L);
  lua_newtable(L);
  lua_pushcfunction(L, loop_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, loopidx);
  lua_pushvalue(L, loopidx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &aio__key_loop);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &aio__key_anchors);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &aio__key_callbacks);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &aio__key_exithooks);
  aio__new_weak_table(L, &aio__key_detached);
  aio__new_weak_table(L, &aio__key_unseen);

  lua_newtable(L);                                  /* loop core */
  core = lua_gettop(L);
  aio__setfuncs(L, loopidx, loop_funcs);
  aio__open_task(L);
  aio__open_scope(L);
  aio__open_coro(L);
  aio__open_timer(L);
  aio__open_semaphore(L);
  aio__open_queue(L);
  aio__open_waitlist(L);
  aio__open_watch(L);
  aio__open_error(L);
  aio__open_fs(L);
  aio__open_tcp(L);
  aio__open_dns(L);
  aio__open_thread(L);
  aio__open_process(L);
  aio__open_signal(L);
  aio__open_http(L);
  lua_pushvalue(L, loopidx);                        /* run: loop, core */
  lua_pushvalue(L, core);
  lua_pushcclosure(L, l_run, 2);
  lua_setfield(L, core, "run");
  return 1;
}
