/*
** core.h
** The core layer: the loop, the scheduler, tasks, deadlines, cancel
** scopes, errors, object classes and the end-of-run clean-up. Nothing in
** core/ knows any module; modules (sync/, io/, http/, ...) build on this.
** See LICENSE
*/

#ifndef AIO_CORE_H
#define AIO_CORE_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#if LUA_VERSION_NUM != 504
#error "aio needs Lua 5.4"
#endif

/* Only luaopen_aio_core is exported from the shared object. */
#if defined(__GNUC__)
#define AIO_EXPORT __attribute__((visibility("default")))
#pragma GCC visibility push(hidden)
#else
#define AIO_EXPORT
#endif

/* Lua 5.4.6 renamed lua_resetthread to lua_closethread(L, from). */
#if LUA_VERSION_RELEASE_NUM >= 50406
#define aio_closethread(co, from) lua_closethread((co), (from))
#else
#define aio_closethread(co, from) ((void)(from), lua_resetthread(co))
#endif

#define aio_container_of(p, type, field) \
  ((type *)(void *)((char *)(p) - offsetof(type, field)))

#define AIO_NS 1000000000.0       /* nanoseconds per second */
#define AIO_FOREVER UINT64_MAX    /* a deadline that never comes */


/*
** Intrusive circular doubly-linked list (libuv's queue.h idea). A Link that
** is not in a list points at itself, so removing twice is harmless.
*/
typedef struct Link {
  struct Link *next;
  struct Link *prev;
} Link;

static inline void link_init (Link *l) { l->next = l->prev = l; }
static inline int link_empty (const Link *l) { return l->next == l; }

static inline void link_push (Link *head, Link *l) {  /* append at tail */
  l->prev = head->prev;
  l->next = head;
  head->prev->next = l;
  head->prev = l;
}

static inline void link_push_front (Link *head, Link *l) {
  l->next = head->next;
  l->prev = head;
  head->next->prev = l;
  head->next = l;
}

static inline size_t link_count (const Link *head) {
  size_t n = 0;
  const Link *l;
  for (l = head->next; l != head; l = l->next) n++;
  return n;
}

static inline void link_remove (Link *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
  link_init(l);
}


/*
** Deadline timer: a node of the loop's deadline queue, ordered by (when,
** seq) so that equal deadlines fire in arming order. A timer does not own
** a libuv handle: one uv_timer_t per loop wakes the poll for the earliest
** deadline (see Deadlines).
*/
typedef enum TimerKind {
  AIO_TIMER_TASK,      /* Task.timer: wakes the task with AIO_WAKE_TIMER */
  AIO_TIMER_SCOPE,     /* Scope.timer: expires a timeout scope */
  AIO_TIMER_CALLBACK   /* TimerCb: calls its function from the loop */
} TimerKind;

typedef struct Timer {
  uint32_t seq;          /* arming order (compared with wrap-around) */
  unsigned slot : 24;    /* heap or lane index + 1; 0 while not armed */
  unsigned lane : 3;     /* 0: in the heap; k: in lane k - 1 */
  unsigned kind : 3;     /* TimerKind */
} Timer;

#define AIO_LANES 7      /* FIFO lanes of the deadline queue */

typedef struct HeapEntry {
  uint64_t when;         /* deadline, nanoseconds on the loop's clock */
  Timer *tm;             /* NULL: a lane entry whose timer was disarmed */
} HeapEntry;

/* A FIFO lane: a ring of entries with non-decreasing deadlines. */
typedef struct TimerLane {
  HeapEntry *ring;
  uint32_t head, count, cap;   /* cap: a power of two */
  uint32_t live;               /* entries still armed */
  uint64_t last;               /* deadline of the last entry */
} TimerLane;

