/*
** task.c
** Tasks: what a task keeps, spawning, the suspension protocol every
** waiting function uses, cancellation requests and completion. The Task
** class (its methods, results, reports) is in task_object.c.
** See LICENSE
*/

#include <stdio.h>
#include <string.h>

#include "core.h"

/* Its address is the value a suspending function yields to the scheduler. */
const char aio__token = 0;


/* ---------------------------------------------------------------------
** The user value: coroutine, result, or the extra table
** ------------------------------------------------------------------- */

/*
** Pushes the extra table of task `t` (userdata at `idx`) and returns 1;
** creates it when `create` (moving the coroutine or the result into it),
** else returns 0 and pushes nothing if there is none.
*/
int aio__task_push_extra (lua_State *L, int idx, Task *t, int create) {
  idx = lua_absindex(L, idx);
  if (t->flags & AIO_TF_EXTRA) {
    lua_getiuservalue(L, idx, 1);
    return 1;
  }
  if (!create) return 0;
  lua_createtable(L, 0, 4);                    /* extra */
  lua_getiuservalue(L, idx, 1);                /* extra co|value */
  lua_setfield(L, -2, aio_task_done(t) ? "value" : "co");
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, 1);
  t->flags |= AIO_TF_EXTRA;
  return 1;
}


/* Pushes field `k` of the extra table (nil if none); returns its type. */
int aio__task_get_extra (lua_State *L, int idx, Task *t, const char *k) {
  if (!aio__task_push_extra(L, idx, t, 0)) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  lua_getfield(L, -1, k);
  lua_remove(L, -2);
  return lua_type(L, -1);
}


/* Sets extra field `k` to the value on top (popped). */
void aio__task_set_extra (lua_State *L, int idx, Task *t, const char *k) {
  idx = lua_absindex(L, idx);
  aio__task_push_extra(L, idx, t, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, k);
  lua_pop(L, 1);
}


/* Pushes the outcome of a finished task: its result value (one value, or
** the {n=...} table) or its error. */
void aio__task_push_value (lua_State *L, int idx, Task *t) {
  lua_getiuservalue(L, idx, 1);
  if (t->flags & AIO_TF_EXTRA) {
    lua_getfield(L, -1, "value");
    lua_remove(L, -2);
  }
}


/* Stores the value on top (popped) as the outcome of the task at `idx`. */
void aio__task_set_value (lua_State *L, int idx, Task *t) {
  idx = lua_absindex(L, idx);
  if (t->flags & AIO_TF_EXTRA) {
    lua_getiuservalue(L, idx, 1);              /* v extra */
    lua_insert(L, -2);
    lua_setfield(L, -2, "value");
    lua_pushnil(L);
    lua_setfield(L, -2, "co");
    lua_pop(L, 1);
  }
  else lua_setiuservalue(L, idx, 1);
}


/* Pushes the task's name. */
void aio__task_push_name (lua_State *L, int idx, Task *t) {
  if (aio__task_get_extra(L, idx, t, "name") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushfstring(L, "task-%d", (int)t->id);
  }
}


/* ---------------------------------------------------------------------
** Running a task's body: task_main runs in the task's coroutine
** ------------------------------------------------------------------- */

/*
** Message handler of the task body: records where the error was raised
** (the stack is still intact here) in extra.traceback and returns the
** error value unchanged. Cancellations skip the traceback unless debug
** mode is on (a shutdown may cancel thousands of tasks).
*/
static int task_msgh (lua_State *co) {
  Loop *loop = aio__loop(co);
  Task *t = loop->current;
  if (t == NULL || lua_gettop(co) < 1) return 1;
  if (!loop->debug && aio__is_error(co, 1, "cancelled")) return 1;
  if (!lua_checkstack(co, 8)) return 1;
  aio__push_anchored(co, loop, t->anchor);   /* err task */
  if (lua_isuserdata(co, -1)) {
    luaL_traceback(co, co, NULL, 1);
    aio__task_set_extra(co, -2, t, "traceback");
  }
  lua_settop(co, 1);
  return 1;
}


/* After the body: replaces the handler slot by the success flag, so the
** coroutine returns (ok, results...) or (false, err). */
static int task_main_k (lua_State *co, int status, lua_KContext ctx) {
  (void)ctx;
  lua_pushboolean(co, status == LUA_OK || status == LUA_YIELD);
  lua_replace(co, 1);
  return lua_gettop(co);
}


/* The coroutine's function: stack is (msgh, fn, args...). */
static int task_main (lua_State *co) {
  int status = lua_pcallk(co, lua_gettop(co) - 2, LUA_MULTRET, 1, 0,
                          task_main_k);
  return task_main_k(co, status, 0);
}


