/*
** task_object.c
** The Task class: awaiting and results, the methods, names and
** tracebacks, and the report of errors nobody retrieved.
** See LICENSE
*/

#include <stdio.h>
#include <string.h>

#include "core.h"

Task *aio__totask (lua_State *L, int idx) {
  return (Task *)aio__toobj(L, idx, &aio__task_class);
}


Task *aio__checktask (lua_State *L, int idx) {
  return (Task *)aio__checkobj(L, idx, &aio__task_class);
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
** Results
** ------------------------------------------------------------------- */

/* Pushes the results of the finished task at `idx`, or raises its error
** (marking it retrieved). Returns the number of results. */
static int push_results (lua_State *L, int idx, Task *t) {
  if (t->state == AIO_TASK_OK) {
    if (t->flags & AIO_TF_NORESULT) return 0;
    aio__task_push_value(L, idx, t);
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
  aio__task_push_value(L, idx, t);
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
  Task *t = (Task *)aio__checkself(L);
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
  Task *t = (Task *)aio__checkself(L);
  lua_settop(L, 1);
  if (!aio_task_done(t))
    aio__usage(L, "task:result(): the task is not done yet");
  return push_results(L, 1, t);
}


/* task:error() -> the error value, or nil. */
static int task_error (lua_State *L) {
  Task *t = (Task *)aio__checkself(L);
  if (t->state == AIO_TASK_FAILED || t->state == AIO_TASK_CANCELLED) {
    t->flags &= ~AIO_TF_UNSEEN;
    aio__task_push_value(L, 1, t);
  }
  else lua_pushnil(L);
  return 1;
}


/* task:cancel([reason]) -> true if a request was made, false if done. */
static int task_cancel (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Task *t = (Task *)aio__checkself(L);
  lua_pushboolean(L, aio__task_cancel(L, loop, t, 2));
  return 1;
}


static int task_done (lua_State *L) {
  Task *t = (Task *)aio__checkself(L);
  lua_pushboolean(L, aio_task_done(t));
  return 1;
}


static int task_cancelled (lua_State *L) {
  Task *t = (Task *)aio__checkself(L);
  lua_pushboolean(L, t->state == AIO_TASK_CANCELLED);
  return 1;
}


/* task:on_done(fn): fn(task) is called from the loop once it is done. */
static int task_on_done (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Task *t = (Task *)aio__checkself(L);
  aio__checkcallable(L, 2);
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
    aio__task_push_extra(L, 1, t, 1);
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
  Task *t = (Task *)aio__checkself(L);
  lua_settop(L, 1);
  if (t->co != NULL && t->state != AIO_TASK_NEW) {
    Loop *loop = aio_upvalue_loop(L);
    if (t == loop->current && t->co == L) luaL_traceback(L, L, NULL, 1);
    else luaL_traceback(L, t->co, NULL, 0);
    return 1;
  }
  aio__task_get_extra(L, 1, t, "traceback");
  return 1;
}


static const char *const state_names[] = {
  "pending", "ready", "running", "waiting", "done", "failed", "cancelled"
};


static int task__tostring (lua_State *L) {
  Task *t = (Task *)aio__checkself(L);
  aio__task_push_name(L, 1, t);
  lua_pushfstring(L, "aio.Task(%s, %s)", lua_tostring(L, -1),
                  state_names[t->state]);
  return 1;
}


/* task.name, task.id, methods */
static int task__index (lua_State *L) {
  Task *t = (Task *)aio__checkself(L);
  const char *k = lua_tostring(L, 2);
  if (k != NULL && lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(k, "name") == 0) { aio__task_push_name(L, 1, t); return 1; }
    if (strcmp(k, "id") == 0) { lua_pushinteger(L, t->id); return 1; }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(3));
  return 1;
}


/* Only `name` can be assigned, and only a string. */
static int task__newindex (lua_State *L) {
  Task *t = (Task *)aio__checkself(L);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "name") != 0)
    return aio__usage(L, "cannot set field '%s' of a task (only 'name')", k);
  luaL_checktype(L, 3, LUA_TSTRING);
  lua_settop(L, 3);
  aio__task_set_extra(L, 1, t, "name");
  return 0;
}