/*
** The deadline queue of a loop: a 4-ary min-heap plus up to AIO_LANES
** FIFO "lanes" for the common case of deadlines armed in non-decreasing
** order (many tasks sleeping the same duration, a timeout used
** everywhere): a deadline not before a lane's last one is appended to it
** in O(1) and popped in O(1). Both store each deadline next to its Timer
** pointer, so comparisons rarely touch the timers.
*/
typedef struct Deadlines {
  HeapEntry *heap;
  uint32_t count, cap;         /* heap entries, heap capacity */
  TimerLane lanes[AIO_LANES];
  uint32_t seq;                /* the next Timer.seq */
  uint32_t used;               /* bit k: lane k has entries */
} Deadlines;

struct Loop;
typedef struct TimerCb {
  Timer timer;
  void (*fire) (struct Loop *loop, struct TimerCb *tc);
} TimerCb;


/*
** A waiter sits in one wait list (a Link head owned by a primitive). Task
** embeds one for its single current wait; other objects (task watchers)
** embed their own with a notify function. notify == NULL means "the task
** that embeds me": waking it makes that task ready.
*/
typedef struct Waiter {
  Link link;
  void (*notify) (struct Loop *loop, struct Waiter *w);
} Waiter;


/* Why a suspended task was made ready: read by the continuation. */
typedef enum Wake {
  AIO_WAKE_NONE,       /* not woken yet / resumed by sleep(0) */
  AIO_WAKE_OK,         /* the awaited thing happened (values may follow) */
  AIO_WAKE_TIMER,      /* its own timer expired */
  AIO_WAKE_CANCEL,     /* a cancellation or deadline must be delivered */
  AIO_WAKE_ABORT,      /* the wait cannot complete (no yield path) */
  AIO_WAKE_DEADLOCK,   /* nothing can ever wake it */
  AIO_WAKE_CLOSED      /* the object it waited on was closed */
} Wake;

typedef enum TaskState {
  AIO_TASK_NEW,        /* spawned, in the ready queue, never resumed */
  AIO_TASK_READY,      /* in the ready queue */
  AIO_TASK_RUNNING,    /* resumed right now (loop->current) */
  AIO_TASK_WAITING,    /* suspended in a wait, not in the ready queue */
  AIO_TASK_OK,         /* finished: returned normally */
  AIO_TASK_FAILED,     /* finished: raised an error */
  AIO_TASK_CANCELLED   /* finished: raised a cancelled error */
} TaskState;

#define aio_task_done(t) ((t)->state >= AIO_TASK_OK)

/* Task.flags */
#define AIO_TF_CANCEL     0x01  /* task:cancel() was requested */
#define AIO_TF_UNSEEN     0x02  /* failed and nobody retrieved the error */
#define AIO_TF_CALLBACKS  0x04  /* has on_done callbacks */
#define AIO_TF_RESULTS    0x08  /* results stored as a table {n=...} */
#define AIO_TF_NORESULT   0x10  /* finished with no results */
#define AIO_TF_INREADY    0x20  /* has an entry in the ready queue */
#define AIO_TF_EXTRA      0x40  /* user value 1 is the extra table */
#define AIO_TF_CLEANUP    0x80  /* in a clean-up wait: not interrupted */

/*
** A task: a Lua coroutine driven by the scheduler. Lives in a userdata of
** class aio.Task (switched to its twin aio.Task.failed, which has a __gc
** that reports unretrieved errors, when it fails) with one user value:
** its body until it starts (the function, or {fn, args..., n=} when
** `packed`), the coroutine while it runs (made when it first runs:
** aio__task_start), then its result (one value, or a table {n=...}) or
** its error; or, once anything else must be kept (name, reason,
** traceback, callbacks, spawn site: AIO_TF_EXTRA), a table with those
** fields plus `co` (body or coroutine) or `value`. Anchored in the loop
** (slot `anchor`) from spawn until it finishes, so raw Task pointers in
** the ready queue, the deadline queue and wait lists are always valid.
*/
typedef struct Task {
  Waiter wait;          /* in one wait list while WAITING, or in the
                           ready queue (AIO_TF_INREADY) */
  Link awaiters;        /* Waiters to notify when the task finishes */
  Timer timer;          /* sleep / wait timeout */
  lua_State *co;        /* the coroutine; NULL before it starts and
                           once it finished */
  struct Scope *scope;  /* innermost active cancel scope, or NULL */
  uint32_t id;          /* "task-<id>" */
  uint32_t anchor;      /* slot in the loop's anchor table; 0 = none */
  uint8_t state;        /* TaskState */
  uint8_t wake;         /* Wake: why it was made ready */
  uint8_t flags;        /* AIO_TF_* */
  uint8_t nargs;        /* values pushed on co for the next resume */
  uint8_t nexpired;     /* expired deadline scopes in the chain */
  uint8_t iowait;       /* its wait is on I/O (aio__wait_io; virtual
                           clock only) */
  uint8_t packed;       /* NEW: its body is a table {fn, args..., n=} */
} Task;


