/*
** scope.c
** Cancel scopes: aio.timeout (a deadline for a function run in the current
** task) and aio.shield (protection from outer cancellation), and the rule
** that decides what a suspension of a cancelled task raises.
** See LICENSE
*/

#include <stdio.h>
#include <string.h>

#include "core.h"

#define SCOPE_MT "aio.Scope"

static int scope__gc (lua_State *L);

static const luaL_Reg scope_meta[] = {
  {"__gc", scope__gc},
  {NULL, NULL}
};

static const AioClass scope_class = {SCOPE_MT, NULL, scope_meta};

/* Key (address) under which a scope's cancelled error records the scope. */
static const char scope_key = 0;


/*
** The cancellation a checkpoint of `t` would raise. Walking outwards from
** the innermost scope, a shield stops everything further out; among the
** expired deadlines inside it the outermost wins, and a task:cancel()
** (outside every scope) wins over all of them. Returns 1 for the task's
** own cancellation, 2 with *src set for a deadline, 0 for nothing.
*/
static int pending (Task *t, Scope **src) {
  Scope *s, *cand = NULL;
  for (s = t->scope; s != NULL; s = s->parent) {
    if (s->shield) break;
    if (s->expired) cand = s;
  }
  if (s == NULL && (t->flags & AIO_TF_CANCEL)) return 1;
  *src = cand;
  return cand != NULL ? 2 : 0;
}


/* Formats a duration for messages ("0.5", "2", "1e+10"). */
static const char *fmt_seconds (double secs, char buf[32]) {
  snprintf(buf, 32, "%g", secs);
  return buf;
}


/* Would a suspension of `t` raise now? */
int aio__cancel_pending (Task *t) {
  Scope *src;
  return pending(t, &src);
}


/*
** Raises the cancellation of `t` if one is effective (see pending());
** returns 0 if the task is shielded from all that is pending.
*/
int aio__scope_raise (lua_State *L, Task *t) {
  Loop *loop = aio__loop(L);
  Scope *src = NULL;
  char buf[32];
  switch (pending(t, &src)) {
    case 1:
      aio__push_anchored(L, loop, t->anchor);
      aio__push_cancel_error(L, -1, t);
      return lua_error(L);
    case 2:
      src->delivered = 1;
      if (src->manual)
        aio__error_new(L, "cancelled", "cancelled: a task of its "
                       "TaskGroup failed");
      else
        aio__error_new(L, "cancelled", "cancelled by aio.timeout (%s s "
                       "deadline)", fmt_seconds(src->seconds, buf));
      lua_pushlightuserdata(L, src);
      lua_rawsetp(L, -2, &scope_key);
      return lua_error(L);
    default:
      return 0;
  }
}


/* A deadline passed (called from the timer heap; never runs Lua). */
void aio__scope_expire (Loop *loop, Scope *s) {
  Task *t = s->task;
  s->expired = 1;
  if (t == NULL || s->detached) return;
  t->nexpired++;
  aio__task_interrupt(loop, t);
}


/* Takes `s` out of its task's chain (wherever it is) and disarms it. */
static void scope_unlink (Loop *loop, Scope *s) {
  Task *t = s->task;
  aio__timer_cancel(loop, &s->timer);
  if (t != NULL && !s->detached) {
    if (t->scope == s) t->scope = s->parent;
    else {
      Scope *c = t->scope;
      while (c != NULL && c->parent != s) c = c->parent;
      if (c != NULL) c->parent = s->parent;
    }
    if (s->expired) t->nexpired--;
  }
  s->task = NULL;
  s->parent = NULL;
}


/* A finished task: forgets whatever scopes it still links to. */
void aio__scopes_clear (Loop *loop, Task *t) {
  while (t->scope != NULL) scope_unlink(loop, t->scope);
  t->nexpired = 0;
}


/*
** A coroutine (at stack index `coidx`) left scopes open on top of the
** task's chain by yielding a value (a generator inside aio.timeout):
** takes them off the chain and keeps them aside, keyed by the coroutine,
** until it is resumed again (aio__scopes_attach).
*/
void aio__scopes_detach (lua_State *L, Loop *loop, Task *t, int coidx) {
  lua_State *co = lua_tothread(L, coidx);
  Scope *top = t->scope, *s = top, *last = NULL;
  while (s != NULL && s->co == co) {
    s->detached = 1;
    if (s->expired) t->nexpired--;
    s->task = NULL;
    last = s;
    s = s->parent;
  }
  if (last == NULL) return;
  t->scope = s;
  last->parent = NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_detached);
  lua_pushvalue(L, coidx);
  lua_pushlightuserdata(L, top);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  loop->ndetached++;
}


/* Puts back the scopes a coroutine left open, before it is resumed. */
void aio__scopes_attach (lua_State *L, Loop *loop, Task *t, int coidx) {
  Scope *top, *s;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_detached);
  lua_pushvalue(L, coidx);
  if (lua_rawget(L, -2) != LUA_TLIGHTUSERDATA) { lua_pop(L, 2); return; }
  top = (Scope *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, coidx);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  loop->ndetached--;
  for (s = top; ; s = s->parent) {
    s->detached = 0;
    s->task = t;
    if (s->expired) t->nexpired++;
    if (s->parent == NULL) break;
  }
  s->parent = t->scope;
  t->scope = top;
}


