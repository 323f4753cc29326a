/*
** watch.c
** Watch: waits for any of a set of tasks and reports them in completion
** order, without touching them (awaiting would spread cancellation). The
** base of gather, settle, wait, as_completed, first and shield(task).
** See LICENSE
*/

#include <string.h>

#include "aio.h"

struct Watch;

typedef struct WatchNode {
  Waiter w;              /* in the watched task's awaiters while pending */
  struct Watch *watch;
  uint32_t index;        /* 1-based position in the watched array */
} WatchNode;

/*
** Lives in a userdata whose user value is the array of watched tasks
** (which keeps them alive). Nodes are unlinked when their task finishes,
** or all at once by close / __gc, so no task keeps a pointer into a dead
** watch.
*/
typedef struct Watch {
  Task *waiter;          /* the task suspended in next(), or NULL */
  uint32_t n;            /* tasks watched */
  uint32_t nready;       /* finished, queued in `ready`, not yet reported */
  uint32_t rhead;        /* first queued entry of the `ready` ring */
  uint32_t reported;     /* tasks next() has returned */
  int closed;
  uint32_t *ready;       /* ring of n indexes, after the nodes */
  WatchNode nodes[];
} Watch;


static Watch *checkwatch (lua_State *L) {
  Watch *w = (Watch *)aio__checkself(L);
  if (w->closed) aio__closed_error(L, "watch");
  return w;
}


static void queue_ready (Watch *w, uint32_t index) {
  w->ready[(w->rhead + w->nready) % w->n] = index;
  w->nready++;
}


/* A watched task finished (called by the task's completion; no Lua). */
static void watch_notify (Loop *loop, Waiter *waiter) {
  WatchNode *node = aio_container_of(waiter, WatchNode, w);
  Watch *w = node->watch;
  queue_ready(w, node->index);
  if (w->waiter != NULL) aio__task_wake(loop, w->waiter, AIO_WAKE_OK);
}


/* Pushes the next finished task and its index. */
static int report (lua_State *L, Watch *w) {
  uint32_t index = w->ready[w->rhead];
  w->rhead = (w->rhead + 1) % w->n;
  w->nready--;
  w->reported++;
  lua_getiuservalue(L, 1, 1);
  lua_rawgeti(L, -1, index);
  lua_pushinteger(L, index);
  return 2;
}


static int next_k (lua_State *L, int status, lua_KContext ctx) {
  Task *t = (Task *)ctx;
  Watch *w = (Watch *)lua_touserdata(L, 1);
  (void)status;
  w->waiter = NULL;
  if (t->wake == AIO_WAKE_TIMER) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  if (t->wake != AIO_WAKE_OK) aio__wake_raise(L, t);
  aio__checkpoint(L, t);
  return report(L, w);
}


/*
** watch:next([timeout]) (suspends) -> task, index of the next task to
** finish (in completion order; those done already first, in array order);
** nil when all were reported; nil, "timeout" if the time ran out.
*/
static int watch_next (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Watch *w = checkwatch(L);
  double secs = -1;
  Task *t;
  if (!lua_isnoneornil(L, 2)) secs = aio__checkduration(L, 2);
  if (w->nready > 0) return report(L, w);
  if (w->reported == w->n) return 0;
  if (w->waiter != NULL)
    return aio__usage(L, "another task already waits on this watch");
  t = aio__task_enter(L, loop, "watch:next");
  lua_settop(L, 1);
  if (secs >= 0) aio__timer_arm(loop, &t->timer, aio__deadline(loop, secs));
  w->waiter = t;
  return aio__suspend(L, t, (lua_KContext)t, next_k);
}


/* watch:pending() -> number of tasks not reported yet */
static int watch_pending (lua_State *L) {
  Watch *w = checkwatch(L);
  lua_pushinteger(L, w->n - w->reported);
  return 1;
}


/* watch:close() (also __close and __gc): stops watching. */
static int watch_close (lua_State *L) {
  Watch *w = (Watch *)aio__checkself(L);
  uint32_t i;
  if (w->closed) return 0;
  w->closed = 1;
  for (i = 0; i < w->n; i++) link_remove(&w->nodes[i].w.link);
  if (w->waiter != NULL)      /* closed by another task while it waits */
    aio__task_wake(aio__loop(L), w->waiter, AIO_WAKE_CLOSED);
  return 0;
}


/* core.watch(tasks) -> watch over an array of tasks */
static int l_watch (lua_State *L) {
  lua_Integer i, n;
  Watch *w;
  size_t size;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = luaL_len(L, 1);
  luaL_argcheck(L, n < 0x10000000, 1, "too many tasks");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (aio__totask(L, -1) == NULL)
      return luaL_argerror(L, 1, lua_pushfstring(L, "item %d is a %s, not "
                           "a task", (int)i, luaL_typename(L, -1)));
    lua_pop(L, 1);
  }
  size = sizeof(Watch) + (size_t)n * (sizeof(WatchNode) + sizeof(uint32_t));
  w = (Watch *)lua_newuserdatauv(L, size, 1);
  memset(w, 0, size);
  w->n = (uint32_t)n;
  w->ready = (uint32_t *)(void *)&w->nodes[n];
  lua_createtable(L, (int)n, 0);                       /* w tasks */
  for (i = 1; i <= n; i++) {
    Task *t;
    WatchNode *node = &w->nodes[i - 1];
    lua_rawgeti(L, 1, i);
    t = aio__totask(L, -1);
    lua_rawseti(L, -2, i);
    link_init(&node->w.link);
    node->w.notify = watch_notify;
    node->watch = w;
    node->index = (uint32_t)i;
    if (aio_task_done(t)) queue_ready(w, (uint32_t)i);
    else link_push(&t->awaiters, &node->w.link);
  }
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, "aio.Watch");
  return 1;
}


static const luaL_Reg watch_methods[] = {
  {"next", watch_next},
  {"pending", watch_pending},
  {"close", watch_close},
  {NULL, NULL}
};


static const luaL_Reg watch_meta[] = {
  {"__close", watch_close},
  {"__gc", watch_close},
  {NULL, NULL}
};


static const AioClass watch_class = {"aio.Watch", watch_methods, watch_meta};


static const luaL_Reg watch_funcs[] = {
  {"watch", l_watch},
  {NULL, NULL}
};


static void open_watch (lua_State *L) {
  int core = lua_gettop(L);
  aio__class_open(L, core - 1, &watch_class);
  lua_pop(L, 1);
  aio__setfuncs(L, core - 1, watch_funcs);
}


const AioModule aio__module_watch = {"watch", open_watch, NULL};
