/*
** timer.c
** Deadlines: one binary min-heap of Timer nodes per loop, FIFO among equal
** deadlines, and durations as Lua passes them.
** See LICENSE
*/

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aio.h"

/* Heap and lane indexes fit in Timer.slot (24 bits). */
#define TIMER_SLOTS (1u << 24)


/* Is entry `a` due before entry `b`? Equal deadlines keep arming order. */
static int before (const HeapEntry *a, const HeapEntry *b) {
  if (a->when != b->when) return a->when < b->when;
  return (int32_t)(a->tm->seq - b->tm->seq) < 0;
}


static void heap_place (Loop *loop, HeapEntry e, uint32_t i) {
  loop->heap[i] = e;
  e.tm->slot = i + 1;
}


static void heap_up (Loop *loop, uint32_t i) {
  HeapEntry e = loop->heap[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 4;
    if (!before(&e, &loop->heap[parent])) break;
    heap_place(loop, loop->heap[parent], i);
    i = parent;
  }
  heap_place(loop, e, i);
}


/* The index of the earliest child of `i`, or 0 if it has none. */
static uint32_t min_child (Loop *loop, uint32_t i) {
  uint32_t c = 4 * i + 1, end = c + 4, best;
  if (c >= loop->hcount) return 0;
  if (end > loop->hcount) end = loop->hcount;
  for (best = c++; c < end; c++)
    if (before(&loop->heap[c], &loop->heap[best])) best = c;
  return best;
}


static void heap_down (Loop *loop, uint32_t i) {
  HeapEntry e = loop->heap[i];
  uint32_t c;
  while ((c = min_child(loop, i)) != 0 && before(&loop->heap[c], &e)) {
    heap_place(loop, loop->heap[c], i);
    i = c;
  }
  heap_place(loop, e, i);
}


static void heap_insert (Loop *loop, HeapEntry e) {
  if (loop->hcount + 1 >= TIMER_SLOTS) {
    fputs("aio: more than 16 million deadlines armed at once\n", stderr);
    abort();
  }
  if (loop->hcount == loop->hcap) {
    uint32_t cap = loop->hcap ? loop->hcap * 2 : 64;
    HeapEntry *h = realloc(loop->heap, cap * sizeof *h);
    if (h == NULL) abort();  /* a lost deadline would hang its task */
    loop->heap = h;
    loop->hcap = cap;
  }
  heap_place(loop, e, loop->hcount++);
  heap_up(loop, loop->hcount - 1);
}


static void heap_remove (Loop *loop, uint32_t i) {
  uint32_t last = --loop->hcount;
  if (i == last) return;
  heap_place(loop, loop->heap[last], i);
  if (i > 0 && before(&loop->heap[i], &loop->heap[(i - 1) / 4]))
    heap_up(loop, i);
  else
    heap_down(loop, i);
}


/* Lane: lays the armed entries out from slot 0 of a new ring of `cap`. */
static void lane_rebuild (TimerLane *ln, int k, uint32_t cap) {
  HeapEntry *r = malloc(cap * sizeof *r);
  uint32_t i, j = 0, mask = ln->cap - 1;
  if (r == NULL) abort();  /* a lost deadline would hang its task */
  for (i = 0; i < ln->count; i++) {
    HeapEntry e = ln->ring[(ln->head + i) & mask];
    if (e.tm == NULL) continue;
    e.tm->slot = j + 1;
    e.tm->lane = k + 1;
    r[j++] = e;
  }
  free(ln->ring);
  ln->ring = r;
  ln->cap = cap;
  ln->head = 0;
  ln->count = j;
}


/* Appends `e` to lane `k`; returns 0 if the lane cannot take it (its
** slots are numbered in Timer.slot's 24 bits). */
static int lane_append (TimerLane *ln, int k, HeapEntry e) {
  uint32_t i;
  if (ln->count == ln->cap) {
    /* compact when disarmed entries are most of it, else grow */
    uint32_t cap = ln->cap ? ln->cap : 64;
    if (ln->live * 2 >= ln->count) {
      if (cap >= TIMER_SLOTS) return 0;
      cap *= 2;
    }
    lane_rebuild(ln, k, cap);
  }
  i = (ln->head + ln->count) & (ln->cap - 1);
  ln->ring[i] = e;
  e.tm->slot = i + 1;
  e.tm->lane = k + 1;
  ln->count++;
  ln->live++;
  ln->last = e.when;
  return 1;
}


/* Drops disarmed entries from a lane's head. */
static void lane_trim (TimerLane *ln) {
  while (ln->count > 0 && ln->ring[ln->head].tm == NULL) {
    ln->head = (ln->head + 1) & (ln->cap - 1);
    ln->count--;
  }
  if (ln->count == 0) {
    ln->head = 0;
    ln->last = 0;
  }
}


/*
** Arms `tm` for deadline `when` (re-arms it if it was armed): in the first
** lane whose last deadline is not after `when` (an empty lane qualifies),
** else in the heap. Never raises: on allocation failure it aborts, as a
** lost deadline would hang its task (the queue only grows by doubling, so
** this is a genuine out-of-memory).
*/
void aio__timer_arm (Loop *loop, Timer *tm, uint64_t when) {
  HeapEntry e;
  int k;
  if (tm->slot) aio__timer_cancel(loop, tm);
  tm->seq = loop->seq++;
  e.when = when;
  e.tm = tm;
  for (k = 0; k < AIO_LANES; k++) {
    if (when >= loop->lanes[k].last && lane_append(&loop->lanes[k], k, e))
      return;
  }
  tm->lane = 0;
  heap_insert(loop, e);
}


