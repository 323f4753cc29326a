/*
** thread.c
** aio.to_thread: a Lua function run in its own Lua state on the libuv
** thread pool, with copied arguments and results and a limit on how many
** run at once.
** See LICENSE
*/

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "aio.h"

#define POOL_MAX 16         /* idle worker states kept for reuse */
#define SPIN_NS 40000       /* how long an idle loop watches for the end */
#define CACHE_MAX 256       /* loaded functions a worker state keeps */

/* Registry keys: the ThreadCtl of this state; function -> dump (weak);
** in worker states, dump -> loaded function and its entry count. */
static const char ctl_key = 0;
static const char dumps_key = 0;
static const char cache_key = 0;
static const char cache_count_key = 0;

/* Worker states, shared by the whole process (the pool is). */
static uv_once_t pool_once = UV_ONCE_INIT;
static uv_mutex_t pool_mutex;
static lua_State *pool[POOL_MAX];
static int npool;

/*
** The limit of one loop: at most `limit` calls are handed to the libuv
** pool at once, so its other threads stay free for files and DNS; the
** other calls wait in `queue`, in order.
*/
typedef struct ThreadCtl {
  Link queue;              /* tasks waiting for a free slot */
  unsigned running;        /* calls handed to libuv, not completed */
  unsigned limit;
  unsigned ncpu;           /* CPUs available (spin only with 2 or more) */
} ThreadCtl;

enum { OUT_OK, OUT_ERROR, OUT_BADRESULT, OUT_NOSTATE };

/*
** A call. User value 1: the dumped function (code points into it). The
** worker reads code and args and writes res, outcome and err; libuv's
** queue orders those accesses (the loop thread reads them only after the
** completion callback).
*/
typedef struct ThreadReq {
  Req r;
  uv_work_t work;
  ThreadCtl *ctl;
  const char *code;        /* the function, as string.dump makes it */
  size_t codelen;
  Buf args;               /* the arguments, encoded */
  Buf res;                 /* results, or (message, traceback, [value]) */
  int outcome;             /* OUT_* */
  int finished;            /* set (release) when the worker is done */
  int released;            /* its slot was given back by spin_wait */
  char err[160];           /* why results could not be copied */
} ThreadReq;


/* ---------------------------------------------------------------------
** Worker side: runs on a pool thread, touches only its own state
** ------------------------------------------------------------------- */

static void pool_init (void) {
  uv_mutex_init(&pool_mutex);
}


static int open_worker (lua_State *W) {
  luaL_openlibs(W);
  lua_newtable(W);
  lua_rawsetp(W, LUA_REGISTRYINDEX, &cache_key);
  lua_pushinteger(W, 0);
  lua_rawsetp(W, LUA_REGISTRYINDEX, &cache_count_key);
  return 0;
}


/* An idle worker state, or a new one; NULL if none can be made. */
static lua_State *pool_get (void) {
  lua_State *W = NULL;
  uv_mutex_lock(&pool_mutex);
  if (npool > 0) W = pool[--npool];
  uv_mutex_unlock(&pool_mutex);
  if (W != NULL) return W;
  W = luaL_newstate();
  if (W == NULL) return NULL;
  lua_pushcfunction(W, open_worker);
  if (lua_pcall(W, 0, 0, 0) != LUA_OK) {
    lua_close(W);
    return NULL;
  }
  return W;
}


static void pool_put (lua_State *W) {
  uv_mutex_lock(&pool_mutex);
  if (npool < POOL_MAX) {
    pool[npool++] = W;
    W = NULL;
  }
  uv_mutex_unlock(&pool_mutex);
  if (W != NULL) lua_close(W);
}


/* Message handler in the worker: {error, traceback}. */
static int worker_msgh (lua_State *W) {
  lua_createtable(W, 2, 0);
  lua_pushvalue(W, 1);
  lua_rawseti(W, -2, 1);
  luaL_traceback(W, W, NULL, 1);
  lua_rawseti(W, -2, 2);
  return 1;
}