/*
** aio.spawn(fn, ...) -> Task. The task starts on a later turn of the loop,
** in spawn order.
*/
static int l_spawn (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  int n = lua_gettop(L);                 /* fn + args */
  Task *t;
  aio__checkcallable(L, 1);
  aio__check_running(L, loop, "aio.spawn");
  if (n > LUAI_MAXSTACK - 64)      /* its coroutine must hold them all */
    aio__usage(L, "aio.spawn: too many arguments");
  t = (Task *)lua_newuserdatauv(L, sizeof(Task), 1);
  memset(t, 0, sizeof *t);
  link_init(&t->wait.link);
  link_init(&t->awaiters);
  t->timer.kind = AIO_TIMER_TASK;
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setmetatable(L, -2);
  lua_insert(L, 1);                      /* task fn args... */
  if (n > 1) {                           /* the body: fn, or {fn, args...} */
    int i;
    lua_createtable(L, n, 1);            /* task fn args... body */
    lua_insert(L, 2);                    /* task body fn args... */
    for (i = n; i >= 1; i--) lua_rawseti(L, 2, i);
    lua_pushinteger(L, n);
    lua_setfield(L, 2, "n");
    t->packed = 1;
  }
  lua_setiuservalue(L, 1, 1);            /* task */
  t->id = ++loop->next_id;
  t->state = AIO_TASK_NEW;
  if (loop->stopping) t->flags |= AIO_TF_CANCEL;  /* born cancelled */
  t->anchor = aio__anchor(L, loop, 1);
  loop->ntasks++;
  if (loop->debug) {
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) &&
        ar.currentline > 0) {            /* not aio.run's own main task */
      lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
      aio__task_set_extra(L, 1, t, "spawned_at");
    }
  }
  aio__ready_push(loop, t);
  return 1;
}


/*
** Gives the NEW task `t` its coroutine (its first resume is next), with
** the stack (task_main, msgh, fn, args...): a task gets one only when it
** starts, so spawning is cheap, a task cancelled before it ran never has
** one, and the coroutine is fresh in the cache when it first runs. Runs
** on loop->L; raises only on memory errors.
*/
void aio__task_start (Loop *loop, Task *t) {
  lua_State *L = loop->L;
  int top = lua_gettop(L);
  lua_State *co;
  lua_checkstack(L, 4);
  aio__push_anchored(L, loop, t->anchor);            /* task */
  co = lua_newthread(L);                             /* task co */
  lua_pushcfunction(co, task_main);
  lua_pushcfunction(co, task_msgh);
  if (t->flags & AIO_TF_EXTRA) aio__task_get_extra(L, top + 1, t, "co");
  else lua_getiuservalue(L, top + 1, 1);             /* task co body */
  if (t->packed) {
    int i, n;
    lua_getfield(L, -1, "n");
    n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_checkstack(co, n + 2);      /* cannot fail: aio.spawn checked n */
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      lua_xmove(L, co, 1);
    }
    lua_pop(L, 1);                                   /* task co */
    t->packed = 0;
  }
  else lua_xmove(L, co, 1);                          /* task co */
  if (t->flags & AIO_TF_EXTRA) aio__task_set_extra(L, top + 1, t, "co");
  else lua_setiuservalue(L, top + 1, 1);             /* task */
  t->co = co;
  lua_settop(L, top);
}


/* ---------------------------------------------------------------------
** The suspension protocol
** ------------------------------------------------------------------- */

/*
** Called by a suspending function (named `what` in messages) before it
** arms a wait: returns the current task. Raises `usage` outside a task or where a yield cannot
** pass, and the cancellation error if the task is cancelled (level-
** triggered: every suspension of a cancelled task raises).
*/
Task *aio__task_enter (lua_State *L, Loop *loop, const char *what) {
  Task *t = loop->current;
  if (t == NULL)
    aio__usage(L, "%s suspends and must be called inside a task "
               "(a function run by aio.run or aio.spawn)", what);
  if (!lua_isyieldable(L))
    aio__usage(L, "cannot suspend here: a C function or metamethod "
               "between this call and the task cannot yield");
  if (t->flags & AIO_TF_CANCEL || t->nexpired) aio__checkpoint(L, t);
  return t;
}


/*
** Suspends the running task: the caller has armed its wait (or put the
** task in the ready queue). Yields the token; `k` runs when the task is
** resumed, with any values the waker pushed on top of the stack. If a
** cancellation is pending the wait is interrupted at once (the task is
** ready, woken with AIO_WAKE_CANCEL), whatever woke it last. Must be the
** return expression of a C function.
*/
int aio__suspend (lua_State *L, Task *t, lua_KContext ctx, lua_KFunction k) {
  if (t->state == AIO_TASK_RUNNING) t->state = AIO_TASK_WAITING;
  t->wake = AIO_WAKE_NONE;
  /* level-triggered: a cancellation or a deadline that came while the
  ** task was not waiting (woken, not resumed yet: its continuation waits
  ** again) interrupts this wait at once */
  if ((t->flags & AIO_TF_CANCEL) || t->nexpired)
    aio__task_interrupt(aio__loop(L), t);
  lua_pushlightuserdata(L, (void *)&aio__token);
  return lua_yieldk(L, 1, ctx, k);
}


