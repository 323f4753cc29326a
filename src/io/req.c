/*
** req.c
** libuv requests kept in userdata: anchored while libuv owns them, waited
** for by one task, collected once nobody refers to them.
** See LICENSE
*/

#include <string.h>

#include "io.h"

static int req__gc (lua_State *L);

static const luaL_Reg req_meta[] = {
  {"__gc", req__gc},
  {NULL, NULL}
};

static const AioClass req_class = {"aio.IoRequest", NULL, req_meta};


static int req__gc (lua_State *L) {
  Req *r = (Req *)aio__checkself(L);
  if (r->gc != NULL) r->gc(r);
  r->gc = NULL;
  return 0;
}


/*
** Pushes a new request userdata of `size` bytes (starting with Req) with
** `nuv` user values, zeroed. Raises only on memory errors.
*/
void *aio__req_new (lua_State *L, Loop *loop, size_t size, int nuv) {
  Req *r = (Req *)lua_newuserdatauv(L, size, nuv);
  memset(r, 0, size);
  link_init(&r->waiters);
  r->loop = loop;
  luaL_setmetatable(L, req_class.name);
  return r;
}


/* The request at stack index `idx` was handed to libuv: keeps it (and its
** user values) alive until its callback calls aio__req_done. */
void aio__req_start (lua_State *L, Req *r, int idx) {
  r->anchor = aio__anchor(L, r->loop, idx);
}


/*
** Called from the request's libuv callback: records `status`, releases
** the anchor and wakes the waiting task, if one still waits. Never runs
** Lua code and never allocates Lua memory.
*/
void aio__req_done (Req *r, int status) {
  Loop *loop = r->loop;
  r->status = status;
  if (r->anchor != 0) {
    aio__unanchor(loop->L, loop, r->anchor);
    r->anchor = 0;
  }
  aio__notify_all(loop, &r->waiters);
}


/* Suspends task `t` until request `r` completes (or something else wakes
** it: `k` must check t->wake). Must be the return expression. */
int aio__req_wait (lua_State *L, Task *t, Req *r, lua_KContext ctx,
                   lua_KFunction k) {
  link_push(&r->waiters, &t->wait.link);
  aio__wait_io(r->loop, t);
  return aio__suspend(L, t, ctx, k);
}


/* The IoRequest class (a module of its own: the other I/O modules use
** it). */
static void open_req (lua_State *L) {
  aio__class_open(L, lua_gettop(L) - 1, &req_class);
  lua_pop(L, 1);
}


const AioModule aio__module_req = {"request", open_req, NULL};
