/*
** queue.c
** Queue, LifoQueue and PriorityQueue: a buffer of Lua values with FIFO
** lists of waiting getters, putters and joiners, and direct hand-off.
** See LICENSE
*/

#include <stdlib.h>
#include <string.h>

#include "aio.h"

typedef enum QOrder { Q_FIFO, Q_LIFO, Q_PRIORITY } QOrder;

/* one metatable for the three orders; the names are for __tostring */
#define QUEUE_MT "aio.Queue"

static const char *const queue_names[] = {
  "aio.Queue", "aio.LifoQueue", "aio.PriorityQueue"
};

/* user values of the queue userdata */
#define UV_ITEMS    1   /* the buffer: a table used as ring, stack or heap */
#define UV_PENDING  2   /* values of waiting putters, keyed by their Task* */
#define UV_LESS     3   /* PriorityQueue: the `less` function, or nil */

/*
** Invariants: getters wait only while the buffer is empty, so put hands
** its value straight to the first getter; putters wait only while the
** buffer is full, so get refills the buffer from the first putter. A value
** handed to a getter that is cancelled before it runs goes to the next
** getter or back to the front of the buffer (which may then hold one
** item more than maxsize until it is got).
*/
typedef struct Queue {
  Link getters;          /* tasks waiting in get, oldest first */
  Link putters;          /* tasks waiting in put */
  Link joiners;          /* tasks waiting in join */
  lua_Integer maxsize;   /* 0: unbounded */
  lua_Integer puts;      /* values accepted */
  lua_Integer gots;      /* values returned by get */
  lua_Integer dones;     /* task_done calls */
  uint32_t head;         /* FIFO: ring index of the first item */
  uint32_t count;        /* items in the buffer */
  uint32_t cap;          /* FIFO: ring capacity (a power of two) */
  int order;             /* QOrder */
  int closed;            /* close() was called */
  int64_t seq;           /* PriorityQueue: next insertion number */
  int64_t front_seq;     /* PriorityQueue: numbers for given-back items */
  int64_t *seqs;         /* PriorityQueue: insertion numbers, heap order */
  uint32_t seqcap;
} Queue;


/* Argument 1 of a method (its metatable is the method's upvalue 2). */
static Queue *checkqueue (lua_State *L) {
  return (Queue *)aio__checkself(L);
}


/* ---------------------------------------------------------------------
** The buffer. Functions take the stack index `ti` of the items table.
** ------------------------------------------------------------------- */

/* FIFO: doubles the ring, laying the items out from slot 1. */
static void ring_grow (lua_State *L, Queue *q, int ti) {
  uint32_t i, cap = q->cap * 2;
  lua_createtable(L, (int)cap, 0);
  for (i = 0; i < q->count; i++) {
    lua_rawgeti(L, ti, ((q->head + i) & (q->cap - 1)) + 1);
    lua_rawseti(L, -2, i + 1);
  }
  lua_replace(L, ti);
  lua_pushvalue(L, ti);
  lua_setiuservalue(L, 1, UV_ITEMS);
  q->cap = cap;
  q->head = 0;
}


/* PriorityQueue: is the value at stack index `a` before the one at `b`
** by the user's `less` (or <)? Either may raise. */
static int value_less (lua_State *L, int a, int b) {
  int lt;
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  if (lua_getiuservalue(L, 1, UV_LESS) == LUA_TNIL) {
    lua_pop(L, 1);
    return lua_compare(L, a, b, LUA_OPLT);
  }
  lua_pushvalue(L, a);
  lua_pushvalue(L, b);
  lua_call(L, 2, 1);
  lt = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return lt;
}


/* Is the item in heap slot a before the one in slot b? Equal priorities
** keep insertion order. */
static int heap_before (lua_State *L, Queue *q, int ti, uint32_t a,
                        uint32_t b) {
  int before;
  lua_rawgeti(L, ti, a + 1);
  lua_rawgeti(L, ti, b + 1);
  if (value_less(L, -2, -1)) before = 1;
  else if (value_less(L, -1, -2)) before = 0;
  else before = q->seqs[a] < q->seqs[b];
  lua_pop(L, 2);
  return before;
}


