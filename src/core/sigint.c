/*
** sigint.c
** SIGINT during aio.run: the first cancels the main task; if a task blocks
** the loop, the second raises `interrupted` inside it and the third gives
** up on a clean stop.
** See LICENSE
*/

#include <signal.h>

#include "core.h"

/* SIGINT disposition before aio.run, restored after it; libuv's handler,
** which sigint_guard calls. */
static struct sigaction saved_sigint, uv_sigint;

/* SIGINTs delivered, and how many of them the loop has seen. */
static volatile sig_atomic_t sigints_raw, sigints_seen;

/* The loop whose aio.run handles SIGINT (for the signal handler): the
** first run of the process that is going on (another Lua state may run a
** loop in another thread at the same time; it leaves SIGINT alone). */
static Loop *sigint_loop;


/* A hook that raises `interrupted` in the task that blocks the loop. */
static void interrupt_hook (lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  aio__error(L, "interrupted", "interrupted by SIGINT while blocking the "
             "loop");
}


/*
** The process's SIGINT handler during aio.run: passes the signal to
** libuv, whose watcher cancels the main task when the loop polls. If more
** SIGINTs come before the loop saw the first (a task blocks the loop and
** never suspends): the second raises `interrupted` inside that task (a
** hook, as the standalone interpreter does); the third gives up on a clean
** stop and ends the process: the default disposition, whatever it was
** before aio.run (lua5.4's own handler only sets a hook, which a task
** blocking the loop in a coroutine never runs; an ignored SIGINT was
** answered by libuv anyway).
*/
static void sigint_guard (int signum, siginfo_t *info, void *ctx) {
  int pending = ++sigints_raw - sigints_seen;
  Loop *loop = __atomic_load_n(&sigint_loop, __ATOMIC_ACQUIRE);
  if (pending == 2 && loop != NULL && loop->current != NULL &&
      loop->current->co != NULL)
    lua_sethook(loop->current->co, interrupt_hook,
                LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  else if (pending >= 3) {
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);                   /* delivered when the handler returns */
    return;
  }
  if (uv_sigint.sa_flags & SA_SIGINFO) uv_sigint.sa_sigaction(signum, info, ctx);
  else if (uv_sigint.sa_handler != SIG_IGN && uv_sigint.sa_handler != SIG_DFL)
    uv_sigint.sa_handler(signum);
}


/* libuv saw a SIGINT: cancel the main task. */
static void on_sigint (uv_signal_t *h, int signum) {
  Loop *loop = aio_container_of(h, Loop, sigint);
  (void)signum;
  sigints_seen = sigints_raw;
  loop->interrupted++;
  if (loop->main != NULL && !aio_task_done(loop->main))
    aio__task_cancel(loop->L, loop, loop->main, 0);
}


/* A run starts: takes SIGINT over if no other run of the process has. */
void aio__sigint_begin (Loop *loop) {
  Loop *none = NULL;
  loop->owns_sigint = 0;
  if (!__atomic_compare_exchange_n(&sigint_loop, &none, loop, 0,
                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return;
  loop->owns_sigint = 1;
  sigaction(SIGINT, NULL, &saved_sigint);
  uv_signal_init(&loop->uv, &loop->sigint);
  loop->sigint.data = &loop->core_handle;
  uv_signal_start(&loop->sigint, on_sigint, SIGINT);
  uv_unref((uv_handle_t *)&loop->sigint);
  sigints_raw = sigints_seen = 0;
  if (sigaction(SIGINT, NULL, &uv_sigint) == 0) {
    struct sigaction guard = uv_sigint;
    guard.sa_sigaction = sigint_guard;
    guard.sa_flags |= SA_SIGINFO;
    sigaction(SIGINT, &guard, NULL);
  }
}


/* The run's libuv loop is closed: gives SIGINT back. A SIGINT the loop
** never polled (the main task returned without suspending after it)
** still interrupts the run. */
void aio__sigint_end (Loop *loop) {
  if (!loop->owns_sigint) return;
  loop->owns_sigint = 0;
  if (sigints_raw != sigints_seen) loop->interrupted++;
  sigaction(SIGINT, &saved_sigint, NULL);
  __atomic_store_n(&sigint_loop, NULL, __ATOMIC_RELEASE);
}
