/*
** aio.h
** The header of a module of the aio C core, and the contract it follows.
** See LICENSE
*/

/*
** Writing a C module on this core: the contract. Read it first.
**
** Layout. src/core/ is the loop, the scheduler (sched.c: the one place
** that resumes tasks), tasks, deadlines (timer.c: one uv_timer over a
** 4-ary heap with FIFO lanes), cancel scopes, errors, object classes and
** the end-of-run clean-up; it names no module. src/sync/ holds the wait
** lists under lua/aio/sync/, src/io/ the I/O layer and its modules,
** src/http/ the HTTP client. A module is a set of files in its layer's
** folder, its descriptor (name, opener, clean-up) and one line in
** src/modules.c, and its sources in the rockspec. Models to read:
** io/dns.c (a request-based module end to end), sync/waitlist.c with
** lua/aio/sync/primitives.lua (a wait list and primitives built on it in
** Lua), core/sched.c and core/timer.c.
**
** 1. Suspending. A function that waits calls `t = aio__task_enter(L, loop,
**    "aio.x.y")` first (raises `usage` outside a task, and the pending
**    cancellation if any), arms its wait (a libuv request or handle whose
**    callback will wake `t`, and/or t->wait.link in a wait list, and/or
**    aio__timer_arm(&t->timer)), then `return aio__suspend(L, t, ctx, k)`
**    (or aio__req_wait, aio__io_wait, aio__poller_wait, which do both).
**    `k(L, status, ctx)` runs when the task is resumed, with the values
**    the waker pushed (if any) on top of the stack. A wait on I/O
**    (anything that completes outside the loop: a socket, a file, a
**    thread-pool call, a process, a server's reply) calls
**    aio__wait_io(loop, t) before suspending, so that a virtual clock
**    (aio.testing.run) does not jump while it is pending; aio__req_wait,
**    aio__io_wait and aio__poller_wait do it (an IoHandle marked
**    `passive`, such as a listener, waits for new work, not on I/O).
**    Deadlines are on the loop's clock: aio__deadline(loop, secs), or
**    aio__now(loop) + ns, never uv_hrtime().
**    A continuation may wait again the same way (no aio__task_enter
**    needed): every suspension of a task with a pending cancellation is
**    interrupted at once (woken with AIO_WAKE_CANCEL, see 3). Only a wait
**    that finishes clean-up (a killed child being reaped) uses
**    aio__suspend_cleanup, which nothing interrupts.
** 2. Waking. libuv callbacks never call Lua: they store their outcome in
**    C memory and call aio__task_wake(loop, t, AIO_WAKE_OK) or
**    aio__notify_all(loop, list) (a task that no longer waits is left
**    alone). To hand values over, push them on t->co (lua_checkstack
**    first) and set t->nargs before waking.
** 3. In `k`: if t->wake is not the success you armed (AIO_WAKE_CANCEL,
**    _ABORT, _DEADLOCK), the wait was interrupted: stop the operation
**    (uv_cancel a request, or mark it abandoned so that its callback frees
**    it instead of waking; close a handle), hand back anything you took,
**    then call aio__wake_raise(L, t) (never returns); aio__io_resumed
**    does this for waits on an I/O object. On success call
**    aio__checkpoint(L, t) before returning results if a cancellation
**    that arrived meanwhile must win (it raises); skip it if the result
**    would be lost (then the next suspension raises instead).
** 4. Memory libuv uses must stay valid until its callback. A request
**    lives in a userdata made by aio__req_new, anchored from
**    aio__req_start to aio__req_done. Handles live in an IoHandle
**    (io/io.h): malloc'd memory, freed once its object is gone and every
**    handle's close callback has run; every handle's `data` points at it.
** 5. Objects. A class (AioClass) is made once by aio__class_open; its
**    methods and metamethods check their receiver with aio__checkself
**    (other arguments with aio__checkobj). An I/O object is an IoRef made
**    by aio__io_push: close(), __close and __gc are aio__io_close_method
**    and aio__io__gc, which run the IoType's close once.
** 6. Clean-up. What a run opens and must close is a Closable (an I/O
**    object is one from aio__io_push on): the end of the run closes it
**    after the tasks unwound, so using it later raises `closed`. Per-run
**    state of a module is reset by the module's `close` in modules.c.
** 7. Errors: aio__error(L, kind, fmt, ...) raises {kind=, message=};
**    aio__error_new pushes one to add fields (code, path, url, ...)
**    first; aio__uv_error_new adds libuv's message and `code`;
**    aio__nomem for a failed malloc; argument errors use luaL_argerror /
**    luaL_typeerror (standard `bad argument` messages). Every error table
**    is made in core/error.c. luaL_error jumps past C clean-up: free or
**    anchor memory before raising.
*/

#ifndef AIO_H
#define AIO_H

#include "core/core.h"
#include "io/io.h"

#endif
