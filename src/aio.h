/*
** aio.h
** Shared types and internal (aio__) functions of the aio C core.
** See LICENSE
*/

/*
** Writing a C module on this core (fs, tcp, http, ...): the contract.
**
** 1. Suspending. A function that waits calls `t = aio__task_enter(L, loop,
**    "aio.x.y")` first (raises `usage` outside a task, and the pending
**    cancellation if any), arms its wait (a libuv request or handle whose
**    callback will wake `t`, and/or t->wait.link in a wait list, and/or
**    aio__timer_arm(&t->timer)), then `return aio__suspend(L, t, ctx, k)`.
**    `k(L, status, ctx)` runs when the task is resumed, with the values the
**    waker pushed (if any) on top of the stack.
** 2. Waking. libuv callbacks never call Lua: they store their outcome in
**    C memory and call aio__task_wake(loop, t, AIO_WAKE_OK) (it returns 0
**    if the task no longer waits). To hand values over, push them on t->co
**    (lua_checkstack first) and set t->nargs before waking.
** 3. In `k`: if t->wake is not the success you armed (AIO_WAKE_CANCEL,
**    _ABORT, _DEADLOCK), the wait was interrupted: stop the operation
**    (uv_cancel a request, or mark it abandoned so that its callback frees
**    it instead of waking; close a handle), hand back anything you took,
**    then call aio__wake_raise(L, t) (never returns). On success call
**    aio__checkpoint(L, t) before returning results if a cancellation that
**    arrived meanwhile must win (it raises); skip it if the result would
**    be lost (then the next suspension raises instead).
** 4. Memory a libuv request or handle uses must stay valid until its
**    callback: keep it in malloc'd memory or in a userdata anchored with
**    aio__anchor until the close/request callback (which unanchors it).
**    Every handle's `data` points at memory that starts with AioHandle, so
**    the end of aio.run can close forgotten handles with the right
**    callback. Count open handles with aio__handle_opened/_closed.
** 5. Objects outliving a run: remember loop->generation when opening;
**    using an object of another run raises "attempt to use a closed X".
** 6. Errors: aio__error(L, kind, fmt, ...) raises {kind=, message=}; push
**    one with aio__error_new to add fields (code, path, url, ...) first.
**    luaL_error jumps past C clean-up: free or anchor memory before it.
** 7. Clean-up at the end of a run: core.at_exit(fn) from Lua; tasks are
**    cancelled (and unwind) before the hooks run, handles closed after.
*/

#ifndef AIO_H
#define AIO_H

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
** seq) so that equal deadlines fire in arming order. The queue is a 4-ary
** min-heap plus a few FIFO "lanes" for the common case of deadlines armed
** in non-decreasing order (many tasks sleeping the same duration, a
** timeout used everywhere): a deadline not before a lane's last one is
** appended to it in O(1) and popped in O(1). All store each deadline next
** to its Timer pointer, so comparisons rarely touch the timers. A timer
** does not own a libuv handle: one uv_timer_t per loop wakes the poll for
** the earliest deadline.
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
  uint64_t when;         /* deadline, nanoseconds on uv_hrtime's clock */
  Timer *tm;             /* NULL: a lane entry whose timer was disarmed */
} HeapEntry;

/* A FIFO lane: a ring of entries with non-decreasing deadlines. */
typedef struct TimerLane {
  HeapEntry *ring;
  uint32_t head, count, cap;   /* cap: a power of two */
  uint32_t live;               /* entries still armed */
  uint64_t last;               /* deadline of the last entry */
} TimerLane;

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