static void heap_swap (lua_State *L, Queue *q, int ti, uint32_t a,
                       uint32_t b) {
  int64_t s = q->seqs[a];
  q->seqs[a] = q->seqs[b];
  q->seqs[b] = s;
  lua_rawgeti(L, ti, a + 1);
  lua_rawgeti(L, ti, b + 1);
  lua_rawseti(L, ti, a + 1);
  lua_rawseti(L, ti, b + 1);
}


static void heap_up (lua_State *L, Queue *q, int ti, uint32_t i) {
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (!heap_before(L, q, ti, i, p)) break;
    heap_swap(L, q, ti, i, p);
    i = p;
  }
}


static void heap_down (lua_State *L, Queue *q, int ti, uint32_t i) {
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= q->count) break;
    if (c + 1 < q->count && heap_before(L, q, ti, c + 1, c)) c++;
    if (!heap_before(L, q, ti, c, i)) break;
    heap_swap(L, q, ti, i, c);
    i = c;
  }
}


/* Adds the value on top (popped) to the buffer; `front` puts it where the
** next get finds it first (a value given back). */
static void buf_push (lua_State *L, Queue *q, int ti, int front) {
  switch (q->order) {
    case Q_FIFO:
      if (q->count == q->cap) ring_grow(L, q, ti);
      if (front) {
        q->head = (q->head - 1) & (q->cap - 1);
        lua_rawseti(L, ti, q->head + 1);
      }
      else lua_rawseti(L, ti, ((q->head + q->count) & (q->cap - 1)) + 1);
      q->count++;
      break;
    case Q_LIFO:
      lua_rawseti(L, ti, q->count + 1);
      q->count++;
      break;
    default:
      if (q->count == q->seqcap) {
        uint32_t cap = q->seqcap ? q->seqcap * 2 : 16;
        int64_t *s = realloc(q->seqs, cap * sizeof *s);
        if (s == NULL) aio__nomem(L, "growing a queue");
        q->seqs = s;
        q->seqcap = cap;
      }
      q->seqs[q->count] = front ? q->front_seq-- : q->seq++;
      lua_rawseti(L, ti, q->count + 1);
      q->count++;
      heap_up(L, q, ti, q->count - 1);
      break;
  }
}


/* Removes the next item from the (non-empty) buffer and pushes it. */
static void buf_pop (lua_State *L, Queue *q, int ti) {
  switch (q->order) {
    case Q_FIFO:
      lua_rawgeti(L, ti, q->head + 1);
      lua_pushnil(L);
      lua_rawseti(L, ti, q->head + 1);
      q->head = (q->head + 1) & (q->cap - 1);
      q->count--;
      break;
    case Q_LIFO:
      lua_rawgeti(L, ti, q->count);
      lua_pushnil(L);
      lua_rawseti(L, ti, q->count);
      q->count--;
      break;
    default:
      lua_rawgeti(L, ti, 1);
      q->count--;
      if (q->count > 0) {
        lua_rawgeti(L, ti, q->count + 1);
        lua_rawseti(L, ti, 1);
        q->seqs[0] = q->seqs[q->count];
      }
      lua_pushnil(L);
      lua_rawseti(L, ti, q->count + 1);
      if (q->count > 1) heap_down(L, q, ti, 0);
      break;
  }
}


/* ---------------------------------------------------------------------
** Hand-offs
** ------------------------------------------------------------------- */

static Task *first_waiter (Link *list) {
  return aio_container_of(list->next, Task, wait.link);
}


/* Hands the value on top of L (popped) to the first waiting getter. */
static void hand_to_getter (lua_State *L, Loop *loop, Queue *q) {
  Task *g = first_waiter(&q->getters);
  lua_checkstack(g->co, 2);
  lua_xmove(L, g->co, 1);
  g->nargs = 1;
  aio__task_wake(loop, g, AIO_WAKE_OK);
}