/* Disarms `tm` if it is armed. */
void aio__timer_cancel (Loop *loop, Timer *tm) {
  uint32_t i;
  if (tm->slot == 0) return;
  i = tm->slot - 1;
  tm->slot = 0;
  if (tm->lane) {
    TimerLane *ln = &loop->lanes[tm->lane - 1];
    tm->lane = 0;
    ln->ring[i].tm = NULL;
    ln->live--;
    lane_trim(ln);
  }
  else heap_remove(loop, i);
}


/* The earliest armed entry, or NULL. */
static HeapEntry *earliest (Loop *loop) {
  HeapEntry *best = loop->hcount > 0 ? &loop->heap[0] : NULL;
  int k;
  for (k = 0; k < AIO_LANES; k++) {
    TimerLane *ln = &loop->lanes[k];
    if (ln->count > 0) {
      HeapEntry *e = &ln->ring[ln->head];
      if (best == NULL || before(e, best)) best = e;
    }
  }
  return best;
}


/* The earliest deadline armed, or 0 if none is. */
uint64_t aio__timer_next (Loop *loop) {
  HeapEntry *e = earliest(loop);
  return e != NULL ? e->when : 0;
}


uint32_t aio__timer_count (Loop *loop) {
  uint32_t n = loop->hcount;
  int k;
  for (k = 0; k < AIO_LANES; k++) n += loop->lanes[k].live;
  return n;
}


/* Disarms everything (the end of a run). */
void aio__timers_reset (Loop *loop) {
  uint32_t i;
  int k;
  for (i = 0; i < loop->hcount; i++) loop->heap[i].tm->slot = 0;
  loop->hcount = 0;
  for (k = 0; k < AIO_LANES; k++) {
    TimerLane *ln = &loop->lanes[k];
    for (i = 0; i < ln->count; i++) {
      HeapEntry *e = &ln->ring[(ln->head + i) & (ln->cap - 1)];
      if (e->tm != NULL) {
        e->tm->slot = 0;
        e->tm->lane = 0;
      }
    }
    ln->count = ln->head = ln->live = 0;
    ln->last = 0;
  }
}


/* Frees the queue's memory (the loop is going away). */
void aio__timers_free (Loop *loop) {
  int k;
  for (k = 0; k < AIO_LANES; k++) {
    free(loop->lanes[k].ring);
    memset(&loop->lanes[k], 0, sizeof loop->lanes[k]);
  }
}


/*
** Fires every timer whose deadline is not after loop->now, earliest first.
** Firing only marks tasks ready (or calls a C callback); it never runs Lua.
*/
void aio__timers_expire (Loop *loop) {
  HeapEntry *e;
  while ((e = earliest(loop)) != NULL && e->when <= loop->now) {
    Timer *tm = e->tm;
    aio__timer_cancel(loop, tm);
    switch (tm->kind) {
      case AIO_TIMER_TASK:
        aio__task_wake(loop, aio_container_of(tm, Task, timer), AIO_WAKE_TIMER);
        break;
      case AIO_TIMER_SCOPE:
        aio__scope_expire(loop, aio_container_of(tm, Scope, timer));
        break;
      default: {
        TimerCb *tc = aio_container_of(tm, TimerCb, timer);
        tc->fire(loop, tc);
        break;
      }
    }
  }
}


/* The deadline `seconds` from now; durations past ~300 years never come. */
uint64_t aio__deadline (Loop *loop, double seconds) {
  uint64_t now = aio__hrtime();
  (void)loop;
  if (seconds >= 1e10) return AIO_FOREVER;
  return now + (uint64_t)(seconds * AIO_NS);
}


/*
** Checks argument `arg` as a duration: a number (not a numeric string),
** not NaN; negative means 0. Raises a standard argument error otherwise.
*/
double aio__checkduration (lua_State *L, int arg) {
  double d;
  if (lua_type(L, arg) != LUA_TNUMBER)
    luaL_typeerror(L, arg, "number");
  d = (double)lua_tonumber(L, arg);
  if (isnan(d)) luaL_argerror(L, arg, "duration is NaN");
  return d < 0 ? 0 : d;
}


/* ---------------------------------------------------------------------
** aio.sleep and aio.now
** ------------------------------------------------------------------- */

static int sleep_k (lua_State *L, int status, lua_KContext ctx) {
  Task *t = (Task *)ctx;
  (void)status;
  if (t->wake >= AIO_WAKE_CANCEL) aio__wake_raise(L, t);
  aio__checkpoint(L, t);
  return 0;
}


/*
** aio.sleep(seconds) (suspends). sleep(0) puts the task at the back of the
** ready queue: every task ready now runs once before it continues. Other
** durations arm the task's own heap node: no libuv handle per sleep.
*/
static int l_sleep (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  double secs = aio__checkduration(L, 1);
  Task *t = aio__task_enter(L, loop, "aio.sleep");
  if (secs == 0) {
    t->state = AIO_TASK_READY;
    aio__ready_push(loop, t);
  }
  else aio__timer_arm(loop, &t->timer, aio__deadline(loop, secs));
  return aio__suspend(L, t, (lua_KContext)t, sleep_k);
}


/* aio.now() -> monotonic time in seconds */
static int l_now (lua_State *L) {
  lua_pushnumber(L, (lua_Number)aio__hrtime() / AIO_NS);
  return 1;
}


static const luaL_Reg timer_funcs[] = {
  {"sleep", l_sleep},
  {"now", l_now},
  {NULL, NULL}
};


void aio__open_timer (lua_State *L) {
  aio__setfuncs(L, lua_gettop(L) - 1, timer_funcs);
}