/*
** A task: a Lua coroutine driven by the scheduler. Lives in a userdata of
** metatable "aio.Task" (switched to "aio.Task.failed", which has a __gc
** that reports unretrieved errors, when it fails) with one user value:
** the coroutine while it runs, then its result (one value, or a table
** {n=...}) or its error; or, once anything else must be kept (name,
** reason, traceback, callbacks, spawn site: AIO_TF_EXTRA), a table with
** those fields plus `co` or `value`. Anchored in the loop (slot `anchor`)
** from spawn until it finishes, so raw Task pointers in the ready queue,
** the timer heap and wait lists are always valid.
*/
typedef struct Task {
  Waiter wait;          /* membership in one wait list while WAITING */
  Link awaiters;        /* Waiters to notify when the task finishes */
  Timer timer;          /* sleep / wait timeout */
  lua_State *co;        /* the coroutine; NULL once finished */
  struct Scope *scope;  /* innermost active cancel scope, or NULL */
  uint32_t id;          /* "task-<id>" */
  uint32_t anchor;      /* slot in the loop's anchor table; 0 = none */
  uint8_t state;        /* TaskState */
  uint8_t wake;         /* Wake: why it was made ready */
  uint8_t flags;        /* AIO_TF_* */
  uint8_t nargs;        /* values pushed on co for the next resume */
  uint8_t nexpired;     /* expired deadline scopes in the chain */
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
** Every libuv handle opened by an aio module lives in memory that starts
** with this header (handle->data points at it) so that shutdown can close
** forgotten handles with the right close callback.
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
  /* ready queue: ring buffer of tasks, run in rounds */
  Task **ready;
  uint32_t rhead, rcount, rcap;
  /* deadline queue: heap + FIFO lanes (see Timer) */
  HeapEntry *heap;
  uint32_t hcount, hcap;
  TimerLane lanes[AIO_LANES];
  uint32_t seq;
  uint64_t armed;         /* deadline the uv timer is armed for (0 none) */
  uint64_t now;           /* hrtime at the last poll */
  /* poll policy while tasks are ready */
  uint32_t since_poll;    /* resumes since the last poll */
  int64_t poll_tick;      /* coarse clock tick of the last poll */
  /* anchors */
  uint32_t *free_slots;   /* free anchor slots, a stack */
  uint32_t nfree, free_cap, nslots;
  uint32_t ntasks;        /* tasks not finished */
  uint32_t next_id;
  uint32_t generation;    /* incremented per aio.run */
  uint32_t ncallbacks;    /* pending on_done calls */
  uint32_t ndetached;     /* entries in the detached-scope table */
  uint32_t nhandles;      /* open module handles (for leak checks) */
  int running;            /* inside aio.run */
  int stopping;           /* main task finished: shutting down */
  int interrupted;        /* SIGINTs received */
  int owns_sigint;        /* this run handles SIGINT (see loop.c) */
  int debug;              /* debug mode */
  double slow;            /* debug: warn past this many seconds */
} Loop;

/* loop.c */
Loop *aio__loop (lua_State *L);
uint64_t aio__hrtime (void);
void aio__handle_opened (Loop *loop);
void aio__handle_closed (Loop *loop);
void aio__check_running (lua_State *L, Loop *loop, const char *what);

/* sched.c */
void aio__ready_push (Loop *loop, Task *t);
void aio__ready_remove (Loop *loop, Task *t);
int aio__run_loop (lua_State *L, Loop *loop, Task *until);

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

/* task.c */
extern const char aio__token;  /* the value yielded to the scheduler */
Task *aio__task_enter (lua_State *L, Loop *loop, const char *what);
int aio__suspend (lua_State *L, Task *t, lua_KContext ctx, lua_KFunction k);
int aio__task_wake (Loop *loop, Task *t, int wake);
void aio__task_disarm (Loop *loop, Task *t);
void aio__checkpoint (lua_State *L, Task *t);
int aio__wake_raise (lua_State *L, Task *t);
void aio__push_cancel_error (lua_State *L, int idx, Task *t);
int aio__cancel_pending (Task *t);
int aio__task_cancel (lua_State *L, Loop *loop, Task *t, int reason);
void aio__task_finish (Loop *loop, Task *t, int nres);
void aio__task_kill (Loop *loop, Task *t);
int aio__task_results (lua_State *L, int idx);
Task *aio__checktask (lua_State *L, int idx);
Task *aio__totask (lua_State *L, int idx);
void aio__notify_all (Loop *loop, Link *list);
void aio__report_unretrieved (lua_State *L);
void aio__debug_slow (lua_State *L, Loop *loop, Task *t, double secs);
void aio__open_task (lua_State *L);

