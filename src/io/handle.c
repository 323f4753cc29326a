/*
** handle.c
** I/O objects: memory shared by a Lua object and its libuv handles, one
** idempotent close for close(), __close, __gc and the end of the run, and
** the wait every module's suspending methods use.
** See LICENSE
*/

#include <stdlib.h>

#include "io.h"

/* Registry key of the per-state shared read buffer (a userdata). */
static const char scratch_key = 0;


static void io_free (IoHandle *io) {
  if (io->type->release != NULL) io->type->release(io);
  free(io);
}


/* The close callback of every handle of an IoHandle. Never runs Lua. */
static void io_on_close (uv_handle_t *h) {
  IoHandle *io = (IoHandle *)h->data;
  if (io->type->closed != NULL) io->type->closed(io, h);
  io->nopen--;
  if (io->nopen == 0 && io->orphan) io_free(io);
}


/* Allocates a zeroed IoHandle-headed block of `size` bytes of `type`,
** with no object yet (orphan); NULL if out of memory. Never raises (it is
** also used from libuv callbacks). */
void *aio__io_new (Loop *loop, size_t size, const IoType *type) {
  IoHandle *io = (IoHandle *)calloc(1, size);
  if (io == NULL) return NULL;
  io->ah.on_close = io_on_close;
  io->type = type;
  io->loop = loop;
  io->orphan = 1;
  link_init(&io->run.link);
  return io;
}


/* Handle `h` of `io` was initialised: it must be closed before `io` is
** freed, and counts as open. */
void aio__io_opened (IoHandle *io, uv_handle_t *h) {
  h->data = io;
  io->nopen++;
  io->ncounted++;
  aio__handle_opened(io->loop);
}


/* Closes handle `h` of `io` unless it is closing already. */
void aio__io_close_handle (IoHandle *io, uv_handle_t *h) {
  if (uv_is_closing(h)) return;
  uv_close(h, io_on_close);
  if (io->ncounted > 0) {
    io->ncounted--;
    aio__handle_closed(io->loop);
  }
}


/* Closes `io` (idempotent): its type closes the handles and wakes the
** waiters; from now on its object raises `closed`. */
void aio__io_close (IoHandle *io) {
  if (io->closing) return;
  io->closing = 1;
  aio__closable_remove(&io->run);
  io->type->close(io);
  if (io->orphan && io->nopen == 0) io_free(io);
}


/* The end of the run closes an I/O object that is still open. */
static void io_run_close (Closable *c) {
  aio__io_close(aio_container_of(c, IoHandle, run));
}


/* Pushes a new object (class `cls`, `nuv` user values) for `io`, which it
** owns from now on; the run closes it if nothing else does. */
void aio__io_push (lua_State *L, IoHandle *io, const char *cls, int nuv) {
  IoRef *ref = (IoRef *)lua_newuserdatauv(L, sizeof(IoRef), nuv);
  ref->io = io;
  io->orphan = 0;
  luaL_setmetatable(L, cls);
  if (!io->closing) aio__closable_add(io->loop, &io->run, io_run_close);
}


/* The receiver (argument 1) of an I/O object's method, open or closed.
** Raises `closed` only if the object was collected (its __gc called by
** hand). */
IoHandle *aio__io_self (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  if (ref->io == NULL) aio__closed_error(L, "object");
  return ref->io;
}


/* The receiver, which must be open: raises "attempt to use a closed X". */
IoHandle *aio__io_check (lua_State *L) {
  IoHandle *io = aio__io_self(L);
  if (io->closing) aio__closed_error(L, io->type->what);
  return io;
}


/* obj:close() -> true, and __close: closes it; harmless when repeated. */
int aio__io_close_method (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  if (ref->io != NULL) aio__io_close(ref->io);
  lua_pushboolean(L, 1);
  return 1;
}


/* __gc: closes the object and lets its memory go once libuv is done. */
int aio__io__gc (lua_State *L) {
  IoRef *ref = (IoRef *)aio__checkself(L);
  IoHandle *io = ref->io;
  if (io == NULL) return 0;
  ref->io = NULL;
  io->orphan = 1;
  if (io->closing) {
    if (io->nopen == 0) io_free(io);
  }
  else aio__io_close(io);
  return 0;
}


/*
** Suspends the running task in wait list `list` of `io` (and until
** `timeout` seconds, if positive). `k` starts with aio__io_resumed. Must
** be the return expression of a C function.
*/
int aio__io_wait (lua_State *L, IoHandle *io, Link *list, double timeout,
                  lua_KContext ctx, lua_KFunction k) {
  Loop *loop = io->loop;
  Task *t = loop->current;
  link_push(list, &t->wait.link);
  if (timeout > 0)
    aio__timer_arm(loop, &t->timer, aio__deadline(loop, timeout));
  if (!io->passive) aio__wait_io(loop, t);
  return aio__suspend(L, t, ctx, k);
}


/*
** The start of a continuation after aio__io_wait: returns 1 if the wait
** timed out (the caller raises its own `timeout`), 0 if it was woken as
** asked; raises the cancellation (or what else interrupted the wait), or
** `closed` if the object was closed meanwhile.
*/
int aio__io_resumed (lua_State *L, IoHandle *io) {
  Task *t = io->loop->current;
  if (t->wake == AIO_WAKE_TIMER) return 1;
  if (t->wake != AIO_WAKE_OK) aio__wake_raise(L, t);
  if (io->closing) aio__closed_error(L, io->type->what);
  return 0;
}


/* The shared read buffer of this state's loop (AIO_READ_SIZE bytes): one
** read callback fills it at a time, and its bytes are copied out at once. */
char *aio__io_scratch (lua_State *L) {
  char *p;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &scratch_key) != LUA_TUSERDATA) {
    lua_pop(L, 1);
    lua_newuserdatauv(L, AIO_READ_SIZE, 0);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &scratch_key);
  }
  p = (char *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return p;
}