/*
** As aio__suspend, for a wait that finishes clean-up the task must not
** skip (a killed child being reaped): cancellations and deadlines do not
** interrupt it; they stay pending for the next suspension. The mark
** lasts until the wait ends (aio__task_disarm).
*/
int aio__suspend_cleanup (lua_State *L, Task *t, lua_KContext ctx,
                          lua_KFunction k) {
  t->flags |= AIO_TF_CLEANUP;
  return aio__suspend(L, t, ctx, k);
}


/*
** Interrupts the wait of `t` if it is waiting (not in a clean-up wait)
** and a cancellation or an expired deadline is pending for it and not
** shielded: it is made ready with AIO_WAKE_CANCEL, and its continuation
** stops what it waited for and raises. Returns 1 if it did. The one rule
** for task:cancel(), an expiring deadline and every suspension.
*/
int aio__task_interrupt (Loop *loop, Task *t) {
  if (t->state != AIO_TASK_WAITING || (t->flags & AIO_TF_CLEANUP) ||
      !aio__cancel_pending(t))
    return 0;
  return aio__task_wake(loop, t, AIO_WAKE_CANCEL);
}


/* Takes a task out of whatever it waits on (a wait list or the ready
** queue) and disarms its timer: its wait is over. */
void aio__task_disarm (Loop *loop, Task *t) {
  if (t->flags & AIO_TF_INREADY) aio__ready_remove(loop, t);
  else link_remove(&t->wait.link);
  t->flags &= ~AIO_TF_CLEANUP;
  aio__timer_cancel(loop, &t->timer);
  if (t->iowait) aio__wait_io_end(loop, t);
}


/*
** Makes a WAITING task ready with reason `wake`; returns 0 (and does
** nothing) if it is not waiting. Never runs Lua: the task continues when
** the scheduler resumes it.
*/
int aio__task_wake (Loop *loop, Task *t, int wake) {
  if (t->state != AIO_TASK_WAITING) return 0;
  aio__task_disarm(loop, t);
  t->wake = (uint8_t)wake;
  t->state = AIO_TASK_READY;
  aio__ready_push(loop, t);
  return 1;
}


/*
** Raises what a continuation must raise when its task was woken by
** something else than the thing it waited for: `usage` when the wait could
** not go on, else the task's cancellation. Never returns.
*/
int aio__wake_raise (lua_State *L, Task *t) {
  int wake = t->wake;
  t->wake = AIO_WAKE_NONE;
  if (wake == AIO_WAKE_ABORT)
    aio__usage(L, "cannot suspend here: a coroutine between this call and "
               "the task cannot pass the suspension on (it was resumed "
               "from C or across a C-call boundary)");
  if (wake == AIO_WAKE_DEADLOCK)
    aio__error(L, "usage", "deadlock: every task is waiting and nothing "
               "can wake any of them");
  if (wake == AIO_WAKE_CLOSED)
    aio__error(L, "closed", "closed while waiting");
  aio__checkpoint(L, t);
  return aio__error(L, "cancelled", "task cancelled");
}


/* Raises if the task is effectively cancelled (see scope.c); returns
** otherwise. */
void aio__checkpoint (lua_State *L, Task *t) {
  if ((t->flags & AIO_TF_CANCEL) || t->nexpired) aio__scope_raise(L, t);
}


/* ---------------------------------------------------------------------
** Cancellation requests
** ------------------------------------------------------------------- */

/*
** Requests cancellation of `t` with the reason at stack index `reason`
** (0: none). Returns 0 if the task is already done. A waiting task that is
** not shielded is woken so that its suspension raises; one that is not
** waiting raises at its next suspension (see aio__suspend).
*/
int aio__task_cancel (lua_State *L, Loop *loop, Task *t, int reason) {
  if (aio_task_done(t)) return 0;
  if (!(t->flags & AIO_TF_CANCEL)) {
    t->flags |= AIO_TF_CANCEL;
    if (reason && !lua_isnoneornil(L, reason)) {
      lua_pushvalue(L, reason);
      aio__push_anchored(L, loop, t->anchor);
      lua_insert(L, -2);
      aio__task_set_extra(L, -2, t, "reason");
      lua_pop(L, 1);
    }
  }
  aio__task_interrupt(loop, t);
  return 1;
}