/* After a get emptied a slot: moves the first waiting putter's value into
** the buffer and lets the putter go on. */
static void refill (lua_State *L, Loop *loop, Queue *q, int ti) {
  Task *p;
  if (link_empty(&q->putters)) return;
  p = first_waiter(&q->putters);
  lua_getiuservalue(L, 1, UV_PENDING);             /* pending */
  lua_pushlightuserdata(L, p);
  lua_rawget(L, -2);                               /* pending v */
  lua_pushlightuserdata(L, p);
  lua_pushnil(L);
  lua_rawset(L, -4);
  lua_remove(L, -2);                               /* v */
  buf_push(L, q, ti, 0);
  q->puts++;
  aio__task_wake(loop, p, AIO_WAKE_OK);
}


/* A value got by a task cancelled before it ran (on top, popped): to the
** next getter, or back to the front of the buffer. */
static void give_back (lua_State *L, Loop *loop, Queue *q) {
  if (!link_empty(&q->getters)) hand_to_getter(L, loop, q);
  else {
    lua_getiuservalue(L, 1, UV_ITEMS);
    lua_insert(L, -2);
    buf_push(L, q, lua_gettop(L) - 1, 1);
    lua_pop(L, 1);
  }
}


/* ---------------------------------------------------------------------
** put
** ------------------------------------------------------------------- */

static int checkvalue (lua_State *L) {
  if (lua_isnoneornil(L, 2))
    luaL_argerror(L, 2, "nil cannot be put in a queue");
  lua_settop(L, 2);
  return 2;
}


static int put_closed (lua_State *L) {
  return aio__error(L, "closed", "put() on a closed queue");
}


/* Accepts the value at index 2 without waiting if possible; returns 0 if
** the queue is full. */
static int try_put (lua_State *L, Loop *loop, Queue *q) {
  if (!link_empty(&q->getters)) {
    lua_pushvalue(L, 2);
    hand_to_getter(L, loop, q);
  }
  else if (q->maxsize == 0 || q->count < (uint64_t)q->maxsize) {
    lua_getiuservalue(L, 1, UV_ITEMS);
    lua_pushvalue(L, 2);
    buf_push(L, q, 3, 0);
    lua_settop(L, 2);
  }
  else return 0;
  q->puts++;
  return 1;
}


static int put_k (lua_State *L, int status, lua_KContext ctx) {
  Task *t = (Task *)ctx;
  (void)status;
  if (t->wake == AIO_WAKE_OK) return 0;   /* accepted: the put happened */
  lua_getiuservalue(L, 1, UV_PENDING);
  lua_pushlightuserdata(L, t);
  lua_pushnil(L);
  lua_rawset(L, -3);
  if (t->wake == AIO_WAKE_CLOSED) return put_closed(L);
  return aio__wake_raise(L, t);
}


/* q:put(v) (suspends while full) */
static int queue_put (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Queue *q = checkqueue(L);
  Task *t;
  checkvalue(L);
  if (q->closed) return put_closed(L);
  if (try_put(L, loop, q)) return 0;
  t = aio__task_enter(L, loop, "queue:put");
  lua_getiuservalue(L, 1, UV_PENDING);
  lua_pushlightuserdata(L, t);
  lua_pushvalue(L, 2);
  lua_rawset(L, -3);
  lua_settop(L, 2);
  link_push(&q->putters, &t->wait.link);
  return aio__suspend(L, t, (lua_KContext)t, put_k);
}


/* q:put_nowait(v); raises queue_full */
static int queue_put_nowait (lua_State *L) {
  Queue *q = checkqueue(L);
  checkvalue(L);
  if (q->closed) return put_closed(L);
  if (!try_put(L, aio_upvalue_loop(L), q))
    return aio__error(L, "queue_full", "the queue is full (maxsize %I)",
                      q->maxsize);
  return 0;
}


/* ---------------------------------------------------------------------
** get
** ------------------------------------------------------------------- */

/* Takes the next buffered value (pushes it) and refills from putters. */
static void take (lua_State *L, Loop *loop, Queue *q) {
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, UV_ITEMS);               /* items */
  buf_pop(L, q, 2);                                /* items v */
  refill(L, loop, q, 2);
  q->gots++;
}


