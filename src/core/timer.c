/*
** timer.c
** The deadline queue (see Deadlines in core.h): a 4-ary min-heap of Timer
** nodes plus FIFO lanes, FIFO among equal deadlines; aio.sleep, aio.now,
** and durations as Lua passes them. Deadlines are on the loop's clock
** (clock.c).
** See LICENSE
*/

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Heap and lane indexes fit in Timer.slot (24 bits). */
#define TIMER_SLOTS (1u << 24)


/* Is entry `a` due before entry `b`? Equal deadlines keep arming order. */
static int before (const HeapEntry *a, const HeapEntry *b) {
  if (a->when != b->when) return a->when < b->when;
  return (int32_t)(a->tm->seq - b->tm->seq) < 0;
}


static void heap_place (Deadlines *d, HeapEntry e, uint32_t i) {
  d->heap[i] = e;
  e.tm->slot = i + 1;
}


static void heap_up (Deadlines *d, uint32_t i) {
  HeapEntry e = d->heap[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 4;
    if (!before(&e, &d->heap[parent])) break;
    heap_place(d, d->heap[parent], i);
    i = parent;
  }
  heap_place(d, e, i);
}


/* The index of the earliest child of `i`, or 0 if it has none. */
static uint32_t min_child (Deadlines *d, uint32_t i) {
  uint32_t c = 4 * i + 1, end = c + 4, best;
  if (c >= d->count) return 0;
  if (end > d->count) end = d->count;
  for (best = c++; c < end; c++)
    if (before(&d->heap[c], &d->heap[best])) best = c;
  return best;
}


static void heap_down (Deadlines *d, uint32_t i) {
  HeapEntry e = d->heap[i];
  uint32_t c;
  while ((c = min_child(d, i)) != 0 && before(&d->heap[c], &e)) {
    heap_place(d, d->heap[c], i);
    i = c;
  }
  heap_place(d, e, i);
}


static void heap_insert (Deadlines *d, HeapEntry e) {
  if (d->count + 1 >= TIMER_SLOTS) {
    fputs("aio: more than 16 million deadlines armed at once\n", stderr);
    abort();
  }
  if (d->count == d->cap) {
    uint32_t cap = d->cap ? d->cap * 2 : 64;
    HeapEntry *h = realloc(d->heap, cap * sizeof *h);
    if (h == NULL) abort();  /* a lost deadline would hang its task */
    d->heap = h;
    d->cap = cap;
  }
  heap_place(d, e, d->count++);
  heap_up(d, d->count - 1);
}


