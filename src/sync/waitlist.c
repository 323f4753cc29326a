/*
** waitlist.c
** WaitList: a FIFO of waiting tasks woken by notify(n) / notify_all();
** the building block of Event and Condition (lua/aio/sync.lua).
** See LICENSE
*/

#include <string.h>

#include "aio.h"

typedef struct WaitList {
  Link waiters;        /* tasks waiting in wait(), oldest first */
} WaitList;


#define checkwl(L) ((WaitList *)aio__checkself(L))


/* Wakes up to `n` waiters; returns how many. */
static lua_Integer notify (Loop *loop, WaitList *wl, lua_Integer n) {
  lua_Integer woken = 0;
  while (woken < n && !link_empty(&wl->waiters)) {
    Task *t = aio_container_of(wl->waiters.next, Task, wait.link);
    aio__task_wake(loop, t, AIO_WAKE_OK);
    woken++;
  }
  return woken;
}


/* ctx: the task; its notification is passed on if it was cancelled at the
** instant it was notified and wait() was asked to (pass_on, argument 2). */
static int wait_k (lua_State *L, int status, lua_KContext ctx) {
  Task *t = (Task *)ctx;
  (void)status;
  if (t->wake != AIO_WAKE_OK) aio__wake_raise(L, t);
  if (aio__cancel_pending(t)) {
    if (lua_toboolean(L, 2))
      notify(aio_upvalue_loop(L), (WaitList *)lua_touserdata(L, 1), 1);
    aio__checkpoint(L, t);
  }
  return 0;
}


/* wl:wait([pass_on]) (suspends until notified) */
static int wl_wait (lua_State *L) {
  WaitList *wl = checkwl(L);
  Task *t = aio__task_enter(L, aio_upvalue_loop(L), "wait");
  lua_settop(L, 2);
  link_push(&wl->waiters, &t->wait.link);
  return aio__suspend(L, t, (lua_KContext)t, wait_k);
}


/* wl:notify([n=1]) -> number woken */
static int wl_notify (lua_State *L) {
  WaitList *wl = checkwl(L);
  lua_Integer n = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, n >= 0, 2, "must not be negative");
  lua_pushinteger(L, notify(aio_upvalue_loop(L), wl, n));
  return 1;
}


/* wl:notify_all() -> number woken */
static int wl_notify_all (lua_State *L) {
  WaitList *wl = checkwl(L);
  lua_pushinteger(L, notify(aio_upvalue_loop(L), wl, LUA_MAXINTEGER));
  return 1;
}


/* wl:waiting() -> number of waiting tasks */
static int wl_waiting (lua_State *L) {
  WaitList *wl = checkwl(L);
  lua_pushinteger(L, (lua_Integer)link_count(&wl->waiters));
  return 1;
}


/* core.WaitList() */
static int l_waitlist (lua_State *L) {
  WaitList *wl = (WaitList *)lua_newuserdatauv(L, sizeof(WaitList), 0);
  link_init(&wl->waiters);
  luaL_setmetatable(L, "aio.WaitList");
  return 1;
}


static const luaL_Reg wl_methods[] = {
  {"wait", wl_wait},
  {"notify", wl_notify},
  {"notify_all", wl_notify_all},
  {"waiting", wl_waiting},
  {NULL, NULL}
};


static const luaL_Reg wl_funcs[] = {
  {"WaitList", l_waitlist},
  {NULL, NULL}
};


static const AioClass wl_class = {"aio.WaitList", wl_methods, NULL};


static void open_waitlist (lua_State *L) {
  int core = lua_gettop(L);
  aio__class_open(L, core - 1, &wl_class);
  lua_pop(L, 1);
  aio__setfuncs(L, core - 1, wl_funcs);
}


const AioModule aio__module_waitlist = {"waitlist", open_waitlist, NULL};
