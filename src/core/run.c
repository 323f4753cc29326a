/*
** run.c
** aio.run: a run's life. It starts the libuv loop, runs the main task,
** then cancels what is left, lets it unwind, closes everything the run
** opened and reports errors nobody retrieved.
** See LICENSE
*/

#include <stdio.h>

#include "core.h"


/* The run's real-time limit passed (aio.testing.run): cancels the main
** task; the run raises `timeout` when it is over. */
static void on_limit (uv_timer_t *h) {
  Loop *loop = aio_container_of(h, Loop, limit_timer);
  loop->timed_out = 1;
  if (loop->main != NULL && !aio_task_done(loop->main))
    aio__task_cancel(loop->L, loop, loop->main, 0);
}


/*
** Sets the loop up for a run with a virtual clock or not (`virt`,
** `autojump` seconds), a real-time limit (`limit` seconds, 0: none) and,
** with `keep`, unretrieved errors kept for core.unretrieved. Raises if
** libuv cannot start.
*/
static void run_begin (lua_State *L, Loop *loop, int virt, double autojump,
                       double limit, int keep) {
  int rc = uv_loop_init(&loop->uv);
  if (rc != 0) aio__error(L, "io", "cannot start the libuv loop: %s",
                          uv_strerror(rc));
  loop->core_handle.on_close = NULL;
  uv_timer_init(&loop->uv, &loop->timer);
  loop->timer.data = &loop->core_handle;
  uv_timer_init(&loop->uv, &loop->limit_timer);
  loop->limit_timer.data = &loop->core_handle;
  loop->limit = limit;
  loop->timed_out = 0;
  if (limit > 0) {
    uv_timer_start(&loop->limit_timer, on_limit,
                   limit >= 1e9 ? (uint64_t)1e12 : (uint64_t)(limit * 1000),
                   0);
    uv_unref((uv_handle_t *)&loop->limit_timer);
  }
  loop->keep_unseen = keep;
  if (keep) {              /* strong: no failed task is collected unseen */
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &aio__key_unseen);
  }
  aio__clock_start(loop, virt, autojump);
  aio__sigint_begin(loop);
  loop->running = 1;
  loop->stopping = 0;
  loop->interrupted = 0;
  loop->generation++;
  loop->L = L;
  loop->armed = 0;
  loop->since_poll = 0;
}


