/*
** closable.c
** The end-of-run clean-up: everything a run opened that must be closed
** when it ends (files, sockets, watchers, HTTP sessions) is a Closable in
** the loop's list, closed newest first once the tasks have unwound.
** See LICENSE
*/

#include "core.h"


/* Registers `c` (closed by `close` at the end of the run). */
void aio__closable_add (Loop *loop, Closable *c,
                        void (*close) (Closable *c)) {
  c->close = close;
  link_push(&loop->closables, &c->link);
}


/* `c` was closed: the run no longer needs to. Harmless when repeated. */
void aio__closable_remove (Closable *c) {
  link_remove(&c->link);
}


/* Closes everything still registered, newest first; each is unlinked
** before its close runs. */
void aio__closables_close (Loop *loop) {
  while (!link_empty(&loop->closables)) {
    Closable *c = aio_container_of(loop->closables.prev, Closable, link);
    link_remove(&c->link);
    c->close(c);
  }
}