/* Writes a description of task `idx` with its error and traceback to
** stderr (an error nobody retrieved). */
static int report_failure (lua_State *L) {
  Task *t = (Task *)lua_touserdata(L, 1);
  aio__task_push_name(L, 1, t);                          /* name */
  aio__task_push_value(L, 1, t);                         /* name err */
  luaL_tolstring(L, -1, NULL);                 /* name err msg */
  fprintf(stderr, "aio: task '%s' failed and nobody retrieved its error:\n"
          "  %s\n", lua_tostring(L, 2), lua_tostring(L, -1));
  if (aio__task_get_extra(L, 1, t, "traceback") == LUA_TSTRING)
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
  if (aio__task_get_extra(L, 1, t, "spawned_at") == LUA_TSTRING)
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


/* core.unretrieved() -> the failed tasks whose errors nobody retrieved
** (kept by a run with core.run_test's `keep`), and forgets them. */
static int l_unretrieved (lua_State *L) {
  int n = 0;
  lua_newtable(L);                                         /* res */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_unseen);     /* res set */
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    Task *t = aio__totask(L, -2);
    lua_pop(L, 1);
    if (t != NULL && (t->flags & AIO_TF_UNSEEN)) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, -4, ++n);
    }
  }
  lua_pop(L, 1);
  aio__new_weak_table(L, &aio__key_unseen);
  return 1;
}


/* core.report_unretrieved(): reports them on stderr, as aio.run does. */
static int l_report_unretrieved (lua_State *L) {
  aio__report_unretrieved(L);
  return 0;
}


/* A description of the error at `idx` that runs no metamethod (this
** runs in the scheduler, unprotected): a string, an aio error's
** "kind: message", or the type's name. */
static const char *describe (lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) return lua_tostring(L, idx);
  if (lua_type(L, idx) == LUA_TTABLE) {
    int k, m;
    lua_pushliteral(L, "kind");
    k = lua_rawget(L, idx);
    lua_pushliteral(L, "message");
    m = lua_rawget(L, idx);
    if (k == LUA_TSTRING && m == LUA_TSTRING)
      return lua_pushfstring(L, "%s: %s", lua_tostring(L, -2),
                             lua_tostring(L, -1));
  }
  return luaL_typename(L, idx);
}


/*
** Debug mode: task `t` (its userdata on top of L) ran `secs` seconds
** without suspending; reported whatever ended the step (a suspension, its
** return, its error).
*/
void aio__debug_slow (lua_State *L, Task *t, double secs) {
  int top = lua_gettop(L);
  const char *name, *end, *where = "";
  lua_checkstack(L, 8);
  aio__task_push_name(L, top, t);
  name = lua_tostring(L, -1);
  if (t->co != NULL) {
    end = "it is now at:\n";
    luaL_traceback(L, t->co, NULL, 0);
    where = lua_tostring(L, -1);
  }
  else if (t->state == AIO_TASK_OK) end = "then it returned";
  else {
    aio__task_push_value(L, top, t);
    end = lua_pushfstring(L, "then it %s: %s", t->state == AIO_TASK_FAILED ?
                          "failed" : "was cancelled", describe(L, -1));
    if (aio__task_get_extra(L, top, t, "traceback") == LUA_TSTRING)
      where = lua_pushfstring(L, "\n%s", lua_tostring(L, -1));
  }
  fprintf(stderr, "aio: task '%s' ran %.3f s without suspending (it "
          "blocked the loop); %s%s\n", name, secs, end, where);
  if (aio__task_get_extra(L, top, t, "spawned_at") == LUA_TSTRING)
    fprintf(stderr, "  (task spawned at %s)\n", lua_tostring(L, -1));
  fflush(stderr);
  lua_settop(L, top);
}


static int task__gc (lua_State *L) {
  aio__checkself(L);
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
  aio__push_anchors(L, loop);  /* res anchors */
  for (i = 1; i <= loop->anchors.nslots; i++) {
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


static const luaL_Reg task_meta[] = {
  {"__index", task__index},
  {"__newindex", task__newindex},
  {"__tostring", task__tostring},
  {NULL, NULL}
};


/* A failed task's twin metatable adds the report of an error nobody
** retrieved when the task is collected. */
static const luaL_Reg failed_meta[] = {
  {"__gc", task__gc},
  {NULL, NULL}
};


const AioClass aio__task_class = {"aio.Task", task_methods, task_meta};


/* A task that failed gets the twin metatable (the task is at `idx`). */
void aio__task_mark_failed (lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  luaL_getmetatable(L, "aio.Task.failed");
  lua_setmetatable(L, idx);
}


static const luaL_Reg task_funcs[] = {
  {"is_task", l_is_task},
  {"task_state", l_task_state},
  {"current", l_current},
  {"tasks", l_tasks},
  {"unretrieved", l_unretrieved},
  {"report_unretrieved", l_report_unretrieved},
  {NULL, NULL}
};


/* The Task class (and its twin) and current/tasks/is_task/task_state. */
void aio__open_task_object (lua_State *L) {
  int core = lua_gettop(L);
  aio__class_open(L, core - 1, &aio__task_class);
  aio__class_twin(L, core - 1, &aio__task_class, "aio.Task.failed",
                  failed_meta);
  lua_pop(L, 2);
  aio__setfuncs(L, core - 1, task_funcs);
}
