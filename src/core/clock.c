/*
** clock.c
** The loop's clock (see Clock in core.h): real, or virtual for tests
** (aio.testing.run), and the count of tasks waiting on I/O that decides
** when a virtual clock may jump.
** See LICENSE
*/

#include "core.h"

/* A virtual clock's time 0, in ns: deadlines are never 0 (0 means none). */
#define VBASE 1000000000u


/* The loop's time now (ns): what deadlines are set in and compared with. */
uint64_t aio__now (Loop *loop) {
  Clock *c = &loop->clock;
  if (!c->virt) return uv_hrtime();
  if (c->nio > 0) return c->vnow + (uv_hrtime() - c->mark);
  return c->vnow;
}


/* aio.now(): the loop's time in seconds (a virtual clock's from 0). */
double aio__now_seconds (Loop *loop) {
  uint64_t now = aio__now(loop);
  if (loop->clock.virt) now -= VBASE;
  return (double)now / AIO_NS;
}


/* Sets loop->now to the loop's time (at every poll). */
void aio__clock_update (Loop *loop) {
  Clock *c = &loop->clock;
  if (!c->virt) {
    loop->now = uv_hrtime();
    return;
  }
  if (c->nio > 0) {
    uint64_t real = uv_hrtime();
    c->vnow += real - c->mark;
    c->mark = real;
  }
  loop->now = c->vnow;
}


/* The start of a run: a real clock, or a virtual one at 0 that jumps
** after `autojump` seconds of idleness. */
void aio__clock_start (Loop *loop, int virt, double autojump) {
  Clock *c = &loop->clock;
  c->virt = (uint8_t)(virt != 0);
  c->nio = 0;
  c->vnow = VBASE;
  c->mark = uv_hrtime();
  c->autojump = autojump > 0 ? (uint64_t)(autojump * AIO_NS) : 0;
  c->idle_since = 0;
  loop->now = virt ? c->vnow : c->mark;
}


/* The end of a run: back to the real clock. */
void aio__clock_stop (Loop *loop) {
  loop->clock.virt = 0;
  loop->clock.nio = 0;
}


/* May the clock jump (it is virtual and no task waits on I/O)? */
int aio__clock_can_jump (Loop *loop) {
  return loop->clock.virt && loop->clock.nio == 0;
}


/* The loop is idle with only deadlines to wait for: returns for how long
** (real ns) it has been so (0 the first time: the count starts). */
uint64_t aio__clock_idle (Loop *loop) {
  Clock *c = &loop->clock;
  uint64_t real;
  if (c->autojump == 0) return 0;
  real = uv_hrtime();
  if (c->idle_since == 0) {
    c->idle_since = real;
    return 0;
  }
  return real - c->idle_since;
}


/* Tasks ran: the loop is not idle. */
void aio__clock_busy (Loop *loop) {
  loop->clock.idle_since = 0;
}


/* Moves a virtual clock forward to `to` (the earliest deadline). */
void aio__clock_jump (Loop *loop, uint64_t to) {
  Clock *c = &loop->clock;
  if (to > c->vnow) c->vnow = to;
  c->idle_since = 0;
  loop->now = c->vnow;
}


/*
** Marks the wait task `t` is entering as a wait on I/O: on something
** outside the loop that completes on its own (a socket, a file, a DNS
** lookup, a thread-pool call, a child process, an HTTP transfer). While
** any task is in such a wait, a virtual clock runs at real speed and
** never jumps. aio__req_wait and aio__io_wait (unless the object's IoType
** is `passive`) call it; a module that suspends on I/O with aio__suspend
** directly calls it first. Cleared when the task is woken
** (aio__task_disarm). Only a virtual clock counts them: a real one does
** nothing here.
*/
void aio__wait_io (Loop *loop, Task *t) {
  Clock *c = &loop->clock;
  if (!c->virt || t->iowait) return;
  t->iowait = 1;
  if (c->nio++ == 0) c->mark = uv_hrtime();
}


/* The I/O wait of `t` is over. */
void aio__wait_io_end (Loop *loop, Task *t) {
  Clock *c = &loop->clock;
  if (!t->iowait) return;
  t->iowait = 0;
  if (--c->nio == 0 && c->virt) c->vnow += uv_hrtime() - c->mark;
}