/* Pushes the function of `q`: from the cache, else loaded (and cached). */
static void push_function (lua_State *W, ThreadReq *q) {
  lua_rawgetp(W, LUA_REGISTRYINDEX, &cache_key);       /* cache */
  lua_pushlstring(W, q->code, q->codelen);             /* cache code */
  lua_pushvalue(W, -1);
  if (lua_rawget(W, -3) == LUA_TFUNCTION) {
    lua_replace(W, -3);
    lua_pop(W, 1);
    return;
  }
  lua_pop(W, 1);
  if (luaL_loadbufferx(W, q->code, q->codelen, "=to_thread", "b") != LUA_OK)
    lua_error(W);                                      /* cache code fn */
  lua_rawgetp(W, LUA_REGISTRYINDEX, &cache_count_key);
  if (lua_tointeger(W, -1) >= CACHE_MAX) {             /* start afresh */
    lua_newtable(W);
    lua_replace(W, -5);
    lua_pushvalue(W, -5);
    lua_rawsetp(W, LUA_REGISTRYINDEX, &cache_key);
    lua_pushinteger(W, 0);
    lua_replace(W, -2);
  }
  lua_pushinteger(W, lua_tointeger(W, -1) + 1);
  lua_rawsetp(W, LUA_REGISTRYINDEX, &cache_count_key);
  lua_pop(W, 1);
  lua_pushvalue(W, -1);
  lua_rotate(W, -3, 1);                                /* cache fn code fn */
  lua_rawset(W, -4);                                   /* cache fn */
  lua_remove(W, -2);
}


/*
** Encodes a failure into q->res: (message, traceback, value), the value
** only if it can be copied. The failure is on top: {error, traceback}
** from worker_msgh, or a bare error value.
*/
static void encode_failure (lua_State *W, ThreadReq *q) {
  int top = lua_gettop(W);
  if (lua_type(W, top) == LUA_TTABLE && lua_rawlen(W, top) == 2) {
    lua_rawgeti(W, top, 1);                            /* err */
    lua_rawgeti(W, top, 2);                            /* err tb */
  }
  else {
    lua_pushvalue(W, top);
    lua_pushliteral(W, "");
  }
  if (lua_type(W, -2) == LUA_TSTRING || lua_type(W, -2) == LUA_TNUMBER)
    lua_pushvalue(W, -2);
  else luaL_tolstring(W, -2, NULL);                    /* err tb msg */
  lua_insert(W, -3);                                   /* msg err tb */
  lua_insert(W, -2);                                   /* msg tb err */
  q->outcome = OUT_ERROR;
  q->res.len = 0;
  if (!aio__copy_out(W, -3, 3, &q->res, q->err, sizeof q->err)) {
    q->res.len = 0;
    aio__copy_out(W, -3, 2, &q->res, q->err, sizeof q->err);
  }
  lua_settop(W, top);
}


/* The protected body of a call in a worker: (q) -> nothing. */
static int worker_run (lua_State *W) {
  ThreadReq *q = (ThreadReq *)lua_touserdata(W, 1);
  int nargs, nres;
  lua_pushcfunction(W, worker_msgh);                   /* q msgh */
  push_function(W, q);                                 /* q msgh fn */
  nargs = aio__copy_in(W, q->args.data, q->args.len);
  if (lua_pcall(W, nargs, LUA_MULTRET, 2) != LUA_OK) {
    encode_failure(W, q);
    return 0;
  }
  nres = lua_gettop(W) - 2;
  if (aio__copy_out(W, 3, nres, &q->res, q->err, sizeof q->err))
    q->outcome = OUT_OK;
  else q->outcome = OUT_BADRESULT;
  return 0;
}


static void work_cb (uv_work_t *w) {
  ThreadReq *q = aio_container_of(w, ThreadReq, work);
  lua_State *W;
  uv_once(&pool_once, pool_init);
  W = pool_get();
  if (W == NULL) {
    q->outcome = OUT_NOSTATE;
    return;
  }
  lua_settop(W, 0);
  lua_pushcfunction(W, worker_run);
  lua_pushlightuserdata(W, q);
  if (lua_pcall(W, 1, 0, 0) != LUA_OK) encode_failure(W, q);
  lua_settop(W, 0);
  pool_put(W);
  __atomic_store_n(&q->finished, 1, __ATOMIC_RELEASE);
}


/* ---------------------------------------------------------------------
** Loop side
** ------------------------------------------------------------------- */

/* Lets the first waiting call take a free slot. */
static void wake_next (Loop *loop, ThreadCtl *ctl) {
  if (ctl->running < ctl->limit && !link_empty(&ctl->queue))
    aio__task_wake(loop, aio_container_of(ctl->queue.next, Task, wait.link),
                   AIO_WAKE_OK);
}


static void after_work_cb (uv_work_t *w, int status) {
  ThreadReq *q = aio_container_of(w, ThreadReq, work);
  if (!q->released) q->ctl->running--;
  wake_next(q->r.loop, q->ctl);
  aio__req_done(&q->r, status);
}


static void threadreq_gc (Req *r) {
  ThreadReq *q = (ThreadReq *)r;
  aio__buf_free(&q->args);
  aio__buf_free(&q->res);
}


