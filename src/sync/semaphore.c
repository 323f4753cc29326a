/*
** semaphore.c
** Semaphore, BoundedSemaphore and Lock: a permit count and a FIFO of
** waiting tasks; a release hands its permit straight to the longest waiter.
** See LICENSE
*/

#include <string.h>

#include "aio.h"

typedef enum SemKind { SEM_PLAIN, SEM_BOUNDED, SEM_LOCK } SemKind;

static const char *const sem_names[] = {
  "aio.Semaphore", "aio.BoundedSemaphore", "aio.Lock"
};

/* Semaphores of both kinds share one metatable, locks have their own. */
#define SEM_MT "aio.Semaphore"
#define LOCK_MT "aio.Lock"

/*
** Invariant: a task is in `waiters` only while count == 0 or while tasks
** ahead of it wait; a permit released while anybody waits is never added to
** `count` but handed to the first waiter (so newcomers cannot barge).
*/
typedef struct Sem {
  Link waiters;         /* tasks waiting in acquire, oldest first */
  lua_Integer count;    /* free permits */
  lua_Integer max;      /* BoundedSemaphore / Lock: most permits */
  int kind;             /* SemKind */
} Sem;


/* Argument 1 of a method (its metatable is the method's upvalue 2). */
static Sem *checksem (lua_State *L) {
  return (Sem *)aio__checkself(L);
}


/* Gives one permit back: to the first waiter if there is one. */
static void sem_give (Loop *loop, Sem *s) {
  if (!link_empty(&s->waiters)) {
    Task *w = aio_container_of(s->waiters.next, Task, wait.link);
    aio__task_wake(loop, w, AIO_WAKE_OK);
  }
  else s->count++;
}


static int acquire_k (lua_State *L, int status, lua_KContext ctx) {
  Task *t = (Task *)ctx;
  (void)status;
  if (t->wake != AIO_WAKE_OK) aio__wake_raise(L, t);  /* took nothing */
  if (aio__cancel_pending(t)) {
    /* cancelled at the instant the permit arrived: pass it on */
    sem_give(aio_upvalue_loop(L), (Sem *)lua_touserdata(L, 1));
    aio__checkpoint(L, t);
  }
  return 1;
}


/* sem:acquire() (suspends) -> sem, which releases when closed (<close>) */
static int sem_acquire (lua_State *L) {
  Sem *s = checksem(L);
  Task *t;
  lua_settop(L, 1);
  if (s->count > 0 && link_empty(&s->waiters)) {
    s->count--;
    return 1;
  }
  t = aio__task_enter(L, aio_upvalue_loop(L),
                      s->kind == SEM_LOCK ? "lock:acquire" : "sem:acquire");
  link_push(&s->waiters, &t->wait.link);
  return aio__suspend(L, t, (lua_KContext)t, acquire_k);
}


/* sem:try_acquire() -> sem, or nil when it would have to wait */
static int sem_try_acquire (lua_State *L) {
  Sem *s = checksem(L);
  lua_settop(L, 1);
  if (s->count > 0 && link_empty(&s->waiters)) {
    s->count--;
    return 1;
  }
  lua_pushnil(L);
  return 1;
}


/* sem:release(); a Lock must be locked, a BoundedSemaphore below max. */
static int sem_release (lua_State *L) {
  Sem *s = checksem(L);
  if (s->kind != SEM_PLAIN && s->count >= s->max) {
    if (s->kind == SEM_LOCK)
      return aio__usage(L, "release of an unlocked Lock");
    return aio__usage(L, "BoundedSemaphore released more times than it "
                      "was acquired (it has %I permits)", s->max);
  }
  sem_give(aio_upvalue_loop(L), s);
  return 0;
}


static int sem_available (lua_State *L) {
  lua_pushinteger(L, checksem(L)->count);
  return 1;
}


static int sem_locked (lua_State *L) {
  lua_pushboolean(L, checksem(L)->count == 0);
  return 1;
}


/* waiting tasks (an extra for diagnostics and tests) */
static int sem_waiting (lua_State *L) {
  Sem *s = checksem(L);
  lua_pushinteger(L, (lua_Integer)link_count(&s->waiters));
  return 1;
}


/* __close: a permit or lock guard going out of scope releases once */
static int sem_scope_exit (lua_State *L) {
  lua_settop(L, 1);
  return sem_release(L);
}


static int sem_tostring (lua_State *L) {
  Sem *s = checksem(L);
  lua_pushfstring(L, "%s(%I free)", sem_names[s->kind], s->count);
  return 1;
}


/* Creates a semaphore of `kind` with `n` permits (argument 1, checked). */
static int sem_new (lua_State *L, int kind, lua_Integer n) {
  Sem *s = (Sem *)lua_newuserdatauv(L, sizeof(Sem), 0);
  memset(s, 0, sizeof *s);
  link_init(&s->waiters);
  s->count = n;
  s->max = n;
  s->kind = kind;
  luaL_setmetatable(L, kind == SEM_LOCK ? LOCK_MT : SEM_MT);
  return 1;
}


static lua_Integer check_count (lua_State *L, int arg, lua_Integer dflt) {
  lua_Integer n;
  if (lua_isnoneornil(L, arg)) return dflt;
  if (!lua_isinteger(L, arg)) {
    if (lua_type(L, arg) != LUA_TNUMBER) luaL_typeerror(L, arg, "integer");
    luaL_argerror(L, arg, "number has no integer representation");
  }
  n = lua_tointeger(L, arg);
  luaL_argcheck(L, n >= 0, arg, "must not be negative");
  return n;
}


/* aio.Semaphore([n=1]) */
static int l_semaphore (lua_State *L) {
  return sem_new(L, SEM_PLAIN, check_count(L, 1, 1));
}


/* aio.BoundedSemaphore([n=1]) */
static int l_bounded (lua_State *L) {
  return sem_new(L, SEM_BOUNDED, check_count(L, 1, 1));
}


/* aio.Lock() */
static int l_lock (lua_State *L) {
  return sem_new(L, SEM_LOCK, 1);
}


static const luaL_Reg sem_methods[] = {
  {"acquire", sem_acquire},
  {"try_acquire", sem_try_acquire},
  {"release", sem_release},
  {"waiting", sem_waiting},
  {"available", sem_available},
  {NULL, NULL}
};


static const luaL_Reg lock_methods[] = {
  {"acquire", sem_acquire},
  {"try_acquire", sem_try_acquire},
  {"release", sem_release},
  {"waiting", sem_waiting},
  {"locked", sem_locked},
  {NULL, NULL}
};


static const luaL_Reg sem_meta[] = {
  {"__close", sem_scope_exit},
  {"__tostring", sem_tostring},
  {NULL, NULL}
};


static const AioClass sem_class = {SEM_MT, sem_methods, sem_meta};
static const AioClass lock_class = {LOCK_MT, lock_methods, sem_meta};


static const luaL_Reg sem_funcs[] = {
  {"Semaphore", l_semaphore},
  {"BoundedSemaphore", l_bounded},
  {"Lock", l_lock},
  {NULL, NULL}
};


static void open_semaphore (lua_State *L) {
  int core = lua_gettop(L);
  aio__class_open(L, core - 1, &sem_class);
  aio__class_open(L, core - 1, &lock_class);
  lua_pop(L, 2);
  aio__setfuncs(L, core - 1, sem_funcs);
}


const AioModule aio__module_semaphore = {"semaphore", open_semaphore, NULL};
