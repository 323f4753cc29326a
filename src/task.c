/*
** task.c
** Tasks: spawning, the suspension protocol every waiting function uses,
** completion, cancellation requests, and the Task methods.
** See LICENSE
*/

#include <stdio.h>
#include <string.h>

#include "aio.h"

#define TASK_MT "aio.Task"

/* Its address is the value a suspending function yields to the scheduler. */
const char aio__token = 0;


/* ---------------------------------------------------------------------
** The user value: coroutine, result, or the extra table
** ------------------------------------------------------------------- */

/* Marks both task metatables (the address is the key). */
static const char task_mark = 0;

#define TASK_FAILED_MT "aio.Task.failed"


/*
** Pushes the extra table of task `t` (userdata at `idx`) and returns 1;
** creates it when `create` (moving the coroutine or the result into it),
** else returns 0 and pushes nothing if there is none.
*/
static int push_extra (lua_State *L, int idx, Task *t, int create) {
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
static int get_extra (lua_State *L, int idx, Task *t, const char *k) {
  if (!push_extra(L, idx, t, 0)) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  lua_getfield(L, -1, k);
  lua_remove(L, -2);
  return lua_type(L, -1);
}


/* Sets extra field `k` to the value on top (popped). */
static void set_extra (lua_State *L, int idx, Task *t, const char *k) {
  idx = lua_absindex(L, idx);
  push_extra(L, idx, t, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, k);
  lua_pop(L, 1);
}


/* Pushes the outcome of a finished task: its result value (one value, or
** the {n=...} table) or its error. */
static void push_value (lua_State *L, int idx, Task *t) {
  lua_getiuservalue(L, idx, 1);
  if (t->flags & AIO_TF_EXTRA) {
    lua_getfield(L, -1, "value");
    lua_remove(L, -2);
  }
}


/* Stores the value on top (popped) as the outcome of the task at `idx`. */
static void set_value (lua_State *L, int idx, Task *t) {
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
static void push_name (lua_State *L, int idx, Task *t) {
  if (get_extra(L, idx, t, "name") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushfstring(L, "task-%d", (int)t->id);
  }
}


Task *aio__totask (lua_State *L, int idx) {
  return (Task *)aio__testobj(L, idx, &task_mark);
}


Task *aio__checktask (lua_State *L, int idx) {
  return (Task *)aio__checkobj(L, idx, &task_mark, TASK_MT);
}


/* core.task_state(t) -> "pending" | "ok" | "failed" | "cancelled",
** without retrieving anything */
static int l_task_state (lua_State *L) {
  Task *t = aio__checktask(L, 1);
  lua_pushstring(L, t->state == AIO_TASK_OK ? "ok"
                  : t->state == AIO_TASK_FAILED ? "failed"
                  : t->state == AIO_TASK_CANCELLED ? "cancelled" : "pending");
  return 1;
}


/* core.is_task(v) -> boolean */
static int l_is_task (lua_State *L) {
  lua_pushboolean(L, aio__totask(L, 1) != NULL);
  return 1;
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
    set_extra(co, -2, t, "traceback");
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
  lua_State *co;
  Task *t;
  if (lua_type(L, 1) != LUA_TFUNCTION && !luaL_getmetafield(L, 1, "__call"))
    luaL_typeerror(L, 1, "function");
  lua_settop(L, n);
  aio__check_running(L, loop, "aio.spawn");
  t = (Task *)lua_newuserdatauv(L, sizeof(Task), 1);
  memset(t, 0, sizeof *t);
  link_init(&t->wait.link);
  link_init(&t->awaiters);
  t->timer.kind = AIO_TIMER_TASK;
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setmetatable(L, -2);
  co = lua_newthread(L);                 /* fn args... task co */
  lua_rotate(L, 1, 2);                   /* task co fn args... */
  if (!lua_checkstack(co, n + 2)) luaL_error(L, "too many arguments");
  lua_pushcfunction(co, task_main);
  lua_pushcfunction(co, task_msgh);
  lua_xmove(L, co, n);                   /* task co */
  lua_setiuservalue(L, 1, 1);            /* task */
  t->co = co;
  t->id = ++loop->next_id;
  t->state = AIO_TASK_NEW;
  if (loop->stopping) t->flags |= AIO_TF_CANCEL;  /* born cancelled */
  t->anchor = aio__anchor(L, loop, 1);
  loop->ntasks++;
  if (loop->debug) {
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar)) {
      lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
      set_extra(L, 1, t, "spawned_at");
    }
  }
  aio__ready_push(loop, t);
  return 1;
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
** resumed, with any values the waker pushed on top of the stack. Must be
** the return expression of a C function.
*/
int aio__suspend (lua_State *L, Task *t, lua_KContext ctx, lua_KFunction k) {
  if (t->state == AIO_TASK_RUNNING) t->state = AIO_TASK_WAITING;
  t->wake = AIO_WAKE_NONE;
  lua_pushlightuserdata(L, (void *)&aio__token);
  return lua_yieldk(L, 1, ctx, k);
}


/* Takes a waiting task out of whatever it waits on. */
void aio__task_disarm (Loop *loop, Task *t) {
  link_remove(&t->wait.link);
  aio__timer_cancel(loop, &t->timer);
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
** not shielded is woken so that its suspension raises.
*/
int aio__task_cancel (lua_State *L, Loop *loop, Task *t, int reason) {
  if (aio_task_done(t)) return 0;
  if (!(t->flags & AIO_TF_CANCEL)) {
    t->flags |= AIO_TF_CANCEL;
    if (reason && !lua_isnoneornil(L, reason)) {
      lua_pushvalue(L, reason);
      aio__push_anchored(L, loop, t->anchor);
      lua_insert(L, -2);
      set_extra(L, -2, t, "reason");
      lua_pop(L, 1);
    }
  }
  if (t->state == AIO_TASK_WAITING && aio__cancel_pending(t))
    aio__task_wake(loop, t, AIO_WAKE_CANCEL);
  return 1;
}


/* Pushes the cancellation error of task `t` (whose userdata is at `idx`). */
void aio__push_cancel_error (lua_State *L, int idx, Task *t) {
  idx = lua_absindex(L, idx);
  get_extra(L, idx, t, "reason");           /* reason */
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
  if (get_extra(L, -1, t, "callbacks") != LUA_TTABLE) {
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
  aio__push_anchored(L, loop, t->anchor);            /* task */
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
  set_value(L, -2, t);                                /* task */
  if (t->state == AIO_TASK_FAILED) {
    luaL_getmetatable(L, TASK_FAILED_MT);   /* its __gc reports it */
    lua_setmetatable(L, -2);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_unseen);   /* unseen set */
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  if (t->flags & AIO_TF_INREADY) aio__ready_remove(loop, t);
  lua_settop(co, 0);
  t->co = NULL;
  t->wake = AIO_WAKE_NONE;
  aio__unanchor(L, loop, t->anchor);
  t->anchor = 0;
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


/* ---------------------------------------------------------------------
** Results
** ------------------------------------------------------------------- */

/* Pushes the results of the finished task at `idx`, or raises its error
** (marking it retrieved). Returns the number of results. */
static int push_results (lua_State *L, int idx, Task *t) {
  if (t->state == AIO_TASK_OK) {
    if (t->flags & AIO_TF_NORESULT) return 0;
    push_value(L, idx, t);
    if (t->flags & AIO_TF_RESULTS) {
      int i, n;
      lua_getfield(L, -1, "n");
      n = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
      luaL_checkstack(L, n, "too many results");
      for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
      return n;
    }
    return 1;
  }
  t->flags &= ~AIO_TF_UNSEEN;
  push_value(L, idx, t);
  return lua_error(L);
}


/* Pushes the results of the finished task at `idx` or raises its error. */
int aio__task_results (lua_State *L, int idx) {
  Task *t = aio__checktask(L, idx);
  if (!aio_task_done(t)) aio__usage(L, "the task is not done yet");
  return push_results(L, lua_absindex(L, idx), t);
}


static int await_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  Task *t = (Task *)lua_touserdata(L, 1);
  Task *me = loop->current;
  (void)status; (void)ctx;
  if (me->wake != AIO_WAKE_OK) {
    /* cancelled while awaiting: the cancellation spreads to the awaited
    ** task, as asyncio does (aio.shield(task) prevents it) */
    if (me->wake == AIO_WAKE_CANCEL) aio__task_cancel(L, loop, t, 0);
    aio__wake_raise(L, me);
  }
  aio__checkpoint(L, me);
  return push_results(L, 1, t);
}


/* task:await() (suspends) -> the task's results; raises its error. */
static int task_await (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Task *t = aio__checktask(L, 1);
  lua_settop(L, 1);
  if (!aio_task_done(t)) {
    Task *me = aio__task_enter(L, loop, "task:await()");
    if (me == t) aio__usage(L, "a task cannot await itself");
    link_push(&t->awaiters, &me->wait.link);
    return aio__suspend(L, me, 0, await_k);
  }
  return push_results(L, 1, t);
}


/* task:result() -> results; raises the error; `usage` if not done. */
static int task_result (lua_State *L) {
  Task *t = aio__checktask(L, 1);
  lua_settop(L, 1);
  if (!aio_task_done(t))
    aio__usage(L, "task:result(): the task is not done yet");
  return push_results(L, 1, t);
}


/* task:error() -> the error value, or nil. */
static int task_error (lua_State *L) {
  Task *t = aio__checktask(L, 1);
  if (t->state == AIO_TASK_FAILED || t->state == AIO_TASK_CANCELLED) {
    t->flags &= ~AIO_TF_UNSEEN;
    push_value(L, 1, t);
  }
  else lua_pushnil(L);
  return 1;
}


/* task:cancel([reason]) -> true if a request was made, false if done. */
static int task_cancel (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Task *t = aio__checktask(L, 1);
  lua_pushboolean(L, aio__task_cancel(L, loop, t, 2));
  return 1;
}


static int task_done (lua_State *L) {
  Task *t = aio__checktask(L, 1);
  lua_pushboolean(L, aio_task_done(t));
  return 1;
}


static int task_cancelled (lua_State *L) {
  Task *t = aio__checktask(L, 1);
  lua_pushboolean(L, t->state == AIO_TASK_CANCELLED);
  return 1;
}


/* task:on_done(fn): fn(task) is called from the loop once it is done. */
static int task_on_done (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Task *t = aio__checktask(L, 1);
  if (lua_type(L, 2) != LUA_TFUNCTION && !luaL_getmetafield(L, 2, "__call"))
    luaL_typeerror(L, 2, "function");
  lua_settop(L, 2);
  if (aio_task_done(t)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_callbacks);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, (lua_Integer)loop->ncallbacks * 2 + 1);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, (lua_Integer)loop->ncallbacks * 2 + 2);
    loop->ncallbacks++;
  }
  else {
    push_extra(L, 1, t, 1);
    if (lua_getfield(L, -1, "callbacks") != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, -3, "callbacks");
    }
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    t->flags |= AIO_TF_CALLBACKS;
  }
  lua_settop(L, 1);
  return 1;
}