static int get_k (lua_State *L, int status, lua_KContext ctx) {
  Task *t = (Task *)ctx;
  (void)status;
  if (t->wake != AIO_WAKE_OK) aio__wake_raise(L, t);   /* took nothing */
  if (lua_isnil(L, -1)) return 1;                      /* closed */
  if (aio__cancel_pending(t)) {
    Queue *q = (Queue *)lua_touserdata(L, 1);
    lua_pushvalue(L, -1);
    give_back(L, aio_upvalue_loop(L), q);
    aio__checkpoint(L, t);
  }
  ((Queue *)lua_touserdata(L, 1))->gots++;
  return 1;
}


/* q:get() (suspends while empty) -> value, or nil once closed and empty */
static int queue_get (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Queue *q = checkqueue(L);
  Task *t;
  if (q->count > 0) {
    take(L, loop, q);
    return 1;
  }
  if (q->closed) {
    lua_pushnil(L);
    return 1;
  }
  t = aio__task_enter(L, loop, "queue:get");
  lua_settop(L, 1);
  link_push(&q->getters, &t->wait.link);
  return aio__suspend(L, t, (lua_KContext)t, get_k);
}


/* q:get_nowait() -> value (nil once closed and empty); raises queue_empty */
static int queue_get_nowait (lua_State *L) {
  Queue *q = checkqueue(L);
  if (q->count > 0) {
    take(L, aio_upvalue_loop(L), q);
    return 1;
  }
  if (q->closed) {
    lua_pushnil(L);
    return 1;
  }
  return aio__error(L, "queue_empty", "the queue is empty");
}


/* for item in q:items() do ... end: gets until closed and drained */
static int queue_items (lua_State *L) {
  checkqueue(L);
  lua_getfield(L, 1, "get");                       /* the get method */
  lua_pushvalue(L, 1);
  return 2;
}


/* ---------------------------------------------------------------------
** task_done / join / close
** ------------------------------------------------------------------- */

static int queue_task_done (lua_State *L) {
  Queue *q = checkqueue(L);
  if (q->dones >= q->gots)
    return aio__usage(L, "task_done() called more times than items were "
                      "got");
  q->dones++;
  if (q->puts == q->dones) aio__notify_all(aio_upvalue_loop(L), &q->joiners);
  return 0;
}


static int join_k (lua_State *L, int status, lua_KContext ctx) {
  Task *t = (Task *)ctx;
  (void)status;
  if (t->wake != AIO_WAKE_OK) aio__wake_raise(L, t);
  return 0;
}


/* q:join() (suspends until every value put has been marked done) */
static int queue_join (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Queue *q = checkqueue(L);
  Task *t;
  if (q->puts == q->dones) return 0;
  t = aio__task_enter(L, loop, "queue:join");
  lua_settop(L, 1);
  link_push(&q->joiners, &t->wait.link);
  return aio__suspend(L, t, (lua_KContext)t, join_k);
}


/* q:close(): put raises `closed` from now on; waiting getters get nil,
** waiting putters raise `closed`; buffered values can still be got. */
static int queue_close (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  Queue *q = checkqueue(L);
  q->closed = 1;
  while (!link_empty(&q->getters)) {
    lua_pushnil(L);
    hand_to_getter(L, loop, q);
  }
  while (!link_empty(&q->putters))
    aio__task_wake(loop, first_waiter(&q->putters), AIO_WAKE_CLOSED);
  return 0;
}


static int queue_size (lua_State *L) {
  lua_pushinteger(L, checkqueue(L)->count);
  return 1;
}


static int queue_empty (lua_State *L) {
  lua_pushboolean(L, checkqueue(L)->count == 0);
  return 1;
}


static int queue_full (lua_State *L) {
  Queue *q = checkqueue(L);
  lua_pushboolean(L, q->maxsize > 0 && q->count >= (uint64_t)q->maxsize);
  return 1;
}


static int queue_closed (lua_State *L) {
  lua_pushboolean(L, checkqueue(L)->closed);
  return 1;
}