/*
** A cancel scope: the frame of aio.timeout (deadline) or aio.shield
** (shield). Scopes of a task form a chain from the innermost (task->scope)
** outwards. A scope lives in a userdata held on the stack of the C
** function that opened it; its __gc unlinks it if a coroutine is abandoned
** while inside it.
*/
typedef struct Scope {
  Timer timer;          /* the deadline (timeout scopes only) */
  struct Scope *parent; /* next outer scope of the same chain */
  Task *task;           /* the task whose chain holds it, or NULL */
  lua_State *co;        /* the coroutine that opened it */
  double seconds;       /* the duration asked for (for messages) */
  uint8_t manual;       /* opened by core.scope_open (a TaskGroup) */
  uint8_t shield;       /* 1: stops outer cancellation */
  uint8_t expired;      /* the deadline has passed */
  uint8_t delivered;    /* a cancelled error of this scope was raised */
  uint8_t detached;     /* its coroutine yielded out of it (a generator) */
} Scope;


/*
** The ready queue: a FIFO list of tasks run in rounds by the scheduler,
** linked through Task.wait.link (a task in the ready queue waits on
** nothing else, so the link is free; AIO_TF_INREADY says where it is). A
** task has at most one entry. It allocates nothing, so pushing never
** fails.
*/
typedef struct ReadyQueue {
  Link list;
  uint32_t count;
} ReadyQueue;


/*
** Anchors: an array table in the registry keeps objects reachable while C
** code holds raw pointers to them (a task from spawn until it finishes, a
** libuv request until its callback); freed slots are reused, LIFO.
*/
typedef struct Anchors {
  uint32_t *free;        /* free slots, a stack */
  uint32_t nfree, cap;
  uint32_t nslots;       /* slots ever used: the table's length */
  int ref;               /* the table's integer key in the registry */
} Anchors;


/*
** The loop's clock: what every deadline and aio.now() count in. Real: the
** monotonic clock (uv_hrtime). Virtual (aio.testing.run): starts at 0 and
** moves only while some task waits on I/O, at the speed of real time, and
** by jumps: when the loop is idle (no task ready, no deferred work) and no
** task waits on I/O for `autojump` real nanoseconds, it jumps to the
** earliest deadline. A task waits on I/O from the moment it suspends on
** something outside the loop (aio__wait_io: a socket, a file, a DNS
** lookup, a thread-pool call, a child process, an HTTP transfer) until it
** is woken; waiting for a timer, another task, a primitive, a connection
** to accept or a signal does not count. So code that waits only on
** timers and on other tasks sees the same times on every run, and an hour
** of sleeps passes at once.
*/
typedef struct Clock {
  uint8_t virt;          /* 1: virtual */
  uint32_t nio;          /* virtual: tasks waiting on I/O (Task.iowait) */
  uint64_t vnow;         /* virtual: the time (ns) at the last update */
  uint64_t mark;         /* virtual: real time (ns) of the last update */
  uint64_t autojump;     /* virtual: idle real ns before a jump */
  uint64_t idle_since;   /* virtual: real time the idle wait began, or 0 */
} Clock;