/* task:traceback() -> where it is suspended now, where its error was
** raised, or nil. */
static int task_traceback (lua_State *L) {
  Task *t = aio__checktask(L, 1);
  lua_settop(L, 1);
  if (t->co != NULL && t->state != AIO_TASK_NEW) {
    Loop *loop = aio_upvalue_loop(L);
    if (t == loop->current && t->co == L) luaL_traceback(L, L, NULL, 1);
    else luaL_traceback(L, t->co, NULL, 0);
    return 1;
  }
  get_extra(L, 1, t, "traceback");
  return 1;
}


static const char *const state_names[] = {
  "pending", "ready", "running", "waiting", "done", "failed", "cancelled"
};


static int task_tostring (lua_State *L) {
  Task *t = aio__checktask(L, 1);
  push_name(L, 1, t);
  lua_pushfstring(L, "aio.Task(%s, %s)", lua_tostring(L, -1),
                  state_names[t->state]);
  return 1;
}


/* task.name, task.id, methods */
static int task_index (lua_State *L) {
  Task *t = aio__checktask(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k != NULL && lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(k, "name") == 0) { push_name(L, 1, t); return 1; }
    if (strcmp(k, "id") == 0) { lua_pushinteger(L, t->id); return 1; }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(2));
  return 1;
}