/* Cancels every task not done (during shutdown); with `kill`, ends them
** at once instead (a second SIGINT while shutting down). */
static void cancel_all (lua_State *L, Loop *loop, int kill) {
  uint32_t i;
  aio__push_anchors(L, loop);
  for (i = 1; i <= loop->anchors.nslots; i++) {
    Task *t;
    lua_rawgeti(L, -1, i);
    t = aio__totask(L, -1);
    if (t != NULL && !aio_task_done(t)) {
      if (!kill) {
        aio__task_cancel(L, loop, t, 0);
        /* one that never started is finished by the scheduler (it may
        ** have left the ready queue when a memory error stopped it) */
        if (t->state == AIO_TASK_NEW) aio__ready_push(loop, t);
      }
      else if (t->co != NULL && t != loop->current) {
        aio__error_new(L, "interrupted", "task killed: aio.run was "
                       "interrupted again while shutting down");
        aio__task_disarm(loop, t);
        aio__task_kill(loop, t);
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}


/* A libuv handle no Closable owned: a module bug. It is closed so that
** the loop can close, and reported. */
static void close_stray (uv_handle_t *h, void *arg) {
  AioHandle *ah = (AioHandle *)h->data;
  (void)arg;
  if (uv_is_closing(h)) return;
  fprintf(stderr, "aio: internal error: a libuv %s handle was left open "
          "at the end of aio.run\n", uv_handle_type_name(h->type));
  fflush(stderr);
  uv_close(h, ah != NULL ? ah->on_close : NULL);
}


/* Closes the loop's own handles, waits for the close callbacks and for
** requests still in flight (thread-pool work cannot be interrupted), then
** closes the libuv loop. */
static void close_loop (Loop *loop) {
  uv_close((uv_handle_t *)&loop->timer, NULL);
  uv_close((uv_handle_t *)&loop->limit_timer, NULL);
  if (loop->owns_sigint) uv_close((uv_handle_t *)&loop->sigint, NULL);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  while (uv_loop_close(&loop->uv) == UV_EBUSY) {
    uv_walk(&loop->uv, close_stray, NULL);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
  }
  aio__sigint_end(loop);
  aio__timers_reset(loop);
  link_init(&loop->deferred);   /* their owners were closed */
  loop->armed = 0;
  aio__ready_clear(loop);
}


/*
** The end of a run: cancels every task still alive and lets them unwind
** (tasks spawned meanwhile are born cancelled), closes everything the run
** opened (the closables), closes the libuv loop, lets each module forget
** its per-run state and reports errors nobody retrieved. A second SIGINT
** meanwhile kills what is left.
*/
static void run_end (lua_State *L, Loop *loop) {
  const AioModule *const *m;
  loop->stopping = 1;
  cancel_all(L, loop, 0);
  if (aio__run_loop(L, loop, NULL)) {
    cancel_all(L, loop, 1);
    aio__run_loop(L, loop, NULL);
  }
  aio__closables_close(loop);
  close_loop(loop);
  for (m = aio__modules; *m != NULL; m++)
    if ((*m)->close != NULL) (*m)->close(L, loop);
  loop->running = 0;
  loop->current = NULL;
  loop->main = NULL;
  loop->ndetached = 0;
  aio__new_weak_table(L, &aio__key_detached);
  aio__clock_stop(loop);
  if (!loop->keep_unseen) aio__report_unretrieved(L);
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
** Runs the function at 1 with the arguments above it as the main task of
** a run set up by run_begin (virt, autojump, limit, keep), cleans up and
** returns its results or re-raises its error; `interrupted` if SIGINT
** stopped it, `timeout` if the real-time limit did.
*/
static int run (lua_State *L, Loop *loop, int virt, double autojump,
                double limit, int keep) {
  int n = lua_gettop(L), status;
  aio__checkcallable(L, 1);
  if (loop->running)
    aio__usage(L, "aio.run cannot be called while a loop is running (use "
               "aio.spawn, or call the function directly)");
  run_begin(L, loop, virt, autojump, limit, keep);
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
  if (loop->timed_out) {
    char buf[32];
    snprintf(buf, sizeof buf, "%g", loop->limit);
    aio__error_new(L, "timeout", "the run took longer than its %s s "
                   "(real time) limit", buf);
    aio__setfield_num(L, "seconds", loop->limit);
    return lua_error(L);
  }
  return aio__task_results(L, -1);
}


/*
** aio.run(fn, ...) -> fn's results. Runs fn as the main task on a new
** loop, then cleans up (see run_end) and returns its results or re-raises
** its error; `interrupted` if SIGINT stopped it.
*/
static int l_run (lua_State *L) {
  return run(L, aio_upvalue_loop(L), 0, 0, 0, 0);
}


/*
** core.run_test(virtual, autojump, limit, keep, fn, ...): aio.run for
** aio.testing.run: `virtual` (boolean) gives the run a virtual clock that
** jumps after `autojump` seconds of idleness; `limit` (seconds of real
** time, 0: none) cancels the main task and raises `timeout` when it
** passes; `keep` keeps the errors nobody retrieved for core.unretrieved
** instead of reporting them. Arguments are checked by aio.testing.
*/
static int l_run_test (lua_State *L) {
  int virt = lua_toboolean(L, 1), keep = lua_toboolean(L, 4);
  double autojump = luaL_checknumber(L, 2), limit = luaL_checknumber(L, 3);
  lua_rotate(L, 1, -4);
  lua_pop(L, 4);
  return run(L, aio_upvalue_loop(L), virt, autojump, limit, keep);
}


/* core.run and core.run_test, with the loop and the core table (for
** core.spawn) as upvalues. The core table is on top, the loop below it. */
void aio__open_run (lua_State *L) {
  int core = lua_gettop(L);
  lua_pushvalue(L, core - 1);
  lua_pushvalue(L, core);
  lua_pushcclosure(L, l_run, 2);
  lua_setfield(L, core, "run");
  lua_pushvalue(L, core - 1);
  lua_pushvalue(L, core);
  lua_pushcclosure(L, l_run_test, 2);
  lua_setfield(L, core, "run_test");
}