/* scope.c */
int aio__scope_raise (lua_State *L, Task *t);
void aio__scope_expire (Loop *loop, Scope *s);
void aio__scopes_clear (Loop *loop, Task *t);
void aio__scopes_detach (lua_State *L, Loop *loop, Task *t, int coidx);
void aio__scopes_attach (lua_State *L, Loop *loop, Task *t, int coidx);
void aio__open_scope (lua_State *L);

/* coro.c */
void aio__open_coro (lua_State *L);

/* semaphore.c, queue.c, waitlist.c, watch.c: primitives for aio.sync,
** aio.queue and composition */
void aio__open_semaphore (lua_State *L);
void aio__open_queue (lua_State *L);
void aio__open_waitlist (lua_State *L);
void aio__open_watch (lua_State *L);

/* http_multi.c: the HTTP client (aio.http), see http.h */
void aio__open_http (lua_State *L);

/* error.c */
void aio__error_new (lua_State *L, const char *kind, const char *fmt, ...);
int aio__error (lua_State *L, const char *kind, const char *fmt, ...);
int aio__usage (lua_State *L, const char *fmt, ...);
int aio__is_error (lua_State *L, int idx, const char *kind);
void aio__setfield_str (lua_State *L, const char *k, const char *v);
void aio__setfield_num (lua_State *L, const char *k, lua_Number v);
void aio__open_error (lua_State *L);

/* Objects: every metatable of an aio object type carries its type's mark
** (an address used as a light-userdata key) so that one check accepts all
** of a type's metatables. */
void *aio__testobj (lua_State *L, int idx, const void *mark);
void *aio__checkobj (lua_State *L, int idx, const void *mark,
                     const char *tname);
void aio__markmeta (lua_State *L, const void *mark);

/* anchor helpers (loop.c): keep a value reachable while C holds it */
uint32_t aio__anchor (lua_State *L, Loop *loop, int idx);
void aio__unanchor (lua_State *L, Loop *loop, uint32_t slot);
void aio__push_anchored (lua_State *L, Loop *loop, uint32_t slot);
void aio__new_weak_table (lua_State *L, const char *key);

/* Registry keys (their addresses) of the loop's Lua-side tables. */
extern const char aio__key_loop;       /* the Loop userdata */
extern const char aio__key_anchors;    /* array: anchored objects */
extern const char aio__key_callbacks;  /* array: pending on_done (fn, task) */
extern const char aio__key_detached;   /* weak keys: coroutine -> scope */
extern const char aio__key_exithooks;  /* array: run-exit hooks */
extern const char aio__key_unseen;     /* weak keys: failed tasks unseen */

/* Registers `l` into the table on top, each function with the loop
** userdata (at absolute index `loopidx`) as its only upvalue. */
void aio__setfuncs (lua_State *L, int loopidx, const luaL_Reg *l);

/* The same with a second upvalue: the metatable at `mtidx`, against
** which aio__checkself checks argument 1 (cheaper than aio__checkobj). */
void aio__setmethods (lua_State *L, int loopidx, int mtidx,
                      const luaL_Reg *l);
void *aio__checkself (lua_State *L, const char *tname);

#define aio_upvalue_loop(L) \
  ((Loop *)lua_touserdata((L), lua_upvalueindex(1)))


/* ---------------------------------------------------------------------
** I/O modules: fs, tcp, dns, threads, processes, signals (io.c has the
** plumbing they share; each module's open function fills core.<name>)
** ------------------------------------------------------------------- */

/*
** A libuv request in a userdata ("aio.Req"), which starts with Req. The
** userdata is anchored while libuv owns the request (aio__req_start until
** the callback calls aio__req_done), so the memory and whatever its user
** values keep alive (strings being written, the object it works on) stay
** valid even if the task that started it is cancelled or killed. The task
** waiting for it is linked in `waiters`; a task woken by anything else is
** unlinked, so the callback then only records the outcome and the request
** is collected once nobody refers to it.
*/
typedef struct Req {
  Link waiters;                /* the wait link of the task waiting */
  Loop *loop;
  void (*gc) (struct Req *r);  /* frees what the request owns, or NULL */
  uint32_t anchor;             /* anchor slot while in flight, else 0 */
  int status;                  /* outcome: >= 0, or a UV_E* code */
} Req;