/* Only `name` can be assigned, and only a string. */
static int task_newindex (lua_State *L) {
  Task *t = aio__checktask(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "name") != 0)
    return luaL_error(L, "cannot set field '%s' of a task (only 'name')", k);
  luaL_checktype(L, 3, LUA_TSTRING);
  lua_settop(L, 3);
  set_extra(L, 1, t, "name");
  return 0;
}


/* Writes a description of task `idx` with its error and traceback to
** stderr (an error nobody retrieved). */
static int report_failure (lua_State *L) {
  Task *t = (Task *)lua_touserdata(L, 1);
  push_name(L, 1, t);                          /* name */
  push_value(L, 1, t);                         /* name err */
  luaL_tolstring(L, -1, NULL);                 /* name err msg */
  fprintf(stderr, "aio: task '%s' failed and nobody retrieved its error:\n"
          "  %s\n", lua_tostring(L, 2), lua_tostring(L, -1));
  if (get_extra(L, 1, t, "traceback") == LUA_TSTRING)
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
  if (get_extra(L, 1, t, "spawned_at") == LUA_TSTRING)
    fprintf(stderr, "  (task spawned at %s)\n", lua_tostring(L, -1));
  fflush(stderr);
  return 0;
}


static void report_task (lua_State *L, int idx) {
  Task *t = (Task *)lua_touserdata(L, idx);
  idx = lua_absindex(L, idx);
  if (!(t->flags & AIO_TF_UNSEEN)) return;
  t->flags &= ~AIO_TF_UNSEEN;
  lua_pushcfunction(L, report_failure);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}