static int queue_tostring (lua_State *L) {
  Queue *q = checkqueue(L);
  lua_pushfstring(L, "%s(%d items, maxsize %I%s)", queue_names[q->order],
                  (int)q->count, q->maxsize, q->closed ? ", closed" : "");
  return 1;
}


static int queue__gc (lua_State *L) {
  Queue *q = checkqueue(L);
  free(q->seqs);
  q->seqs = NULL;
  q->seqcap = 0;
  return 0;
}


/* q.maxsize and the methods (upvalue 3). */
static int queue__index (lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2),
                                               "maxsize") == 0) {
    lua_pushinteger(L, checkqueue(L)->maxsize);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(3));
  return 1;
}


/* ---------------------------------------------------------------------
** Constructors
** ------------------------------------------------------------------- */

static lua_Integer check_maxsize (lua_State *L, int arg) {
  lua_Integer n;
  if (lua_isnoneornil(L, arg)) return 0;
  if (!lua_isinteger(L, arg)) {
    if (lua_type(L, arg) != LUA_TNUMBER) luaL_typeerror(L, arg, "integer");
    luaL_argerror(L, arg, "maxsize must be an integer");
  }
  n = lua_tointeger(L, arg);
  luaL_argcheck(L, n >= 0, arg, "maxsize must not be negative");
  luaL_argcheck(L, n < 0x40000000, arg, "maxsize too large");
  return n;
}


static int queue_new (lua_State *L, int order, lua_Integer maxsize) {
  Queue *q;
  uint32_t cap = 16;
  if (order == Q_FIFO) while (cap < (uint64_t)maxsize) cap *= 2;
  q = (Queue *)lua_newuserdatauv(L, sizeof(Queue), 3);
  memset(q, 0, sizeof *q);
  link_init(&q->getters);
  link_init(&q->putters);
  link_init(&q->joiners);
  q->maxsize = maxsize;
  q->order = order;
  q->cap = cap;
  luaL_setmetatable(L, QUEUE_MT);
  lua_createtable(L, order == Q_FIFO ? (int)cap : 0, 0);
  lua_setiuservalue(L, -2, UV_ITEMS);
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_PENDING);
  return 1;
}


/* aio.Queue([maxsize]) */
static int l_queue (lua_State *L) {
  return queue_new(L, Q_FIFO, check_maxsize(L, 1));
}


/* aio.LifoQueue([maxsize]) */
static int l_lifo (lua_State *L) {
  return queue_new(L, Q_LIFO, check_maxsize(L, 1));
}


/* aio.PriorityQueue([maxsize], [less]): smallest first */
static int l_priority (lua_State *L) {
  lua_Integer maxsize = check_maxsize(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  queue_new(L, Q_PRIORITY, maxsize);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, UV_LESS);
  return 1;
}


static const luaL_Reg queue_methods[] = {
  {"put", queue_put},
  {"put_nowait", queue_put_nowait},
  {"get", queue_get},
  {"get_nowait", queue_get_nowait},
  {"items", queue_items},
  {"task_done", queue_task_done},
  {"join", queue_join},
  {"close", queue_close},
  {"size", queue_size},
  {"empty", queue_empty},
  {"full", queue_full},
  {"closed", queue_closed},
  {NULL, NULL}
};


static const luaL_Reg queue_funcs[] = {
  {"Queue", l_queue},
  {"LifoQueue", l_lifo},
  {"PriorityQueue", l_priority},
  {NULL, NULL}
};


static const luaL_Reg queue_meta[] = {
  {"__len", queue_size},
  {"__tostring", queue_tostring},
  {"__gc", queue__gc},
  {"__index", queue__index},
  {NULL, NULL}
};


static const AioClass queue_class = {QUEUE_MT, queue_methods, queue_meta};


static void open_queue (lua_State *L) {
  int core = lua_gettop(L);
  aio__class_open(L, core - 1, &queue_class);
  lua_pop(L, 1);
  aio__setfuncs(L, core - 1, queue_funcs);
}


const AioModule aio__module_queue = {"queue", open_queue, NULL};