/* Raises the outcome of a finished call, or pushes its results. */
static int push_outcome (lua_State *L, ThreadReq *q) {
  switch (q->outcome) {
    case OUT_OK:
      return aio__copy_in(L, q->res.data, q->res.len);
    case OUT_BADRESULT:
      return aio__usage(L, "aio.to_thread: cannot copy the results back: %s",
                        q->err);
    case OUT_NOSTATE:
      return aio__error(L, "thread", "cannot create a Lua state for the "
                        "thread (out of memory)");
    default: {
      int n = aio__copy_in(L, q->res.data, q->res.len);  /* msg tb [v] */
      aio__error_new(L, "thread", "%s", lua_tostring(L, -n));
      lua_pushvalue(L, -n);
      lua_setfield(L, -2, "traceback");
      if (n == 3) {
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "value");
      }
      return lua_error(L);
    }
  }
}


/* Stack: (q). ctx 1: the call had finished when the task yielded (see
** spin_wait), the completion callback may not have run yet. */
static int thread_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  ThreadReq *q = (ThreadReq *)lua_touserdata(L, 1);
  Task *t = loop->current;
  (void)status;
  if (ctx == 1) {
    if (t->wake >= AIO_WAKE_CANCEL) aio__wake_raise(L, t);
    aio__checkpoint(L, t);
    return push_outcome(L, q);
  }
  if (t->wake != AIO_WAKE_OK) {
    if (q->r.anchor != 0) uv_cancel((uv_req_t *)&q->work);
    return aio__wake_raise(L, t);
  }
  if (q->r.status < 0)
    return aio__error(L, "thread", "the call was dropped: %s",
                      uv_strerror(q->r.status));
  return push_outcome(L, q);
}


static int queued_k (lua_State *L, int status, lua_KContext ctx);

/*
** With nothing else to run, the loop would sleep in the poll and be woken
** by the pool's completion signal, which costs more than most short calls
** (a thread wake-up each way). So while no task is ready, watch the call
** for up to SPIN_NS first (on a machine with more than one CPU); returns
** whether it finished, and then frees its slot at once. Its completion
** callback still runs later.
*/
static int spin_wait (Loop *loop, ThreadReq *q) {
  uint64_t until;
  if (q->ctl->ncpu < 2 || loop->ready.count > 0) return 0;
  until = uv_hrtime() + SPIN_NS;
  do {
    if (__atomic_load_n(&q->finished, __ATOMIC_ACQUIRE)) {
      q->released = 1;                 /* its pool thread is free */
      q->ctl->running--;
      wake_next(loop, q->ctl);
      return 1;
    }
  } while (uv_hrtime() < until);
  return 0;
}

/* Hands call `q` (at 1) to libuv if a slot is free, else queues the task
** (at the front when it was woken for a slot another call took). */
static int submit (lua_State *L, Loop *loop, Task *t, ThreadReq *q,
                   int front) {
  ThreadCtl *ctl = q->ctl;
  int rc;
  if (ctl->running >= ctl->limit || (!front && !link_empty(&ctl->queue))) {
    if (front) link_push_front(&ctl->queue, &t->wait.link);
    else link_push(&ctl->queue, &t->wait.link);
    aio__wait_io(loop, t);             /* behind calls that run */
    return aio__suspend(L, t, 0, queued_k);
  }
  rc = uv_queue_work(&loop->uv, &q->work, work_cb, after_work_cb);
  if (rc < 0) return aio__error(L, "thread", "cannot queue the call: %s",
                                uv_strerror(rc));
  ctl->running++;
  aio__req_start(L, &q->r, 1);
  if (spin_wait(loop, q)) {            /* done already: yield, as sleep(0) */
    t->state = AIO_TASK_READY;
    aio__ready_push(loop, t);
    return aio__suspend(L, t, 1, thread_k);
  }
  return aio__req_wait(L, t, &q->r, 0, thread_k);
}


static int queued_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  Task *t = loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  return submit(L, loop, t, (ThreadReq *)lua_touserdata(L, 1), 1);
}


/* string.dump's writer: the buffer starts on the first call, above the
** function being dumped. */
typedef struct DumpState {
  int init;
  luaL_Buffer b;
} DumpState;

static int dump_writer (lua_State *L, const void *p, size_t sz, void *ud) {
  DumpState *st = (DumpState *)ud;
  if (!st->init) {
    st->init = 1;
    luaL_buffinit(L, &st->b);
  }
  luaL_addlstring(&st->b, (const char *)p, sz);
  return 0;
}