/* Reports every failed task whose error nobody retrieved, then forgets
** them. */
void aio__report_unretrieved (lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_unseen);     /* set */
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    report_task(L, -1);
  }
  lua_pop(L, 1);
  aio__new_weak_table(L, &aio__key_unseen);
}


/* Debug mode: a task ran `secs` seconds without suspending. */
void aio__debug_slow (lua_State *L, Loop *loop, Task *t, double secs) {
  int top = lua_gettop(L);
  lua_checkstack(L, 8);
  aio__push_anchored(L, loop, t->anchor);
  if (!lua_isuserdata(L, -1)) { lua_settop(L, top); return; }
  push_name(L, -1, t);
  if (t->co) luaL_traceback(L, t->co, NULL, 0);
  else lua_pushliteral(L, "(finished)");
  fprintf(stderr, "aio: task '%s' ran %.3f s without suspending "
          "(it blocked the loop); it is now at:\n%s\n",
          lua_tostring(L, -2), secs, lua_tostring(L, -1));
  if (get_extra(L, top + 1, t, "spawned_at") == LUA_TSTRING)
    fprintf(stderr, "  (task spawned at %s)\n", lua_tostring(L, -1));
  fflush(stderr);
  lua_settop(L, top);
}


static int task_gc (lua_State *L) {
  report_task(L, 1);
  return 0;
}


/* aio.current() -> the running task or nil */
static int l_current (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  if (loop->current == NULL) lua_pushnil(L);
  else aio__push_anchored(L, loop, loop->current->anchor);
  return 1;
}


/* aio.tasks() -> array of the tasks not done */
static int l_tasks (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  uint32_t i;
  int n = 0;
  lua_createtable(L, (int)loop->ntasks, 0);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_anchors);  /* res anchors */
  for (i = 1; i <= loop->nslots; i++) {
    Task *t;
    lua_rawgeti(L, -1, i);
    t = aio__totask(L, -1);
    if (t != NULL && !aio_task_done(t)) lua_rawseti(L, -3, ++n);
    else lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}


static const luaL_Reg task_methods[] = {
  {"await", task_await},
  {"cancel", task_cancel},
  {"done", task_done},
  {"cancelled", task_cancelled},
  {"result", task_result},
  {"error", task_error},
  {"on_done", task_on_done},
  {"traceback", task_traceback},
  {NULL, NULL}
};


static const luaL_Reg task_funcs[] = {
  {"is_task", l_is_task},
  {"task_state", l_task_state},
  {"current", l_current},
  {"tasks", l_tasks},
  {NULL, NULL}
};


/* Registers the Task metatable and spawn/current/tasks into the table on
** top; the loop userdata is just below it. */
/* Fills the task metatable on top; `methods` is at index `methods`. */
static void task_metatable (lua_State *L, int loopidx, int methods) {
  lua_pushvalue(L, loopidx);
  lua_pushvalue(L, methods);
  lua_pushcclosure(L, task_index, 2);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, task_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, task_tostring);
  lua_setfield(L, -2, "__tostring");
  aio__markmeta(L, &task_mark);
}


void aio__open_task (lua_State *L) {
  int core = lua_gettop(L);
  int loopidx = core - 1;
  lua_newtable(L);                               /* methods */
  aio__setfuncs(L, loopidx, task_methods);
  luaL_newmetatable(L, TASK_FAILED_MT);          /* methods fmt */
  task_metatable(L, loopidx, core + 1);
  lua_pushcfunction(L, task_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, TASK_MT);                 /* methods mt */
  task_metatable(L, loopidx, core + 1);
  lua_pushvalue(L, loopidx);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, l_spawn, 2);
  lua_setfield(L, core, "spawn");
  lua_pop(L, 2);
  aio__setfuncs(L, loopidx, task_funcs);
}