/*
** Something a run must close when it ends (an open file, a socket, a
** session): linked in loop->closables while open. The end of a run calls
** `close` for each, newest first, after the tasks have unwound; `close`
** must unlink it (aio__closable_remove) and never run Lua. This is the one
** clean-up path: an object of a finished run is closed, so using it raises
** `closed`.
*/
typedef struct Closable {
  Link link;
  void (*close) (struct Closable *c);
} Closable;


/*
** Work deferred to the end of the current round of ready tasks: run once,
** just before the loop next polls for I/O (a driver's output buffer,
** filled by many tasks in one round, is written with one system call).
** `run` never runs Lua; it may wake tasks. Its owner unqueues it
** (link_remove) before its memory goes; the end of a run forgets them all.
*/
typedef struct Deferred {
  Link link;             /* in loop->deferred while queued */
  void (*run) (struct Loop *loop, struct Deferred *d);
} Deferred;


/*
** Every libuv handle lives in memory that starts with this header
** (handle->data points at it), so that the loop can close a handle with
** the right close callback.
*/
typedef struct AioHandle {
  uv_close_cb on_close;  /* frees the memory; NULL for loop-owned handles */
} AioHandle;


/*
** The loop: one per Lua state, in a userdata that lives as long as the
** aio.core module (it is the upvalue of every core function, and is in the
** registry under &aio__key_loop). Its Lua-side tables live in the registry
** under the aio__key_* addresses below.
*/
typedef struct Loop {
  uv_loop_t uv;           /* the libuv loop, initialised per run */
  uv_timer_t timer;       /* wakes the poll at the earliest deadline */
  uv_signal_t sigint;     /* SIGINT cancels the main task */
  AioHandle core_handle;  /* data of the loop's own handles */
  lua_State *L;           /* the thread that called aio.run */
  Task *current;          /* the task being resumed, or NULL */
  Task *main;             /* the main task of the run */
  ReadyQueue ready;
  Deadlines deadlines;
  Anchors anchors;
  Link closables;         /* Closable.link: what the run must close */
  Link deferred;          /* Deferred.link: to run before the next poll */
  Clock clock;
  uint64_t armed;         /* deadline the uv timer is armed for (0 none) */
  uint64_t now;           /* the loop's clock at the last poll */
  /* poll policy while tasks are ready */
  uint32_t since_poll;    /* resumes since the last poll */
  int64_t poll_tick;      /* coarse clock tick of the last poll */
  uint32_t ntasks;        /* tasks not finished */
  uint32_t next_id;
  uint32_t generation;    /* incremented per aio.run */
  uint32_t ncallbacks;    /* pending on_done calls */
  uint32_t ndetached;     /* entries in the detached-scope table */
  uint32_t nhandles;      /* open module handles (for leak checks) */
  int running;            /* inside aio.run */
  int stopping;           /* main task finished: shutting down */
  int interrupted;        /* SIGINTs received */
  int owns_sigint;        /* this run handles SIGINT (see sigint.c) */
  /* aio.testing.run (run.c) */
  uv_timer_t limit_timer; /* the run's real-time limit */
  double limit;           /* its seconds; 0: none */
  int timed_out;          /* the limit passed: the main task was cancelled */
  int keep_unseen;        /* keep unretrieved errors for core.unretrieved */
  int debug;              /* debug mode */
  double slow;            /* debug: warn past this many seconds */
} Loop;


/*
** A module of the C core (sync, fs, tcp, http, ...): it defines its
** descriptor, `const AioModule aio__module_<name>`, and src/modules.c
** lists it. `open` runs when aio.core is loaded, with the loop
** userdata at index -2 and the core table on top (it adds its functions,
** usually as core.<name>, and leaves the stack as it found it). `close`,
** if not NULL, runs at the end of every run, once the libuv loop is
** closed (no callback can come any more): it forgets per-run state.
** Never runs Lua.
*/
typedef struct AioModule {
  const char *name;
  void (*open) (lua_State *L);
  void (*close) (lua_State *L, Loop *loop);
} AioModule;

extern const AioModule *const aio__modules[];   /* NULL-terminated */


