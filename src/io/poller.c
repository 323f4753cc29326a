/*
** poller.c
** A descriptor someone else reads and writes (libpq's socket, curl's),
** watched by the loop: tasks wait for it to become readable or writable.
** See LICENSE
*/

#include <stdlib.h>

#include "io.h"


/* The poller counts as an open handle while something is wanted. */
static void count (Poller *p, int on) {
  IoHandle *io = &p->io;
  if (on && io->ncounted == 0) {
    io->ncounted = 1;
    aio__handle_opened(io->loop);
  }
  else if (!on && io->ncounted > 0) {
    io->ncounted = 0;
    aio__handle_closed(io->loop);
  }
}


static void poller_cb (uv_poll_t *h, int status, int events) {
  Poller *p = aio_container_of(h, Poller, h);
  if (status < 0) p->events = 0;   /* libuv stopped it (POLLERR) */
  if (p->want == 0) {              /* muted: stop it now */
    uv_poll_stop(h);
    p->events = 0;
    return;
  }
  if (p->on_event != NULL) {
    p->on_event(p, status, events);
    return;
  }
  if (status < 0) p->status = status;
  p->ready |= events;
  aio__poller_watch(p, 0);         /* until the next wait */
  aio__notify_all(p->io.loop, &p->waiters);
}


/*
** A new poller of `size` bytes (starting with Poller) for descriptor
** `fd`, of type `type`, watching nothing yet; NULL with *err set if libuv
** refuses (or memory runs out). Never raises.
*/
Poller *aio__poller_new (Loop *loop, int fd, size_t size,
                         const IoType *type, int *err) {
  Poller *p = (Poller *)aio__io_new(loop, size, type);
  int rc;
  if (p == NULL) {
    *err = UV_ENOMEM;
    return NULL;
  }
  rc = uv_poll_init_socket(&loop->uv, &p->h, fd);
  if (rc != 0) {
    free(p);                       /* nothing else to release */
    *err = rc;
    return NULL;
  }
  aio__io_opened(&p->io, (uv_handle_t *)&p->h);
  count(p, 0);
  uv_unref((uv_handle_t *)&p->h);
  p->fd = fd;
  link_init(&p->waiters);
  return p;
}


/*
** Watches for `events` (UV_READABLE | UV_WRITABLE). 0 mutes the poller:
** it is unreferenced and stopped at its next event, which costs no epoll
** change when it is wanted again soon (a connection reused at once).
** After an error libuv has stopped the poll: watching starts it again.
** Returns 0 or a UV_E* code.
*/
int aio__poller_watch (Poller *p, int events) {
  if (p->io.closing) return UV_EBADF;
  count(p, events != 0);
  p->want = events;
  if (events == 0) {
    uv_unref((uv_handle_t *)&p->h);
    return 0;
  }
  uv_ref((uv_handle_t *)&p->h);
  if (events != p->events) {
    int rc = uv_poll_start(&p->h, events, poller_cb);
    if (rc != 0) return rc;
    p->events = events;
  }
  return 0;
}


/*
** Suspends the running task until `events` are ready on the descriptor
** (or `timeout` seconds, if positive). `k` starts with aio__io_resumed;
** then p->ready tells what happened and p->status an error. Raises `io`
** if libuv cannot watch it. Must be the return expression.
*/
int aio__poller_wait (lua_State *L, Poller *p, int events, double timeout,
                      lua_KContext ctx, lua_KFunction k) {
  int rc;
  p->ready = 0;
  p->status = 0;
  rc = aio__poller_watch(p, events);
  if (rc != 0) {
    aio__uv_error_new(L, "io", rc, "cannot watch descriptor %d", p->fd);
    return lua_error(L);
  }
  return aio__io_wait(L, &p->io, &p->waiters, timeout, ctx, k);
}


/* The close of a poller's type (or the first part of it): stops watching
** and wakes the waiters (they raise `closed`). */
void aio__poller_close (IoHandle *io) {
  Poller *p = (Poller *)io;
  count(p, 0);
  p->want = p->events = 0;
  aio__io_close_handle(io, (uv_handle_t *)&p->h);
  aio__notify_all(io->loop, &p->waiters);
}
