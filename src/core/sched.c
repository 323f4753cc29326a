/*
** sched.c
** The scheduler: the ready queue, drained in rounds, the one place where
** task coroutines are resumed, and the policy that interleaves rounds with
** polling libuv for I/O and timers.
** See LICENSE
*/

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core.h"

/* Poll I/O between rounds at least after this many resumes, or whenever
** the coarse clock ticked (a few ms) since the last poll. */
#define POLL_EVERY 256


/* ---------------------------------------------------------------------
** Ready queue: a FIFO list through Task.wait.link
** ------------------------------------------------------------------- */

/* Appends `t` to the ready queue unless it already has an entry there.
** `t` must not be in a wait list (aio__task_disarm takes it out). */
void aio__ready_push (Loop *loop, Task *t) {
  if (t->flags & AIO_TF_INREADY) return;
  link_push(&loop->ready.list, &t->wait.link);
  loop->ready.count++;
  t->flags |= AIO_TF_INREADY;
}


/* Removes the queue entry of `t` (a task that finished or was disarmed
** while it had one). */
void aio__ready_remove (Loop *loop, Task *t) {
  link_remove(&t->wait.link);
  loop->ready.count--;
  t->flags &= ~AIO_TF_INREADY;
}


static Task *ready_pop (Loop *loop) {
  Task *t = aio_container_of(loop->ready.list.next, Task, wait.link);
  aio__ready_remove(loop, t);
  return t;
}


/* Empties the ready queue (the end of a run). */
void aio__ready_clear (Loop *loop) {
  while (loop->ready.count > 0) ready_pop(loop);
  link_init(&loop->ready.list);
}


/* ---------------------------------------------------------------------
** Resuming a task
** ------------------------------------------------------------------- */

/* Its address is the registry key of a spare coroutine that carries the
** outcome of tasks that never ran (they never got one of their own). */
static const char spare_key = 0;


/* A task cancelled before it ever ran finishes without running. */
static void finish_unstarted (lua_State *L, Loop *loop, Task *t) {
  lua_State *co;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &spare_key) != LUA_TTHREAD) {
    lua_pop(L, 1);
    lua_newthread(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &spare_key);
  }
  co = lua_tothread(L, -1);
  lua_pop(L, 1);                       /* kept by the registry */
  aio__push_anchored(L, loop, t->anchor);
  aio__push_cancel_error(L, -1, t);
  lua_remove(L, -2);
  lua_settop(co, 0);
  lua_pushboolean(co, 0);
  lua_xmove(L, co, 1);
  t->co = co;                          /* for aio__task_finish only */
  aio__task_finish(loop, t, 2);
}


/*
** Resumes task `t` once: the only call of lua_resume on a task's
** coroutine. The task runs until it suspends (yields the token), returns
** or fails; what it yields otherwise ends it with a `usage` error.
*/
static void task_step (Loop *loop, Task *t) {
  lua_State *L = loop->L;
  lua_State *co = t->co;
  int nargs, nres, status;
  uint64_t t0 = 0;
  if (t->state == AIO_TASK_NEW) {
    if (t->flags & AIO_TF_CANCEL) { finish_unstarted(L, loop, t); return; }
    aio__task_start(loop, t);
    co = t->co;
    nargs = lua_gettop(co) - 1;
  }
  else nargs = t->nargs;   /* READY: a queued task is NEW or READY */
  t->nargs = 0;
  t->state = AIO_TASK_RUNNING;
  loop->current = t;
  if (loop->debug) {        /* held on L: a task that finishes loses its anchor */
    lua_checkstack(L, 1);
    aio__push_anchored(L, loop, t->anchor);
    t0 = aio__hrtime();
  }
  status = lua_resume(co, L, nargs, &nres);
  loop->current = NULL;
  loop->since_poll++;
  if (status == LUA_YIELD) {
    if (nres == 1 && lua_touserdata(co, -1) == (void *)&aio__token)
      lua_pop(co, 1);
    else {
      lua_pop(co, nres);
      aio__error_new(L, "usage", "a task yielded to the scheduler with "
                     "coroutine.yield outside any coroutine of its own; "
                     "use aio.sleep(0) to let other tasks run");
      aio__task_kill(loop, t);
    }
  }
  else if (status == LUA_OK) aio__task_finish(loop, t, nres);
  else {
    lua_xmove(co, L, 1);
    aio__task_kill(loop, t);
  }
  if (loop->debug) {
    double secs = (double)(aio__hrtime() - t0) / AIO_NS;
    if (secs > loop->slow) aio__debug_slow(L, t, secs);
    lua_pop(L, 1);
  }
}