/* Pushes the cancellation error of task `t` (whose userdata is at `idx`). */
void aio__push_cancel_error (lua_State *L, int idx, Task *t) {
  idx = lua_absindex(L, idx);
  aio__task_get_extra(L, idx, t, "reason");           /* reason */
  if (lua_type(L, -1) == LUA_TSTRING)
    aio__error_new(L, "cancelled", "task cancelled: %s", lua_tostring(L, -1));
  else
    aio__error_new(L, "cancelled", "task cancelled");
  lua_insert(L, -2);                        /* err reason */
  lua_setfield(L, -2, "reason");
}


/* ---------------------------------------------------------------------
** Completion
** ------------------------------------------------------------------- */

/* Wakes every waiter of a finished task / event. */
void aio__notify_all (Loop *loop, Link *list) {
  while (!link_empty(list)) {
    Waiter *w = aio_container_of(list->next, Waiter, link);
    link_remove(&w->link);
    if (w->notify) w->notify(loop, w);
    else aio__task_wake(loop, aio_container_of(w, Task, wait), AIO_WAKE_OK);
  }
}


/* Queues the task's on_done callbacks (the task userdata is on top). */
static void queue_callbacks (lua_State *L, Loop *loop, Task *t) {
  int i, n;
  if (aio__task_get_extra(L, -1, t, "callbacks") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  n = (int)lua_rawlen(L, -1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_callbacks);  /* task cbs pend */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    lua_rawseti(L, -2, (lua_Integer)loop->ncallbacks * 2 + 1);
    lua_pushvalue(L, -3);
    lua_rawseti(L, -2, (lua_Integer)loop->ncallbacks * 2 + 2);
    loop->ncallbacks++;
  }
  lua_pop(L, 2);
}


/*
** Finishes task `t`: its coroutine's top `nres` values are (ok, values...)
** or (false, err). Stores the outcome, releases the coroutine, wakes the
** awaiters and queues the on_done callbacks. Runs on loop->L; never runs
** Lua code.
*/
void aio__task_finish (Loop *loop, Task *t, int nres) {
  lua_State *L = loop->L;
  lua_State *co = t->co;
  int ok = lua_toboolean(co, -nres);
  int nvals = nres - 1;
  lua_checkstack(L, nvals + 8);
  aio__scopes_clear(loop, t);
  aio__anchor_take(L, loop, t->anchor);              /* task */
  t->anchor = 0;                  /* held on L's stack from here on */
  if (ok) {
    t->state = AIO_TASK_OK;
    if (nvals == 0) {
      t->flags |= AIO_TF_NORESULT;
      lua_pushnil(L);
    }
    else if (nvals == 1) {
      lua_xmove(co, L, 1);
    }
    else {
      int i;
      lua_createtable(L, nvals, 1);                   /* task res */
      lua_xmove(co, L, nvals);                        /* task res v1..vn */
      for (i = nvals; i >= 1; i--) lua_rawseti(L, -1 - i, i);
      lua_pushinteger(L, nvals);
      lua_setfield(L, -2, "n");
      t->flags |= AIO_TF_RESULTS;
    }
  }
  else {
    lua_xmove(co, L, 1);                              /* task err */
    if (aio__is_error(L, -1, "cancelled")) t->state = AIO_TASK_CANCELLED;
    else {
      t->state = AIO_TASK_FAILED;
      t->flags |= AIO_TF_UNSEEN;
    }
  }
  aio__task_set_value(L, -2, t);                                /* task */
  if (t->state == AIO_TASK_FAILED) {
    aio__task_mark_failed(L, -1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_unseen);   /* unseen set */
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  if (t->flags & AIO_TF_INREADY) aio__ready_remove(loop, t);
  if (t->iowait) aio__wait_io_end(loop, t);
  lua_settop(co, 0);
  t->co = NULL;
  t->wake = AIO_WAKE_NONE;
  loop->ntasks--;
  aio__notify_all(loop, &t->awaiters);
  if (t->flags & AIO_TF_CALLBACKS) queue_callbacks(L, loop, t);
  lua_pop(L, 1);
}


/*
** Ends a task that cannot go on (it yielded something else than the
** token, or its coroutine died outside the body's pcall): closes its
** coroutine (running pending to-be-closed variables) and finishes it with
** the error on top of loop->L (popped).
*/
void aio__task_kill (Loop *loop, Task *t) {
  lua_State *L = loop->L;
  lua_State *co = t->co;
  lua_settop(co, 0);
  aio_closethread(co, L);
  lua_settop(co, 0);
  lua_pushboolean(co, 0);
  lua_xmove(L, co, 1);
  aio__task_finish(loop, t, 2);
}


/* core.spawn, with the loop and the Task metatable as upvalues. */
void aio__open_task (lua_State *L) {
  int core = lua_gettop(L);
  lua_pushvalue(L, core - 1);
  luaL_getmetatable(L, aio__task_class.name);
  lua_pushcclosure(L, l_spawn, 2);
  lua_setfield(L, core, "spawn");
}