/*
** An object class: its metatable (in the registry under `name`, whose
** __name it is), methods for __index and metamethods. aio__class_open
** registers every function as a closure with two upvalues, the loop
** userdata and the metatable, so that methods and metamethods alike check
** their receiver with aio__checkself. The class's address marks its
** metatables, so aio__toobj/aio__checkobj accept every metatable of the
** class (aio.Task has a twin for failed tasks).
*/
typedef struct AioClass {
  const char *name;            /* "aio.Stream" */
  const luaL_Reg *methods;     /* __index, or NULL */
  const luaL_Reg *meta;        /* metamethods, or NULL */
} AioClass;

void aio__class_open (lua_State *L, int loopidx, const AioClass *cls);
void aio__class_twin (lua_State *L, int loopidx, const AioClass *cls,
                      const char *name, const luaL_Reg *meta);
void *aio__checkself (lua_State *L);
void *aio__toobj (lua_State *L, int idx, const AioClass *cls);
void *aio__checkobj (lua_State *L, int idx, const AioClass *cls);
const char *aio__cstring (lua_State *L, int idx, const char *what);
const char *aio__checkcstring (lua_State *L, int arg, const char *what);
void aio__checkcallable (lua_State *L, int arg);
void aio__setfuncs (lua_State *L, int loopidx, const luaL_Reg *l);

#define aio_upvalue_loop(L) \
  ((Loop *)lua_touserdata((L), lua_upvalueindex(1)))


/* loop.c */
Loop *aio__loop (lua_State *L);
uint64_t aio__hrtime (void);
void aio__check_running (lua_State *L, Loop *loop, const char *what);
void aio__handle_opened (Loop *loop);
void aio__handle_closed (Loop *loop);
void aio__new_weak_table (lua_State *L, const char *key);
void aio__open_loop (lua_State *L);

/* run.c, sigint.c */
void aio__open_run (lua_State *L);
void aio__sigint_begin (Loop *loop);
void aio__sigint_end (Loop *loop);

/* closable.c: the end-of-run clean-up */
void aio__closable_add (Loop *loop, Closable *c,
                        void (*close) (Closable *c));
void aio__closable_remove (Closable *c);
void aio__closables_close (Loop *loop);

/* anchor.c: keep a value reachable while C holds it */
void aio__anchors_open (lua_State *L, Anchors *a);
void aio__push_anchors (lua_State *L, Loop *loop);
uint32_t aio__anchor (lua_State *L, Loop *loop, int idx);
void aio__unanchor (lua_State *L, Loop *loop, uint32_t slot);
void aio__push_anchored (lua_State *L, Loop *loop, uint32_t slot);
void aio__anchor_take (lua_State *L, Loop *loop, uint32_t slot);
void aio__anchors_free (Anchors *a);

/* sched.c */
void aio__defer (Loop *loop, Deferred *d);
void aio__ready_push (Loop *loop, Task *t);
void aio__ready_remove (Loop *loop, Task *t);
void aio__ready_clear (Loop *loop);
int aio__run_loop (lua_State *L, Loop *loop, Task *until);

/* clock.c: the loop's clock (see Clock) */
uint64_t aio__now (Loop *loop);
double aio__now_seconds (Loop *loop);
void aio__clock_update (Loop *loop);
void aio__clock_start (Loop *loop, int virt, double autojump);
void aio__clock_stop (Loop *loop);
int aio__clock_can_jump (Loop *loop);
uint64_t aio__clock_idle (Loop *loop);
void aio__clock_busy (Loop *loop);
void aio__clock_jump (Loop *loop, uint64_t to);
void aio__wait_io (Loop *loop, Task *t);
void aio__wait_io_end (Loop *loop, Task *t);

/* timer.c */
void aio__timer_arm (Loop *loop, Timer *tm, uint64_t when);
void aio__timer_cancel (Loop *loop, Timer *tm);
void aio__timers_expire (Loop *loop);
uint64_t aio__timer_next (Loop *loop);
uint32_t aio__timer_count (Loop *loop);
void aio__timers_reset (Loop *loop);
void aio__timers_free (Loop *loop);
uint64_t aio__deadline (Loop *loop, double seconds);
double aio__checkduration (lua_State *L, int arg);
void aio__open_timer (lua_State *L);