/* Calls the pending on_done callbacks, each protected; errors are
** reported on stderr (a callback has nobody to raise to). */
static void run_callbacks (lua_State *L, Loop *loop) {
  uint32_t i, n = loop->ncallbacks;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_callbacks);   /* cbs */
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &aio__key_callbacks);
  loop->ncallbacks = 0;
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i * 2 + 1);
    lua_rawgeti(L, -2, (lua_Integer)i * 2 + 2);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      fprintf(stderr, "aio: an on_done callback failed: %s\n",
              luaL_tolstring(L, -1, NULL));
      fflush(stderr);
      lua_pop(L, 2);
    }
  }
  lua_pop(L, 1);
}


/* ---------------------------------------------------------------------
** Polling
** ------------------------------------------------------------------- */

static int64_t coarse_tick (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* Queues `d` to run before the loop next polls (once: queuing it again
** before it ran changes nothing). Unqueue it with link_remove(&d->link).
** `d->run` must be set. */
void aio__defer (Loop *loop, Deferred *d) {
  if (link_empty(&d->link)) link_push(&loop->deferred, &d->link);
}


/* Runs the deferred work queued so far (work it queues runs next time). */
static void run_deferred (Loop *loop) {
  Link list;
  if (link_empty(&loop->deferred)) return;
  link_init(&list);
  list.next = loop->deferred.next;             /* take the whole list */
  list.prev = loop->deferred.prev;
  list.next->prev = &list;
  list.prev->next = &list;
  link_init(&loop->deferred);
  while (!link_empty(&list)) {
    Deferred *d = aio_container_of(list.next, Deferred, link);
    link_remove(&d->link);
    d->run(loop, d);
  }
}


/* Runs the deferred work, libuv once in `mode`, then fires the deadlines
** that passed. */
static void poll_io (Loop *loop, uv_run_mode mode) {
  run_deferred(loop);
  uv_run(&loop->uv, mode);
  aio__clock_update(loop);
  aio__timers_expire(loop);
  loop->since_poll = 0;
  loop->poll_tick = coarse_tick();
}


/* Is it time for a non-blocking poll (POLL_EVERY resumes, or a coarse
** clock tick, since the last one)? */
static int poll_due (Loop *loop) {
  return loop->since_poll >= POLL_EVERY || coarse_tick() != loop->poll_tick;
}


/*
** With many tasks, the ones in the ready queue are cold in the cache: while
** one runs, fetch the coroutine of the next one (whose Task was fetched a
** step earlier) and the Task after it.
*/
static void prefetch_next (Loop *loop) {
  Task *t = aio_container_of(loop->ready.list.next, Task, wait.link);
  const char *co = (const char *)t->co;
  __builtin_prefetch(t->wait.link.next);
  if (co != NULL) {
    __builtin_prefetch(co);
    __builtin_prefetch(co + 64);
    __builtin_prefetch(co + 128);
    __builtin_prefetch(co + 192);
  }
}


/*
** Runs the tasks that are ready now; those made ready meanwhile (by them,
** or by I/O and deadlines) wait for the next round. A long round polls
** I/O as it goes, so a burst of thousands of ready tasks does not hold
** sockets back until it ends.
*/
static void run_round (Loop *loop) {
  uint32_t n = loop->ready.count;
  while (n-- > 0 && loop->ready.count > 0) {
    Task *t = ready_pop(loop);
    if (loop->ready.count > 0) prefetch_next(loop);
    task_step(loop, t);
    if (n > 0 && poll_due(loop)) poll_io(loop, UV_RUN_NOWAIT);
  }
}


static void on_timer (uv_timer_t *h);


/*
** Starts the uv timer to wake the poll in `wait` real nanoseconds, for
** deadline `key`, unless it runs for that one already. libuv counts whole
** milliseconds from a clock it reads now and then, so the timeout is
** rounded up by one more millisecond: it never fires before the deadline.
*/
static void arm_uv_timer (Loop *loop, uint64_t key, uint64_t wait) {
  uint64_t ms;
  if (loop->armed == key) return;
  ms = wait / 1000000 + 2;
  if (ms > 3600000) ms = 3600000;      /* far deadlines: check back hourly */
  uv_update_time(&loop->uv);
  uv_timer_start(&loop->timer, on_timer, ms, 0);
  loop->armed = key;
}


/* The uv timer fired: uv_run returns as soon as it has polled I/O without
** blocking (if the deadline is not due yet, because libuv's clock ran
** ahead or the deadline moved, the scheduler arms the timer again; the
** poll after it must never block with no timeout). */
static void on_timer (uv_timer_t *h) {
  Loop *loop = aio_container_of(h, Loop, timer);
  loop->armed = 0;
  uv_stop(&loop->uv);
}


/*
** Every task is waiting and nothing can wake any of them (no timer, no
** active handle or request). Wakes the main task (all waiting tasks once
** it is done) with AIO_WAKE_DEADLOCK, so they raise instead of hanging.
*/
static void deadlock (lua_State *L, Loop *loop) {
  uint32_t i;
  if (loop->main != NULL && !aio_task_done(loop->main) &&
      aio__task_wake(loop, loop->main, AIO_WAKE_DEADLOCK))
    return;
  aio__push_anchors(L, loop);
  for (i = 1; i <= loop->anchors.nslots; i++) {
    Task *t;
    lua_rawgeti(L, -1, i);
    t = aio__totask(L, -1);
    if (t != NULL) aio__task_wake(loop, t, AIO_WAKE_DEADLOCK);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}


/*
** A virtual clock with nothing ready and no task waiting on I/O: once the
** loop has been idle for the clock's autojump (real time), what has
** arrived meanwhile is polled, and if the loop is still idle the clock
** jumps to deadline `next` and it fires. Until then, the poll blocks for
** the rest of the idle time.
*/
static void idle_virtual (Loop *loop, uint64_t next) {
  uint64_t idle = aio__clock_idle(loop);
  if (idle < loop->clock.autojump) {
    arm_uv_timer(loop, AIO_FOREVER - 1, loop->clock.autojump - idle);
    poll_io(loop, UV_RUN_ONCE);
    return;
  }
  poll_io(loop, UV_RUN_NOWAIT);
  if (loop->ready.count == 0 && link_empty(&loop->deferred) &&
      loop->ncallbacks == 0 && aio__clock_can_jump(loop) &&
      aio__timer_next(loop) == next) {
    aio__clock_jump(loop, next);
    aio__timers_expire(loop);
  }
}


/* Nothing is ready: blocks in libuv until I/O, a signal or the earliest
** deadline (a virtual clock may jump to it instead: idle_virtual). */
static void poll_blocking (lua_State *L, Loop *loop) {
  uint64_t next;
  run_deferred(loop);
  if (loop->ready.count > 0) {          /* it woke a task: do not block */
    poll_io(loop, UV_RUN_NOWAIT);
    return;
  }
  next = aio__timer_next(loop);
  if (next == AIO_FOREVER && loop->clock.virt) next = 0;  /* never due */
  if (next != 0) {
    uint64_t now = aio__now(loop);
    if (next <= now) {   /* due already: fire, and give I/O its turn */
      loop->now = now;
      aio__timers_expire(loop);
      poll_io(loop, UV_RUN_NOWAIT);
      return;
    }
    if (aio__clock_can_jump(loop)) {
      idle_virtual(loop, next);
      return;
    }
    arm_uv_timer(loop, next, next - now);
  }
  else if (loop->armed) {
    uv_timer_stop(&loop->timer);
    loop->armed = 0;
  }
  if (next == 0 && !uv_loop_alive(&loop->uv)) {
    deadlock(L, loop);
    return;
  }
  poll_io(loop, UV_RUN_ONCE);
}


/*
** Runs the scheduler until task `until` is done, or with until == NULL
** until no task is left (and no callback is pending). Rounds of ready
** tasks alternate with non-blocking polls (at least every POLL_EVERY
** resumes or every coarse clock tick), so busy tasks cannot starve I/O and
** ready tasks never wait for a poll timeout.
*/
int aio__run_loop (lua_State *L, Loop *loop, Task *until) {
  for (;;) {
    if (loop->ncallbacks > 0) run_callbacks(L, loop);
    if (until != NULL ? aio_task_done(until)
                      : (loop->ntasks == 0 && loop->ncallbacks == 0))
      return 0;
    if (loop->interrupted > 1 && loop->stopping) return 1;
    if (loop->ready.count > 0) {
      aio__clock_busy(loop);
      run_round(loop);
      if (poll_due(loop)) poll_io(loop, UV_RUN_NOWAIT);
    }
    else if (loop->ncallbacks == 0) poll_blocking(L, loop);
  }
}