/* Pushes string.dump of the function at 1 (cached per function). */
static void push_dump (lua_State *L) {
  DumpState st;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &dumps_key);        /* dumps */
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) == LUA_TSTRING) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, 1);                                  /* dumps fn */
  lua_pushvalue(L, 1);                                  /* dumps fn fn */
  st.init = 0;
  lua_dump(L, dump_writer, &st, 0);
  if (!st.init) luaL_buffinit(L, &st.b);
  luaL_pushresult(&st.b);                               /* dumps fn fn code */
  lua_remove(L, -2);
  lua_pushvalue(L, -1);
  lua_insert(L, -4);                                    /* code dumps fn code */
  lua_rawset(L, -3);
  lua_pop(L, 1);                                        /* code */
}


/*
** aio.to_thread(fn, ...) (suspends) -> fn's results. fn runs in a worker
** Lua state on the libuv pool; it may use globals but no other upvalue.
** Arguments and results are copied (nil, booleans, numbers, strings,
** tables of those); anything else raises `usage`. fn's error raises
** `thread` with message, traceback and (if it can be copied) value.
** Cancelling the caller drops a call that has not started; a running one
** finishes and its results are dropped.
*/
static int l_to_thread (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  int n = lua_gettop(L) - 1, i;
  const char *name;
  Task *t;
  ThreadReq *q;
  char err[160];
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (lua_iscfunction(L, 1))
    aio__usage(L, "aio.to_thread: a C function cannot be moved to a thread");
  for (i = 1; (name = lua_getupvalue(L, 1, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0)
      aio__usage(L, "aio.to_thread: the function uses the upvalue '%s'; a "
                 "thread has only its own globals: pass values as "
                 "arguments", name);
  }
  t = aio__task_enter(L, loop, "aio.to_thread");
  q = (ThreadReq *)aio__req_new(L, loop, sizeof(ThreadReq), 1);
  q->r.gc = threadreq_gc;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ctl_key);
  q->ctl = (ThreadCtl *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  push_dump(L);                                         /* fn args q code */
  q->code = lua_tolstring(L, -1, &q->codelen);
  lua_setiuservalue(L, -2, 1);
  if (!aio__copy_out(L, 2, n, &q->args, err, sizeof err))
    aio__usage(L, "aio.to_thread: cannot copy the arguments: %s", err);
  lua_replace(L, 1);
  lua_settop(L, 1);                                     /* q */
  return submit(L, loop, t, q, 0);
}


/* core.thread.limit([n]) -> the limit on calls running at once (after
** setting it to n). */
static int l_limit (lua_State *L) {
  ThreadCtl *ctl;
  lua_Integer n = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, n >= 1 || lua_isnoneornil(L, 1), 1,
                "limit must be at least 1");
  luaL_argcheck(L, (lua_Unsigned)n <= UINT_MAX, 1, "limit is too large");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ctl_key);
  ctl = (ThreadCtl *)lua_touserdata(L, -1);
  if (n >= 1) {
    ctl->limit = (unsigned)n;
    if (aio_upvalue_loop(L)->running) wake_next(aio_upvalue_loop(L), ctl);
  }
  lua_pushinteger(L, (lua_Integer)ctl->limit);
  return 1;
}


/* The size of libuv's pool, as libuv computes it. */
static int pool_size (void) {
  const char *v = getenv("UV_THREADPOOL_SIZE");
  int n = v != NULL ? atoi(v) : 4;
  if (n < 1) n = 1;
  if (n > 1024) n = 1024;
  return n;
}


static const luaL_Reg thread_funcs[] = {
  {"to_thread", l_to_thread},
  {"limit", l_limit},
  {NULL, NULL}
};


/* core.thread = {to_thread, limit, pool_size}. The default limit leaves
** one pool thread for files and DNS. */
static void open_thread (lua_State *L) {
  int core = lua_gettop(L);
  ThreadCtl *ctl = (ThreadCtl *)lua_newuserdatauv(L, sizeof(ThreadCtl), 0);
  link_init(&ctl->queue);
  ctl->running = 0;
  ctl->limit = pool_size() > 1 ? (unsigned)pool_size() - 1 : 1;
  ctl->ncpu = uv_available_parallelism();
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ctl_key);
  aio__new_weak_table(L, &dumps_key);
  lua_newtable(L);
  aio__setfuncs(L, core - 1, thread_funcs);
  lua_pushinteger(L, pool_size());
  lua_setfield(L, -2, "pool_size");
  lua_setfield(L, core, "thread");
}


/* The end of a run: its calls are done (the loop waited for them) and its
** tasks gone. */
static void close_thread (lua_State *L, Loop *loop) {
  ThreadCtl *ctl;
  (void)loop;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ctl_key);
  ctl = (ThreadCtl *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  ctl->running = 0;
  link_init(&ctl->queue);
}


const AioModule aio__module_thread = {"thread", open_thread, close_thread};