static void heap_remove (Deadlines *d, uint32_t i) {
  uint32_t last = --d->count;
  if (i == last) return;
  heap_place(d, d->heap[last], i);
  if (i > 0 && before(&d->heap[i], &d->heap[(i - 1) / 4]))
    heap_up(d, i);
  else
    heap_down(d, i);
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


/* Appends `e` to lane `k` of `d`; returns 0 if the lane cannot take it
** (its slots are numbered in Timer.slot's 24 bits). */
static int lane_append (Deadlines *d, int k, HeapEntry e) {
  TimerLane *ln = &d->lanes[k];
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
  d->used |= 1u << k;
  return 1;
}


/* Drops disarmed entries from the head of lane `k`. */
static void lane_trim (Deadlines *d, int k) {
  TimerLane *ln = &d->lanes[k];
  while (ln->count > 0 && ln->ring[ln->head].tm == NULL) {
    ln->head = (ln->head + 1) & (ln->cap - 1);
    ln->count--;
  }
  if (ln->count == 0) {
    ln->head = 0;
    ln->last = 0;
    d->used &= ~(1u << k);
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
  tm->seq = loop->deadlines.seq++;
  e.when = when;
  e.tm = tm;
  for (k = 0; k < AIO_LANES; k++) {
    TimerLane *ln = &loop->deadlines.lanes[k];
    if (when >= ln->last && lane_append(&loop->deadlines, k, e)) return;
  }
  tm->lane = 0;
  heap_insert(&loop->deadlines, e);
}


/* Disarms `tm` if it is armed. */
void aio__timer_cancel (Loop *loop, Timer *tm) {
  uint32_t i;
  if (tm->slot == 0) return;
  i = tm->slot - 1;
  tm->slot = 0;
  if (tm->lane) {
    int k = tm->lane - 1;
    TimerLane *ln = &loop->deadlines.lanes[k];
    tm->lane = 0;
    ln->ring[i].tm = NULL;
    ln->live--;
    lane_trim(&loop->deadlines, k);
  }
  else heap_remove(&loop->deadlines, i);
}


/* The earliest armed entry, or NULL. */
static HeapEntry *earliest (Deadlines *d) {
  HeapEntry *best = d->count > 0 ? &d->heap[0] : NULL;
  uint32_t used = d->used;
  while (used != 0) {
    int k = __builtin_ctz(used);
    TimerLane *ln = &d->lanes[k];
    HeapEntry *e = &ln->ring[ln->head];
    if (best == NULL || before(e, best)) best = e;
    used &= used - 1;
  }
  return best;
}


/* The earliest deadline armed, or 0 if none is. */
uint64_t aio__timer_next (Loop *loop) {
  HeapEntry *e = earliest(&loop->deadlines);
  return e != NULL ? e->when : 0;
}


uint32_t aio__timer_count (Loop *loop) {
  uint32_t n = loop->deadlines.count;
  int k;
  for (k = 0; k < AIO_LANES; k++) n += loop->deadlines.lanes[k].live;
  return n;
}


/* Disarms everything (the end of a run). */
void aio__timers_reset (Loop *loop) {
  uint32_t i;
  int k;
  Deadlines *d = &loop->deadlines;
  for (i = 0; i < d->count; i++) d->heap[i].tm->slot = 0;
  d->count = 0;
  for (k = 0; k < AIO_LANES; k++) {
    TimerLane *ln = &d->lanes[k];
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
  d->used = 0;
}


/* Frees the queue's memory (the loop is going away). */
void aio__timers_free (Loop *loop) {
  Deadlines *d = &loop->deadlines;
  int k;
  free(d->heap);
  d->heap = NULL;
  d->count = d->cap = 0;
  for (k = 0; k < AIO_LANES; k++) {
    free(d->lanes[k].ring);
    memset(&d->lanes[k], 0, sizeof d->lanes[k]);
  }
}


/*
** Fires every timer whose deadline is not after loop->now, earliest first.
** Firing only marks tasks ready (or calls a C callback); it never runs Lua.
*/
void aio__timers_expire (Loop *loop) {
  HeapEntry *e;
  while ((e = earliest(&loop->deadlines)) != NULL && e->when <= loop->now) {
    Timer *tm = e->tm;
    if (tm->lane) {   /* many may follow: fetch a later one's owner now */
      TimerLane *ln = &loop->deadlines.lanes[tm->lane - 1];
      if (ln->count > 8) {
        HeapEntry *ahead = &ln->ring[(ln->head + 8) & (ln->cap - 1)];
        if (ahead->tm != NULL) __builtin_prefetch(ahead->tm);
      }
    }
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


/* The deadline `seconds` from now on the loop's clock; durations past
** ~300 years never come. */
uint64_t aio__deadline (Loop *loop, double seconds) {
  uint64_t now = aio__now(loop);
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


/* aio.now() -> the loop's time in seconds: monotonic, or virtual (from 0)
** in aio.testing.run */
static int l_now (lua_State *L) {
  lua_pushnumber(L, (lua_Number)aio__now_seconds(aio_upvalue_loop(L)));
  return 1;
}


/* core.real_now() -> the real monotonic clock in seconds, whatever the
** loop's clock (aio.testing.real_now) */
static int l_real_now (lua_State *L) {
  lua_pushnumber(L, (lua_Number)aio__hrtime() / AIO_NS);
  return 1;
}


static const luaL_Reg timer_funcs[] = {
  {"sleep", l_sleep},
  {"now", l_now},
  {"real_now", l_real_now},
  {NULL, NULL}
};


void aio__open_timer (lua_State *L) {
  aio__setfuncs(L, lua_gettop(L) - 1, timer_funcs);
}
