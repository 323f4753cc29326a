/*
** loop.c
** The Loop object (one per Lua state, the upvalue of every core function)
** and aio.core's own table: the core functions, then every module.
** See LICENSE
*/

#include <stdlib.h>
#include <string.h>

#include "core.h"

const char aio__key_loop = 0;
const char aio__key_callbacks = 0;
const char aio__key_detached = 0;
const char aio__key_unseen = 0;


Loop *aio__loop (lua_State *L) {
  Loop *loop;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aio__key_loop);
  loop = (Loop *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return loop;
}


uint64_t aio__hrtime (void) {
  return uv_hrtime();
}


/* Raises `usage` unless a run is going on (`what` names the caller). */
void aio__check_running (lua_State *L, Loop *loop, const char *what) {
  if (!loop->running)
    aio__usage(L, "%s needs a running loop: call it inside aio.run", what);
}


/* Module handles open (core.stats().handles, for leak checks). */
void aio__handle_opened (Loop *loop) { loop->nhandles++; }
void aio__handle_closed (Loop *loop) { loop->nhandles--; }


/* Stores a new weak-keyed table in the registry under `key`. */
void aio__new_weak_table (lua_State *L, const char *key) {
  lua_newtable(L);
  lua_newtable(L);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}


static int l_set_debug (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  loop->debug = lua_toboolean(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) loop->slow = lua_tonumber(L, 2);
  return 0;
}


static int l_get_debug (lua_State *L) {
  lua_pushboolean(L, aio_upvalue_loop(L)->debug);
  return 1;
}


/* core.stats() -> {tasks, ready, timers, handles, running, generation} */
static int l_stats (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, loop->ntasks); lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, loop->ready.count); lua_setfield(L, -2, "ready");
  lua_pushinteger(L, aio__timer_count(loop));
  lua_setfield(L, -2, "timers");
  lua_pushinteger(L, loop->nhandles); lua_setfield(L, -2, "handles");
  lua_pushboolean(L, loop->running); lua_setfield(L, -2, "running");
  lua_pushinteger(L, loop->generation); lua_setfield(L, -2, "generation");
  return 1;
}


/* The Lua state closes (the module is collected): frees the loop's
** memory; closes the libuv loop first if the state closes inside aio.run
** (os.exit(true) from a task). */
static int loop__gc (lua_State *L) {
  Loop *loop = (Loop *)lua_touserdata(L, 1);
  if (loop->running) {
    aio__closables_close(loop);
    uv_run(&loop->uv, UV_RUN_NOWAIT);
    uv_loop_close(&loop->uv);
    loop->running = 0;
  }
  aio__timers_free(loop);
  aio__anchors_free(&loop->anchors);
  return 0;
}


static const luaL_Reg loop_funcs[] = {
  {"set_debug", l_set_debug},
  {"get_debug", l_get_debug},
  {"stats", l_stats},
  {NULL, NULL}
};


/*
** luaopen_aio_core (src/modules.c) starts here: pushes the loop userdata
** and the core table with the core's own functions (tasks, sleep,
** timeouts, coroutines, errors, run); the modules are opened on top.
*/
void aio__open_loop (lua_State *L) {
  Loop *loop;
  const char *dbg = getenv("AIO_DEBUG");
  int loopidx;
  loop = (Loop *)lua_newuserdatauv(L, sizeof(Loop), 0);
  memset(loop, 0, sizeof *loop);
  link_init(&loop->closables);
  link_init(&loop->deferred);
  link_init(&loop->ready.list);
  loop->slow = 0.1;
  loop->debug = dbg != NULL && *dbg != '\0' && strcmp(dbg, "0") != 0;
  loopidx = lua_gettop(L);
  lua_newtable(L);
  lua_pushcfunction(L, loop__gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, loopidx);
  lua_pushvalue(L, loopidx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &aio__key_loop);
  aio__anchors_open(L, &loop->anchors);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &aio__key_callbacks);
  aio__new_weak_table(L, &aio__key_detached);
  aio__new_weak_table(L, &aio__key_unseen);
  lua_newtable(L);                                  /* loop core */
  aio__setfuncs(L, loopidx, loop_funcs);
  aio__open_error(L);
  aio__open_task_object(L);
  aio__open_task(L);
  aio__open_scope(L);
  aio__open_coro(L);
  aio__open_timer(L);
  aio__open_run(L);
}