/* Opens a scope for the running task in a new userdata left on top. */
static Scope *scope_push (lua_State *L, Loop *loop, const char *fname) {
  Task *t = loop->current;
  Scope *s;
  if (t == NULL)
    aio__usage(L, "%s must be called inside a task (a function run by "
               "aio.run or aio.spawn)", fname);
  s = (Scope *)lua_newuserdatauv(L, sizeof(Scope), 0);
  memset(s, 0, sizeof *s);
  s->timer.kind = AIO_TIMER_SCOPE;
  luaL_setmetatable(L, SCOPE_MT);
  s->co = L;
  s->task = t;
  s->parent = t->scope;
  t->scope = s;
  return s;
}


/* As scope_push, with the scope inserted at stack index 1. */
static Scope *scope_open (lua_State *L, Loop *loop, const char *fname) {
  Scope *s = scope_push(L, loop, fname);
  lua_insert(L, 1);
  return s;
}


/* Is the error on top the cancellation raised for scope `s`? */
static int is_own_cancel (lua_State *L, Scope *s) {
  int own;
  if (!aio__is_error(L, -1, "cancelled")) return 0;
  lua_rawgetp(L, -1, &scope_key);
  own = lua_touserdata(L, -1) == (void *)s;
  lua_pop(L, 1);
  return own;
}


/* Continuation of aio.timeout: stack is (scope, seconds, results...) or
** (scope, seconds, err). */
static int timeout_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  Scope *s = (Scope *)lua_touserdata(L, 1);
  (void)ctx;
  scope_unlink(loop, s);
  if (status == LUA_OK || status == LUA_YIELD) return lua_gettop(L) - 2;
  if (is_own_cancel(L, s)) {
    char buf[32];
    aio__error_new(L, "timeout", "timed out after %s s",
                   fmt_seconds(s->seconds, buf));
    aio__setfield_num(L, "seconds", s->seconds);
  }
  return lua_error(L);
}


/*
** aio.timeout(seconds, fn, ...) (suspends): runs fn(...) in the current
** task with a deadline; returns its results, or raises `timeout` if the
** deadline interrupted it. Other errors (an outer cancellation included)
** pass through untouched.
*/
static int l_timeout (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  double secs = aio__checkduration(L, 1);
  Scope *s;
  aio__checkcallable(L, 2);
  s = scope_open(L, loop, "aio.timeout");      /* scope secs fn args... */
  s->seconds = secs;
  aio__timer_arm(loop, &s->timer, aio__deadline(loop, secs));
  return timeout_k(L, lua_pcallk(L, lua_gettop(L) - 3, LUA_MULTRET, 0, 0,
                                 timeout_k), 0);
}


/* Continuation of aio.shield: stack is (scope, results...) or (scope, err). */
static int shield_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  Scope *s = (Scope *)lua_touserdata(L, 1);
  (void)ctx;
  scope_unlink(loop, s);
  if (status == LUA_OK || status == LUA_YIELD) return lua_gettop(L) - 1;
  return lua_error(L);
}


/*
** aio.shield(fn, ...) (suspends): runs fn(...) in the current task,
** protected from its cancellation and from enclosing deadlines; what
** arrives meanwhile is delivered at the first suspension after it.
*/
static int l_shield (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Scope *s;
  aio__checkcallable(L, 1);
  s = scope_open(L, loop, "aio.shield");       /* scope fn args... */
  s->shield = 1;
  return shield_k(L, lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0,
                                shield_k), 0);
}


/* __gc: a coroutine abandoned inside a scope; unlink it. */
static int scope__gc (lua_State *L) {
  Scope *s = (Scope *)aio__checkself(L);
  scope_unlink(aio__loop(L), s);
  return 0;
}


/*
** Scopes not bound to a C frame, for Lua objects that own a region of a
** task (TaskGroup): core.scope_open() -> scope, core.scope_cancel(scope),
** core.scope_close(scope), core.scope_owns(scope, err) -> boolean.
*/
static int l_scope_open (lua_State *L) {
  Scope *s = scope_push(L, aio_upvalue_loop(L), "aio.TaskGroup");
  s->manual = 1;
  return 1;
}


static int l_scope_cancel (lua_State *L) {
  Scope *s = (Scope *)aio__checkobj(L, 1, &scope_class);
  if (s->expired) return 0;
  if (s->task != NULL) aio__scope_expire(aio_upvalue_loop(L), s);
  else s->expired = 1;
  return 0;
}


static int l_scope_close (lua_State *L) {
  scope_unlink(aio_upvalue_loop(L), (Scope *)aio__checkobj(L, 1, &scope_class));
  return 0;
}


static int l_scope_owns (lua_State *L) {
  Scope *s = (Scope *)aio__checkobj(L, 1, &scope_class);
  lua_settop(L, 2);
  lua_pushboolean(L, is_own_cancel(L, s));
  return 1;
}


static const luaL_Reg scope_funcs[] = {
  {"timeout", l_timeout},
  {"shield", l_shield},
  {"scope_open", l_scope_open},
  {"scope_cancel", l_scope_cancel},
  {"scope_close", l_scope_close},
  {"scope_owns", l_scope_owns},
  {NULL, NULL}
};


void aio__open_scope (lua_State *L) {
  int core = lua_gettop(L);
  aio__class_open(L, core - 1, &scope_class);
  lua_pop(L, 1);
  aio__setfuncs(L, core - 1, scope_funcs);
}