void *aio__req_new (lua_State *L, Loop *loop, size_t size, int nuv);
void aio__req_start (lua_State *L, Req *r, int idx);
void aio__req_done (Req *r, int status);
int aio__req_wait (lua_State *L, Task *t, Req *r, lua_KContext ctx,
                   lua_KFunction k);

/*
** Memory shared by a Lua object and the libuv handles in it: malloc'd,
** starting with IoHandle, and every handle's `data` points at it. The
** object's close closes the handles (aio__io_close), its __gc calls
** aio__io_orphan; the memory is freed when both the object is collected
** and every handle's close callback has run (whichever comes last), so
** neither libuv nor a stale object ever sees freed memory.
*/
typedef struct IoHandle {
  AioHandle ah;             /* ah.on_close: the shared close callback */
  Loop *loop;
  void (*closed) (struct IoHandle *io, uv_handle_t *h);  /* or NULL */
  void (*release) (struct IoHandle *io);  /* frees what it owns, or NULL */
  uint32_t gen;             /* loop->generation when opened */
  uint8_t nopen;            /* its handles whose close callback is due */
  uint8_t ncounted;         /* of those, counted in loop->nhandles */
  uint8_t closing;          /* closed by its object (or the run's end) */
  uint8_t orphan;           /* its Lua object was collected */
} IoHandle;

void *aio__io_new (Loop *loop, size_t size);
void aio__io_opened (IoHandle *io, uv_handle_t *h);
void aio__io_close (IoHandle *io, uv_handle_t *h);
void aio__io_orphan (IoHandle *io);
int aio__io_live (IoHandle *io);

/*
** A byte stream (a TCP connection) behind an "aio.Stream" object. Reading
** is on (uv_read_start) only while a task waits for data, plus at most one
** read with nobody waiting, which is kept in `buf` and stops it.
*/
typedef struct Stream {
  IoHandle io;
  uv_tcp_t tcp;
  Link readers;          /* tasks waiting for data or for the close */
  Link pending;          /* in a server's queue of accepted connections */
  char *scratch;         /* the loop's shared read buffer (AIO_READ_SIZE) */
  char *buf;             /* received, not yet read: buf[off, len) */
  size_t off, len, cap;
  size_t limit;          /* longest line read_line accepts */
  double timeout;        /* seconds a read or write may wait; 0: no limit */
  int rerr;              /* 0, UV_EOF, or the error that ended reading */
  uint8_t reading;       /* uv_read_start is on */
} Stream;

#define AIO_READ_SIZE 65536

Stream *aio__stream_alloc (Loop *loop, char *scratch);
void aio__stream_push (lua_State *L, Stream *s);
void aio__stream_close (Stream *s);
char *aio__io_scratch (lua_State *L);

/* thread_copy.c: values copied between Lua states as bytes. */
typedef struct CopyBuf {
  char *data;            /* malloc'd */
  size_t len, cap;
} CopyBuf;

int aio__copy_out (lua_State *L, int first, int n, CopyBuf *b, char *err,
                   size_t errlen);
int aio__copy_in (lua_State *L, const char *data, size_t len);

int aio__push_address (lua_State *L, uv_tcp_t *tcp, int peer);
void aio__push_hostport (lua_State *L, const char *host, int port);
const char *aio__checkpath (lua_State *L, int arg);

void aio__uv_error_new (lua_State *L, const char *kind, int err,
                        const char *fmt, ...);
int aio__closed_error (lua_State *L, const char *what);
void aio__at_exit (lua_State *L, Loop *loop, int idx);
const char *aio__signame (int signum);
void aio__ignore_sigpipe (void);
int aio__signum (const char *name);

void aio__open_fs (lua_State *L);
void aio__open_file (lua_State *L, int fsidx);
void aio__open_stream (lua_State *L);
void aio__open_tcp (lua_State *L);
void aio__open_dns (lua_State *L);
void aio__open_thread (lua_State *L);
void aio__open_process (lua_State *L);
void aio__open_signal (lua_State *L);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