/* task.c: the suspension protocol (see aio.h) and the task's life */
extern const char aio__token;  /* the value yielded to the scheduler */
Task *aio__task_enter (lua_State *L, Loop *loop, const char *what);
int aio__suspend (lua_State *L, Task *t, lua_KContext ctx, lua_KFunction k);
int aio__suspend_cleanup (lua_State *L, Task *t, lua_KContext ctx,
                          lua_KFunction k);
int aio__task_interrupt (Loop *loop, Task *t);
int aio__task_wake (Loop *loop, Task *t, int wake);
void aio__task_disarm (Loop *loop, Task *t);
void aio__checkpoint (lua_State *L, Task *t);
int aio__wake_raise (lua_State *L, Task *t);
void aio__push_cancel_error (lua_State *L, int idx, Task *t);
int aio__cancel_pending (Task *t);
int aio__task_cancel (lua_State *L, Loop *loop, Task *t, int reason);
void aio__task_start (Loop *loop, Task *t);
void aio__task_finish (Loop *loop, Task *t, int nres);
void aio__task_kill (Loop *loop, Task *t);
void aio__notify_all (Loop *loop, Link *list);
void aio__open_task (lua_State *L);

/* task_extra.c: what a task keeps besides its coroutine */
int aio__task_push_extra (lua_State *L, int idx, Task *t, int create);
int aio__task_get_extra (lua_State *L, int idx, Task *t, const char *k);
void aio__task_set_extra (lua_State *L, int idx, Task *t, const char *k);
void aio__task_push_value (lua_State *L, int idx, Task *t);
void aio__task_set_value (lua_State *L, int idx, Task *t);
void aio__task_push_name (lua_State *L, int idx, Task *t);

/* task_object.c: the Task class, results, reports */
extern const AioClass aio__task_class;
int aio__task_results (lua_State *L, int idx);
Task *aio__checktask (lua_State *L, int idx);
Task *aio__totask (lua_State *L, int idx);
void aio__task_mark_failed (lua_State *L, int idx);
void aio__report_unretrieved (lua_State *L);
void aio__debug_slow (lua_State *L, Task *t, double secs);
void aio__open_task_object (lua_State *L);

/* scope.c */
int aio__scope_raise (lua_State *L, Task *t);
void aio__scope_expire (Loop *loop, Scope *s);
void aio__scopes_clear (Loop *loop, Task *t);
void aio__scopes_detach (lua_State *L, Loop *loop, Task *t, int coidx);
void aio__scopes_attach (lua_State *L, Loop *loop, Task *t, int coidx);
void aio__open_scope (lua_State *L);

/* coro.c */
void aio__open_coro (lua_State *L);

/* error.c: aio.Error, and every way C code makes one */
void aio__error_new (lua_State *L, const char *kind, const char *fmt, ...);
int aio__error (lua_State *L, const char *kind, const char *fmt, ...);
int aio__usage (lua_State *L, const char *fmt, ...);
void aio__uv_error_new (lua_State *L, const char *kind, int err,
                        const char *fmt, ...);
int aio__closed_error (lua_State *L, const char *what);
int aio__nomem (lua_State *L, const char *what);
int aio__is_error (lua_State *L, int idx, const char *kind);
void aio__setfield_str (lua_State *L, const char *k, const char *v);
void aio__setfield_num (lua_State *L, const char *k, lua_Number v);
void aio__open_error (lua_State *L);

/* Registry keys (their addresses) of the loop's Lua-side tables. */
extern const char aio__key_loop;       /* the Loop userdata */
extern const char aio__key_callbacks;  /* array: pending on_done (fn, task) */
extern const char aio__key_detached;   /* weak keys: coroutine -> scope */
extern const char aio__key_unseen;     /* weak keys: failed tasks unseen */

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
