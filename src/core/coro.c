/*
** coro.c
** coroutine.resume, coroutine.wrap and coroutine.yield as aio installs
** them: the same as Lua's for plain use, but when the coroutine suspends in
** aio (yields the token) the suspension passes on to the enclosing
** coroutine, up to the task, and the coroutine carries on where it was
** when the task is resumed. That is what lets a generator call aio.sleep.
** See LICENSE
*/

#include "core.h"


/*
** Resumes `co` (the thread at stack index `coidx`) with the `narg` values
** on top of L. Returns the number of values it yielded or returned, moved
** to L, or -1 with its error on top of L. If `co` suspends in aio and L
** can yield, yields the token from L and does not return: `k` continues
** with the values the scheduler passed on top of the stack. If L cannot
** yield, the wait is aborted and `co` resumed at once (it raises `usage`).
*/
static int resume_co (lua_State *L, lua_State *co, int coidx, int narg,
                      lua_KFunction k) {
  Loop *loop = aio_upvalue_loop(L);
  for (;;) {
    Task *t = loop->current;
    int status, nres;
    if (!lua_checkstack(co, narg)) {
      lua_pop(L, narg);
      lua_pushliteral(L, "too many arguments to resume");
      return -1;
    }
    if (t != NULL && loop->ndetached > 0)
      aio__scopes_attach(L, loop, t, coidx);
    lua_xmove(L, co, narg);
    status = lua_resume(co, L, narg, &nres);
    t = loop->current;
    if (status == LUA_YIELD && nres == 1 && t != NULL &&
        lua_touserdata(co, -1) == (void *)&aio__token) {
      lua_pop(co, 1);
      if (lua_isyieldable(L)) {
        int base = lua_gettop(L);
        lua_pushlightuserdata(L, (void *)&aio__token);
        return lua_yieldk(L, 1, (lua_KContext)base, k);
      }
      aio__task_disarm(loop, t);
      t->wake = AIO_WAKE_ABORT;
      t->state = AIO_TASK_RUNNING;
      narg = 0;
      continue;
    }
    if (t != NULL && t->scope != NULL && t->scope->co == co)
      aio__scopes_detach(L, loop, t, coidx);
    if (status == LUA_OK || status == LUA_YIELD) {
      if (!lua_checkstack(L, nres + 1)) {
        lua_pop(co, nres);
        lua_pushliteral(L, "too many results to resume");
        return -1;
      }
      lua_xmove(co, L, nres);
      return nres;
    }
    lua_xmove(co, L, 1);
    return -1;
  }
}


/* coroutine.resume's results: (true, values...) or (false, err). */
static int resume_results (lua_State *L, int r) {
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}


static int resume_k (lua_State *L, int status, lua_KContext ctx) {
  lua_State *co = lua_tothread(L, 1);
  (void)status;
  return resume_results(L, resume_co(L, co, 1, lua_gettop(L) - (int)ctx,
                                     resume_k));
}


/* coroutine.resume(co, ...) */
static int l_resume (lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return resume_results(L, resume_co(L, co, 1, lua_gettop(L) - 1,
                                     resume_k));
}


/* A wrap function's results, or its error raised (with position info for
** string errors and its to-be-closed variables closed, as Lua's wrap). */
static int wrap_results (lua_State *L, lua_State *co, int r) {
  if (r < 0) {
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) {
      stat = aio_closethread(co, L);
      lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return r;
}


static int wrap_k (lua_State *L, int status, lua_KContext ctx) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  (void)status;
  return wrap_results(L, co, resume_co(L, co, lua_upvalueindex(2),
                                       lua_gettop(L) - (int)ctx, wrap_k));
}


static int wrap_call (lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  return wrap_results(L, co, resume_co(L, co, lua_upvalueindex(2),
                                       lua_gettop(L), wrap_k));
}


/* coroutine.wrap(f) */
static int l_wrap (lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));       /* f loop */
  co = lua_newthread(L);                        /* f loop co */
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, wrap_call, 2);
  return 1;
}


/*
** coroutine.yield(...): as Lua's, except in a task's own coroutine, where
** there is nothing to yield to but the scheduler: that is a `usage` error.
*/
static int l_yield (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  if (loop->current != NULL && loop->current->co == L)
    aio__usage(L, "coroutine.yield called in a task outside any coroutine "
               "of its own: there is nothing to yield to (use "
               "aio.sleep(0) to let other tasks run)");
  return lua_yield(L, lua_gettop(L));
}


static const luaL_Reg coro_funcs[] = {
  {"resume", l_resume},
  {"wrap", l_wrap},
  {"yield", l_yield},
  {NULL, NULL}
};


void aio__open_coro (lua_State *L) {
  aio__setfuncs(L, lua_gettop(L) - 1, coro_funcs);
}
